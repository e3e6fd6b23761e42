//! A plain goose binary over a workload: goose's own CLI, metrics and HTML
//! report (`--report-file report.html`). GRACE_WORKLOAD names the workload
//! file (default: the bundled mission traffic); GRACE_MISSION_ID (for a Grace
//! backend) and GRACE_TOKEN fill `{{mission}}` and `{{token}}`.

use goose::prelude::*;
use grace_loadtests::workload::{self, WorkloadSource};
use grace_loadtests::{LoadTarget, Recorder};
use std::sync::Arc;

/// A usage error: exit 2, as `grace` does.
fn refuse(message: impl std::fmt::Display) -> ! {
    eprintln!("error: {message}");
    std::process::exit(2)
}

#[tokio::main]
async fn main() -> Result<(), GooseError> {
    let source = match std::env::var_os("GRACE_WORKLOAD") {
        Some(path) => WorkloadSource::read(std::path::Path::new(&path)).unwrap_or_else(|e| refuse(e)),
        None => WorkloadSource::bundled("mission").expect("the mission workload is bundled"),
    };
    let compiled = workload::compile(&source, &|name| std::env::var_os(name).is_some()).unwrap_or_else(|e| refuse(e));
    if compiled.feeders.iter().any(|f| f.unique) {
        // Unique rows are dealt by the run's users, which goose's CLI decides after this.
        refuse("a feeder with unique rows needs `grace load`, which knows every user of the run");
    }
    let env = workload::environment(&compiled).unwrap_or_else(|e| refuse(e));
    let mission_id = std::env::var("GRACE_MISSION_ID").unwrap_or_default();
    if compiled.grace_backend && mission_id.is_empty() {
        refuse("set GRACE_MISSION_ID to the mission the load is tagged with");
    }
    let target = Arc::new(LoadTarget {
        mission_id,
        token: std::env::var("GRACE_TOKEN").unwrap_or_default().into(),
        key_prefix: format!("goose-{}/w0", std::process::id()),
        pace: None,
        backends: vec![],
        transport: None,
    });
    let recorder = Arc::new(Recorder::default());
    let numbering = workload::Numbering { first_user: 0, run_users: 1 };
    let mut attack = GooseAttack::initialize()?;
    for scenario in workload::scenarios(compiled, env, target, Arc::clone(&recorder), numbering) {
        attack = attack.register_scenario(scenario);
    }
    attack.execute().await?;
    let recorded = recorder.snapshot();
    println!(
        "acknowledged writes: {}; p50 {} µs, p99 {} µs over {} requests",
        recorded.acknowledged_keys.len(),
        recorded.overall.value_at_quantile(0.5),
        recorded.overall.value_at_quantile(0.99),
        recorded.overall.len()
    );
    Ok(())
}
