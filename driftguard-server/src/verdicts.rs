//! The deployment tools' latest verdict per discovered environment (issue #31): what Argo CD
//! or Flux last said of the object the environment comes from, shown next to DriftGuard's by
//! the API (`tool` of an environment), the dashboard, and `/metrics`
//! (`driftguard_tool_in_sync`, `driftguard_tool_healthy`).
//!
//! Set from each discovery (at start and by [`crate::follow`]) and from the watch's status
//! changes (which change no environment: an environment is not restarted for them); dropped
//! with the environment. The verdict is read by [`ToolVerdict::read`], pure.

use std::collections::{BTreeMap, HashMap};
use std::sync::RwLock;

use chrono::{DateTime, Utc};

use crate::config::discover::{Discovered, Tool, ToolVerdict};
use crate::metrics::Metrics;

/// The tool's object of a discovered environment and what the tool last said of it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ToolStatus {
    /// The tool.
    pub tool: Tool,
    /// `Application`, `Kustomization` or `HelmRelease`.
    pub kind: String,
    /// The object's namespace.
    pub namespace: String,
    /// The object's name.
    pub name: String,
    /// The index in `spec.sources` of the source the environment renders.
    pub source: Option<usize>,
    /// The verdict.
    pub verdict: ToolVerdict,
    /// The object's labels (what role bindings by `environmentLabels` select).
    pub labels: BTreeMap<String, String>,
    /// When DriftGuard read it.
    pub observed_at: DateTime<Utc>,
}

impl ToolStatus {
    /// The status of a discovered object, read at `now`.
    pub fn of(d: &Discovered, now: DateTime<Utc>) -> ToolStatus {
        ToolStatus {
            tool: d.app.tool,
            kind: d.app.kind.clone(),
            namespace: d.app.namespace.clone(),
            name: d.app.name.clone(),
            source: d.app.source,
            verdict: d.app.verdict.clone(),
            labels: d.app.labels.clone(),
            observed_at: now,
        }
    }

    /// `Application argocd/shop`: the object as the follower and the watches name it.
    pub fn object(&self) -> String {
        format!("{} {}/{}", self.kind, self.namespace, self.name)
    }
}

/// The `tool` label and API value of a tool: `argocd`, `flux`.
pub fn tool_name(tool: Tool) -> &'static str {
    match tool {
        Tool::ArgoCd => "argocd",
        Tool::Flux => "flux",
    }
}

/// The latest [`ToolStatus`] per environment, with its gauges.
#[derive(Debug, Default)]
pub struct Verdicts {
    by_env: RwLock<HashMap<String, ToolStatus>>,
}

impl Verdicts {
    /// The status of `environment` (`None`: not a discovered environment, or not known yet).
    pub fn get(&self, environment: &str) -> Option<ToolStatus> {
        self.by_env
            .read()
            .expect("the verdicts' lock is never poisoned: nothing panics holding it")
            .get(environment)
            .cloned()
    }

    /// Sets the status of `environment` and its gauges.
    pub fn set(&self, environment: &str, status: ToolStatus, metrics: &Metrics) {
        metrics.set_tool_verdict(
            environment,
            tool_name(status.tool),
            status.verdict.in_sync(),
            status.verdict.healthy(),
        );
        self.by_env
            .write()
            .expect("the verdicts' lock is never poisoned: nothing panics holding it")
            .insert(environment.to_owned(), status);
    }

    /// Takes a new verdict of the object `object` (`Application argocd/shop`) read by
    /// `read` (given the environment's name) for each environment it is the object of (several environments for a multi-source
    /// Application), at `now`. Returns the environments whose verdict changed.
    pub fn update_object(
        &self,
        object: &str,
        read: impl Fn(&str, &ToolStatus) -> ToolVerdict,
        now: DateTime<Utc>,
        metrics: &Metrics,
    ) -> Vec<String> {
        let mut changed = Vec::new();
        let mut map = self
            .by_env
            .write()
            .expect("the verdicts' lock is never poisoned: nothing panics holding it");
        for (env, status) in map.iter_mut().filter(|(_, s)| s.object() == object) {
            let verdict = read(env, status);
            status.observed_at = now;
            if verdict != status.verdict {
                status.verdict = verdict;
                metrics.set_tool_verdict(
                    env,
                    tool_name(status.tool),
                    status.verdict.in_sync(),
                    status.verdict.healthy(),
                );
                changed.push(env.clone());
            }
        }
        changed.sort();
        changed
    }

    /// The discovered environments whose tool's object carries every label of `labels`,
    /// sorted.
    pub fn labelled(&self, labels: &BTreeMap<String, String>) -> Vec<String> {
        let map = self
            .by_env
            .read()
            .expect("the verdicts' lock is never poisoned: nothing panics holding it");
        let mut found: Vec<String> = map
            .iter()
            .filter(|(_, s)| labels.iter().all(|(k, v)| s.labels.get(k) == Some(v)))
            .map(|(env, _)| env.clone())
            .collect();
        found.sort();
        found
    }

