//! Fault injection's bodies (admins only; see `backend::faults`).

use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use utoipa::ToSchema;
use uuid::Uuid;

#[derive(Debug, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct FaultRequest {
    /// The mission the fault applies to; every mission when absent.
    pub mission_id: Option<Uuid>,
    pub kind: FaultKind,
}

/// What an admin can switch on.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize, ToSchema)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum FaultKind {
    SabotageVerification {
        #[schema(minimum = 1, maximum = 1_000_000)]
        count: u32,
    },
    Chaos {
        #[schema(minimum = 0.0, maximum = 1.0)]
        rate: f64,
    },
}

/// The faults in force, as the admin API reports them.
#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
pub struct FaultsView {
    pub enabled: bool,
    /// Remaining sabotaged verifications by mission (`"*"` for any mission).
    pub sabotage: HashMap<String, u32>,
    /// Chaos rate by mission (`"*"` for every request).
    pub chaos: HashMap<String, f64>,
    pub injected_total: u64,
}
