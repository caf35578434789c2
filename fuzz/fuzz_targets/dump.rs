//! A live dump (`kubectl get -o yaml` output) read and indexed as the live side of a scan.
#![no_main]
use driftguard_core::engine::{Engine, EnvironmentSpec};
use driftguard_core::manifest::parse_file;
use driftguard_core::normalize::{Normalizer, SecretKey};
use driftguard_core::ports::{DesiredSet, LiveSnapshot};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let (live, _errors) = parse_file("dump.yaml", text, None).into_live();
    let engine = Engine::new(
        EnvironmentSpec::new("fuzz"),
        Normalizer::new(SecretKey::new(b"fuzz".to_vec())),
    );
    let desired = DesiredSet {
        objects: parse_file("desired.yaml", text, None).into_manifests().0,
        ..DesiredSet::default()
    };
    let st = engine.index(
        &desired,
        &LiveSnapshot {
            objects: live,
            errors: Vec::new(),
        },
    );
    let mut ids: Vec<_> = st.desired.keys().chain(st.live.keys()).cloned().collect();
    ids.sort();
    ids.dedup();
    for id in &ids {
        let _ = engine.observe(&st, id);
    }
});
