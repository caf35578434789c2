//! The conformance suite of the source ports (feature `conformance`), like
//! `driftguard-store`'s for stores: every [`GitSource`] and every [`LiveSource`] must mean
//! the same thing.
//!
//! - **Desired side**: for the same tree of manifests ([`ManifestTree`]), a source gives the
//!   same desired set as the folder source ([`DirSource`]): the same objects in the same order,
//!   the same identities, provenance files, documents and lines, the same errors and notes
//!   ([`same_desired_set`]), and that set is the one the tree expects
//!   ([`desired_set_is`]). [`check_git_source`] runs both; the
//!   [`git_source_conformance_tests!`](crate::git_source_conformance_tests) macro generates
//!   one test per tree for a source opened on a real Git repository.
//! - **Live side**: for a set of objects and scopes ([`LiveFixture`]: three namespaces,
//!   namespaced and cluster-scoped kinds, labels), a source's snapshots and the first state of
//!   its watches hold exactly the objects [`LiveScope::admits`] admits, each once
//!   ([`admits_by_the_rule`]), and the same ones as a dump of the objects
//!   ([`DumpSource`], [`same_admission`]). The
//!   [`live_source_conformance_tests!`](crate::live_source_conformance_tests) macro generates
//!   the tests for a source that holds the fixture's objects.
//!
//! A live source on a real cluster holds more than the fixture (system objects, other tests'
//! objects): every object it hands over must pass the rule, and among the fixture's own
//! objects (those carrying its run label, [`LiveFixture::owns`]) the set must be exactly
//! the expected one.
//!
//! The suite needs no test service by itself: callers give it the `git` and
//! `kubectl`/`kustomize` binaries ([`Tools`]) and sources holding the objects.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use driftguard_core::id::ResourceId;
use driftguard_core::model::{ObjectMeta, RawLive};
use driftguard_core::ports::{
    DesiredSet, GitSource, GroupVersionKind, LiveChange, LiveScope, LiveSnapshot, LiveSource,
    SourceError,
};
use futures_util::stream::StreamExt;
use serde_json::{json, Value};

use crate::files::{DirSource, DumpSource};
use crate::tree::select::KUSTOMIZATION_FILES;

/// The environment name identities are computed in.
const ENV: &str = "conformance";

/// A temporary folder, removed when dropped (for the generated tests: the caller need not
/// depend on `tempfile`).
pub fn temp_dir() -> tempfile::TempDir {
    tempfile::tempdir().expect("a temporary folder can be made")
}

/// The binaries the desired-side checks need.
#[derive(Clone, Debug)]
pub struct Tools {
    /// `git`, to commit trees into repositories.
    pub git: PathBuf,
    /// `kubectl` (run as `kubectl kustomize`) or `kustomize`, to render kustomizations.
    pub kustomize: PathBuf,
}

// ---------------------------------------------------------------------------------------------
// Desired side
// ---------------------------------------------------------------------------------------------

/// A tree of files, and the desired set every source must read from it.
#[derive(Clone, Debug)]
pub struct ManifestTree {
    /// A short name for messages.
    pub name: &'static str,
    /// `(path, content)`, paths relative to the root, `/`-separated.
    pub files: Vec<(String, String)>,
    /// The objects, in order, as `Kind[.group] [namespace/]name @ file:line #document`.
    pub objects: Vec<String>,
    /// The errors, in order, as `file:line` (and ` field` when one is named).
    pub errors: Vec<String>,
    /// The notes, in order.
    pub notes: Vec<String>,
}

fn file(path: &str, text: &str) -> (String, String) {
    (path.to_owned(), text.to_owned())
}

fn strings(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| (*s).to_owned()).collect()
}

