//! Argo CD's system-wide settings that change what it compares: the
//! `resource.customizations.ignoreDifferences.<group_kind>` keys of `argocd-cm` (and the
//! older single `resource.customizations` key), and server-side diff
//! (`controller.diff.server.side` of `argocd-cmd-params-cm`).
//!
//! Keys are read as Argo CD's settings manager reads them (`util/settings`): the part after
//! `ignoreDifferences.` is `all` (every object), `<group>_<kind>`, or `<kind>` (the core
//! group); a split key replaces what the single key said for the same group and kind.

use std::collections::BTreeMap;

use driftguard_core::ignore::IgnoreRule;
use driftguard_core::selector::ObjectSelector;
use serde_json::Value;

use crate::config::discover::read::{as_map, get, Problems};
use crate::config::discover::{ignore_paths, Problem};

const SPLIT_PREFIX: &str = "resource.customizations.ignoreDifferences.";
const SINGLE_KEY: &str = "resource.customizations";

/// Argo CD's system-wide settings, as DriftGuard uses them.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ArgoCdSettings {
    /// Ignore rules for every Application, after each Application's own.
    pub ignore: Vec<IgnoreRule>,
    /// Whether Argo CD diffs server-side for every Application (an Application's
    /// `argocd.argoproj.io/compare-options` annotation overrides it).
    pub server_side_diff: bool,
    /// What could not be read or translated, once for all Applications.
    pub problems: Vec<Problem>,
}

impl ArgoCdSettings {
    /// The settings of the `argocd-cm` ConfigMap and, if read, of `argocd-cmd-params-cm`.
    pub fn from_config_maps(argocd_cm: Option<&Value>, cmd_params_cm: Option<&Value>) -> Self {
        let mut p = Problems::default();
        let mut by_group_kind: BTreeMap<(String, String), (String, Value)> = BTreeMap::new();
        let data = |cm: Option<&Value>| -> BTreeMap<String, String> {
            cm.and_then(|c| get(c, "data"))
                .map(as_map)
                .into_iter()
                .flatten()
                .filter_map(|(k, v)| Some((k.clone(), v.as_str()?.to_owned())))
                .collect()
        };
        let cm = data(argocd_cm);

        // the single key first: a split key for the same group and kind replaces it
        if let Some(text) = cm.get(SINGLE_KEY).filter(|t| !t.trim().is_empty()) {
            let field = format!("argocd-cm.data[{SINGLE_KEY}]");
            match serde_yaml::from_str::<Value>(text) {
                Ok(overrides) => {
                    for (key, value) in as_map(&overrides) {
                        let Some(ignore) = get(value, "ignoreDifferences") else {
                            continue;
                        };
                        let at = format!("{field}.{key}.ignoreDifferences");
                        let Some(gk) = group_kind(key, '/') else {
                            p.note(at, "is not `<group>/<kind>` or `<kind>`: not read");
                            continue;
                        };
                        match override_value(ignore) {
                            Ok(v) => {
                                by_group_kind.insert(gk, (at, v));
                            }
                            Err(e) => p.note(at, e),
                        }
                    }
                }
                Err(e) => p.note(field, format!("is not YAML ({e}): not read")),
            }
        }
        for (key, text) in &cm {
            let Some(rest) = key.strip_prefix(SPLIT_PREFIX) else {
                continue;
            };
            let at = format!("argocd-cm.data[{key}]");
            let gk = if rest == "all" {
                Some(("*".to_owned(), "*".to_owned()))
            } else {
                group_kind(rest, '_')
            };
            let Some(gk) = gk else {
                p.note(at, "is not `all`, `<group>_<kind>` or `<kind>`: not read");
                continue;
            };
            match serde_yaml::from_str::<Value>(text) {
                Ok(v) => {
                    by_group_kind.insert(gk, (at, v));
                }
                Err(e) => p.note(at, format!("is not YAML ({e}): not read")),
            }
        }

        let mut ignore = Vec::new();
        for ((group, kind), (at, value)) in by_group_kind {
            let selector = ObjectSelector {
                group: (group != "*").then_some(group),
                kind: (kind != "*").then_some(kind),
                namespace: None,
                name: None,
            };
            if let Some(rule) = ignore_paths(selector, &value, &at, &mut p) {
                ignore.push(rule);
            }
        }

        let params = data(cmd_params_cm);
        let server_side_diff = params
            .get("controller.diff.server.side")
            .is_some_and(|v| v.trim().eq_ignore_ascii_case("true"));
        ArgoCdSettings {
            ignore,
            server_side_diff,
            problems: p.into_vec(),
        }
    }
}

/// `group<sep>kind` or `kind` (the core group), as Argo CD splits override keys.
fn group_kind(key: &str, separator: char) -> Option<(String, String)> {
    let parts: Vec<&str> = key.split(separator).collect();
    match parts.as_slice() {
        [kind] if !kind.is_empty() => Some((String::new(), (*kind).to_owned())),
        [group, kind] if !kind.is_empty() => Some(((*group).to_owned(), (*kind).to_owned())),
        _ => None,
    }
}

/// An `ignoreDifferences` value of the single key: a YAML text (as Argo CD writes it) or a
/// mapping.
fn override_value(v: &Value) -> Result<Value, String> {
    match v {
        Value::String(text) => {
            serde_yaml::from_str(text).map_err(|e| format!("is not YAML ({e}): not read"))
        }
        Value::Object(_) => Ok(v.clone()),
        _ => Err("expected YAML text or a mapping: not read".into()),
    }
}
