//! [`ById`]: tables of objects, each found by its own identity (the engine's desired and live
//! objects, a scanner's drift records).
//!
//! A table keyed by `ResourceId` beside objects that hold their `ResourceId` keeps every
//! identity twice (five strings and 120 bytes of table slot each time), and a slot holding an
//! object next to a 120-byte key wastes both in every empty slot a hash table keeps. At 100,000
//! watched objects, the keys and slots of these tables were about 90 MB. Here a slot is one
//! pointer and the identity is the object's own.

use std::borrow::Borrow;
use std::fmt;
use std::hash::{Hash, Hasher};

use crate::id::ResourceId;

/// An object that knows its identity.
pub trait Identified {
    /// The object's identity (its key in a [`ById`] table).
    fn id(&self) -> &ResourceId;
}

/// A boxed object hashed and compared by its identity.
#[derive(Clone)]
struct Slot<T>(Box<T>);

impl<T: Identified> PartialEq for Slot<T> {
    fn eq(&self, other: &Slot<T>) -> bool {
        self.0.id() == other.0.id()
    }
}

impl<T: Identified> Eq for Slot<T> {}

impl<T: Identified> Hash for Slot<T> {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.0.id().hash(state);
    }
}

impl<T: Identified> Borrow<ResourceId> for Slot<T> {
    fn borrow(&self) -> &ResourceId {
        self.0.id()
    }
}

/// Objects by their own identity (see the module docs).
#[derive(Clone)]
pub struct ById<T>(foldhash::HashSet<Slot<T>>);

impl<T> Default for ById<T> {
    fn default() -> Self {
        ById(foldhash::HashSet::default())
    }
}

impl<T: Identified + fmt::Debug> fmt::Debug for ById<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_map().entries(self.iter()).finish()
    }
}

impl<T: Identified + PartialEq> PartialEq for ById<T> {
    /// The same objects, each equal in full (not only by identity).
    fn eq(&self, other: &ById<T>) -> bool {
        self.len() == other.len() && self.iter().all(|(id, o)| other.get(id) == Some(o))
    }
}

impl<T: Identified> ById<T> {
    /// No objects.
    pub fn new() -> Self {
        ById(foldhash::HashSet::default())
    }

    /// Makes room for `n` more objects.
    pub fn reserve(&mut self, n: usize) {
        self.0.reserve(n);
    }

    /// The object of `id`.
    pub fn get(&self, id: &ResourceId) -> Option<&T> {
        self.0.get(id).map(|s| &*s.0)
    }

    /// Whether `id` has an object.
    pub fn contains_key(&self, id: &ResourceId) -> bool {
        self.0.contains(id)
    }

    /// Keeps `object` under its identity, replacing (and giving back) the one it had.
    pub fn insert(&mut self, object: Box<T>) -> Option<Box<T>> {
        self.0.replace(Slot(object)).map(|s| s.0)
    }

    /// Takes the object of `id` out.
    pub fn remove(&mut self, id: &ResourceId) -> Option<Box<T>> {
        self.0.take(id).map(|s| s.0)
    }

    /// How many objects.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Forgets every object.
    pub fn clear(&mut self) {
        self.0.clear();
    }

    /// Frees the room no object uses.
    pub fn shrink_to_fit(&mut self) {
        self.0.shrink_to_fit();
    }

    /// The identities, in no particular order.
    pub fn keys(&self) -> impl Iterator<Item = &ResourceId> {
        self.0.iter().map(|s| s.0.id())
    }

    /// The objects, in no particular order.
    pub fn values(&self) -> impl Iterator<Item = &T> {
        self.0.iter().map(|s| &*s.0)
    }

    /// The identities with their objects, in no particular order.
    pub fn iter(&self) -> impl Iterator<Item = (&ResourceId, &T)> {
        self.0.iter().map(|s| (s.0.id(), &*s.0))
    }
}

impl<'a, T: Identified> IntoIterator for &'a ById<T> {
    type Item = (&'a ResourceId, &'a T);
    type IntoIter = Box<dyn Iterator<Item = (&'a ResourceId, &'a T)> + 'a>;

    fn into_iter(self) -> Self::IntoIter {
        Box::new(self.iter())
    }
}

impl<T: Identified> FromIterator<T> for ById<T> {
    fn from_iter<I: IntoIterator<Item = T>>(iter: I) -> Self {
        ById(iter.into_iter().map(|o| Slot(Box::new(o))).collect())
    }
}
