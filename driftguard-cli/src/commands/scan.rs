//! `driftguard scan`: one-shot scans of the selected environments (with `--discover`, those
//! discovered from Argo CD and Flux too); results are stored only when the scans succeed.

use std::io::IsTerminal;
use std::sync::Arc;

use anyhow::{anyhow, Result};
use driftguard_cli::output::{self, EnvResult, ScanOutput};
use driftguard_cli::{EXIT_DRIFT, EXIT_ERROR, EXIT_OK};
use driftguard_core::audit::AuditSnapshot;
use driftguard_core::engine::Engine;
use driftguard_core::engine::ScanReport;
use driftguard_core::error::chain;
use driftguard_core::normalize::Normalizer;
use driftguard_core::normalize::SecretKey;
use driftguard_core::ports::{Clock, DriftStore, ScanBatch};
use driftguard_core::state::Drift;
use driftguard_server::audit::read_log;
use driftguard_server::config::discover::Tool;
use driftguard_server::config::ResolvedConfig;
use driftguard_server::dto::ToolDto;
use driftguard_server::setup::{self, DeferredStore, StoreChoice, SystemClock};
use driftguard_server::verdicts::ToolStatus;
use futures_util::StreamExt;

use crate::args::{Format, Global, ScanArgs};
use crate::commands::{config_discover, print_machine, stdout_style};
use crate::plan::scan_config;
use crate::progress::Progress;

