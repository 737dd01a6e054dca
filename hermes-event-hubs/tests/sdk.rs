//! The endpoint driven by the real Event Hubs SDK for Python
//! (`azure-eventhub` 5.15.1, in the virtual environment
//! `tests/install-deps.sh` makes), on a free loopback port.

use std::path::{Path, PathBuf};
use std::process::Command;

use hermes_event_hubs::endpoint::{Config, Endpoint, Hub, TlsFiles};
use hermes_event_hubs::sas::{Policies, Policy, Right};

/// The Python with the SDK.
fn python() -> PathBuf {
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

const KEY: &str = "c2VuZC1rZXk=";

/// An endpoint serving `hub1` (4 partitions) to the policies `both`
/// (send and listen), `listen` and `manage`, all with [`KEY`]; its port.
async fn endpoint() -> u16 {
    endpoint_with(None).await
}

async fn endpoint_with(tls: Option<TlsFiles>) -> u16 {
    let policy = |rights: &[Right]| Policy {
        key: KEY.to_owned(),
        rights: rights.to_vec(),
    };
    let config = Config {
        hubs: vec![Hub {
            name: "hub1".into(),
            partitions: 4,
            created_at: 1_700_000_000_000,
        }],
        policies: Policies(
            [
                ("both".to_owned(), policy(&[Right::Send, Right::Listen])),
                ("listen".to_owned(), policy(&[Right::Listen])),
                ("manage".to_owned(), policy(&[Right::Manage])),
            ]
            .into(),
        ),
        tls,
    };
    let endpoint = Endpoint::bind("127.0.0.1:0".parse().expect("address"), config)
        .await
        .expect("bind");
    let port = endpoint.local_addr().expect("address").port();
    tokio::spawn(endpoint.run());
    port
}

fn connection_string(port: u16, policy: &str, key: &str) -> String {
    format!(
        "Endpoint=sb://127.0.0.1:{port};SharedAccessKeyName={policy};SharedAccessKey={key};\
         UseDevelopmentEmulator=true"
    )
}

/// Runs one of the SDK scripts; its exit status and its JSON answer.
async fn sdk(script: &str, args: &[&str]) -> (i32, serde_json::Value) {
    let script = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/sdk")
        .join(script);
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

#[tokio::test(flavor = "multi_thread")]
async fn the_sdk_reads_a_hubs_properties_with_any_policy_that_may() {
    let port = endpoint().await;
    for policy in ["both", "listen", "manage"] {
        let (status, answer) = sdk(
            "management.py",
            &[&connection_string(port, policy, KEY), "hub1"],
        )
        .await;
        assert_eq!(status, 0, "{policy}: {answer}");
        assert_eq!(
            answer,
            serde_json::json!({
                "name": "hub1",
                "created_at": "2023-11-14T22:13:20+00:00",
                "partition_ids": ["0", "1", "2", "3"],
                "ids": ["0", "1", "2", "3"],
            }),
            "{policy}"
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_wrong_key_or_an_unknown_policy_is_refused_as_the_service_refuses_it() {
    let port = endpoint().await;
    for (policy, key, says) in [
        (
            "both",
            "d3Jvbmc=",
            "InvalidSignature: the token has an invalid signature",
        ),
        (
            "nobody",
            KEY,
            "InvalidSignature: no shared access policy named 'nobody'",
        ),
    ] {
        let (status, answer) = sdk(
            "management.py",
            &[&connection_string(port, policy, key), "hub1"],
        )
        .await;
        assert_eq!(status, 3, "{answer}");
        assert_eq!(answer["error"], "AuthenticationError", "{answer}");
        let message = answer["message"].as_str().unwrap_or_default();
        assert!(
            message.contains("Status code: 401") && message.contains(says),
            "{message}"
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn with_tls_the_sdk_connects_as_to_the_service() {
    let dir = tempfile::tempdir().expect("tempdir");
    let certified =
        rcgen::generate_simple_self_signed(vec!["127.0.0.1".to_owned()]).expect("a certificate");
    let (certificate, key) = (dir.path().join("cert.pem"), dir.path().join("key.pem"));
    std::fs::write(&certificate, certified.cert.pem()).expect("write");
    std::fs::write(&key, certified.signing_key.serialize_pem()).expect("write");
    let port = endpoint_with(Some(TlsFiles {
        certificate: certificate.clone(),
        key,
    }))
    .await;
    // No `UseDevelopmentEmulator`: the SDK speaks TLS, and checks the
    // endpoint's certificate.
    let connection =
        format!("Endpoint=sb://127.0.0.1:{port};SharedAccessKeyName=both;SharedAccessKey={KEY}");
    let endpoint = format!("sb://127.0.0.1:{port}");
    let ca = certificate.display().to_string();
    let (status, answer) = sdk("management.py", &[&connection, "hub1", &ca, &endpoint]).await;
    assert_eq!(status, 0, "{answer}");
    assert_eq!(answer["ids"], serde_json::json!(["0", "1", "2", "3"]));

    // Plain AMQP to a TLS endpoint: that connection fails, the endpoint
    // serves on.
    let (status, answer) = sdk(
        "management.py",
        &[&connection_string(port, "both", KEY), "hub1"],
    )
    .await;
    assert_eq!(status, 3, "{answer}");
    let (status, _) = sdk("management.py", &[&connection, "hub1", &ca, &endpoint]).await;
    assert_eq!(status, 0);
}

#[tokio::test]
async fn unreadable_tls_files_are_one_clear_error_naming_the_file() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (certificate, key) = (dir.path().join("cert.pem"), dir.path().join("key.pem"));
    std::fs::write(&certificate, "not a certificate").expect("write");
    let config = Config {
        tls: Some(TlsFiles {
            certificate: certificate.clone(),
            key,
        }),
        ..Config::default()
    };
    let error = Endpoint::bind("127.0.0.1:0".parse().expect("address"), config)
        .await
        .err()
        .expect("refused");
    assert!(
        error
            .to_string()
            .starts_with(&certificate.display().to_string()),
        "{error}"
    );
}
