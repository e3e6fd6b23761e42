//! The backend (`grace serve`) over real HTTP against a real Postgres.

mod app;
pub use app::TestApp;
mod chaos;
mod input;
mod insights;
mod lists;
mod load;
mod log;
mod openapi;
mod outage;
mod pipeline;
mod replicas;
mod traffic;
