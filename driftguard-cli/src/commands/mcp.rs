//! `driftguard mcp`: the service built from the configuration, serving MCP on stdin/stdout.

use anyhow::{anyhow, Result};
use driftguard_cli::EXIT_OK;
use driftguard_server::service::{ServeOptions, Service};

use crate::args::Global;
use crate::plan::{config_path, load_plan};

/// Builds the service from the configuration and serves MCP on stdio until the client closes
/// the session. Stdout carries the protocol only; logs go to stderr.
pub(crate) async fn mcp(g: &Global) -> Result<u8> {
    let path = config_path(g).ok_or_else(|| {
        anyhow!("mcp needs a configuration file: --config FILE (or driftguard.yaml here)")
    })?;
    let plan = load_plan(&path)?;
    let options = ServeOptions {
        listen: None,
        store: g.store.clone(),
        no_store: g.no_store,
    };
    let service = Service::build_plan(&plan, &options).await?;
    service.run_mcp_stdio().await?;
    Ok(EXIT_OK)
}