impl ManifestTree {
    /// Plain files in nested folders: multi-document YAML with comments and a leading `---`,
    /// `.yml`, JSON, a `List`, a cluster-scoped kind, an object defined twice (in `apps/web.yaml`
    /// and in the folder `apps/web/`: which one comes first matters), a file with a broken
    /// document and one with an object without a name, and what is not read: an empty file, a
    /// hidden folder, a README, a Helm chart.
    pub fn plain() -> Self {
        let files = vec![
            file(
                "apps/web/deploy.yaml",
                "# the web front end\n---\napiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: web\n  namespace: shop\nspec:\n  replicas: 2\n  selector:\n    matchLabels: {app: web}\n  template:\n    metadata:\n      labels: {app: web}\n    spec:\n      containers:\n      - name: web\n        image: web:1\n---\napiVersion: v1\nkind: Service\nmetadata:\n  name: web\n  namespace: shop\nspec:\n  ports:\n  - port: 80\n",
            ),
            file(
                "apps/web/config.json",
                "{\n  \"apiVersion\": \"v1\",\n  \"kind\": \"ConfigMap\",\n  \"metadata\": {\"name\": \"shared\", \"namespace\": \"shop\"},\n  \"data\": {\"from\": \"json\"}\n}\n",
            ),
            file(
                "apps/web.yaml",
                "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: shared\n  namespace: shop\ndata:\n  from: yaml\n",
            ),
            file(
                "base/namespace.yml",
                "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: shop\n",
            ),
            file(
                "base/list.yaml",
                "apiVersion: v1\nkind: List\nitems:\n- apiVersion: v1\n  kind: ConfigMap\n  metadata: {name: one, namespace: shop}\n- apiVersion: v1\n  kind: ConfigMap\n  metadata: {name: two, namespace: shop}\n",
            ),
            file(
                "cluster/roles/viewer.yaml",
                "---\n# read only\napiVersion: rbac.authorization.k8s.io/v1\nkind: ClusterRole\nmetadata:\n  name: viewer\nrules: []\n",
            ),
            file(
                "broken/bad.yaml",
                "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: fine, namespace: shop}\n---\napiVersion: v1\nkind: [ConfigMap\n",
            ),
            file(
                "broken/noname.yaml",
                "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  namespace: shop\n",
            ),
            file("empty.yaml", "# nothing here\n"),
            file(".hidden/x.yaml", "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: hidden}\n"),
            file("README.md", "# not a manifest\n"),
            file("chart/Chart.yaml", "apiVersion: v2\nname: chart\nversion: 0.1.0\n"),
            file(
                "chart/templates/cm.yaml",
                "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: templated}\n",
            ),
        ];
        ManifestTree {
            name: "plain",
            files,
            objects: strings(&[
                "ConfigMap shop/shared @ apps/web.yaml:1 #0",
                "ConfigMap shop/shared @ apps/web/config.json:1 #0",
                "Deployment.apps shop/web @ apps/web/deploy.yaml:3 #1",
                "Service shop/web @ apps/web/deploy.yaml:20 #2",
                "ConfigMap shop/one @ base/list.yaml:1 #0",
                "ConfigMap shop/two @ base/list.yaml:1 #0",
                "Namespace shop @ base/namespace.yml:1 #0",
                "ConfigMap shop/fine @ broken/bad.yaml:1 #0",
                "ClusterRole.rbac.authorization.k8s.io viewer @ cluster/roles/viewer.yaml:2 #1",
            ]),
            errors: strings(&["broken/bad.yaml:7", "broken/noname.yaml:1 metadata.name"]),
            notes: strings(&["Helm chart at chart is not supported yet: its files were skipped"]),
        }
    }

