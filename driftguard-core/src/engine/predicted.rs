//! Server-side diff: comparing with what the API server would make of Git's objects.
//!
//! By default DriftGuard compares Git's objects, normalized, with the live ones. What the API
//! server does to an object on its way in is then known only by the built-in rules (defaults,
//! zero values, quantities, YAML 1.1): an admission policy or webhook that rewrites a field
//! Git sets (an image moved to a registry mirror or pinned to a digest, a policy engine's
//! defaults over Git's values, a sidecar injected into Git's containers) shows as drift that
//! never goes away. With `serverSideDiff` an environment asks the cluster instead, as Argo CD's
//! server-side diff and Flux's kustomize-controller do: every desired object is sent as a
//! server-side apply dry run ([`crate::ports::LiveSource::predict`]), and the answer is what
//! Git's object would be once applied.
//!
//! The answer is not compared whole: it also holds the live values of every field Git does not
//! set, which a later change by hand would make stale. [`project`] keeps Git's shape with the
//! answer's values: each field Git sets takes the value the server would give it, and where
//! every key counts (a keyed list, labels, annotations, data) the keys the server adds are
//! kept too (an injected sidecar, an annotation a policy adds). Secrets are never sent: their
//! values stay out of requests DriftGuard makes. An object the dry run refuses (no `patch`
//! permission, a validation error) is compared with Git's object as usual, and the scan says
//! why.
//!
//! Cost: one request per desired object per full scan (watch events reuse the last answers).

use serde_json::{Map, Value};

use crate::path;

/// Maps whose every key is compared ([`crate::compare`]'s closed maps).
const CLOSED_MAPS: &[&str] = &["labels", "annotations", "data", "binaryData", "stringData"];

/// Git's normalized object with the values of the server's answer (see the module's notes).
pub fn project(git: &Value, predicted: &Value) -> Value {
    project_at(git, predicted, None)
}

fn project_at(git: &Value, predicted: &Value, key: Option<&str>) -> Value {
    match (git, predicted) {
        (Value::Object(g), Value::Object(p)) => {
            let closed = key.is_some_and(|k| CLOSED_MAPS.contains(&k))
                || (!g.is_empty() && g.keys().all(|k| path::is_item(k)));
            let mut out = Map::with_capacity(g.len());
            for (k, gv) in g {
                let v = match p.get(k) {
                    Some(pv) => project_at(gv, pv, Some(k)),
                    // the server omits it (a zero value): Git's stands
                    None => gv.clone(),
                };
                out.insert(k.clone(), v);
            }
            if closed {
                for (k, pv) in p {
                    if !g.contains_key(k) {
                        out.insert(k.clone(), pv.clone());
                    }
                }
            }
            Value::Object(out)
        }
        // a value, a list compared whole, or a field whose type the server changed
        (_, p) if !p.is_null() => p.clone(),
        (g, _) => g.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn git_shape_with_the_servers_values() {
        let git = json!({"metadata": {"name": "api", "labels": {"app": "api"}},
            "spec": {"minReadySeconds": 0, "template": {"spec": {"containers": {
                "[app]": {"name": "app", "image": "nginx:1.27",
                    "resources": {"limits": {"cpu": "1"}}}}}}}});
        let predicted = json!({"metadata": {"name": "api",
                "labels": {"app": "api", "policy.example/checked": "true"}},
            "spec": {"replicas": 3, "template": {"spec": {
                "dnsPolicy": "ClusterFirst",
                "containers": {
                    "[app]": {"name": "app", "image": "mirror.local/nginx:1.27",
                        "imagePullPolicy": "IfNotPresent",
                        "resources": {"limits": {"cpu": "1"}}},
                    "[proxy]": {"name": "proxy", "image": "envoy:1"}}}}}});
        let got = project(&git, &predicted);
        assert_eq!(
            got,
            json!({"metadata": {"name": "api",
                    "labels": {"app": "api", "policy.example/checked": "true"}},
                "spec": {"minReadySeconds": 0, "template": {"spec": {"containers": {
                    "[app]": {"name": "app", "image": "mirror.local/nginx:1.27",
                        "resources": {"limits": {"cpu": "1"}}},
                    "[proxy]": {"name": "proxy", "image": "envoy:1"}}}}}})
        );
    }
}
