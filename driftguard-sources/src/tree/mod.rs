//! A tree of manifests, shared by the Git source ([`crate::git`]) and the folder source
//! ([`crate::files`]): which files are read (`select`: include and exclude globs, size
//! limits, kustomization folders, YAML and JSON documents with their lines) and how a
//! kustomization is built (`kustomize`: the binary found, run through [`crate::process`] with
//! its limits).

pub(crate) mod kustomize;
pub(crate) mod select;

pub use kustomize::KustomizeLimits;
