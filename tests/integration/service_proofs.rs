//! Grace pointed at a Postgres-backed HTTP service that is not its own
//! backend: a small orders API (customers, orders with a FOREIGN KEY to them,
//! idempotency keys), loaded through a workload file by two workers, then
//! proven from its own database — passing when the service is honest, and
//! failing, naming keys, when it drops an acknowledged write, stores one
//! twice, or stores one it refused; C1 finds an orphan planted past its
//! foreign key.

use crate::helpers::{grace, Ran, TestDatabase};
use serde_json::{json, Value};
use std::process::Stdio;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use tokio::process::Child;

/// The README's example service, with the flaws the proofs must catch.
#[path = "../../examples/shop.rs"]
mod shop;
use shop::{Flaw, Shop};

/// The shop on `database`, listening on a random port: its address.
async fn serve_shop(database: &TestDatabase, flaw: Flaw) -> (String, Arc<Shop>) {
    let shop = Shop::new(database.client().await, flaw);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = format!("http://{}", listener.local_addr().unwrap());
    let app = shop::router(Arc::clone(&shop));
    tokio::spawn(async move { axum::serve(listener, app).await });
    (address, shop)
}

/// The shop's database, its tables made.
async fn shop_database() -> TestDatabase {
    let database = TestDatabase::empty().await;
    shop::create_tables(&database.client().await).await.unwrap();
    database
}

/// The README's second example.
const WORKLOAD: &str = include_str!("../../workloads/shop.toml");

fn spawn_worker(control: &TestDatabase) -> Child {
    grace()
        .args(["worker", "--once", "--database-url", &control.url.to_string()])
        .env_remove("GRACE_TOKEN")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn grace worker")
}

/// Loads the shop for 3 s through `WORKLOAD` on two workers and proves it.
async fn load_shop(flaw: Flaw, plant: Option<&str>) -> (Ran, Value, Option<String>) {
    let control = TestDatabase::migrated().await;
    let service = shop_database().await;
    if let Some(sql) = plant {
        service.client().await.batch_execute(sql).await.unwrap();
    }
    let (address, shop) = serve_shop(&service, flaw).await;
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("shop.toml");
    std::fs::write(&file, WORKLOAD).unwrap();
    let workers = [spawn_worker(&control), spawn_worker(&control)];
    crate::distributed_load::wait_for_live_workers(&control, 2).await;
    let ran: Ran = grace()
        .args(["load", "--json", "--database-url", &control.url.to_string(), "--backend", &address])
        .args(["--workload", file.to_str().unwrap(), "--service-database-url", &service.url.to_string()])
        .args(["--users", "4", "--run-time", "3s", "--expect-workers", "2"])
        .env_remove("GRACE_TOKEN")
        .output()
        .await
        .unwrap()
        .into();
    for worker in workers {
        let exited = worker.wait_with_output().await.unwrap();
        assert_eq!(exited.status.code(), Some(0), "{}", String::from_utf8_lossy(&exited.stderr));
    }
    let result = serde_json::from_str(&ran.stdout).unwrap_or_else(|e| panic!("{e}: {}", ran.all_output()));
    let flawed = shop.flawed.lock().unwrap().clone();
    (ran, result, flawed)
}

fn proof(result: &Value) -> &Value {
    let proofs = result["proofs"].as_array().unwrap();
    assert_eq!(proofs.len(), 1, "{proofs:?}");
    assert_eq!(proofs[0]["name"], "orders");
    &proofs[0]
}

#[tokio::test]
async fn an_honest_service_loaded_by_two_workers_is_proven_from_its_own_database() {
    let (ran, result, _) = load_shop(Flaw::Honest, None).await;
    assert_eq!(ran.code, Some(0), "{}", ran.all_output());
    let orders = proof(&result);
    let acknowledged = orders["acknowledged"].as_u64().unwrap();
    assert!(acknowledged > 10, "{orders}");
    assert_eq!(orders["stored"].as_u64(), Some(acknowledged), "{orders}");
    for zero in ["missing", "duplicated", "unacknowledged", "indeterminate"] {
        assert_eq!(orders[zero], 0, "{zero}: {orders}");
    }
    assert_eq!(result["acked_writes"]["acknowledged"].as_u64(), Some(acknowledged));
    assert_eq!(result["workers"].as_array().unwrap().len(), 2);
    // Its one FOREIGN KEY's triggers are not ALWAYS (a replica-role session
    // skips them), so C1 scanned every order.
    let orphans = &result["orphans"];
    assert_eq!((orphans["foreign_keys"].as_u64(), orphans["scanned"].as_u64()), (Some(1), Some(1)), "{orphans}");
    assert_eq!(orphans["passed"], true, "{orphans}");
    assert!(orphans["references"].as_u64().unwrap() >= acknowledged, "{orphans}");
}

