//! Server-side diff: what the API server would make of Git's objects (see
//! `driftguard_core::engine::predicted`). Each object is sent as a server-side apply dry run
//! (`dryRun=All`, field manager [`DIFF_MANAGER`], forced, as Argo CD's server-side diff does):
//! the answer has the API server's defaults, admission policies and webhooks applied, and
//! nothing is changed. Needs `patch` on the kinds (DriftGuard's read role does not give it).

use ::kube::api::{Api, DynamicObject, Patch, PatchParams};
use driftguard_core::model::RawObject;
use driftguard_core::ports::{GroupVersionKind, Prediction};
use driftguard_core::secret;
use futures_util::stream::{self, StreamExt};
use serde_json::Value;

use super::{Inner, KubeLiveSource};

/// The field manager of the dry runs (never written: nothing is persisted).
pub const DIFF_MANAGER: &str = "driftguard-diff";

/// Dry runs in flight at once.
const CONCURRENCY: usize = 8;

impl KubeLiveSource {
    /// The dry-run answers for `objects`, in order.
    pub(crate) async fn predict_all(
        &self,
        objects: &[RawObject],
        default_namespace: &str,
    ) -> Vec<Prediction> {
        let inner = &self.inner;
        // the futures made first: a closure inside the stream would not be `Send` for every
        // lifetime, as the trait's boxed future needs
        let mut futures = Vec::with_capacity(objects.len());
        for o in objects {
            futures.push(predict_one(inner, o, default_namespace));
        }
        stream::iter(futures).buffered(CONCURRENCY).collect().await
    }
}

async fn predict_one(inner: &Inner, object: &RawObject, default_namespace: &str) -> Prediction {
    let v = &object.0;
    let s = |p: &str| v.pointer(p).and_then(Value::as_str).unwrap_or("");
    let (api_version, kind, name) = (s("/apiVersion"), s("/kind"), s("/metadata/name"));
    let what = format!("{kind} {name}");
    if secret::is_secret_object(v) {
        return Err(format!("{what}: Secrets are not sent"));
    }
    let gvk = GroupVersionKind::from_api_version(api_version, kind);
    let r = inner
        .resolve(&gvk)
        .await
        .map_err(|e| format!("{what}: {e}"))?;
    let mut body: Value = Value::clone(v);
    let api: Api<DynamicObject> = if r.namespaced {
        let ns = match s("/metadata/namespace") {
            "" => default_namespace.to_owned(),
            ns => ns.to_owned(),
        };
        if let Some(meta) = body.get_mut("metadata").and_then(Value::as_object_mut) {
            meta.insert("namespace".into(), Value::String(ns.clone()));
        }
        Api::namespaced_with(inner.client.clone(), &ns, &r.ar)
    } else {
        if let Some(meta) = body.get_mut("metadata").and_then(Value::as_object_mut) {
            meta.remove("namespace");
        }
        Api::all_with(inner.client.clone(), &r.ar)
    };
    let mut pp = PatchParams::apply(DIFF_MANAGER).force();
    pp.dry_run = true;
    let answer = api
        .patch(name, &pp, &Patch::Apply(&body))
        .await
        .map_err(|e| match e {
            ::kube::Error::Api(s) => format!(
                "{what}: the dry run was refused (HTTP {}: {})",
                s.code, s.message
            ),
            e => format!("{what}: {e}"),
        })?;
    serde_json::to_value(answer)
        .map(RawObject::new)
        .map_err(|e| format!("{what}: {e}"))
}
