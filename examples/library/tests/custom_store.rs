//! The store conformance suite, run against the example's own store: what a third-party store
//! does to prove it means what every DriftGuard store means.

use std::sync::Arc;

use driftguard_core::ports::DriftStore;
use driftguard_examples::JsonFileStore;

async fn fresh() -> Arc<dyn DriftStore> {
    // each store keeps its file in a folder of its own that outlives the test's store
    let dir = tempfile::tempdir().expect("temp dir").keep();
    Arc::new(JsonFileStore::open(dir.join("history.json")).expect("opens"))
}

driftguard_store::conformance_tests!(fresh);

#[tokio::test]
async fn what_it_holds_survives_a_reopen() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("history.json");
    let store = JsonFileStore::open(&path).expect("opens");
    for b in driftguard_store::conformance::dataset() {
        store.commit(&b).await.expect("commit");
    }
    let q = driftguard_core::query::DriftQuery {
        status: driftguard_core::query::DriftStatus::All,
        limit: 1000,
        ..Default::default()
    };
    let before = store.drifts(&q).await.expect("drifts");
    let again = JsonFileStore::open(&path).expect("reopens");
    assert_eq!(again.drifts(&q).await.expect("drifts"), before);
    assert!(!before.items.is_empty());
}
