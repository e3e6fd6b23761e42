//! One worker's share of a run, driven by goose: the scenarios of
//! `grace-loadtests`, these users, this long, against this backend. Kept apart
//! from the control plane so the load loop knows nothing about Postgres.
//!
//! goose keeps a process-wide killswitch and takes over SIGINT while it runs
//! (the `ctrlc` crate), so stopping is wired both ways: our shutdown trips the
//! killswitch, and a Ctrl-C goose caught cancels our shutdown. goose also
//! prints progress to stdout even when asked not to print metrics, and stdout
//! is where `grace load --json` writes its result, so while goose runs the
//! process's stdout goes to stderr.

use super::plan::{test_plan, Stage};
use super::ControlError;
use grace_loadtests::goose::config::{GooseConfiguration, GooseDefault, GooseDefaultType};
use grace_loadtests::goose::{self, GooseAttack};
use grace_loadtests::workload::{self, WorkloadSource};
use grace_loadtests::{share_of, LoadTarget, Recorded, Recorder};
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// What one worker runs.
pub struct Share {
    pub host: String,
    pub users: u32,
    /// Where its users start in the run's order of users (see `share_of`).
    pub first_user: u32,
    pub run_time: Duration,
    /// This share's part of the run's stages; empty: every user at once.
    pub stages: Vec<Stage>,
    pub workload: WorkloadSource,
    /// Users across the whole run (a workload's unique feeder rows need it).
    pub run_users: u32,
    pub target: LoadTarget,
}

/// What it saw.
pub struct ShareOutcome {
    /// goose's own metrics, as goose serializes them.
    pub goose_metrics: serde_json::Value,
    pub recorded: Recorded,
    /// goose's HTML report.
    pub report_html: Option<String>,
}

