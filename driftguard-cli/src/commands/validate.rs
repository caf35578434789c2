//! `driftguard config validate`, and with `--discover` the discovered environments
//! ([`super::config_discover`]).

use anyhow::{anyhow, Result};
use driftguard_cli::{EXIT_ERROR, EXIT_OK};
use driftguard_server::config::{Config, ConfigFile, DiscoverConfig};

use crate::args::{Global, ValidateArgs};
use crate::commands::config_discover;
use crate::plan::{config_path, print_warnings};

pub(crate) async fn validate(g: &Global, a: &ValidateArgs) -> Result<u8> {
    let Some(path) = a.file.clone().or_else(|| config_path(g)) else {
        if a.discover {
            // no file: the discovery's defaults alone
            let config = Config::from_flags(ConfigFile {
                discover: Some(DiscoverConfig::default()),
                ..ConfigFile::default()
            });
            return config_discover::list(g, &config, a.strict).await;
        }
        return Err(anyhow!("no configuration file: pass one, or --config FILE"));
    };
    match Config::load(&path) {
        Ok(mut c) => {
            print_warnings(&c);
            if !g.quiet {
                println!(
                    "{}: ok ({} environment{})",
                    path.display(),
                    c.file.environments.len(),
                    if c.file.environments.len() == 1 {
                        ""
                    } else {
                        "s"
                    }
                );
            }
            if a.discover {
                c.file.discover.get_or_insert_with(DiscoverConfig::default);
                return config_discover::list(g, &c, a.strict).await;
            }
            Ok(EXIT_OK)
        }
        Err(e) => {
            for p in &e.problems {
                eprintln!("{p}");
            }
            eprintln!(
                "{}: {} problem{}",
                path.display(),
                e.problems.len(),
                if e.problems.len() == 1 { "" } else { "s" }
            );
            Ok(EXIT_ERROR)
        }
    }
}
