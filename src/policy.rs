//! The autonomy policy: which tier each known error type gets, and the action
//! taken for it. This is DESIGN.md's tier table as data; `grace bootstrap` seeds
//! it into `tier_policy`, where operators can read it next to the contracts it
//! produced.

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
