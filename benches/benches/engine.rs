//! Normalize, hash and classify 10,000 and 100,000 parsed objects (Deployments, Services,
//! ConfigMaps, Secrets with realistic sizes; one in ten drifted). Target: at least 200,000
//! objects/s on one core. The inputs are parsed once; every iteration normalizes, hashes and
//! classifies every object of both sides again from them (the engine only reads them).

#![allow(missing_docs)]

use criterion::{criterion_group, criterion_main, Criterion, Throughput};

/// The binaries use mimalloc; so does the benchmark.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;
use driftguard_core::prelude::*;

fn bench(c: &mut Criterion) {
    let mut group = c.benchmark_group("normalize_hash_classify");
    group.sample_size(10);
    for n in [10_000usize, 100_000] {
        let (desired, live) = driftguard_benches::engine_inputs(n);
        let engine = Engine::new(
            EnvironmentSpec::new("bench"),
            Normalizer::new(SecretKey::new(b"bench-key".to_vec())),
        );
        group.throughput(Throughput::Elements(n as u64));
        group.bench_function(format!("{n}"), |b| {
            b.iter(|| {
                let st = engine.index(&desired, &live);
                let mut drifted = 0usize;
                for id in st.desired.keys() {
                    let obs = engine.observe(&st, id);
                    if matches!(&obs.presence, Presence::Both(c) if !c.in_sync()) {
                        drifted += 1;
                    }
                }
                assert_eq!(drifted, n / 10);
                drifted
            })
        });
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
