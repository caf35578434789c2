//! Codify: the configuration of resources no state holds, as terraform generates it.
//!
//! The code of the current revision is copied into a private folder of DriftGuard's working
//! folder (never the user's tree, nor the tree the checks plan), the import blocks are written
//! there as [`IMPORTS_FILE`], and `terraform plan -generate-config-out=<file> -lock=false
//! -input=false` (the checks' set-up: data folder, CLI configuration, variable files, `init`
//! when needed) writes the configuration of each imported resource. Nothing is applied, no
//! state is written. Terraform writes an attribute its provider marks sensitive as
//! `null # sensitive`; what it wrote is then passed through the core's
//! [`redact_generated`], which removes what still looks secret.

use std::path::{Path, PathBuf};

use driftguard_core::model::Revision;
use driftguard_core::ports::SourceError;
use driftguard_core::render::RenderError;
use driftguard_core::terraform::codify::{
    import_blocks, redact_generated, tidy_generated, Import, GENERATED_FILE, IMPORTS_FILE,
};

use super::run::Session;
use super::{Prepared, TerraformSource};

/// The configuration terraform generated for some imports.
#[derive(Clone, Debug)]
pub struct Codified {
    /// The revision of the code it was generated against.
    pub revision: Revision,
    /// The root module's folder in the source (`""`: the root).
    pub module: String,
    /// The text of [`IMPORTS_FILE`].
    pub imports: String,
    /// The text of [`GENERATED_FILE`] (secrets removed).
    pub generated: String,
    /// The plan's own summary of the imports with the generated configuration (`Plan: 2 to
    /// import, 0 to add, 0 to change, 0 to destroy.`), when it printed one.
    pub summary: Option<String>,
    /// Terraform's complaint about the generated configuration, when the plan with it
    /// failed after writing it (a conflict the provider's schema allows but its validation
    /// refuses): review the configuration before applying it.
    pub problem: Option<String>,
}

impl TerraformSource {
    /// Generates the configuration of `imports` against the code of the current revision (see
    /// [the module documentation](self)). An error names the resources and the step.
    pub async fn codify(&self, imports: Vec<Import>) -> Result<Codified, SourceError> {
        let _one = self.running.lock().await;
        let prepared = self.prepare().await?;
        let config = self.config.clone();
        let workspace = self.workspace().to_owned();
        tokio::task::spawn_blocking(move || generate(&config, &prepared, &workspace, &imports))
            .await
            .map_err(|e| SourceError::Backend {
                context: "terraform task failed".into(),
                source: Box::new(e),
            })?
    }
}

