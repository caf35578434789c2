//! Running terraform for one check (blocking; the source runs it off the async threads).

use std::ffi::OsString;
use std::path::{Path, PathBuf};

use driftguard_core::ports::SourceError;
use driftguard_core::render::{display_command, RenderError};
use driftguard_core::terraform::{
    declare, Declaration, ModuleInfo, PlanRun, RawPlan, StateMark, TerraformError,
};
use serde::Deserialize;

use super::{Prepared, TerraformConfig};
use crate::render::{find_program, Run};

/// Most bytes one terraform command may print (a plan's JSON of a large state).
const MAX_OUTPUT: u64 = 1024 * 1024 * 1024;

/// The terraform binary: the configured one (a path, or a name on `PATH`), else `terraform`
/// on `PATH`.
pub fn find_terraform(binary: Option<&Path>) -> Option<PathBuf> {
    let name = binary.map_or_else(|| "terraform".to_owned(), |b| b.display().to_string());
    find_program(&name, None)
}

/// The content hash of a folder's Terraform files (`.tf`, `.tf.json`, `.tfvars`, `.hcl`),
/// folders whose names start with `.` left out.
pub(crate) fn folder_hash(dir: &Path) -> Result<u64, SourceError> {
    if !dir.is_dir() {
        return Err(TerraformError::Input {
            what: format!("root module folder {}", dir.display()),
            problem: "does not exist".into(),
        }
        .into());
    }
    let mut files = Vec::new();
    collect(dir, "", &mut files);
    files.sort();
    let mut h = xxhash_rust::xxh3::Xxh3::new();
    for (rel, path) in files {
        h.update(rel.as_bytes());
        h.update(b"\0");
        if let Ok(bytes) = std::fs::read(&path) {
            h.update(&bytes);
        }
        h.update(b"\0");
    }
    Ok(h.digest())
}

fn collect(dir: &Path, rel: &str, out: &mut Vec<(String, PathBuf)>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        let Some(name) = e.file_name().to_str().map(str::to_owned) else {
            continue;
        };
        if name.starts_with('.') && name != ".terraform.lock.hcl" {
            continue;
        }
        let r = if rel.is_empty() {
            name.clone()
        } else {
            format!("{rel}/{name}")
        };
        let Ok(ft) = e.file_type() else { continue };
        if ft.is_dir() {
            collect(&e.path(), &r, out);
        } else if [".tf", ".tf.json", ".tfvars", ".tfvars.json", ".hcl"]
            .iter()
            .any(|x| name.ends_with(x))
        {
            out.push((r, e.path()));
        }
    }
}

/// Whether terraform's standard error says the cloud (or the state's backend) could not be
/// reached.
fn unreachable(stderr: &str) -> bool {
    [
        "connection refused",
        "no such host",
        "i/o timeout",
        "dial tcp",
        "TLS handshake timeout",
        "network is unreachable",
        "request send failed",
        "send request failed",
    ]
    .iter()
    .any(|p| stderr.contains(p))
}

/// One terraform step's error, as the source reports it.
fn step_error(step: &str, source: RenderError) -> SourceError {
    let cloud = matches!(&source, RenderError::Failed { stderr, .. } if unreachable(stderr));
    let e = TerraformError::Step {
        step: step.to_owned(),
        source,
    };
    if cloud {
        SourceError::Unreachable {
            target: format!("the cloud (terraform {step})"),
            source: Box::new(e),
        }
    } else {
        SourceError::Terraform(e)
    }
}

/// `terraform state pull`'s lineage and serial (the rest, sensitive values included, is
/// skipped unread).
#[derive(Deserialize)]
struct StateHead {
    #[serde(default)]
    lineage: String,
    #[serde(default)]
    serial: u64,
}

#[derive(Deserialize)]
struct ModulesJson {
    #[serde(rename = "Modules", default)]
    modules: Vec<ModuleEntry>,
}

#[derive(Deserialize)]
struct ModuleEntry {
    #[serde(rename = "Key", default)]
    key: String,
    #[serde(rename = "Dir", default)]
    dir: String,
}

