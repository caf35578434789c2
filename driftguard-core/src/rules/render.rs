//! Renderers on the desired side (Helm charts, commands printing manifests): the rules, pure.
//!
//! Adapters run the programs (`driftguard-sources`, module `render`); what is passed to them,
//! how their output is read, and which rendered objects are not desired state is decided here,
//! once:
//!
//! - **Helm's value precedence**, as Argo CD's Helm source has it: parameters (`--set`) over
//!   inline values over value files (in the order given, the last wins) over the chart's
//!   `values.yaml` ([`HelmOptions::template_args`]).
//! - **Hooks are not desired state**: an object annotated `helm.sh/hook` (pre/post-install
//!   Jobs, test Pods, ...) is skipped and named in the scan's notes ([`helm_hook`],
//!   [`hooks_note`]). The rule applies to everything a renderer prints (a chart, a
//!   kustomization inflating charts, a command).
//! - **Provenance**: helm's `# Source: <chart>/templates/x.yaml` lines give each object its
//!   template file inside the repository ([`read_helm_output`]).
//! - **Failures** a user can act on: a dependency that is not vendored under `charts/`
//!   ([`missing_dependencies`]), a missing binary, a timeout, too much output ([`RenderError`]).

use std::borrow::Cow;
use std::fmt;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::manifest::{parse_file, parse_json_value, ManifestError, Parsed};
use crate::model::{ObjectMeta, Provenance, RawObject, Rendering};

/// The annotation marking a Helm hook (`pre-install`, `post-upgrade`, `test`, ...).
pub const HELM_HOOK_ANNOTATION: &str = "helm.sh/hook";

/// One `--set` parameter, as Argo CD's `helm.parameters` holds it. `Debug` does not show the
/// value.
#[derive(Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct HelmParameter {
    /// The value's path (`image.tag`, `ingress.hosts[0]`).
    pub name: String,
    /// The value.
    pub value: String,
    /// Passed with `--set-string` (always a string) instead of `--set`.
    pub force_string: bool,
}

/// How a chart is rendered: the options of `helm template`, with the meaning and precedence of
/// Argo CD's Helm source. Values may hold secrets (a password set with `--set`): `Debug` shows
/// the inline values' size and the parameters' names only.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HelmOptions {
    /// The release name (`.Release.Name`).
    pub release_name: String,
    /// The release namespace (`.Release.Namespace`, `--namespace`).
    pub namespace: String,
    /// Value files, relative to the chart folder, in the order given (the last wins).
    pub value_files: Vec<String>,
    /// Inline values (YAML), over the value files.
    pub values: Option<String>,
    /// `--set` parameters, over everything else.
    pub parameters: Vec<HelmParameter>,
    /// `--kube-version` (`.Capabilities.KubeVersion`).
    pub kube_version: Option<String>,
    /// `--api-versions` (`.Capabilities.APIVersions`).
    pub api_versions: Vec<String>,
    /// Whether the chart's `crds/` are rendered (`--include-crds`).
    pub include_crds: bool,
    /// Whether `templates/tests` are left out (`--skip-tests`).
    pub skip_tests: bool,
    /// Whether a value file that does not exist is left out instead of failing the render.
    pub ignore_missing_value_files: bool,
}

impl HelmOptions {
    /// Options for `release_name` in `namespace`, with Argo CD's defaults: no values, CRDs
    /// included, tests rendered (then skipped as hooks).
    pub fn new(release_name: impl Into<String>, namespace: impl Into<String>) -> Self {
        HelmOptions {
            release_name: release_name.into(),
            namespace: namespace.into(),
            value_files: Vec::new(),
            values: None,
            parameters: Vec::new(),
            kube_version: None,
            api_versions: Vec::new(),
            include_crds: true,
            skip_tests: false,
            ignore_missing_value_files: false,
        }
    }

