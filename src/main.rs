//! The `grace` binary. Everything — arguments, logging, signals, exit codes
//! (usage errors exit 2, clap's convention and docs/design.md's) — is in
//! [`grace::cli::main`], so the library compiles it once.

fn main() -> std::process::ExitCode {
    grace::cli::main()
}
