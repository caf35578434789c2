//! `driftguard config validate`.

use std::path::Path;

use anyhow::{anyhow, Result};
use driftguard_cli::{EXIT_ERROR, EXIT_OK};
use driftguard_server::config::Config;

use crate::args::Global;
use crate::plan::{config_path, print_warnings};

pub(crate) fn validate(g: &Global, file: Option<&Path>) -> Result<u8> {
    let path = file
        .map(Path::to_path_buf)
        .or_else(|| config_path(g))
        .ok_or_else(|| anyhow!("no configuration file: pass one, or --config FILE"))?;
    match Config::load(&path) {
        Ok(c) => {
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
