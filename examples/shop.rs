//! A small orders API on PostgreSQL that is not the Grace backend: customers,
//! and orders that reference them, each order idempotent by the key its
//! client sends. It is the service of the README's second workload example
//! (`workloads/shop.toml`), and the one `tests/integration/service_proofs.rs`
//! loads — that test builds it with a [`Flaw`] to prove the proofs catch it.
//!
//! ```sh
//! cargo run --example shop -- --database-url postgres://… --listen 127.0.0.1:8080
//! ```
//! It creates its two tables (and 100 customers) when they are missing.

// The tests include this file as a module: they use the flaws, not `main`.
#![allow(dead_code)]

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{Json, Router};
use clap::Parser;
use grace::configuration::DatabaseUrl;
use serde_json::{json, Value};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use tokio_postgres::Client;

/// What the shop does wrong with its fifth order (the tests' faults).
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Flaw {
    Honest,
    /// Answers 201 and stores nothing.
    DropsOne,
    /// Stores it twice, answers 201.
    StoresOneTwice,
    /// Stores it, answers 422.
    RefusesOneItStored,
}

pub struct Shop {
    db: Client,
    flaw: Flaw,
    /// New orders placed so far.
    pub orders: AtomicU64,
    /// The key of the order the flaw hit.
    pub flawed: Mutex<Option<String>>,
}

impl Shop {
    pub fn new(db: Client, flaw: Flaw) -> Arc<Self> {
        Arc::new(Self { db, flaw, orders: AtomicU64::new(0), flawed: Mutex::new(None) })
    }
}

/// The shop's tables, made when missing: 100 customers, and their orders
/// (the key's index is not unique, so a flawed shop can store one twice).
pub async fn create_tables(db: &Client) -> Result<(), tokio_postgres::Error> {
    db.batch_execute(
        "CREATE TABLE IF NOT EXISTS customers (id bigint PRIMARY KEY, email text NOT NULL);
         INSERT INTO customers SELECT n, 'c' || n || '@example.com' FROM generate_series(1, 100) n
             ON CONFLICT (id) DO NOTHING;
         CREATE TABLE IF NOT EXISTS orders (
             id bigserial PRIMARY KEY,
             customer_id bigint NOT NULL REFERENCES customers (id),
             item text NOT NULL,
             idempotency_key text NOT NULL);
         CREATE INDEX IF NOT EXISTS orders_idempotency_key_idx ON orders (idempotency_key);",
    )
    .await
}

/// `GET /` (it answers), `POST /orders`, `GET /orders/{id}`.
pub fn router(shop: Arc<Shop>) -> Router {
    Router::new()
        .route("/", get(|| async { "shop" }))
        .route("/orders", post(place))
        .route("/orders/{id}", get(read))
        .with_state(shop)
}

/// Places an order once per key: the same key again answers the order it made.
async fn place(State(shop): State<Arc<Shop>>, Json(order): Json<Value>) -> (StatusCode, Json<Value>) {
    let (customer, item, key) =
        (order["customer_id"].as_i64(), order["item"].as_str(), order["idempotency_key"].as_str());
    let (Some(customer), Some(item), Some(key)) = (customer, item, key) else {
        let error = "customer_id (a number), item and idempotency_key (strings) are required";
        return (StatusCode::UNPROCESSABLE_ENTITY, Json(json!({ "error": error })));
    };
    const INSERT: &str = "INSERT INTO orders (customer_id, item, idempotency_key) VALUES ($1, $2, $3) RETURNING id";
    let answer = async {
        if let Some(row) = shop.db.query_opt("SELECT id FROM orders WHERE idempotency_key = $1", &[&key]).await? {
            return Ok((StatusCode::CREATED, row.get::<_, i64>(0)));
        }
        let flaw = if shop.orders.fetch_add(1, Ordering::SeqCst) == 4 { shop.flaw } else { Flaw::Honest };
        if flaw != Flaw::Honest {
            *shop.flawed.lock().expect("never poisoned") = Some(key.to_string());
        }
        let id: i64 = match flaw {
            Flaw::DropsOne => 0,
            _ => shop.db.query_one(INSERT, &[&customer, &item, &key]).await?.get(0),
        };
        match flaw {
            Flaw::StoresOneTwice => {
                shop.db.query_one(INSERT, &[&customer, &item, &key]).await?;
            }
            Flaw::RefusesOneItStored => return Ok((StatusCode::UNPROCESSABLE_ENTITY, id)),
            Flaw::Honest | Flaw::DropsOne => {}
        }
        Ok::<_, tokio_postgres::Error>((StatusCode::CREATED, id))
    };
    match answer.await {
        Ok((status, id)) if status == StatusCode::CREATED => (status, Json(json!({ "id": id }))),
        Ok((status, _)) => (status, Json(json!({ "error": "out of stock" }))),
        // No customer with that id, say: the client's to fix.
        Err(e) if e.as_db_error().is_some() => {
            (StatusCode::UNPROCESSABLE_ENTITY, Json(json!({ "error": e.as_db_error().map(|d| d.message()) })))
        }
        Err(_) => (StatusCode::SERVICE_UNAVAILABLE, Json(json!({ "error": "the database is unavailable" }))),
    }
}

/// Every order is paid at once: a poll's `until` holds on the first read.
async fn read(Path(id): Path<i64>) -> Json<Value> {
    Json(json!({ "id": id, "status": "paid" }))
}

#[derive(Parser)]
#[command(about = "A small orders API on PostgreSQL, for trying `grace load --workload workloads/shop.toml`")]
struct Args {
    /// Its database (the tables are made when missing).
    #[arg(long, env = "SHOP_DATABASE_URL", hide_env_values = true)]
    database_url: String,
    #[arg(long, default_value = "127.0.0.1:8080")]
    listen: std::net::SocketAddr,
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args = Args::parse();
    let database = DatabaseUrl::parse(&args.database_url)?;
    let db = grace::db::connect(&database).await?;
    create_tables(&db).await?;
    let listener = tokio::net::TcpListener::bind(args.listen).await?;
    println!("shop listening on http://{}", listener.local_addr()?);
    axum::serve(listener, router(Shop::new(db, Flaw::Honest))).await?;
    Ok(())
}
