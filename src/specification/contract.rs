//! The contract digest: what pins a contract's terms between the moment it is
//! written and the moment it executes. The backend records it at creation and
//! recomputes it before executing; C4 recomputes it after the fact, so an
//! approved contract that was rebuilt or edited shows.

use serde_json::{json, Value};
use sha2::{Digest, Sha256};

/// SHA-256 (hex) of the contract's terms in canonical JSON: serde_json writes
/// object keys sorted and no whitespace, so equal terms give equal digests.
pub fn contract_digest(
    error_type: &str,
    action_type: &str,
    tier: i16,
    expected_effect: &Value,
    baseline: &Value,
) -> String {
    let terms = json!({
        "error_type": error_type,
        "action_type": action_type,
        "tier": tier,
        "expected_effect": expected_effect,
        "baseline_state": baseline,
    });
    hex::encode(Sha256::digest(terms.to_string().as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_term_changes_the_digest_and_key_order_does_not() {
        let effect = json!({ "level": 15, "revision": 1 });
        let baseline = json!({ "level": 10, "revision": 0 });
        let digest = contract_digest("timeout", "raise_timeout", 1, &effect, &baseline);
        assert_eq!(digest.len(), 64);
        let reordered = serde_json::from_str::<Value>(r#"{"revision": 1, "level": 15}"#).unwrap();
        assert_eq!(contract_digest("timeout", "raise_timeout", 1, &reordered, &baseline), digest);
        for changed in [
            contract_digest("timeouts", "raise_timeout", 1, &effect, &baseline),
            contract_digest("timeout", "raise_timeouts", 1, &effect, &baseline),
            contract_digest("timeout", "raise_timeout", 2, &effect, &baseline),
            contract_digest("timeout", "raise_timeout", 1, &json!({ "level": 16, "revision": 1 }), &baseline),
            contract_digest("timeout", "raise_timeout", 1, &effect, &json!({ "level": 11, "revision": 0 })),
        ] {
            assert_ne!(changed, digest);
        }
    }
}
