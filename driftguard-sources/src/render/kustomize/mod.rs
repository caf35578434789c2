//! An environment's folder built with kustomize through the options of its `kustomize:`
//! section: Argo CD's `spec.source.kustomize` options and a Flux Kustomization's fields.
//!
//! The folder's kustomization is edited as Argo CD and Flux edit it before their build
//! ([`edit`]); a folder without one gets the one Flux generates, listing the manifest files the
//! environment selects (`include`, `exclude`, `recurse`) and the folders of the kustomizations
//! below it. The edited folder is built with the configured binary (`kubectl kustomize` or
//! `kustomize build`) through [`crate::process`], within [`KustomizeLimits`]; then Flux's
//! `postBuild.substitute` variables are replaced ([`varsub`]). A Git revision's tree is
//! edited where it was written out; a plain folder is copied first, with links to the folders
//! around it that its kustomization reaches (`../base`), so that nothing of the user's is
//! changed.
//!
//! Substituted values may come from Secrets: they are never logged, `Debug` shows their names
//! only, and a message that would show one (a document that is no longer YAML) is withheld.

mod edit;
mod image;
mod varsub;

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

use serde_json::Value;

use driftguard_core::model::Rendering;
use driftguard_core::render::{kustomization_uses_helm, RenderError};

pub use edit::{annotation_key_problem, label_problem};
pub use image::{ImageOverride, ImageSyntaxError};
pub use varsub::{is_var_name, SUBSTITUTE_ANNOTATION};

use super::command::folder_label;
use super::{RenderInput, Rendered};
use crate::tree::kustomize::{find_binary, helm_program, read_output, run};
use crate::tree::select::{plan, walk_folder, KUSTOMIZATION_FILES};
use crate::tree::KustomizeLimits;

/// The kustomize options of an environment, with the meaning of Argo CD's
/// `spec.source.kustomize` and of a Flux Kustomization's fields of the same names. `Debug`
/// shows the names of the substituted variables, never their values.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct KustomizeOptions {
    /// `namePrefix`: replaces the kustomization's.
    pub name_prefix: Option<String>,
    /// `nameSuffix`: replaces the kustomization's.
    pub name_suffix: Option<String>,
    /// `namespace` (Flux's `targetNamespace`): replaces the kustomization's.
    pub namespace: Option<String>,
    /// Image overrides in Argo CD's syntax ([`ImageOverride::parse`]).
    pub images: Vec<String>,
    /// Labels added to every object and selector (`commonLabels`).
    pub common_labels: BTreeMap<String, String>,
    /// Annotations added to every object (`commonAnnotations`).
    pub common_annotations: BTreeMap<String, String>,
    /// Patches appended to the kustomization's.
    pub patches: Vec<KustomizePatch>,
    /// Replica counts by object name.
    pub replicas: Vec<KustomizeReplica>,
    /// Components (folders relative to the environment's folder) added to the kustomization's.
    pub components: Vec<String>,
    /// Flux's `postBuild.substitute`: `${name}` replaced in the built objects.
    pub substitute: BTreeMap<String, String>,
}

impl fmt::Debug for KustomizeOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KustomizeOptions")
            .field("name_prefix", &self.name_prefix)
            .field("name_suffix", &self.name_suffix)
            .field("namespace", &self.namespace)
            .field("images", &self.images)
            .field("common_labels", &self.common_labels)
            .field("common_annotations", &self.common_annotations)
            .field("patches", &self.patches)
            .field("replicas", &self.replicas)
            .field("components", &self.components)
            .field(
                "substitute",
                &self
                    .substitute
                    .keys()
                    .map(|k| format!("{k}=<redacted>"))
                    .collect::<Vec<_>>(),
            )
            .finish()
    }
}

impl KustomizeOptions {
    /// Feeds every option, values included, to `h`: the key of a rendering changes with any of
    /// them. (The key stays in memory; it is never a revision's name.)
    fn hash_into(&self, h: &mut xxhash_rust::xxh3::Xxh3) {
        let mut field = |name: &str, value: &str| {
            for part in [name, value] {
                h.update(&(part.len() as u64).to_le_bytes());
                h.update(part.as_bytes());
            }
        };
        let or_none = |v: &Option<String>| v.clone().unwrap_or_else(|| "\0none".into());
        field("namePrefix", &or_none(&self.name_prefix));
        field("nameSuffix", &or_none(&self.name_suffix));
        field("namespace", &or_none(&self.namespace));
        for i in &self.images {
            field("image", i);
        }
        for (k, v) in &self.common_labels {
            field("label", k);
            field("=", v);
        }
        for (k, v) in &self.common_annotations {
            field("annotation", k);
            field("=", v);
        }
        for p in &self.patches {
            field("patch", &or_none(&p.patch));
            field("path", &or_none(&p.path));
            for (k, v) in &p.target {
                field("target", k);
                field("=", v);
            }
        }
        for r in &self.replicas {
            field("replicas", &r.name);
            field("=", &r.count.to_string());
        }
        for c in &self.components {
            field("component", c);
        }
        for (k, v) in &self.substitute {
            field("substitute", k);
            field("=", v);
        }
    }
}