pub(crate) async fn scan(g: &Global, a: &ScanArgs) -> Result<u8> {
    let (mut plan, mut selected) = scan_config(g, a)?;
    let mut discovery_failed = false;
    // the tools' verdicts on the discovered environments, by name
    let mut tools: std::collections::HashMap<String, ToolStatus> = std::collections::HashMap::new();
    if a.discover {
        // the discovered environments after the file's, planned the same way
        let found = config_discover::discover(&plan).await?;
        discovery_failed = config_discover::print_warnings(&found);
        if !g.quiet {
            let not_scanned = found.found.len() - found.environments.len();
            eprintln!(
                "discovered {} environment{} ({} object{} not scanned)",
                found.environments.len(),
                if found.environments.len() == 1 {
                    ""
                } else {
                    "s"
                },
                not_scanned,
                if not_scanned == 1 { "" } else { "s" },
            );
        }
        let read_at = chrono::Utc::now();
        for d in &found.found {
            if let Some(name) = d.name() {
                tools.insert(name.to_owned(), ToolStatus::of(d, read_at));
            }
        }
        let names: Vec<String> = found.environments.iter().map(|e| e.name.clone()).collect();
        plan.environments.extend(found.environments);
        if a.env.is_empty() {
            selected.extend(names);
        } else if let Some(n) = a.env.iter().find(|n| plan.environment(n).is_none()) {
            let known: Vec<&str> = plan.environments.iter().map(|e| e.name.as_str()).collect();
            return Err(anyhow!(
                "no environment `{n}`, configured or discovered (known: {})",
                known.join(", ")
            ));
        }
        if selected.is_empty() {
            return Err(anyhow!(
                "no environments to scan: none configured, none discovered"
            ));
        }
    }
    let choice = StoreChoice::from_plan(&plan.store, g.store.as_deref(), g.no_store);
    let key = setup::secret_key(
        plan.secret_key.as_ref(),
        a.secret_key_file.as_deref(),
        &choice,
    )?;
    let existing = !matches!(&choice, StoreChoice::Sqlite(p) if !p.exists());
    let read_store = choice.open_read().await?;
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    let progress = Progress::start(!g.quiet && std::io::stderr().is_terminal());
    let clusters = setup::Clusters::one_shot();
    // environments are scanned at once, a few at a time; results keep the selection's order
    let scans = futures_util::stream::iter(&selected)
        .map(|name| scan_one(&plan, name, &key.key, &read_store, &clusters, &clock))
        .buffered(SCANS_AT_ONCE);
    progress.set(format!(
        "scanning {} environment{}...",
        selected.len(),
        if selected.len() == 1 { "" } else { "s" }
    ));
    let outcomes: Vec<Scanned> = scans.collect().await;
    let mut results = Vec::new();
    let mut failed = Vec::new();
    let mut batches = Vec::new();
    let mut audits = Vec::new();
    let mut audit_warnings = Vec::new();
    for scanned in outcomes {
        audit_warnings.extend(scanned.audit_warning);
        match scanned.outcome {
            Ok((report, b, audit, notes)) => {
                let mut result = EnvResult::from_report(&report);
                result.notes.extend(notes);
                result.tool = tools.get(&result.environment).map(ToolDto::from);
                results.push(result);
                batches.extend(b);
                audits.extend(audit);
            }
            Err(e) => failed.push(chain(e.as_ref())),
        }
    }
    progress.finish();
    // store what the successful scans saw
    if !batches.is_empty() && choice != StoreChoice::Memory {
        let store: Arc<dyn DriftStore> = if existing {
            read_store.clone()
        } else {
            choice.open_write().await?
        };
        if let Some((path, k)) = &key.create {
            setup::write_key_file(path, k)?;
        }
        for b in &batches {
            store.commit(b).await.map_err(|e| {
                anyhow!(
                    "cannot store the scan ({}): {}",
                    choice.describe(),
                    chain(&e)
                )
            })?;
        }
        // the audit index after the batches: where the log was read to, and who wrote what
        for (env, changes) in &audits {
            store.save_audit_index(env, changes).await.map_err(|e| {
                anyhow!(
                    "cannot store the audit index ({}): {}",
                    choice.describe(),
                    chain(&e)
                )
            })?;
        }
        if let Some(retention) = plan.store.retention {
            // what is older than the retention goes; a failure only delays that to the next scan
            if let Err(e) =
                driftguard_server::retention::prune_once(store.as_ref(), clock.as_ref(), retention)
                    .await
            {
                tracing::warn!("cannot prune the history: {}", chain(&e));
            }
        }
    }
    let now = clock.now();
    let style = stdout_style(g);
    // acknowledged drift is marked in the table and, unless --include-acknowledged, left out
    // of the exit code (the core's `ack::held`)
    let acks = read_store.acknowledgements(None).await.unwrap_or_else(|e| {
        tracing::warn!("cannot read the acknowledgements: {}", chain(&e));
        Vec::new()
    });
    match a.output {
        Format::Json | Format::Yaml => {
            let out = ScanOutput {
                environments: results.clone(),
                failed: failed.clone(),
            };
            print_machine(a.output, &out)?;
        }
        Format::Table => {
            let drifts: Vec<&Drift> = results.iter().flat_map(|r| r.drifts.iter()).collect();
            if drifts.is_empty() {
                if !failed.is_empty() && results.is_empty() {
                    // nothing scanned: errors only
                } else if !g.quiet {
                    let tracked: usize = results.iter().map(|r| r.summary.counts.tracked).sum();
                    println!(
                        "No drift: {tracked} objects in sync in {} environment{}.",
                        results.len(),
                        if results.len() == 1 { "" } else { "s" }
                    );
                }
            } else {
                print!("{}", output::drift_table(&drifts, &acks, now, style));
                if a.diff {
                    println!();
                    print!("{}", output::diffs(&drifts, style));
                }
            }
            let resolved: Vec<&Drift> = results.iter().flat_map(|r| r.resolved.iter()).collect();
            if !resolved.is_empty() && !g.quiet {
                println!();
                println!("Resolved since the last scan:");
                for d in resolved {
                    println!(
                        "  {} {} {} ({} {}, {})",
                        d.id.environment,
                        output::kind_label(d),
                        d.id.namespaced_name(),
                        d.kind,
                        d.direction,
                        d.ended_how().unwrap_or_default()
                    );
                }
            }
            let tool_lines = output::tool_lines(&results, |name| {
                let t = tools.get(name)?;
                let who = match t.tool {
                    Tool::ArgoCd => "Argo CD",
                    Tool::Flux => "Flux",
                };
                Some((who.to_owned(), t.verdict.summary_with_event()))
            });
            if !tool_lines.is_empty() && !g.quiet {
                println!();
                println!("What the deployment tools say:");
                print!("{tool_lines}");
            }
            if !drifts.is_empty() && !g.quiet {
                let per_env: Vec<String> = results
                    .iter()
                    .map(|r| format!("{}: {}", r.environment, r.drifts.len()))
                    .collect();
                println!();
                println!(
                    "{} drift{} ({}).",
                    drifts.len(),
                    if drifts.len() == 1 { "" } else { "s" },
                    per_env.join(", ")
                );
            }
        }
    }
    let mut manifest_errors = false;
    for r in &results {
        for e in &r.errors {
            manifest_errors = true;
            eprintln!("warning: {}: {e}", r.environment);
        }
        if !g.quiet {
            for n in &r.notes {
                tracing::info!(environment = %r.environment, "{n}");
            }
        }
    }
    for w in &audit_warnings {
        eprintln!("warning: {w}");
    }
    for f in &failed {
        eprintln!("error: {f}");
    }
    if !failed.is_empty() || discovery_failed {
        return Ok(EXIT_ERROR);
    }
    // a drift whose acknowledgement holds is listed and left out
    let counted: Vec<&Drift> = results
        .iter()
        .flat_map(|r| r.drifts.iter())
        .filter(|d| a.include_acknowledged || !driftguard_core::ack::held(&acks, d, now))
        .collect();
    let left_out = results.iter().map(|r| r.drifts.len()).sum::<usize>() - counted.len();
    if left_out > 0 && !g.quiet {
        eprintln!(
            "{left_out} acknowledged drift{} left out of the exit code (--include-acknowledged counts {})",
            if left_out == 1 { "" } else { "s" },
            if left_out == 1 { "it" } else { "them" }
        );
    }
    let failing = counted.iter().any(|d| d.severity >= a.fail_on);
    Ok(if failing {
        EXIT_DRIFT
    } else if manifest_errors {
        EXIT_ERROR
    } else {
        EXIT_OK
    })
}

