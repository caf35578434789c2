//! Prints the engine's throughput (normalize both sides, hash, classify) for 10,000 and
//! 100,000 objects, by wall time and by this thread's CPU time, so the figure means something
//! on a busy machine too. The criterion bench `engine` measures the same work.
//!
//! The inputs are parsed once; every round normalizes, hashes and classifies every object of
//! both sides again from those parsed values (the engine only reads them).

use std::time::Instant;

use driftguard_core::prelude::*;

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// CPU seconds used by this thread (Linux: /proc/thread-self/stat, fields utime + stime).
fn thread_cpu_seconds() -> f64 {
    let stat = std::fs::read_to_string("/proc/thread-self/stat").unwrap_or_default();
    let after = stat.rsplit_once(')').map_or("", |(_, rest)| rest);
    let fields: Vec<&str> = after.split_whitespace().collect();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|f| f.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    // after the command name: state is field 0, utime 11, stime 12 (clock ticks, 100/s)
    (ticks(11) + ticks(12)) / 100.0
}

/// Touches what the engine must read of a parsed value (every key and string, not `status` or
/// `managedFields`): the memory-bound floor under any engine.
fn touch(v: &serde_json::Value) -> usize {
    use serde_json::Value;
    let first = |s: &str| usize::from(s.as_bytes().first().copied().unwrap_or(0));
    match v {
        Value::String(s) => first(s),
        Value::Array(items) => items.iter().map(touch).sum::<usize>() + 1,
        Value::Object(map) => map
            .iter()
            .filter(|(k, _)| k.as_str() != "status" && k.as_str() != "managedFields")
            .map(|(k, v)| first(k) + touch(v))
            .sum::<usize>(),
        _ => 1,
    }
}

fn main() {
    let engine = Engine::new(
        EnvironmentSpec::new("bench"),
        Normalizer::new(SecretKey::new(b"bench-key".to_vec())),
    );
    // ENGINE_SIZES=10000 ENGINE_ROUNDS=50 for profiling one size
    let sizes: Vec<usize> = std::env::var("ENGINE_SIZES")
        .ok()
        .map(|s| s.split(',').filter_map(|n| n.trim().parse().ok()).collect())
        .unwrap_or_else(|| vec![10_000, 100_000]);
    let rounds_env: Option<usize> = std::env::var("ENGINE_ROUNDS")
        .ok()
        .and_then(|r| r.parse().ok());
    for n in sizes {
        let (desired, live) = driftguard_benches::engine_inputs(n);
        let rounds = rounds_env.unwrap_or(if n <= 10_000 { 5 } else { 2 });
        let (mut wall, mut cpu) = (0.0f64, 0.0f64);
        let (mut cpu_index, mut cpu_observe) = (0.0f64, 0.0f64);
        for _ in 0..rounds {
            let (t, c) = (Instant::now(), thread_cpu_seconds());
            let st = engine.index(&desired, &live);
            let c1 = thread_cpu_seconds();
            cpu_index += c1 - c;
            let mut drifted = 0usize;
            for id in st.desired.keys() {
                if matches!(&engine.observe(&st, id).presence, Presence::Both(c) if !c.in_sync()) {
                    drifted += 1;
                }
            }
            cpu_observe += thread_cpu_seconds() - c1;
            drop(st);
            wall += t.elapsed().as_secs_f64();
            cpu += thread_cpu_seconds() - c;
            assert_eq!(drifted, n / 10);
        }
        let c = thread_cpu_seconds();
        let mut touched = 0usize;
        for _ in 0..rounds {
            touched += desired
                .objects
                .iter()
                .map(|m| touch(&m.object.0))
                .sum::<usize>();
            touched += live
                .objects
                .iter()
                .map(|l| touch(&l.object.0))
                .sum::<usize>();
        }
        let cpu_touch = thread_cpu_seconds() - c;
        assert!(touched > 0);
        let objects = (n * rounds) as f64;
        println!(
            "{n:>7} objects: {:>9.0} objects/s by wall time, {:>9.0} objects/s by CPU time",
            objects / wall,
            objects / cpu.max(1e-9)
        );
        println!(
            "         CPU per object: normalize and index both sides {:.1} µs, compare and classify {:.1} µs, drop {:.1} µs",
            cpu_index / objects * 1e6,
            cpu_observe / objects * 1e6,
            (cpu - cpu_index - cpu_observe) / objects * 1e6
        );
        println!(
            "         reading the parsed inputs alone (both sides, no engine): {:.1} µs per object",
            cpu_touch / objects * 1e6
        );
    }
}
