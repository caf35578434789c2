//! Normalizing and comparing: both sides into one shape, compared field by field, and who owns which field.

pub mod compare;
pub mod convert;
pub mod doc;
pub mod hash;
pub mod managed;
pub mod metadata;
pub mod normalize;
pub mod path;
pub mod quantity;
