//! A live dump (`kubectl get -o yaml` output) read and indexed as the live side of a scan; the
//! bounded reader never holds more objects than its limit, and reads what the plain one reads
//! when the dump fits.
#![no_main]
use driftguard_core::engine::{Engine, EnvironmentSpec};
use driftguard_core::manifest::{parse_dump, parse_file};
use driftguard_core::normalize::{Normalizer, SecretKey};
use driftguard_core::ports::{DesiredSet, LiveSnapshot};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    const MAX: usize = 64;
    let plain = parse_file("dump.yaml", text, None);
    let (live, _errors) = match parse_dump("dump.yaml", text, MAX) {
        Ok(p) => {
            assert!(p.objects.len() <= MAX);
            assert_eq!(p.objects.len(), plain.objects.len());
            p.into_live()
        }
        Err(e) => {
            assert!(e.found > MAX);
            return;
        }
    };
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
            objects: live.into(),
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
