//! What discovery finds, for people: the warnings of `driftguard scan --discover`, and the
//! listing of `driftguard config validate --discover` (one block per object of the tools:
//! what it maps to, and what cannot be mapped; Secret values redacted).

use anyhow::{anyhow, Result};
use driftguard_cli::{EXIT_ERROR, EXIT_OK};
use driftguard_core::error::chain;
use driftguard_server::config::discover::{Discovered, Tool};
use driftguard_server::config::{Config, EnvironmentConfig, LiveConfig, ResolvedConfig};
use driftguard_server::discover::Discovery;

use crate::args::Global;

/// Discovers the environments of `plan`'s discovery section (the file's environments keep
/// their names: a discovered one of the same name is reported, not scanned).
pub(crate) async fn discover(plan: &ResolvedConfig) -> Result<Discovery> {
    let section = plan
        .discover
        .as_ref()
        .ok_or_else(|| anyhow!("the configuration has no `discover:` section"))?;
    let configured: Vec<String> = plan.environments.iter().map(|e| e.name.clone()).collect();
    Ok(driftguard_server::discover::discover(section, &configured).await?)
}

fn tool(t: Tool) -> &'static str {
    match t {
        Tool::ArgoCd => "Argo CD",
        Tool::Flux => "Flux",
    }
}

/// The tool's object: `Argo CD Application argocd/shop`.
pub(crate) fn object(d: &Discovered) -> String {
    let source = d
        .app
        .source
        .map(|i| format!(" (source {i})"))
        .unwrap_or_default();
    format!(
        "{} {} {}/{}{source}",
        tool(d.app.tool),
        d.app.kind,
        d.app.namespace,
        d.app.name
    )
}

/// On stderr, a `warning:` line per problem of each object, naming the object, its
/// environment, the field and why (`not scanned` for a blocking one), and an `error:` line
/// per thing that could not be read. Whether something could not be read.
pub(crate) fn print_warnings(found: &Discovery) -> bool {
    for p in &found.settings_problems {
        eprintln!("warning: discovery: Argo CD's settings: {p}");
    }
    for d in &found.found {
        let subject = match d.name() {
            Some(env) => format!("{env} ({})", object(d)),
            None => object(d),
        };
        for p in &d.problems {
            let tail = if p.blocking { " (not scanned)" } else { "" };
            eprintln!("warning: {subject}: {p}{tail}");
        }
    }
    for e in &found.errors {
        eprintln!("error: discovery: {e}");
    }
    !found.errors.is_empty()
}

/// `driftguard config validate --discover`: discovers, prints each object's block, and
/// exits 1 when something could not be read or (with `strict`) an object cannot be made an
/// environment.
pub(crate) async fn list(g: &Global, config: &Config, strict: bool) -> Result<u8> {
    let plan = config.plan();
    let found = match discover(&plan).await {
        Ok(f) => f,
        Err(e) => {
            eprintln!("error: {}", chain(e.as_ref()));
            return Ok(EXIT_ERROR);
        }
    };
    for t in &found.tools {
        if !g.quiet {
            println!(
                "{}: {}",
                tool(t.tool),
                if t.installed {
                    "installed"
                } else {
                    "not installed (its kinds are not served)"
                }
            );
        }
    }
    for p in &found.settings_problems {
        println!("Argo CD's settings: {p}");
    }
    for d in &found.found {
        println!();
        print!("{}", block(&d.redacted()));
    }
    let blocked = found
        .found
        .iter()
        .filter(|d| d.environment.is_none())
        .count();
    println!();
    println!(
        "{} object{} discovered: {} environment{}, {blocked} not scanned.",
        found.found.len(),
        if found.found.len() == 1 { "" } else { "s" },
        found.environments.len(),
        if found.environments.len() == 1 {
            ""
        } else {
            "s"
        },
    );
    for e in &found.errors {
        eprintln!("error: discovery: {e}");
    }
    Ok(if !found.errors.is_empty() || (strict && blocked > 0) {
        EXIT_ERROR
    } else {
        EXIT_OK
    })
}