/// One check: init (when needed), both plans and the state's mark at once, both plans' JSON
/// at once, the declarations of the modules whose code is in the source.
pub(crate) fn check(
    config: &TerraformConfig,
    p: &Prepared,
    workspace: &str,
    init: bool,
) -> Result<PlanRun, SourceError> {
    let program = find_terraform(config.binary.as_deref()).ok_or_else(|| {
        step_error(
            "init",
            RenderError::NoBinary {
                program: config
                    .binary
                    .as_ref()
                    .map_or_else(|| "terraform".to_owned(), |b| b.display().to_string()),
                setting: "terraform.binary".into(),
            },
        )
    })?;
    let dir = p.module_dir();
    if !dir.is_dir() {
        return Err(TerraformError::Input {
            what: format!(
                "root module folder {}",
                if p.module.is_empty() { "." } else { &p.module }
            ),
            problem: format!("does not exist at revision {}", p.revision.short()),
        }
        .into());
    }
    let mut var_args = Vec::new();
    for f in &config.var_files {
        let path = if Path::new(f).is_absolute() {
            PathBuf::from(f)
        } else {
            dir.join(f)
        };
        if !path.is_file() {
            return Err(TerraformError::Input {
                what: format!("variable file {f}"),
                problem: format!("does not exist ({})", path.display()),
            }
            .into());
        }
        var_args.push(format!("-var-file={}", path.display()));
    }
    let data = config.work_dir.join("data");
    std::fs::create_dir_all(&data).map_err(|e| SourceError::Backend {
        context: format!("cannot create {}", data.display()),
        source: Box::new(e),
    })?;
    let mut env: Vec<(&str, OsString)> = vec![
        ("TF_DATA_DIR", data.clone().into_os_string()),
        ("TF_IN_AUTOMATION", "1".into()),
        ("TF_INPUT", "0".into()),
        ("CHECKPOINT_DISABLE", "1".into()),
        ("TF_WORKSPACE", workspace.into()),
    ];
    if let Some(c) = &config.cli_config_file {
        env.push(("TF_CLI_CONFIG_FILE", c.clone().into_os_string()));
    }
    let run = |step: &str, args: Vec<String>| -> Result<String, SourceError> {
        let display = display_command("terraform", &args);
        Run {
            program: &program,
            args: &args,
            cwd: &dir,
            env: &env,
            timeout: config.timeout,
            max_output: MAX_OUTPUT,
            display: &display,
        }
        .output()
        .map_err(|e| step_error(step, e))
    };
    if init {
        let mut args: Vec<String> = vec![
            "init".into(),
            "-input=false".into(),
            "-no-color".into(),
            "-reconfigure".into(),
        ];
        if p.in_place && dir.join(".terraform.lock.hcl").is_file() {
            args.push("-lockfile=readonly".into());
        }
        args.extend(
            config
                .backend_config
                .iter()
                .map(|b| format!("-backend-config={b}")),
        );
        run("init", args)?;
    }
    // the plan files hold sensitive values: a private folder, removed when the check ends
    let tmp = tempfile::Builder::new()
        .prefix("plans-")
        .tempdir_in(&config.work_dir)
        .map_err(|e| SourceError::Backend {
            context: format!("cannot create a folder in {}", config.work_dir.display()),
            source: Box::new(e),
        })?;
    let refresh_file = tmp.path().join("refresh-only.tfplan");
    let plan_file = tmp.path().join("plan.tfplan");
    let plan_args = |refresh_only: bool, out: &Path| {
        let mut a: Vec<String> = vec!["plan".into()];
        if refresh_only {
            a.push("-refresh-only".into());
        }
        a.extend([
            "-lock=false".into(),
            "-input=false".into(),
            "-no-color".into(),
        ]);
        a.push(format!("-out={}", out.display()));
        a.extend(var_args.iter().cloned());
        a
    };
    let (refreshed, planned, state) = std::thread::scope(|s| {
        let r = s.spawn(|| run("plan -refresh-only", plan_args(true, &refresh_file)));
        let n = s.spawn(|| run("plan", plan_args(false, &plan_file)));
        let st = run("state pull", vec!["state".into(), "pull".into()]);
        (join(r), join(n), st)
    });
    refreshed?;
    planned?;
    // the state's text (sensitive values in plain text) is read for its lineage and serial
    // and dropped here
    let state = state?;
    let state = if state.trim().is_empty() {
        None
    } else {
        let head: StateHead = serde_json::from_str(&state).map_err(|e| {
            SourceError::Terraform(TerraformError::PlanJson {
                what: "state (terraform state pull)".into(),
                problem: e.to_string(),
            })
        })?;
        Some(StateMark {
            lineage: head.lineage,
            serial: head.serial,
        })
    };
    let show = |file: &Path| {
        run(
            "show",
            vec![
                "show".into(),
                "-json".into(),
                "-no-color".into(),
                file.display().to_string(),
            ],
        )
    };
    let (refresh_json, plan_json) = std::thread::scope(|s| {
        let r = s.spawn(|| show(&refresh_file));
        let n = show(&plan_file);
        (join(r), n)
    });
    let refresh_only = RawPlan::new(refresh_json?);
    let plan = RawPlan::new(plan_json?);
    drop(tmp);
    let mut warnings = Vec::new();
    if state.is_none() {
        warnings.push(format!(
            "the state of workspace {workspace} is empty: every resource of the code is reported missing (is the backend configured? terraform.backendConfig)"
        ));
    }
    Ok(PlanRun {
        revision: Some(p.revision.clone()),
        module: ModuleInfo {
            folder: p.module.clone(),
            workspace: workspace.to_owned(),
            var_files: config.var_files.clone(),
        },
        refresh_only,
        plan,
        state,
        declarations: declarations(p, &dir, &data),
        cloud: None,
        notes: Vec::new(),
        warnings,
    })
}

