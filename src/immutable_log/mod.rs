//! The hash-chained immutable log: appending an entry and proving the chain.
//!
//! Writers link the entries they append ([`append`]: seq, prev_hash and
//! entry_hash computed here, a batch per statement), and Postgres refuses any
//! statement whose entries do not chain (migration V18; the canonical encoding
//! is the SQL function `grace_log_entry_hash`, and no entry is ever changed
//! again, V2). Proving the chain streams the entries out and recomputes every
//! hash in Rust ([`chain`]), from where the last proof ended ([`checkpoint`],
//! and this machine's [`anchors`]), in parallel ranges when there is much to
//! prove ([`proof`]).

pub mod anchors;
mod append;
pub mod chain;
pub mod checkpoint;
pub mod proof;

pub use append::{append, append_all, ChainLinker, Link, LogEntry, CHAIN_LOCK};
pub use chain::verify_range;
pub use proof::{
    prove, prove_database, ChainProof, ChainReader, ChainSettings, ProofError, ProofOptions, ProofStart, SpotCheck,
    DEFAULT_SAMPLE,
};

use serde::{Deserialize, Serialize};

/// How many chain problems a verification lists; the count covers all of them.
const MAX_LISTED_BREAKS: usize = 10;

/// One place where the chain does not hold.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChainBreak {
    pub seq: i64,
    pub problem: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ChainVerdict {
    pub entries: i64,
    pub broken: i64,
    /// The first breaks, in seq order.
    pub breaks: Vec<ChainBreak>,
}

impl ChainVerdict {
    pub fn holds(&self) -> bool {
        self.broken == 0
    }
}
