//! # driftguard-examples
//!
//! DriftGuard extended through its traits, as a third party would do it: a live source of your
//! own ([`JsonDirLiveSource`]: one JSON file per object, as a backup tool might write them), a
//! notifier of your own ([`LineNotifier`]: one line per event on any writer) and a store of
//! your own ([`JsonFileStore`]: the whole history in one JSON file, which passes the store
//! conformance suite in `tests/custom_store.rs`). The programs in `examples/` use them, and the
//! engine and the shipped sources directly; the README's "Use it as a library" and "Extend it"
//! sections walk through them. `scripts/test.sh` runs every one.

mod live;
mod notifier;
mod store;

pub use live::JsonDirLiveSource;
pub use notifier::LineNotifier;
pub use store::JsonFileStore;

use std::path::PathBuf;

/// The repository's root (the examples read the shipped demo under `examples/demo/`).
pub fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .unwrap_or_else(|_| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../.."))
}