    /// Kustomizations: a base and an overlay (`kustomization.yml`, a name prefix and a
    /// namespace) beside a plain file, and a broken one (a file named `Kustomization` naming a
    /// resource that does not exist). Needs [`Tools::kustomize`].
    pub fn kustomized() -> Self {
        let files = vec![
            file(
                "kbase/deploy.yaml",
                "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: api\nspec:\n  replicas: 1\n  selector:\n    matchLabels: {app: api}\n  template:\n    metadata:\n      labels: {app: api}\n    spec:\n      containers:\n      - name: api\n        image: api:1\n",
            ),
            file("kbase/kustomization.yaml", "resources:\n- deploy.yaml\n"),
            file(
                "overlays/prod/kustomization.yml",
                "namespace: prod\nnamePrefix: prod-\nbases:\n- ../../kbase\nresources:\n- cm.yaml\n",
            ),
            file(
                "overlays/prod/cm.yaml",
                "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: settings\ndata:\n  mode: fast\n",
            ),
            file(
                "overlays/broken/Kustomization",
                "resources:\n- missing.yaml\n",
            ),
            file(
                "plain.yaml",
                "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: plain\n  namespace: prod\n",
            ),
        ];
        ManifestTree {
            name: "kustomized",
            files,
            objects: strings(&[
                "ConfigMap prod/plain @ plain.yaml:1 #0",
                "Deployment.apps api @ kbase/kustomization.yaml:1 #0",
                "ConfigMap prod/prod-settings @ overlays/prod/kustomization.yml:1 #0",
                "Deployment.apps prod/prod-api @ overlays/prod/kustomization.yml:9 #1",
            ]),
            errors: strings(&["overlays/broken/Kustomization:1"]),
            notes: strings(&[
                "kustomization kbase rendered",
                "kustomization overlays/broken rendered",
                "kustomization overlays/prod rendered",
            ]),
        }
    }

    /// Writes the tree into `dir` (created when missing).
    pub fn write(&self, dir: &Path) -> std::io::Result<()> {
        for (path, text) in &self.files {
            let target = dir.join(path);
            if let Some(parent) = target.parent() {
                std::fs::create_dir_all(parent)?;
            }
            std::fs::write(target, text)?;
        }
        Ok(())
    }

    /// Writes the tree into `dir` and commits it there with `git` (a new repository, branch
    /// `main`, a fixed author and date). Returns the commit id.
    pub fn commit(&self, git: &Path, dir: &Path) -> Result<String, String> {
        self.write(dir)
            .map_err(|e| format!("cannot write the tree: {e}"))?;
        let run = |args: &[&str]| -> Result<String, String> {
            let out = Command::new(git)
                .args(args)
                .current_dir(dir)
                .env_remove("GIT_DIR")
                .env_remove("GIT_WORK_TREE")
                .env("GIT_CONFIG_GLOBAL", "/dev/null")
                .env("GIT_CONFIG_NOSYSTEM", "1")
                .env("GIT_AUTHOR_NAME", "Conformance")
                .env("GIT_AUTHOR_EMAIL", "conformance@example.com")
                .env("GIT_AUTHOR_DATE", "2024-01-01T10:00:00Z")
                .env("GIT_COMMITTER_NAME", "Conformance")
                .env("GIT_COMMITTER_EMAIL", "conformance@example.com")
                .env("GIT_COMMITTER_DATE", "2024-01-01T10:00:00Z")
                .output()
                .map_err(|e| format!("cannot run {}: {e}", git.display()))?;
            if !out.status.success() {
                return Err(format!(
                    "git {} failed: {}",
                    args.join(" "),
                    String::from_utf8_lossy(&out.stderr).trim()
                ));
            }
            Ok(String::from_utf8_lossy(&out.stdout).trim().to_owned())
        };
        run(&["init", "-q", "-b", "main"])?;
        run(&["add", "-A"])?;
        run(&["commit", "-q", "-m", self.name])?;
        run(&["rev-parse", "HEAD"])
    }
}

/// An object of a desired set as the checks compare it.
fn describe_object(m: &driftguard_core::model::RawManifest) -> String {
    let id = m.object.meta().id(ENV);
    format!(
        "{} {} @ {}:{} #{}",
        id.group_kind(),
        id.namespaced_name(),
        m.provenance.file,
        m.provenance.line,
        m.provenance.document
    )
}

fn is_kustomization_file(path: &str) -> bool {
    let name = path.rsplit('/').next().unwrap_or(path);
    KUSTOMIZATION_FILES.contains(&name)
}

