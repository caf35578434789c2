//! `driftguard`: one-shot drift scans (a CI guardrail), history queries, explain.
//!
//! Exit codes: 0 no drift, 2 drift found (at or above `--fail-on`), 1 error.

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{anyhow, bail, Context, Result};
use chrono::{DateTime, Utc};
use clap::{Args, CommandFactory, Parser, Subcommand, ValueEnum};
use driftguard_cli::config::{
    Config, ConfigFile, DirConfig, EnvironmentConfig, GitConfig, LiveConfig, OneOrMany,
};
use driftguard_cli::output::{self, EnvResult, ScanOutput, Style};
use driftguard_cli::setup::{self, DeferredStore, StoreChoice, SystemClock};
use driftguard_cli::{EXIT_DRIFT, EXIT_ERROR, EXIT_OK};
use driftguard_core::duration::{Since, SinceError};
use driftguard_core::engine::{Engine, Scanner};
use driftguard_core::id::ObjectRef;
use driftguard_core::names::UnknownName;
use driftguard_core::normalize::Normalizer;
use driftguard_core::ports::{Clock, DriftStore};
use driftguard_core::query::{DriftQuery, DriftStatus, EventQuery};
use driftguard_core::severity::Severity;
use driftguard_core::state::{Direction, Drift, DriftKind, EventKind};

/// Detects configuration drift between Git and Kubernetes clusters.
#[derive(Debug, Parser)]
#[command(name = "driftguard", version, about, propagate_version = true)]
#[command(after_help = "Exit codes: 0 no drift, 2 drift found (at or above --fail-on), 1 error.")]
struct Cli {
    #[command(flatten)]
    global: Global,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Args)]
struct Global {
    /// Configuration file (default: ./driftguard.yaml when it exists).
    #[arg(
        short,
        long,
        global = true,
        env = "DRIFTGUARD_CONFIG",
        value_name = "FILE"
    )]
    config: Option<PathBuf>,
    /// SQLite store file (default: .driftguard/driftguard.db next to the configuration).
    #[arg(long, global = true, value_name = "FILE")]
    store: Option<PathBuf>,
    /// Keep no history: every scan is a first scan.
    #[arg(long, global = true, conflicts_with = "store")]
    no_store: bool,
    /// Print only results and errors.
    #[arg(short, long, global = true)]
    quiet: bool,
    /// More logging on stderr (-v info, -vv debug, -vvv trace).
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    verbose: u8,
    /// Colors: auto (a terminal, and NO_COLOR unset), always, never.
    #[arg(long, global = true, value_enum, default_value_t = ColorChoice::Auto)]
    color: ColorChoice,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
enum ColorChoice {
    Auto,
    Always,
    Never,
}

#[derive(Clone, Copy, Debug, Default, ValueEnum, PartialEq, Eq)]
enum Format {
    #[default]
    Table,
    Json,
    Yaml,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Scans environments once and prints what drifted.
    Scan(ScanArgs),
    /// Lists drifts kept in the store.
    Drifts(DriftsArgs),
    /// The events of one object (`[env:]Kind[.group]/[namespace/]name`).
    History(ObjectArgs),
    /// Lists drift events kept in the store.
    Events(EventsArgs),
    /// Explains one object's drift: field diff, who changed each field, commit, classification.
    Explain(ObjectArgs),
    /// Configuration file commands.
    #[command(subcommand)]
    Config(ConfigCommand),
    /// Prints shell completions.
    Completions {
        /// The shell.
        shell: clap_complete::Shell,
    },
    /// Runs the server (REST API, continuous detection, metrics, notifications).
    Serve(ServeArgs),
}

#[derive(Debug, Args)]
struct ServeArgs {
    /// Address to listen on (default: server.listen, 127.0.0.1:8080).
    #[arg(long, value_name = "ADDR")]
    listen: Option<String>,
}

#[derive(Debug, Subcommand)]
enum ConfigCommand {
    /// Checks a configuration file and prints every problem with its location.
    Validate {
        /// The file (default: --config, or ./driftguard.yaml).
        file: Option<PathBuf>,
    },
}