    /// Drops the status of `environment` (its gauges go with [`Metrics::forget`]).
    pub fn remove(&self, environment: &str) {
        self.by_env
            .write()
            .expect("the verdicts' lock is never poisoned: nothing panics holding it")
            .remove(environment);
    }
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;
    use serde_json::json;

    use super::*;

    fn status(kind: &str, name: &str, source: Option<usize>, sync: &str) -> ToolStatus {
        ToolStatus {
            tool: Tool::ArgoCd,
            kind: kind.into(),
            namespace: "argocd".into(),
            name: name.into(),
            source,
            verdict: ToolVerdict {
                sync: Some(sync.into()),
                health: Some("Healthy".into()),
                ..ToolVerdict::default()
            },
            labels: BTreeMap::from([("team".to_owned(), name.to_owned())]),
            observed_at: Utc.with_ymd_and_hms(2026, 12, 1, 9, 0, 0).unwrap(),
        }
    }

    #[test]
    fn labels_select_the_environments_whose_object_carries_all_of_them() {
        let metrics = Metrics::new();
        let v = Verdicts::default();
        v.set(
            "argocd.shop",
            status("Application", "shop", None, "Synced"),
            &metrics,
        );
        v.set(
            "argocd.cart",
            status("Application", "cart", None, "Synced"),
            &metrics,
        );
        let team = |t: &str| BTreeMap::from([("team".to_owned(), t.to_owned())]);
        assert_eq!(v.labelled(&team("shop")), ["argocd.shop"]);
        assert!(v.labelled(&team("none")).is_empty());
        let mut both = team("cart");
        both.insert("tier".into(), "web".into());
        assert!(v.labelled(&both).is_empty(), "every label must match");
        v.remove("argocd.shop");
        assert!(v.labelled(&team("shop")).is_empty());
    }

    #[test]
    fn a_status_change_updates_every_environment_of_the_object_and_the_gauges() {
        let metrics = Metrics::new();
        let v = Verdicts::default();
        v.set(
            "argocd.shop.0",
            status("Application", "shop", Some(0), "Synced"),
            &metrics,
        );
        v.set(
            "argocd.shop.1",
            status("Application", "shop", Some(1), "Synced"),
            &metrics,
        );
        v.set(
            "argocd.other",
            status("Application", "other", None, "Synced"),
            &metrics,
        );
        let now = Utc.with_ymd_and_hms(2026, 12, 2, 9, 0, 0).unwrap();
        let text = metrics.encode(now);
        assert!(
            text.contains(
                r#"driftguard_tool_in_sync{environment="argocd.shop.0",tool="argocd"} 1"#
            ),
            "{text}"
        );

        let object = json!({"status": {
            "sync": {"status": "OutOfSync", "revisions": ["aaa", "bbb"]},
            "health": {"status": "Degraded"}
        }});
        let changed = v.update_object(
            "Application argocd/shop",
            |_, s| ToolVerdict::read(s.tool, &s.kind, &object, s.source, &[]),
            now,
            &metrics,
        );
        assert_eq!(changed, ["argocd.shop.0", "argocd.shop.1"]);
        let one = v.get("argocd.shop.1").expect("kept");
        assert_eq!(one.verdict.revision.as_deref(), Some("bbb"));
        assert_eq!(one.verdict.sync.as_deref(), Some("OutOfSync"));
        assert_eq!(one.observed_at, now);
        assert_eq!(
            v.get("argocd.other").expect("kept").verdict.sync.as_deref(),
            Some("Synced")
        );
        let text = metrics.encode(now);
        assert!(
            text.contains(
                r#"driftguard_tool_in_sync{environment="argocd.shop.0",tool="argocd"} 0"#
            ),
            "{text}"
        );
        assert!(
            text.contains(
                r#"driftguard_tool_healthy{environment="argocd.shop.1",tool="argocd"} 0"#
            ),
            "{text}"
        );

        // the same verdict again changes nothing
        let again = v.update_object(
            "Application argocd/shop",
            |_, s| ToolVerdict::read(s.tool, &s.kind, &object, s.source, &[]),
            now,
            &metrics,
        );
        assert!(again.is_empty());

        // gone: no verdict, no series
        v.remove("argocd.shop.0");
        metrics.forget("argocd.shop.0");
        assert_eq!(v.get("argocd.shop.0"), None);
        let text = metrics.encode(now);
        assert!(
            !text.contains(r#"environment="argocd.shop.0",tool"#),
            "{text}"
        );
        assert!(
            text.contains(r#"environment="argocd.shop.1",tool"#),
            "{text}"
        );
    }

    #[test]
    fn unknown_drops_the_series() {
        let metrics = Metrics::new();
        let v = Verdicts::default();
        let mut s = status("Application", "shop", None, "Unknown");
        s.verdict.health = Some("Unknown".into());
        v.set("argocd.shop", s, &metrics);
        let text = metrics.encode(Utc::now());
        assert!(!text.contains(r#"environment="argocd.shop""#), "{text}");
        assert!(v.get("argocd.shop").is_some());
    }
}
