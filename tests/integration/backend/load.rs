//! The bundled mission workload on goose, straight from `grace-loadtests`,
//! against the real backend: every write the load saw acknowledged is stored
//! exactly once, and nothing else.

use super::app::TestApp;
use grace::specification::Role;
use grace_loadtests::goose::config::{GooseConfiguration, GooseDefault, GooseDefaultType};
use grace_loadtests::goose::GooseAttack;
use grace_loadtests::workload::{self, WorkloadSource};
use grace_loadtests::{LoadTarget, Recorder};
use std::collections::BTreeSet;
use std::sync::Arc;

#[tokio::test]
async fn acknowledged_writes_of_a_goose_run_are_exactly_the_stored_rows() {
    let app = TestApp::spawn().await;
    let mission = app.create_mission().await;
    let target = Arc::new(LoadTarget {
        mission_id: mission.to_string(),
        token: app.token(Role::Operator).into(),
        key_prefix: "run-test/w1".into(),
        pace: None,
        backends: vec![],
        transport: None,
    });
    let recorder = Arc::new(Recorder::default());
    let mut attack = GooseAttack::initialize_with_config(GooseConfiguration::default()).unwrap();
    let mission = workload::compile(&WorkloadSource::bundled("mission").unwrap(), &|_| true).unwrap();
    let numbering = workload::Numbering { first_user: 0, run_users: 8 };
    for scenario in workload::scenarios(mission, Default::default(), target, Arc::clone(&recorder), numbering) {
        attack = attack.register_scenario(scenario);
    }
    let metrics = attack
        .set_default(GooseDefault::Host, app.address.as_str())
        .unwrap()
        .set_default(GooseDefault::Users, 8)
        .unwrap()
        .set_default(GooseDefault::IncreaseRate, "8")
        .unwrap()
        .set_default(GooseDefault::RunTime, 3)
        .unwrap()
        .set_default(GooseDefault::NoTelnet, true)
        .unwrap()
        .set_default(GooseDefault::NoWebSocket, true)
        .unwrap()
        .set_default(GooseDefault::NoResetMetrics, true)
        .unwrap()
        .set_default(GooseDefault::NoPrintMetrics, true)
        .unwrap()
        .execute()
        .await
        .unwrap();

    let recorded = recorder.snapshot();
    let acknowledged: BTreeSet<String> = recorded.acknowledged_keys.iter().cloned().collect();
    assert_eq!(acknowledged.len(), recorded.acknowledged_keys.len(), "keys are unique");
    assert!(acknowledged.len() > 20, "the load wrote: {}", acknowledged.len());
    let stored = app.stored_write_keys().await;
    assert_eq!(stored, acknowledged);
    assert!(stored.iter().all(|k| k.starts_with("run-test/w1/chat/u") || k.starts_with("run-test/w1/tasks/u")));

    // Every request goose made was timed by the recorder too, named by
    // method and route template, as goose keys them.
    let names: Vec<&str> = recorded.by_name.keys().map(String::as_str).collect();
    assert!(names.contains(&"POST /api/chat") && names.contains(&"GET /api/tasks/{id}"), "{names:?}");
    let mut goose_names: Vec<&str> = metrics.requests.keys().map(String::as_str).collect();
    goose_names.sort_unstable();
    assert_eq!(goose_names, names, "goose's names are the recorder's");
    let goose_requests: usize = metrics.requests.values().map(|r| r.success_count + r.fail_count).sum();
    assert_eq!(recorded.overall.len() as usize, goose_requests);
}
