//! Which files of a tree are read, which folders are rendered with kustomize, and which are
//! skipped (Helm charts). Shared by the Git source and the plain-folder source.

use globset::{Glob, GlobSet, GlobSetBuilder};

use driftguard_core::manifest::{is_manifest_path, parse_file, ManifestError};
use driftguard_core::model::{Provenance, RawManifest, RawObject};
use driftguard_core::ports::{DesiredSet, SourceError};

/// File names that make a folder a kustomization.
pub(crate) const KUSTOMIZATION_FILES: [&str; 3] =
    ["kustomization.yaml", "kustomization.yml", "Kustomization"];

/// The environment's folder, its include/exclude globs, and whether its subfolders are read.
#[derive(Clone, Debug)]
pub(crate) struct Filter {
    /// Folder inside the root, without leading or trailing `/` (empty: the root).
    pub prefix: String,
    include: Option<GlobSet>,
    exclude: Option<GlobSet>,
    /// Whether files in subfolders of the folder are read (Argo CD's `directory.recurse`).
    recurse: bool,
}

fn glob_set(field: &str, globs: &[String]) -> Result<Option<GlobSet>, SourceError> {
    if globs.is_empty() {
        return Ok(None);
    }
    let mut b = GlobSetBuilder::new();
    for g in globs {
        let glob = Glob::new(g).map_err(|e| {
            SourceError::Invalid(ManifestError {
                file: "(configuration)".into(),
                line: 1,
                field: Some(field.into()),
                message: format!("bad glob `{g}`: {e}"),
            })
        })?;
        b.add(glob);
    }
    b.build().map(Some).map_err(|e| {
        SourceError::Invalid(ManifestError {
            file: "(configuration)".into(),
            line: 1,
            field: Some(field.into()),
            message: format!("bad globs: {e}"),
        })
    })
}

/// Normalizes a folder path: no leading `./` or `/`, no trailing `/`.
pub(crate) fn normalize_prefix(path: &str) -> String {
    let mut p = path.trim().trim_matches('/');
    while let Some(rest) = p.strip_prefix("./") {
        p = rest.trim_start_matches('/');
    }
    if p == "." {
        p = "";
    }
    p.to_owned()
}

impl Filter {
    /// A filter for `path` with include and exclude globs (matched against paths relative to
    /// `path`; `*` also matches `/`).
    pub fn new(path: &str, include: &[String], exclude: &[String]) -> Result<Self, SourceError> {
        Ok(Filter {
            prefix: normalize_prefix(path),
            include: glob_set("include", include)?,
            exclude: glob_set("exclude", exclude)?,
            recurse: true,
        })
    }

    /// Whether files in subfolders are read (default true); without, only the files directly
    /// in the folder are, as an Argo CD directory Application without `recurse` reads them.
    pub fn with_recurse(mut self, recurse: bool) -> Self {
        self.recurse = recurse;
        self
    }

    /// The part of `path` below the environment's folder, if it is below it.
    pub fn relative<'a>(&self, path: &'a str) -> Option<&'a str> {
        if self.prefix.is_empty() {
            return Some(path);
        }
        path.strip_prefix(self.prefix.as_str())?.strip_prefix('/')
    }

    /// Whether a file (path relative to the root) is read: below the folder (directly in it
    /// without `recurse`) and selected by the globs.
    pub fn selects(&self, path: &str) -> bool {
        let Some(rel) = self.relative(path) else {
            return false;
        };
        if !self.recurse && rel.contains('/') {
            return false;
        }
        self.include.as_ref().is_none_or(|g| g.is_match(rel))
            && self.exclude.as_ref().is_none_or(|g| !g.is_match(rel))
    }
}

/// What to do with the files of one tree.
#[derive(Debug)]
pub(crate) struct Plan<K> {
    /// Manifest files to read one by one: path (relative to the root) and a key.
    pub files: Vec<(String, K)>,
    /// Folders (relative to the root) to render with kustomize, outermost only.
    pub kustomizations: Vec<String>,
    /// Things to tell (Helm charts skipped).
    pub notes: Vec<String>,
}

fn parent(path: &str) -> &str {
    path.rsplit_once('/').map_or("", |(d, _)| d)
}

fn file_name(path: &str) -> &str {
    path.rsplit_once('/').map_or(path, |(_, f)| f)
}

/// Whether `path` is `dir` or below it.
fn under(path: &str, dir: &str) -> bool {
    dir.is_empty()
        || path == dir
        || (path.len() > dir.len() && path.starts_with(dir) && path.as_bytes()[dir.len()] == b'/')
}

