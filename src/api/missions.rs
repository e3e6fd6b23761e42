//! Missions: what every contract, chat and task belongs to.

use crate::specification::{ConfidencePath, ContractStatus, Tier};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

#[derive(Debug, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewMission {
    /// Optional: the client's id for the mission, so a retry finds it.
    pub id: Option<Uuid>,
    #[schema(min_length = 1, max_length = 200, pattern = r"^[^\u0000]*\S[^\u0000]*$")]
    pub name: String,
    #[serde(default)]
    #[schema(max_length = 4000, pattern = r"^[^\u0000]*$")]
    pub goal: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Mission {
    pub id: Uuid,
    pub name: String,
    pub goal: String,
    pub status: String,
    pub total_actions: i32,
    pub completed_actions: i32,
    /// Failed and rejected actions.
    pub failed_actions: i32,
    pub rolled_back_actions: i32,
    pub progress_ratio: f64,
    pub confidence: Option<f64>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ContractSummary {
    pub id: Uuid,
    pub error_type: String,
    pub action_type: String,
    #[schema(value_type = i16, minimum = 1, maximum = 3)]
    pub tier: Tier,
    pub confidence: f64,
    pub confidence_path: ConfidencePath,
    pub status: ContractStatus,
    pub created_at: DateTime<Utc>,
}
