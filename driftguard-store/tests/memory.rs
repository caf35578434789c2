//! The conformance suite against the reference in-memory store (checks the suite itself), and
//! against the buffering wrapper over it.

use std::sync::Arc;

use driftguard_core::memory::MemoryStore;
use driftguard_core::ports::DriftStore;

async fn fresh() -> Arc<dyn DriftStore> {
    Arc::new(MemoryStore::new())
}

driftguard_store::conformance_tests!(fresh);

/// `BufferedStore` over the in-memory store.
mod buffered {
    use std::sync::Arc;
    use std::time::Duration;

    use driftguard_core::memory::MemoryStore;
    use driftguard_core::ports::DriftStore;
    use driftguard_store::BufferedStore;

    async fn fresh() -> Arc<dyn DriftStore> {
        Arc::new(BufferedStore::new(
            Arc::new(MemoryStore::new()),
            100,
            Duration::from_millis(50),
        ))
    }

    driftguard_store::conformance_tests!(fresh);
}
