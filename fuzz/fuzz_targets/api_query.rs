//! The API's query parameters (`/api/v1/drifts?...`): no panic; what is accepted is a query
//! within the page limits.
#![no_main]
use driftguard_server::api::DriftParams;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(params) = serde_urlencoded::from_bytes::<DriftParams>(data) else {
        return;
    };
    if let Ok(q) = params.query() {
        assert!(q.limit >= 1 && q.limit <= driftguard_server::api::MAX_LIMIT);
    }
});
