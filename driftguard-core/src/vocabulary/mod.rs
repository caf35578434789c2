//! Ports and vocabulary: the traits adapters implement and their values, fencing, history queries, names, durations, limits, the retry policy, error chains, in-memory ports.

pub mod duration;
pub mod error;
pub mod fence;
pub mod limits;
pub mod memory;
pub mod names;
pub mod ports;
pub mod query;
pub mod retry;