#[tokio::test]
async fn a_service_that_drops_an_acknowledged_write_fails_naming_its_key() {
    let (ran, result, flawed) = load_shop(Flaw::DropsOne, None).await;
    assert_eq!(ran.code, Some(1), "{}", ran.all_output());
    let orders = proof(&result);
    assert_eq!(orders["missing"], 1, "{orders}");
    assert_eq!(orders["missing_sample"], json!([flawed.unwrap()]), "{orders}");
    assert_eq!((orders["passed"].as_bool(), result["acked_writes"]["missing"].as_u64()), (Some(false), Some(1)));
}

#[tokio::test]
async fn a_service_that_stores_a_write_twice_fails_naming_its_key() {
    let (ran, result, flawed) = load_shop(Flaw::StoresOneTwice, None).await;
    assert_eq!(ran.code, Some(1), "{}", ran.all_output());
    let orders = proof(&result);
    assert_eq!((orders["duplicated"].as_u64(), orders["missing"].as_u64()), (Some(1), Some(0)), "{orders}");
    assert_eq!(orders["duplicated_sample"], json!([flawed.unwrap()]), "{orders}");
    assert_eq!(orders["stored"].as_u64().unwrap(), orders["acknowledged"].as_u64().unwrap() + 1, "{orders}");
}

#[tokio::test]
async fn a_service_that_stores_a_write_it_refused_fails_naming_its_key() {
    let (ran, result, flawed) = load_shop(Flaw::RefusesOneItStored, None).await;
    assert_eq!(ran.code, Some(1), "{}", ran.all_output());
    let orders = proof(&result);
    assert_eq!((orders["unacknowledged"].as_u64(), orders["refused"].as_u64()), (Some(1), Some(1)), "{orders}");
    assert_eq!(orders["unacknowledged_sample"], json!([flawed.unwrap()]), "{orders}");
    assert_eq!(orders["missing"], 0, "{orders}");
}

#[tokio::test]
async fn an_orphan_planted_past_the_foreign_key_is_found_by_c1() {
    // As a superuser can: the FOREIGN KEY's triggers skipped for one insert.
    let plant = "SET session_replication_role = replica;
                 INSERT INTO orders (customer_id, item, idempotency_key) VALUES (424242, 'ghost', 'not-a-run/x');
                 RESET session_replication_role;";
    let (ran, result, _) = load_shop(Flaw::Honest, Some(plant)).await;
    assert_eq!(ran.code, Some(1), "{}", ran.all_output());
    assert_eq!(proof(&result)["passed"], true, "the writes themselves were stored exactly once");
    let orphans = &result["orphans"];
    assert_eq!((orphans["orphans"].as_u64(), orphans["passed"].as_bool()), (Some(1), Some(false)), "{orphans}");
    assert_eq!(
        orphans["examples"],
        json!(["public.orders.customer_id = 424242 refers to no row of public.customers"]),
        "{orphans}"
    );
}

#[tokio::test]
async fn proofs_without_the_service_database_or_with_a_wrong_column_are_refused_before_any_load() {
    let control = TestDatabase::migrated().await;
    let service = shop_database().await;
    let (address, shop) = serve_shop(&service, Flaw::Honest).await;
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("shop.toml");
    let load = |workload: String, service_url: Option<String>| {
        std::fs::write(&file, workload).unwrap();
        let mut command = grace();
        command
            .args(["load", "--database-url", &control.url.to_string(), "--backend", &address])
            .args(["--workload", file.to_str().unwrap(), "--users", "2", "--run-time", "2s"])
            .env_remove("GRACE_TOKEN")
            .env_remove("GRACE_SERVICE_DATABASE_URL");
        if let Some(url) = service_url {
            command.args(["--service-database-url", &url]);
        }
        command
    };
    let ran: Ran = load(WORKLOAD.to_string(), None).output().await.unwrap().into();
    assert_eq!(ran.code, Some(2), "{}", ran.all_output());
    assert!(ran.stderr.contains("names proofs (orders): pass --service-database-url"), "{}", ran.stderr);
    let wrong = WORKLOAD.replace("key_column = \"idempotency_key\"", "key_column = \"idem_key\"");
    let ran: Ran = load(wrong, Some(service.url.to_string())).output().await.unwrap().into();
    assert_eq!(ran.code, Some(2), "{}", ran.all_output());
    assert!(ran.stderr.contains("proof \"orders\" cannot be read from the service's database"), "{}", ran.stderr);
    assert!(ran.stderr.contains("idem_key"), "{}", ran.stderr);
    assert_eq!(shop.orders.load(Ordering::SeqCst), 0, "nothing was sent");
}
