//! The configuration file (`driftguard.yaml`): its model, loading, validation, and the plan
//! the programs run on.
//!
//! Loading is two steps ([`Config::load`]): the YAML is deserialized with unknown keys refused
//! (a key or type error is reported with its file, line and column, e.g.
//! `driftguard.yaml:12:5: environments[0].git: unknown field `rf`, expected one of ...`), then
//! the values are checked together ([`Config::validate`]), which reports every problem found,
//! each with the line of the key at fault.
//!
//! Keys are camelCase. The snake_case keys that the `server:` section and the notifiers used
//! to have still load, and each one found gives a warning ([`Config::warnings`]), e.g.
//! `driftguard.yaml:14: server.poll_interval: snake_case keys are deprecated; write
//! pollInterval`.
//!
//! Relative paths in the file are relative to the folder holding the file. They are resolved
//! in one place, [`Config::plan`], which makes the typed plan ([`ResolvedConfig`]: the
//! [`ServerPlan`], an [`EnvironmentPlan`] per environment, the [`StorePlan`], the
//! [`SecretKeyPlan`]) that validation checks and that setup and the service take their parts
//! of. The reference of every key, `docs/config-reference.md`, is generated from the model
//! ([`reference_markdown`]).
//!
//! The files: `file` and `server` (the model), `keys` (deprecated keys), `load`, `locate` (a
//! key's line), `validate/` (one file per concern), `plan` (the plan's types), `resolve` (the
//! plan made), `reference` (the generated reference).

pub mod discover;
mod file;
mod keys;
mod load;
mod locate;
mod plan;
mod reference;
mod resolve;
mod server;
mod validate;

use std::fmt;
use std::path::PathBuf;

pub use file::*;
pub use locate::locate;
pub use plan::*;
pub use reference::{json_schema, reference_markdown, UndocumentedKeys};
pub use server::*;

/// A problem in the configuration, with its location.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub struct ConfigProblem {
    /// The file.
    pub file: String,
    /// 1-based line (0: unknown).
    pub line: usize,
    /// 1-based column (0: unknown).
    pub column: usize,
    /// The key at fault (`environments[0].git`), if known.
    pub path: Option<String>,
    /// What is wrong.
    pub message: String,
}

impl fmt::Display for ConfigProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.file)?;
        if self.line > 0 {
            write!(f, ":{}", self.line)?;
            if self.column > 0 {
                write!(f, ":{}", self.column)?;
            }
        }
        f.write_str(": ")?;
        if let Some(p) = &self.path {
            write!(f, "{p}: ")?;
        }
        f.write_str(&self.message)
    }
}

/// A configuration that could not be loaded: every problem found.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub struct ConfigError {
    /// The problems, in file order.
    pub problems: Vec<ConfigProblem>,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let lines: Vec<String> = self.problems.iter().map(ToString::to_string).collect();
        f.write_str(&lines.join("\n"))
    }
}

/// A loaded configuration: the file's model, as written (see [`Config::plan`] for what it
/// resolves to).
#[derive(Clone, Debug)]
pub struct Config {
    /// The file's content.
    pub file: ConfigFile,
    /// The file's path, as given.
    pub path: PathBuf,
    /// The folder relative paths are resolved against.
    pub base: PathBuf,
    /// What loading found that still works but should change (deprecated snake_case keys), in
    /// file order. Programs show them: the CLI on stderr, `driftguard serve` in its log.
    pub warnings: Vec<ConfigProblem>,
}

impl Config {
    /// The plan: every path resolved against the file's folder, defaults applied, each
    /// environment's part ready for its sources. The one place the file's paths are resolved.
    pub fn plan(&self) -> ResolvedConfig {
        resolve::plan(self)
    }

    /// The environment named `name`, as written.
    pub fn environment(&self, name: &str) -> Option<&EnvironmentConfig> {
        self.file.environments.iter().find(|e| e.name == name)
    }
}

#[cfg(test)]
mod tests;
