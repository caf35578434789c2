//! The command line: flags and subcommands (clap derive), and the parsers of flag values.

use std::path::PathBuf;

use chrono::{DateTime, Utc};
use clap::{Args, Parser, Subcommand, ValueEnum};
use driftguard_core::duration::{Since, SinceError};
use driftguard_core::names::UnknownName;
use driftguard_core::query::DriftStatus;
use driftguard_core::severity::Severity;
use driftguard_core::state::{Direction, DriftKind, EventKind};

/// Detects configuration drift between Git and Kubernetes clusters.
#[derive(Debug, Parser)]
#[command(name = "driftguard", version, about, propagate_version = true)]
#[command(
    after_help = "Exit codes: 0 no drift, 2 drift found (at or above --fail-on; preview: what --fail-on names), 1 error."
)]
pub(crate) struct Cli {
    #[command(flatten)]
    pub(crate) global: Global,
    #[command(subcommand)]
    pub(crate) command: Command,
}

#[derive(Debug, Args)]
pub(crate) struct Global {
    /// Configuration file (default: ./driftguard.yaml when it exists).
    #[arg(
        short,
        long,
        global = true,
        env = "DRIFTGUARD_CONFIG",
        value_name = "FILE"
    )]
    pub(crate) config: Option<PathBuf>,
    /// SQLite store file (default: .driftguard/driftguard.db next to the configuration).
    #[arg(long, global = true, value_name = "FILE")]
    pub(crate) store: Option<PathBuf>,
    /// Keep no history: every scan is a first scan.
    #[arg(long, global = true, conflicts_with = "store")]
    pub(crate) no_store: bool,
    /// Print only results and errors.
    #[arg(short, long, global = true)]
    pub(crate) quiet: bool,
    /// More logging on stderr (-v info, -vv debug, -vvv trace).
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub(crate) verbose: u8,
    /// Colors: auto (a terminal, and NO_COLOR unset), always, never.
    #[arg(long, global = true, value_enum, default_value_t = ColorChoice::Auto)]
    pub(crate) color: ColorChoice,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
pub(crate) enum ColorChoice {
    Auto,
    Always,
    Never,
}

#[derive(Clone, Copy, Debug, Default, ValueEnum, PartialEq, Eq)]
pub(crate) enum Format {
    #[default]
    Table,
    Json,
    Yaml,
}

#[derive(Debug, Subcommand)]
pub(crate) enum Command {
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
    /// Ends drifts: puts the cluster back to Git (`--revert`) or writes the change into Git
    /// (`--adopt`). Shows the server's dry run first; changes nothing without `--yes` (or a
    /// confirmation on a terminal). See docs/remediation.md.
    Remediate(RemediateArgs),
    /// Writes Terraform `import` blocks and the configuration terraform generates for
    /// resources of the account that no state holds (orphans made by hand). Checks the
    /// environment first; prints or writes (--out) the files; with --pull-request commits them
    /// on a new branch, pushes it, opens a pull request (`git.pullRequest`) and records it in
    /// each orphan's history. See docs/terraform.md.
    Codify(CodifyArgs),
    /// What merging a pull request to the GitOps repository would change in each environment,
    /// judged against the drift history: hand changes it would overwrite (and who made them),
    /// drifts it adopts, conflicts, new changes, objects created and pruned. Reads Git, the
    /// cluster and the store; writes nothing (except a pull-request comment with --comment).
    /// See docs/preview.md.
    Preview(PreviewArgs),
    /// Acknowledges drifts ("we know, leave it"), lists or withdraws acknowledgements. An
    /// acknowledged drift stays open and listed; it is not announced again and `scan` leaves
    /// it out of its exit code, until it changes, ends or --until passes.
    Ack(AckArgs),
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
    /// Serves MCP (Model Context Protocol) on stdin/stdout, for AI assistants: tools to list
    /// environments and drifts, explain a drift, read an object's history, scan now and get a
    /// remediation plan (never applied). See docs/mcp.md.
    Mcp,
}

#[derive(Debug, Args)]
pub(crate) struct ServeArgs {
    /// Address to listen on (default: server.listen, 127.0.0.1:8080).
    #[arg(long, value_name = "ADDR")]
    pub(crate) listen: Option<String>,
}

#[derive(Debug, Subcommand)]
pub(crate) enum ConfigCommand {
    /// Checks a configuration file and prints every problem with its location.
    Validate(ValidateArgs),
}