#[derive(Debug, Args)]
struct ScanArgs {
    /// Environments to scan (default: all in the configuration). Without a configuration: the
    /// name given to the flags' environment.
    #[arg(short, long = "env", value_name = "NAME")]
    env: Vec<String>,
    /// Desired side: a Git repository URL or local path.
    #[arg(long, value_name = "URL|PATH", conflicts_with = "dir")]
    git: Option<String>,
    /// Branch, tag or commit of --git.
    #[arg(long = "ref", value_name = "REF", requires = "git")]
    reference: Option<String>,
    /// Folder inside the --git repository.
    #[arg(long, value_name = "PATH", requires = "git")]
    path: Option<String>,
    /// Desired side: a plain folder of manifests.
    #[arg(long, value_name = "DIR")]
    dir: Option<PathBuf>,
    /// Live side: a kubeconfig file (like kubectl).
    #[arg(long, value_name = "FILE", conflicts_with = "live_dump")]
    kubeconfig: Option<PathBuf>,
    /// Live side: the kubeconfig context.
    #[arg(long, value_name = "NAME", conflicts_with = "live_dump")]
    context: Option<String>,
    /// Namespaces to read (repeatable; default: all).
    #[arg(short, long, value_name = "NS")]
    namespace: Vec<String>,
    /// Live side: a dump (`kubectl get -o yaml` output), repeatable.
    #[arg(long, value_name = "FILE")]
    live_dump: Vec<PathBuf>,
    /// File holding the Secret hashing key.
    #[arg(long, value_name = "FILE")]
    secret_key_file: Option<PathBuf>,
    /// Output format.
    #[arg(short, long, value_enum, default_value_t = Format::Table)]
    output: Format,
    /// Print field-level diffs (Secret values are never shown).
    #[arg(long)]
    diff: bool,
    /// Exit 2 only for drift at or above this severity.
    #[arg(long, value_name = "SEVERITY", default_value = "low", value_parser = parse_severity)]
    fail_on: Severity,
}

#[derive(Debug, Args)]
struct DriftsArgs {
    /// Environment.
    #[arg(short, long = "env")]
    env: Option<String>,
    /// Kubernetes kind.
    #[arg(long)]
    kind: Option<String>,
    /// Namespace.
    #[arg(short, long)]
    namespace: Option<String>,
    /// Name (glob).
    #[arg(long)]
    name: Option<String>,
    /// open, resolved or all.
    #[arg(long, default_value = "open", value_parser = parse_status)]
    status: DriftStatus,
    /// Minimum severity.
    #[arg(long, value_parser = parse_severity)]
    severity: Option<Severity>,
    /// Direction (forward, reverse, conflict, unknown).
    #[arg(long, value_parser = parse_direction)]
    direction: Option<Direction>,
    /// Kind of drift (modified, missing, orphan).
    #[arg(long, value_parser = parse_drift_kind)]
    drift: Option<DriftKind>,
    /// At most this many.
    #[arg(long, default_value_t = 100)]
    limit: usize,
    /// Output format.
    #[arg(short, long, value_enum, default_value_t = Format::Table)]
    output: Format,
}

#[derive(Debug, Args)]
struct EventsArgs {
    /// Environment.
    #[arg(short, long = "env")]
    env: Option<String>,
    /// Event kind (detected, changed, resolved).
    #[arg(long, value_parser = parse_event_kind)]
    kind: Option<EventKind>,
    /// Only events since: a duration back (`30m`, `2h`, `7d`; a bare number is seconds) or an
    /// RFC 3339 time.
    #[arg(long, value_parser = parse_since)]
    since: Option<DateTime<Utc>>,
    /// At most this many.
    #[arg(long, default_value_t = 100)]
    limit: usize,
    /// Output format.
    #[arg(short, long, value_enum, default_value_t = Format::Table)]
    output: Format,
}

#[derive(Debug, Args)]
struct ObjectArgs {
    /// The object: `[env:]Kind[.group]/[namespace/]name`, e.g. `prod:Deployment/shop/web`.
    object: String,
    /// Environment (instead of the `env:` prefix).
    #[arg(short, long = "env")]
    env: Option<String>,
    /// Output format.
    #[arg(short, long, value_enum, default_value_t = Format::Table)]
    output: Format,
}