    /// The arguments of `helm template`, given where the adapter put the chart, the value
    /// files that exist (in [`HelmOptions::value_files`] order) and the file holding the
    /// inline values.
    ///
    /// The order is the precedence: helm merges `--values` files left to right (the last
    /// wins) over the chart's `values.yaml`, and `--set` over all of them. So value files
    /// come first, then the inline values, then the parameters, as Argo CD passes them.
    pub fn template_args(
        &self,
        chart: &str,
        value_files: &[String],
        inline_values: Option<&str>,
    ) -> Vec<String> {
        let mut args: Vec<String> = vec![
            "template".into(),
            self.release_name.clone(),
            chart.into(),
            "--namespace".into(),
            self.namespace.clone(),
        ];
        if let Some(v) = &self.kube_version {
            args.push("--kube-version".into());
            args.push(v.clone());
        }
        for a in &self.api_versions {
            args.push("--api-versions".into());
            args.push(a.clone());
        }
        if self.include_crds {
            args.push("--include-crds".into());
        }
        if self.skip_tests {
            args.push("--skip-tests".into());
        }
        for f in value_files {
            args.push("--values".into());
            args.push(f.clone());
        }
        if let Some(f) = inline_values {
            args.push("--values".into());
            args.push(f.into());
        }
        for p in &self.parameters {
            args.push(
                if p.force_string {
                    "--set-string"
                } else {
                    "--set"
                }
                .into(),
            );
            args.push(format!("{}={}", p.name, escape_set_value(&p.value)));
        }
        args
    }

    /// Whether there are inline values to write for [`HelmOptions::template_args`].
    pub fn has_inline_values(&self) -> bool {
        self.values.as_deref().is_some_and(|v| !v.trim().is_empty())
    }
}

impl fmt::Debug for HelmParameter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HelmParameter")
            .field("name", &self.name)
            .field("value", &"<redacted>")
            .field("force_string", &self.force_string)
            .finish()
    }
}

impl fmt::Debug for HelmOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let parameters: Vec<&str> = self.parameters.iter().map(|p| p.name.as_str()).collect();
        f.debug_struct("HelmOptions")
            .field("release_name", &self.release_name)
            .field("namespace", &self.namespace)
            .field("value_files", &self.value_files)
            .field(
                "values",
                &self
                    .values
                    .as_ref()
                    .map(|v| format!("<{} bytes, redacted>", v.len())),
            )
            .field("parameters", &parameters)
            .field("kube_version", &self.kube_version)
            .field("api_versions", &self.api_versions)
            .field("include_crds", &self.include_crds)
            .field("skip_tests", &self.skip_tests)
            .field(
                "ignore_missing_value_files",
                &self.ignore_missing_value_files,
            )
            .finish()
    }
}

/// A `--set` value as Argo CD passes it: commas are escaped (helm would split the value at
/// them), unless the value is a list in helm's `{a,b}` syntax; a comma already escaped stays
/// as it is.
pub fn escape_set_value(value: &str) -> Cow<'_, str> {
    if (value.starts_with('{') && value.ends_with('}')) || !value.contains(',') {
        return Cow::Borrowed(value);
    }
    let mut out = String::with_capacity(value.len() + 4);
    let mut previous = None;
    for c in value.chars() {
        if c == ',' && previous != Some('\\') {
            out.push('\\');
        }
        out.push(c);
        previous = Some(c);
    }
    Cow::Owned(out)
}

/// The hook an object is, if it is one: the value of its `helm.sh/hook` annotation
/// (`pre-install,pre-upgrade`, `test`, ...). Hooks are not desired state.
pub fn helm_hook(object: &Value) -> Option<&str> {
    object
        .get("metadata")?
        .get("annotations")?
        .get(HELM_HOOK_ANNOTATION)?
        .as_str()
        .map(str::trim)
        .filter(|h| !h.is_empty())
}

/// A rendered object left out because it is a hook.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SkippedHook {
    /// `Kind namespace/name` (or `Kind name`).
    pub object: String,
    /// The hooks it runs on (`pre-install,pre-upgrade`, `test`).
    pub hook: String,
    /// The file it was rendered from.
    pub file: String,
}

/// What a renderer printed, read: the objects (each with its provenance; the revision is set
/// by the adapter), the documents that could not be read, and the hooks left out.
#[derive(Debug, Default)]
pub struct RenderedObjects {
    /// Desired objects, in output order.
    pub objects: Vec<(RawObject, Provenance)>,
    /// Documents that are not Kubernetes objects.
    pub errors: Vec<ManifestError>,
    /// Hooks, skipped.
    pub hooks: Vec<SkippedHook>,
}

