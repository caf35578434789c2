//! Applying a remediation [`Plan`] to a cluster: server-side apply with the field manager
//! [`FIELD_MANAGER`], guarded JSON patch removals, creation and deletion.
//!
//! Every change is first sent as a server-side dry run (`dryRun=All`): [`KubeLiveSource::preview`]
//! stops there and reports exactly what the API server would change; [`KubeLiveSource::apply_plan`]
//! goes on only when every dry run passed, so a refused request (a 403 without the write role,
//! an admission webhook, a failed `test`) changes nothing. The plan's removals go first (a JSON
//! patch whose `test` operations make it all-or-nothing), then the apply.

use ::kube::api::{Api, DeleteParams, DynamicObject, Patch, PatchParams};
use ::kube::core::Request;
use driftguard_core::ports::GroupVersionKind;
use driftguard_core::remediate::advice::FieldChange;
use driftguard_core::remediate::{
    apply_removals, diff_objects, Operation, Plan, Target, FIELD_MANAGER,
};
use driftguard_core::secret;
use serde_json::Value;

use super::{classify, Failure, KubeLiveSource};

/// Why a plan could not be applied (nothing was changed, unless said so).
#[derive(Debug, thiserror::Error)]
pub enum ApplyError {
    /// The cluster refused the request for this account (HTTP 401/403).
    #[error("the cluster refused to {verb} {object} ({why}): remediation needs DriftGuard's write role (deploy/rbac/driftguard-remediate.yaml); nothing was changed")]
    Forbidden {
        /// `patch`, `delete`.
        verb: String,
        /// The object.
        object: String,
        /// The API server's message.
        why: String,
    },
    /// The object changed since the plan was made (a `test` failed, or it is gone).
    #[error("{object} changed since the plan was made ({why}): nothing was changed; plan again")]
    Stale {
        /// The object.
        object: String,
        /// The API server's message.
        why: String,
    },
    /// Another refusal of the API server (validation, admission).
    #[error("the cluster refused the change of {object}: {why}; nothing was changed")]
    Refused {
        /// The object.
        object: String,
        /// The API server's message.
        why: String,
    },
    /// The cluster could not be reached, or the kind is not served.
    #[error("cannot reach the cluster for {object}: {why}")]
    Unreachable {
        /// The object.
        object: String,
        /// Why.
        why: String,
    },
    /// The plan is not a cluster plan.
    #[error("an {0} plan is not applied to a cluster")]
    NotClusterPlan(Operation),
}

/// What a preview or an application did.
#[derive(Clone, Debug, PartialEq)]
pub struct Applied {
    /// The changes, field by field (JSON pointers), as the API server answered.
    pub changes: Vec<FieldChange>,
    /// Whether the changes were made (false: a dry run).
    pub applied: bool,
}

fn describe(t: &Target) -> String {
    match &t.namespace {
        Some(ns) => format!("{} {ns}/{}", t.kind, t.name),
        None => format!("{} {}", t.kind, t.name),
    }
}

fn error(t: &Target, verb: &str, e: ::kube::Error) -> ApplyError {
    let object = describe(t);
    if let ::kube::Error::Api(s) = &e {
        let why = if s.message.is_empty() {
            s.reason.clone()
        } else {
            s.message.clone()
        };
        // the API server may quote a Secret's value in its message: never passed on
        let secret = secret::is_secret(t.group(), &t.kind);
        let stale = why.contains("test") || s.code == 404 || s.code == 409;
        let why = if secret {
            secret::api_message(s.code, &why)
        } else {
            why
        };
        return match s.code {
            401 | 403 => ApplyError::Forbidden {
                verb: verb.to_owned(),
                object,
                why: format!("HTTP {}: {why}", s.code),
            },
            404 | 409 | 422 if stale => ApplyError::Stale { object, why },
            _ => ApplyError::Refused { object, why },
        };
    }
    match classify(&e) {
        Failure::Unauthorized(why) => ApplyError::Forbidden {
            verb: verb.to_owned(),
            object,
            why,
        },
        Failure::Kind(why)
        | Failure::Forbidden(why)
        | Failure::Transient(why)
        | Failure::Unreachable(why) => ApplyError::Unreachable { object, why },
    }
}

impl KubeLiveSource {
    async fn api_for(&self, t: &Target) -> Result<Api<DynamicObject>, ApplyError> {
        let gvk = GroupVersionKind::from_api_version(&t.api_version, &t.kind);
        let r = self
            .inner
            .resolve(&gvk)
            .await
            .map_err(|e| error(t, "find", e))?;
        let client = self.inner.client.clone();
        Ok(match (&t.namespace, r.namespaced) {
            (Some(ns), true) => Api::namespaced_with(client, ns, &r.ar),
            _ => Api::all_with(client, &r.ar),
        })
    }

