//! A bounded index of recent writes per object, and what a store keeps of it.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::engine::{FastMap, FastSet};
use crate::normalize::Normalizer;

use super::event::AuditEvent;
use super::user::UserNames;
use super::{AuditObject, AuditWrite, DEFAULT_MAX_AGE};

/// How much the index keeps.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditLimits {
    /// Most writes kept per object (the newest).
    pub writes_per_object: usize,
    /// How long a write is kept (counted from now).
    pub max_age: Duration,
    /// Most objects kept (those written to longest ago go first).
    pub max_objects: usize,
}

impl Default for AuditLimits {
    fn default() -> Self {
        AuditLimits {
            writes_per_object: 8,
            max_age: DEFAULT_MAX_AGE,
            max_objects: 50_000,
        }
    }
}

/// The writes kept of one object, oldest first.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ObjectWrites {
    /// The object.
    pub object: AuditObject,
    /// Its writes, oldest first (empty: the object is no longer kept).
    pub writes: Vec<AuditWrite>,
}

/// How far an audit log file was read: the file (by path, and by device and inode, so that a
/// rotated file is still found) and the offset after the last complete line read.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct AuditCursor {
    /// The path the file is read at.
    pub source: String,
    /// The file's device.
    #[serde(default)]
    pub device: u64,
    /// The file's inode.
    pub inode: u64,
    /// Bytes read (always at a line's end).
    pub offset: u64,
    /// A hash of the file's first bytes read (at most 256): a new file that got the old one's
    /// inode (a rotation that deleted it, a truncation) has other first bytes.
    #[serde(default)]
    pub head: u64,
}

/// An environment's audit index as a store keeps it, or a change to it: each object's writes
/// replace the stored ones (no writes: the object is forgotten), each cursor replaces the one
/// of its source.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditSnapshot {
    /// Objects and their writes.
    pub objects: Vec<ObjectWrites>,
    /// How far audit log files were read.
    pub cursors: Vec<AuditCursor>,
}

impl AuditSnapshot {
    /// Whether there is nothing in it.
    pub fn is_empty(&self) -> bool {
        self.objects.is_empty() && self.cursors.is_empty()
    }

    /// `changes` applied to `self` (the meaning every store gives to a save).
    pub fn apply(&mut self, changes: &AuditSnapshot) {
        if !changes.objects.is_empty() {
            // one merge of two sorted lists (a change named twice: the last one wins), so that
            // a save costs the size of the index once, not once per object it changes
            let changed: std::collections::BTreeMap<&AuditObject, &ObjectWrites> =
                changes.objects.iter().map(|o| (&o.object, o)).collect();
            if !self.objects.is_sorted_by(|a, b| a.object <= b.object) {
                self.objects.sort_by(|a, b| a.object.cmp(&b.object));
            }
            let old = std::mem::take(&mut self.objects);
            let mut merged = Vec::with_capacity(old.len() + changed.len());
            let mut new = changed.into_iter().peekable();
            for o in old {
                while let Some((_, n)) = new.next_if(|(k, _)| **k < o.object) {
                    if !n.writes.is_empty() {
                        merged.push(n.clone());
                    }
                }
                match new.next_if(|(k, _)| **k == o.object) {
                    Some((_, n)) if !n.writes.is_empty() => merged.push(n.clone()),
                    Some(_) => {}
                    None => merged.push(o),
                }
            }
            merged.extend(
                new.filter(|(_, n)| !n.writes.is_empty())
                    .map(|(_, n)| n.clone()),
            );
            self.objects = merged;
        }
        for c in &changes.cursors {
            self.cursors.retain(|x| x.source != c.source);
            self.cursors.push(c.clone());
        }
        self.cursors.sort_by(|a, b| a.source.cmp(&b.source));
    }
}

/// What one ingestion did.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct IngestStats {
    /// Events received.
    pub received: usize,
    /// Writes added to the index.
    pub indexed: usize,
    /// Events that are not writes DriftGuard keeps (reads, failed writes, earlier stages).
    pub ignored: usize,
    /// Writes already indexed (the same audit id), or older than the index keeps.
    pub duplicates: usize,
    /// The objects that gained writes.
    #[serde(skip)]
    pub objects: Vec<AuditObject>,
}

