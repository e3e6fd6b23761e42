//! A plain goose binary over Grace's scenarios: goose's own CLI, metrics and
//! HTML report (`--report-file report.html`). The mission and token come from
//! GRACE_MISSION_ID and GRACE_TOKEN (an operator token).

use goose::prelude::*;
use grace_loadtests::{scenarios, LoadTarget, Recorder};
use std::sync::Arc;

#[tokio::main]
async fn main() -> Result<(), GooseError> {
    let Some(mission_id) = std::env::var("GRACE_MISSION_ID").ok() else {
        eprintln!("error: set GRACE_MISSION_ID to the mission the load is tagged with");
        std::process::exit(2);
    };
    let Some(token) = std::env::var("GRACE_TOKEN").ok() else {
        eprintln!("error: set GRACE_TOKEN to an operator token of the backend");
        std::process::exit(2);
    };
    let run = format!("goose-{}", std::process::id());
    let target = Arc::new(LoadTarget {
        mission_id,
        token: token.into(),
        key_prefix: format!("{run}/w0"),
        pace: None,
        backends: vec![],
    });
    let recorder = Arc::new(Recorder::default());
    let mut attack = GooseAttack::initialize()?;
    for scenario in scenarios(target, Arc::clone(&recorder)) {
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
