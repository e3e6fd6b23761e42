//! Integration tests: the real `grace` library and binary against a real
//! PostgreSQL, one fresh database per test. One binary, so the server and the
//! migrated template are set up once.

pub mod backend;
mod bootstrap;
mod cli;
mod compose;
mod database_tls;
mod distributed_load;
mod health;
mod helpers;
mod immutable_log;
mod orphans;
mod private_postgres;
mod schema;
mod serve;
mod service_proofs;
mod statements;
mod workloads;