/// The bounded index of recent writes of one environment.
#[derive(Clone, Debug, Default)]
pub struct AuditIndex {
    limits: AuditLimits,
    objects: FastMap<AuditObject, Vec<AuditWrite>>,
    cursors: BTreeMap<String, AuditCursor>,
    dirty: FastSet<AuditObject>,
    dirty_cursors: BTreeSet<String>,
    swept: Option<DateTime<Utc>>,
}

/// How often at most the index drops writes older than its age limit.
const SWEEP_EVERY: Duration = Duration::from_secs(60);

impl AuditIndex {
    /// An empty index.
    pub fn new(limits: AuditLimits) -> Self {
        AuditIndex {
            limits,
            ..AuditIndex::default()
        }
    }

    /// An index holding what a store kept, with the limits applied as of `now` (what they
    /// drop is marked as changed, so that the next save forgets it).
    pub fn from_snapshot(limits: AuditLimits, snapshot: AuditSnapshot, now: DateTime<Utc>) -> Self {
        let mut ix = AuditIndex::new(limits);
        for o in snapshot.objects {
            let mut writes = o.writes;
            writes.sort_by_key(|w| w.at);
            let before = writes.len();
            let keep = ix.limits.writes_per_object.max(1);
            if writes.len() > keep {
                writes.drain(..writes.len() - keep);
            }
            if writes.len() != before {
                ix.dirty.insert(o.object.clone());
            }
            ix.objects.insert(o.object, writes);
        }
        for c in snapshot.cursors {
            ix.cursors.insert(c.source.clone(), c);
        }
        ix.sweep(now);
        ix.evict();
        ix
    }

    /// The limits.
    pub fn limits(&self) -> &AuditLimits {
        &self.limits
    }

    /// Objects kept.
    pub fn len(&self) -> usize {
        self.objects.len()
    }

    /// Whether no object is kept.
    pub fn is_empty(&self) -> bool {
        self.objects.is_empty()
    }

    /// The writes kept of `object`, oldest first.
    pub fn writes(&self, object: &AuditObject) -> &[AuditWrite] {
        self.objects.get(object).map_or(&[], Vec::as_slice)
    }

    /// How far the audit log file at `source` was read.
    pub fn cursor(&self, source: &str) -> Option<&AuditCursor> {
        self.cursors.get(source)
    }

    /// Records how far an audit log file was read.
    pub fn set_cursor(&mut self, cursor: AuditCursor) {
        if self.cursors.get(&cursor.source) != Some(&cursor) {
            self.dirty_cursors.insert(cursor.source.clone());
            self.cursors.insert(cursor.source.clone(), cursor);
        }
    }

    /// Adds one write of `object`. Returns whether it was kept: not when its audit id is
    /// already there, nor when it is older than the index keeps (by age, or behind the newest
    /// `writes_per_object`).
    pub fn insert(&mut self, object: AuditObject, write: AuditWrite, now: DateTime<Utc>) -> bool {
        if self.too_old(write.at, now) {
            return false;
        }
        let keep = self.limits.writes_per_object.max(1);
        let list = self.objects.entry(object.clone()).or_default();
        if !write.audit_id.is_empty() && list.iter().any(|w| w.audit_id == write.audit_id) {
            return false;
        }
        if list.len() >= keep && list.first().is_some_and(|w| write.at < w.at) {
            return false;
        }
        let at = list.partition_point(|w| w.at <= write.at);
        list.insert(at, write);
        if list.len() > keep {
            list.remove(0);
        }
        self.dirty.insert(object);
        true
    }

