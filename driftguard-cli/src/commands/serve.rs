//! `driftguard serve`: the configuration and the flags, handed to the server crate.

use anyhow::{anyhow, Result};
use driftguard_cli::EXIT_OK;
use driftguard_server::service::{shutdown_signal, ServeOptions, Service};

use crate::args::{Global, ServeArgs};
use crate::plan::{config_path, load_plan};

/// Builds the service from the configuration and runs it until SIGINT or SIGTERM.
pub(crate) async fn serve(g: &Global, a: &ServeArgs) -> Result<u8> {
    let path = config_path(g).ok_or_else(|| {
        anyhow!("serve needs a configuration file: --config FILE (or driftguard.yaml here)")
    })?;
    let plan = load_plan(&path)?;
    let options = ServeOptions {
        listen: a.listen.clone(),
        store: g.store.clone(),
        no_store: g.no_store,
    };
    let service = Service::build_plan(&plan, &options).await?;
    if !g.quiet {
        eprintln!("driftguard: serving on http://{}", service.address());
    }
    service.run_until(shutdown_signal()?).await?;
    Ok(EXIT_OK)
}
