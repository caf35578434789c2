//! What a scan reports.

use serde::{Deserialize, Serialize};

use crate::id::ResourceId;
use crate::manifest::ManifestError;
use crate::names::named_enum;
use crate::ports::{ScanSummary, SourceError, StoreError};
use crate::state::{Drift, DriftEvent};

/// The verdict on one object in a report.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Verdict {
    /// The object.
    pub id: ResourceId,
    /// `in-sync`, `drifted` or `unknown`.
    pub status: VerdictStatus,
    /// The open drift.
    pub drift: Option<Box<Drift>>,
}

named_enum! {
    /// Status of one object.
    #[derive(Clone, Copy, Debug, PartialEq, Eq)]
    pub enum VerdictStatus: "verdict status" {
        /// Both sides agree.
        InSync => "in-sync",
        /// There is an open drift.
        Drifted => "drifted",
        /// The live state could not be read.
        Unknown => "unknown",
    }
}

/// The result of one scan.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ScanReport {
    /// Summary (as stored).
    pub summary: ScanSummary,
    /// Per-object verdicts, drifted first.
    pub verdicts: Vec<Verdict>,
    /// Events emitted.
    pub events: Vec<DriftEvent>,
    /// Manifests that could not be read.
    pub manifest_errors: Vec<ManifestError>,
    /// Notes from the sources.
    pub notes: Vec<String>,
    /// Notifications that failed.
    pub notify_errors: Vec<String>,
}

impl ScanReport {
    /// The open drifts.
    pub fn drifts(&self) -> impl Iterator<Item = &Drift> {
        self.verdicts.iter().filter_map(|v| v.drift.as_deref())
    }
}

/// Why a scan failed as a whole.
#[derive(Debug, thiserror::Error)]
pub enum ScanError {
    /// The desired side could not be read at all.
    #[error("cannot read the desired state ({source_name})")]
    Desired {
        /// The source.
        source_name: String,
        /// The cause.
        #[source]
        source: SourceError,
    },
    /// The live side could not be read at all: its state is unknown, nothing was resolved.
    #[error("cannot read the live state ({source_name})")]
    Live {
        /// The source.
        source_name: String,
        /// The cause.
        #[source]
        source: SourceError,
    },
    /// The store failed.
    #[error("store failed")]
    Store(#[from] StoreError),
    /// The store refused a live change's batch as unavailable: it is kept, with the batches
    /// before it, and written in order when the store answers (see [`crate::scanner`]).
    #[error("the store is unavailable: {queued} batches kept for writing later")]
    Unwritten {
        /// Batches kept.
        queued: usize,
        /// Why the store refused.
        #[source]
        source: StoreError,
    },
}
