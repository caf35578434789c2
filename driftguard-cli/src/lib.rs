//! # driftguard-cli
//!
//! The library part of the `driftguard` binary: the configuration file model and loading
//! ([`config`]), the wiring of sources, stores and the clock from a configuration ([`setup`]),
//! and the renderings of scan results and history ([`output`]). The server uses [`config`] to
//! read the same file.
//!
//! Exit codes of the binary (like `terraform plan -detailed-exitcode`):
//!
//! | code | meaning |
//! | --- | --- |
//! | 0 | no drift (at or above `--fail-on`) |
//! | 1 | error (bad configuration, unreachable source, malformed input) |
//! | 2 | drift found (at or above `--fail-on`) |

pub mod config;
pub mod output;
pub mod setup;

/// No drift.
pub const EXIT_OK: u8 = 0;
/// An error.
pub const EXIT_ERROR: u8 = 1;
/// Drift found.
pub const EXIT_DRIFT: u8 = 2;
