//! An environment's kustomize options applied to its folder's kustomization, the way Argo CD
//! applies an Application's `spec.source.kustomize` (argo-cd `util/kustomize/kustomize.go`) and
//! Flux's kustomize-controller a Kustomization's fields (fluxcd/pkg
//! `kustomize/kustomize_generator.go`): by editing the folder's own kustomization before the
//! build, not by wrapping it in an overlay (an overlay would add its name prefix to the
//! folder's instead of replacing it, miss images the folder renames, and apply its patches to
//! names already prefixed).
//!
//! The edits are those of `kustomize edit` as Argo CD runs them, in its order:
//!
//! | option | edit | in the kustomization |
//! | --- | --- | --- |
//! | `namePrefix`, `nameSuffix` | `set nameprefix`, `set namesuffix` | replaced |
//! | `images` | `set image` | an entry per image name: an override replaces the entry of its name (`*` keeps a field of it); sorted by name |
//! | `replicas` | `set replicas` | an entry per name, replaced; sorted by name |
//! | `commonLabels` | `add label` | added to `commonLabels`; a label already there is an error (Argo CD's without `forceCommonLabels`) |
//! | `commonAnnotations` | `add annotation` | added to `commonAnnotations`; the same |
//! | `namespace` | `set namespace` | replaced |
//! | `patches` | (written by Argo CD) | appended to `patches` |
//! | `components` | `add component` | appended to `components`, unless there already |
//!
//! `$ARGOCD_APP_REVISION` and the like in an image or a label's value are replaced as Argo CD
//! replaces them ([`expand_argo`]). A folder without a kustomization gets the one Flux
//! generates ([`generate`]): its manifest files and the folders of the kustomizations below
//! it as resources.

use std::collections::BTreeMap;

use serde_json::{Map, Value};

use driftguard_core::manifest::parse_file;

use super::image::ImageOverride;
use super::KustomizeOptions;

/// A kustomization file's content.
pub(crate) type Kustomization = Map<String, Value>;

/// An option that cannot be applied: the option (`images[1]`, `commonLabels`) and why.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct EditError {
    /// The option, as the configuration names it below `kustomize`.
    pub field: String,
    /// What is wrong.
    pub problem: String,
}

fn edit_error(field: impl Into<String>, problem: impl Into<String>) -> EditError {
    EditError {
        field: field.into(),
        problem: problem.into(),
    }
}

/// Reads a kustomization file's YAML, its unquoted scalars as kustomize reads them (YAML 1.1:
/// the core's reader of manifests, which reads it as the `spec` of an object). `Err` says why
/// it is not a kustomization, with the line.
pub(crate) fn read(text: &str) -> Result<Kustomization, String> {
    const HEADER: &str =
        "apiVersion: v1\nkind: KustomizationFile\nmetadata:\n  name: kustomization\nspec:\n";
    let mut wrapped = String::with_capacity(HEADER.len() + text.len() + 2 * text.lines().count());
    wrapped.push_str(HEADER);
    // the line in `text` of each line below `spec:`
    let mut lines = Vec::new();
    let mut content = false;
    for (n, line) in text.lines().enumerate() {
        let t = line.trim_end();
        if !content && (t == "---" || t.starts_with("--- ") || t.starts_with('%')) {
            // a directive or the document's start marker
            continue;
        }
        if t == "..." {
            break;
        }
        content |= !t.trim_start().is_empty() && !t.trim_start().starts_with('#');
        wrapped.push_str("  ");
        wrapped.push_str(line);
        wrapped.push('\n');
        lines.push(n + 1);
    }
    let parsed = parse_file("kustomization.yaml", &wrapped, None);
    if let Some(e) = parsed.errors.first() {
        let body = e.line.saturating_sub(HEADER.lines().count() + 1);
        let line = lines.get(body).or(lines.last()).copied().unwrap_or(1);
        return Err(format!("line {line}: {}", e.message));
    }
    let Some((object, _)) = parsed.objects.first() else {
        return Ok(Kustomization::new());
    };
    match object.value().get("spec") {
        None | Some(Value::Null) => Ok(Kustomization::new()),
        Some(Value::Object(m)) => Ok(m.clone()),
        Some(_) => Err("is not a mapping".into()),
    }
}