/// One object's block: its environment and what it is made of, the tool's verdict, the
/// problems. `d` is already redacted.
fn block(d: &Discovered) -> String {
    let mut out = match d.name() {
        Some(env) => format!("{env}\n"),
        None => "(not scanned)\n".to_owned(),
    };
    let line = |out: &mut String, key: &str, value: String| {
        let text = format!("  {key:<12} {value}");
        out.push_str(text.trim_end());
        out.push('\n');
    };
    line(&mut out, "object:", object(d));
    line(&mut out, "tool says:", verdict(d));
    if let Some(env) = &d.environment {
        line(&mut out, "source:", source(env));
        line(&mut out, "rendering:", rendering(env));
        line(&mut out, "destination:", destination(env));
        line(
            &mut out,
            "ignore:",
            format!(
                "{} rule{}",
                env.ignore.len(),
                if env.ignore.len() == 1 { "" } else { "s" }
            ),
        );
    }
    if d.problems.is_empty() {
        line(&mut out, "problems:", "none".into());
    } else {
        line(&mut out, "problems:", String::new());
        for p in &d.problems {
            out.push_str(&format!(
                "    {}{p}\n",
                if p.blocking { "BLOCKING " } else { "" }
            ));
        }
    }
    out
}

fn verdict(d: &Discovered) -> String {
    match &d.app.project {
        Some(p) => format!("project {p}, {}", d.app.verdict.summary()),
        None => d.app.verdict.summary(),
    }
}

fn source(env: &EnvironmentConfig) -> String {
    let Some(g) = &env.git else {
        return "none".into();
    };
    let mut s = format!(
        "{} @ {}",
        g.url,
        g.reference
            .as_deref()
            .filter(|r| !r.is_empty())
            .unwrap_or("the default branch")
    );
    s.push_str(&format!(
        ", path {}",
        g.path.as_deref().filter(|p| !p.is_empty()).unwrap_or(".")
    ));
    if g.recurse == Some(false) {
        s.push_str(" (its own files only)");
    }
    if !g.include.is_empty() {
        s.push_str(&format!(", include {}", g.include.join(" ")));
    }
    if !g.exclude.is_empty() {
        s.push_str(&format!(", exclude {}", g.exclude.join(" ")));
    }
    s
}

fn rendering(env: &EnvironmentConfig) -> String {
    if let Some(h) = &env.helm {
        let mut parts = vec![format!(
            "helm chart, release {}",
            h.release_name.as_deref().unwrap_or(&env.name)
        )];
        if !h.value_files.is_empty() {
            parts.push(format!("value files {}", h.value_files.join(" ")));
        }
        if h.values.is_some() {
            parts.push("inline values".into());
        }
        if !h.parameters.is_empty() {
            let names: Vec<&str> = h.parameters.iter().map(|p| p.name.as_str()).collect();
            parts.push(format!("parameters {}", names.join(" ")));
        }
        return parts.join(", ");
    }
    if let Some(r) = &env.render {
        return format!("plugin command `{}`", r.command.join(" "));
    }
    let Some(k) = &env.kustomize else {
        return "directory (a kustomization.yaml in it is built)".into();
    };
    let mut parts = vec!["kustomize".to_owned()];
    if let Some(p) = &k.name_prefix {
        parts.push(format!("namePrefix {p}"));
    }
    if let Some(p) = &k.name_suffix {
        parts.push(format!("nameSuffix {p}"));
    }
    if let Some(n) = &k.namespace {
        parts.push(format!("namespace {n}"));
    }
    if !k.images.is_empty() {
        parts.push(format!("images {}", k.images.join(" ")));
    }
    if !k.patches.is_empty() {
        parts.push(format!("{} patches", k.patches.len()));
    }
    if !k.substitute.is_empty() {
        let vars: Vec<String> = k
            .substitute
            .iter()
            .map(|(name, value)| format!("{name}={value}"))
            .collect();
        parts.push(format!("substitute {}", vars.join(" ")));
    }
    parts.join(", ")
}

fn destination(env: &EnvironmentConfig) -> String {
    let cluster = env.live.as_ref().map_or_else(
        || "the default kubeconfig".to_owned(),
        |l: &LiveConfig| match (&l.kubeconfig, &l.context, l.in_cluster) {
            (_, _, true) => "in-cluster".to_owned(),
            (Some(k), Some(c), _) => format!("kubeconfig {}, context {c}", k.display()),
            (Some(k), None, _) => format!("kubeconfig {}", k.display()),
            (None, Some(c), _) => format!("context {c}"),
            (None, None, _) => "the default kubeconfig".to_owned(),
        },
    );
    let namespace = env
        .helm
        .as_ref()
        .and_then(|h| h.namespace.clone())
        .or_else(|| env.default_namespace.clone());
    match namespace {
        Some(ns) => format!("{cluster}, namespace {ns}"),
        None => cluster,
    }
}
