//! The tier policy as this server last read it.
//!
//! Every error report is decided by its error type's rule in `tier_policy`,
//! and reading the rule was a round trip of its own per report — half of a
//! tier-1 contract's. Rules change rarely (`grace bootstrap` seeds them, an
//! operator may tune one in SQL), so the server keeps them, and the statement
//! that writes a contract checks that the rule it was decided by is still the
//! table's (`pipeline`'s CONTRACT_CTES): if not, it writes nothing, the server
//! reads the rules again and decides again. No contract is ever written under
//! a rule the table no longer holds.

use super::error::ApiError;
use crate::specification::Tier;
use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use tokio_postgres::GenericClient;

/// An error type's rule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rule {
    pub tier: Tier,
    pub action_type: String,
}

/// The rules, by error type.
pub struct TierPolicy {
    rules: RwLock<Arc<HashMap<String, Rule>>>,
}

impl TierPolicy {
    pub async fn load(db: &impl GenericClient) -> Result<Self, ApiError> {
        Ok(Self { rules: RwLock::new(Arc::new(read(db).await?)) })
    }

    /// The rule for `error_type`, if the policy has one.
    pub fn rule(&self, error_type: &str) -> Option<Rule> {
        self.rules.read().expect("the rules are only ever replaced whole").get(error_type).cloned()
    }

    /// Reads the rules again (a contract's statement found one changed).
    pub async fn reload(&self, db: &impl GenericClient) -> Result<(), ApiError> {
        let rules = Arc::new(read(db).await?);
        *self.rules.write().expect("the rules are only ever replaced whole") = rules;
        Ok(())
    }
}

async fn read(db: &impl GenericClient) -> Result<HashMap<String, Rule>, ApiError> {
    let rows = db.query("SELECT error_type, tier, action_type FROM tier_policy", &[]).await?;
    rows.iter()
        .map(|row| -> Result<(String, Rule), ApiError> {
            let rule = Rule { tier: row.try_get("tier")?, action_type: row.try_get("action_type")? };
            Ok((row.try_get("error_type")?, rule))
        })
        .collect()
}
