//! The manifest parser (multi-document YAML and JSON) and the normalization of what it reads:
//! no panic, no hang, every error names the file.
#![no_main]
use driftguard_core::manifest::parse_file;
use driftguard_core::normalize::{Normalizer, SecretKey};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((first, rest)) = data.split_first() else {
        return;
    };
    let Ok(text) = std::str::from_utf8(rest) else {
        return;
    };
    let name = if first & 1 == 1 { "f.json" } else { "f.yaml" };
    let parsed = parse_file(name, text, None);
    for e in &parsed.errors {
        assert_eq!(e.file, name);
    }
    let normalizer = Normalizer::new(SecretKey::new(b"fuzz".to_vec()));
    for (object, _) in &parsed.objects {
        let _ = normalizer.normalize("fuzz", object.value(), &[]);
    }
});