fn parse_severity(s: &str) -> Result<Severity, UnknownName> {
    s.parse()
}
fn parse_status(s: &str) -> Result<DriftStatus, UnknownName> {
    s.parse()
}
fn parse_direction(s: &str) -> Result<Direction, UnknownName> {
    s.parse()
}
fn parse_drift_kind(s: &str) -> Result<DriftKind, UnknownName> {
    s.parse()
}
fn parse_event_kind(s: &str) -> Result<EventKind, UnknownName> {
    s.parse()
}
fn parse_since(s: &str) -> Result<DateTime<Utc>, SinceError> {
    Ok(s.parse::<Since>()?.at(Utc::now()))
}

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            // usage errors exit 1 (2 means drift); help and version exit 0
            let code = if e.use_stderr() { EXIT_ERROR } else { EXIT_OK };
            let _ = e.print();
            return ExitCode::from(code);
        }
    };
    init_logging(&cli.global);
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the runtime: {e}");
            return ExitCode::from(EXIT_ERROR);
        }
    };
    match rt.block_on(run(cli)) {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            match e.downcast_ref::<driftguard_cli::config::ConfigError>() {
                // one line per problem
                Some(ce) => {
                    for p in &ce.problems {
                        eprintln!("error: {p}");
                    }
                }
                None => eprintln!("error: {}", setup::one_line(e.as_ref())),
            }
            ExitCode::from(EXIT_ERROR)
        }
    }
}

fn init_logging(g: &Global) {
    use tracing_subscriber::EnvFilter;
    let level = if g.quiet {
        "error"
    } else {
        match g.verbose {
            0 => "warn",
            1 => "info",
            2 => "debug",
            _ => "trace",
        }
    };
    let filter = if g.verbose == 0 {
        // the kube client logs connection failures as errors: the CLI reports them itself
        EnvFilter::try_from_default_env()
            .unwrap_or_else(|_| EnvFilter::new(format!("{level},kube_client=off,kube=off")))
    } else {
        EnvFilter::new(level)
    };
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(color_enabled(g.color, std::io::stderr().is_terminal()))
        .with_target(false)
        .try_init();
}

fn color_enabled(choice: ColorChoice, tty: bool) -> bool {
    match choice {
        ColorChoice::Always => true,
        ColorChoice::Never => false,
        ColorChoice::Auto => tty && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty()),
    }
}

fn stdout_style(g: &Global) -> Style {
    Style {
        color: color_enabled(g.color, std::io::stdout().is_terminal()),
    }
}

async fn run(cli: Cli) -> Result<u8> {
    let g = &cli.global;
    match &cli.command {
        Command::Scan(a) => scan(g, a).await,
        Command::Drifts(a) => drifts(g, a).await,
        Command::History(a) => history(g, a).await,
        Command::Events(a) => events(g, a).await,
        Command::Explain(a) => explain(g, a).await,
        Command::Config(ConfigCommand::Validate { file }) => validate(g, file.as_deref()),
        Command::Completions { shell } => {
            let mut cmd = Cli::command();
            clap_complete::generate(*shell, &mut cmd, "driftguard", &mut std::io::stdout());
            Ok(EXIT_OK)
        }
        Command::Serve(a) => serve(g, a).await,
    }
}

/// The configuration file to use: --config, else ./driftguard.yaml when it exists.
fn config_path(g: &Global) -> Option<PathBuf> {
    g.config.clone().or_else(|| {
        let p = PathBuf::from("driftguard.yaml");
        p.is_file().then_some(p)
    })
}

fn load_config(path: &Path) -> Result<Config> {
    Ok(Config::load(path)?)
}

/// The configuration for query commands: the file if any, else an empty one (store in ./).
fn query_config(g: &Global) -> Result<Config> {
    match config_path(g) {
        Some(p) => Ok(Config::load_unchecked(&p)?),
        None => Ok(Config::from_flags(ConfigFile::default())),
    }
}