/// The kustomization Flux generates for a folder without one: `resources` (paths relative to
/// the folder), or a placeholder namespace when there is none (kustomize refuses an empty
/// kustomization).
pub(crate) fn generate(resources: Vec<String>) -> Kustomization {
    let mut k = Kustomization::new();
    k.insert(
        "apiVersion".into(),
        "kustomize.config.k8s.io/v1beta1".into(),
    );
    k.insert("kind".into(), "Kustomization".into());
    if resources.is_empty() {
        k.insert("namespace".into(), "_placeholder".into());
    } else {
        k.insert(
            "resources".into(),
            resources.into_iter().map(Value::from).collect(),
        );
    }
    k
}

/// What Argo CD's build environment gives the variables of images and label values.
#[derive(Clone, Copy, Debug)]
pub(crate) struct BuildEnv<'a> {
    /// The commit rendered (none for a folder).
    pub revision: Option<&'a str>,
    /// The environment's folder in the repository (`ARGOCD_APP_SOURCE_PATH`).
    pub source_path: &'a str,
}

/// `s` with `$NAME` and `${NAME}` replaced as Argo CD's `Env.Envsubst` (Go's `os.Expand`)
/// replaces them: `ARGOCD_APP_REVISION`, `ARGOCD_APP_REVISION_SHORT` (7 characters),
/// `ARGOCD_APP_REVISION_SHORT_8` and `ARGOCD_APP_SOURCE_PATH` by their value, `$$` by `$`, any
/// other name by nothing. `Err` names a variable of Argo CD's that DriftGuard cannot give
/// (the Application's name, project or repository URL; a revision for a folder).
pub(crate) fn expand_argo(s: &str, env: &BuildEnv<'_>) -> Result<String, String> {
    let bytes = s.as_bytes();
    let mut out = String::with_capacity(s.len());
    let (mut i, mut j) = (0, 0);
    while j < bytes.len() {
        if bytes[j] == b'$' && j + 1 < bytes.len() {
            out.push_str(&s[i..j]);
            let (name, width) = shell_name(&s[j + 1..]);
            if name.is_empty() && width > 0 {
                // invalid syntax (`${}`, an unclosed `${`): eaten, as Go does
            } else if name.is_empty() {
                out.push('$');
            } else {
                out.push_str(&argo_variable(name, env)?);
            }
            j += width;
            i = j + 1;
        }
        j += 1;
    }
    out.push_str(&s[i.min(s.len())..]);
    Ok(out)
}

/// Go's `getShellName`: the name after a `$` and how many bytes it takes.
fn shell_name(s: &str) -> (&str, usize) {
    let b = s.as_bytes();
    let special = |c: u8| b"*#$@!?-".contains(&c) || c.is_ascii_digit();
    if b[0] == b'{' {
        if b.len() > 2 && special(b[1]) && b[2] == b'}' {
            return (&s[1..2], 3);
        }
        for (i, c) in b.iter().enumerate().skip(1) {
            if *c == b'}' {
                if i == 1 {
                    return ("", 2);
                }
                return (&s[1..i], i + 1);
            }
        }
        return ("", 1);
    }
    if special(b[0]) {
        return (&s[0..1], 1);
    }
    let n = b
        .iter()
        .take_while(|c| c.is_ascii_alphanumeric() || **c == b'_')
        .count();
    (&s[..n], n)
}

