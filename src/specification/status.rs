//! The states things move through (docs/design.md, "Data model"). Each is an enum
//! spelled once, with the text it is stored and sent as; a status outside
//! these cannot be written, and one read back that is not among them is an
//! error rather than a silent mismatch.

/// A text that names no variant of an enum.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{text:?} is not a valid {what}; expected one of {expected}")]
pub struct UnknownVariant {
    pub what: &'static str,
    pub text: String,
    pub expected: String,
}

/// An enum whose variants are stored and sent as fixed texts.
macro_rules! text_enum {
    ($(#[$meta:meta])* $name:ident, $what:literal { $($(#[$vmeta:meta])* $variant:ident = $text:literal,)+ }) => {
        $(#[$meta])*
        #[derive(
            Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize,
        )]
        pub enum $name {
            $($(#[$vmeta])* #[serde(rename = $text)] $variant,)+
        }

        impl $name {
            pub const ALL: &'static [Self] = &[$(Self::$variant,)+];

            pub fn as_str(self) -> &'static str {
                match self {
                    $(Self::$variant => $text,)+
                }
            }
        }

        impl std::str::FromStr for $name {
            type Err = $crate::specification::status::UnknownVariant;

            fn from_str(text: &str) -> Result<Self, $crate::specification::status::UnknownVariant> {
                Self::ALL.iter().copied().find(|s| s.as_str() == text).ok_or_else(|| $crate::specification::status::UnknownVariant {
                    what: $what,
                    text: text.to_string(),
                    expected: Self::ALL.iter().map(|s| s.as_str()).collect::<Vec<_>>().join(", "),
                })
            }
        }

        // By hand, not derived: utoipa's derive does not see a `serde(rename)`
        // made by this macro and documented the Rust variant names.
        impl utoipa::PartialSchema for $name {
            fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
                utoipa::openapi::schema::ObjectBuilder::new()
                    .schema_type(utoipa::openapi::schema::Type::String)
                    .enum_values(Some(Self::ALL.iter().map(|s| s.as_str())))
                    .into()
            }
        }

        impl utoipa::ToSchema for $name {}

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}

pub(crate) use text_enum;

text_enum! {
    /// Where an action contract stands: planned → awaiting_approval →
    /// executing → verified | violated → rolled_back | failed | rejected.
    ContractStatus, "contract status" {
        Planned = "planned",
        AwaitingApproval = "awaiting_approval",
        Executing = "executing",
        Verified = "verified",
        /// Verification failed on a contract with a snapshot; it is restored next.
        Violated = "violated",
        RolledBack = "rolled_back",
        /// Verification failed with nothing to restore (tier 1).
        Failed = "failed",
        Rejected = "rejected",
    }
}

text_enum! {
    ApprovalStatus, "approval status" {
        Pending = "pending",
        Approved = "approved",
        Rejected = "rejected",
    }
}

text_enum! {
    TaskStatus, "task status" {
        Queued = "queued",
        Running = "running",
        Completed = "completed",
        Failed = "failed",
        Cancelled = "cancelled",
    }
}

text_enum! {
    /// A safe-hold snapshot: kept while its contract may still need it, or
    /// restored after a violation.
    SnapshotStatus, "snapshot status" {
        Active = "active",
        Restored = "restored",
    }
}

text_enum! {
    /// What an approver decides.
    Decision, "decision" {
        Approve = "approve",
        Reject = "reject",
    }
}

text_enum! {
    /// How bad a reported error is, as its reporter judges it.
    Severity, "severity" {
        Low = "low",
        Medium = "medium",
        High = "high",
        Critical = "critical",
    }
}

impl Decision {
    /// The approval's status after this decision.
    pub fn outcome(self) -> ApprovalStatus {
        match self {
            Self::Approve => ApprovalStatus::Approved,
            Self::Reject => ApprovalStatus::Rejected,
        }
    }
}

/// The mission counters a contract's final status moves (C5).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MissionCounter {
    /// `completed_actions`: verified.
    Completed,
    /// `failed_actions`: failed, and rejected.
    Failed,
    /// `rolled_back_actions`.
    RolledBack,
}

impl MissionCounter {
    pub const ALL: [MissionCounter; 3] = [Self::Completed, Self::Failed, Self::RolledBack];

    /// The column of the mission's progress (`mission_progress`) that holds
    /// this count.
    pub fn column(self) -> &'static str {
        match self {
            Self::Completed => "completed_actions",
            Self::Failed => "failed_actions",
            Self::RolledBack => "rolled_back_actions",
        }
    }

    /// The final statuses this counter counts.
    pub fn statuses(self) -> Vec<ContractStatus> {
        ContractStatus::ALL.iter().copied().filter(|s| s.counter() == Some(self)).collect()
    }
}

impl ContractStatus {
    /// The counter this status moves once reached, if any.
    pub fn counter(self) -> Option<MissionCounter> {
        match self {
            Self::Verified => Some(MissionCounter::Completed),
            Self::Failed | Self::Rejected => Some(MissionCounter::Failed),
            Self::RolledBack => Some(MissionCounter::RolledBack),
            Self::Planned | Self::AwaitingApproval | Self::Executing | Self::Violated => None,
        }
    }

    /// Whether the contract has executed (and so was verified by a benchmark).
    pub fn executed(self) -> bool {
        matches!(self, Self::Verified | Self::Violated | Self::RolledBack | Self::Failed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_round_trip_through_their_text_and_json() {
        for status in ContractStatus::ALL {
            assert_eq!(status.as_str().parse::<ContractStatus>(), Ok(*status));
            assert_eq!(serde_json::to_value(status).unwrap(), status.as_str());
        }
        for status in TaskStatus::ALL {
            assert_eq!(status.as_str().parse::<TaskStatus>(), Ok(*status));
        }
        let unknown = "done".parse::<ApprovalStatus>().unwrap_err();
        assert_eq!(
            unknown.to_string(),
            "\"done\" is not a valid approval status; expected one of pending, approved, rejected"
        );
    }

    #[test]
    fn each_counter_counts_the_final_statuses_of_the_design() {
        assert_eq!(MissionCounter::Completed.statuses(), [ContractStatus::Verified]);
        assert_eq!(MissionCounter::Failed.statuses(), [ContractStatus::Failed, ContractStatus::Rejected]);
        assert_eq!(MissionCounter::RolledBack.statuses(), [ContractStatus::RolledBack]);
        assert_eq!(ContractStatus::AwaitingApproval.counter(), None);
    }

    #[test]
    fn a_decision_sets_the_approval_status() {
        assert_eq!(Decision::Approve.outcome(), ApprovalStatus::Approved);
        assert_eq!(Decision::Reject.outcome(), ApprovalStatus::Rejected);
    }
}