impl RenderedObjects {
    fn take(&mut self, parsed: Parsed, rendering: &Rendering) {
        let (parsed, hooks) = split_hooks(parsed);
        self.hooks.extend(hooks);
        for (object, mut provenance) in parsed.objects {
            provenance.rendered = Some(Box::new(rendering.clone()));
            self.objects.push((object, provenance));
        }
        self.errors.extend(parsed.errors);
    }
}

/// Leaves the hooks out of parsed objects ([`helm_hook`]): the objects kept, and the hooks.
pub fn split_hooks(parsed: Parsed) -> (Parsed, Vec<SkippedHook>) {
    let mut kept = Parsed {
        objects: Vec::with_capacity(parsed.objects.len()),
        errors: parsed.errors,
    };
    let mut hooks = Vec::new();
    for (object, provenance) in parsed.objects {
        match helm_hook(object.value()) {
            Some(hook) => hooks.push(SkippedHook {
                object: describe(&object.meta()),
                hook: hook.to_owned(),
                file: provenance.file,
            }),
            None => kept.objects.push((object, provenance)),
        }
    }
    (kept, hooks)
}

fn describe(meta: &ObjectMeta<'_>) -> String {
    match meta.namespace {
        Some(ns) => format!("{} {ns}/{}", meta.kind, meta.name),
        None => format!("{} {}", meta.kind, meta.name),
    }
}

/// The path inside the repository of a template helm names in a `# Source:` line: the
/// chart's name (the first component) stands for the chart folder `chart_dir`
/// (`shop/charts/cache/templates/cm.yaml` in `deploy/shop` is
/// `deploy/shop/charts/cache/templates/cm.yaml`).
pub fn template_path(chart_dir: &str, source: &str) -> String {
    let rest = source.split_once('/').map_or(source, |(_, rest)| rest);
    if chart_dir.is_empty() {
        rest.to_owned()
    } else {
        format!("{chart_dir}/{rest}")
    }
}

/// Reads the output of `helm template` for the chart in `chart_dir` (relative to the source
/// root): each document's file is the template its `# Source:` line names, its document index
/// counts the documents of that template; hooks are left out. `rendering` is recorded in each
/// object's provenance.
pub fn read_helm_output(output: &str, chart_dir: &str, rendering: &Rendering) -> RenderedObjects {
    let mut out = RenderedObjects::default();
    let mut per_file: Vec<(String, usize)> = Vec::new();
    for chunk in source_chunks(output) {
        let file = match chunk.source {
            Some(s) => template_path(chart_dir, s),
            None => rendering.source.clone(),
        };
        let mut parsed = parse_file(&file, chunk.text, None);
        let count = match per_file.iter_mut().find(|(f, _)| *f == file) {
            Some((_, n)) => n,
            None => {
                per_file.push((file.clone(), 0));
                &mut per_file.last_mut().expect("just pushed").1
            }
        };
        for (_, p) in &mut parsed.objects {
            p.document = *count;
            p.line = 0;
            *count += 1;
        }
        for e in &mut parsed.errors {
            e.line = 0;
        }
        out.take(parsed, rendering);
    }
    out
}

/// Marks in `first` the fields a second run of the same renderer on the same inputs gave
/// another value (`second`): a Helm chart's `randAlphaNum` password, `genCA` or
/// `genSelfSignedCert` certificate, `uuidv4`, `now`. Such a value is made anew on every render,
/// by DriftGuard as by `helm install`, Argo CD or Flux: Git does not hold it, so comparing it
/// could only ever report drift. The fields go into each object's
/// [`Rendering::unstable`] (JSON pointers), and the engine leaves them out on both sides; an
/// object only one run gave is left as it is. Returns how many fields were marked.
pub fn unstable_fields(first: &mut RenderedObjects, second: &RenderedObjects) -> usize {
    let key = |o: &RawObject| {
        let m = o.meta();
        (
            m.api_version.to_owned(),
            m.kind.to_owned(),
            m.namespace.map(str::to_owned),
            m.name.to_owned(),
        )
    };
    let others: std::collections::HashMap<_, &RawObject> =
        second.objects.iter().map(|(o, _)| (key(o), o)).collect();
    let mut marked = 0;
    for (object, provenance) in &mut first.objects {
        let Some(other) = others.get(&key(object)) else {
            continue;
        };
        let mut pointers = Vec::new();
        differing(&object.0, &other.0, &mut String::new(), &mut pointers);
        if pointers.is_empty() {
            continue;
        }
        marked += pointers.len();
        if let Some(r) = &mut provenance.rendered {
            r.unstable = pointers;
        }
    }
    marked
}