    /// Adds the writes among `events` (with `names` applied to people; `normalizer` holds the
    /// key names are hashed with), then applies the limits as of `now`.
    pub fn ingest<'a>(
        &mut self,
        events: impl IntoIterator<Item = &'a AuditEvent>,
        names: UserNames,
        normalizer: &Normalizer,
        now: DateTime<Utc>,
    ) -> IngestStats {
        let mut stats = IngestStats::default();
        let mut touched: FastSet<AuditObject> = FastSet::default();
        for e in events {
            stats.received += 1;
            match AuditWrite::from_event(e, names, normalizer) {
                None => stats.ignored += 1,
                Some((object, write)) => {
                    if self.insert(object.clone(), write, now) {
                        stats.indexed += 1;
                        touched.insert(object);
                    } else {
                        stats.duplicates += 1;
                    }
                }
            }
        }
        stats.objects = touched.into_iter().collect();
        stats.objects.sort();
        self.maintain(now);
        stats
    }

    /// Applies the limits: drops writes older than the age limit (at most once a minute) and
    /// objects beyond the object limit.
    pub fn maintain(&mut self, now: DateTime<Utc>) {
        let due = self.swept.is_none_or(|t| {
            (now - t).to_std().unwrap_or_default() >= SWEEP_EVERY.min(self.limits.max_age / 10)
        });
        if due {
            self.sweep(now);
        }
        self.evict();
    }

    fn too_old(&self, at: DateTime<Utc>, now: DateTime<Utc>) -> bool {
        (now - at)
            .to_std()
            .is_ok_and(|age| age > self.limits.max_age)
    }

    /// Drops every write older than the age limit.
    fn sweep(&mut self, now: DateTime<Utc>) {
        self.swept = Some(now);
        let max_age = self.limits.max_age;
        let old = |w: &AuditWrite| (now - w.at).to_std().is_ok_and(|age| age > max_age);
        let mut emptied = Vec::new();
        for (object, writes) in &mut self.objects {
            if writes.first().is_some_and(old) {
                writes.retain(|w| !old(w));
                self.dirty.insert(object.clone());
                if writes.is_empty() {
                    emptied.push(object.clone());
                }
            }
        }
        for o in emptied {
            self.objects.remove(&o);
        }
    }

    /// Drops the objects written to longest ago while there are more than the limit (down to
    /// nine tenths of it, so that this runs seldom).
    fn evict(&mut self) {
        let max = self.limits.max_objects.max(1);
        if self.objects.len() <= max {
            return;
        }
        let target = (max - max / 10).max(1);
        let mut by_age: Vec<(DateTime<Utc>, AuditObject)> = self
            .objects
            .iter()
            .map(|(o, w)| {
                (
                    w.last().map_or(DateTime::<Utc>::MIN_UTC, |w| w.at),
                    o.clone(),
                )
            })
            .collect();
        by_age.sort();
        for (_, o) in by_age.into_iter().take(self.objects.len() - target) {
            self.objects.remove(&o);
            self.dirty.insert(o);
        }
    }

    /// What changed since the last call, as a store saves it (an object no longer kept has no
    /// writes). Nothing is marked as changed any more: give it back with
    /// [`AuditIndex::restore_changes`] when the save fails.
    pub fn take_changes(&mut self) -> AuditSnapshot {
        let mut objects: Vec<ObjectWrites> = self
            .dirty
            .drain()
            .map(|o| ObjectWrites {
                writes: self.objects.get(&o).cloned().unwrap_or_default(),
                object: o,
            })
            .collect();
        objects.sort_by(|a, b| a.object.cmp(&b.object));
        let cursors = std::mem::take(&mut self.dirty_cursors)
            .into_iter()
            .filter_map(|s| self.cursors.get(&s).cloned())
            .collect();
        AuditSnapshot { objects, cursors }
    }

    /// Marks what `changes` names as changed again (its save failed: the next one saves the
    /// index's current state of those objects and cursors).
    pub fn restore_changes(&mut self, changes: &AuditSnapshot) {
        self.dirty
            .extend(changes.objects.iter().map(|o| o.object.clone()));
        self.dirty_cursors
            .extend(changes.cursors.iter().map(|c| c.source.clone()));
    }

    /// The whole index, as a store would hold it.
    pub fn snapshot(&self) -> AuditSnapshot {
        let mut objects: Vec<ObjectWrites> = self
            .objects
            .iter()
            .map(|(o, w)| ObjectWrites {
                object: o.clone(),
                writes: w.clone(),
            })
            .collect();
        objects.sort_by(|a, b| a.object.cmp(&b.object));
        AuditSnapshot {
            objects,
            cursors: self.cursors.values().cloned().collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audit::{AuditUser, UserClass};
    use chrono::TimeZone;

    fn t(secs: i64) -> DateTime<Utc> {
        Utc.timestamp_opt(1_700_000_000 + secs, 0)
            .single()
            .expect("valid time")
    }

    fn obj(name: &str) -> AuditObject {
        AuditObject {
            group: String::new(),
            resource: "configmaps".into(),
            namespace: Some("shop".into()),
            name: name.into(),
        }
    }

    fn write(id: &str, at: i64) -> AuditWrite {
        AuditWrite {
            audit_id: id.into(),
            at: t(at),
            verb: "patch".into(),
            subresource: String::new(),
            user: AuditUser {
                name: Some("alice".into()),
                class: UserClass::Person,
                groups: Vec::new(),
                acting_as: None,
            },
            manager: "kubectl-patch".into(),
            user_agent: String::new(),
            source_ip: None,
        }
    }

    fn limits(per: usize, age_secs: u64, objects: usize) -> AuditLimits {
        AuditLimits {
            writes_per_object: per,
            max_age: Duration::from_secs(age_secs),
            max_objects: objects,
        }
    }

    fn ids(ix: &AuditIndex, o: &AuditObject) -> Vec<String> {
        ix.writes(o).iter().map(|w| w.audit_id.clone()).collect()
    }

    #[test]
    fn keeps_the_newest_writes_in_order_once() {
        let mut ix = AuditIndex::new(limits(3, 1000, 10));
        let now = t(100);
        assert!(ix.insert(obj("a"), write("2", 20), now));
        assert!(ix.insert(obj("a"), write("1", 10), now));
        assert!(
            !ix.insert(obj("a"), write("1", 10), now),
            "the same audit id"
        );
        assert!(ix.insert(obj("a"), write("4", 40), now));
        assert!(ix.insert(obj("a"), write("3", 30), now));
        assert_eq!(ids(&ix, &obj("a")), ["2", "3", "4"], "the newest three");
        assert!(
            !ix.insert(obj("a"), write("0", 5), now),
            "older than all kept"
        );
        assert!(
            !ix.insert(obj("b"), write("x", -2000), now),
            "older than the age limit"
        );
        assert_eq!(ix.len(), 1);
    }

    #[test]
    fn age_and_object_limits_and_changes() {
        let mut ix = AuditIndex::new(limits(4, 100, 10));
        for i in 0..12 {
            ix.insert(obj(&format!("o{i:02}")), write(&format!("w{i}"), i), t(20));
        }
        let changes = ix.take_changes();
        assert_eq!(changes.objects.len(), 12);
        ix.maintain(t(20));
        assert_eq!(ix.len(), 9, "evicted down to nine tenths of the limit");
        assert!(ix.writes(&obj("o00")).is_empty(), "the oldest went first");
        assert!(!ix.writes(&obj("o11")).is_empty());
        let changes = ix.take_changes();
        assert_eq!(changes.objects.len(), 3, "the evicted ones, to forget");
        assert!(changes.objects.iter().all(|o| o.writes.is_empty()));
        assert!(ix.take_changes().is_empty(), "taken once");
        ix.restore_changes(&changes);
        assert_eq!(ix.take_changes(), changes, "given back after a failed save");
        // the age limit, counted from now
        ix.maintain(t(200));
        assert_eq!(ix.len(), 0);
        assert_eq!(ix.take_changes().objects.len(), 9);
    }

    #[test]
    fn a_snapshot_round_trips_and_cursors_change_once() {
        let mut ix = AuditIndex::new(AuditLimits::default());
        ix.insert(obj("a"), write("1", 10), t(20));
        ix.set_cursor(AuditCursor {
            source: "/var/log/audit.log".into(),
            device: 1,
            inode: 7,
            offset: 100,
            head: 42,
        });
        let snap = ix.snapshot();
        let again = AuditIndex::from_snapshot(AuditLimits::default(), snap.clone(), t(30));
        assert_eq!(again.snapshot(), snap);
        assert_eq!(
            again.cursor("/var/log/audit.log").map(|c| c.offset),
            Some(100)
        );
        let changes = ix.take_changes();
        assert_eq!(changes.cursors.len(), 1);
        ix.set_cursor(changes.cursors[0].clone());
        assert!(ix.take_changes().is_empty(), "the same cursor is no change");
        // applying changes: replace, and forget objects without writes
        let mut stored = snap.clone();
        stored.apply(&AuditSnapshot {
            objects: vec![ObjectWrites {
                object: obj("a"),
                writes: Vec::new(),
            }],
            cursors: Vec::new(),
        });
        assert!(stored.objects.is_empty());
        assert_eq!(stored.cursors.len(), 1);
        // a stored index the limits now cut is cut, and the cut is saved
        let small = AuditIndex::from_snapshot(limits(1, 1000, 10), snap, t(2000));
        assert!(small.is_empty(), "older than the age limit as of now");
    }
}
