//! The rules of the election, pure: when a Lease is free to take, how many environments one
//! replica leads, which ones it hands back. Time is a value ([`Instant`]), passed in.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use driftguard_sources::kube::lease::LeaseRecord;

/// How many environments one replica may lead: the environments divided by the live
/// replicas, rounded up (at least one while there are environments). With 4 environments and
/// 3 replicas a replica leads at most 2; when one of them dies, the 2 left lead 2 each.
pub fn fair_share(environments: usize, live_replicas: usize) -> usize {
    if environments == 0 {
        return 0;
    }
    environments.div_ceil(live_replicas.max(1))
}

/// When this replica last saw each Lease change (its resource version), by its own monotonic
/// clock. A Lease is judged expired by how long it has *not changed* as seen from here, never
/// by comparing the renew time written in it (another machine's clock) with this one's.
#[derive(Debug, Default)]
pub struct Observations {
    seen: HashMap<String, (String, Instant)>,
}

impl Observations {
    /// Notes `record` as seen at `now`: when its version differs from the last one seen, it
    /// changed now.
    pub fn see(&mut self, record: &LeaseRecord, now: Instant) {
        match self.seen.get_mut(&record.name) {
            Some((version, since)) if *version == record.resource_version => {
                let _ = since;
            }
            _ => {
                self.seen
                    .insert(record.name.clone(), (record.resource_version.clone(), now));
            }
        }
    }

    /// Forgets the Leases not in `names` (deleted ones).
    pub fn retain(&mut self, keep: impl Fn(&str) -> bool) {
        self.seen.retain(|name, _| keep(name));
    }

    /// How long the Lease has not changed, as seen from here (`None`: never seen).
    pub fn unchanged_for(&self, name: &str, now: Instant) -> Option<Duration> {
        self.seen
            .get(name)
            .map(|(_, since)| now.saturating_duration_since(*since))
    }

    /// Whether the holder's claim on `record` has run out: it has not changed for its
    /// duration (`leaseDurationSeconds`, or `fallback` when it names none) since this replica
    /// first saw it as it is.
    pub fn expired(&self, record: &LeaseRecord, fallback: Duration, now: Instant) -> bool {
        let duration = if record.duration.is_zero() {
            fallback
        } else {
            record.duration
        };
        self.unchanged_for(&record.name, now)
            .is_some_and(|d| d >= duration)
    }
}

/// Whether an environment's Lease may be taken by `me`: there is none yet, nobody holds it,
/// its holder's claim ran out, or it names `me` without this process leading (a previous run
/// of this replica: its writes are fenced off by the new epoch).
pub fn is_free(
    record: Option<&LeaseRecord>,
    me: &str,
    observations: &Observations,
    fallback: Duration,
    now: Instant,
) -> bool {
    match record {
        None => true,
        Some(r) => match r.holder.as_deref() {
            None => true,
            Some(h) if h == me => true,
            Some(_) => observations.expired(r, fallback, now),
        },
    }
}

/// Which of the environments `held` to hand back so that at most `share` are left: the last
/// ones by name (so that replicas agree which remain where).
pub fn to_release(held: &[String], share: usize) -> Vec<String> {
    let mut sorted: Vec<String> = held.to_vec();
    sorted.sort();
    if sorted.len() <= share {
        return Vec::new();
    }
    sorted.split_off(share)
}

/// The order in which a replica tries the free environments: all of them, starting at an
/// offset that depends on its identity, so that replicas starting together try different
/// ones first.
pub fn acquisition_order(environments: &[String], identity: &str) -> Vec<String> {
    let mut sorted: Vec<String> = environments.to_vec();
    sorted.sort();
    if sorted.is_empty() {
        return sorted;
    }
    let offset = identity
        .bytes()
        .fold(0usize, |h, b| h.wrapping_mul(31).wrapping_add(b as usize))
        % sorted.len();
    sorted.rotate_left(offset);
    sorted
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(name: &str, holder: Option<&str>, version: &str, secs: u64) -> LeaseRecord {
        LeaseRecord {
            name: name.into(),
            holder: holder.map(str::to_owned),
            duration: Duration::from_secs(secs),
            transitions: 0,
            acquired_at: None,
            renewed_at: None,
            labels: Default::default(),
            annotations: Default::default(),
            resource_version: version.into(),
        }
    }

    #[test]
    fn shares_spread_environments_over_live_replicas() {
        assert_eq!(fair_share(4, 1), 4);
        assert_eq!(fair_share(4, 2), 2);
        assert_eq!(fair_share(4, 3), 2);
        assert_eq!(fair_share(4, 4), 1);
        assert_eq!(fair_share(4, 9), 1);
        assert_eq!(fair_share(0, 3), 0);
        assert_eq!(fair_share(3, 0), 3);
        assert_eq!(to_release(&["c".into(), "a".into(), "b".into()], 2), ["c"]);
        assert!(to_release(&["a".into()], 2).is_empty());
        let envs: Vec<String> = ["a", "b", "c", "d"].map(String::from).to_vec();
        let o = acquisition_order(&envs, "replica-1");
        assert_eq!(o.len(), 4);
        let mut sorted = o.clone();
        sorted.sort();
        assert_eq!(sorted, envs);
    }

    #[test]
    fn expiry_is_judged_by_the_local_clock_since_the_lease_last_changed() {
        let t0 = Instant::now();
        let mut obs = Observations::default();
        let r = record("l", Some("other"), "1", 10);
        // never seen: not expired (nobody waited for it yet)
        assert!(!obs.expired(&r, Duration::from_secs(10), t0));
        obs.see(&r, t0);
        assert!(!is_free(
            Some(&r),
            "me",
            &obs,
            Duration::from_secs(10),
            t0 + Duration::from_secs(9)
        ));
        assert!(is_free(
            Some(&r),
            "me",
            &obs,
            Duration::from_secs(10),
            t0 + Duration::from_secs(10)
        ));
        // the holder renews (a new version): the wait starts again from when it was seen
        let renewed = record("l", Some("other"), "2", 10);
        obs.see(&renewed, t0 + Duration::from_secs(8));
        assert!(!is_free(
            Some(&renewed),
            "me",
            &obs,
            Duration::from_secs(10),
            t0 + Duration::from_secs(17)
        ));
        assert!(is_free(
            Some(&renewed),
            "me",
            &obs,
            Duration::from_secs(10),
            t0 + Duration::from_secs(18)
        ));
        // seeing the same version again does not restart the wait
        obs.see(&renewed, t0 + Duration::from_secs(17));
        assert_eq!(
            obs.unchanged_for("l", t0 + Duration::from_secs(18)),
            Some(Duration::from_secs(10))
        );
        // absent, released, or a previous run of mine: free at once
        assert!(is_free(None, "me", &obs, Duration::from_secs(10), t0));
        let released = record("l", None, "3", 10);
        assert!(is_free(
            Some(&released),
            "me",
            &obs,
            Duration::from_secs(10),
            t0
        ));
        let mine = record("l", Some("me"), "4", 10);
        assert!(is_free(
            Some(&mine),
            "me",
            &obs,
            Duration::from_secs(10),
            t0
        ));
        // a Lease naming no duration uses the configured one
        let mut obs = Observations::default();
        let r = record("m", Some("other"), "1", 0);
        obs.see(&r, t0);
        assert!(!obs.expired(&r, Duration::from_secs(5), t0 + Duration::from_secs(4)));
        assert!(obs.expired(&r, Duration::from_secs(5), t0 + Duration::from_secs(5)));
        obs.retain(|n| n != "m");
        assert_eq!(obs.unchanged_for("m", t0), None);
    }
}
