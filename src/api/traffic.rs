//! The everyday traffic's bodies: chat and tasks.

use crate::specification::TaskStatus;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::ToSchema;
use uuid::Uuid;

#[derive(Debug, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ChatBody {
    pub mission_id: Uuid,
    #[schema(min_length = 1, max_length = 200, pattern = r"^[^\u0000]*\S[^\u0000]*$")]
    pub session_id: String,
    #[schema(min_length = 1, max_length = 4000, pattern = r"^[^\u0000]*\S[^\u0000]*$")]
    pub message: String,
    #[schema(pattern = r"^[!-~]{1,200}$")]
    pub idempotency_key: String,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct ChatReply {
    pub message_id: Uuid,
    pub reply_id: Uuid,
    pub reply: String,
}

#[derive(Debug, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewTask {
    pub mission_id: Uuid,
    #[schema(min_length = 1, max_length = 500, pattern = r"^[^\u0000]*\S[^\u0000]*$")]
    pub title: String,
    /// Free-form JSON; no string or key in it may hold the NUL character.
    /// Absent or null is `{}`.
    #[serde(default)]
    #[schema(value_type = Option<Object>)]
    pub payload: Value,
    #[schema(pattern = r"^[!-~]{1,200}$")]
    pub idempotency_key: String,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct Task {
    pub id: Uuid,
    pub mission_id: Uuid,
    pub contract_id: Option<Uuid>,
    pub kind: String,
    pub title: String,
    #[schema(value_type = Object)]
    pub payload: Value,
    pub status: TaskStatus,
    #[schema(value_type = Option<Object>)]
    pub result: Option<Value>,
    pub attempts: i32,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub completed_at: Option<DateTime<Utc>>,
}

#[derive(Debug, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TaskChange {
    #[schema(min_length = 1, max_length = 500, pattern = r"^[^\u0000]*\S[^\u0000]*$")]
    pub title: Option<String>,
    #[schema(value_type = Option<Object>)]
    pub payload: Option<Value>,
    /// Only `cancelled` may be set, and only on a queued task.
    #[schema(schema_with = super::only_cancelled)]
    pub status: Option<TaskStatus>,
}