/// One patch: inline or a file relative to the environment's folder, and its targets.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct KustomizePatch {
    /// The patch (a strategic merge patch or a JSON 6902 list of operations).
    pub patch: Option<String>,
    /// A file holding the patch, relative to the environment's folder.
    pub path: Option<String>,
    /// The objects patched: `group`, `version`, `kind`, `name`, `namespace`, `labelSelector`,
    /// `annotationSelector`.
    pub target: BTreeMap<String, String>,
}

/// A replica count for the objects of one name.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct KustomizeReplica {
    /// The object's name (before any prefix or suffix).
    pub name: String,
    /// The count.
    pub count: u64,
}

/// An environment's folder built with kustomize and its options.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KustomizeRenderer {
    /// The options.
    pub options: KustomizeOptions,
    /// The binary: `kubectl` (run as `kubectl kustomize`) or `kustomize` (`kustomize build`).
    /// Default: `kubectl`, else `kustomize`, on `PATH`.
    pub binary: Option<PathBuf>,
    /// The helm binary inflating the kustomization's Helm charts (`helmCharts:`). Default:
    /// `helm` on `PATH`.
    pub helm_bin: Option<PathBuf>,
    /// How long the build may run and how much it may print.
    pub limits: KustomizeLimits,
}

impl KustomizeRenderer {
    /// A renderer with `options`, the binaries found on `PATH` and the default limits.
    pub fn new(options: KustomizeOptions) -> Self {
        KustomizeRenderer {
            options,
            binary: None,
            helm_bin: None,
            limits: KustomizeLimits::default(),
        }
    }

    /// Sets the binary (`kubectl` or `kustomize`).
    pub fn binary(mut self, binary: impl Into<PathBuf>) -> Self {
        self.binary = Some(binary.into());
        self
    }

    /// Feeds what the rendering depends on besides the files to `h`.
    pub(crate) fn hash_into(&self, h: &mut xxhash_rust::xxh3::Xxh3) {
        self.options.hash_into(h);
        h.update(format!("{:?}{:?}{:?}", self.binary, self.helm_bin, self.limits).as_bytes());
    }

