//! # driftguard-cli
//!
//! The library part of the `driftguard` binary: the renderings of scan results and history
//! ([`output`]) and the exit codes. The configuration file's model and the wiring of sources
//! and stores live in the server crate (`driftguard_server::config`, `driftguard_server::setup`),
//! which builds the whole service; [`config`] re-exports the model.
//!
//! Exit codes of the binary (like `terraform plan -detailed-exitcode`):
//!
//! | code | meaning |
//! | --- | --- |
//! | 0 | no drift (at or above `--fail-on`) |
//! | 1 | error (bad configuration, unreachable source, malformed input) |
//! | 2 | drift found (at or above `--fail-on`); for `preview`, the preview holds what `--fail-on` names (`overwrites`, `conflicts`, `high`) |

pub mod output;

/// The configuration file's model (`driftguard_server::config`).
pub mod config {
    pub use driftguard_server::config::*;
}

/// No drift.
pub const EXIT_OK: u8 = 0;
/// An error.
pub const EXIT_ERROR: u8 = 1;
/// Drift found.
pub const EXIT_DRIFT: u8 = 2;
