//! Driving an endpoint with the real Event Hubs SDK for Python: the
//! endpoint the SDK tests share, its connection strings, and the scripts
//! under `tests/sdk`. Each test binary uses part of it; `hermes-wasm`'s
//! tests of `serve` include it too.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Command;

use hermes_event_hubs::endpoint::{Config, Endpoint, Hub, TlsFiles};
use hermes_event_hubs::partition::BusTemplate;
use hermes_event_hubs::receivers::Receivers;
use hermes_event_hubs::sas::{Policies, Policy, Right};

/// The Python with the SDK.
pub fn python() -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../target"));
    let python = target.join("python/event-hubs/bin/python");
    assert!(
        python.is_file(),
        "{} is missing: run tests/install-deps.sh",
        python.display()
    );
    python
}

/// The SDK scripts, found from any crate of the workspace that includes
/// this file (`hermes-wasm`'s tests of `serve` do).
const SCRIPTS: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../hermes-event-hubs/tests/sdk"
);

pub const KEY: &str = "c2VuZC1rZXk=";

/// An endpoint serving `hub1` (4 partitions, consumer groups `$Default`
/// and `audit`) to the policies `both` (send and listen), `listen`, `send`
/// and `manage`, all with [`KEY`]; its port.
pub async fn endpoint() -> u16 {
    endpoint_with(None, None).await.port
}

/// A running endpoint.
pub struct Running {
    /// The port it listens on.
    pub port: u16,
    /// Its receivers.
    pub receivers: Receivers,
}

impl Running {
    /// Waits until `count` receivers hold `hub1`'s partition `partition`
    /// in `group`.
    pub async fn wait_for_receivers(&self, group: &str, partition: u32, count: usize) {
        let key = ("hub1".to_owned(), group.to_lowercase(), partition);
        for _ in 0..600 {
            if self.receivers.count(&key) == count {
                return;
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        panic!("{count} receivers never held {key:?}");
    }
}

/// [`endpoint`] with TLS and a bus.
pub async fn endpoint_with(tls: Option<TlsFiles>, bus: Option<BusTemplate>) -> Running {
    let policy = |rights: &[Right]| Policy {
        key: KEY.to_owned(),
        rights: rights.to_vec(),
    };
    let config = Config {
        hubs: vec![Hub {
            name: "hub1".into(),
            partitions: 4,
            created_at: 1_700_000_000_000,
            consumer_groups: vec!["audit".into()],
        }],
        policies: Policies(
            [
                ("both".to_owned(), policy(&[Right::Send, Right::Listen])),
                ("listen".to_owned(), policy(&[Right::Listen])),
                ("send".to_owned(), policy(&[Right::Send])),
                ("manage".to_owned(), policy(&[Right::Manage])),
            ]
            .into(),
        ),
        tls,
        bus,
        ..Config::default()
    };
    let endpoint = Endpoint::bind("127.0.0.1:0".parse().expect("address"), config)
        .await
        .expect("bind");
    let port = endpoint.local_addr().expect("address").port();
    let receivers = endpoint.receivers();
    tokio::spawn(endpoint.run());
    Running { port, receivers }
}

pub fn connection_string(port: u16, policy: &str, key: &str) -> String {
    format!(
        "Endpoint=sb://127.0.0.1:{port};SharedAccessKeyName={policy};SharedAccessKey={key};\
         UseDevelopmentEmulator=true"
    )
}

/// Runs one of the SDK scripts; its exit status and its JSON answer.
pub async fn sdk(script: &str, args: &[&str]) -> (i32, serde_json::Value) {
    let script = Path::new(SCRIPTS).join(script);
    let mut command = Command::new(python());
    command
        .arg(script)
        .args(args)
        .env("PYTHONDONTWRITEBYTECODE", "1");
    let output = tokio::task::spawn_blocking(move || command.output())
        .await
        .expect("joined")
        .expect("python runs");

    let stdout = String::from_utf8_lossy(&output.stdout);
    let answer = stdout.lines().last().unwrap_or_default();
    let answer = serde_json::from_str(answer).unwrap_or_else(|_| {
        panic!(
            "no JSON answer: {stdout}\n{}",
            String::from_utf8_lossy(&output.stderr)
        )
    });
    (output.status.code().unwrap_or(-1), answer)
}
