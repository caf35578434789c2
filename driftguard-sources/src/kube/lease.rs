//! `coordination.k8s.io/v1` Leases: the storage of leader election.
//!
//! [`LeaseClient`] reads and writes the Leases of one namespace as [`LeaseRecord`]s and nothing
//! more: it holds no election logic (who may take a lease, and when, is the caller's rule).
//! Every write names the resource version it was based on, so two replicas that race for the
//! same Lease cannot both win: the second gets [`LeaseError::Conflict`]. Times are passed in
//! (the caller's clock); requests give up after a timeout, so that a leader notices an API
//! server that does not answer before its lease runs out.

use std::collections::BTreeMap;
use std::time::Duration;

use ::kube::api::{Api, DeleteParams, ListParams, ObjectMeta, PostParams};
use ::kube::Client;
use chrono::{DateTime, Utc};
use driftguard_core::ports::BoxError;
use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime;

use super::KubeConfigSpec;

/// Why a Lease could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum LeaseError {
    /// Another writer changed (or created) the Lease first: read it again.
    #[error("lease {name} was changed by another writer")]
    Conflict {
        /// The Lease.
        name: String,
    },
    /// The Lease does not exist (any more).
    #[error("lease {name} does not exist")]
    NotFound {
        /// The Lease.
        name: String,
    },
    /// The credentials may not do this (HTTP 401/403).
    #[error("access denied: {what}")]
    Forbidden {
        /// What was refused, in the API server's words.
        what: String,
    },
    /// The API server did not answer (in time).
    #[error("cannot reach {target}")]
    Unreachable {
        /// The cluster, described.
        target: String,
        /// The cause.
        #[source]
        source: BoxError,
    },
    /// The configuration could not be used, or anything else went wrong.
    #[error("{context}")]
    Backend {
        /// What was being done.
        context: String,
        /// The cause.
        #[source]
        source: BoxError,
    },
}

/// A Lease as an elector sees it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LeaseRecord {
    /// The Lease's name.
    pub name: String,
    /// Who holds it (`None`: nobody, e.g. released).
    pub holder: Option<String>,
    /// How long a holder's claim lasts after its last renewal (`leaseDurationSeconds`).
    pub duration: Duration,
    /// How many times it went from one holder to another (`leaseTransitions`).
    pub transitions: u64,
    /// When the current holder acquired it, by the holder's clock.
    pub acquired_at: Option<DateTime<Utc>>,
    /// When the current holder last renewed it, by the holder's clock.
    pub renewed_at: Option<DateTime<Utc>>,
    /// The Lease's labels.
    pub labels: BTreeMap<String, String>,
    /// The Lease's annotations.
    pub annotations: BTreeMap<String, String>,
    /// The resource version this record was read at: changes with every write.
    pub resource_version: String,
}

/// What a holder writes into a Lease.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LeaseClaim {
    /// The holder (`None`: release it).
    pub holder: Option<String>,
    /// `leaseDurationSeconds` (whole seconds, at least 1).
    pub duration: Duration,
    /// `leaseTransitions`.
    pub transitions: u64,
    /// `acquireTime`.
    pub acquired_at: Option<DateTime<Utc>>,
    /// `renewTime`.
    pub renewed_at: Option<DateTime<Utc>>,
}

/// The Leases of one namespace.
#[derive(Clone)]
pub struct LeaseClient {
    api: Api<Lease>,
    namespace: String,
    describe: String,
    timeout: Duration,
}

impl std::fmt::Debug for LeaseClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "LeaseClient({} namespace {})",
            self.describe, self.namespace
        )
    }
}

fn micro(t: DateTime<Utc>) -> Option<MicroTime> {
    // microseconds: what the API server keeps of a MicroTime
    let nanos = (t.timestamp_subsec_micros() * 1000) as i32;
    k8s_openapi::jiff::Timestamp::new(t.timestamp(), nanos)
        .ok()
        .map(MicroTime)
}