    /// The object as it is now in the cluster (`None`: not there).
    pub async fn get_object(&self, t: &Target) -> Result<Option<Value>, ApplyError> {
        let api = self.api_for(t).await?;
        let got = api.get_opt(&t.name).await.map_err(|e| error(t, "get", e))?;
        got.map(|o| {
            serde_json::to_value(o).map_err(|e| ApplyError::Unreachable {
                object: describe(t),
                why: e.to_string(),
            })
        })
        .transpose()
    }

    /// Sends the plan's removals as a JSON patch.
    async fn patch_removals(
        &self,
        api: &Api<DynamicObject>,
        t: &Target,
        removals: &[Value],
        dry_run: bool,
    ) -> Result<Value, ApplyError> {
        let pp = PatchParams {
            field_manager: Some(FIELD_MANAGER.to_owned()),
            dry_run,
            ..PatchParams::default()
        };
        let url = api.resource_url().to_owned();
        let ns_less = url.trim_end_matches('/');
        let mut req = Request::new(ns_less)
            .patch(&t.name, &pp, &Patch::Merge(Value::Null))
            .map_err(|e| error(t, "patch", ::kube::Error::BuildRequest(e)))?;
        *req.body_mut() = serde_json::to_vec(removals).map_err(|e| ApplyError::Refused {
            object: describe(t),
            why: e.to_string(),
        })?;
        if let Some(v) = req.headers_mut().get_mut("content-type") {
            *v = "application/json-patch+json"
                .parse()
                .expect("a static header value is valid");
        }
        let text = self
            .inner
            .client
            .request_text(req)
            .await
            .map_err(|e| error(t, "patch", e))?;
        serde_json::from_str(&text).map_err(|e| ApplyError::Unreachable {
            object: describe(t),
            why: e.to_string(),
        })
    }

    async fn run(&self, plan: &Plan, dry_run: bool) -> Result<Applied, ApplyError> {
        let t = &plan.target;
        let api = self.api_for(t).await?;
        let before = api
            .get_opt(&t.name)
            .await
            .map_err(|e| error(t, "get", e))?
            .map(serde_json::to_value)
            .transpose()
            .map_err(|e| ApplyError::Unreachable {
                object: describe(t),
                why: e.to_string(),
            })?;
        let secret = secret::is_secret(t.group(), &t.kind);
        let after = match plan.operation {
            Operation::Adopt | Operation::Codify => {
                return Err(ApplyError::NotClusterPlan(plan.operation))
            }
            Operation::Delete => {
                let dp = DeleteParams {
                    dry_run,
                    ..DeleteParams::default()
                };
                api.delete(&t.name, &dp)
                    .await
                    .map_err(|e| error(t, "delete", e))?;
                None
            }
            Operation::Apply | Operation::Create => {
                let body = plan
                    .apply
                    .as_ref()
                    .ok_or(ApplyError::NotClusterPlan(plan.operation))?;
                if !plan.removals.is_empty() && before.is_some() && dry_run {
                    self.patch_removals(&api, t, &plan.removals, true).await?;
                }
                if !plan.removals.is_empty() && before.is_some() && !dry_run {
                    self.patch_removals(&api, t, &plan.removals, false).await?;
                }
                let mut pp = PatchParams::apply(FIELD_MANAGER).force();
                pp.dry_run = dry_run;
                let out = api
                    .patch(&t.name, &pp, &Patch::Apply(body))
                    .await
                    .map_err(|e| error(t, "patch", e))?;
                let mut v = serde_json::to_value(out).map_err(|e| ApplyError::Unreachable {
                    object: describe(t),
                    why: e.to_string(),
                })?;
                if dry_run {
                    // the dry-run apply saw the object before the removals
                    apply_removals(&mut v, &plan.removals);
                }
                Some(v)
            }
        };
        Ok(Applied {
            changes: diff_objects(before.as_ref(), after.as_ref(), secret),
            applied: !dry_run,
        })
    }

    /// What applying `plan` would change, as the API server answers a dry run (`dryRun=All`).
    pub async fn preview(&self, plan: &Plan) -> Result<Applied, ApplyError> {
        self.run(plan, true).await
    }

    /// Applies `plan`: first every request as a dry run, then for real.
    pub async fn apply_plan(&self, plan: &Plan) -> Result<Applied, ApplyError> {
        self.run(plan, true).await?;
        self.run(plan, false).await
    }
}