fn argo_variable(name: &str, env: &BuildEnv<'_>) -> Result<String, String> {
    let revision = |n: usize| {
        env.revision
            .map(|r| r.chars().take(n).collect::<String>())
            .ok_or_else(|| {
                format!("${name} has no value for a folder (dir): it is a Git revision's")
            })
    };
    match name {
        "$" => Ok("$".into()),
        "ARGOCD_APP_REVISION" => revision(usize::MAX),
        "ARGOCD_APP_REVISION_SHORT" => revision(7),
        "ARGOCD_APP_REVISION_SHORT_8" => revision(8),
        "ARGOCD_APP_SOURCE_PATH" => Ok(env.source_path.to_owned()),
        n if n.starts_with("ARGOCD_APP_") => Err(format!(
            "${n} is given by Argo CD and not known to DriftGuard (it knows ARGOCD_APP_REVISION, ARGOCD_APP_REVISION_SHORT, ARGOCD_APP_REVISION_SHORT_8 and ARGOCD_APP_SOURCE_PATH)"
        )),
        _ => Ok(String::new()),
    }
}

/// kustomize's `trimQuotes` of a `key:value` argument's value: one pair of surrounding `"`.
fn trim_quotes(s: &str) -> &str {
    if s.len() >= 2 && s.starts_with('"') && s.ends_with('"') {
        &s[1..s.len() - 1]
    } else {
        s
    }
}

/// Why `key: value` cannot be a label (the API server's rules, which `kustomize edit add label`
/// checks), if it cannot.
pub fn label_problem(key: &str, value: &str) -> Option<String> {
    if let Some(p) = qualified_name_problem(key) {
        return Some(format!("label key `{key}`: {p}"));
    }
    if !value.is_empty() && !is_label_name(value) {
        return Some(format!(
            "the value of label `{key}` must be at most 63 characters: letters, digits, `-`, `_` and `.`, beginning and ending with a letter or digit"
        ));
    }
    None
}

/// Why `key` cannot be an annotation's key, if it cannot.
pub fn annotation_key_problem(key: &str) -> Option<String> {
    qualified_name_problem(&key.to_ascii_lowercase())
        .map(|p| format!("annotation key `{key}`: {p}"))
}

fn is_label_name(s: &str) -> bool {
    let b = s.as_bytes();
    !b.is_empty()
        && b.len() <= 63
        && b[0].is_ascii_alphanumeric()
        && b[b.len() - 1].is_ascii_alphanumeric()
        && b.iter()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'-' | b'_' | b'.'))
}

/// A qualified name: `[prefix/]name`, the prefix a DNS subdomain.
fn qualified_name_problem(key: &str) -> Option<&'static str> {
    let (prefix, name) = match key.split_once('/') {
        Some((p, n)) => (Some(p), n),
        None => (None, key),
    };
    if let Some(p) = prefix {
        let subdomain = !p.is_empty()
            && p.len() <= 253
            && p.split('.').all(|l| {
                let b = l.as_bytes();
                !b.is_empty()
                    && b.len() <= 63
                    && b.iter()
                        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'-')
                    && b[0] != b'-'
                    && b[b.len() - 1] != b'-'
            });
        if !subdomain {
            return Some(
                "its prefix must be a DNS subdomain (lower-case letters, digits, `-` and `.`)",
            );
        }
    }
    if !is_label_name(name) {
        return Some(
            "its name must be at most 63 characters: letters, digits, `-`, `_` and `.`, beginning and ending with a letter or digit",
        );
    }
    None
}

/// The list at `key` (absent or null: empty), taken out of `k`.
fn take_list(k: &mut Kustomization, key: &str) -> Result<Vec<Value>, EditError> {
    match k.remove(key) {
        None | Some(Value::Null) => Ok(Vec::new()),
        Some(Value::Array(a)) => Ok(a),
        Some(_) => Err(edit_error(
            key,
            format!("the kustomization's `{key}` is not a list"),
        )),
    }
}

fn name_of(entry: &Value) -> &str {
    entry.get("name").and_then(Value::as_str).unwrap_or("")
}

