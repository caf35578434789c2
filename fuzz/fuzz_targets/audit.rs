//! Audit event payloads: an `EventList` as the API server's audit webhook sends it, and JSON
//! lines as `--audit-log-path` writes them; no panic, and what is read answers every question
//! the attribution asks of it.
#![no_main]
use driftguard_core::audit::{parse_event_line, parse_event_list, user_agent_product};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((first, body)) = data.split_first() else {
        return;
    };
    let events = if first & 1 == 0 {
        parse_event_list(body).unwrap_or_default()
    } else {
        body.split(|b| *b == b'\n')
            .filter_map(|line| parse_event_line(line).ok())
            .collect()
    };
    for e in &events {
        let _ = e.time();
        let _ = e.succeeded();
        let _ = e.dry_run();
        let _ = e.is_write();
        let _ = e.query_param("fieldManager");
        let manager = e.field_manager();
        let _ = user_agent_product(&manager);
    }
});
