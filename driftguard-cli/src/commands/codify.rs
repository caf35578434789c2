//! `driftguard codify`: for resources of the account that no Terraform state holds (orphans
//! made by hand), the `import` blocks and the configuration terraform generates for them
//! (`terraform plan -generate-config-out`). Checks the environment first (the drifts stored,
//! as `driftguard scan` does), then prints or writes the two files: a preview, nothing pushed.
//! With `--pull-request` the files are committed into the root module's folder on a new
//! branch, pushed, a pull request opened when `git.pullRequest` is configured, and a
//! `remediated` event (operation `codify`) recorded in each orphan's history.

use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, Mutex};

use anyhow::{anyhow, bail, Context, Result};
use async_trait::async_trait;
use driftguard_cli::{EXIT_ERROR, EXIT_OK};
use driftguard_core::audit::{CloudWriteQuery, CloudWrites};
use driftguard_core::engine::Engine;
use driftguard_core::error::chain;
use driftguard_core::id::ResourceId;
use driftguard_core::model::{CommitInfo, Revision};
use driftguard_core::normalize::Normalizer;
use driftguard_core::ports::{Clock, PlanSource, SourceError};
use driftguard_core::remediate::advice::{FieldChange, RemediationAction};
use driftguard_core::remediate::{remediation_event, Operation, RemediationRecord};
use driftguard_core::scanner::Scanner;
use driftguard_core::state::DriftKind;
use driftguard_core::terraform::codify::{
    account_view, imports, Coverage, Import, GENERATED_FILE, IMPORTS_FILE,
};
use driftguard_core::terraform::{CloudResource, PlanRun};
use driftguard_server::forge::PullRequest;
use driftguard_server::setup::{self, StoreChoice, SystemClock};
use driftguard_sources::git::push_files_at;
use driftguard_sources::terraform::TerraformSource;
use serde::Serialize;

use crate::args::{CodifyArgs, Format, Global};
use crate::commands::print_machine;
use crate::plan::query_config;

/// The plan source of the check, keeping the run it gave (the account's listing with it).
#[derive(Debug)]
struct Keeping {
    source: Arc<TerraformSource>,
    last: Mutex<Option<PlanRun>>,
}

#[async_trait]
impl PlanSource for Keeping {
    fn describe(&self) -> String {
        self.source.describe()
    }
    fn describe_live(&self) -> String {
        self.source.describe_live()
    }
    async fn plan(&self) -> Result<PlanRun, SourceError> {
        let run = self.source.plan().await?;
        *self.last.lock().expect("lock is never poisoned") = Some(run.clone());
        Ok(run)
    }
    async fn fetch(&self) -> Result<Option<Revision>, SourceError> {
        self.source.fetch().await
    }
    async fn last_commits(&self, files: &[String]) -> HashMap<String, CommitInfo> {
        self.source.last_commits(files).await
    }
    async fn last_commits_of(&self, sets: &[Vec<String>]) -> Vec<Option<CommitInfo>> {
        self.source.last_commits_of(sets).await
    }
    async fn cloud_writes(&self, wanted: &[CloudWriteQuery]) -> CloudWrites {
        self.source.cloud_writes(wanted).await
    }
}

#[derive(Serialize)]
struct Output {
    environment: String,
    revision: Option<String>,
    coverage: CoverageOut,
    imports: Vec<Import>,
    files: Vec<FileOut>,
    /// The plan's summary of the imports with the generated configuration.
    plan: Option<String>,
    /// Terraform's complaint about the generated configuration, if its plan failed.
    problem: Option<String>,
    pull_request: Option<PullRequestOut>,
    recorded: Vec<String>,
}

#[derive(Serialize)]
struct CoverageOut {
    #[serde(flatten)]
    coverage: Coverage,
    ratio: Option<f64>,
}

#[derive(Serialize)]
struct FileOut {
    path: String,
    text: String,
}

