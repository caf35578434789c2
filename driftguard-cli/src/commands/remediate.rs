//! `driftguard remediate`: ends drifts by reverting the cluster to Git or adopting the change
//! into Git. Scans first, shows every plan with the API server's dry run, and changes nothing
//! without `--yes` (or a confirmation on a terminal).

use std::collections::BTreeMap;
use std::io::{BufRead, IsTerminal, Write};
use std::sync::Arc;

use anyhow::{anyhow, bail, Result};
use driftguard_cli::{EXIT_ERROR, EXIT_OK};
use driftguard_core::error::chain;
use driftguard_core::id::ObjectRef;
use driftguard_core::ports::Clock;
use driftguard_core::remediate::advice::{FieldChange, RemediationAction};
use driftguard_core::state::{Drift, EventKind};
use driftguard_server::remediate::{Proposed, Remediator};
use driftguard_server::setup::{self, StoreChoice, SystemClock};
use serde::Serialize;
use serde_json::Value;

use crate::args::{Format, Global, RemediateArgs};
use crate::commands::print_machine;
use crate::plan::query_config;

/// One drift's outcome, as printed with `-o json`.
#[derive(Serialize)]
struct Outcome {
    object: String,
    episode: String,
    plan: Option<String>,
    operation: Option<String>,
    preview: Vec<FieldChange>,
    left_alone: Vec<String>,
    refused: Option<String>,
    applied: bool,
    error: Option<String>,
    resolution: Option<String>,
}

fn show(v: &Option<Value>) -> String {
    match v {
        None => "(absent)".to_owned(),
        Some(Value::String(s)) => s.clone(),
        Some(v) => v.to_string(),
    }
}

