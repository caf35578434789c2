//! Reading the file: YAML to the model with unknown keys refused, deprecated keys found, and
//! the values checked together on the plan they resolve to.

use std::path::{Path, PathBuf};

use super::{
    keys, locate, validate, Config, ConfigError, ConfigFile, ConfigProblem, ResolvedConfig,
};

impl Config {
    /// Reads, parses and validates a file.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = read(path)?;
        Config::from_text(path, &text)
    }

    /// Reads and parses a file, checking keys and types only (not that the files it names
    /// exist): enough for commands that only read the store.
    pub fn load_unchecked(path: &Path) -> Result<Config, ConfigError> {
        let text = read(path)?;
        Config::parse(path, &text)
    }

    fn parse(path: &Path, text: &str) -> Result<Config, ConfigError> {
        let name = path.display().to_string();
        let file: ConfigFile = if text.trim().is_empty() {
            ConfigFile::default()
        } else {
            serde_yaml::from_str(text).map_err(|e| ConfigError {
                problems: vec![yaml_problem(&name, &e)],
            })?
        };
        let base = path
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .map_or_else(|| PathBuf::from("."), Path::to_path_buf);
        Ok(Config {
            file,
            path: path.to_path_buf(),
            base,
            warnings: key_warnings(&name, text),
        })
    }

    /// Parses and validates text read from `path`.
    pub fn from_text(path: &Path, text: &str) -> Result<Config, ConfigError> {
        Config::checked(path, text).map(|(config, _)| config)
    }

    /// Parses `text`, resolves it and validates the plan: the configuration and its plan, or
    /// every problem with its line.
    fn checked(path: &Path, text: &str) -> Result<(Config, ResolvedConfig), ConfigError> {
        let config = Config::parse(path, text)?;
        let plan = config.plan();
        let mut problems = config.validate_plan(&plan);
        if problems.is_empty() {
            return Ok((config, plan));
        }
        for p in &mut problems {
            if p.line == 0 {
                if let Some(key) = &p.path {
                    p.line = locate(text, key).unwrap_or(0);
                }
            }
        }
        problems.sort_by_key(|p| p.line);
        Err(ConfigError { problems })
    }

    /// A configuration made from flags alone (no file): paths relative to the current folder.
    pub fn from_flags(file: ConfigFile) -> Config {
        Config {
            file,
            path: PathBuf::from("(flags)"),
            base: PathBuf::from("."),
            warnings: Vec::new(),
        }
    }

    /// Checks the values together, on the plan they resolve to; returns every problem (lines
    /// are filled in by the caller).
    pub fn validate(&self) -> Vec<ConfigProblem> {
        self.validate_plan(&self.plan())
    }

    /// Checks the values together, `plan` being this configuration's [`Config::plan`]: for a
    /// caller that goes on with the plan it checked (lines are filled in by the caller).
    pub fn validate_plan(&self, plan: &ResolvedConfig) -> Vec<ConfigProblem> {
        validate::validate(self, plan)
    }
}

impl ResolvedConfig {
    /// Reads, parses, resolves and validates a file: its plan, resolved once (what
    /// `driftguard serve` and `driftguard mcp` run on). Problems are those of [`Config::load`].
    pub fn load(path: &Path) -> Result<ResolvedConfig, ConfigError> {
        let text = read(path)?;
        Config::checked(path, &text).map(|(_, plan)| plan)
    }
}

fn read(path: &Path) -> Result<String, ConfigError> {
    std::fs::read_to_string(path).map_err(|e| ConfigError {
        problems: vec![ConfigProblem {
            file: path.display().to_string(),
            line: 0,
            column: 0,
            path: None,
            message: format!("cannot read the configuration: {}", io_message(&e)),
        }],
    })
}

/// A warning per deprecated snake_case key of `text`, a document the model accepted. Keys are
/// found in the parsed YAML, lines by [`locate`].
fn key_warnings(file: &str, text: &str) -> Vec<ConfigProblem> {
    let Ok(doc) = serde_yaml::from_str::<serde_yaml::Value>(text) else {
        return Vec::new();
    };
    let mut out: Vec<ConfigProblem> = keys::snake_case_keys(&doc)
        .into_iter()
        .map(|k| ConfigProblem {
            file: file.to_owned(),
            line: locate(text, &k.path).unwrap_or(0),
            column: 0,
            message: format!("snake_case keys are deprecated; write {}", k.camel),
            path: Some(k.path),
        })
        .collect();
    out.sort_by_key(|p| p.line);
    out
}

fn io_message(e: &std::io::Error) -> String {
    match e.kind() {
        std::io::ErrorKind::NotFound => "no such file".into(),
        std::io::ErrorKind::PermissionDenied => "permission denied".into(),
        _ => e.to_string(),
    }
}

/// Turns a serde_yaml error into a located problem (`file:line:col: path: message`).
fn yaml_problem(file: &str, e: &serde_yaml::Error) -> ConfigProblem {
    let (line, column) = e.location().map_or((0, 0), |l| (l.line(), l.column()));
    let msg = e.to_string();
    let msg = match msg.rfind(" at line ") {
        Some(i) => msg[..i].to_owned(),
        None => msg,
    };
    // serde_yaml writes `path: message`; keep the path apart
    let (path, message) = match msg.split_once(": ") {
        Some((p, m))
            if !p.contains(' ')
                && p.chars()
                    .all(|c| c.is_alphanumeric() || "[]._-".contains(c)) =>
        {
            (Some(p.to_owned()), m.to_owned())
        }
        _ => (None, msg),
    };
    ConfigProblem {
        file: file.to_owned(),
        line,
        column,
        path,
        message,
    }
}
