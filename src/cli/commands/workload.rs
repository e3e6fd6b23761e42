//! `grace workload check|init|schema`, and reading the workload a load
//! command is given: a workload file is checked whole before any load (every
//! mistake exit 2, with its file, line and column).

use crate::cli::exit::CommandError;
use grace_loadtests::workload::{self, Workload, WorkloadSource};
use std::path::Path;
use std::process::ExitCode;

/// Reads and compiles the workload at `path`, as the coordinator sees it
/// (its environment must hold every variable the workload names).
pub fn load(path: &Path) -> Result<(WorkloadSource, Workload), CommandError> {
    compile(WorkloadSource::read(path).map_err(|e| CommandError::Usage(e.to_string()))?)
}

/// Compiles `source` against this process's environment.
fn compile(source: WorkloadSource) -> Result<(WorkloadSource, Workload), CommandError> {
    let compiled = workload::compile(&source, &|name| std::env::var_os(name).is_some())
        .map_err(|e| CommandError::Usage(e.to_string()))?;
    Ok((source, compiled))
}

/// A workload built into `grace`, compiled.
pub fn bundled(name: &str) -> Result<(WorkloadSource, Workload), CommandError> {
    let source = WorkloadSource::bundled(name).expect("the bundled workloads are named in the code");
    compile(source)
}

/// `grace workload check FILE`: exit 0 with what it holds, or exit 2 naming
/// the first mistake.
pub fn check(file: &Path) -> Result<ExitCode, CommandError> {
    let (_, compiled) = load(file)?;
    let steps: usize = compiled.scenarios.iter().map(|s| s.steps.len()).sum();
    crate::say!(
        "{}: {} scenarios, {steps} steps, {} proofs, {} feeders",
        file.display(),
        compiled.scenarios.len(),
        compiled.proofs.len(),
        compiled.feeders.len()
    );
    Ok(ExitCode::SUCCESS)
}

/// `grace workload init`: a commented example to start from.
pub fn init() -> Result<ExitCode, CommandError> {
    crate::console::print(workload::EXAMPLE);
    Ok(ExitCode::SUCCESS)
}

/// `grace workload schema`: the file's JSON Schema, for editors.
pub fn schema() -> Result<ExitCode, CommandError> {
    crate::say!("{}", serde_json::to_string_pretty(&workload::schema()).expect("schemas serialize"));
    Ok(ExitCode::SUCCESS)
}
