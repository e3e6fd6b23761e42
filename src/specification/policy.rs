//! The autonomy policy: which tier each known error type gets and the action
//! taken for it (docs/design.md's tier table as data; `grace bootstrap` seeds it
//! into `tier_policy`, where operators can read it next to the contracts it
//! produced), how the detector's confidence moves that tier, and which
//! benchmark verifies the action.

use super::status::text_enum;
use std::fmt;

/// How much autonomy an action gets.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Tier {
    /// Executes automatically.
    Auto = 1,
    /// An approver must approve before execution.
    Approver = 2,
    /// Governance must approve before execution.
    Governance = 3,
}

impl Tier {
    pub fn level(self) -> i16 {
        self as i16
    }

    pub fn from_level(level: i16) -> Option<Self> {
        match level {
            1 => Some(Self::Auto),
            2 => Some(Self::Approver),
            3 => Some(Self::Governance),
            _ => None,
        }
    }

    /// One step up; governance is the top.
    pub fn escalated(self) -> Self {
        match self {
            Self::Auto => Self::Approver,
            Self::Approver | Self::Governance => Self::Governance,
        }
    }
}

/// Sent and received as its level, a number from 1 to 3.
impl serde::Serialize for Tier {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_i16(self.level())
    }
}

impl<'de> serde::Deserialize<'de> for Tier {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let level = i16::deserialize(deserializer)?;
        Tier::from_level(level).ok_or_else(|| serde::de::Error::custom(format!("tier {level} is not 1, 2 or 3")))
    }
}

impl fmt::Display for Tier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "tier {}", self.level())
    }
}

/// One row of the policy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PolicyRule {
    pub error_type: &'static str,
    pub tier: Tier,
    pub action_type: &'static str,
    pub description: &'static str,
}

/// The policy Grace ships with. Error types not listed here escalate to
/// `Tier::Governance`, and the contract records that they were unknown.
pub const DEFAULT_POLICY: &[PolicyRule] = &[
    PolicyRule {
        error_type: "database_locked",
        tier: Tier::Auto,
        action_type: "release_stale_locks",
        description: "terminate the idle session holding the lock",
    },
    PolicyRule {
        error_type: "validation_error",
        tier: Tier::Auto,
        action_type: "quarantine_invalid_input",
        description: "move the rejected input aside and continue",
    },
    PolicyRule {
        error_type: "timeout",
        tier: Tier::Auto,
        action_type: "raise_timeout",
        description: "raise the timeout of the slow call within its bound",
    },
    PolicyRule {
        error_type: "permission_denied",
        tier: Tier::Approver,
        action_type: "grant_scoped_permission",
        description: "grant the narrowest permission that unblocks the caller",
    },
    PolicyRule {
        error_type: "resource_exhausted",
        tier: Tier::Approver,
        action_type: "scale_resource_pool",
        description: "grow the exhausted pool within its budget",
    },
    PolicyRule {
        error_type: "dependency_unavailable",
        tier: Tier::Governance,
        action_type: "fail_over_dependency",
        description: "switch to the standby of the failed dependency",
    },
];

/// Error types the policy does not know get this action: a human looks.
pub const ESCALATION_ACTION: &str = "escalate_to_operator";

text_enum! {
    /// How sure the detector was, as a band: high (≥ 0.8) keeps the tier;
    /// medium (0.5–0.8) keeps it but verifies with the regression benchmark;
    /// low (< 0.5) escalates one tier.
    ConfidencePath, "confidence path" {
        High = "high",
        Medium = "medium",
        Low = "low",
    }
}

impl ConfidencePath {
    /// The band of a confidence in [0, 1] (callers parse the range at the edge).
    pub fn of(confidence: f64) -> Self {
        if confidence >= 0.8 {
            Self::High
        } else if confidence >= 0.5 {
            Self::Medium
        } else {
            Self::Low
        }
    }
}

/// What the policy and the confidence path decide for one error.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TierDecision {
    pub policy_tier: Tier,
    pub tier: Tier,
    pub path: ConfidencePath,
    /// Why the action ended above its policy tier, if it did.
    pub escalation_reason: Option<String>,
}

