//! The configuration parser, its validation and its error locator: every problem names the
//! file, and a located line is within the text.
#![no_main]
use std::path::Path;

use driftguard_server::config::{locate, Config};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    // lines as YAML counts them: a lone CR breaks a line too (an early run of this target
    // counted with `str::lines`, which does not, and took the parser's right answer for a
    // bug); an upper bound: CRLF counts twice
    let lines = text.lines().count() + text.matches('\r').count();
    match Config::from_text(Path::new("fuzz.yaml"), text) {
        Ok(c) => {
            for w in &c.warnings {
                assert!(w.line <= lines.max(1), "{w}");
            }
        }
        Err(e) => {
            for p in &e.problems {
                assert_eq!(p.file, "fuzz.yaml");
                assert!(p.line <= lines.max(1) + 1, "{p}");
            }
        }
    }
    // the locator on a key path made of the text's own words
    let path: String = text
        .split(|c: char| !c.is_ascii_alphanumeric())
        .filter(|w| !w.is_empty())
        .take(4)
        .collect::<Vec<_>>()
        .join(".");
    if let Some(line) = locate(text, &path) {
        assert!(line >= 1 && line <= lines, "{path}: {line} of {lines}");
    }
});
