//! The one retry policy: exponential backoff with jitter.
//!
//! Every loop that tries again after a failure (a scan whose source is down, a watch that
//! cannot start, a notification that failed, a buffered batch the store refused, undelivered
//! events resent after a restart, a live list the API server is not ready for) waits what
//! [`Backoff::next_delay`] says: the ceiling starts at `initial` and doubles up to `max`, and
//! each wait is drawn from the upper half of the ceiling ("equal jitter"), so that many
//! environments or replicas failing at the same moment do not all come back at the same
//! moment. Pure: the randomness is a small generator seeded by the caller (with the
//! environment's name and the start time, say), so that a test can make it repeatable.

use std::time::Duration;

/// Exponential backoff with equal jitter (see the module's notes).
#[derive(Clone, Debug)]
pub struct Backoff {
    initial: Duration,
    max: Duration,
    ceiling: Duration,
    state: u64,
}

impl Backoff {
    /// Waits from `initial` up to `max` (each at least a millisecond), jittered by a generator
    /// seeded with `seed`.
    pub fn new(initial: Duration, max: Duration, seed: u64) -> Self {
        let initial = initial.max(Duration::from_millis(1));
        Backoff {
            initial,
            max: max.max(initial),
            ceiling: initial,
            state: seed ^ 0x9E37_79B9_7F4A_7C15,
        }
    }

    /// The wait before the next attempt, between half the current ceiling and the ceiling;
    /// the ceiling then doubles, up to the maximum.
    pub fn next_delay(&mut self) -> Duration {
        let ceiling = self.ceiling;
        self.ceiling = ceiling.checked_mul(2).unwrap_or(self.max).min(self.max);
        let nanos = u64::try_from(ceiling.as_nanos()).unwrap_or(u64::MAX);
        let half = nanos / 2;
        let spread = nanos - half;
        let jitter = if spread == 0 {
            0
        } else {
            self.next_u64() % (spread + 1)
        };
        Duration::from_nanos(half + jitter)
    }

    /// Back to the first wait, after a success.
    pub fn reset(&mut self) {
        self.ceiling = self.initial;
    }

    /// The current ceiling: the longest the next wait can be.
    pub fn ceiling(&self) -> Duration {
        self.ceiling
    }

    /// splitmix64.
    fn next_u64(&mut self) -> u64 {
        self.state = self.state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
}

/// A seed from a name (an environment, a notifier) and a number that differs between
/// processes (the start time's nanoseconds): loops of different names, or of the same name in
/// different replicas, draw different waits.
pub fn seed(name: &str, salt: u64) -> u64 {
    xxhash_rust::xxh3::xxh3_64(name.as_bytes()) ^ salt.rotate_left(17)
}

/// Where in `period` a periodic task (a Git poll) whose [`seed`] is `seed` first fires: spread
/// evenly over the period, so that many tasks with the same period (hundreds of environments
/// polling) do not all fire at the same moment.
pub fn offset_in(period: Duration, seed: u64) -> Duration {
    let millis = u64::try_from(period.as_millis()).unwrap_or(u64::MAX);
    if millis == 0 {
        return Duration::ZERO;
    }
    let mut b = Backoff::new(Duration::ZERO, Duration::ZERO, seed);
    Duration::from_millis(b.next_u64() % millis)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn offsets_spread_over_the_period() {
        let period = Duration::from_secs(60);
        let offsets: Vec<Duration> = (0..300)
            .map(|i| offset_in(period, seed(&format!("env-{i}"), 0)))
            .collect();
        assert!(offsets.iter().all(|o| *o < period));
        // every sixth of the period gets some (300 draws: a bucket empty by chance is ~1e-23)
        for sixth in 0..6 {
            let (lo, hi) = (period * sixth / 6, period * (sixth + 1) / 6);
            let n = offsets.iter().filter(|o| **o >= lo && **o < hi).count();
            assert!((20..=80).contains(&n), "sixth {sixth}: {n}");
        }
        assert_eq!(offset_in(Duration::ZERO, 1), Duration::ZERO);
        assert_eq!(offset_in(period, 5), offset_in(period, 5));
    }

    #[test]
    fn doubles_to_the_maximum_with_jitter_in_the_upper_half() {
        let (first, max) = (Duration::from_millis(100), Duration::from_secs(2));
        let mut b = Backoff::new(first, max, 7);
        let mut ceilings = Vec::new();
        for _ in 0..8 {
            let ceiling = b.ceiling();
            let d = b.next_delay();
            assert!(
                d >= ceiling / 2 && d <= ceiling,
                "{d:?} outside [{:?}, {ceiling:?}]",
                ceiling / 2
            );
            ceilings.push(ceiling.as_millis());
        }
        assert_eq!(ceilings, [100, 200, 400, 800, 1600, 2000, 2000, 2000]);
        b.reset();
        assert_eq!(b.ceiling(), first);
        // two loops seeded differently do not wait alike
        let waits = |s: u64| {
            let mut b = Backoff::new(first, max, s);
            (0..6).map(|_| b.next_delay()).collect::<Vec<_>>()
        };
        assert_ne!(waits(seed("prod", 1)), waits(seed("staging", 1)));
        assert_eq!(waits(3), waits(3), "the same seed repeats");
        // degenerate settings still wait, and never overflow
        let mut tiny = Backoff::new(Duration::ZERO, Duration::ZERO, 1);
        assert!(tiny.next_delay() <= Duration::from_millis(1));
        let mut huge = Backoff::new(Duration::MAX / 2, Duration::MAX, 1);
        huge.next_delay();
        huge.next_delay();
        assert_eq!(huge.ceiling(), Duration::MAX);
    }
}