/// Decides, from every file below the environment's folder, what is read.
///
/// Files or folders whose name starts with `.` are skipped. A folder holding a
/// `kustomization.yaml` is rendered as a whole; a folder holding a `Chart.yaml` is a Helm
/// chart found among plain manifests: it is not rendered there (an environment renders a chart
/// with its `helm:` section) and is skipped with a note, unless it lies in a kustomization's
/// folder (which may inflate it). Without `recurse`, subfolders are not looked at at all.
pub(crate) fn plan<K>(filter: &Filter, entries: Vec<(String, K)>) -> Plan<K> {
    let mut kust: Vec<String> = Vec::new();
    let mut helm: Vec<String> = Vec::new();
    for (path, _) in &entries {
        let Some(rel) = filter.relative(path) else {
            continue;
        };
        if rel.split('/').any(|c| c.starts_with('.')) || (!filter.recurse && rel.contains('/')) {
            continue;
        }
        let name = file_name(path);
        if KUSTOMIZATION_FILES.contains(&name) && filter.selects(path) {
            kust.push(parent(path).to_owned());
        } else if name == "Chart.yaml" {
            helm.push(parent(path).to_owned());
        }
    }
    helm.sort();
    helm.dedup();
    let helm: Vec<String> = helm
        .iter()
        .filter(|h| !helm.iter().any(|o| o != *h && under(h, o)))
        .cloned()
        .collect();
    kust.sort();
    kust.dedup();
    let kust: Vec<String> = kust
        .iter()
        .filter(|k| !kust.iter().any(|o| o != *k && under(k, o)))
        .filter(|k| !helm.iter().any(|h| under(k, h)))
        .cloned()
        .collect();
    // a chart inside a kustomization's folder is the kustomization's (`helmCharts:`)
    let mut notes: Vec<String> = helm
        .iter()
        .filter(|h| !kust.iter().any(|k| under(h, k)))
        .map(|h| {
            format!(
                "Helm chart at {} is not supported yet: its files were skipped",
                if h.is_empty() { "." } else { h }
            )
        })
        .collect();
    notes.sort();
    let files = entries
        .into_iter()
        .filter(|(path, _)| {
            let Some(rel) = filter.relative(path) else {
                return false;
            };
            !rel.split('/').any(|c| c.starts_with('.'))
                && is_manifest_path(path)
                && filter.selects(path)
                && !kust.iter().any(|k| under(path, k))
                && !helm.iter().any(|h| under(path, h))
        })
        .collect();
    Plan {
        files,
        kustomizations: kust,
        notes,
    }
}

/// Every file below the folder `root/rel` on disk, with its path relative to `root` (`rel/...`)
/// and on disk, in name order; `.git` folders and symbolic links are left out (a repository's
/// tree written out holds neither). `Err` names the folder that cannot be listed.
pub(crate) fn walk_folder(
    root: &std::path::Path,
    rel: &str,
    out: &mut Vec<(String, std::path::PathBuf)>,
) -> Result<(), (std::path::PathBuf, std::io::Error)> {
    let dir = if rel.is_empty() {
        root.to_path_buf()
    } else {
        root.join(rel)
    };
    let mut entries: Vec<_> = std::fs::read_dir(&dir)
        .map_err(|e| (dir.clone(), e))?
        .filter_map(Result::ok)
        .collect();
    entries.sort_by_key(std::fs::DirEntry::file_name);
    for entry in entries {
        let Some(name) = entry.file_name().to_str().map(str::to_owned) else {
            continue;
        };
        let path = if rel.is_empty() {
            name
        } else {
            format!("{rel}/{name}")
        };
        let Ok(ft) = entry.file_type() else { continue };
        if ft.is_dir() {
            if entry.file_name() == ".git" {
                continue;
            }
            walk_folder(root, &path, out)?;
        } else if ft.is_file() {
            out.push((path, entry.path()));
        }
    }
    Ok(())
}

/// The path (relative to the root) of the kustomization file in `dir`: the first of
/// [`KUSTOMIZATION_FILES`] that `exists` (the renderer reads it first), else
/// `kustomization.yaml`. Provenance and errors of a rendered kustomization name it.
pub(crate) fn kustomization_path(dir: &str, exists: impl Fn(&str) -> bool) -> String {
    let path = |name: &str| {
        if dir.is_empty() {
            name.to_owned()
        } else {
            format!("{dir}/{name}")
        }
    };
    KUSTOMIZATION_FILES
        .iter()
        .map(|name| path(name))
        .find(|p| exists(p))
        .unwrap_or_else(|| path(KUSTOMIZATION_FILES[0]))
}

/// The objects and problems of one parsed file, kept for reuse while its content is the same.
#[derive(Debug, Default)]
pub(crate) struct FileObjects {
    /// Objects with their provenance (revision not set).
    pub objects: Vec<(RawObject, Provenance)>,
    /// Problems.
    pub errors: Vec<ManifestError>,
    /// What to tell (hooks a kustomization inflating Helm charts left out).
    pub notes: Vec<String>,
}