fn validate(g: &Global, file: Option<&Path>) -> Result<u8> {
    let path = file
        .map(Path::to_path_buf)
        .or_else(|| config_path(g))
        .ok_or_else(|| anyhow!("no configuration file: pass one, or --config FILE"))?;
    match Config::load(&path) {
        Ok(c) => {
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

/// Builds the configuration of a scan: the file (with flag overrides) or flags alone.
fn scan_config(g: &Global, a: &ScanArgs) -> Result<(Config, Vec<String>)> {
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
            let selected: Vec<String> = if a.env.is_empty() {
                config
                    .file
                    .environments
                    .iter()
                    .map(|e| e.name.clone())
                    .collect()
            } else {
                for n in &a.env {
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
            if selected.is_empty() {
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
            }
            Ok((config, selected))
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
                ..EnvironmentConfig::default()
            };
            let config = Config::from_flags(ConfigFile {
                environments: vec![env],
                ..ConfigFile::default()
            });
            let problems = config.validate();
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
            Ok((config, vec![name]))
        }
    }
}

/// A spinner on stderr for scans that take more than a moment (only on a terminal).
struct Progress {
    stop: Arc<AtomicBool>,
    message: Arc<Mutex<String>>,
    handle: Option<std::thread::JoinHandle<()>>,
}

impl Progress {
    fn start(enabled: bool) -> Progress {
        let stop = Arc::new(AtomicBool::new(false));
        let message = Arc::new(Mutex::new(String::new()));
        let handle = enabled.then(|| {
            let stop = stop.clone();
            let message = message.clone();
            std::thread::spawn(move || {
                let frames = ['|', '/', '-', '\\'];
                let mut i = 0usize;
                let mut shown = false;
                // only after a moment
                for _ in 0..5 {
                    if stop.load(Ordering::Relaxed) {
                        return;
                    }
                    std::thread::sleep(Duration::from_millis(100));
                }
                while !stop.load(Ordering::Relaxed) {
                    let m = message.lock().map(|m| m.clone()).unwrap_or_default();
                    eprint!("\r\x1b[2K{} {m}", frames[i % frames.len()]);
                    shown = true;
                    i += 1;
                    std::thread::sleep(Duration::from_millis(100));
                }
                if shown {
                    eprint!("\r\x1b[2K");
                }
            })
        });
        Progress {
            stop,
            message,
            handle,
        }
    }

    fn set(&self, m: String) {
        if let Ok(mut g) = self.message.lock() {
            *g = m;
        }
    }

    fn finish(mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(h) = self.handle.take() {
            let _ = h.join();
        }
    }
}

async fn scan(g: &Global, a: &ScanArgs) -> Result<u8> {
    let (config, selected) = scan_config(g, a)?;
    let choice = StoreChoice::from_config(&config, g.store.as_deref(), g.no_store);
    let key = setup::secret_key(&config, a.secret_key_file.as_deref(), &choice)?;
    let existing = !matches!(&choice, StoreChoice::Sqlite(p) if !p.exists());
    let read_store = choice.open_read().await?;
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    let progress = Progress::start(!g.quiet && std::io::stderr().is_terminal());
    let mut results = Vec::new();
    let mut failed = Vec::new();
    let mut batches = Vec::new();
    for name in &selected {
        let env = config
            .environment(name)
            .ok_or_else(|| anyhow!("no environment `{name}`"))?;
        progress.set(format!("scanning {name}..."));
        tracing::info!(environment = %name, "scanning");
        let outcome = async {
            let git = setup::git_source(&config, env).await?;
            let live = setup::live_source(&config, env).await?;
            let deferred = Arc::new(DeferredStore::new(read_store.clone()));
            let engine = Engine::new(env.spec(), Normalizer::new(key.key.clone()));
            let scanner = Scanner::new(engine, git, live, deferred.clone(), clock.clone());
            let report = scanner
                .scan()
                .await
                .map_err(|e| anyhow!("environment {name}: {}", setup::one_line(&e)))?;
            anyhow::Ok((report, deferred.take()))
        }
        .await;
        match outcome {
            Ok((report, b)) => {
                results.push(EnvResult::from_report(&report));
                batches.extend(b);
            }
            Err(e) => failed.push(setup::one_line(e.as_ref())),
        }
    }
    progress.finish();
    // store what the successful scans saw
    if !batches.is_empty() && choice != StoreChoice::Memory {
        let store: Arc<dyn DriftStore> = if existing {
            read_store.clone()
        } else {
            choice.open_write().await?
        };
        if let Some((path, k)) = &key.create {
            setup::write_key_file(path, k)?;
        }
        for b in &batches {
            store.commit(b).await.map_err(|e| {
                anyhow!(
                    "cannot store the scan ({}): {}",
                    choice.describe(),
                    setup::one_line(&e)
                )
            })?;
        }
        if let Some(retention) = config.retention() {
            // what is older than the retention goes; a failure only delays that to the next scan
            if let Err(e) =
                driftguard_server::retention::prune_once(store.as_ref(), clock.as_ref(), retention)
                    .await
            {
                tracing::warn!("cannot prune the history: {}", setup::one_line(&e));
            }
        }
    }
    let now = clock.now();
    let style = stdout_style(g);
    match a.output {
        Format::Json | Format::Yaml => {
            let out = ScanOutput {
                environments: results.clone(),
                failed: failed.clone(),
            };
            print_machine(a.output, &out)?;
        }
        Format::Table => {
            let drifts: Vec<&Drift> = results.iter().flat_map(|r| r.drifts.iter()).collect();
            if drifts.is_empty() {
                if !failed.is_empty() && results.is_empty() {
                    // nothing scanned: errors only
                } else if !g.quiet {
                    let tracked: usize = results.iter().map(|r| r.summary.counts.tracked).sum();
                    println!(
                        "No drift: {tracked} objects in sync in {} environment{}.",
                        results.len(),
                        if results.len() == 1 { "" } else { "s" }
                    );
                }
            } else {
                print!("{}", output::drift_table(&drifts, now, style));
                if a.diff {
                    println!();
                    print!("{}", output::diffs(&drifts, style));
                }
            }
            let resolved: Vec<&Drift> = results.iter().flat_map(|r| r.resolved.iter()).collect();
            if !resolved.is_empty() && !g.quiet {
                println!();
                println!("Resolved since the last scan:");
                for d in resolved {
                    println!(
                        "  {} {} {} ({} {}, {})",
                        d.id.environment,
                        output::kind_label(d),
                        d.id.namespaced_name(),
                        d.kind,
                        d.direction,
                        d.resolution.map(|r| r.to_string()).unwrap_or_default()
                    );
                }
            }
            if !drifts.is_empty() && !g.quiet {
                let per_env: Vec<String> = results
                    .iter()
                    .map(|r| format!("{}: {}", r.environment, r.drifts.len()))
                    .collect();
                println!();
                println!(
                    "{} drift{} ({}).",
                    drifts.len(),
                    if drifts.len() == 1 { "" } else { "s" },
                    per_env.join(", ")
                );
            }
        }
    }
    let mut manifest_errors = false;
    for r in &results {
        for e in &r.errors {
            manifest_errors = true;
            eprintln!("warning: {}: {e}", r.environment);
        }
        if !g.quiet {
            for n in &r.notes {
                tracing::info!(environment = %r.environment, "{n}");
            }
        }
    }
    for f in &failed {
        eprintln!("error: {f}");
    }
    if !failed.is_empty() {
        return Ok(EXIT_ERROR);
    }
    let failing = results
        .iter()
        .flat_map(|r| r.drifts.iter())
        .any(|d| d.severity >= a.fail_on);
    Ok(if failing {
        EXIT_DRIFT
    } else if manifest_errors {
        EXIT_ERROR
    } else {
        EXIT_OK
    })
}

fn print_machine<T: serde::Serialize>(format: Format, v: &T) -> Result<()> {
    match format {
        Format::Json => println!("{}", serde_json::to_string_pretty(v)?),
        Format::Yaml => print!("{}", serde_yaml::to_string(v)?),
        Format::Table => {}
    }
    Ok(())
}

async fn query_store(g: &Global) -> Result<Arc<dyn DriftStore>> {
    let config = query_config(g)?;
    let choice = StoreChoice::from_config(&config, g.store.as_deref(), g.no_store);
    Ok(choice.open_read().await?)
}

async fn drifts(g: &Global, a: &DriftsArgs) -> Result<u8> {
    let store = query_store(g).await?;
    let q = DriftQuery {
        environment: a.env.clone(),
        kind: a.kind.clone(),
        namespace: a.namespace.clone(),
        name: a.name.clone(),
        drift: a.drift,
        direction: a.direction,
        min_severity: a.severity,
        status: a.status,
        limit: a.limit,
        ..DriftQuery::default()
    };
    let page = store
        .drifts(&q)
        .await
        .map_err(|e| anyhow!("cannot read drifts: {}", setup::one_line(&e)))?;
    match a.output {
        Format::Table => {
            if page.items.is_empty() {
                if !g.quiet {
                    println!("No drifts.");
                }
            } else {
                let refs: Vec<&Drift> = page.items.iter().collect();
                print!(
                    "{}",
                    output::drift_table(&refs, Utc::now(), stdout_style(g))
                );
                if page.total > page.items.len() && !g.quiet {
                    println!("({} of {} shown)", page.items.len(), page.total);
                }
            }
        }
        f => print_machine(f, &page.items)?,
    }
    Ok(EXIT_OK)
}

async fn events(g: &Global, a: &EventsArgs) -> Result<u8> {
    let store = query_store(g).await?;
    let q = EventQuery {
        environment: a.env.clone(),
        kind: a.kind,
        since: a.since,
        limit: a.limit,
        ..EventQuery::default()
    };
    let page = store
        .events(&q)
        .await
        .map_err(|e| anyhow!("cannot read events: {}", setup::one_line(&e)))?;
    match a.output {
        Format::Table => {
            if page.items.is_empty() {
                if !g.quiet {
                    println!("No events.");
                }
            } else {
                print!("{}", output::events_table(&page.items, stdout_style(g)));
            }
        }
        f => print_machine(f, &page.items)?,
    }
    Ok(EXIT_OK)
}

/// Finds the episodes of the object a reference names (an absent group or namespace means
/// any, see [`ObjectRef`]), open ones first, then the most recently updated.
async fn find_object(
    store: &dyn DriftStore,
    reference: &str,
    env_flag: Option<&str>,
) -> Result<Vec<Drift>> {
    let mut r = ObjectRef::parse(reference)?;
    if r.environment.is_none() {
        r.environment = env_flag.map(str::to_owned);
    }
    let page = store
        .drifts(&r.drift_query())
        .await
        .map_err(|e| anyhow!("cannot read drifts: {}", setup::one_line(&e)))?;
    let Some(id) = r.pick(page.items.iter().map(|d| &d.id))? else {
        return Ok(Vec::new());
    };
    let mut items: Vec<Drift> = page.items.into_iter().filter(|d| d.id == id).collect();
    // prefer open episodes, then the most recent
    items.sort_by(|a, b| {
        b.is_open()
            .cmp(&a.is_open())
            .then(b.updated_at.cmp(&a.updated_at))
    });
    Ok(items)
}

async fn history(g: &Global, a: &ObjectArgs) -> Result<u8> {
    let store = query_store(g).await?;
    let found = find_object(store.as_ref(), &a.object, a.env.as_deref()).await?;
    let Some(first) = found.first() else {
        if a.output == Format::Table {
            if !g.quiet {
                println!(
                    "No history for {}: it never drifted (or was never scanned).",
                    a.object
                );
            }
        } else {
            print_machine(a.output, &Vec::<()>::new())?;
        }
        return Ok(EXIT_OK);
    };
    let events = store
        .history(&first.id, 10_000)
        .await
        .map_err(|e| anyhow!("cannot read history: {}", setup::one_line(&e)))?;
    match a.output {
        Format::Table => print!("{}", output::events_table(&events, stdout_style(g))),
        f => print_machine(f, &events)?,
    }
    Ok(EXIT_OK)
}

async fn explain(g: &Global, a: &ObjectArgs) -> Result<u8> {
    let store = query_store(g).await?;
    let found = find_object(store.as_ref(), &a.object, a.env.as_deref()).await?;
    let Some(d) = found.first() else {
        if a.output == Format::Table {
            if !g.quiet {
                println!(
                    "{}: no drift recorded (in sync as of the last scan, or never scanned).",
                    a.object
                );
            }
        } else {
            print_machine(a.output, &serde_json::Value::Null)?;
        }
        return Ok(EXIT_OK);
    };
    match a.output {
        Format::Table => print!("{}", output::explain(d, Utc::now(), stdout_style(g))),
        f => print_machine(f, d)?,
    }
    Ok(EXIT_OK)
}

/// How often `serve` prunes history older than `store.retention`.
const PRUNE_EVERY: std::time::Duration = std::time::Duration::from_secs(3600);

async fn serve(g: &Global, a: &ServeArgs) -> Result<u8> {
    use driftguard_server::{config::ServerConfig, metrics::Metrics, supervisor::Supervisor};
    let path = config_path(g).ok_or_else(|| {
        anyhow!("serve needs a configuration file: --config FILE (or driftguard.yaml here)")
    })?;
    let config = load_config(&path)?;
    if config.file.environments.is_empty() {
        bail!("{}: no environments to watch", path.display());
    }
    let mut server_cfg: ServerConfig = config.file.server.clone().unwrap_or_default();
    server_cfg
        .notifiers
        .extend(config.file.notifications.iter().cloned());
    // like every path of the file, a CA file is relative to the file's folder
    for n in &mut server_cfg.notifiers {
        if let driftguard_server::config::NotifierConfig::Email {
            ca_file: Some(ca), ..
        } = n
        {
            *ca = config.resolve(ca);
        }
    }
    let env_var = |k: &str| std::env::var(k).ok();
    let tokens = server_cfg.resolve_tokens(&env_var)?;
    let webhook_secret = server_cfg.resolve_webhook_secret(&env_var)?;
    let (addr, note) = server_cfg.effective_listen(a.listen.as_deref(), !tokens.is_empty())?;
    if let Some(n) = note {
        tracing::warn!("{n}");
    }
    let choice = StoreChoice::from_config(&config, g.store.as_deref(), g.no_store);
    let key = setup::secret_key(&config, None, &choice)?;
    let store = choice.open_write().await?;
    if let Some((p, k)) = &key.create {
        setup::write_key_file(p, k)?;
    }
    let metrics = Arc::new(Metrics::new());
    let cancel = tokio_util::sync::CancellationToken::new();
    let built = driftguard_server::notify::build_notifiers_marked(
        &server_cfg.notifiers,
        metrics.clone(),
        server_cfg.public_url.clone(),
        cancel.clone(),
        &env_var,
        Some(store.clone()),
    )?;
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    // what was still queued when the server last stopped goes out first
    match driftguard_server::notify::resend_undelivered(&built.notifiers, &*store, clock.now())
        .await
    {
        Ok(0) => {}
        Ok(n) => tracing::info!(
            events = n,
            "queued again the events not delivered before the last stop"
        ),
        Err(e) => tracing::warn!(error = %e, "cannot read which events were not delivered"),
    }
    let mut envs = Vec::new();
    for env in &config.file.environments {
        let git = setup::git_source(&config, env).await?;
        let live = setup::live_source(&config, env).await?;
        let engine = Engine::new(env.spec(), Normalizer::new(key.key.clone()));
        let mut scanner = Scanner::new(engine, git, live, store.clone(), clock.clone());
        for n in &built.notifiers {
            scanner = scanner.with_notifier(n.clone());
        }
        envs.push(Arc::new(driftguard_server::Environment::new(
            Arc::new(scanner),
            server_cfg.poll_interval.0,
            server_cfg.full_scan_interval.0,
        )));
    }
    let state = driftguard_server::AppState::builder(store, envs, metrics)
        .tokens(tokens)
        .webhook_secret(webhook_secret)
        .clock(clock)
        .config(&server_cfg)
        .build();
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .with_context(|| format!("cannot listen on {addr}"))?;
    if !g.quiet {
        eprintln!("driftguard: serving on http://{addr}");
    }
    let supervisor = Supervisor::start(&state, cancel.clone());
    let pruner = config.retention().map(|retention| {
        driftguard_server::retention::spawn_pruner(
            state.store.clone(),
            state.clock.clone(),
            retention,
            PRUNE_EVERY,
            cancel.clone(),
        )
    });
    let stop = cancel.clone();
    // SIGINT (Ctrl-C) and SIGTERM (how Kubernetes stops a pod) both shut down gracefully
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .context("cannot listen for SIGTERM")?;
    let shutdown = async move {
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = term.recv() => {}
            _ = stop.cancelled() => {}
        }
    };
    let served = driftguard_server::run(listener, state, shutdown).await;
    cancel.cancel();
    supervisor.shutdown(server_cfg.shutdown_grace.0).await;
    built.flush(server_cfg.shutdown_grace.0).await;
    if let Some(p) = pruner {
        let _ = p.await;
    }
    served.with_context(|| format!("server on {addr} failed"))?;
    Ok(EXIT_OK)
}