fn chrono_of(t: &MicroTime) -> Option<DateTime<Utc>> {
    DateTime::from_timestamp(t.0.as_second(), t.0.subsec_nanosecond().max(0) as u32)
}

fn seconds(d: Duration) -> i32 {
    i32::try_from(d.as_secs().max(1)).unwrap_or(i32::MAX)
}

impl LeaseRecord {
    fn of(lease: Lease) -> Self {
        let spec = lease.spec.unwrap_or_default();
        LeaseRecord {
            name: lease.metadata.name.unwrap_or_default(),
            holder: spec.holder_identity.filter(|h| !h.is_empty()),
            duration: Duration::from_secs(spec.lease_duration_seconds.unwrap_or(0).max(0) as u64),
            transitions: spec.lease_transitions.unwrap_or(0).max(0) as u64,
            acquired_at: spec.acquire_time.as_ref().and_then(chrono_of),
            renewed_at: spec.renew_time.as_ref().and_then(chrono_of),
            labels: lease.metadata.labels.unwrap_or_default(),
            annotations: lease.metadata.annotations.unwrap_or_default(),
            resource_version: lease.metadata.resource_version.unwrap_or_default(),
        }
    }
}

fn spec_of(claim: &LeaseClaim) -> LeaseSpec {
    LeaseSpec {
        holder_identity: claim.holder.clone(),
        lease_duration_seconds: Some(seconds(claim.duration)),
        lease_transitions: Some(i32::try_from(claim.transitions).unwrap_or(i32::MAX)),
        acquire_time: claim.acquired_at.and_then(micro),
        renew_time: claim.renewed_at.and_then(micro),
        ..LeaseSpec::default()
    }
}

impl LeaseClient {
    /// The Leases of `namespace` in the cluster `spec` names. Does not contact the API server.
    pub async fn connect(spec: &KubeConfigSpec, namespace: &str) -> Result<Self, LeaseError> {
        let (config, describe) = spec.load().await.map_err(|e| LeaseError::Backend {
            context: "cannot read the home cluster's configuration".into(),
            source: Box::new(e),
        })?;
        let client = super::client::client_for(config).map_err(|e| LeaseError::Backend {
            context: format!("cannot build a Kubernetes client for {describe}"),
            source: Box::new(e),
        })?;
        Ok(Self::from_client(client, namespace, describe))
    }

    /// The Leases of `namespace` through a ready client.
    pub fn from_client(client: Client, namespace: &str, describe: String) -> Self {
        LeaseClient {
            api: Api::namespaced(client, namespace),
            namespace: namespace.to_owned(),
            describe,
            timeout: Duration::from_secs(5),
        }
    }

