//! Rebuild when a migration changes: refinery embeds `migrations/` at compile time,
//! and cargo would not otherwise notice an edited .sql file.
fn main() {
    println!("cargo:rerun-if-changed=migrations");
}