    /// Builds the folder `input.dir` with the options.
    pub(crate) fn render(&self, input: &RenderInput<'_>) -> Result<Rendered, RenderError> {
        let bin = find_binary(self.binary.as_deref()).ok_or_else(|| RenderError::NoBinary {
            program: "`kubectl` or `kustomize` (on PATH)".into(),
            setting: "kustomizeBin".into(),
        })?;
        if let Some(bad) = self.options.substitute.keys().find(|k| !is_var_name(k)) {
            return Err(RenderError::Input {
                what: format!("kustomize.substitute.{bad}"),
                problem: "is not a variable name (a letter or `_`, then letters, digits or `_`)"
                    .into(),
            });
        }
        let prepare = |folder: &Path| {
            let folder = folder.display().to_string();
            move |source| RenderError::Prepare { folder, source }
        };
        let in_root = |name: &str| {
            if input.rel.is_empty() {
                name.to_owned()
            } else {
                format!("{}/{name}", input.rel)
            }
        };
        let folder = folder_label(input.rel);
        let mut notes = Vec::new();
        let found = KUSTOMIZATION_FILES
            .iter()
            .find(|name| input.dir.join(name).is_file());
        let (name, mut kustomization, generated) = match found {
            Some(name) => {
                let text =
                    std::fs::read_to_string(input.dir.join(name)).map_err(prepare(input.dir))?;
                let k = edit::read(&text).map_err(|problem| RenderError::Input {
                    what: in_root(name),
                    problem,
                })?;
                (*name, k, None)
            }
            None => {
                let (resources, skipped) =
                    generated_resources(input.dir, input).map_err(prepare(input.dir))?;
                notes.extend(skipped);
                let count = resources.len();
                (
                    KUSTOMIZATION_FILES[0],
                    edit::generate(resources),
                    Some(count),
                )
            }
        };
        let file = in_root(name);
        let env = edit::BuildEnv {
            revision: input.revision,
            source_path: input.rel,
        };
        let applied = edit::apply(&mut kustomization, &file, &self.options, &env).map_err(|e| {
            RenderError::Input {
                what: format!("kustomize.{}", e.field),
                problem: e.problem,
            }
        })?;
        // a plain folder is the user's: the edited kustomization is written into a copy
        let dir = if input.editable {
            input.dir.to_path_buf()
        } else {
            let depth = edit::outside_depth(&kustomization);
            let tree = input.scratch.join("tree");
            shadow_copy(input.dir, depth, &tree).map_err(prepare(&tree))?
        };
        let text = serde_json::to_string_pretty(&Value::Object(kustomization))
            .expect("a map of JSON values is written");
        // JSON is YAML: kustomize reads it as the folder's kustomization
        std::fs::write(dir.join(name), &text).map_err(prepare(&dir))?;
        let uses_helm = kustomization_uses_helm(&text);
        let helm = if uses_helm {
            let helm =
                helm_program(self.helm_bin.as_deref()).ok_or_else(|| RenderError::NoBinary {
                    program: "helm (the kustomization inflates Helm charts)".into(),
                    setting: "helmBin".into(),
                })?;
            Some(helm)
        } else {
            None
        };
        let built = run(&bin, &dir, helm.as_deref(), self.limits)?;
        let digest = xxhash_rust::xxh3::xxh3_64(built.as_bytes());
        let substituted =
            varsub::substitute_output(&built, &self.options.substitute).map_err(|e| {
                RenderError::Input {
                    what: format!(
                        "kustomize.substitute in {} (line {} of the build of {file})",
                        e.object, e.line
                    ),
                    problem: e.error.to_string(),
                }
            })?;
        let mut read = read_output(&file, &substituted, uses_helm);
        withhold_values(&mut read.errors, &self.options.substitute);
        let rendering = Rendering {
            unstable: Vec::new(),
            renderer: "kustomize".into(),
            source: input.rel.to_owned(),
            values: Vec::new(),
            inputs_commit: None,
        };
        let mut how = applied.join(", ");
        if !self.options.substitute.is_empty() {
            if !how.is_empty() {
                how.push_str(", ");
            }
            how.push_str(&format!(
                "{} variable(s) substituted",
                self.options.substitute.len()
            ));
        }
        let how = if how.is_empty() {
            String::new()
        } else {
            format!(" ({how})")
        };
        notes.insert(
            0,
            match generated {
                None => format!("kustomization {folder} built with kustomize options{how}"),
                Some(n) => format!(
                    "{folder} has no kustomization: one listing its {n} resource(s) was generated, as Flux does, and built{how}"
                ),
            },
        );
        notes.extend(read.notes);
        Ok(Rendered {
            objects: read
                .objects
                .into_iter()
                .map(|(object, mut provenance)| {
                    provenance.rendered = Some(Box::new(rendering.clone()));
                    (object, provenance)
                })
                .collect(),
            errors: read.errors,
            notes,
            digest: Some(digest),
        })
    }
}

/// The resources of the kustomization generated for the folder `dir` (Flux's generator): the
/// manifest files the environment selects (its include and exclude globs, `recurse`) and the
/// folders of the kustomizations below it, relative to the folder, in path order; and the
/// notes of what was skipped (Helm charts).
fn generated_resources(
    dir: &Path,
    input: &RenderInput<'_>,
) -> std::io::Result<(Vec<String>, Vec<String>)> {
    let mut files = Vec::new();
    walk_folder(dir, "", &mut files).map_err(|(_, e)| e)?;
    let under_root = |rel: String| {
        if input.rel.is_empty() {
            rel
        } else {
            format!("{}/{rel}", input.rel)
        }
    };
    let entries = files
        .into_iter()
        .map(|(rel, _)| (under_root(rel), ()))
        .collect();
    let plan = plan(input.filter, entries);
    let relative = |path: &str| input.filter.relative(path).unwrap_or(path).to_owned();
    let mut resources: Vec<String> = plan
        .files
        .iter()
        .map(|(p, _)| relative(p))
        .chain(plan.kustomizations.iter().map(|d| relative(d)))
        .collect();
    resources.sort();
    Ok((resources, plan.notes))
}

/// A copy of the folder `origin` below `tree`, with `depth` levels of its surroundings made
/// visible: each ancestor up to `depth` levels is a folder of symbolic links to the original's
/// other entries, so that the copy's `../base` is the original `../base` (kustomize builds a
/// folder it reaches that way from its real path, where it is). Files of the folder itself are
/// copied: kustomize reads a file only below the kustomization's own folder. Returns the copy.
fn shadow_copy(origin: &Path, depth: usize, tree: &Path) -> std::io::Result<PathBuf> {
    let origin = std::fs::canonicalize(origin)?;
    // the ancestors below the highest one shown, outermost first, each with the name of the
    // entry leading to the folder
    let mut levels: Vec<(&Path, &std::ffi::OsStr)> = Vec::new();
    let mut child = origin.as_path();
    while levels.len() < depth {
        let (Some(parent), Some(name)) = (child.parent(), child.file_name()) else {
            break;
        };
        levels.push((parent, name));
        child = parent;
    }
    levels.reverse();
    let mut at = tree.to_path_buf();
    for (ancestor, on_path) in levels {
        std::fs::create_dir_all(&at)?;
        for entry in std::fs::read_dir(ancestor)? {
            let entry = entry?;
            if entry.file_name() != on_path {
                link(&entry.path(), &at.join(entry.file_name()))?;
            }
        }
        at.push(on_path);
    }
    copy_folder(&origin, &at)?;
    Ok(at)
}