fn join<T>(h: std::thread::ScopedJoinHandle<'_, Result<T, SourceError>>) -> Result<T, SourceError> {
    h.join().unwrap_or_else(|_| {
        Err(SourceError::Backend {
            context: "a terraform step panicked".into(),
            source: "thread panicked".into(),
        })
    })
}

/// The `resource` and `module` blocks of the root module and of every module whose code is in
/// the source (`modules.json` of `terraform init` says where each one is), with paths
/// relative to the source root.
fn declarations(p: &Prepared, dir: &Path, data: &Path) -> Vec<Declaration> {
    let root = p.root.canonicalize().unwrap_or_else(|_| p.root.clone());
    let mut modules: Vec<(String, PathBuf)> = vec![(String::new(), dir.to_path_buf())];
    if let Ok(text) = std::fs::read_to_string(data.join("modules").join("modules.json")) {
        if let Ok(m) = serde_json::from_str::<ModulesJson>(&text) {
            for e in m.modules {
                if e.key.is_empty() {
                    continue;
                }
                let d = Path::new(&e.dir);
                let d = if d.is_absolute() {
                    d.to_path_buf()
                } else {
                    dir.join(d)
                };
                modules.push((e.key, d));
            }
        }
    }
    let mut out = Vec::new();
    for (key, d) in modules {
        let Ok(d) = d.canonicalize() else { continue };
        let Ok(rel) = d.strip_prefix(&root) else {
            // a module from a registry: declared by its call
            continue;
        };
        let rel = rel.to_string_lossy().replace('\\', "/");
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        let mut files: Vec<(String, PathBuf)> = entries
            .flatten()
            .filter_map(|e| {
                let name = e.file_name().to_str()?.to_owned();
                (name.ends_with(".tf") || name.ends_with(".tf.json")).then(|| (name, e.path()))
            })
            .collect();
        files.sort();
        for (name, path) in files {
            let Ok(text) = std::fs::read_to_string(&path) else {
                continue;
            };
            let file = if rel.is_empty() {
                name
            } else {
                format!("{rel}/{name}")
            };
            out.extend(declare::declarations_in(&key, &file, &text));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unreachable_clouds_are_told_apart() {
        assert!(unreachable(
            "Error: reading S3 Bucket: dial tcp 127.0.0.1:1: connect: connection refused"
        ));
        assert!(!unreachable("Error: Unsupported argument"));
    }
}
