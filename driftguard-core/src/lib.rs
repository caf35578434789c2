//! # driftguard-core
//!
//! The pure heart of DriftGuard: the normalized resource model, normalization, the field
//! hasher, the drift state machine, severity, risk findings and the drift score, the scan
//! engine, and the ports (traits) through which sources, stores and notifiers plug in.
//!
//! This crate does no IO: it reads no files, opens no sockets and never reads the clock (time
//! is passed in through [`ports::Clock`] or as a value).
//!
//! ```
//! use driftguard_core::prelude::*;
//! use serde_json::json;
//!
//! let engine = Engine::new(
//!     EnvironmentSpec::new("prod"),
//!     Normalizer::new(SecretKey::new(b"key".to_vec())),
//! );
//! let desired = DesiredSet {
//!     objects: vec![RawManifest {
//!         object: RawObject::new(json!({"apiVersion": "apps/v1", "kind": "Deployment",
//!             "metadata": {"name": "web", "namespace": "shop"},
//!             "spec": {"replicas": 3}})),
//!         provenance: Provenance::default(),
//!     }],
//!     ..DesiredSet::default()
//! };
//! let live = LiveSnapshot { served: Vec::new(),
//!     objects: vec![RawLive::new(json!({"apiVersion": "apps/v1", "kind": "Deployment",
//!         "metadata": {"name": "web", "namespace": "shop", "uid": "1"},
//!         "spec": {"replicas": 5, "revisionHistoryLimit": 10}}))].into(),
//!     ..LiveSnapshot::default()
//! };
//! let state = engine.index(&desired, &live);
//! let id = ResourceId::new("prod", "apps", "Deployment", Some("shop"), "web");
//! let obs = engine.observe(&state, &id);
//! let Presence::Both(cmp) = &obs.presence else { unreachable!() };
//! assert_eq!(cmp.drifted_paths(), vec!["spec.replicas"]);
//! ```

pub mod ack;
pub mod actions;
pub mod audit;
mod object;
pub use object::{by_id, id, manifest, model};
mod normalization;
pub use normalization::{
    compare, convert, doc, hash, managed, metadata, normalize, path, quantity,
};
mod rules;
pub use rules::{
    admission, findings, ignore, remediate, render, scope, secret, selector, severity, yaml_edit,
};
mod vocabulary;
pub use vocabulary::{duration, error, fence, limits, memory, names, ports, query, retry};
pub mod engine;
pub mod preview;
pub mod scanner;
pub mod state;
pub mod terraform;
#[cfg(any(test, feature = "testkit"))]
pub mod testkit;

/// The names most users need.
pub mod prelude {
    pub use crate::compare::{compare, compare_docs, Comparison, FieldDiff};
    pub use crate::doc::Doc;
    pub use crate::engine::{
        Engine, EnvState, EnvironmentSpec, ScanError, ScanReport, Verdict, VerdictStatus,
    };
    pub use crate::findings::{Finding, FindingCategory, FindingRules};
    pub use crate::id::{GroupKind, ResourceId};
    pub use crate::ignore::{IgnoreRule, IgnoreRules, JsonPointer};
    pub use crate::manifest::{parse_file, ManifestError};
    pub use crate::model::{
        CommitInfo, LiveObjects, Provenance, RawLive, RawManifest, RawObject, Revision,
    };
    pub use crate::normalize::{Normalizer, SecretKey};
    pub use crate::ports::{
        Clock, DesiredSet, DriftStore, GitSource, GroupVersionKind, LiveChange, LiveScope,
        LiveSnapshot, LiveSource, Notification, Notifier, ScanBatch, ScanSummary,
    };
    pub use crate::query::{DriftQuery, EventQuery, Page};
    pub use crate::scanner::Scanner;
    pub use crate::severity::{Severity, SeverityRules};
    pub use crate::state::{
        Direction, Drift, DriftEvent, DriftKind, DriftRecord, EventKind, Presence, Records,
        Resolution,
    };
}