fn describe_error(e: &driftguard_core::manifest::ManifestError) -> String {
    match &e.field {
        Some(field) => format!("{}:{} {field}", e.file, e.line),
        None => format!("{}:{}", e.file, e.line),
    }
}

/// Loads a source's current desired set; panics on an error.
async fn load(source: &dyn GitSource) -> DesiredSet {
    match source.load().await {
        Ok(set) => set,
        Err(e) => panic!("{} cannot load: {e}", source.describe()),
    }
}

/// Checks that every object's provenance names the set's revision.
fn check_revisions(who: &str, set: &DesiredSet) {
    let revision = set.revision.as_ref().map(|r| r.id.clone());
    assert!(revision.is_some(), "{who}: the set has no revision");
    for m in &set.objects {
        assert_eq!(
            m.provenance.revision,
            revision,
            "{who}: {} does not name the set's revision",
            describe_object(m)
        );
    }
}

/// Checks that `candidate` reads the same desired set as `reference` (both at their current
/// revision): the same objects in the same order, with the same identities, content and
/// provenance (file, line, document), the same errors (file, line, field; the message too,
/// except for a kustomization, whose renderer names the folder it ran in), the same notes
/// and no warnings. The revisions may differ (a commit, a folder's content hash), but every
/// object names its set's revision. Panics on a difference.
pub async fn same_desired_set(reference: &dyn GitSource, candidate: &dyn GitSource) {
    let (r, c) = (load(reference).await, load(candidate).await);
    let (rw, cw) = (reference.describe(), candidate.describe());
    check_revisions(&rw, &r);
    check_revisions(&cw, &c);
    let objects = |s: &DesiredSet| s.objects.iter().map(describe_object).collect::<Vec<_>>();
    assert_eq!(
        objects(&c),
        objects(&r),
        "{cw} (left) and {rw} (right) read different objects"
    );
    for (a, b) in c.objects.iter().zip(&r.objects) {
        assert!(
            a.object.value() == b.object.value(),
            "{cw} and {rw} read different content for {}",
            describe_object(a)
        );
    }
    let errors = |s: &DesiredSet| {
        s.errors
            .iter()
            .map(|e| {
                if is_kustomization_file(&e.file) {
                    describe_error(e)
                } else {
                    format!("{}: {}", describe_error(e), e.message)
                }
            })
            .collect::<Vec<_>>()
    };
    assert_eq!(
        errors(&c),
        errors(&r),
        "{cw} (left) and {rw} (right) report different errors"
    );
    assert_eq!(c.notes, r.notes, "{cw} (left) and {rw} (right): notes");
    assert!(c.warnings.is_empty(), "{cw}: warnings {:?}", c.warnings);
    assert!(r.warnings.is_empty(), "{rw}: warnings {:?}", r.warnings);
}

/// Checks that `source` reads what `tree` expects (objects, errors and notes, in order).
/// Panics on a difference.
pub async fn desired_set_is(source: &dyn GitSource, tree: &ManifestTree) {
    let set = load(source).await;
    let who = source.describe();
    check_revisions(&who, &set);
    let objects: Vec<String> = set.objects.iter().map(describe_object).collect();
    assert_eq!(
        objects, tree.objects,
        "{who}: objects of the {} tree",
        tree.name
    );
    let errors: Vec<String> = set.errors.iter().map(describe_error).collect();
    assert_eq!(
        errors, tree.errors,
        "{who}: errors of the {} tree",
        tree.name
    );
    assert!(
        set.errors.iter().all(|e| !e.message.is_empty()),
        "{who}: an error without a message: {:?}",
        set.errors
    );
    assert_eq!(
        set.notes, tree.notes,
        "{who}: notes of the {} tree",
        tree.name
    );
}

