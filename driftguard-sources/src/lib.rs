//! # driftguard-sources
//!
//! Adapters for the desired and live sides: Git through `gix` ([`git`]), plain manifest
//! folders and saved dumps of live objects ([`files`]), and live clusters through `kube`
//! ([`kube`]). Each turns IO into core values and nothing more.

pub mod files;
pub mod git;
pub mod kube;