/// The JSON pointers under which `a` and `b` differ: the deepest differing map entries; a
/// list, a value or a changed type as a whole.
fn differing(a: &Value, b: &Value, at: &mut String, out: &mut Vec<String>) {
    match (a, b) {
        (Value::Object(x), Value::Object(y)) => {
            for (k, va) in x {
                let len = at.len();
                at.push('/');
                at.push_str(&k.replace('~', "~0").replace('/', "~1"));
                match y.get(k) {
                    Some(vb) => differing(va, vb, at, out),
                    None => out.push(at.clone()),
                }
                at.truncate(len);
            }
            for k in y.keys().filter(|k| !x.contains_key(*k)) {
                out.push(format!("{at}/{}", k.replace('~', "~0").replace('/', "~1")));
            }
        }
        _ if a != b => out.push(if at.is_empty() {
            "/".into()
        } else {
            at.clone()
        }),
        _ => {}
    }
}

/// Reads what a command printed: a YAML stream (`---` between documents), or JSON (one value
/// or several in a row; an array's items and a `List`'s items are objects). Objects and
/// problems are named `file`; hooks are left out.
pub fn read_command_output(output: &str, file: &str, rendering: &Rendering) -> RenderedObjects {
    let mut out = RenderedObjects::default();
    let trimmed = output.trim_start();
    if trimmed.starts_with('{') || trimmed.starts_with('[') {
        let mut parsed = Parsed::default();
        let stream = serde_json::Deserializer::from_str(output).into_iter::<Value>();
        for (document, value) in stream.enumerate() {
            match value {
                Ok(v) => {
                    let p = parse_json_value(file, document, v, None);
                    parsed.objects.extend(p.objects);
                    parsed.errors.extend(p.errors);
                }
                Err(e) => {
                    parsed.errors.push(ManifestError {
                        file: file.to_owned(),
                        line: e.line().max(1),
                        field: None,
                        message: format!("invalid JSON: {e}"),
                    });
                    break;
                }
            }
        }
        out.take(parsed, rendering);
    } else {
        out.take(parse_file(file, output, None), rendering);
    }
    out
}

/// One note naming the hooks a rendering of `what` (`Helm chart deploy/shop`) left out, if it
/// left any.
pub fn hooks_note(what: &str, hooks: &[SkippedHook]) -> Option<String> {
    if hooks.is_empty() {
        return None;
    }
    let list: Vec<String> = hooks
        .iter()
        .map(|h| format!("{} ({})", h.object, h.hook))
        .collect();
    Some(format!(
        "{what}: {} hook{} skipped (hooks are not desired state): {}",
        hooks.len(),
        if hooks.len() == 1 { "" } else { "s" },
        list.join(", ")
    ))
}

/// A document of helm's output with the template it came from.
struct Chunk<'a> {
    source: Option<&'a str>,
    text: &'a str,
}

/// Splits helm's output at each `---` line followed by a `# Source:` line: every chunk holds
/// one template's documents.
fn source_chunks(output: &str) -> Vec<Chunk<'_>> {
    let mut chunks: Vec<Chunk<'_>> = Vec::new();
    let mut start = 0;
    let mut source: Option<&str> = None;
    let mut offset = 0;
    let mut separator_at: Option<usize> = None;
    for line in output.split_inclusive('\n') {
        let trimmed = line.trim_end();
        if let Some(s) = trimmed.strip_prefix("# Source: ") {
            let cut = separator_at.unwrap_or(offset);
            if cut > start || source.is_some() {
                chunks.push(Chunk {
                    source,
                    text: &output[start..cut],
                });
            }
            source = Some(s.trim());
            // the chunk starts at its `# Source:` line (the `---` before it ends the last one)
            start = offset;
        }
        separator_at = (trimmed == "---").then_some(offset);
        offset += line.len();
    }
    if start < output.len() || source.is_some() {
        chunks.push(Chunk {
            source,
            text: &output[start..],
        });
    }
    chunks
}