#[derive(Debug, Args)]
pub(crate) struct ValidateArgs {
    /// The file (default: --config, or ./driftguard.yaml).
    pub(crate) file: Option<PathBuf>,
    /// Also discover the environments of Argo CD and Flux (the `discover:` section, or its
    /// defaults) and print, for each of their objects, what it maps to and what cannot be
    /// mapped (Secret values redacted).
    #[arg(long)]
    pub(crate) discover: bool,
    /// With --discover: exit 1 when an object cannot be made an environment (a blocking
    /// problem), not only when the file or the discovery fails.
    #[arg(long, requires = "discover")]
    pub(crate) strict: bool,
}

#[derive(Debug, Args)]
pub(crate) struct ScanArgs {
    /// Environments to scan (default: all in the configuration). Without a configuration: the
    /// name given to the flags' environment.
    #[arg(short, long = "env", value_name = "NAME")]
    pub(crate) env: Vec<String>,
    /// Also scan the environments discovered from Argo CD Applications and Flux
    /// Kustomizations and HelmReleases (the `discover:` section of the configuration, or its
    /// defaults: the default kubeconfig, Argo CD in `argocd`, Flux in every namespace). What
    /// cannot be mapped is printed as warnings; an object that cannot be made an environment
    /// is not scanned, the others are.
    #[arg(long, conflicts_with_all = ["git", "dir", "kubeconfig", "context", "live_dump"])]
    pub(crate) discover: bool,
    /// Desired side: a Git repository URL or local path.
    #[arg(long, value_name = "URL|PATH", conflicts_with = "dir")]
    pub(crate) git: Option<String>,
    /// Branch, tag or commit of --git.
    #[arg(long = "ref", value_name = "REF", requires = "git")]
    pub(crate) reference: Option<String>,
    /// Folder inside the --git repository.
    #[arg(long, value_name = "PATH", requires = "git")]
    pub(crate) path: Option<String>,
    /// Desired side: a plain folder of manifests.
    #[arg(long, value_name = "DIR")]
    pub(crate) dir: Option<PathBuf>,
    /// Live side: a kubeconfig file (like kubectl).
    #[arg(long, value_name = "FILE", conflicts_with = "live_dump")]
    pub(crate) kubeconfig: Option<PathBuf>,
    /// Live side: the kubeconfig context.
    #[arg(long, value_name = "NAME", conflicts_with = "live_dump")]
    pub(crate) context: Option<String>,
    /// Namespaces to read (repeatable; default: all).
    #[arg(short, long, value_name = "NS")]
    pub(crate) namespace: Vec<String>,
    /// Live side: a dump (`kubectl get -o yaml` output), repeatable.
    #[arg(long, value_name = "FILE")]
    pub(crate) live_dump: Vec<PathBuf>,
    /// File holding the Secret hashing key.
    #[arg(long, value_name = "FILE")]
    pub(crate) secret_key_file: Option<PathBuf>,
    /// The API server's audit log (`--audit-log-path`, JSON lines), read on from where the
    /// last scan left it, so that each drift names who made it (every scanned environment;
    /// `audit.logFile` in the configuration).
    #[arg(long, value_name = "FILE")]
    pub(crate) audit_log: Option<PathBuf>,
    /// Output format.
    #[arg(short, long, value_enum, default_value_t = Format::Table)]
    pub(crate) output: Format,
    /// Print field-level diffs (Secret values are never shown).
    #[arg(long)]
    pub(crate) diff: bool,
    /// Exit 2 only for drift at or above this severity.
    #[arg(long, value_name = "SEVERITY", default_value = "low", value_parser = parse_severity)]
    pub(crate) fail_on: Severity,
    /// Count acknowledged drift too for the exit code (by default a drift whose
    /// acknowledgement holds is listed and left out; see `driftguard ack`).
    #[arg(long)]
    pub(crate) include_acknowledged: bool,
}

