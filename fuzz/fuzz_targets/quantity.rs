//! The quantity parser (`500m`, `1Gi`, `1e3`): no panic; a canonical spelling parses back to
//! itself.
#![no_main]
use driftguard_core::quantity::{canonical, parse_nanos};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(s) = std::str::from_utf8(data) else {
        return;
    };
    let _ = parse_nanos(s);
    if let Some(c) = canonical(s) {
        assert_eq!(canonical(&c).as_deref(), Some(c.as_str()), "{s:?} -> {c:?}");
    }
});
