//! `TestApp`: the real backend on a random port against a fresh database, with
//! request helpers that speak its API through the project's one client
//! (`grace::client`): typed calls where a test needs the backend to agree,
//! raw requests (no retries) where it judges the answer itself.

use crate::helpers::{eventually, TestDatabase};
use grace::api::admin::FaultRequest;
use grace::api::missions::Mission;
use grace::backend::{Application, ServeSettings};
use grace::client::BackendClient;
use grace::configuration::{BackendUrl, Tokens};
use grace::specification::Role;
use reqwest::{Method, RequestBuilder, Response, StatusCode};
use serde_json::{json, Value};
use std::time::Duration;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

pub struct TestApp {
    pub address: String,
    pub client: BackendClient,
    shutdown: CancellationToken,
    server: Option<JoinHandle<()>>,
    // Last: dropped after the server has stopped using it.
    pub database: TestDatabase,
}

impl TestApp {
    pub async fn spawn() -> Self {
        Self::spawn_on(TestDatabase::migrated().await, true).await
    }

    /// A server on `database`, which may already have another server (a replica).
    pub async fn spawn_on(database: TestDatabase, enable_faults: bool) -> Self {
        let tokens = Tokens::parse(
            "operator=operator-test-token,approver=approver-test-token,governance=governance-test-token,admin=admin-test-token",
        )
        .unwrap();
        let settings = ServeSettings {
            database: database.url.clone(),
            listen: "127.0.0.1:0".parse().unwrap(),
            tokens: tokens.clone(),
            enable_faults,
            pool_size: 8,
            connections: grace::backend::connections::ConnectionLimits::default(),
            private_database: false,
        };
        let application = Application::build(settings).await.expect("the backend builds");
        let address = format!("http://{}", application.local_addr());
        let shutdown = CancellationToken::new();
        let stop = shutdown.clone();
        let server = tokio::spawn(async move { application.run_until(stop).await.expect("the backend serves") });
        let client = BackendClient::new(BackendUrl::parse(&address).unwrap(), tokens);
        let app = Self { address, client, shutdown, server: Some(server), database };
        app.wait_until_mesh_started().await;
        app
    }

    /// Another server on the same database.
    pub async fn replica(&self) -> Self {
        Self::spawn_on(self.database.same_database(), true).await
    }

    async fn wait_until_mesh_started(&self) {
        eventually("the backend becoming healthy", Duration::from_secs(5), || async {
            self.client.health().await.ok()
        })
        .await;
    }

    /// Stops the server gracefully and waits until it has.
    pub async fn stop(mut self) {
        self.shutdown.cancel();
        if let Some(server) = self.server.take() {
            server.await.unwrap();
        }
    }

    pub fn url(&self, path: &str) -> String {
        self.client.url().join(path)
    }

    pub fn token(&self, role: Role) -> &str {
        self.client.token(role).unwrap()
    }

    /// A raw request with no token.
    pub fn anonymous(&self, method: Method, path: &str) -> RequestBuilder {
        self.client.request(method, path, None).unwrap()
    }

    /// A raw request with `role`'s token.
    pub fn request(&self, method: Method, path: &str, role: Role) -> RequestBuilder {
        self.client.request(method, path, Some(role)).unwrap()
    }

    pub async fn get(&self, path: &str, role: Role) -> Response {
        self.request(Method::GET, path, role).send().await.unwrap()
    }

    pub async fn post(&self, path: &str, role: Role, body: &Value) -> Response {
        self.request(Method::POST, path, role).json(body).send().await.unwrap()
    }

    pub async fn get_json(&self, path: &str) -> Value {
        let response = self.get(path, Role::Operator).await;
        assert_eq!(response.status(), StatusCode::OK, "GET {path}");
        response.json().await.unwrap()
    }

    pub async fn create_mission(&self) -> Uuid {
        let response = self.post("/api/missions", Role::Operator, &json!({ "name": "test mission" })).await;
        assert_eq!(response.status(), StatusCode::CREATED);
        response.json::<Mission>().await.unwrap().id
    }

    pub async fn report_error(&self, mission: Uuid, error_type: &str, confidence: f64, key: &str) -> Response {
        let body = json!({
            "mission_id": mission, "error_type": error_type, "message": "seen in a test",
            "severity": "high", "confidence": confidence, "idempotency_key": key,
        });
        self.post("/api/errors", Role::Operator, &body).await
    }

    /// Reports an error that must be accepted, returning the receipt.
    pub async fn accepted_error(&self, mission: Uuid, error_type: &str, confidence: f64) -> Value {
        let response = self.report_error(mission, error_type, confidence, &Uuid::new_v4().to_string()).await;
        assert_eq!(response.status(), StatusCode::ACCEPTED);
        response.json().await.unwrap()
    }

    pub async fn decide(&self, approval: &str, role: Role, decision: &str) -> Response {
        let path = format!("/api/approvals/{approval}/decision");
        self.post(&path, role, &json!({ "decision": decision, "reason": "decided in a test" })).await
    }

    pub async fn set_fault(&self, mission: Option<Uuid>, kind: Value) {
        let kind = serde_json::from_value(kind).expect("a fault kind the API knows");
        self.client.set_fault(&FaultRequest { mission_id: mission, kind }).await.unwrap();
    }

    /// The idempotency keys of every client write stored: contracts, chat
    /// messages the clients sent, and submitted tasks.
    pub async fn stored_write_keys(&self) -> std::collections::BTreeSet<String> {
        let rows = self
            .database
            .client()
            .await
            .query(
                "SELECT idempotency_key FROM action_contracts UNION ALL
                 SELECT idempotency_key FROM chat_messages WHERE role = 'user' UNION ALL
                 SELECT idempotency_key FROM tasks WHERE kind = 'submitted'",
                &[],
            )
            .await
            .unwrap();
        rows.iter().map(|r| r.get(0)).collect()
    }

    /// Waits until every committed event is chained into the immutable log.
    pub async fn wait_for_zero_log_lag(&self) {
        let zero = self.client.await_zero_log_lag(Duration::from_secs(5)).await.unwrap();
        assert!(zero, "log lag never reached zero");
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}