/// Runs `share`, recording into `recorder` (which the worker's heartbeat
/// reads for live progress meanwhile).
pub async fn run(
    share: Share,
    recorder: Arc<Recorder>,
    shutdown: &CancellationToken,
) -> Result<ShareOutcome, ControlError> {
    let report_dir = tempfile::tempdir().map_err(|e| ControlError::Goose(format!("no temporary directory: {e}")))?;
    let report_path = report_dir.path().join("goose-report.html");
    let goose_error = |e: goose::GooseError| {
        ControlError::Goose(match e {
            // goose's own Display drops what was wrong with which option.
            goose::GooseError::InvalidOption { option, value, detail } => format!("{option} {value:?}: {detail}"),
            e => e.to_string(),
        })
    };
    let mut attack = GooseAttack::initialize_with_config(GooseConfiguration::default()).map_err(goose_error)?;
    let target = Arc::new(share.target);
    // Compiled here too: the environment variables it names are this worker's.
    let unusable = |e: String| ControlError::Configuration(format!("the run's workload: {e}"));
    let workload = workload::compile(&share.workload, &|name| std::env::var_os(name).is_some())
        .map_err(|e| unusable(e.to_string()))?;
    let env = workload::environment(&workload).map_err(unusable)?;
    let numbering = workload::Numbering { first_user: share.first_user as usize, run_users: share.run_users as usize };
    let scenarios = workload::scenarios(workload, env, target, Arc::clone(&recorder), numbering);
    for scenario in share_of(scenarios, share.first_user as usize, share.users as usize) {
        attack = attack.register_scenario(scenario);
    }
    let attack = attack.set_default(GooseDefault::Host, share.host.as_str());
    let attack = if share.stages.is_empty() {
        // Every user starts within the first second.
        attack
            .and_then(|a| a.set_default(GooseDefault::Users, share.users as usize))
            .and_then(|a| a.set_default(GooseDefault::IncreaseRate, share.users.to_string().as_str()))
            .and_then(|a| a.set_default(GooseDefault::RunTime, share.run_time.as_secs().max(1) as usize))
            // goose would reset its metrics once every user has started.
            .and_then(|a| a.set_default(GooseDefault::NoResetMetrics, true))
    } else {
        // A test plan never resets them (and goose refuses being told).
        attack.and_then(|a| a.set_default(GooseDefault::TestPlan, test_plan(&share.stages).as_str()))
    };
    let attack = attack
        .and_then(|a| a.set_default(GooseDefault::NoTelnet, true))
        .and_then(|a| a.set_default(GooseDefault::NoPrintMetrics, true))
        .and_then(|a| a.set_default(GooseDefault::Quiet, 1))
        .and_then(|a| a.set_default(GooseDefault::ReportFile, report_path.to_string_lossy().as_ref()))
        .map_err(goose_error)?;
    if goose::is_killswitch_triggered() && !shutdown.is_cancelled() {
        // A Ctrl-C since the last run, which only goose's handler heard.
        crate::shutdown::trigger();
        return Err(ControlError::Interrupted);
    }
    // A killswitch left from an earlier run in this process is not a Ctrl-C.
    goose::reset_killswitch();
    watch_killswitch_between_runs();
    let stop_goose = shutdown.clone();
    let relay = tokio::spawn(async move {
        loop {
            tokio::select! {
                () = stop_goose.cancelled() => {
                    goose::trigger_killswitch("grace is stopping");
                    return;
                }
                () = tokio::time::sleep(Duration::from_millis(200)) => {
                    if goose::is_killswitch_triggered() {
                        // goose caught a Ctrl-C: the whole process is stopping.
                        crate::shutdown::trigger();
                        stop_goose.cancel();
                        return;
                    }
                }
            }
        }
    });
    let metrics = {
        let _redirect = StdoutToStderr::start();
        attack.execute().await
    };
    relay.abort();
    if goose::is_killswitch_triggered() && !shutdown.is_cancelled() {
        // goose caught a Ctrl-C and stopped before the relay looked.
        crate::shutdown::trigger();
        shutdown.cancel();
    }
    let metrics = metrics.map_err(goose_error)?;
    let goose_metrics = serde_json::to_value(&metrics).map_err(|e| ControlError::Goose(e.to_string()))?;
    Ok(ShareOutcome {
        goose_metrics,
        recorded: recorder.snapshot(),
        report_html: std::fs::read_to_string(&report_path).ok(),
    })
}

/// goose takes SIGINT for good the first time it runs: the `ctrlc` crate
/// replaces the process's handler, ours included, so from then on a Ctrl-C
/// only trips goose's killswitch — and a second one exits at once, skipping
/// every cleanup. While a share runs, `run`'s relay hears it; between runs,
/// this watcher (started with the first share) turns a tripped killswitch
/// into the process's shutdown, so an idle `grace worker` stops on the first
/// Ctrl-C as it did before its first run.
fn watch_killswitch_between_runs() {
    static STARTED: std::sync::Once = std::sync::Once::new();
    STARTED.call_once(|| {
        tokio::spawn(async {
            loop {
                tokio::time::sleep(Duration::from_millis(200)).await;
                if goose::is_killswitch_triggered() {
                    crate::shutdown::trigger();
                }
            }
        });
    });
}

/// While alive, what is written to file descriptor 1 goes to 2.
struct StdoutToStderr {
    saved: Option<std::os::fd::OwnedFd>,
}

impl StdoutToStderr {
    fn start() -> Self {
        use std::io::Write;
        let _ = std::io::stdout().flush();
        let saved = nix::unistd::dup(std::io::stdout()).ok();
        if saved.is_some() {
            let _ = nix::unistd::dup2_stdout(std::io::stderr());
        }
        Self { saved }
    }
}

impl Drop for StdoutToStderr {
    fn drop(&mut self) {
        use std::io::Write;
        let _ = std::io::stdout().flush();
        if let Some(saved) = &self.saved {
            let _ = nix::unistd::dup2_stdout(saved);
        }
    }
}