/// Applies `o` to the kustomization `k` (whose file is `file`, for messages) in Argo CD's
/// order. Returns the options applied, by key.
pub(crate) fn apply(
    k: &mut Kustomization,
    file: &str,
    o: &KustomizeOptions,
    env: &BuildEnv<'_>,
) -> Result<Vec<&'static str>, EditError> {
    let mut applied = Vec::new();
    if let Some(p) = o.name_prefix.as_deref().filter(|p| !p.is_empty()) {
        k.insert("namePrefix".into(), p.into());
        applied.push("namePrefix");
    }
    if let Some(s) = o.name_suffix.as_deref().filter(|s| !s.is_empty()) {
        k.insert("nameSuffix".into(), s.into());
        applied.push("nameSuffix");
    }
    if !o.images.is_empty() {
        images(k, &o.images, env)?;
        applied.push("images");
    }
    if !o.replicas.is_empty() {
        let mut by_name: BTreeMap<String, Value> = o
            .replicas
            .iter()
            .map(|r| {
                (
                    r.name.clone(),
                    serde_json::json!({"name": r.name, "count": r.count}),
                )
            })
            .collect();
        for entry in take_list(k, "replicas")? {
            by_name.entry(name_of(&entry).to_owned()).or_insert(entry);
        }
        k.insert("replicas".into(), by_name.into_values().collect());
        applied.push("replicas");
    }
    if !o.common_labels.is_empty() {
        let mut labels = BTreeMap::new();
        for (key, value) in &o.common_labels {
            let value = expand_argo(value, env).map_err(|p| edit_error("commonLabels", p))?;
            let value = trim_quotes(&value).to_owned();
            if let Some(p) = label_problem(key, &value) {
                return Err(edit_error("commonLabels", p));
            }
            labels.insert(key.clone(), value);
        }
        add_metadata(k, file, "commonLabels", "label", labels)?;
        applied.push("commonLabels");
    }
    if !o.common_annotations.is_empty() {
        let mut annotations = BTreeMap::new();
        for (key, value) in &o.common_annotations {
            if let Some(p) = annotation_key_problem(key) {
                return Err(edit_error("commonAnnotations", p));
            }
            annotations.insert(key.clone(), trim_quotes(value).to_owned());
        }
        add_metadata(k, file, "commonAnnotations", "annotation", annotations)?;
        applied.push("commonAnnotations");
    }
    if let Some(ns) = o.namespace.as_deref().filter(|n| !n.is_empty()) {
        k.insert("namespace".into(), ns.into());
        applied.push("namespace");
    }
    if !o.patches.is_empty() {
        let mut patches = take_list(k, "patches")?;
        for p in &o.patches {
            let mut entry = Map::new();
            if let Some(path) = &p.path {
                entry.insert("path".into(), path.clone().into());
            }
            if let Some(patch) = &p.patch {
                entry.insert("patch".into(), patch.clone().into());
            }
            if !p.target.is_empty() {
                entry.insert(
                    "target".into(),
                    p.target
                        .iter()
                        .map(|(k, v)| (k.clone(), Value::from(v.clone())))
                        .collect::<Map<_, _>>()
                        .into(),
                );
            }
            patches.push(entry.into());
        }
        k.insert("patches".into(), patches.into());
        applied.push("patches");
    }
    if !o.components.is_empty() {
        let mut components = take_list(k, "components")?;
        let own = file.rsplit('/').next().unwrap_or(file);
        for c in &o.components {
            if c != own && !components.iter().any(|e| e.as_str() == Some(c)) {
                components.push(c.clone().into());
            }
        }
        k.insert("components".into(), components.into());
        applied.push("components");
    }
    Ok(applied)
}