pub(crate) async fn remediate(g: &Global, a: &RemediateArgs) -> Result<u8> {
    if a.objects.is_empty() && !a.all {
        bail!("name the objects to remediate, or pass --all");
    }
    let action = if a.adopt {
        RemediationAction::Adopt
    } else {
        RemediationAction::Revert
    };
    let plan = query_config(g)?.plan();
    let refs = a
        .objects
        .iter()
        .map(|o| match &a.env {
            Some(e) => ObjectRef::parse_in(e, o),
            None => ObjectRef::parse(o),
        })
        .collect::<Result<Vec<_>, _>>()?;
    let mut envs: Vec<String> = plan
        .environments
        .iter()
        .map(|e| e.name.clone())
        .filter(|n| a.env.as_ref().is_none_or(|e| e == n))
        .filter(|n| {
            refs.is_empty()
                || refs
                    .iter()
                    .any(|r| r.environment.as_ref().is_none_or(|e| e == n))
        })
        .collect();
    envs.dedup();
    if envs.is_empty() {
        bail!("no environment matches");
    }
    let choice = StoreChoice::from_plan(&plan.store, g.store.as_deref(), g.no_store);
    let key = setup::secret_key(plan.secret_key.as_ref(), None, &choice)?;
    let store = choice.open_write().await?;
    if let Some((path, k)) = &key.create {
        setup::write_key_file(path, k)?;
    }
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    let mut outcomes = Vec::new();
    let mut failed = false;
    let mut by_env: BTreeMap<String, (Remediator, Vec<Proposed>)> = BTreeMap::new();
    for name in &envs {
        let env = plan
            .environment(name)
            .ok_or_else(|| anyhow!("no environment `{name}`"))?;
        let r = Remediator::open(env, key.key.clone(), store.clone(), clock.clone())
            .await
            .map_err(|e| anyhow!("environment {name}: {}", chain(&e)))?;
        let report = r
            .scan()
            .await
            .map_err(|e| anyhow!("environment {name}: {}", chain(&e)))?;
        let chosen: Vec<Drift> = report
            .drifts()
            .filter(|d| {
                if a.all {
                    a.kind
                        .as_ref()
                        .is_none_or(|k| k.eq_ignore_ascii_case(&d.id.kind))
                        && a.namespace
                            .as_ref()
                            .is_none_or(|n| d.id.namespace.as_ref() == Some(n))
                } else {
                    refs.iter().any(|r| r.matches(&d.id))
                }
            })
            .cloned()
            .collect();
        let proposed = r
            .propose(chosen, action, a.prune)
            .await
            .map_err(|e| anyhow!("environment {name}: {}", chain(&e)))?;
        by_env.insert(name.clone(), (r, proposed));
    }
    let total: usize = by_env.values().map(|(_, p)| p.len()).sum();
    if total == 0 {
        if !g.quiet {
            eprintln!("No open drift matches: nothing to do.");
        }
        if !refs.is_empty() {
            return Ok(EXIT_ERROR);
        }
        return Ok(EXIT_OK);
    }
    // the preview
    let table = a.output == Format::Table;
    let mut ready = 0;
    for (_, proposed) in by_env.values() {
        for p in proposed {
            let object = format!(
                "{}:{}/{}",
                p.drift.id.environment,
                p.drift.id.group_kind(),
                p.drift.id.namespaced_name()
            );
            match &p.result {
                Ok(prop) => {
                    ready += 1;
                    if table {
                        println!(
                            "{} {object} (plan {}, episode {})",
                            prop.plan.operation, prop.plan.id, prop.drift.episode
                        );
                        if prop.preview.is_empty() {
                            println!("  the API server's dry run changes nothing");
                        }
                        for c in &prop.preview {
                            println!("  {}: {} -> {}", c.path, show(&c.from), show(&c.to));
                        }
                        for l in &prop.plan.left_alone {
                            println!("  left alone: {l}");
                        }
                    }
                }
                Err(e) => {
                    failed = true;
                    if table {
                        println!("refused {object}: {}", chain(e));
                    }
                }
            }
        }
    }
    let go = if a.dry_run || ready == 0 {
        false
    } else if a.yes {
        true
    } else if std::io::stdin().is_terminal() {
        print!(
            "Apply {ready} plan{}? [y/N] ",
            if ready == 1 { "" } else { "s" }
        );
        std::io::stdout().flush()?;
        let mut line = String::new();
        std::io::stdin().lock().read_line(&mut line)?;
        matches!(line.trim(), "y" | "Y" | "yes")
    } else {
        if table && !g.quiet {
            println!("Nothing changed: pass --yes to apply (or --dry-run to only look).");
        }
        false
    };
    let requested_by = super::who();
    for (name, (r, proposed)) in &by_env {
        let mut done = Vec::new();
        for p in proposed {
            let mut o = Outcome {
                object: format!(
                    "{}:{}/{}",
                    p.drift.id.environment,
                    p.drift.id.group_kind(),
                    p.drift.id.namespaced_name()
                ),
                episode: p.drift.episode.clone(),
                plan: None,
                operation: None,
                preview: Vec::new(),
                left_alone: Vec::new(),
                refused: None,
                applied: false,
                error: None,
                resolution: None,
            };
            match &p.result {
                Err(e) => o.refused = Some(chain(e)),
                Ok(prop) => {
                    o.plan = Some(prop.plan.id.clone());
                    o.operation = Some(prop.plan.operation.to_string());
                    o.preview = prop.preview.clone();
                    o.left_alone = prop.plan.left_alone.clone();
                    if go {
                        match r.execute(prop, &requested_by).await {
                            Ok(_) => {
                                o.applied = true;
                                done.push(prop.drift.episode.clone());
                            }
                            Err(e) => {
                                failed = true;
                                o.error = Some(chain(&e));
                                if table {
                                    eprintln!("error: {}: {}", o.object, chain(&e));
                                }
                            }
                        }
                    }
                }
            }
            outcomes.push(o);
        }
        if !done.is_empty() {
            // scan again: the drift resolves once both sides agree
            let report = r
                .scan()
                .await
                .map_err(|e| anyhow!("environment {name}: {}", chain(&e)))?;
            for e in report
                .events
                .iter()
                .filter(|e| e.kind == EventKind::Resolved)
            {
                if let Some(o) = outcomes.iter_mut().find(|o| o.episode == e.drift.episode) {
                    o.resolution = e.drift.resolution.map(|r| r.to_string());
                }
            }
            for o in outcomes.iter().filter(|o| o.applied) {
                if table {
                    match &o.resolution {
                        Some(r) => println!("{}: {r}", o.object),
                        None => println!("{}: applied; the drift is still open", o.object),
                    }
                }
            }
        }
    }
    if !table {
        print_machine(a.output, &outcomes)?;
    }
    Ok(if failed { EXIT_ERROR } else { EXIT_OK })
}