/// The dependencies helm reports as missing from a chart's `charts/` folder, if that is why
/// `helm template` failed (its standard error `stderr`). DriftGuard does not download
/// dependencies: they must be vendored (`helm dependency build`, then commit `charts/`).
pub fn missing_dependencies(stderr: &str) -> Option<Vec<String>> {
    const MARK: &str = "missing in charts/ directory:";
    let at = stderr.find(MARK)?;
    let rest = stderr[at + MARK.len()..].lines().next().unwrap_or("");
    let names: Vec<String> = rest
        .split(',')
        .map(|n| n.trim().trim_end_matches('.').to_owned())
        .filter(|n| !n.is_empty())
        .collect();
    (!names.is_empty()).then_some(names)
}

/// Whether a kustomization (its file's text) inflates Helm charts (`helmCharts:`): it needs
/// helm to render (`--enable-helm`).
pub fn kustomization_uses_helm(text: &str) -> bool {
    serde_yaml::from_str::<Value>(text)
        .ok()
        .and_then(|v| {
            v.get("helmCharts")
                .and_then(Value::as_array)
                .map(|a| !a.is_empty())
        })
        .unwrap_or(false)
}

/// A program's standard error, shortened for a message: its non-empty lines joined with `; `,
/// at most `max` bytes (the start is kept: helm and most tools print the cause first).
pub fn stderr_summary(stderr: &str, max: usize) -> String {
    let joined = stderr
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with("Use --debug flag"))
        .collect::<Vec<_>>()
        .join("; ");
    if joined.len() <= max {
        return joined;
    }
    let mut end = max;
    while !joined.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &joined[..end])
}

/// A command line for messages: the arguments, each quoted when it holds a space or is empty.
pub fn display_command(program: &str, args: &[String]) -> String {
    let mut out = String::from(program);
    for a in args {
        out.push(' ');
        if a.is_empty() || a.contains(char::is_whitespace) || a.contains('\'') {
            out.push('\'');
            out.push_str(&a.replace('\'', "'\\''"));
            out.push('\'');
        } else {
            out.push_str(a);
        }
    }
    out
}

/// Why the desired side could not be rendered.
#[derive(Debug, thiserror::Error)]
pub enum RenderError {
    /// The program was not found.
    #[error("{program} was not found (set {setting})")]
    NoBinary {
        /// The program (`helm`, the command's first word).
        program: String,
        /// The configuration key that names it (`helm.binary`, `helmBin`, `render.command`).
        setting: String,
    },
    /// The program could not be started.
    #[error("cannot run {command}")]
    Spawn {
        /// The command line.
        command: String,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// The program exited with an error.
    #[error("{command} failed ({status}): {stderr}")]
    Failed {
        /// The command line.
        command: String,
        /// `exit status: 1`, `signal: 9 (SIGKILL)`.
        status: String,
        /// Its standard error, shortened ([`stderr_summary`]).
        stderr: String,
    },
    /// The program did not finish in time (it was killed).
    #[error("{command} did not finish within {}s (it was stopped)", .timeout.as_secs_f64())]
    TimedOut {
        /// The command line.
        command: String,
        /// The limit.
        timeout: std::time::Duration,
    },
    /// The program printed more than allowed (it was stopped).
    #[error("{command} printed more than {limit} bytes (it was stopped; raise the limit if this is expected)")]
    OutputTooLarge {
        /// The command line.
        command: String,
        /// The limit, in bytes.
        limit: u64,
    },
    /// The program printed something that is not UTF-8.
    #[error("{command} printed output that is not UTF-8")]
    NotUtf8 {
        /// The command line.
        command: String,
    },
    /// A chart needs dependencies that are not vendored under its `charts/` folder.
    #[error("chart {chart} needs {} not vendored under charts/ ({}): DriftGuard does not download dependencies; run `helm dependency build` and commit charts/", plural_dependencies(.dependencies), .dependencies.join(", "))]
    MissingDependency {
        /// The chart folder.
        chart: String,
        /// The dependencies missing.
        dependencies: Vec<String>,
    },
    /// An input of the rendering is missing or cannot be used (the chart folder, a value
    /// file, inline values that are not YAML).
    #[error("{what}: {problem}")]
    Input {
        /// The input.
        what: String,
        /// What is wrong with it.
        problem: String,
    },
    /// The inputs could not be written where the program reads them.
    #[error("cannot prepare the inputs in {folder}")]
    Prepare {
        /// The folder.
        folder: String,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
}

fn plural_dependencies(d: &[String]) -> &'static str {
    if d.len() == 1 {
        "a dependency"
    } else {
        "dependencies"
    }
}

impl fmt::Display for SkippedHook {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({}) from {}", self.object, self.hook, self.file)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rendering() -> Rendering {
        Rendering {
            unstable: Vec::new(),
            renderer: "helm".into(),
            source: "deploy/shop".into(),
            values: vec!["deploy/values-prod.yaml".into()],
            inputs_commit: None,
        }
    }