/// `kustomize edit set image`: the overrides (expanded, read), merged with the
/// kustomization's `images` (and the deprecated `imageTags`, which kustomize folds in).
fn images(k: &mut Kustomization, images: &[String], env: &BuildEnv<'_>) -> Result<(), EditError> {
    enum Slot {
        Override(ImageOverride),
        Kept(Value),
    }
    let mut by_name: BTreeMap<String, Slot> = BTreeMap::new();
    for (i, raw) in images.iter().enumerate() {
        let field = || format!("images[{i}]");
        let expanded = expand_argo(raw, env).map_err(|p| edit_error(field(), p))?;
        let image =
            ImageOverride::parse(&expanded).map_err(|e| edit_error(field(), e.to_string()))?;
        by_name.insert(image.name.clone(), Slot::Override(image));
    }
    let mut existing = take_list(k, "images")?;
    existing.extend(take_list(k, "imageTags")?);
    for entry in existing {
        let name = name_of(&entry).to_owned();
        match by_name.get_mut(&name) {
            Some(Slot::Override(o)) => {
                let field = |key: &str| entry.get(key).and_then(Value::as_str).unwrap_or("");
                for (value, key) in [
                    (&mut o.new_name, "newName"),
                    (&mut o.new_tag, "newTag"),
                    (&mut o.digest, "digest"),
                ] {
                    if value == "*" {
                        *value = field(key).to_owned();
                    }
                }
            }
            // the first of two entries of one name is kept, as kustomize keeps it
            Some(Slot::Kept(_)) => {}
            None => {
                by_name.insert(name, Slot::Kept(entry));
            }
        }
    }
    let entries: Vec<Value> = by_name
        .into_values()
        .map(|slot| match slot {
            Slot::Kept(v) => v,
            Slot::Override(mut o) => {
                for value in [&mut o.new_name, &mut o.new_tag, &mut o.digest] {
                    if value == "*" {
                        value.clear();
                    }
                }
                o.to_entry().into()
            }
        })
        .collect();
    k.insert("images".into(), entries.into());
    Ok(())
}

/// `kustomize edit add label|annotation`: `pairs` added to the map at `key`; one already
/// there is an error (no `--force`).
fn add_metadata(
    k: &mut Kustomization,
    file: &str,
    key: &str,
    what: &str,
    pairs: BTreeMap<String, String>,
) -> Result<(), EditError> {
    let map = k
        .entry(key)
        .and_modify(|v| {
            if v.is_null() {
                *v = Value::Object(Map::new());
            }
        })
        .or_insert_with(|| Value::Object(Map::new()));
    let Some(map) = map.as_object_mut() else {
        return Err(edit_error(
            key,
            format!("the kustomization's `{key}` is not a mapping"),
        ));
    };
    for (name, value) in pairs {
        if map.contains_key(&name) {
            return Err(edit_error(
                key,
                format!(
                    "{what} `{name}` is already in {file}: Argo CD does not overwrite it (`kustomize edit add {what}` without --force); remove it from one of the two"
                ),
            ));
        }
        map.insert(name, value.into());
    }
    Ok(())
}

