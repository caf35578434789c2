//! The API's query parameters (`/api/v1/drifts?...`): no panic; what is accepted is a query
//! within the page limits.
#![no_main]
use driftguard_server::queries::{DriftFilter, MAX_LIMIT};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(filter) = serde_urlencoded::from_bytes::<DriftFilter>(data) else {
        return;
    };
    if let Ok(q) = filter.query() {
        assert!(q.limit >= 1 && q.limit <= MAX_LIMIT);
    }
});
