//! Discovery over the fixtures of `examples/discovery`: the exact environments and problems
//! each object gives.

mod argocd;
mod flux;

use std::path::{Path, PathBuf};

use driftguard_core::ignore::{IgnoreRule, JsonPointer};
use driftguard_core::selector::ObjectSelector;
use serde::Deserialize;
use serde_json::Value;

use super::{Discovered, DiscoveryContext, GitCredential};
use crate::config::{LiveConfig, RenderConfig};

/// The documents of a fixture file, as the API server would return them (JSON).
fn fixture(path: &str) -> Vec<Value> {
    let file = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../examples/discovery")
        .join(path);
    let text = std::fs::read_to_string(&file).expect("the fixture exists");
    serde_yaml::Deserializer::from_str(&text)
        .map(|doc| Value::deserialize(doc).expect("a YAML document"))
        .filter(|v| !v.is_null())
        .collect()
}

fn of_kind(documents: &[Value], kind: &str) -> Vec<Value> {
    documents
        .iter()
        .filter(|d| d.get("kind").and_then(Value::as_str) == Some(kind))
        .cloned()
        .collect()
}

/// Problems as one line each, blocking ones marked.
fn problems(found: &Discovered) -> Vec<String> {
    found
        .problems
        .iter()
        .map(|p| {
            if p.blocking {
                format!("BLOCKS {p}")
            } else {
                p.to_string()
            }
        })
        .collect()
}

fn rule(
    group: Option<&str>,
    kind: Option<&str>,
    name: Option<&str>,
    pointers: &[&str],
    managers: &[&str],
) -> IgnoreRule {
    IgnoreRule {
        selector: ObjectSelector {
            group: group.map(str::to_owned),
            kind: kind.map(str::to_owned),
            namespace: None,
            name: name.map(str::to_owned),
        },
        json_pointers: pointers
            .iter()
            .map(|p| JsonPointer::parse(p).expect("a pointer"))
            .collect(),
        managed_fields_managers: managers.iter().map(|m| (*m).to_owned()).collect(),
    }
}

fn context_live(context: &str) -> LiveConfig {
    LiveConfig {
        context: Some(context.into()),
        ..LiveConfig::default()
    }
}

/// The cluster discovery reads from.
fn home() -> LiveConfig {
    LiveConfig {
        in_cluster: true,
        ..LiveConfig::default()
    }
}

fn jsonnet_command() -> RenderConfig {
    RenderConfig {
        command: vec!["jb-render".into(), "--cluster=prod".into()],
        pass_env: vec!["JSONNET_PATH".into()],
        ..RenderConfig::default()
    }
}

/// What a deployment's discovery configuration would say for these fixtures.
fn context() -> DiscoveryContext {
    let mut ctx = DiscoveryContext::default();
    ctx.clusters.home = home();
    ctx.clusters
        .names
        .insert("prod-eu".into(), context_live("prod-eu"));
    ctx.clusters.servers.insert(
        "https://10.0.12.1:6443".into(),
        context_live("storefront-prod"),
    );
    ctx.plugins
        .insert("jsonnet-bundler-v1.0".into(), jsonnet_command());
    ctx.git_credentials = vec![
        GitCredential {
            url_prefix: "https://git.example.com/".into(),
            token_env: Some("GIT_TOKEN".into()),
            ssh_key: None,
        },
        GitCredential {
            url_prefix: "https://git.example.com/tools/".into(),
            token_env: Some("TOOLS_GIT_TOKEN".into()),
            ssh_key: None,
        },
        GitCredential {
            url_prefix: "git@github.com:acme/".into(),
            token_env: None,
            ssh_key: Some(PathBuf::from("/etc/driftguard/keys/acme")),
        },
        GitCredential {
            url_prefix: "ssh://git@git.example.com/".into(),
            token_env: None,
            ssh_key: Some(PathBuf::from("/etc/driftguard/keys/platform")),
        },
    ];
    ctx
}
