//! Embeds `migrations/` in the binary: writes the list of migration files —
//! each one's name and its SQL, by `include_str!` — that `db::migrations`
//! hands to refinery, in version order, and rebuilds when one changes.
//! (refinery's `embed_migrations!` macro did the same, but as a procedural
//! macro it made a cold build compile regex and refinery a second time, for
//! the compiler itself.)
use std::fmt::Write;
use std::path::Path;

fn main() {
    println!("cargo:rerun-if-changed=migrations");
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("migrations");
    let mut migrations: Vec<(u32, String, String)> = std::fs::read_dir(&dir)
        .expect("migrations/ is readable")
        .map(|entry| entry.expect("migrations/ is readable").path())
        .filter(|path| path.extension().is_some_and(|extension| extension == "sql"))
        .map(|path| {
            let stem = path.file_stem().and_then(|stem| stem.to_str()).expect("a UTF-8 file name").to_string();
            (version(&stem), stem, path.display().to_string())
        })
        .collect();
    migrations.sort();
    for pair in migrations.windows(2) {
        assert!(pair[0].0 != pair[1].0, "migrations {} and {} share a version", pair[0].1, pair[1].1);
    }
    let mut list = String::from("&[\n");
    for (_, name, path) in &migrations {
        writeln!(list, "    ({name:?}, include_str!({path:?})),").expect("writing to a String");
    }
    list.push(']');
    let out = Path::new(&std::env::var("OUT_DIR").expect("cargo sets OUT_DIR")).join("migrations.rs");
    std::fs::write(out, list).expect("OUT_DIR is writable");
}

/// The version of a migration named `V<version>__<name>`, as refinery reads
/// it; any other name in `migrations/` stops the build.
fn version(stem: &str) -> u32 {
    let named = stem
        .strip_prefix('V')
        .and_then(|rest| rest.split_once("__"))
        .filter(|(_, name)| !name.is_empty())
        .and_then(|(version, _)| version.parse().ok());
    named.unwrap_or_else(|| panic!("migrations/{stem}.sql is not named V<version>__<name>.sql"))
}
