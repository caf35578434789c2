//! Notifiers behind the core's [`Notifier`] port: Slack, generic webhooks, PagerDuty and
//! e-mail, plus routing ([`RoutedNotifier`]) and a delivery queue with retries
//! ([`QueuedNotifier`]) so that detection never waits for a receiver.
//!
//! [`build_notifiers`] turns the configuration into ready notifiers: each is
//! `RoutedNotifier(QueuedNotifier(concrete))`. Add each to every environment's `Scanner`
//! (`Scanner::with_notifier`); routing by environment happens inside.
//!
//! **Delivery marks** ([`Marks`]) say, in the store, how far each notifier's deliveries went,
//! so that a server that stops with alerts still queued sends them after its restart
//! ([`resend_undelivered`]). A single server keeps one mark per notifier. Replicas that elect a
//! leader per environment ([`crate::ha`]) keep one per notifier *and environment*
//! (`<notifier>/<environment>`, [`mark_key`]): each replica alerts only for the environments it
//! leads, a new leader sends again what lies after the environment's mark
//! ([`resend_undelivered_for`]), and a replica that no longer leads an environment delivers
//! none of its alerts and moves none of its marks (the new leader sends them).

pub mod ack;
pub mod pagerduty;
pub mod slack;
pub mod smtp;
pub mod webhook;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use driftguard_core::ports::{Clock, DriftStore, Notification, Notifier, NotifyError, StoreError};
use driftguard_core::query::EventQuery;
use driftguard_core::severity::Severity;
use driftguard_core::state::{DriftEvent, EventKind};
use serde::Serialize;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::config::{NotifierConfig, QueueConfig, RouteConfig, SettingError};
use crate::context::SystemClock;
use crate::dto::{FindingDto, ObjectRef};
use crate::ha::Leadership;
use crate::metrics::{Metrics, NotifyOutcome};
use driftguard_core::findings::drift_risk;

mod build;
mod http;
mod queue;
mod route;
mod view;

pub use build::*;
pub(crate) use http::*;
pub use queue::*;
pub use route::*;
pub use view::*;
