//! Shared access signatures, as Event Hubs reads them: the one place their
//! signature is computed, for the tokens the capability signs and for the
//! endpoint that checks them (`hermes-event-hubs`).
//!
//! A token is `SharedAccessSignature sr=<resource>&sig=<signature>&se=<expiry>&skn=<policy>`,
//! every value URL-encoded. The signature is the base64 of an HMAC-SHA256,
//! keyed with the key's UTF-8 bytes, of the resource as encoded in the
//! token, a newline, and the expiry (Unix seconds).

use base64::Engine as _;
use hmac::{Hmac, KeyInit, Mac};
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};
use sha2::Sha256;

/// What a token's values keep as they are: letters, digits and `-_.~`, as
/// the SDKs' `quote_plus` does.
const KEPT: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~');

/// The HMAC of a token whose resource is `sr` (as encoded in the token)
/// and whose expiry is `se`, keyed with `key`: finalize it to sign, or
/// verify a signature against it.
pub fn mac(key: &str, sr: &str, se: &str) -> Hmac<Sha256> {
    // An HMAC takes a key of any length.
    let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(key.as_bytes())
        .unwrap_or_else(|_| unreachable!("HMAC-SHA256 takes keys of any length"));
    mac.update(sr.as_bytes());
    mac.update(b"\n");
    mac.update(se.as_bytes());
    mac
}

/// A token for `resource` (such as `sb://host/hub`), signed with the
/// policy `key_name`'s `key`, valid until `expiry` (Unix seconds).
pub fn token(resource: &str, key_name: &str, key: &str, expiry: u64) -> String {
    let sr = utf8_percent_encode(resource, KEPT).to_string();
    let se = expiry.to_string();
    let signature = mac(key, &sr, &se).finalize().into_bytes();
    let sig = base64::engine::general_purpose::STANDARD.encode(signature);
    format!(
        "SharedAccessSignature sr={sr}&sig={}&se={se}&skn={}",
        utf8_percent_encode(&sig, KEPT),
        utf8_percent_encode(key_name, KEPT)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Made by the Python SDK itself (azure-eventhub 5.15.1,
    /// `_pyamqp.utils.generate_sas_token("sb://127.0.0.1:5672/hub1",
    /// "sender", "c2VjcmV0LWtleQ==", 2000000000)`).
    #[test]
    fn a_token_is_the_one_the_python_sdk_signs() {
        assert_eq!(
            token(
                "sb://127.0.0.1:5672/hub1",
                "sender",
                "c2VjcmV0LWtleQ==",
                2_000_000_000
            ),
            "SharedAccessSignature sr=sb%3A%2F%2F127.0.0.1%3A5672%2Fhub1\
             &sig=Dq9dVmi1m4owclQT7y2lcV4C47t0kPOMKlQiUDm919A%3D&se=2000000000&skn=sender"
        );
    }
}
