//! A real `redis-server` on a free loopback port, stopped when dropped: what
//! the Redis tests and `hermes-wasm bench` measure against. It listens on
//! 127.0.0.1 only and keeps its files in a temporary directory.

use std::io::{Read, Write};
use std::net::{Ipv4Addr, TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use tempfile::TempDir;

/// How long a starting server may take to answer `PING`.
const START_TIMEOUT: Duration = Duration::from_secs(10);

/// A redis-server child process.
pub struct RedisServer {
    child: Option<Child>,
    port: u16,
    durable: bool,
    dir: TempDir,
}

impl RedisServer {
    /// A server that keeps nothing on disk. Panics if it cannot start (for
    /// tests; [`RedisServer::try_start`] says why instead).
    pub fn start() -> RedisServer {
        RedisServer::spawn(false).unwrap_or_else(|e| panic!("{e}"))
    }

    /// A server that writes every change to its append-only file before it
    /// answers (`appendfsync always`), so it survives being killed. Panics if
    /// it cannot start.
    pub fn start_durable() -> RedisServer {
        RedisServer::spawn(true).unwrap_or_else(|e| panic!("{e}"))
    }

    /// A server that keeps nothing on disk, or why there is none.
    pub fn try_start() -> std::io::Result<RedisServer> {
        RedisServer::spawn(false)
    }

    fn spawn(durable: bool) -> std::io::Result<RedisServer> {
        let port = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))?
            .local_addr()?
            .port();
        let mut server = RedisServer {
            child: None,
            port,
            durable,
            dir: tempfile::tempdir()?,
        };
        server.try_restart()?;
        Ok(server)
    }

    /// The URL that reaches it.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// Kills it at once (SIGKILL), as a crash would.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts it again on the same port, with the same data directory, and
    /// waits until it answers. Panics if it cannot.
    pub fn restart(&mut self) {
        self.try_restart().unwrap_or_else(|e| panic!("{e}"));
    }

    fn try_restart(&mut self) -> std::io::Result<()> {
        self.kill();
        let port = self.port.to_string();
        let mut command = Command::new("redis-server");
        command
            .args(["--port", &port, "--bind", "127.0.0.1", "--save", ""])
            .args(["--daemonize", "no", "--logfile", ""])
            .arg("--dir")
            .arg(self.dir.path())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        if self.durable {
            command.args(["--appendonly", "yes", "--appendfsync", "always"]);
        } else {
            command.args(["--appendonly", "no"]);
        }
        let child = command.spawn().map_err(|e| {
            std::io::Error::new(
                e.kind(),
                format!(
                    "cannot start redis-server ({e}): install it, e.g. `apt-get install redis-server`"
                ),
            )
        })?;
        self.child = Some(child);
        let started = Instant::now();
        while !self.answers() {
            if started.elapsed() > START_TIMEOUT {
                self.kill();
                return Err(std::io::Error::other(format!(
                    "redis-server did not answer on port {port}"
                )));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Ok(())
    }

    /// Whether it answers `PING` with `PONG`.
    fn answers(&self) -> bool {
        let Ok(mut stream) = TcpStream::connect((Ipv4Addr::LOCALHOST, self.port)) else {
            return false;
        };
        let _ = stream.set_read_timeout(Some(Duration::from_secs(1)));
        let mut reply = [0u8; 7];
        stream.write_all(b"PING\r\n").is_ok()
            && stream.read_exact(&mut reply).is_ok()
            && &reply == b"+PONG\r\n"
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.kill();
    }
}
