//! From flags to what a command does: which configuration file, and for `scan`, the
//! configuration the flags make (alone, or as overrides of the file), resolved into its plan,
//! and the environments to scan.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use driftguard_server::config::{
    AuditConfig, Config, ConfigFile, DirConfig, DiscoverConfig, EnvironmentConfig, GitConfig,
    LiveConfig, OneOrMany, ResolvedConfig,
};

use crate::args::{Global, ScanArgs};

/// The configuration file to use: --config, else ./driftguard.yaml when it exists.
pub(crate) fn config_path(g: &Global) -> Option<PathBuf> {
    g.config.clone().or_else(|| {
        let p = PathBuf::from("driftguard.yaml");
        p.is_file().then_some(p)
    })
}

/// Loads and validates a file. Its warnings are left to the caller: `scan` prints them
/// ([`print_warnings`]).
pub(crate) fn load_config(path: &Path) -> Result<Config> {
    Ok(Config::load(path)?)
}

/// Loads, validates and resolves a file: the plan `serve` and `mcp` hand to the service (which
/// logs its warnings).
pub(crate) fn load_plan(path: &Path) -> Result<ResolvedConfig> {
    Ok(ResolvedConfig::load(path)?)
}

/// Prints the configuration's warnings (deprecated keys) on stderr, one `warning: ...` line
/// each.
pub(crate) fn print_warnings(config: &Config) {
    for w in &config.warnings {
        eprintln!("warning: {w}");
    }
}

/// The configuration for query commands: the file if any, else an empty one (store in ./).
pub(crate) fn query_config(g: &Global) -> Result<Config> {
    match config_path(g) {
        Some(p) => {
            let config = Config::load_unchecked(&p)?;
            print_warnings(&config);
            Ok(config)
        }
        None => Ok(Config::from_flags(ConfigFile::default())),
    }
}

/// Builds the configuration of a scan, the file (with flag overrides) or flags alone, and
/// resolves it once: the plan whose environments are scanned.
///
/// With `--discover` the plan has a discovery section (the file's, else the defaults), and
/// the selection is the file's environments, or `--env`'s names unchecked: they may name
/// environments yet to be discovered (the caller checks them once it has).
pub(crate) fn scan_config(g: &Global, a: &ScanArgs) -> Result<(ResolvedConfig, Vec<String>)> {
    let desired_flag = a.git.is_some() || a.dir.is_some();
    let live_flag = a.kubeconfig.is_some() || a.context.is_some() || !a.live_dump.is_empty();
    let file = if g.config.is_some() || !desired_flag {
        config_path(g)
    } else {
        None
    };
    let git = a.git.as_ref().map(|url| GitConfig {
        url: url.clone(),
        reference: a.reference.clone(),
        path: a.path.clone(),
        ..GitConfig::default()
    });
    let live = live_flag.then(|| LiveConfig {
        kubeconfig: a.kubeconfig.clone(),
        context: a.context.clone(),
        in_cluster: false,
        dump: (!a.live_dump.is_empty()).then(|| OneOrMany::Many(a.live_dump.clone())),
    });
    let dir = a.dir.clone().map(DirConfig::Path);
    for (flag, p, want_dir) in a
        .live_dump
        .iter()
        .map(|p| ("--live-dump", p, false))
        .chain(a.kubeconfig.iter().map(|p| ("--kubeconfig", p, false)))
        .chain(a.dir.iter().map(|p| ("--dir", p, true)))
    {
        let ok = if want_dir { p.is_dir() } else { p.is_file() };
        if !ok {
            bail!(
                "{flag}: {} {} does not exist",
                if want_dir { "folder" } else { "file" },
                p.display()
            );
        }
    }
    match file {
        Some(path) => {
            let mut config = load_config(&path)?;
            print_warnings(&config);
            if a.discover {
                config
                    .file
                    .discover
                    .get_or_insert_with(DiscoverConfig::default);
            }
            let selected: Vec<String> = if a.env.is_empty() {
                config
                    .file
                    .environments
                    .iter()
                    .map(|e| e.name.clone())
                    .collect()
            } else {
                for n in a.env.iter().filter(|_| !a.discover) {
                    if config.environment(n).is_none() {
                        let known: Vec<&str> = config
                            .file
                            .environments
                            .iter()
                            .map(|e| e.name.as_str())
                            .collect();
                        bail!(
                            "{}: no environment `{n}` (known: {})",
                            path.display(),
                            known.join(", ")
                        );
                    }
                }
                a.env.clone()
            };
            if selected.is_empty() && !a.discover {
                bail!("{}: no environments to scan", path.display());
            }
            // flags override the file, relative to the current folder
            let cwd = std::env::current_dir().context("cannot read the current folder")?;
            let abs = |p: &Path| {
                if p.is_absolute() {
                    p.to_path_buf()
                } else {
                    cwd.join(p)
                }
            };
            for env in config
                .file
                .environments
                .iter_mut()
                .filter(|e| selected.contains(&e.name))
            {
                if let Some(gc) = &git {
                    let mut gc = gc.clone();
                    if !gc.url.contains("://") {
                        gc.url = abs(Path::new(&gc.url)).display().to_string();
                    }
                    env.git = Some(gc);
                    env.dir = None;
                }
                if let Some(d) = &dir {
                    env.dir = Some(DirConfig::Path(abs(d.path())));
                    env.git = None;
                }
                if let Some(l) = &live {
                    let mut l = l.clone();
                    l.kubeconfig = l.kubeconfig.as_deref().map(abs);
                    l.dump = l
                        .dump
                        .map(|d| OneOrMany::Many(d.paths().iter().map(|p| abs(p)).collect()));
                    env.live = Some(l);
                }
                env.namespaces.extend(a.namespace.iter().cloned());
                if let Some(log) = &a.audit_log {
                    env.audit.get_or_insert_with(AuditConfig::default).log_file = Some(abs(log));
                }
            }
            Ok((config.plan(), selected))
        }
        None if a.discover => {
            // the discovery's defaults alone
            let config = Config::from_flags(ConfigFile {
                discover: Some(DiscoverConfig::default()),
                ..ConfigFile::default()
            });
            Ok((config.plan(), a.env.clone()))
        }
        None => {
            if !desired_flag {
                bail!("no configuration: pass --config FILE (or run where driftguard.yaml is), or --git/--dir with --kubeconfig/--live-dump");
            }
            let name = a.env.first().cloned().unwrap_or_else(|| "default".into());
            let live = live.unwrap_or_default();
            let env = EnvironmentConfig {
                name: name.clone(),
                git,
                dir,
                live: Some(live),
                namespaces: a.namespace.clone(),
                audit: a.audit_log.as_ref().map(|p| AuditConfig {
                    log_file: Some(p.clone()),
                    ..AuditConfig::default()
                }),
                ..EnvironmentConfig::default()
            };
            let config = Config::from_flags(ConfigFile {
                environments: vec![env],
                ..ConfigFile::default()
            });
            let plan = config.plan();
            let problems = config.validate_plan(&plan);
            if let Some(p) = problems.first() {
                bail!(
                    "{}",
                    p.message.clone()
                        + match p.path.as_deref() {
                            Some(path) if path.ends_with("dir") => " (--dir)",
                            Some(path) if path.contains("dump") => " (--live-dump)",
                            _ => "",
                        }
                );
            }
            Ok((plan, vec![name]))
        }
    }
}
