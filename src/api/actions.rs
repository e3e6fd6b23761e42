//! The action pipeline's bodies: reporting errors, contracts with what they
//! produced, approvals and their decisions.

use crate::specification::{ApprovalStatus, ConfidencePath, ContractStatus, Decision, Severity, SnapshotStatus, Tier};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::ToSchema;
use uuid::Uuid;

/// Set on a response that replays an earlier request with the same key.
pub const REPLAYED_HEADER: &str = "idempotent-replayed";

#[derive(Debug, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ErrorReportBody {
    pub mission_id: Uuid,
    /// A snake_case error type; unknown types escalate to tier 3.
    #[schema(pattern = r"^[a-z][a-z0-9_]{0,62}$")]
    pub error_type: String,
    #[schema(min_length = 1, max_length = 4000, pattern = r"^[^\u0000]*\S[^\u0000]*$")]
    pub message: String,
    pub severity: Severity,
    /// The detector's confidence, 0 to 1.
    #[schema(minimum = 0.0, maximum = 1.0)]
    pub confidence: f64,
    #[schema(pattern = r"^[!-~]{1,200}$")]
    pub idempotency_key: String,
}

/// The answer to an error report: the contract it produced (or had produced,
/// for a retried key) and where it stands.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ContractReceipt {
    pub contract_id: Uuid,
    pub mission_id: Uuid,
    #[schema(value_type = i16, minimum = 1, maximum = 3)]
    pub tier: Tier,
    pub confidence_path: ConfidencePath,
    pub status: ContractStatus,
    pub escalation_reason: Option<String>,
    pub approval_id: Option<Uuid>,
}

#[derive(Debug, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DecisionBody {
    pub decision: Decision,
    #[schema(min_length = 1, max_length = 2000, pattern = r"^[^\u0000]*\S[^\u0000]*$")]
    pub reason: Option<String>,
}

/// A contract's state after an approval decision.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct DecisionOutcome {
    pub approval_id: Uuid,
    pub contract_id: Uuid,
    pub decision: Decision,
    pub contract_status: ContractStatus,
    /// The manual-remediation task a rejection opens.
    pub fallback_task_id: Option<Uuid>,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct ContractDetail {
    pub id: Uuid,
    pub mission_id: Uuid,
    pub error_type: String,
    pub error_message: String,
    pub severity: String,
    pub action_type: String,
    #[schema(value_type = i16, minimum = 1, maximum = 3)]
    pub policy_tier: Tier,
    #[schema(value_type = i16, minimum = 1, maximum = 3)]
    pub tier: Tier,
    pub confidence: f64,
    pub confidence_path: ConfidencePath,
    pub escalation_reason: Option<String>,
    #[schema(value_type = Object)]
    pub expected_effect: Value,
    #[schema(value_type = Object)]
    pub baseline_state: Value,
    pub status: ContractStatus,
    #[schema(value_type = Option<Object>)]
    pub verification_result: Option<Value>,
    pub contract_digest: String,
    pub created_at: DateTime<Utc>,
    pub decided_at: Option<DateTime<Utc>>,
    pub executed_at: Option<DateTime<Utc>>,
    pub verified_at: Option<DateTime<Utc>>,
    pub snapshot: Option<Snapshot>,
    pub approval: Option<Approval>,
    pub benchmarks: Vec<Benchmark>,
    pub events: Vec<ContractEvent>,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct Snapshot {
    pub id: Uuid,
    #[schema(value_type = Object)]
    pub state: Value,
    pub manifest_hash: String,
    pub status: SnapshotStatus,
    pub restored_at: Option<DateTime<Utc>>,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Approval {
    pub id: Uuid,
    pub contract_id: Uuid,
    pub mission_id: Uuid,
    #[schema(value_type = i16, minimum = 1, maximum = 3)]
    pub tier: Tier,
    pub status: ApprovalStatus,
    pub requested_by: String,
    pub decided_by: Option<String>,
    pub reason: Option<String>,
    pub requested_at: DateTime<Utc>,
    pub decided_at: Option<DateTime<Utc>>,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct Benchmark {
    pub id: Uuid,
    pub kind: String,
    #[schema(value_type = Object)]
    pub metrics: Value,
    pub passed: bool,
    pub drift_detected: bool,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct ContractEvent {
    pub id: i64,
    pub event_type: String,
    /// Null until the sequencer has chained the event's log entry.
    pub log_seq: Option<i64>,
    #[schema(value_type = Object)]
    pub payload: Value,
    pub created_at: DateTime<Utc>,
}
