//! The conformance suite against the reference in-memory store (checks the suite itself).

use std::sync::Arc;

use driftguard_core::memory::MemoryStore;
use driftguard_core::ports::DriftStore;

async fn fresh() -> Arc<dyn DriftStore> {
    Arc::new(MemoryStore::new())
}

driftguard_store::conformance_tests!(fresh);
