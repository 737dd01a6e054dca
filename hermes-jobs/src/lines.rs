//! Files of JSON lines the jobs append to (the server's journal, the
//! client's dead letters and its JSON-lines target): a crash may leave a
//! last line unfinished, and it is cut off before anything is appended, so
//! that what follows starts a line of its own.

use std::path::Path;

/// Cuts `file` back to its last whole line, if a crash left a part of one.
pub(crate) fn cut_torn_line(file: &std::fs::File, path: &Path) -> std::io::Result<()> {
    use std::io::{Read, Seek, SeekFrom};
    let len = file.metadata()?.len();
    if len == 0 {
        return Ok(());
    }
    // Look back in steps, each twice the last, until a newline is found.
    let mut reader = file;
    let mut end = len;
    let mut step = 4096u64;
    loop {
        let start = end.saturating_sub(step);
        let mut tail = vec![0u8; (end - start) as usize];
        reader.seek(SeekFrom::Start(start))?;
        reader.read_exact(&mut tail)?;
        if end == len && tail.last() == Some(&b'\n') {
            return Ok(());
        }
        if let Some(at) = tail.iter().rposition(|&b| b == b'\n') {
            return cut(file, path, len, start + at as u64 + 1);
        }
        if start == 0 {
            return cut(file, path, len, 0);
        }
        end = start;
        step = step.saturating_mul(2);
    }
}

fn cut(file: &std::fs::File, path: &Path, len: u64, keep: u64) -> std::io::Result<()> {
    tracing::warn!(
        "{}: cutting off {} bytes of a last line left unfinished by a crash",
        path.display(),
        len - keep
    );
    file.set_len(keep)?;
    file.sync_data()
}