/// Checks a desired source opened on a copy of `tree` against the folder source on `folder`
/// (which holds the tree, e.g. the work tree of the repository `candidate` reads) and against
/// the tree's expectations. Panics on a difference.
pub async fn check_git_source(
    candidate: &dyn GitSource,
    tree: &ManifestTree,
    folder: &Path,
    tools: &Tools,
) {
    let dir = DirSource::new(folder).with_kustomize_bin(&tools.kustomize);
    desired_set_is(&dir, tree).await;
    same_desired_set(&dir, candidate).await;
    desired_set_is(candidate, tree).await;
}

/// Generates one `#[tokio::test]` per [`ManifestTree`] for a desired source.
///
/// `$tools` is a `fn() -> Tools`; `$open` an `async fn(&Path, &Tools) -> (Arc<dyn GitSource>,
/// G)` opening the source on a Git repository whose work tree (the folder given) holds the
/// tree, committed on `main`; `G` is anything to keep until the test ends (a cache folder).
#[macro_export]
macro_rules! git_source_conformance_tests {
    ($tools:path, $open:path) => {
        $crate::git_source_conformance_tests!(@one $tools, $open, conformance_git_plain_tree, plain);
        $crate::git_source_conformance_tests!(@one $tools, $open, conformance_git_kustomized_tree, kustomized);
    };
    (@one $tools:path, $open:path, $name:ident, $tree:ident) => {
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn $name() {
            let tools = $tools();
            let tree = $crate::conformance::ManifestTree::$tree();
            let repo = $crate::conformance::temp_dir();
            tree.commit(&tools.git, repo.path()).expect("the tree is committed");
            let (source, _keep) = $open(repo.path(), &tools).await;
            $crate::conformance::check_git_source(source.as_ref(), &tree, repo.path(), &tools)
                .await;
        }
    };
}

// ---------------------------------------------------------------------------------------------
// Live side
// ---------------------------------------------------------------------------------------------

/// The label every object of a [`LiveFixture`] carries, with the fixture's run as its value.
pub const RUN_LABEL: &str = "driftguard.test/run";

/// A token unique to this process and call, for names on a shared cluster.
pub fn run_token() -> String {
    static COUNTER: AtomicU32 = AtomicU32::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    format!(
        "{}-{}{}",
        std::process::id() % 100_000,
        nanos % 10_000,
        COUNTER.fetch_add(1, Ordering::Relaxed)
    )
}

/// Objects of three namespaces and of the cluster, and the scopes to read them with.
///
/// Namespaces `dg-src-a-<run>`, `dg-src-b-<run>` and `dg-src-c-<run>` (with their
/// `Namespace` objects), ConfigMaps in each labelled `tier` (`web`, `db`) and `canary`, a
/// Role, and two ClusterRoles `dg-src-<run>-viewer` and `-admin`. Every object carries
/// [`RUN_LABEL`]` = <run>`.
#[derive(Clone, Debug)]
pub struct LiveFixture {
    run: String,
    objects: Vec<Value>,
}

fn labels(run: &str, extra: Value) -> Value {
    let mut l = json!({ RUN_LABEL: run });
    if let (Some(l), Some(extra)) = (l.as_object_mut(), extra.as_object()) {
        l.extend(extra.clone());
    }
    l
}