    #[test]
    fn argument_order_is_the_precedence_of_argo_cd() {
        let mut o = HelmOptions::new("shop", "shop-prod");
        o.kube_version = Some("1.20.2".into());
        o.api_versions = vec!["monitoring.coreos.com/v1".into()];
        o.skip_tests = true;
        o.parameters = vec![
            HelmParameter {
                name: "image.tag".into(),
                value: "1.2".into(),
                force_string: true,
            },
            HelmParameter {
                name: "hosts".into(),
                value: "a,b".into(),
                force_string: false,
            },
        ];
        let args = o.template_args(
            "chart",
            &["a.yaml".into(), "b.yaml".into()],
            Some("inline.yaml"),
        );
        assert_eq!(
            args.join(" "),
            "template shop chart --namespace shop-prod --kube-version 1.20.2 \
             --api-versions monitoring.coreos.com/v1 --include-crds --skip-tests \
             --values a.yaml --values b.yaml --values inline.yaml \
             --set-string image.tag=1.2 --set hosts=a\\,b"
        );
        let plain = HelmOptions {
            include_crds: false,
            ..HelmOptions::new("r", "n")
        };
        assert_eq!(
            plain.template_args("c", &[], None).join(" "),
            "template r c --namespace n"
        );
    }

    #[test]
    fn debug_does_not_show_values() {
        let mut o = HelmOptions::new("r", "n");
        o.values = Some("password: hunter2\n".into());
        o.parameters = vec![HelmParameter {
            name: "db.password".into(),
            value: "s3cr3t".into(),
            force_string: true,
        }];
        let shown = format!("{o:?} {:?}", o.parameters[0]);
        assert!(
            !shown.contains("hunter2") && !shown.contains("s3cr3t"),
            "{shown}"
        );
        assert!(shown.contains("db.password"), "{shown}");
    }

    #[test]
    fn set_values_escape_commas_like_argo_cd() {
        assert_eq!(escape_set_value("plain"), "plain");
        assert_eq!(escape_set_value("a,b,c"), "a\\,b\\,c");
        assert_eq!(escape_set_value("a\\,b,c"), "a\\,b\\,c");
        assert_eq!(escape_set_value("{a,b}"), "{a,b}");
    }

    const OUTPUT: &str = "---\n# Source: shop/crds/widget.yaml\napiVersion: apiextensions.k8s.io/v1\nkind: CustomResourceDefinition\nmetadata:\n  name: widgets.shop.example.com\n\n---\n# Source: shop/charts/cache/templates/cm.yaml\napiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: rel-cache\n---\n# Source: shop/templates/deploy.yaml\napiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: rel-config\n---\n# Source: shop/templates/deploy.yaml\napiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: rel-web\n---\n# Source: shop/templates/tests/test.yaml\napiVersion: v1\nkind: Pod\nmetadata:\n  name: rel-test\n  annotations:\n    \"helm.sh/hook\": test\n---\n# Source: shop/templates/hook.yaml\napiVersion: batch/v1\nkind: Job\nmetadata:\n  name: rel-migrate\n  namespace: shop\n  annotations:\n    \"helm.sh/hook\": pre-install,pre-upgrade\n";

