//! What a scan needs besides its environment ([`ScanContext`]: the store, metrics, the clock,
//! the response cache and the live feed), and the two pieces of it that stand alone: the
//! system clock ([`SystemClock`]) and the cache of read-only answers ([`ResponseCache`]).
//!
//! It stands below everything that runs scans or keeps time (`environment`, `supervisor`,
//! `remediate`, `setup`, `ha`) and below the server's shared state, which hands out a context
//! with `AppState::scan_context`.

use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use driftguard_core::ports::{Clock, DriftStore};

use crate::feed::EventFeed;
use crate::metrics::Metrics;

/// The system clock.
#[derive(Clone, Copy, Debug, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> DateTime<Utc> {
        Utc::now()
    }
}

/// What scans need besides the environment.
#[derive(Clone)]
pub struct ScanContext {
    /// The store.
    pub store: Arc<dyn DriftStore>,
    /// Metrics.
    pub metrics: Arc<Metrics>,
    /// Time.
    pub clock: Arc<dyn Clock>,
    /// Answers cached by the API, invalidated after every write.
    pub cache: Arc<ResponseCache>,
    /// Where finished scans are announced to open pages and event streams.
    pub feed: Arc<EventFeed>,
}

impl ScanContext {
    /// A context with its own (unshared) cache.
    pub fn new(store: Arc<dyn DriftStore>, metrics: Arc<Metrics>, clock: Arc<dyn Clock>) -> Self {
        ScanContext {
            store,
            metrics,
            clock,
            cache: Arc::new(ResponseCache::new(Duration::ZERO)),
            feed: Arc::new(EventFeed::new()),
        }
    }
}

/// Serialized answers of read-only queries, keyed by the normalized query. An entry is used
/// only while no scan or live change of this process has written since it was made, and for
/// at most `ttl` (a bound on staleness when another process writes to the same store).
#[derive(Debug)]
pub struct ResponseCache {
    generation: std::sync::atomic::AtomicU64,
    entries: RwLock<std::collections::HashMap<String, (u64, Instant, axum::body::Bytes)>>,
    ttl: Duration,
}

/// Most cached answers kept.
const CACHE_ENTRIES: usize = 512;

impl ResponseCache {
    /// A cache keeping answers for at most `ttl` (zero: disabled).
    pub fn new(ttl: Duration) -> Self {
        ResponseCache {
            generation: std::sync::atomic::AtomicU64::new(0),
            entries: RwLock::new(std::collections::HashMap::new()),
            ttl,
        }
    }

    /// The current generation (read it before querying the store).
    pub fn generation(&self) -> u64 {
        self.generation.load(std::sync::atomic::Ordering::Acquire)
    }

    /// Forgets everything (after a write).
    pub fn invalidate(&self) {
        self.generation
            .fetch_add(1, std::sync::atomic::Ordering::AcqRel);
    }

    /// A fresh cached answer.
    pub fn get(&self, key: &str) -> Option<axum::body::Bytes> {
        if self.ttl.is_zero() {
            return None;
        }
        let generation = self.generation();
        let entries = self.entries.read().expect("cache lock is never poisoned");
        entries
            .get(key)
            .filter(|(g, at, _)| *g == generation && at.elapsed() < self.ttl)
            .map(|(_, _, b)| b.clone())
    }

    /// Keeps an answer computed at `generation`.
    pub fn put(&self, key: String, generation: u64, body: axum::body::Bytes) {
        if self.ttl.is_zero() || generation != self.generation() {
            return;
        }
        let mut entries = self.entries.write().expect("cache lock is never poisoned");
        if entries.len() >= CACHE_ENTRIES {
            entries.clear();
        }
        entries.insert(key, (generation, Instant::now(), body));
    }
}