impl LiveFixture {
    /// The fixture of one run (`run`: letters, digits and `-`, see [`run_token`]).
    pub fn new(run: &str) -> Self {
        let ns = |x: &str| format!("dg-src-{x}-{run}");
        let (a, b, c) = (ns("a"), ns("b"), ns("c"));
        let namespace = |name: &str, extra: Value| {
            json!({"apiVersion": "v1", "kind": "Namespace",
                "metadata": {"name": name, "labels": labels(run, extra)}})
        };
        let cm = |ns: &str, name: &str, extra: Value| {
            json!({"apiVersion": "v1", "kind": "ConfigMap",
                "metadata": {"name": name, "namespace": ns, "labels": labels(run, extra)},
                "data": {"name": name}})
        };
        let cluster_role = |name: String, extra: Value| {
            json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole",
                "metadata": {"name": name, "labels": labels(run, extra)},
                "rules": [{"apiGroups": [""], "resources": ["configmaps"], "verbs": ["get"]}]})
        };
        let objects = vec![
            namespace(&a, json!({"tier": "web"})),
            namespace(&b, json!({})),
            namespace(&c, json!({"tier": "db"})),
            cm(&a, "web", json!({"tier": "web"})),
            cm(&a, "db", json!({"tier": "db"})),
            cm(&a, "canary", json!({"tier": "web", "canary": "true"})),
            cm(&b, "web", json!({"tier": "web"})),
            cm(&b, "plain", json!({})),
            cm(&c, "web", json!({"tier": "web"})),
            json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role",
                "metadata": {"name": "reader", "namespace": a, "labels": labels(run, json!({}))},
                "rules": [{"apiGroups": [""], "resources": ["configmaps"], "verbs": ["get"]}]}),
            cluster_role(format!("dg-src-{run}-viewer"), json!({"tier": "web"})),
            cluster_role(format!("dg-src-{run}-admin"), json!({})),
        ];
        LiveFixture {
            run: run.to_owned(),
            objects,
        }
    }

    /// The run token.
    pub fn run(&self) -> &str {
        &self.run
    }

    /// The namespaces `a`, `b`, `c`.
    pub fn namespaces(&self) -> [String; 3] {
        ["a", "b", "c"].map(|x| format!("dg-src-{x}-{}", self.run))
    }

    /// The names of the ClusterRoles.
    pub fn cluster_roles(&self) -> [String; 2] {
        ["viewer", "admin"].map(|x| format!("dg-src-{}-{x}", self.run))
    }

    /// The objects (Namespaces first, so that they can be applied in order).
    pub fn objects(&self) -> &[Value] {
        &self.objects
    }

    /// The objects as live objects (e.g. for `MemoryLiveSource::set`).
    pub fn raw_live(&self) -> Vec<RawLive> {
        self.objects.iter().cloned().map(RawLive::new).collect()
    }

    /// The objects as one JSON `List`: what `kubectl apply -f -` takes, and a dump.
    pub fn list_json(&self) -> String {
        json!({"apiVersion": "v1", "kind": "List", "items": self.objects}).to_string()
    }

    /// Writes the objects as a dump (`<dir>/live-dump.json`) and returns a [`DumpSource`] on
    /// it.
    pub fn dump(&self, dir: &Path) -> std::io::Result<DumpSource> {
        let path = dir.join("live-dump.json");
        std::fs::write(&path, self.list_json())?;
        Ok(DumpSource::new([path]))
    }

    /// Whether `object` is one of the fixture's (it carries the fixture's run label).
    pub fn owns(&self, object: &Value) -> bool {
        object
            .pointer("/metadata/labels")
            .and_then(|l| l.get(RUN_LABEL))
            .and_then(Value::as_str)
            == Some(self.run.as_str())
    }

    /// The scopes every live source is checked with, by name: all namespaces; one; two; one
    /// named twice beside one that does not exist; cluster-scoped kinds only; one kind; a
    /// namespaced kind of another group; a kind named in two versions; label selectors,
    /// equality- and set-based.
    pub fn scopes(&self) -> Vec<(&'static str, LiveScope)> {
        let [a, b, _] = self.namespaces();
        let gvk = GroupVersionKind::from_api_version;
        let cm = gvk("v1", "ConfigMap");
        let ns = gvk("v1", "Namespace");
        let cr = gvk("rbac.authorization.k8s.io/v1", "ClusterRole");
        let scope =
            |kinds: Vec<GroupVersionKind>, namespaces: Vec<String>, sel: Option<&str>| LiveScope {
                kinds,
                namespaces,
                label_selector: sel.map(str::to_owned),
            };
        let common = vec![cm.clone(), ns.clone(), cr.clone()];
        vec![
            ("all namespaces", scope(common.clone(), vec![], None)),
            (
                "one namespace",
                scope(common.clone(), vec![a.clone()], None),
            ),
            (
                "two namespaces",
                scope(common.clone(), vec![a.clone(), b.clone()], None),
            ),
            (
                "a namespace named twice and one that does not exist",
                scope(
                    common.clone(),
                    vec![
                        b.clone(),
                        a.clone(),
                        b.clone(),
                        format!("dg-src-missing-{}", self.run),
                    ],
                    None,
                ),
            ),
            (
                "cluster-scoped kinds only, one namespace",
                scope(vec![ns.clone(), cr.clone()], vec![b.clone()], None),
            ),
            (
                "one kind, all namespaces",
                scope(vec![cm.clone()], vec![], None),
            ),
            (
                "a namespaced kind of another group",
                scope(
                    vec![gvk("rbac.authorization.k8s.io/v1", "Role")],
                    vec![a.clone(), b.clone()],
                    None,
                ),
            ),
            (
                "a kind named in two versions",
                scope(
                    vec![
                        cr.clone(),
                        gvk("rbac.authorization.k8s.io/v1beta1", "ClusterRole"),
                        cm.clone(),
                    ],
                    vec![a.clone()],
                    None,
                ),
            ),
            (
                "a label selector, all namespaces",
                scope(common.clone(), vec![], Some("tier=web")),
            ),
            (
                "a set-based label selector, two namespaces",
                scope(common, vec![a, b], Some("tier in (web, db), !canary")),
            ),
        ]
    }

    /// The identities of the fixture's objects `scope` admits, sorted.
    pub fn expected(&self, scope: &LiveScope) -> BTreeSet<ResourceId> {
        let rule = scope.admission().expect("the fixture's scopes are valid");
        self.objects
            .iter()
            .filter(|o| rule.admits(o))
            .map(|o| ObjectMeta::of(o).id(ENV))
            .collect()
    }
}