#[derive(Debug, Args)]
pub(crate) struct PreviewArgs {
    /// The revision merged into (branch, tag, full ref name or commit id).
    #[arg(long, value_name = "REF")]
    pub(crate) base: String,
    /// The revision merged: the pull request's branch, `refs/pull/<n>/head`, a commit id.
    #[arg(long, value_name = "REF")]
    pub(crate) head: String,
    /// Environments (repeatable; default: every one on a Git repository).
    #[arg(short, long = "env", value_name = "NAME")]
    pub(crate) env: Vec<String>,
    /// Output format: table, json, or markdown (a pull-request comment).
    #[arg(short, long, value_enum, default_value_t = PreviewFormat::Table)]
    pub(crate) output: PreviewFormat,
    /// Exit 2 when the preview holds any of these (comma-separated or repeated): `overwrites`
    /// (a hand change undone), `conflicts`, `high` (a finding of high or critical risk).
    #[arg(long, value_enum, value_delimiter = ',', value_name = "WHAT")]
    pub(crate) fail_on: Vec<FailOnArg>,
    /// Post the Markdown as a comment on this pull (merge) request, through the forge of the
    /// environment's `git.pullRequest` settings; a later run edits the same comment.
    #[arg(long, value_name = "NUMBER")]
    pub(crate) comment: Option<u64>,
    /// File holding the Secret hashing key (as `scan`'s).
    #[arg(long, value_name = "FILE")]
    pub(crate) secret_key_file: Option<PathBuf>,
}

#[derive(Clone, Copy, Debug, Default, ValueEnum, PartialEq, Eq)]
pub(crate) enum PreviewFormat {
    #[default]
    Table,
    Json,
    Markdown,
}

#[derive(Clone, Copy, Debug, ValueEnum, PartialEq, Eq)]
pub(crate) enum FailOnArg {
    Overwrites,
    Conflicts,
    High,
}

#[derive(Debug, Args)]
pub(crate) struct AckArgs {
    /// The drift episodes to acknowledge (ids from `driftguard drifts -o json`, the API or the
    /// dashboard).
    #[arg(value_name = "EPISODE")]
    pub(crate) episodes: Vec<String>,
    /// With --all: the environment whose open drifts are all acknowledged (the baseline at
    /// onboarding); with --list: the environment listed.
    #[arg(short, long = "env", value_name = "NAME")]
    pub(crate) env: Option<String>,
    /// Acknowledge every open drift of --env.
    #[arg(long, requires = "env", conflicts_with = "episodes")]
    pub(crate) all: bool,
    /// Why (required to acknowledge).
    #[arg(long, value_name = "TEXT")]
    pub(crate) reason: Option<String>,
    /// Until when: a duration from now (`12h`, `3d`) or an RFC 3339 time (default: until the
    /// drift changes or ends).
    #[arg(long, value_name = "WHEN")]
    pub(crate) until: Option<String>,
    /// Withdraw the acknowledgements of the episodes instead (the drifts are announced again).
    #[arg(long, conflicts_with_all = ["all", "reason", "until"])]
    pub(crate) withdraw: bool,
    /// List the acknowledgements (of --env, else of every environment) and how they stand.
    #[arg(long, conflicts_with_all = ["all", "reason", "until", "withdraw", "episodes"])]
    pub(crate) list: bool,
    /// Output format.
    #[arg(short, long, value_enum, default_value_t = Format::Table)]
    pub(crate) output: Format,
}

#[derive(Debug, Args)]
pub(crate) struct DriftsArgs {
    /// Environment.
    #[arg(short, long = "env")]
    pub(crate) env: Option<String>,
    /// Kubernetes kind.
    #[arg(long)]
    pub(crate) kind: Option<String>,
    /// Namespace.
    #[arg(short, long)]
    pub(crate) namespace: Option<String>,
    /// Name (glob).
    #[arg(long)]
    pub(crate) name: Option<String>,
    /// open, resolved or all.
    #[arg(long, default_value = "open", value_parser = parse_status)]
    pub(crate) status: DriftStatus,
    /// Minimum severity.
    #[arg(long, value_parser = parse_severity)]
    pub(crate) severity: Option<Severity>,
    /// Direction (forward, reverse, conflict, unknown).
    #[arg(long, value_parser = parse_direction)]
    pub(crate) direction: Option<Direction>,
    /// Kind of drift (modified, missing, orphan).
    #[arg(long, value_parser = parse_drift_kind)]
    pub(crate) drift: Option<DriftKind>,
    /// At most this many.
    #[arg(long, default_value_t = 100)]
    pub(crate) limit: usize,
    /// Output format.
    #[arg(short, long, value_enum, default_value_t = Format::Table)]
    pub(crate) output: Format,
}

