//! The sign-in page's `next` parameter (`/login?next=...`): no panic; what is kept is a path of
//! this site, fit for a `Location` header, that a browser resolving it against the server's
//! origin (WHATWG URL rules: tabs and newlines dropped, `\` read as `/`) keeps on that origin.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(next) = std::str::from_utf8(data) else {
        return;
    };
    let kept = driftguard_server::web::local_path(Some(next));
    assert!(kept.starts_with('/'), "{kept:?}");
    assert!(!kept.starts_with("//") && !kept.starts_with("/\\"), "{kept:?}");
    assert!(
        kept.bytes().all(|b| b.is_ascii_graphic()),
        "not a clean header value: {kept:?}"
    );
    // a browser's reading of it stays on this origin
    let base = url::Url::parse("https://driftguard.example/").expect("a base URL");
    let stripped: String = kept.chars().filter(|c| !matches!(c, '\t' | '\n' | '\r')).collect();
    let url = base.join(&stripped.replace('\\', "/")).expect("a kept path resolves");
    assert_eq!(url.origin(), base.origin(), "{kept:?} leaves the site");
});
