//! One small function per command: parse its arguments into domain types,
//! call the library, print what it returns, and say how it ended.

pub mod load;
pub mod report;
pub mod scenario;
pub mod service;