#[derive(Debug, Args)]
pub(crate) struct EventsArgs {
    /// Environment.
    #[arg(short, long = "env")]
    pub(crate) env: Option<String>,
    /// Event kind (detected, changed, resolved).
    #[arg(long, value_parser = parse_event_kind)]
    pub(crate) kind: Option<EventKind>,
    /// Only events since: a duration back (`30m`, `2h`, `7d`) or an RFC 3339 time.
    #[arg(long, value_parser = parse_since)]
    pub(crate) since: Option<DateTime<Utc>>,
    /// At most this many.
    #[arg(long, default_value_t = 100)]
    pub(crate) limit: usize,
    /// Output format.
    #[arg(short, long, value_enum, default_value_t = Format::Table)]
    pub(crate) output: Format,
}

#[derive(Debug, Args)]
pub(crate) struct ObjectArgs {
    /// The object: `[env:]Kind[.group]/[namespace/]name`, e.g. `prod:Deployment/shop/web`.
    pub(crate) object: String,
    /// Environment (instead of the `env:` prefix).
    #[arg(short, long = "env")]
    pub(crate) env: Option<String>,
    /// Output format.
    #[arg(short, long, value_enum, default_value_t = Format::Table)]
    pub(crate) output: Format,
}

#[derive(Debug, Args)]
#[command(group(clap::ArgGroup::new("action").required(true).args(["revert", "adopt"])))]
pub(crate) struct RemediateArgs {
    /// The objects: `[env:]Kind[.group]/[namespace/]name` (with `--all`: none).
    pub(crate) objects: Vec<String>,
    /// Every open drift matching the filters (`--env`, `--kind`, `--namespace`).
    #[arg(long, conflicts_with = "objects")]
    pub(crate) all: bool,
    /// Environment (instead of the `env:` prefix).
    #[arg(short, long = "env")]
    pub(crate) env: Option<String>,
    /// With `--all`: only this kind.
    #[arg(long, requires = "all")]
    pub(crate) kind: Option<String>,
    /// With `--all`: only this namespace.
    #[arg(short, long, requires = "all")]
    pub(crate) namespace: Option<String>,
    /// Put the cluster back to Git (a reverse drift: apply Git).
    #[arg(long)]
    pub(crate) revert: bool,
    /// Write the cluster's values into Git, on a new branch pushed to the remote.
    #[arg(long)]
    pub(crate) adopt: bool,
    /// Only show what would change (the API server's dry run).
    #[arg(long)]
    pub(crate) dry_run: bool,
    /// Do it without asking.
    #[arg(short, long)]
    pub(crate) yes: bool,
    /// Delete orphans (only tracked ones, or in fully managed namespaces).
    #[arg(long)]
    pub(crate) prune: bool,
    /// Output format.
    #[arg(short, long, value_enum, default_value_t = Format::Table)]
    pub(crate) output: Format,
}

#[derive(Debug, Args)]
pub(crate) struct CodifyArgs {
    /// The orphans, by their id in the cloud (a bucket's name, `sg-…`, `vpc-…`).
    pub(crate) orphans: Vec<String>,
    /// Every orphan of the environment.
    #[arg(long, conflicts_with = "orphans")]
    pub(crate) all: bool,
    /// The Terraform environment (needed when several are configured).
    #[arg(short, long = "env")]
    pub(crate) env: Option<String>,
    /// Write `imports_driftguard.tf` and `generated_driftguard.tf` into this folder (never over
    /// an existing file) instead of printing them.
    #[arg(long)]
    pub(crate) out: Option<std::path::PathBuf>,
    /// Commit the two files into the root module's folder on a new branch, push it, open a
    /// pull request (with `git.pullRequest`) and record it in each orphan's history.
    #[arg(long)]
    pub(crate) pull_request: bool,
    /// Output format.
    #[arg(short, long, value_enum, default_value_t = Format::Table)]
    pub(crate) output: Format,
}

pub(crate) fn parse_severity(s: &str) -> Result<Severity, UnknownName> {
    s.parse()
}
pub(crate) fn parse_status(s: &str) -> Result<DriftStatus, UnknownName> {
    s.parse()
}
pub(crate) fn parse_direction(s: &str) -> Result<Direction, UnknownName> {
    s.parse()
}
pub(crate) fn parse_drift_kind(s: &str) -> Result<DriftKind, UnknownName> {
    s.parse()
}
pub(crate) fn parse_event_kind(s: &str) -> Result<EventKind, UnknownName> {
    s.parse()
}
/// `--since`: a duration back (one unit rule, see `driftguard_core::duration`) or an RFC 3339
/// time.
pub(crate) fn parse_since(s: &str) -> Result<DateTime<Utc>, SinceError> {
    Ok(s.parse::<Since>()?.at(Utc::now()))
}
