//! What a load run is asked to do, parsed at the edge: how much load, for how
//! long, on how many workers (`LoadShape`), against which backend and as whom
//! (`LoadPlan`). The coordinator carries it out; the merged result reports it.

use crate::client::BackendClient;
use crate::configuration::{BackendUrl, DatabaseUrl};
use grace_loadtests::workload::{ProofSpec, WorkloadSource};
use serde::{Deserialize, Serialize};
use std::str::FromStr;
use std::time::Duration;
use uuid::Uuid;

/// How much load, for how long, on how many workers.
#[derive(Debug, Clone)]
pub struct LoadShape {
    pub profile: LoadProfile,
    /// Workers to wait for; `None` runs one in this process.
    pub expect_workers: Option<u32>,
    /// How long to wait for them.
    pub join_timeout: Duration,
    /// Silence after which a worker is lost.
    pub heartbeat_timeout: Duration,
}

/// What to run, parsed at the edge.
#[derive(Debug, Clone)]
pub struct LoadPlan {
    /// The backend, with an operator token (it creates the run's mission; the
    /// in-process worker loads with it).
    pub backend: BackendClient,
    /// Further replicas the load is spread over along with `backend`
    /// (replicas without a balancer; each transaction goes to the next in
    /// turn); usually none.
    pub replicas: Vec<BackendUrl>,
    pub shape: LoadShape,
    /// The traffic (the bundled mission workload unless the user gave one).
    pub workload: WorkloadSource,
    /// The target is a Grace backend (the mission traffic, or a workload
    /// saying so): the run gets a mission, the operator token is checked
    /// first. Otherwise it is any HTTP service, checked only to answer.
    pub grace_backend: bool,
    /// Where the writes are proven stored (C7).
    pub write_proofs: WriteProofs,
    /// The mission the load is tagged with; a fresh one when `None`.
    pub mission: Option<Uuid>,
    /// Show the run's live progress on stderr.
    pub progress: bool,
    /// Stream each second's numbers per request name here (JSON lines).
    pub json_lines: Option<std::path::PathBuf>,
    /// How long a backend that does not answer yet is waited for
    /// (`--wait-for-services`; zero: it fails the run at once).
    pub wait_for_services: std::time::Duration,
    /// Each worker keeps goose's own metrics and uploads goose's HTML report.
    pub goose_report: bool,
}

impl LoadPlan {
    /// Every backend the load goes to: the first, then the replicas.
    pub fn backends(&self) -> impl Iterator<Item = BackendClient> + '_ {
        std::iter::once(self.backend.clone()).chain(self.replicas.iter().map(|r| self.backend.replica(r.clone())))
    }
}

/// Where a run's writes are proven stored, each exactly once (C7).
#[derive(Debug, Clone)]
pub enum WriteProofs {
    /// The Grace backend's chat and task rows, in the control plane's database.
    Bundled,
    /// A workload's proofs, each reading its stored keys from `database`
    /// (the service's own); `orphans` also proves its foreign keys (C1) — for
    /// a service other than a Grace backend, whose C1 is `grace verify`'s.
    Workload { proofs: Vec<ProofSpec>, database: Box<DatabaseUrl>, orphans: bool },
}

/// How much load, and for how long: the users, how they come and go, and (open
/// model) the rate. A run's, as it is asked for (`LoadShape`), announced to its
/// workers (`RunConfig`) and reported (`LoadResult`, a scenario's
/// `RunConfiguration`) — flattened into each, so their JSON keeps the keys
/// `users`, `run_time_secs`, `stages` and `rate` — or one worker's share of it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LoadProfile {
    /// Users (with stages, the most at any time).
    pub users: u32,
    /// The whole run, stages included; whole seconds.
    pub run_time_secs: u64,
    /// How the users come and go, k6-style; empty: every user starts within
    /// the first second and runs to the end.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub stages: Vec<Stage>,
    /// Open model: requests per second.
    pub rate: Option<f64>,
}

impl LoadProfile {
    pub fn run_time(&self) -> Duration {
        Duration::from_secs(self.run_time_secs)
    }

    /// `closed model`, or `open model at R req/s`: how reports name it.
    pub fn model(&self) -> String {
        self.rate.map_or_else(|| "closed model".to_string(), |rate| format!("open model at {rate} req/s"))
    }

    /// The users meant to be running `elapsed` into the run: all of them, or
    /// where the stages are then (linear within a stage, as goose ramps).
    pub fn users_at(&self, elapsed: Duration) -> u32 {
        let mut from = 0u32;
        let mut start = 0.0;
        let at = elapsed.as_secs_f64();
        for stage in &self.stages {
            let end = start + stage.secs as f64;
            if at < end {
                let share = (at - start) / stage.secs as f64;
                return (f64::from(from) + share * (f64::from(stage.users) - f64::from(from))).round() as u32;
            }
            from = stage.users;
            start = end;
        }
        if self.stages.is_empty() {
            self.users
        } else {
            from
        }
    }

    /// One worker's share of this run: users `first_user..first_user + users`,
    /// with their part of each stage (see [`share_stages`]) and of the rate.
    pub fn share(&self, first_user: u32, users: u32) -> Self {
        Self {
            users,
            run_time_secs: self.run_time_secs,
            stages: share_stages(&self.stages, first_user, users, self.users),
            rate: self.rate.map(|rate| rate * f64::from(users) / f64::from(self.users.max(1))),
        }
    }
}