#[derive(Serialize)]
struct PullRequestOut {
    branch: String,
    commit: String,
    number: Option<u64>,
    url: Option<String>,
    error: Option<String>,
}

pub(crate) async fn codify(g: &Global, a: &CodifyArgs) -> Result<u8> {
    if a.orphans.is_empty() && !a.all {
        bail!("name the orphans to codify (their ids in the cloud), or pass --all");
    }
    let plan = query_config(g)?.plan();
    let terraform: Vec<_> = plan
        .environments
        .iter()
        .filter(|e| e.terraform.is_some())
        .filter(|e| a.env.as_ref().is_none_or(|n| *n == e.name))
        .collect();
    let env = match terraform.as_slice() {
        [one] => *one,
        [] => match &a.env {
            Some(n) => bail!("environment {n} is not a Terraform environment (or does not exist)"),
            None => bail!("no Terraform environment is configured"),
        },
        _ => bail!("several Terraform environments: choose one with --env"),
    };
    let name = env.name.clone();
    let choice = StoreChoice::from_plan(&plan.store, g.store.as_deref(), g.no_store);
    let key = setup::secret_key(plan.secret_key.as_ref(), None, &choice)?;
    let store = choice.open_write().await?;
    if let Some((path, k)) = &key.create {
        setup::write_key_file(path, k)?;
    }
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    let source = setup::terraform_source(env)
        .await
        .map_err(|e| anyhow!("environment {name}: {}", chain(&e)))?;
    let keeping = Arc::new(Keeping {
        source: source.clone(),
        last: Mutex::new(None),
    });
    let normalizer = Normalizer::new(key.key.clone());
    let engine = Engine::new(env.spec.clone(), normalizer.clone());
    let scanner = Scanner::with_plans(engine, keeping.clone(), store.clone(), clock.clone());
    // the check, stored as a scan's: the orphans are drifts with their history
    let report = scanner
        .scan()
        .await
        .map_err(|e| anyhow!("environment {name}: {}", chain(&e)))?;
    let run = keeping
        .last
        .lock()
        .expect("lock is never poisoned")
        .take()
        .ok_or_else(|| anyhow!("environment {name}: the check gave no plan"))?;
    let view = account_view(&run, &normalizer)
        .map_err(|e| anyhow!("environment {name}: {}", chain(&e)))?
        .ok_or_else(|| {
            anyhow!("environment {name} lists no cloud account: configure terraform.orphans")
        })?;
    let chosen: Vec<&CloudResource> = if a.all {
        view.orphans.iter().collect()
    } else {
        let mut out = Vec::new();
        for id in &a.orphans {
            match view.orphans.iter().find(|o| o.id == *id) {
                Some(o) => out.push(o),
                None => bail!(
                    "{id} is not an orphan of environment {name}: a state holds it, an exclude glob names it, or the account has no such resource of the kinds listed"
                ),
            }
        }
        out
    };
    let table = a.output == Format::Table;
    if table && !g.quiet {
        eprintln!("IaC coverage of {name}: {}", view.coverage.describe());
        if !view.coverage.unknown_kinds.is_empty() {
            eprintln!(
                "  not counted (could not be listed): {}",
                view.coverage.unknown_kinds.join(", ")
            );
        }
    }
    let mut out = Output {
        environment: name.clone(),
        revision: run.revision.as_ref().map(|r| r.id.clone()),
        coverage: CoverageOut {
            ratio: view.coverage.ratio(),
            coverage: view.coverage.clone(),
        },
        imports: Vec::new(),
        files: Vec::new(),
        plan: None,
        problem: None,
        pull_request: None,
        recorded: Vec::new(),
    };
    if chosen.is_empty() {
        if table {
            eprintln!("No orphan to codify: every resource of the kinds listed is in a state.");
        } else {
            print_machine(a.output, &out)?;
        }
        return Ok(EXIT_OK);
    }
    let planned = imports(&chosen, &view.addresses);
    let codified = source
        .codify(planned.clone())
        .await
        .map_err(|e| anyhow!("environment {name}: {}", chain(&e)))?;
    out.imports = planned.clone();
    out.problem = codified.problem.clone();
    out.plan = codified.summary.clone();
    if table && !g.quiet {
        if let Some(p) = &codified.summary {
            eprintln!("terraform's plan with the generated configuration: {p}");
        }
    }
    let folder = codified.module.trim_matches('/').to_owned();
    let in_module = |f: &str| {
        if folder.is_empty() {
            f.to_owned()
        } else {
            format!("{folder}/{f}")
        }
    };
    out.files = vec![
        FileOut {
            path: in_module(IMPORTS_FILE),
            text: codified.imports.clone(),
        },
        FileOut {
            path: in_module(GENERATED_FILE),
            text: codified.generated.clone(),
        },
    ];
    if let Some(dir) = &a.out {
        for (f, text) in [
            (IMPORTS_FILE, &codified.imports),
            (GENERATED_FILE, &codified.generated),
        ] {
            let path = dir.join(f);
            write_new(&path, text)?;
            if table && !g.quiet {
                eprintln!("wrote {}", path.display());
            }
        }
    } else if table && !a.pull_request {
        for f in &out.files {
            println!("# ---- {} ----\n{}", f.path, f.text);
        }
    }
    if let Some(p) = &codified.problem {
        eprintln!(
            "warning: terraform's plan with the generated configuration failed; review it before applying:\n{p}"
        );
    }
    let mut failed = false;
    if a.pull_request {
        let git = env.git().ok_or_else(|| {
            anyhow!("--pull-request needs the environment's code in a Git repository (`git:`), not a folder")
        })?;
        let requested_by = super::who();
        let ids: Vec<String> = planned
            .iter()
            .map(|i| format!("{}/{}", i.kind, i.id))
            .collect();
        let revision = run
            .revision
            .as_ref()
            .map(|r| r.id.clone())
            .filter(|r| matches!(r.len(), 40 | 64) && r.bytes().all(|b| b.is_ascii_hexdigit()));
        // the orphans and the commit checked: codifying them again after a new commit is a new
        // branch; again at the same commit, the branch pushed before (its pull request open)
        let plan_id = format!(
            "codify-{:012x}",
            fnv1a(format!("{}\n{}", ids.join("\n"), revision.as_deref().unwrap_or("")).as_bytes())
                >> 16
        );
        let branch = format!("driftguard/{plan_id}");
        let listing: String = planned
            .iter()
            .map(|i| format!("- `{}` `{}` as `{}`\n", i.kind, i.id, i.address))
            .collect();
        let message = format!(
            "Codify {} resource{} no code owns\n\nDriftGuard found them in the account, in no Terraform state:\n\n{listing}\nPlan: {plan_id}\nRequested-By: {requested_by}\n",
            planned.len(),
            if planned.len() == 1 { "" } else { "s" },
        );
        let files: Vec<(String, String)> = out
            .files
            .iter()
            .map(|f| (f.path.clone(), f.text.clone()))
            .collect();
        let gc = git.source.clone();
        let (b, m) = (branch.clone(), message.clone());
        let pushed = tokio::task::spawn_blocking(move || {
            push_files_at(&gc, revision.as_deref(), &b, &files, &m)
        })
        .await?
        .map_err(|e| anyhow!("environment {name}: codify: {}", chain(&e)))?;
        let mut result = format!(
            "codify: pushed branch {} (commit {}) adding {}",
            pushed.branch,
            pushed.commit,
            pushed.files.join(", ")
        );
        let mut pr_out = PullRequestOut {
            branch: pushed.branch.clone(),
            commit: pushed.commit.clone(),
            number: None,
            url: None,
            error: None,
        };
        match &git.pull_request {
            Some(pr) => {
                let request = PullRequest {
                    head: pushed.branch.clone(),
                    base: pr.base.clone(),
                    title: format!(
                        "DriftGuard: codify {} resource{} no code owns",
                        planned.len(),
                        if planned.len() == 1 { "" } else { "s" }
                    ),
                    body: format!(
                        "DriftGuard found these resources in the account, in no Terraform state, and wrote their `import` blocks and the configuration `terraform plan -generate-config-out` generated for them. Review the configuration; `terraform apply` then imports them.\n\n{listing}\n- IaC coverage before: {}\n- Plan: `{plan_id}`\n- Requested by: {requested_by}\n- Files: `{}`, `{}`\n",
                        view.coverage.describe(),
                        in_module(IMPORTS_FILE),
                        in_module(GENERATED_FILE),
                    ),
                };
                match pr.config.open(&request).await {
                    Ok(o) => {
                        result.push_str(&format!("; opened pull request #{} {}", o.number, o.url));
                        pr_out.number = Some(o.number);
                        pr_out.url = Some(o.url.clone());
                    }
                    Err(e) => {
                        failed = true;
                        let why = chain(&e);
                        result.push_str(&format!("; the pull request could not be opened: {why}"));
                        pr_out.error = Some(why);
                    }
                }
            }
            None => result.push_str("; no pull request opened (git.pullRequest is not configured)"),
        }
        if table {
            println!("{result}");
        }
        // the history of each orphan: a `remediated` event saying what was done
        let open: Vec<_> = report
            .drifts()
            .filter(|d| d.kind == DriftKind::Orphan)
            .cloned()
            .collect();
        for i in &planned {
            let id = ResourceId::new(
                name.as_str(),
                view_provider(&run).as_str(),
                i.kind.as_str(),
                None,
                i.id.as_str(),
            );
            let Some(drift) = open.iter().find(|d| d.id == id) else {
                eprintln!(
                    "warning: {} {} has no open orphan drift to record the codify in",
                    i.kind, i.id
                );
                continue;
            };
            let record = RemediationRecord {
                plan_id: plan_id.clone(),
                action: RemediationAction::Adopt,
                operation: Operation::Codify,
                requested_by: requested_by.clone(),
                planned_by: None,
                changes: vec![FieldChange {
                    path: i.address.clone(),
                    from: None,
                    to: Some(serde_json::Value::String(format!("import {}", i.id))),
                }],
                ok: pr_out.error.is_none(),
                result: result.clone(),
            };
            let event = remediation_event(drift, record, clock.now());
            match scanner.record_remediation(event).await {
                Ok(errors) => {
                    for e in errors {
                        eprintln!("warning: notification failed: {e}");
                    }
                    out.recorded.push(drift.episode.clone());
                }
                Err(e) => {
                    failed = true;
                    eprintln!(
                        "error: the codify of {} could not be recorded: {}",
                        i.id,
                        chain(&e)
                    );
                }
            }
        }
        out.pull_request = Some(pr_out);
    }
    if !table {
        print_machine(a.output, &out)?;
    }
    Ok(if failed { EXIT_ERROR } else { EXIT_OK })
}

/// The group of the account's provider (`aws`), as orphans are named.
fn view_provider(run: &PlanRun) -> String {
    run.cloud
        .as_ref()
        .map(|c| c.provider.clone())
        .unwrap_or_else(|| "aws".into())
}

/// Writes `text` to `path`, refusing to replace a file (the user's code stays theirs).
fn write_new(path: &Path, text: &str) -> Result<()> {
    if let Some(d) = path.parent() {
        std::fs::create_dir_all(d).with_context(|| format!("cannot create {}", d.display()))?;
    }
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(path)
        .with_context(|| format!("cannot write {} (it must not exist yet)", path.display()))?;
    std::io::Write::write_all(&mut f, text.as_bytes())
        .with_context(|| format!("cannot write {}", path.display()))
}

/// FNV-1a, 64 bits: a short stable name for a set of imports.
fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3)
    })
}
