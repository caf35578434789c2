//! # driftguard-sources
//!
//! Adapters for the desired and live sides: Git through `gix` ([`git`]), plain manifest
//! folders and saved dumps of live objects ([`files`]), renderers of the desired side (Helm
//! charts, commands: [`render`]), and live clusters through `kube` ([`kube`]); and the API
//! server's audit log files ([`audit_log`]). Each turns IO into core values and nothing more.
//! Every program they run (`git`, `helm`, kustomize, a command, terraform) runs through
//! [`process`]: a timeout, output caps, its process group, a scrubbed environment. With the
//! `conformance` feature, the `conformance` module checks that every source means the same
//! thing.

pub mod audit_log;
#[cfg(feature = "conformance")]
pub mod conformance;
pub mod files;
pub mod git;
pub mod kube;
pub mod process;
pub mod render;
pub mod terraform;
pub(crate) mod tree;
