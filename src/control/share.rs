//! One worker's share of a run, driven by goose: the scenarios of
//! `grace-loadtests`, these users, this long, against this backend. Kept apart
//! from the control plane so the load loop knows nothing about Postgres.
//!
//! goose stops on a process-wide killswitch, which `stop` trips: the share
//! then ends early with what it measured so far, like a run that reached its
//! end. (SIGINT stays Grace's, not goose's: see `shutdown`.) goose also prints
//! to stdout even when asked not to print metrics ("All 50 users launched."),
//! and stdout is where `grace load --json` writes its result: while goose
//! runs, the process's stdout is captured, and each line goose prints becomes
//! an INFO log — drawn around the live progress bar, silenced by `-q`.

use super::plan::{test_plan, LoadProfile};
use super::ControlError;
use grace_loadtests::goose::client::GooseClientBuilder;
use grace_loadtests::goose::config::{GooseConfiguration, GooseDefault, GooseDefaultType};
use grace_loadtests::goose::{self, GooseAttack};
use grace_loadtests::workload::{self, WorkloadSource};
use grace_loadtests::{share_of, LoadTarget, Recorded, Recorder, Transport};
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// What one worker runs.
pub struct Share {
    pub host: String,
    /// This share's part of the run's (`LoadProfile::share`).
    pub profile: LoadProfile,
    /// Where its users start in the run's order of users (see `share_of`).
    pub first_user: u32,
    pub workload: WorkloadSource,
    /// Users across the whole run (a workload's unique feeder rows need it).
    pub run_users: u32,
    pub target: LoadTarget,
    /// Whether goose keeps its own metrics, for its HTML report. Grace's
    /// results never read them (its recorder counts every attempt), and
    /// they cost CPU on every request: off unless the run asks for the page.
    pub goose_report: bool,
}

/// What it saw.
pub struct ShareOutcome {
    pub recorded: Recorded,
    /// goose's own metrics, as goose serializes them, when it kept them.
    pub goose_metrics: Option<serde_json::Value>,
    /// goose's HTML report, when the run asked for it.
    pub report_html: Option<String>,
}

/// Runs `share`, recording into `recorder` (which the worker's heartbeat
/// reads for live progress meanwhile), until its end or until `stop`.
pub async fn run(
    share: Share,
    recorder: Arc<Recorder>,
    stop: &CancellationToken,
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
    let mut target = share.target;
    // goose's report is made of goose's metrics of each request, which only
    // goose's own client keeps; otherwise requests go out on the direct one.
    if !share.goose_report {
        let transport = Transport::new().map_err(|e| ControlError::Goose(format!("no HTTP client: {e}")))?;
        target.transport = Some(Arc::new(transport));
    }
    let target = Arc::new(target);
    // Compiled here too: the environment variables it names are this worker's.
    let unusable = |e: String| ControlError::Configuration(format!("the run's workload: {e}"));
    let workload = workload::compile(&share.workload, &|name| std::env::var_os(name).is_some())
        .map_err(|e| unusable(e.to_string()))?;
    let env = workload::environment(&workload).map_err(unusable)?;
    let numbering = workload::Numbering { first_user: share.first_user as usize, run_users: share.run_users as usize };
    let scenarios = workload::scenarios(workload, env, target, Arc::clone(&recorder), numbering);
    for scenario in share_of(scenarios, share.first_user as usize, share.profile.users as usize) {
        attack = attack.register_scenario(scenario);
    }
    let attack = attack.set_default(GooseDefault::Host, share.host.as_str());
    let attack = if share.profile.stages.is_empty() {
        // Every user starts within the first second.
        attack
            .and_then(|a| a.set_default(GooseDefault::Users, share.profile.users as usize))
            .and_then(|a| a.set_default(GooseDefault::IncreaseRate, share.profile.users.to_string().as_str()))
            .and_then(|a| a.set_default(GooseDefault::RunTime, share.profile.run_time_secs.max(1) as usize))
            // goose would reset its metrics once every user has started.
            .and_then(|a| a.set_default(GooseDefault::NoResetMetrics, true))
    } else {
        // A test plan never resets them (and goose refuses being told).
        attack.and_then(|a| a.set_default(GooseDefault::TestPlan, test_plan(&share.profile.stages).as_str()))
    };
    let attack = attack
        .and_then(|a| a.set_default(GooseDefault::NoTelnet, true))
        .and_then(|a| a.set_default(GooseDefault::NoPrintMetrics, true))
        .and_then(|a| a.set_default(GooseDefault::Quiet, 1));
    let attack = if share.goose_report {
        attack.and_then(|a| a.set_default(GooseDefault::ReportFile, report_path.to_string_lossy().as_ref()))
    } else {
        // Its users send on the direct client: goose's is built once and shared,
        // not once per user (each loading the system's certificates).
        attack.and_then(|a| a.set_default(GooseDefault::NoMetrics, true)).and_then(|a| {
            (*a).set_client_builder_without_cookies(GooseClientBuilder::new().without_cookies()).map(Box::new)
        })
    }
    .map_err(goose_error)?;
    // A killswitch left from an earlier run in this process is not a stop.
    goose::reset_killswitch();
    let stopping = stop.clone();
    let relay = tokio::spawn(async move {
        stopping.cancelled().await;
        // Tripped again until goose has stopped: goose clears it as it starts
        // when its own Ctrl-C handler cannot be installed (Grace's holds SIGINT).
        loop {
            if !goose::is_killswitch_triggered() {
                goose::trigger_killswitch("grace is stopping the load");
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    });
    let executed = {
        let _captured = GooseStdout::capture();
        attack.execute().await
    };
    relay.abort();
    let metrics = executed.map_err(goose_error)?;
    let goose_metrics = match share.goose_report {
        true => Some(serde_json::to_value(&metrics).map_err(|e| ControlError::Goose(e.to_string()))?),
        false => None,
    };
    Ok(ShareOutcome {
        recorded: recorder.snapshot(),
        goose_metrics,
        report_html: std::fs::read_to_string(&report_path).ok(),
    })
}

/// While alive, what is written to file descriptor 1 is read line by line
/// by a thread and logged; dropped, stdout is what it was again.
struct GooseStdout {
    saved: Option<std::os::fd::OwnedFd>,
}

impl GooseStdout {
    fn capture() -> Self {
        use std::io::{BufRead, Write};
        let _ = std::io::stdout().flush();
        let Ok((read, write)) = nix::unistd::pipe() else { return Self { saved: None } };
        let Ok(saved) = nix::unistd::dup(std::io::stdout()) else { return Self { saved: None } };
        if nix::unistd::dup2_stdout(&write).is_err() {
            return Self { saved: None };
        }
        // Only fd 1 holds the pipe now: restoring it ends the reader's input.
        drop(write);
        let reader = std::thread::Builder::new().name("goose-stdout".into()).spawn(move || {
            for line in std::io::BufReader::new(std::fs::File::from(read)).lines() {
                match line {
                    Ok(line) if line.trim().is_empty() => {}
                    Ok(line) => tracing::info!("goose: {}", line.trim_end()),
                    Err(_) => return,
                }
            }
        });
        if reader.is_err() {
            // No one would read the pipe: put stdout back at once.
            let _ = nix::unistd::dup2_stdout(&saved);
            return Self { saved: None };
        }
        Self { saved: Some(saved) }
    }
}

impl Drop for GooseStdout {
    fn drop(&mut self) {
        use std::io::Write;
        let _ = std::io::stdout().flush();
        if let Some(saved) = &self.saved {
            let _ = nix::unistd::dup2_stdout(saved);
        }
    }
}