/// The fixture's objects among `objects`, as identities, after checking that every object
/// (the fixture's or not) is admitted by `scope` and that none comes twice.
fn admitted(
    who: &str,
    what: &str,
    fixture: &LiveFixture,
    scope: &LiveScope,
    objects: &[RawLive],
) -> BTreeSet<ResourceId> {
    let rule = scope.admission().expect("the fixture's scopes are valid");
    let mut all = BTreeSet::new();
    for o in objects {
        let id = o.object.meta().id(ENV);
        assert!(
            rule.admits(o.object.value()),
            "{who}, scope {what:?}: {id} is not in the scope"
        );
        assert!(all.insert(id.clone()), "{who}, scope {what:?}: {id} twice");
    }
    objects
        .iter()
        .filter(|o| fixture.owns(o.object.value()))
        .map(|o| o.object.meta().id(ENV))
        .collect()
}

async fn snapshot(source: &dyn LiveSource, what: &str, scope: &LiveScope) -> LiveSnapshot {
    match source.snapshot(scope).await {
        Ok(s) => {
            assert!(
                s.errors.is_empty(),
                "{}, scope {what:?}: kinds not read: {:?}",
                source.describe(),
                s.errors
            );
            s
        }
        Err(e) => panic!("{}, scope {what:?}: {e}", source.describe()),
    }
}

fn names(set: &BTreeSet<ResourceId>) -> Vec<String> {
    set.iter().map(ToString::to_string).collect()
}