/// How many folders up the kustomization's references to other folders go (`../base` in
/// `resources`, `bases` or `components` is 1, `../../c` 2): a copy of its folder must see
/// that many levels of what surrounds the original.
pub(crate) fn outside_depth(k: &Kustomization) -> usize {
    ["resources", "bases", "components"]
        .iter()
        .filter_map(|key| k.get(*key).and_then(Value::as_array))
        .flatten()
        .filter_map(Value::as_str)
        .map(|s| {
            s.split('/')
                .take_while(|part| *part == ".." || *part == ".")
                .filter(|part| *part == "..")
                .count()
        })
        .max()
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::super::{KustomizePatch, KustomizeReplica};
    use super::*;
    use serde_json::json;

    const ENV: BuildEnv<'static> = BuildEnv {
        revision: Some("0123456789abcdef"),
        source_path: "apps/prod",
    };

    fn edited(text: &str, o: &KustomizeOptions) -> Result<Value, EditError> {
        let mut k = read(text).expect("a kustomization");
        apply(&mut k, "apps/prod/kustomization.yaml", o, &ENV)?;
        Ok(Value::Object(k))
    }

    #[test]
    fn yaml_is_read_as_kustomize_reads_it() {
        let k = read("---\n# c\nresources: [a.yaml]\nnamePrefix: x-\nimages:\n  - name: nginx\n    newTag: \"1.10\"\nreplicas:\n- name: web\n  count: 3\npatches:\n- patch: |-\n    - op: add\n      path: /x\n").expect("read");
        assert_eq!(
            Value::Object(k),
            json!({
                "resources": ["a.yaml"],
                "namePrefix": "x-",
                "images": [{"name": "nginx", "newTag": "1.10"}],
                "replicas": [{"name": "web", "count": 3}],
                "patches": [{"patch": "- op: add\n  path: /x"}],
            })
        );
        assert_eq!(read("").expect("empty"), Kustomization::new());
        let e = read("resources:\n- a\n  b: [\n").expect_err("bad");
        assert!(e.starts_with("line 3:"), "{e}");
        assert!(read("- a\n").is_err());
    }

    #[test]
    fn names_and_namespace_are_replaced() {
        let o = KustomizeOptions {
            name_prefix: Some("prod-".into()),
            name_suffix: Some("-v2".into()),
            namespace: Some("shop".into()),
            ..KustomizeOptions::default()
        };
        let k = edited(
            "namePrefix: base-\nnamespace: dev\nresources: [a.yaml]\n",
            &o,
        )
        .expect("ok");
        assert_eq!(
            k,
            json!({"namePrefix": "prod-", "namespace": "shop", "resources": ["a.yaml"], "nameSuffix": "-v2"})
        );
    }

    #[test]
    fn images_replace_entries_of_their_name_and_keep_with_a_star() {
        let o = KustomizeOptions {
            images: vec![
                "nginx:1.27".into(),
                "api=ghcr.io/acme/api:${ARGOCD_APP_REVISION_SHORT}".into(),
                "db=*:16".into(),
                "cache=redis".into(),
            ],
            ..KustomizeOptions::default()
        };
        let text = "images:\n- name: nginx\n  newName: mirror/nginx\n  newTag: '1.25'\n- name: db\n  newName: mirror/postgres\n  newTag: '15'\n- name: zz\n  newTag: '1'\nimageTags:\n- name: old\n  newTag: '2'\n";
        let k = edited(text, &o).expect("ok");
        assert_eq!(
            k,
            json!({"images": [
                {"name": "api", "newName": "ghcr.io/acme/api", "newTag": "0123456"},
                {"name": "cache", "newName": "redis"},
                {"name": "db", "newName": "mirror/postgres", "newTag": "16"},
                // an override replaces the whole entry, as `kustomize edit set image` does
                {"name": "nginx", "newTag": "1.27"},
                {"name": "old", "newTag": "2"},
                {"name": "zz", "newTag": "1"},
            ]})
        );
        let bad = KustomizeOptions {
            images: vec!["nginx:1".into(), "nginx".into()],
            ..KustomizeOptions::default()
        };
        let e = edited("", &bad).expect_err("bare name");
        assert_eq!(e.field, "images[1]");
    }

    #[test]
    fn replicas_labels_annotations_patches_components() {
        let mut target = BTreeMap::new();
        target.insert("kind".to_owned(), "Deployment".to_owned());
        let o = KustomizeOptions {
            replicas: vec![
                KustomizeReplica {
                    name: "web".into(),
                    count: 4,
                },
                KustomizeReplica {
                    name: "api".into(),
                    count: 2,
                },
            ],
            common_labels: [("team".to_owned(), "\"shop\"".to_owned())].into(),
            common_annotations: [("owner".to_owned(), "a:b".to_owned())].into(),
            patches: vec![KustomizePatch {
                patch: Some("- op: remove\n  path: /x".into()),
                path: None,
                target,
            }],
            components: vec!["../components/tls".into(), "../components/ha".into()],
            ..KustomizeOptions::default()
        };
        let text = "replicas:\n- name: web\n  count: 1\n- name: worker\n  count: 1\ncommonLabels:\n  app: shop\npatches:\n- path: p.yaml\ncomponents:\n- ../components/ha\n";
        let k = edited(text, &o).expect("ok");
        assert_eq!(
            k,
            json!({
                "replicas": [
                    {"name": "api", "count": 2},
                    {"name": "web", "count": 4},
                    {"name": "worker", "count": 1},
                ],
                "commonLabels": {"app": "shop", "team": "shop"},
                "patches": [
                    {"path": "p.yaml"},
                    {"patch": "- op: remove\n  path: /x", "target": {"kind": "Deployment"}},
                ],
                "components": ["../components/ha", "../components/tls"],
                "commonAnnotations": {"owner": "a:b"},
            })
        );
    }

    #[test]
    fn a_label_already_set_or_not_a_label_is_an_error() {
        let o = KustomizeOptions {
            common_labels: [("app".to_owned(), "web".to_owned())].into(),
            ..KustomizeOptions::default()
        };
        let e = edited("commonLabels:\n  app: shop\n", &o).expect_err("conflict");
        assert_eq!(e.field, "commonLabels");
        assert!(
            e.problem
                .contains("label `app` is already in apps/prod/kustomization.yaml"),
            "{}",
            e.problem
        );
        let o = KustomizeOptions {
            common_labels: [("app".to_owned(), "not valid!".to_owned())].into(),
            ..KustomizeOptions::default()
        };
        assert!(edited("", &o).is_err());
        assert!(label_problem("app.kubernetes.io/name", "shop").is_none());
        assert!(label_problem("Bad_Prefix/x", "a").is_some());
        assert!(label_problem("x", "").is_none());
        assert!(annotation_key_problem("example.com/Note").is_none());
        assert!(annotation_key_problem("a b").is_some());
    }

    #[test]
    fn argo_cd_variables() {
        let e = |s: &str| expand_argo(s, &ENV);
        assert_eq!(
            e("v-$ARGOCD_APP_REVISION").as_deref(),
            Ok("v-0123456789abcdef")
        );
        assert_eq!(
            e("${ARGOCD_APP_REVISION_SHORT_8}").as_deref(),
            Ok("01234567")
        );
        assert_eq!(e("$ARGOCD_APP_SOURCE_PATH").as_deref(), Ok("apps/prod"));
        // Go's os.Expand: unknown names are nothing, `$$` is `$`, a `$` at the end stays
        assert_eq!(e("a$OTHER-b${x}c").as_deref(), Ok("a-bc"));
        assert_eq!(e("$$1 5$").as_deref(), Ok("$1 5$"));
        assert_eq!(e("a${}b${c").as_deref(), Ok("abc"));
        assert!(e("$ARGOCD_APP_NAME").is_err());
        let folder = BuildEnv {
            revision: None,
            source_path: "",
        };
        assert!(expand_argo("$ARGOCD_APP_REVISION", &folder).is_err());
    }

    #[test]
    fn flux_generates_a_kustomization_and_references_outside_are_counted() {
        assert_eq!(
            Value::Object(generate(vec![])),
            json!({"apiVersion": "kustomize.config.k8s.io/v1beta1", "kind": "Kustomization", "namespace": "_placeholder"})
        );
        let k = read("resources:\n- ../base\n- deploy.yaml\n- https://example.com/x\ncomponents: [./../../c]\n").expect("read");
        assert_eq!(outside_depth(&k), 2);
        assert_eq!(outside_depth(&generate(vec!["a.yaml".into()])), 0);
    }
}
