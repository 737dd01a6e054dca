//! Azurite's blob service (the Azure Storage emulator, from npm) on a free
//! loopback port, stopped when dropped: where the Event Hubs SDKs keep
//! their checkpoints in the tests. `tests/install-deps.sh` installs it
//! under the target directory; `HERMES_AZURITE_BLOB` names another
//! `azurite-blob`.

use std::net::{Ipv4Addr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use tempfile::TempDir;

/// How long a starting Azurite may take to accept connections.
const START_TIMEOUT: Duration = Duration::from_secs(30);

/// The storage account every Azurite has, and its published key.
const ACCOUNT: &str = "devstoreaccount1";
const ACCOUNT_KEY: &str =
    "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==";

/// An `azurite-blob` child process.
pub struct AzuriteBlob {
    child: Child,
    port: u16,
    _dir: TempDir,
}

/// Where `azurite-blob` is.
fn program() -> PathBuf {
    if let Some(path) = std::env::var_os("HERMES_AZURITE_BLOB") {
        return path.into();
    }
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../target")));
    target.join("node/node_modules/.bin/azurite-blob")
}

impl AzuriteBlob {
    /// Starts it, its data in a temporary directory. Panics if it cannot
    /// (for tests), saying why.
    pub fn start() -> AzuriteBlob {
        AzuriteBlob::try_start().unwrap_or_else(|e| panic!("{e}"))
    }

    /// Starts it, or says why it cannot.
    pub fn try_start() -> std::io::Result<AzuriteBlob> {
        let port = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))?
            .local_addr()?
            .port();
        let dir = tempfile::tempdir()?;
        let program = program();
        let child = Command::new(&program)
            .args(["--blobHost", "127.0.0.1", "--blobPort", &port.to_string()])
            .arg("--location")
            .arg(dir.path())
            .args(["--disableTelemetry", "--silent", "--skipApiVersionCheck"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| {
                std::io::Error::new(
                    e.kind(),
                    format!(
                        "cannot start {} ({e}): run tests/install-deps.sh",
                        program.display()
                    ),
                )
            })?;
        let mut server = AzuriteBlob {
            child,
            port,
            _dir: dir,
        };
        let started = Instant::now();
        while TcpStream::connect((Ipv4Addr::LOCALHOST, port)).is_err() {
            if let Ok(Some(status)) = server.child.try_wait() {
                return Err(std::io::Error::other(format!(
                    "azurite-blob exited at start: {status}"
                )));
            }
            if started.elapsed() > START_TIMEOUT {
                server.stop();
                return Err(std::io::Error::other(format!(
                    "azurite-blob did not listen on port {port}"
                )));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        Ok(server)
    }

    /// The connection string the Azure SDKs take.
    pub fn connection_string(&self) -> String {
        format!(
            "DefaultEndpointsProtocol=http;AccountName={ACCOUNT};AccountKey={ACCOUNT_KEY};\
             BlobEndpoint=http://127.0.0.1:{}/{ACCOUNT};",
            self.port
        )
    }

    fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for AzuriteBlob {
    fn drop(&mut self) {
        self.stop();
    }
}
