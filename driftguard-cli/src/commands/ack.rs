//! `driftguard ack`: acknowledges drifts in the store (or withdraws, or lists
//! acknowledgements) through the server's own query, `driftguard_server::queries::ack`, as the
//! API and the dashboard do; the person is `cli:<user>`.

use std::sync::Arc;

use anyhow::{anyhow, bail, Result};
use driftguard_cli::EXIT_OK;
use driftguard_core::query::DriftQuery;
use driftguard_server::auth::Caller;
use driftguard_server::config::TokenScope;
use driftguard_server::dto::AcknowledgementDto;
use driftguard_server::metrics::Metrics;
use driftguard_server::queries::ack::{self, Selection};
use driftguard_server::setup::StoreChoice;
use driftguard_server::state::AppState;

use crate::args::{AckArgs, Format, Global};
use crate::commands::print_machine;
use crate::plan::query_config;

pub(crate) async fn ack(g: &Global, a: &AckArgs) -> Result<u8> {
    let plan = query_config(g)?.plan();
    let choice = StoreChoice::from_plan(&plan.store, g.store.as_deref(), g.no_store);
    if choice == StoreChoice::Memory {
        bail!("acknowledgements are kept in the store: run without --no-store");
    }
    let store = choice.open_read().await?;
    let state = AppState::builder(store, Vec::new(), Arc::new(Metrics::new())).build();
    let caller = Caller::with_scopes(super::who(), vec![TokenScope::Read, TokenScope::Scan]);
    let failed = |e: driftguard_server::error::AppError| anyhow!("{}", e.message);
    let items: Vec<AcknowledgementDto> = if a.list {
        ack::list_unchecked(&state, a.env.as_deref())
            .await
            .map_err(failed)?
    } else if a.withdraw {
        if a.episodes.is_empty() {
            bail!("name the episodes whose acknowledgement to withdraw");
        }
        let mut out = Vec::new();
        for e in &a.episodes {
            out.push(ack::withdraw(&state, &caller, e).await.map_err(failed)?);
        }
        out
    } else {
        let selection = if a.all {
            Selection::Open(DriftQuery {
                environment: a.env.clone(),
                ..DriftQuery::default()
            })
        } else if a.episodes.is_empty() {
            bail!("name the episodes to acknowledge, or pass --env NAME --all");
        } else {
            Selection::Episodes(a.episodes.clone())
        };
        let Some(reason) = a.reason.as_deref() else {
            bail!("--reason is required: say why the drift may stay");
        };
        let until = ack::parse_until(a.until.as_deref(), state.clock.now()).map_err(failed)?;
        ack::acknowledge(&state, &caller, &selection, reason, until)
            .await
            .map_err(failed)?
    };
    match a.output {
        Format::Table => {
            if items.is_empty() && !g.quiet {
                println!("No acknowledgements.");
            }
            for i in &items {
                let until = i
                    .until
                    .map(|u| format!(" until {}", u.to_rfc3339()))
                    .unwrap_or_default();
                let lapse = i
                    .lapse
                    .as_deref()
                    .map(|l| format!(" ({l})"))
                    .unwrap_or_default();
                println!(
                    "{}  {}{lapse}  by {}{until}: {}",
                    i.episode, i.standing, i.by, i.reason
                );
            }
        }
        f => print_machine(f, &items)?,
    }
    Ok(EXIT_OK)
}