/// Parses the bytes of one file (`path` relative to the root).
/// The objects of a file that is over the size limit: none, and the file's error.
pub(crate) fn too_large(error: driftguard_core::manifest::ManifestError) -> FileObjects {
    FileObjects {
        objects: Vec::new(),
        errors: vec![error],
        notes: Vec::new(),
    }
}

pub(crate) fn parse_bytes(path: &str, data: &[u8]) -> FileObjects {
    match std::str::from_utf8(data) {
        Ok(text) => {
            let p = parse_file(path, text, None);
            FileObjects {
                objects: p.objects,
                errors: p.errors,
                notes: Vec::new(),
            }
        }
        Err(e) => FileObjects {
            objects: Vec::new(),
            errors: vec![ManifestError {
                file: path.to_owned(),
                line: 1 + data[..e.valid_up_to()]
                    .iter()
                    .filter(|b| **b == b'\n')
                    .count(),
                field: None,
                message: "file is not valid UTF-8".into(),
            }],
            notes: Vec::new(),
        },
    }
}

/// Appends a parsed file's objects and errors to `set`, as found at `path` and `revision`.
pub(crate) fn extend_set(set: &mut DesiredSet, parsed: &FileObjects, path: &str, revision: &str) {
    for (object, provenance) in &parsed.objects {
        set.objects.push(RawManifest {
            object: object.clone(),
            provenance: Provenance {
                file: path.to_owned(),
                document: provenance.document,
                line: provenance.line,
                revision: Some(revision.to_owned()),
                rendered: provenance.rendered.clone(),
            },
        });
    }
    for e in &parsed.errors {
        set.errors.push(ManifestError {
            file: path.to_owned(),
            ..e.clone()
        });
    }
    set.notes.extend(parsed.notes.iter().cloned());
}

#[cfg(test)]
mod tests {
    use super::*;

    fn paths(v: &[&str]) -> Vec<(String, ())> {
        v.iter().map(|p| ((*p).to_owned(), ())).collect()
    }

    #[test]
    fn plan_selects_renders_and_skips() {
        let f = Filter::new("./envs/prod/", &[], &["**/skip-*".into()]).expect("valid");
        let p = plan(
            &f,
            paths(&[
                "envs/prod/a.yaml",
                "envs/prod/b.json",
                "envs/prod/readme.md",
                "envs/prod/skip-me.yaml",
                "envs/prod/.github/ci.yaml",
                "envs/prod/app/kustomization.yaml",
                "envs/prod/app/deploy.yaml",
                "envs/prod/app/sub/kustomization.yaml",
                "envs/prod/chart/Chart.yaml",
                "envs/prod/chart/templates/x.yaml",
                "envs/prodx/c.yaml",
            ]),
        );
        let files: Vec<&str> = p.files.iter().map(|(p, _)| p.as_str()).collect();
        assert_eq!(files, vec!["envs/prod/a.yaml", "envs/prod/b.json"]);
        assert_eq!(p.kustomizations, vec!["envs/prod/app".to_owned()]);
        assert_eq!(p.notes.len(), 1);
        assert!(p.notes[0].contains("envs/prod/chart"), "{:?}", p.notes);
    }

    #[test]
    fn without_recurse_only_the_folder_s_own_files_are_read() {
        let f = Filter::new("envs/prod", &[], &[])
            .expect("valid")
            .with_recurse(false);
        let p = plan(
            &f,
            paths(&[
                "envs/prod/a.yaml",
                "envs/prod/sub/b.yaml",
                "envs/prod/app/kustomization.yaml",
                "envs/prod/chart/Chart.yaml",
            ]),
        );
        let files: Vec<&str> = p.files.iter().map(|(p, _)| p.as_str()).collect();
        assert_eq!(files, vec!["envs/prod/a.yaml"]);
        assert!(p.kustomizations.is_empty(), "{:?}", p.kustomizations);
        assert!(p.notes.is_empty(), "{:?}", p.notes);
        assert!(!f.selects("envs/prod/sub/b.yaml"));
        // a kustomization of the folder itself is still the folder's
        let p = plan(
            &f,
            paths(&["envs/prod/kustomization.yaml", "envs/prod/a.yaml"]),
        );
        assert_eq!(p.kustomizations, vec!["envs/prod".to_owned()]);
        assert!(p.files.is_empty());
    }

    #[test]
    fn include_globs_are_relative_to_the_folder() {
        let f = Filter::new("envs", &["prod/**".into()], &[]).expect("valid");
        assert!(f.selects("envs/prod/a.yaml"));
        assert!(!f.selects("envs/dev/a.yaml"));
        assert!(!f.selects("other/prod/a.yaml"));
        assert!(Filter::new("", &["[".into()], &[]).is_err());
    }
}