/// Checks that for every scope of `fixture`, `source` (which holds the fixture's objects,
/// and maybe others) hands over exactly the objects [`LiveScope::admits`] admits, each once:
/// in a snapshot, and in the first state of a watch (when the source can watch). Also checks
/// that an invalid label selector is [`SourceError::Invalid`]. Panics on a difference.
pub async fn admits_by_the_rule(source: &dyn LiveSource, fixture: &LiveFixture) {
    let who = source.describe();
    for (what, scope) in fixture.scopes() {
        let expected = fixture.expected(&scope);
        assert!(!expected.is_empty(), "scope {what:?} admits something");
        let snap = snapshot(source, what, &scope).await;
        let got = admitted(&who, what, fixture, &scope, &snap.objects.to_vec());
        assert_eq!(
            names(&got),
            names(&expected),
            "{who}, scope {what:?}: snapshot (left) against the rule (right)"
        );
        match source.watch(&scope).await {
            Err(SourceError::Unsupported { .. }) => {}
            Err(e) => panic!("{who}, scope {what:?}: watch: {e}"),
            Ok(mut stream) => {
                let first = tokio::time::timeout(Duration::from_secs(60), stream.next()).await;
                match first {
                    Ok(Some(LiveChange::Restarted(s))) => {
                        let got = admitted(&who, what, fixture, &scope, &s.objects.to_vec());
                        assert_eq!(
                            names(&got),
                            names(&expected),
                            "{who}, scope {what:?}: first state of a watch (left) against \
                             the rule (right)"
                        );
                    }
                    Ok(Some(other)) => {
                        panic!("{who}, scope {what:?}: a watch starts with {other:?}")
                    }
                    Ok(None) => panic!("{who}, scope {what:?}: the watch ended at once"),
                    Err(_) => panic!("{who}, scope {what:?}: no state from the watch in 60 s"),
                }
            }
        }
    }
    let bad = LiveScope {
        label_selector: Some("tier in ()".into()),
        ..fixture.scopes()[0].1.clone()
    };
    assert!(
        matches!(source.snapshot(&bad).await, Err(SourceError::Invalid(_))),
        "{who}: an invalid label selector is SourceError::Invalid"
    );
}

/// Checks that `reference` and `candidate` (both holding the fixture's objects) admit the
/// same objects for every scope of `fixture`, and both exactly what the rule admits. Panics
/// on a difference.
pub async fn same_admission(
    reference: &dyn LiveSource,
    candidate: &dyn LiveSource,
    fixture: &LiveFixture,
) {
    let (rw, cw) = (reference.describe(), candidate.describe());
    for (what, scope) in fixture.scopes() {
        let r = snapshot(reference, what, &scope).await;
        let c = snapshot(candidate, what, &scope).await;
        let r = admitted(&rw, what, fixture, &scope, &r.objects.to_vec());
        let c = admitted(&cw, what, fixture, &scope, &c.objects.to_vec());
        assert_eq!(
            names(&c),
            names(&r),
            "scope {what:?}: {cw} (left) and {rw} (right) admit different objects"
        );
        assert_eq!(
            names(&r),
            names(&fixture.expected(&scope)),
            "scope {what:?}: {rw} (left) against the rule (right)"
        );
    }
}

/// Generates the live-side tests for a source.
///
/// `$fresh` is an `async fn(&LiveFixture) -> (Arc<dyn LiveSource>, G)`: a source holding
/// the fixture's objects (and maybe others), and anything to keep until the test ends (`G`,
/// e.g. a guard deleting the objects from a cluster when dropped). Two tests: the source
/// admits by the rule ([`admits_by_the_rule`](crate::conformance::admits_by_the_rule)), and
/// the same objects as a dump of the fixture
/// ([`same_admission`](crate::conformance::same_admission)).
#[macro_export]
macro_rules! live_source_conformance_tests {
    ($fresh:path) => {
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn conformance_live_admits_by_the_rule() {
            let fixture = $crate::conformance::LiveFixture::new(&$crate::conformance::run_token());
            let (source, _keep) = $fresh(&fixture).await;
            $crate::conformance::admits_by_the_rule(source.as_ref(), &fixture).await;
        }

        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn conformance_live_admits_like_a_dump() {
            let fixture = $crate::conformance::LiveFixture::new(&$crate::conformance::run_token());
            let dir = $crate::conformance::temp_dir();
            let dump = fixture.dump(dir.path()).expect("the dump is written");
            let (source, _keep) = $fresh(&fixture).await;
            $crate::conformance::same_admission(&dump, source.as_ref(), &fixture).await;
        }
    };
}
