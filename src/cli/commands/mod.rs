//! One small function per command: parse its arguments into domain types,
//! call the library, print what it returns, and say how it ended.

pub mod load;
pub mod report;
pub mod scenario;
pub mod service;
pub mod workload;

use crate::cli::exit::CommandError;
use std::path::Path;

/// Makes sure results can be written into `dir` (the `--out` of a command)
/// before any work is done: found out after a ten-minute run, an unwritable
/// directory would lose the run. Creates it when missing.
fn ensure_writable(dir: &Path) -> Result<(), CommandError> {
    std::fs::create_dir_all(dir)
        .and_then(|()| tempfile::NamedTempFile::new_in(dir).map(drop))
        .map_err(|e| CommandError::Usage(format!("cannot write into --out {}: {e}", dir.display())))
}
