//! Identity and model: who an object is, what was read, from where.

pub mod by_id;
pub mod id;
pub mod manifest;
pub mod model;
