//! The commands that read the store: `drifts`, `events`, `history`, `explain`.

use std::sync::Arc;

use anyhow::{anyhow, Result};
use chrono::Utc;
use driftguard_cli::output;
use driftguard_cli::EXIT_OK;
use driftguard_core::error::chain;
use driftguard_core::id::ObjectRef;
use driftguard_core::ports::DriftStore;
use driftguard_core::query::{DriftQuery, EventQuery};
use driftguard_core::state::Drift;
use driftguard_server::setup::StoreChoice;

use crate::args::{DriftsArgs, EventsArgs, Format, Global, ObjectArgs};
use crate::commands::{print_machine, stdout_style};
use crate::plan::query_config;

async fn query_store(g: &Global) -> Result<Arc<dyn DriftStore>> {
    let plan = query_config(g)?.plan();
    let choice = StoreChoice::from_plan(&plan.store, g.store.as_deref(), g.no_store);
    Ok(choice.open_read().await?)
}

pub(crate) async fn drifts(g: &Global, a: &DriftsArgs) -> Result<u8> {
    let store = query_store(g).await?;
    let q = DriftQuery {
        environment: a.env.clone(),
        kind: a.kind.clone(),
        namespace: a.namespace.clone(),
        name: a.name.clone(),
        drift: a.drift,
        direction: a.direction,
        min_severity: a.severity,
        status: a.status,
        limit: a.limit,
        ..DriftQuery::default()
    };
    let page = store
        .drifts(&q)
        .await
        .map_err(|e| anyhow!("cannot read drifts: {}", chain(&e)))?;
    match a.output {
        Format::Table => {
            if page.items.is_empty() {
                if !g.quiet {
                    println!("No drifts.");
                }
            } else {
                let refs: Vec<&Drift> = page.items.iter().collect();
                // acknowledged drift is marked (a store that cannot say shows none marked)
                let acks = store
                    .acknowledgements(a.env.as_deref())
                    .await
                    .unwrap_or_else(|e| {
                        tracing::warn!("cannot read the acknowledgements: {}", chain(&e));
                        Vec::new()
                    });
                print!(
                    "{}",
                    output::drift_table(&refs, &acks, Utc::now(), stdout_style(g))
                );
                if page.total > page.items.len() && !g.quiet {
                    println!("({} of {} shown)", page.items.len(), page.total);
                }
            }
        }
        f => print_machine(f, &page.items)?,
    }
    Ok(EXIT_OK)
}

pub(crate) async fn events(g: &Global, a: &EventsArgs) -> Result<u8> {
    let store = query_store(g).await?;
    let q = EventQuery {
        environment: a.env.clone(),
        kind: a.kind,
        since: a.since,
        limit: a.limit,
        ..EventQuery::default()
    };
    let page = store
        .events(&q)
        .await
        .map_err(|e| anyhow!("cannot read events: {}", chain(&e)))?;
    match a.output {
        Format::Table => {
            if page.items.is_empty() {
                if !g.quiet {
                    println!("No events.");
                }
            } else {
                print!("{}", output::events_table(&page.items, stdout_style(g)));
            }
        }
        f => print_machine(f, &page.items)?,
    }
    Ok(EXIT_OK)
}

/// Finds the episodes of the object a reference names (an absent group or namespace means
/// any, see [`ObjectRef`]), open ones first, then the most recently updated.
async fn find_object(
    store: &dyn DriftStore,
    reference: &str,
    env_flag: Option<&str>,
) -> Result<Vec<Drift>> {
    let mut r = ObjectRef::parse(reference)?;
    if r.environment.is_none() {
        r.environment = env_flag.map(str::to_owned);
    }
    let page = store
        .drifts(&r.drift_query())
        .await
        .map_err(|e| anyhow!("cannot read drifts: {}", chain(&e)))?;
    let Some(id) = r.pick(page.items.iter().map(|d| &d.id))? else {
        return Ok(Vec::new());
    };
    let mut items: Vec<Drift> = page.items.into_iter().filter(|d| d.id == id).collect();
    // prefer open episodes, then the most recent
    items.sort_by(|a, b| {
        b.is_open()
            .cmp(&a.is_open())
            .then(b.updated_at.cmp(&a.updated_at))
    });
    Ok(items)
}

pub(crate) async fn history(g: &Global, a: &ObjectArgs) -> Result<u8> {
    let store = query_store(g).await?;
    let found = find_object(store.as_ref(), &a.object, a.env.as_deref()).await?;
    let Some(first) = found.first() else {
        if a.output == Format::Table {
            if !g.quiet {
                println!(
                    "No history for {}: it never drifted (or was never scanned).",
                    a.object
                );
            }
        } else {
            print_machine(a.output, &Vec::<()>::new())?;
        }
        return Ok(EXIT_OK);
    };
    let events = store
        .history(&first.id, 10_000)
        .await
        .map_err(|e| anyhow!("cannot read history: {}", chain(&e)))?;
    match a.output {
        Format::Table => print!("{}", output::events_table(&events, stdout_style(g))),
        f => print_machine(f, &events)?,
    }
    Ok(EXIT_OK)
}

pub(crate) async fn explain(g: &Global, a: &ObjectArgs) -> Result<u8> {
    let store = query_store(g).await?;
    let found = find_object(store.as_ref(), &a.object, a.env.as_deref()).await?;
    let Some(d) = found.first() else {
        if a.output == Format::Table {
            if !g.quiet {
                println!(
                    "{}: no drift recorded (in sync as of the last scan, or never scanned).",
                    a.object
                );
            }
        } else {
            print_machine(a.output, &serde_json::Value::Null)?;
        }
        return Ok(EXIT_OK);
    };
    match a.output {
        Format::Table => print!("{}", output::explain(d, Utc::now(), stdout_style(g))),
        f => print_machine(f, d)?,
    }
    Ok(EXIT_OK)
}
