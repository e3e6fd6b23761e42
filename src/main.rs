//! The `grace` binary: parse arguments, set up logging and signals, hand over to
//! the library. Usage errors exit 2 (clap's convention, and DESIGN.md's).

use clap::Parser;
use std::io::IsTerminal;
use std::process::ExitCode;
use tracing_subscriber::EnvFilter;

fn main() -> ExitCode {
    let cli = grace::cli::Cli::parse();
    // Logs go to stderr so that stdout carries only results (text or --json),
    // around a live progress bar when one is drawn; colour only on a
    // terminal, and never under NO_COLOR (https://no-color.org).
    let colour = std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty());
    tracing_subscriber::fmt()
        .with_writer(|| grace::console::Stderr)
        .with_ansi(colour)
        .with_env_filter(EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("warn,grace=info")))
        .init();
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("error: could not start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    runtime.block_on(async {
        match grace::shutdown::on_signal() {
            Ok(shutdown) => grace::cli::run(cli, shutdown).await,
            Err(e) => {
                eprintln!("error: could not install signal handlers: {e}");
                ExitCode::FAILURE
            }
        }
    })
}