#[cfg(unix)]
fn link(original: &Path, link: &Path) -> std::io::Result<()> {
    std::os::unix::fs::symlink(original, link)
}

#[cfg(not(unix))]
fn link(_original: &Path, _link: &Path) -> std::io::Result<()> {
    Err(std::io::Error::new(
        std::io::ErrorKind::Unsupported,
        "a kustomization of a plain folder reaching outside it needs symbolic links",
    ))
}

/// Copies the files below `from` into `to` (created), as [`walk_folder`] lists them.
fn copy_folder(from: &Path, to: &Path) -> std::io::Result<()> {
    let mut files = Vec::new();
    walk_folder(from, "", &mut files).map_err(|(_, e)| e)?;
    std::fs::create_dir_all(to)?;
    for (rel, path) in files {
        let target = to.join(&rel);
        if let Some(parent) = target.parent() {
            std::fs::create_dir_all(parent)?;
        }
        std::fs::copy(&path, &target)?;
    }
    Ok(())
}

/// Replaces the message of a problem that shows a substituted value (a document no longer
/// YAML after the substitution: the reader quotes it) by one that does not.
fn withhold_values(
    errors: &mut [driftguard_core::manifest::ManifestError],
    substitute: &BTreeMap<String, String>,
) {
    let values: Vec<String> = substitute
        .values()
        .map(|v| v.replace('\n', ""))
        .filter(|v| !v.is_empty())
        .collect();
    for e in errors {
        let shows = |text: &str| values.iter().any(|v| text.contains(v.as_str()));
        if shows(&e.message) || e.field.as_deref().is_some_and(shows) {
            e.message = "cannot be read after the substitution (the reader's message is withheld: it shows a substituted value)".into();
            e.field = None;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_shows_the_names_of_substituted_variables_only() {
        let o = KustomizeOptions {
            substitute: [("db_password".to_owned(), "hunter2".to_owned())].into(),
            ..KustomizeOptions::default()
        };
        let text = format!("{:?}", KustomizeRenderer::new(o));
        assert!(text.contains("db_password=<redacted>"), "{text}");
        assert!(!text.contains("hunter2"), "{text}");
    }

    #[test]
    fn every_option_changes_the_key() {
        let key = |o: &KustomizeOptions| {
            let mut h = xxhash_rust::xxh3::Xxh3::new();
            KustomizeRenderer::new(o.clone()).hash_into(&mut h);
            h.digest()
        };
        let base = KustomizeOptions::default();
        let variants = [
            KustomizeOptions {
                name_prefix: Some("a-".into()),
                ..base.clone()
            },
            KustomizeOptions {
                name_suffix: Some("a-".into()),
                ..base.clone()
            },
            KustomizeOptions {
                images: vec!["a:1".into()],
                ..base.clone()
            },
            KustomizeOptions {
                replicas: vec![KustomizeReplica {
                    name: "a".into(),
                    count: 1,
                }],
                ..base.clone()
            },
            KustomizeOptions {
                substitute: [("a".to_owned(), "1".to_owned())].into(),
                ..base.clone()
            },
            KustomizeOptions {
                substitute: [("a".to_owned(), "2".to_owned())].into(),
                ..base.clone()
            },
        ];
        let mut keys: Vec<u64> = variants.iter().map(key).collect();
        keys.push(key(&base));
        let n = keys.len();
        keys.sort_unstable();
        keys.dedup();
        assert_eq!(keys.len(), n, "every option gives its own key");
    }

    #[test]
    fn messages_showing_a_value_are_withheld() {
        let mut errors = vec![
            driftguard_core::manifest::ManifestError {
                file: "k.yaml".into(),
                line: 3,
                field: None,
                message: "invalid YAML: found `s3cr3t: x`".into(),
            },
            driftguard_core::manifest::ManifestError {
                file: "k.yaml".into(),
                line: 9,
                field: None,
                message: "invalid YAML: other".into(),
            },
        ];
        withhold_values(&mut errors, &[("p".to_owned(), "s3cr3t".to_owned())].into());
        assert!(!errors[0].message.contains("s3cr3t"));
        assert_eq!(errors[0].line, 3);
        assert_eq!(errors[1].message, "invalid YAML: other");
    }
}