    #[test]
    fn helm_output_gives_template_files_and_skips_hooks() {
        let r = read_helm_output(OUTPUT, "deploy/shop", &rendering());
        assert!(r.errors.is_empty(), "{:?}", r.errors);
        let seen: Vec<(String, &str, usize)> = r
            .objects
            .iter()
            .map(|(o, p)| (p.file.clone(), o.meta().name, p.document))
            .collect();
        assert_eq!(
            seen,
            vec![
                (
                    "deploy/shop/crds/widget.yaml".to_owned(),
                    "widgets.shop.example.com",
                    0
                ),
                (
                    "deploy/shop/charts/cache/templates/cm.yaml".to_owned(),
                    "rel-cache",
                    0
                ),
                (
                    "deploy/shop/templates/deploy.yaml".to_owned(),
                    "rel-config",
                    0
                ),
                ("deploy/shop/templates/deploy.yaml".to_owned(), "rel-web", 1),
            ]
        );
        assert!(r
            .objects
            .iter()
            .all(|(_, p)| p.rendered.as_deref() == Some(&rendering())));
        let hooks: Vec<String> = r.hooks.iter().map(ToString::to_string).collect();
        assert_eq!(
            hooks,
            vec![
                "Pod rel-test (test) from deploy/shop/templates/tests/test.yaml",
                "Job shop/rel-migrate (pre-install,pre-upgrade) from deploy/shop/templates/hook.yaml",
            ]
        );
        assert_eq!(
            hooks_note("Helm chart deploy/shop", &r.hooks).as_deref(),
            Some("Helm chart deploy/shop: 2 hooks skipped (hooks are not desired state): Pod rel-test (test), Job shop/rel-migrate (pre-install,pre-upgrade)")
        );
        assert_eq!(hooks_note("x", &[]), None);
    }

    #[test]
    fn template_paths_replace_the_chart_name_by_its_folder() {
        assert_eq!(
            template_path("", "shop/templates/a.yaml"),
            "templates/a.yaml"
        );
        assert_eq!(
            template_path("c/shop", "anything/charts/sub/templates/b.yaml"),
            "c/shop/charts/sub/templates/b.yaml"
        );
    }

    #[test]
    fn bad_documents_name_their_template() {
        let out =
            "---\n# Source: shop/templates/a.yaml\napiVersion: v1\nkind: ConfigMap\nmetadata: {}\n";
        let r = read_helm_output(out, "", &rendering());
        assert_eq!(r.objects.len(), 0);
        assert_eq!(r.errors.len(), 1);
        assert_eq!(r.errors[0].file, "templates/a.yaml");
        assert_eq!(r.errors[0].field.as_deref(), Some("metadata.name"));
    }

    #[test]
    fn command_output_may_be_yaml_json_or_json_arrays() {
        let rendering = Rendering {
            unstable: Vec::new(),
            renderer: "command".into(),
            ..rendering()
        };
        let cm = |n: &str| {
            format!("{{\"apiVersion\":\"v1\",\"kind\":\"ConfigMap\",\"metadata\":{{\"name\":\"{n}\"}}}}")
        };
        let yaml = "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: a}\n---\napiVersion: v1\nkind: ConfigMap\nmetadata: {name: b}\n";
        let json_stream = format!("{}\n{}\n", cm("a"), cm("b"));
        let array = format!("[{}, {}]", cm("a"), cm("b"));
        let list = format!(
            "{{\"apiVersion\":\"v1\",\"kind\":\"List\",\"items\":[{}, {}]}}",
            cm("a"),
            cm("b")
        );
        for text in [yaml.to_owned(), json_stream, array, list] {
            let r = read_command_output(&text, "gen", &rendering);
            assert!(r.errors.is_empty(), "{text}: {:?}", r.errors);
            let names: Vec<&str> = r.objects.iter().map(|(o, _)| o.meta().name).collect();
            assert_eq!(names, vec!["a", "b"], "{text}");
            assert_eq!(r.objects[0].1.file, "gen");
        }
        let r = read_command_output("{\"kind\": ", "gen", &rendering);
        assert_eq!(r.errors.len(), 1);
        assert!(
            r.errors[0].message.starts_with("invalid JSON"),
            "{:?}",
            r.errors
        );
    }

