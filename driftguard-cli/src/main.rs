//! `driftguard`: one-shot drift scans (a CI guardrail), history queries, explain, and the
//! server.
//!
//! Exit codes: 0 no drift, 2 drift found (at or above `--fail-on`), 1 error.
//!
//! Code map: `args` (flags, clap derive), `plan` (flags to configuration), `commands` (one
//! module per command), `progress` (the spinner); tables and JSON are in the library's
//! `output`.

mod args;
mod commands;
mod plan;
mod progress;

use std::io::IsTerminal;
use std::process::ExitCode;

use clap::Parser;
use driftguard_cli::{EXIT_ERROR, EXIT_OK};
use driftguard_core::error::chain;

use crate::args::{Cli, Global};

/// mimalloc, not glibc's malloc: with glibc's per-thread arenas the memory of a first scan
/// stayed with the process. `serve` of 50,000 watched objects held 2,513 MB for good with
/// glibc (1,669 MB with `MALLOC_ARENA_MAX=2`); with mimalloc 1,523 MB after the first scan and
/// 539 MB a minute later, about its live heap (fleet_bench, docs/scale.md, issue #30). The
/// `system-allocator` feature leaves it out, for heap profilers that follow malloc.
#[cfg(not(feature = "system-allocator"))]
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;
use crate::commands::color_enabled;

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            // usage errors exit 1 (2 means drift); help and version exit 0
            let code = if e.use_stderr() { EXIT_ERROR } else { EXIT_OK };
            let _ = e.print();
            return ExitCode::from(code);
        }
    };
    init_logging(&cli.global);
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the runtime: {e}");
            return ExitCode::from(EXIT_ERROR);
        }
    };
    match rt.block_on(commands::run(cli)) {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            match e.downcast_ref::<driftguard_server::config::ConfigError>() {
                // one line per problem
                Some(ce) => {
                    for p in &ce.problems {
                        eprintln!("error: {p}");
                    }
                }
                None => eprintln!("error: {}", chain(e.as_ref())),
            }
            ExitCode::from(EXIT_ERROR)
        }
    }
}

fn init_logging(g: &Global) {
    use tracing_subscriber::EnvFilter;
    let level = if g.quiet {
        "error"
    } else {
        match g.verbose {
            0 => "warn",
            1 => "info",
            2 => "debug",
            _ => "trace",
        }
    };
    // Never below info for the clients that log what they receive: the kube client logs an API
    // server's refusal at debug (`Unsuccessful: Status { message, .. }`) and a Status body at
    // trace, and such a message can quote a Secret's value; the MongoDB driver logs whole
    // commands at debug. DriftGuard's own logs say what failed, with Secret messages replaced.
    const BODY_LOGGERS: &str = "kube_client=info,kube=info,mongodb=info";
    let filter = if g.verbose == 0 {
        // the kube client logs connection failures as errors: the CLI reports them itself
        match std::env::var("RUST_LOG") {
            Ok(own) if !own.trim().is_empty() => EnvFilter::new(format!("{own},{BODY_LOGGERS}")),
            _ => EnvFilter::new(format!("{level},kube_client=off,kube=off")),
        }
    } else {
        EnvFilter::new(format!("{level},{BODY_LOGGERS}"))
    };
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(color_enabled(g.color, std::io::stderr().is_terminal()))
        .with_target(false)
        .try_init();
}