    /// Sets how long one request may take before it fails as unreachable (default 5 s).
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout.max(Duration::from_millis(10));
        self
    }

    /// The namespace.
    pub fn namespace(&self) -> &str {
        &self.namespace
    }

    /// The cluster, described.
    pub fn describe(&self) -> &str {
        &self.describe
    }

    async fn call<T>(
        &self,
        what: &str,
        name: &str,
        f: impl std::future::Future<Output = Result<T, ::kube::Error>>,
    ) -> Result<T, LeaseError> {
        match tokio::time::timeout(self.timeout, f).await {
            Ok(Ok(v)) => Ok(v),
            Ok(Err(e)) => Err(self.error(what, name, e)),
            Err(_) => Err(LeaseError::Unreachable {
                target: self.describe.clone(),
                source: format!("{what} lease {name}: no answer within {:?}", self.timeout).into(),
            }),
        }
    }

    fn error(&self, what: &str, name: &str, e: ::kube::Error) -> LeaseError {
        match &e {
            ::kube::Error::Api(s) if s.code == 409 => LeaseError::Conflict {
                name: name.to_owned(),
            },
            ::kube::Error::Api(s) if s.code == 404 => LeaseError::NotFound {
                name: name.to_owned(),
            },
            ::kube::Error::Api(s) if s.code == 401 || s.code == 403 => LeaseError::Forbidden {
                what: if s.message.is_empty() {
                    format!("{what} lease {name} in {}", self.namespace)
                } else {
                    s.message.clone()
                },
            },
            ::kube::Error::Api(s) if s.code != 429 && s.code < 500 => LeaseError::Backend {
                context: format!("{what} lease {name} in {}", self.namespace),
                source: Box::new(e),
            },
            _ => LeaseError::Unreachable {
                target: self.describe.clone(),
                source: Box::new(e),
            },
        }
    }

    /// The Lease called `name`, if it exists.
    pub async fn get(&self, name: &str) -> Result<Option<LeaseRecord>, LeaseError> {
        Ok(self
            .call("read", name, self.api.get_opt(name))
            .await?
            .map(LeaseRecord::of))
    }

    /// The Leases carrying every label of `labels` (`key=value,...`).
    pub async fn list(&self, labels: &str) -> Result<Vec<LeaseRecord>, LeaseError> {
        let lp = ListParams::default().labels(labels);
        let list = self.call("list", labels, self.api.list(&lp)).await?;
        Ok(list.items.into_iter().map(LeaseRecord::of).collect())
    }

    /// Creates the Lease `name` with `claim`; [`LeaseError::Conflict`] when it exists.
    pub async fn create(
        &self,
        name: &str,
        claim: &LeaseClaim,
        labels: &BTreeMap<String, String>,
        annotations: &BTreeMap<String, String>,
    ) -> Result<LeaseRecord, LeaseError> {
        let lease = Lease {
            metadata: ObjectMeta {
                name: Some(name.to_owned()),
                namespace: Some(self.namespace.clone()),
                labels: Some(labels.clone()),
                annotations: Some(annotations.clone()),
                ..ObjectMeta::default()
            },
            spec: Some(spec_of(claim)),
        };
        let created = self
            .call(
                "create",
                name,
                self.api.create(&PostParams::default(), &lease),
            )
            .await?;
        Ok(LeaseRecord::of(created))
    }

    /// Writes `claim` into the Lease as it was read in `record`; [`LeaseError::Conflict`] when
    /// it changed since. (A Lease deleted since is created again: the API server allows
    /// create on update for Leases.)
    pub async fn update(
        &self,
        record: &LeaseRecord,
        claim: &LeaseClaim,
    ) -> Result<LeaseRecord, LeaseError> {
        let lease = Lease {
            metadata: ObjectMeta {
                name: Some(record.name.clone()),
                namespace: Some(self.namespace.clone()),
                labels: Some(record.labels.clone()),
                annotations: Some(record.annotations.clone()),
                resource_version: Some(record.resource_version.clone()),
                ..ObjectMeta::default()
            },
            spec: Some(spec_of(claim)),
        };
        let replaced = self
            .call(
                "update",
                &record.name,
                self.api
                    .replace(&record.name, &PostParams::default(), &lease),
            )
            .await;
        match replaced {
            Ok(l) => Ok(LeaseRecord::of(l)),
            // deleted meanwhile: someone else's doing, like a conflict
            Err(LeaseError::NotFound { name }) => Err(LeaseError::Conflict { name }),
            Err(e) => Err(e),
        }
    }

    /// Deletes the Lease as it was read in `record` (nothing when it is gone already;
    /// [`LeaseError::Conflict`] when it changed since).
    pub async fn delete(&self, record: &LeaseRecord) -> Result<(), LeaseError> {
        let dp = DeleteParams {
            preconditions: Some(::kube::api::Preconditions {
                resource_version: Some(record.resource_version.clone()),
                uid: None,
            }),
            ..DeleteParams::default()
        };
        match self
            .call("delete", &record.name, self.api.delete(&record.name, &dp))
            .await
        {
            Ok(_) | Err(LeaseError::NotFound { .. }) => Ok(()),
            Err(e) => Err(e),
        }
    }
}