/// Decides the tier: the policy's tier for a known error type (`None` when the
/// type is unknown, which escalates to governance), raised one step on the low
/// confidence path.
pub fn decide_tier(error_type: &str, policy_tier: Option<Tier>, confidence: f64) -> TierDecision {
    let path = ConfidencePath::of(confidence);
    let (base, mut reasons) = match policy_tier {
        Some(tier) => (tier, vec![]),
        None => (Tier::Governance, vec![format!("unknown error type {error_type} escalates to governance")]),
    };
    let tier = if path == ConfidencePath::Low {
        let raised = base.escalated();
        if raised != base {
            reasons.push(format!("low confidence {confidence} escalates {base} to {raised}"));
        }
        raised
    } else {
        base
    };
    TierDecision { policy_tier: base, tier, path, escalation_reason: (!reasons.is_empty()).then(|| reasons.join("; ")) }
}

text_enum! {
    /// The benchmarks an executed action is verified with.
    BenchmarkKind, "benchmark kind" {
        Smoke = "smoke",
        Regression = "regression",
    }
}

impl BenchmarkKind {
    /// Tier 1 on the high path is verified by the smoke benchmark; the medium
    /// path and every approved (tier 2+) action by the regression benchmark.
    pub fn verifying(tier: Tier, path: ConfidencePath) -> Self {
        if tier == Tier::Auto && path != ConfidencePath::Medium {
            Self::Smoke
        } else {
            Self::Regression
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn confidence_paths_have_the_design_boundaries() {
        assert_eq!(ConfidencePath::of(1.0), ConfidencePath::High);
        assert_eq!(ConfidencePath::of(0.8), ConfidencePath::High);
        assert_eq!(ConfidencePath::of(0.79), ConfidencePath::Medium);
        assert_eq!(ConfidencePath::of(0.5), ConfidencePath::Medium);
        assert_eq!(ConfidencePath::of(0.49), ConfidencePath::Low);
        assert_eq!(ConfidencePath::of(0.0), ConfidencePath::Low);
    }

    #[test]
    fn high_and_medium_keep_the_tier_low_escalates_one() {
        assert_eq!(decide_tier("timeout", Some(Tier::Auto), 0.9).tier, Tier::Auto);
        assert_eq!(decide_tier("timeout", Some(Tier::Auto), 0.6).tier, Tier::Auto);
        let low = decide_tier("timeout", Some(Tier::Auto), 0.3);
        assert_eq!((low.policy_tier, low.tier), (Tier::Auto, Tier::Approver));
        assert!(low.escalation_reason.unwrap().contains("low confidence"));
        assert_eq!(decide_tier("permission_denied", Some(Tier::Approver), 0.2).tier, Tier::Governance);
        let top = decide_tier("dependency_unavailable", Some(Tier::Governance), 0.1);
        assert_eq!(top.tier, Tier::Governance);
        assert_eq!(top.escalation_reason, None, "nothing above governance to escalate to");
    }

    #[test]
    fn unknown_error_types_escalate_to_governance_and_say_so() {
        let unknown = decide_tier("disk_on_fire", None, 0.95);
        assert_eq!(unknown.tier, Tier::Governance);
        assert!(unknown.escalation_reason.unwrap().contains("unknown error type disk_on_fire"));
    }

    #[test]
    fn the_medium_path_and_approved_actions_run_the_regression_benchmark() {
        assert_eq!(BenchmarkKind::verifying(Tier::Auto, ConfidencePath::High), BenchmarkKind::Smoke);
        assert_eq!(BenchmarkKind::verifying(Tier::Auto, ConfidencePath::Medium), BenchmarkKind::Regression);
        for tier in [Tier::Approver, Tier::Governance] {
            for path in [ConfidencePath::High, ConfidencePath::Medium, ConfidencePath::Low] {
                assert_eq!(BenchmarkKind::verifying(tier, path), BenchmarkKind::Regression);
            }
        }
    }
}
