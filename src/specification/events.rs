//! Events: what every state change announces, by name, and the exact sequence
//! of events a contract must have for its tier and final status (C2). The
//! backend records them; `verify` compares what was recorded with this.

use super::policy::Tier;
use super::status::ContractStatus;

/// Every kind of event the backend emits. The name's prefix is its subsystem
/// (the log entry's, see the sequencer).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EventKind {
    ContractCreated,
    SnapshotTaken,
    ApprovalRequested,
    ApprovalGranted,
    ApprovalRejected,
    ActionExecuting,
    VerificationPassed,
    VerificationFailed,
    VerificationViolated,
    RollbackCompleted,
    FallbackOpened,
    ChatExchanged,
    TaskSubmitted,
    TaskUpdated,
    TaskCompleted,
    MeshPing,
}

impl EventKind {
    pub fn name(self) -> &'static str {
        match self {
            Self::ContractCreated => "agentic.contract_created",
            Self::SnapshotTaken => "agentic.snapshot_taken",
            Self::ApprovalRequested => "agentic.approval_requested",
            Self::ApprovalGranted => "agentic.approval_granted",
            Self::ApprovalRejected => "agentic.approval_rejected",
            Self::ActionExecuting => "agentic.action_executing",
            Self::VerificationPassed => "agentic.verification_passed",
            Self::VerificationFailed => "agentic.verification_failed",
            Self::VerificationViolated => "agentic.verification_violated",
            Self::RollbackCompleted => "agentic.rollback_completed",
            Self::FallbackOpened => "agentic.fallback_opened",
            Self::ChatExchanged => "chat.exchanged",
            Self::TaskSubmitted => "task.submitted",
            Self::TaskUpdated => "task.updated",
            Self::TaskCompleted => "task.completed",
            Self::MeshPing => "mesh.ping",
        }
    }

    /// The events that record an approval's decision (C4).
    pub const DECISIONS: [EventKind; 2] = [Self::ApprovalGranted, Self::ApprovalRejected];
}

/// The events a contract must have, in order, for its final status; `None`
/// when a contract of this tier may not rest in that status at all.
pub fn required_events(tier: Tier, status: ContractStatus) -> Option<Vec<EventKind>> {
    use ContractStatus as S;
    use EventKind::*;
    let held = [ContractCreated, SnapshotTaken, ApprovalRequested];
    let events: Vec<EventKind> = match (tier, status) {
        (Tier::Auto, S::Verified) => vec![ContractCreated, ActionExecuting, VerificationPassed],
        (Tier::Auto, S::Failed) => vec![ContractCreated, ActionExecuting, VerificationFailed],
        (Tier::Auto, _) => return None,
        (_, S::AwaitingApproval) => held.to_vec(),
        (_, S::Verified) => [&held[..], &[ApprovalGranted, ActionExecuting, VerificationPassed]].concat(),
        (_, S::RolledBack) => {
            [&held[..], &[ApprovalGranted, ActionExecuting, VerificationViolated, RollbackCompleted]].concat()
        }
        (_, S::Rejected) => [&held[..], &[ApprovalRejected, FallbackOpened]].concat(),
        (_, S::Planned | S::Executing | S::Violated | S::Failed) => return None,
    };
    Some(events)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tier_1_executes_at_once_and_higher_tiers_wait_for_a_decision() {
        let names = |tier, status| -> Option<Vec<&str>> {
            required_events(tier, status).map(|events| events.into_iter().map(EventKind::name).collect())
        };
        assert_eq!(
            names(Tier::Auto, ContractStatus::Verified).unwrap(),
            ["agentic.contract_created", "agentic.action_executing", "agentic.verification_passed"]
        );
        assert_eq!(names(Tier::Auto, ContractStatus::AwaitingApproval), None, "tier 1 never waits");
        assert_eq!(names(Tier::Approver, ContractStatus::Failed), None, "tier 2+ rolls back instead");
        let rolled_back = names(Tier::Governance, ContractStatus::RolledBack).unwrap();
        assert_eq!(rolled_back.first(), Some(&"agentic.contract_created"));
        assert_eq!(rolled_back.last(), Some(&"agentic.rollback_completed"));
        assert!(rolled_back.contains(&"agentic.approval_granted"));
        let rejected = names(Tier::Approver, ContractStatus::Rejected).unwrap();
        assert_eq!(&rejected[3..], ["agentic.approval_rejected", "agentic.fallback_opened"]);
        for status in ContractStatus::ALL {
            assert!(
                required_events(Tier::Auto, *status).is_none() || status.counter().is_some(),
                "tier 1 only rests in a final status"
            );
        }
    }
}