    #[test]
    fn live_hooks_are_never_orphans() {
        use crate::engine::{Engine, EnvironmentSpec};
        use crate::id::ResourceId;
        use crate::model::{RawLive, RawManifest};
        use crate::normalize::{Normalizer, SecretKey};
        use crate::ports::{DesiredSet, LiveSnapshot};
        use crate::state::Presence;
        use serde_json::json;

        let mut spec = EnvironmentSpec::new("prod");
        spec.managed_namespaces = Some(vec!["shop".into()]);
        let engine = Engine::new(spec, Normalizer::new(SecretKey::new(b"k".to_vec())));
        let cm = |name: &str, annotations: Value| {
            json!({"apiVersion": "v1", "kind": "ConfigMap",
                "metadata": {"name": name, "namespace": "shop", "uid": name,
                    "annotations": annotations}})
        };
        let desired = DesiredSet {
            objects: vec![RawManifest {
                object: RawObject::new(cm("config", json!({}))),
                provenance: Provenance::default(),
            }],
            ..DesiredSet::default()
        };
        let live = LiveSnapshot {
            served: Vec::new(),
            objects: vec![
                RawLive::new(cm("config", json!({}))),
                RawLive::new(cm("by-hand", json!({}))),
                RawLive::new(cm("pre-install", json!({"helm.sh/hook": "pre-install"}))),
            ]
            .into(),
            ..LiveSnapshot::default()
        };
        let state = engine.index(&desired, &live);
        let presence = |name: &str| {
            let id = ResourceId::new("prod", "", "ConfigMap", Some("shop"), name);
            engine.observe(&state, &id).presence
        };
        assert!(matches!(presence("by-hand"), Presence::LiveOnly { .. }));
        assert!(
            !matches!(presence("pre-install"), Presence::LiveOnly { .. }),
            "a hook is not an orphan"
        );
    }

    #[test]
    fn missing_dependencies_are_recognized() {
        let stderr = "Error: An error occurred while checking for chart dependencies. You may need to run `helm dependency build` to fetch missing dependencies: found in Chart.yaml, but missing in charts/ directory: cache, db\n";
        assert_eq!(
            missing_dependencies(stderr),
            Some(vec!["cache".to_owned(), "db".to_owned()])
        );
        assert_eq!(missing_dependencies("Error: parse error"), None);
        let e = RenderError::MissingDependency {
            chart: "deploy/shop".into(),
            dependencies: vec!["cache".into()],
        };
        assert_eq!(e.to_string(), "chart deploy/shop needs a dependency not vendored under charts/ (cache): DriftGuard does not download dependencies; run `helm dependency build` and commit charts/");
    }

    #[test]
    fn kustomizations_with_helm_charts_are_recognized() {
        assert!(kustomization_uses_helm(
            "helmCharts:\n- name: shop\n  releaseName: x\n"
        ));
        assert!(!kustomization_uses_helm("resources: [a.yaml]\n"));
        assert!(!kustomization_uses_helm("helmCharts: []\n"));
        assert!(!kustomization_uses_helm(": not yaml ["));
    }

    #[test]
    fn messages_are_short_and_quoted() {
        assert_eq!(
            stderr_summary(
                "Error: one\n\nUse --debug flag to render out invalid YAML\n",
                100
            ),
            "Error: one"
        );
        assert_eq!(stderr_summary("ééé", 3), "é…");
        assert_eq!(
            display_command("sh", &["-c".into(), "echo 'a b'".into(), String::new()]),
            "sh -c 'echo '\\''a b'\\''' ''"
        );
    }

    #[test]
    fn fields_a_second_render_gives_anew_are_unstable() {
        let out = |password: &str, cert: &str| {
            format!(
                "---\n# Source: chart/templates/secret.yaml\napiVersion: v1\nkind: Secret\nmetadata:\n  name: db\ndata:\n  user: YWRtaW4=\n  password: {password}\n---\n# Source: chart/templates/tls.yaml\napiVersion: v1\nkind: Secret\nmetadata:\n  name: tls\n  annotations:\n    a/b: x\ndata:\n  tls.crt: {cert}\n---\n# Source: chart/templates/cm.yaml\napiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: settings\ndata:\n  mode: normal\n"
            )
        };
        let r = rendering();
        let mut first = read_helm_output(&out("cGFzczE=", "Y2VydDE="), "chart", &r);
        let second = read_helm_output(&out("cGFzczI=", "Y2VydDI="), "chart", &r);
        assert_eq!(unstable_fields(&mut first, &second), 2);
        let unstable: Vec<Vec<String>> = first
            .objects
            .iter()
            .map(|(_, p)| {
                p.rendered
                    .as_ref()
                    .map(|r| r.unstable.clone())
                    .unwrap_or_default()
            })
            .collect();
        assert_eq!(
            unstable,
            vec![
                vec!["/data/password".to_owned()],
                vec!["/data/tls.crt".to_owned()],
                vec![]
            ]
        );
        // the same output twice: nothing is unstable
        let mut again = read_helm_output(&out("cGFzczE=", "Y2VydDE="), "chart", &r);
        assert_eq!(unstable_fields(&mut again, &first), 0);
    }
}
