//! A small disk of a test's own: a tmpfs of a few MiB mounted in a private
//! mount namespace, so that a full disk is a real `ENOSPC` and nothing
//! outside the test sees the mount. A holder process keeps the namespace
//! alive; each command runs inside it through `nsenter`. Root mounts it in a
//! new mount namespace; anyone else, in a new user namespace too (where the
//! kernel allows unprivileged user namespaces).

use std::ffi::OsString;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};

/// A tmpfs of a fixed size at `path`, seen only by the commands it runs.
pub struct SmallDisk {
    path: PathBuf,
    holder: Child,
    /// Whether the namespace has its own user namespace too.
    user: bool,
}

impl SmallDisk {
    /// Mounts a tmpfs of `kib` KiB at `path` (created if needed). Panics,
    /// saying why, where the machine allows neither way.
    pub fn mount(path: &Path, kib: u64) -> SmallDisk {
        std::fs::create_dir_all(path).expect("the mount point");
        let script = format!(
            "mount -t tmpfs -o size={kib}k hermes-wasm-test '{}' && echo mounted && exec sleep 3600",
            path.display()
        );
        let mut why = Vec::new();
        for user in [false, true] {
            let mut unshare = Command::new("unshare");
            if user {
                unshare.args(["--user", "--map-root-user"]);
            }
            let mut holder = unshare
                .args(["--mount", "--propagation", "private", "sh", "-c", &script])
                .stdin(Stdio::null())
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .expect("unshare runs (util-linux)");
            let mut line = String::new();
            let stdout = holder.stdout.take().expect("piped");
            let _ = BufReader::new(stdout).read_line(&mut line);
            if line.trim() == "mounted" {
                return SmallDisk {
                    path: path.to_owned(),
                    holder,
                    user,
                };
            }
            let _ = holder.kill();
            let output = holder.wait_with_output().expect("unshare exits");
            why.push(String::from_utf8_lossy(&output.stderr).trim().to_owned());
        }
        panic!(
            "a full disk is tested on a tmpfs of its own, which needs `unshare --mount` \
             (root) or unprivileged user namespaces: {why:?}"
        );
    }

    /// `nsenter` and its arguments, to run a program inside the namespace.
    fn nsenter(&self) -> Vec<OsString> {
        let mut under: Vec<OsString> = vec!["nsenter".into(), "--target".into()];
        under.push(self.holder.id().to_string().into());
        if self.user {
            under.extend(["--user".into(), "--preserve-credentials".into()]);
        }
        under.extend(["--mount".into(), "--".into()]);
        under
    }

    /// Runs `hermes-wasm args` in `dir`, inside the namespace.
    pub fn hermes_wasm(&self, dir: &Path, args: &[&str]) -> Output {
        super::command_under(&self.nsenter(), dir, args)
            .output()
            .expect("nsenter runs (util-linux)")
    }

    /// Runs a shell script inside the namespace; panics if it fails.
    fn sh(&self, script: &str) {
        let under = self.nsenter();
        let output = Command::new(&under[0])
            .args(&under[1..])
            .args(["sh", "-c", script])
            .output()
            .expect("nsenter runs");
        assert!(
            output.status.success(),
            "{script}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
    }

    /// Takes `kib` KiB of the disk with a file of its own.
    pub fn fill(&self, kib: u64) {
        self.sh(&format!(
            "dd if=/dev/zero of='{}/filler' bs=1024 count={kib} 2>/dev/null",
            self.path.display()
        ));
    }

    /// Gives back the space `fill` took.
    pub fn free(&self) {
        self.sh(&format!("rm '{}/filler'", self.path.display()));
    }
}

impl Drop for SmallDisk {
    /// The tmpfs goes with the last process of its namespace.
    fn drop(&mut self) {
        let _ = self.holder.kill();
        let _ = self.holder.wait();
    }
}
