//! Git push webhook payloads (GitHub, GitLab, Gitea): no panic; a push always names a
//! repository or is refused.
#![no_main]
use driftguard_server::push::read_push;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((first, body)) = data.split_first() else {
        return;
    };
    let event = match first % 4 {
        0 => None,
        1 => Some("push"),
        2 => Some("Push Hook"),
        _ => Some("ping"),
    };
    if let Ok(p) = read_push(event, body) {
        assert!(!p.is_push || !p.repositories.is_empty());
    }
});
