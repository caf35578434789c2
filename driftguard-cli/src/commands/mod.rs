//! One module per command; [`run`] dispatches.

mod ack;
mod codify;
mod config_discover;
mod mcp;
mod preview;
mod query;
mod remediate;
mod scan;
mod serve;
mod validate;

use std::io::IsTerminal;

use anyhow::Result;
use clap::CommandFactory;
use driftguard_cli::output::Style;
use driftguard_cli::EXIT_OK;

use crate::args::{Cli, ColorChoice, Command, ConfigCommand, Format, Global};

/// Who asks, for the history of what the CLI changes: `cli:` and the operating system's user.
fn who() -> String {
    let user = std::env::var("USER")
        .or_else(|_| std::env::var("USERNAME"))
        .unwrap_or_else(|_| "unknown".into());
    format!("cli:{user}")
}

pub(crate) async fn run(cli: Cli) -> Result<u8> {
    let g = &cli.global;
    match &cli.command {
        Command::Scan(a) => scan::scan(g, a).await,
        Command::Drifts(a) => query::drifts(g, a).await,
        Command::History(a) => query::history(g, a).await,
        Command::Events(a) => query::events(g, a).await,
        Command::Explain(a) => query::explain(g, a).await,
        Command::Remediate(a) => remediate::remediate(g, a).await,
        Command::Codify(a) => codify::codify(g, a).await,
        Command::Ack(a) => ack::ack(g, a).await,
        Command::Preview(a) => preview::preview(g, a).await,
        Command::Config(ConfigCommand::Validate(a)) => validate::validate(g, a).await,
        Command::Completions { shell } => {
            let mut cmd = Cli::command();
            clap_complete::generate(*shell, &mut cmd, "driftguard", &mut std::io::stdout());
            Ok(EXIT_OK)
        }
        Command::Serve(a) => serve::serve(g, a).await,
        Command::Mcp => mcp::mcp(g).await,
    }
}

/// Whether to color: `--color`, else a terminal without `NO_COLOR`.
pub(crate) fn color_enabled(choice: ColorChoice, tty: bool) -> bool {
    match choice {
        ColorChoice::Always => true,
        ColorChoice::Never => false,
        ColorChoice::Auto => tty && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty()),
    }
}

/// The style of what goes to stdout.
pub(crate) fn stdout_style(g: &Global) -> Style {
    Style {
        color: color_enabled(g.color, std::io::stdout().is_terminal()),
    }
}

pub(crate) fn print_machine<T: serde::Serialize>(format: Format, v: &T) -> Result<()> {
    match format {
        Format::Json => println!("{}", serde_json::to_string_pretty(v)?),
        Format::Yaml => print!("{}", serde_yaml::to_string(v)?),
        Format::Table => {}
    }
    Ok(())
}
