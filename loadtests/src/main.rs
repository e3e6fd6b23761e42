//! A plain goose binary over Grace's scenarios: goose's own CLI, metrics and
//! HTML report (`--report-file report.html`).

use goose::prelude::*;

#[tokio::main]
async fn main() -> Result<(), GooseError> {
    GooseAttack::initialize()?.register_scenario(grace_loadtests::health_scenario()).execute().await?;
    Ok(())
}