/// One k6-style stage: reach `users` by the end of `secs` seconds, linearly
/// from where the stage before ended (from none for the first). goose's
/// test plan runs them; `--ramp-up D` is the two stages `D:users` and
/// `run_time:users`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Stage {
    pub secs: u64,
    pub users: u32,
}

impl FromStr for Stage {
    type Err = String;

    /// `30s:50`, `2m:200`, `1m30s:0`: a duration (whole seconds) and a number of users.
    fn from_str(raw: &str) -> Result<Self, String> {
        let (duration, users) =
            raw.split_once(':').ok_or_else(|| format!("{raw:?}: a stage is DURATION:USERS, e.g. 30s:50"))?;
        // humantime's own hint suggests milliseconds, which a stage cannot take.
        let duration = humantime::parse_duration(duration.trim()).map_err(|_| {
            format!(
                "{raw:?}: {:?} is not a duration: write whole seconds with a unit (30s, 2m, 1m30s)",
                duration.trim()
            )
        })?;
        if duration.subsec_nanos() != 0 {
            return Err(format!("{raw:?}: a stage lasts whole seconds (30s, 2m, 1m30s)"));
        }
        let users = users
            .trim()
            .parse::<u32>()
            .ok()
            .filter(|u| *u <= 1_000_000)
            .ok_or_else(|| format!("{raw:?}: {:?} is not a number of users (0 to 1000000)", users.trim()))?;
        Ok(Self { secs: duration.as_secs(), users })
    }
}

impl std::fmt::Display for Stage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}s:{}", self.secs, self.users)
    }
}

/// The stages of one worker's share: users `first_user..first_user + users`
/// of the run's `total` users. Each stage's target is split in proportion to
/// the shares, computed so that the shares' targets add up to the run's
/// exactly (the share ending at user `e` takes `floor(target * e / total)`
/// minus what the shares before it took), and a share at the run's peak
/// runs all its users.
fn share_stages(stages: &[Stage], first_user: u32, users: u32, total: u32) -> Vec<Stage> {
    let upto = |end: u32, target: u32| (u64::from(target) * u64::from(end) / u64::from(total.max(1))) as u32;
    stages
        .iter()
        .map(|stage| Stage {
            secs: stage.secs,
            users: upto(first_user + users, stage.users) - upto(first_user, stage.users),
        })
        .collect()
}

/// The stages as goose's test plan takes them: `users,seconds;…`. A plan
/// that ends with users still running gets a last step stopping them at
/// once: k6's run ends with its stages, and goose's would otherwise go on.
pub fn test_plan(stages: &[Stage]) -> String {
    let mut steps: Vec<String> = stages.iter().map(|s| format!("{},{}", s.users, s.secs)).collect();
    if stages.last().is_some_and(|last| last.users > 0) {
        steps.push("0,0".into());
    }
    steps.join(";")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn users_follow_the_stages_linearly() {
        let stages = vec![Stage { secs: 10, users: 50 }, Stage { secs: 20, users: 50 }, Stage { secs: 10, users: 0 }];
        let profile = LoadProfile { users: 50, run_time_secs: 40, stages, rate: None };
        let at = |secs: u64| profile.users_at(Duration::from_secs(secs));
        assert_eq!([at(0), at(5), at(10), at(29), at(35), at(40), at(99)], [0, 25, 50, 50, 25, 0, 0]);
        let flat = LoadProfile { users: 7, run_time_secs: 5, stages: vec![], rate: None };
        assert_eq!(flat.users_at(Duration::from_secs(3)), 7);
    }

    #[test]
    fn stages_read_as_k6_writes_them() {
        assert_eq!("30s:50".parse(), Ok(Stage { secs: 30, users: 50 }));
        assert_eq!(" 1m30s : 0 ".parse(), Ok(Stage { secs: 90, users: 0 }));
        for (bad, says) in [
            ("30s", "DURATION:USERS"),
            ("soon:5", "not a duration"),
            ("5:5", "\"5\" is not a duration: write whole seconds with a unit"),
            ("1500ms:5", "whole seconds"),
            ("5s:-1", "not a number of users"),
        ] {
            let error = bad.parse::<Stage>().unwrap_err();
            assert!(error.contains(says), "{bad}: {error}");
            assert!(!error.contains("ms") || bad.contains("ms"), "no hint of milliseconds: {error}");
        }
    }

    #[test]
    fn shares_split_every_stage_exactly_and_run_all_their_users_at_the_peak() {
        let stages: Vec<Stage> = ["10s:7", "20s:15", "5s:1", "5s:0"].iter().map(|s| s.parse().unwrap()).collect();
        let shares = [(0, 8), (8, 7)];
        let split: Vec<Vec<Stage>> =
            shares.iter().map(|(first, users)| share_stages(&stages, *first, *users, 15)).collect();
        for (index, stage) in stages.iter().enumerate() {
            assert_eq!(split.iter().map(|s| s[index].users).sum::<u32>(), stage.users, "stage {index}");
            assert!(split.iter().all(|s| s[index].secs == stage.secs));
        }
        assert_eq!((split[0][1].users, split[1][1].users), (8, 7), "the peak runs every user of each share");
        assert_eq!(test_plan(&split[0]), "3,10;8,20;0,5;0,5");
        assert_eq!(test_plan(&split[1]), "4,10;7,20;1,5;0,5");
        assert_eq!(test_plan(&split[1][..2]), "4,10;7,20;0,0", "ending with users, the plan stops them");
    }
}