fn generate(
    config: &super::TerraformConfig,
    p: &Prepared,
    workspace: &str,
    imports: &[Import],
) -> Result<Codified, SourceError> {
    let named: Vec<String> = imports
        .iter()
        .map(|i| format!("{} {}", i.kind, i.id))
        .collect();
    let step = format!(
        "plan -generate-config-out (codify {})",
        if named.is_empty() {
            "nothing".to_owned()
        } else {
            named.join(", ")
        }
    );
    let io = |what: String| {
        move |e: std::io::Error| SourceError::Backend {
            context: what,
            source: Box::new(e),
        }
    };
    std::fs::create_dir_all(&config.work_dir)
        .map_err(io(format!("cannot create {}", config.work_dir.display())))?;
    // a private copy of the code: the imports file never lands in the user's tree
    let copy = tempfile::Builder::new()
        .prefix("codify-")
        .tempdir_in(&config.work_dir)
        .map_err(io(format!(
            "cannot create a folder in {}",
            config.work_dir.display()
        )))?;
    let root = copy.path().join("code");
    copy_code(&p.root, &root)
        .map_err(io(format!("cannot copy the code of {}", p.root.display())))?;
    let private = Prepared {
        revision: p.revision.clone(),
        root,
        module: p.module.clone(),
        in_place: false,
    };
    let s = Session::open(config, &private, workspace)?;
    let text = import_blocks(imports);
    let imports_path = s.dir.join(IMPORTS_FILE);
    std::fs::write(&imports_path, &text)
        .map_err(io(format!("cannot write {}", imports_path.display())))?;
    // terraform refuses to write over a file: the module's own generated file (an earlier
    // codify, merged) stays, the new one goes beside it
    let out = copy.path().join(GENERATED_FILE);
    let mut args: Vec<String> = vec![
        "plan".into(),
        "-lock=false".into(),
        "-input=false".into(),
        "-no-color".into(),
        format!("-generate-config-out={}", out.display()),
    ];
    args.extend(s.var_args.iter().cloned());
    let initialized = s.init_if_changed()?;
    let mut planned = s.run(args.clone());
    if !initialized && planned.as_ref().err().is_some_and(super::run::needs_init) {
        let _ = std::fs::remove_file(&out);
        s.init()?;
        planned = s.run(args);
    }
    let generated = std::fs::read_to_string(&out).ok();
    let summary_of = |stdout: &str| {
        stdout
            .lines()
            .map(str::trim)
            .find(|l| l.starts_with("Plan: ") || l.starts_with("No changes."))
            .map(str::to_owned)
    };
    let mut summary = planned.as_ref().ok().and_then(|o| summary_of(o));
    let mut problem = match (planned, &generated) {
        (Ok(_), _) => None,
        // terraform wrote the configuration, then its plan with it failed
        (Err(RenderError::Failed { stderr, .. }), Some(g)) if !g.trim().is_empty() => {
            Some(stderr.trim().to_owned())
        }
        (Err(e), _) => return Err(s.fail(&step, e)),
    };
    let raw = generated.ok_or_else(|| {
        SourceError::Terraform(driftguard_core::terraform::TerraformError::Input {
            what: format!("{} {step}", s.program_name()),
            problem: "wrote no configuration".into(),
        })
    })?;
    let generated = redact_generated(&tidy_generated(&raw), &s.secrets);
    if generated != raw || problem.is_some() {
        // what is handed over is not what terraform planned: plan it (the imports with it)
        let check = s.dir.join(CHECK_FILE);
        std::fs::write(&check, &generated)
            .map_err(io(format!("cannot write {}", check.display())))?;
        let mut args: Vec<String> = vec![
            "plan".into(),
            "-lock=false".into(),
            "-input=false".into(),
            "-no-color".into(),
        ];
        args.extend(s.var_args.iter().cloned());
        match s.run(args) {
            Ok(stdout) => {
                summary = summary_of(&stdout);
                problem = None;
            }
            Err(RenderError::Failed { stderr, .. }) => {
                summary = None;
                problem = Some(stderr.trim().to_owned());
            }
            Err(e) => return Err(s.fail("plan (codify: the generated configuration)", e)),
        }
    }
    Ok(Codified {
        revision: p.revision.clone(),
        module: p.module.clone(),
        imports: text,
        summary,
        generated,
        problem,
    })
}

/// The file the generated configuration is planned from, in the private copy, when what is
/// handed over differs from what terraform planned.
const CHECK_FILE: &str = "driftguard_codify_check.tf";

/// Copies the code below `from` into `to`: regular files and folders, not `.terraform`
/// (a folder source's own data) nor `.git`; symbolic links are copied as what they point at
/// only when that is inside `from`.
fn copy_code(from: &Path, to: &Path) -> std::io::Result<()> {
    let root = from.canonicalize()?;
    copy_below(&root, &root, to)
}

fn copy_below(root: &Path, from: &Path, to: &Path) -> std::io::Result<()> {
    std::fs::create_dir_all(to)?;
    for e in std::fs::read_dir(from)? {
        let e = e?;
        let name = e.file_name();
        if name == ".terraform" || name == ".git" {
            continue;
        }
        let path: PathBuf = e.path();
        let target = to.join(&name);
        let meta = std::fs::metadata(&path)?;
        if e.file_type()?.is_symlink() && !path.canonicalize()?.starts_with(root) {
            continue;
        }
        if meta.is_dir() {
            copy_below(root, &path, &target)?;
        } else if meta.is_file() {
            std::fs::copy(&path, &target)?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_copy_leaves_out_data_folders_and_links_outside() {
        let dir = tempfile::tempdir().expect("tmp");
        let src = dir.path().join("src");
        std::fs::create_dir_all(src.join("live/prod")).expect("mkdir");
        std::fs::create_dir_all(src.join(".terraform/providers")).expect("mkdir");
        std::fs::write(src.join("live/prod/main.tf"), "# main").expect("write");
        std::fs::write(src.join(".terraform/providers/x"), "x").expect("write");
        std::fs::write(dir.path().join("outside.tf"), "secret").expect("write");
        #[cfg(unix)]
        std::os::unix::fs::symlink(dir.path().join("outside.tf"), src.join("link.tf"))
            .expect("link");
        let to = dir.path().join("copy");
        copy_code(&src, &to).expect("copy");
        assert_eq!(
            std::fs::read_to_string(to.join("live/prod/main.tf")).expect("read"),
            "# main"
        );
        assert!(!to.join(".terraform").exists());
        assert!(!to.join("link.tf").exists());
    }
}
