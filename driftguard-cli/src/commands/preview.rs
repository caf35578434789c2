//! `driftguard preview`: what merging a pull request would change in each environment,
//! classified against the drift history (`driftguard_server::preview`), as a table, JSON or
//! Markdown, optionally posted on the pull request; exit 2 on what `--fail-on` names.

use anyhow::{anyhow, Result};
use driftguard_cli::{EXIT_DRIFT, EXIT_OK};
use driftguard_core::error::chain;
use driftguard_server::forge::Commented;
use driftguard_server::preview::{self, markdown, FailOn, PreviewRequest};
use driftguard_server::setup::{self, Clusters, StoreChoice};

use crate::args::{FailOnArg, Global, PreviewArgs, PreviewFormat};
use crate::commands::stdout_style;
use crate::plan::query_config;

pub(crate) async fn preview(g: &Global, a: &PreviewArgs) -> Result<u8> {
    let plan = query_config(g)?.plan();
    let choice = StoreChoice::from_plan(&plan.store, g.store.as_deref(), g.no_store);
    let key = setup::secret_key(
        plan.secret_key.as_ref(),
        a.secret_key_file.as_deref(),
        &choice,
    )?;
    let store = choice.open_read().await?;
    let request = PreviewRequest {
        base: a.base.clone(),
        head: a.head.clone(),
        environments: a.env.clone(),
    };
    let report = preview::preview(&plan, key.key, store, &Clusters::one_shot(), &request)
        .await
        .map_err(|e| anyhow!("{}", chain(&e)))?;
    let md = markdown::render(&report);
    match a.output {
        PreviewFormat::Table => print!(
            "{}",
            driftguard_cli::output::preview_table(&report, chrono::Utc::now(), stdout_style(g))
        ),
        PreviewFormat::Json => println!("{}", serde_json::to_string_pretty(&report)?),
        PreviewFormat::Markdown => print!("{md}"),
    }
    if let Some(number) = a.comment {
        // the forge of the first environment asked for that names one
        let forge = plan
            .environments
            .iter()
            .filter(|e| a.env.is_empty() || a.env.contains(&e.name))
            .find_map(|e| e.git().and_then(|g| g.pull_request.clone()))
            .ok_or_else(|| {
                anyhow!("--comment: no environment has git.pullRequest settings (forge, repository, tokenEnv)")
            })?;
        let done = forge
            .config
            .comment(number, markdown::MARKER, &md)
            .await
            .map_err(|e| anyhow!("cannot comment on pull request {number}: {}", chain(&e)))?;
        if !g.quiet {
            match done {
                Commented::Created { url, .. } => {
                    eprintln!("commented on pull request {number} {url}")
                }
                Commented::Updated { url, .. } => {
                    eprintln!("updated the comment on pull request {number} {url}")
                }
            }
        }
    }
    let fail_on: Vec<FailOn> = a
        .fail_on
        .iter()
        .map(|f| match f {
            FailOnArg::Overwrites => FailOn::Overwrites,
            FailOnArg::Conflicts => FailOn::Conflicts,
            FailOnArg::High => FailOn::High,
        })
        .collect();
    Ok(if report.fails(&fail_on) {
        EXIT_DRIFT
    } else {
        EXIT_OK
    })
}
