//! The backend (`grace serve`) over real HTTP against a real Postgres.

mod app;
mod chaos;
mod input;
mod log;
mod pipeline;
mod replicas;
mod traffic;