/// Environments scanned at once by `driftguard scan` (each lists its cluster and renders its
/// Git side; more at once mostly waits on the same API server and CPU).
const SCANS_AT_ONCE: usize = 4;

/// What one environment's scan gave: the report and what to store, or why it failed; and a
/// warning when its audit log could not be read.
struct Scanned {
    outcome: Result<Done>,
    audit_warning: Option<String>,
}

/// A scan that succeeded: its report, the batches and audit index to store, its notes.
type Done = (
    ScanReport,
    Vec<ScanBatch>,
    Vec<(String, AuditSnapshot)>,
    Vec<String>,
);

/// One environment's scan, stored nowhere yet (its batches are kept for after every scan).
async fn scan_one(
    plan: &ResolvedConfig,
    name: &str,
    key: &SecretKey,
    read_store: &Arc<dyn DriftStore>,
    clusters: &setup::Clusters,
    clock: &Arc<dyn Clock>,
) -> Scanned {
    let mut audit_warning = None;
    let outcome = async {
        let env = plan
            .environment(name)
            .ok_or_else(|| anyhow!("no environment `{name}`"))?;
        tracing::info!(environment = %name, "scanning");
        let deferred = Arc::new(DeferredStore::new(read_store.clone()));
        let engine = Engine::new(env.spec.clone(), Normalizer::new(key.clone()));
        let scanner =
            setup::scanner(env, clusters, engine, deferred.clone(), clock.clone()).await?;
        // the audit log first: who wrote what since the last scan
        let mut audit_notes = Vec::new();
        if let Some(reader) = setup::audit_log(env) {
            match read_log(&scanner, &reader).await {
                Ok(read) => {
                    tracing::info!(environment = %name, writes = read.writes,
                        indexed = read.indexed, "audit log read");
                    audit_notes.extend(read.notes);
                }
                // without it the drifts name no one new: said, not fatal
                Err(e) => {
                    audit_warning = Some(format!(
                        "{name}: cannot read the audit log {}: {}",
                        reader.path().display(),
                        chain(&e)
                    ))
                }
            }
        }
        let report = scanner
            .scan()
            .await
            .map_err(|e| anyhow!("environment {name}: {}", chain(&e)))?;
        anyhow::Ok((report, deferred.take(), deferred.take_audit(), audit_notes))
    }
    .await;
    Scanned {
        outcome,
        audit_warning,
    }
}
