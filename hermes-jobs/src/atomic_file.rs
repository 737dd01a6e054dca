//! Files replaced whole: a crash leaves the old content or the new one, never
//! a mix. The server's and the client's caches are written this way.
//!
//! The temporary file is created new, never opened through a symbolic link:
//! a link planted in its place (by a plugin granted the directory, say)
//! cannot make the host write elsewhere.

use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

/// Writes `bytes` to `path` through a temporary file beside it: write, fsync,
/// rename, then fsync the directory so the rename itself is durable.
pub fn write(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    write_with(path, |out| out.write_all(bytes))
}

/// Like [`write`], with the content written by `fill` through a buffer, so
/// a big file never has to be held whole in memory. If `fill` fails, the old
/// file stays and the temporary one is removed.
pub fn write_with(
    path: &Path,
    fill: impl FnOnce(&mut dyn Write) -> std::io::Result<()>,
) -> std::io::Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let mut tmp_name = path.file_name().unwrap_or_default().to_os_string();
    tmp_name.push(".tmp");
    let tmp = dir.join(tmp_name);
    let written = (|| {
        // A leftover of a crash (or anything planted there) goes first; removing
        // a link removes the link, not what it points to.
        match std::fs::remove_file(&tmp) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(e),
            _ => {}
        }
        let file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .custom_flags(nix::libc::O_NOFOLLOW)
            .open(&tmp)?;
        let mut out = std::io::BufWriter::with_capacity(1 << 16, file);
        fill(&mut out)?;
        out.into_inner().map_err(|e| e.into_error())?.sync_all()
    })();
    if let Err(e) = written {
        let _ = std::fs::remove_file(&tmp);
        return Err(e);
    }
    std::fs::rename(&tmp, path)?;
    if let Ok(dir) = std::fs::File::open(dir) {
        let _ = dir.sync_all();
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_file_is_replaced_whole_and_no_temporary_file_remains() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("cache.json");
        super::write(&path, b"old").expect("write");
        super::write(&path, b"new").expect("write");
        assert_eq!(std::fs::read(&path).expect("read"), b"new");
        assert_eq!(std::fs::read_dir(dir.path()).expect("dir").count(), 1);
    }

    #[test]
    fn a_link_planted_as_the_temporary_file_is_not_written_through() {
        let dir = tempfile::tempdir().expect("tempdir");
        let elsewhere = tempfile::tempdir().expect("tempdir");
        let victim = elsewhere.path().join("victim");
        std::fs::write(&victim, b"precious").expect("write");
        let path = dir.path().join("cache.json");
        std::os::unix::fs::symlink(&victim, dir.path().join("cache.json.tmp")).expect("symlink");
        super::write(&path, b"new").expect("write");
        assert_eq!(std::fs::read(&victim).expect("read"), b"precious");
        assert_eq!(std::fs::read(&path).expect("read"), b"new");
        assert!(
            !path
                .symlink_metadata()
                .expect("meta")
                .file_type()
                .is_symlink()
        );
    }

    #[test]
    fn a_failed_fill_keeps_the_old_file_and_leaves_no_temporary_file() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("cache.json");
        super::write(&path, b"old").expect("write");
        let failed = super::write_with(&path, |out| {
            out.write_all(b"half")?;
            Err(std::io::Error::other("the writer gave up"))
        });
        assert_eq!(
            failed.expect_err("fill failed").to_string(),
            "the writer gave up"
        );
        assert_eq!(std::fs::read(&path).expect("read"), b"old");
        assert_eq!(std::fs::read_dir(dir.path()).expect("dir").count(), 1);
    }
}
