//! DriftGuard's peers on the same objects (issue #32), opt-in: with `DRIFTGUARD_PEERS` (the
//! folder of the binaries `benches/peers/build.sh` builds) and `DRIFTGUARD_PEERS_OUT` (where
//! the results go), a test runs each peer engine on its desired manifests against the test
//! cluster: Argo CD's gitops-engine (`argocd-legacy`, `argocd-structured`,
//! `argocd-server-side`), Flux's `fluxcd/pkg/ssa` (`flux-ssa`) and `kubectl diff`, client-side
//! and server-side. Without the variables nothing runs (the test suite does not build Go).
//!
//! Every engine answers per desired object: drifted or not, missing or not, and the paths of
//! the leaves that differ. `kubectl diff` prints text; its two folders (live and merged) are
//! kept through `KUBECTL_EXTERNAL_DIFF` and compared leaf by leaf here, leaving out what the
//! API server writes on every request (`metadata.generation`, `resourceVersion`,
//! `managedFields`, `creationTimestamp`, `uid`) and `status`, as the peers' own field lists do.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use serde_json::Value;

/// The peer engines, in the order of the tables.
pub const ENGINES: &[&str] = &[
    "argocd-legacy",
    "argocd-structured",
    "argocd-server-side",
    "flux-ssa",
    "kubectl-client",
    "kubectl-server",
];

/// One engine's answer on one desired object.
#[derive(Clone, Debug)]
pub struct Verdict {
    /// The environment (the folder of desired manifests) it was read from.
    pub env: String,
    /// The object's kind.
    pub kind: String,
    /// `namespace/name` (`/name` for a cluster-scoped object).
    pub object: String,
    /// Whether the engine says the live object differs from the desired one.
    pub drifted: bool,
    /// Whether the live object does not exist.
    pub missing: bool,
    /// The differing leaves the engine names.
    pub fields: Vec<String>,
    /// Why the engine could not judge the object.
    pub error: Option<String>,
}

/// One engine over every environment of one phase.
#[derive(Clone, Debug, Default)]
pub struct EngineRun {
    /// The engine (one of [`ENGINES`]).
    pub engine: String,
    /// The library and version it ran (from the binary's build information).
    pub version: String,
    /// Its answers.
    pub verdicts: Vec<Verdict>,
    /// Wall time of the diffs, summed over the environments.
    pub seconds: f64,
    /// The largest peak RSS of one run (kB).
    pub peak_rss_kb: u64,
    /// Why the engine could not run at all (the others go on).
    pub failed: Option<String>,
}

/// The peers, when the variables ask for them.
pub struct Peers {
    bins: PathBuf,
    out: PathBuf,
}

impl Peers {
    /// `Some` when `DRIFTGUARD_PEERS` and `DRIFTGUARD_PEERS_OUT` are set.
    pub fn from_env() -> Option<Peers> {
        let bins = std::env::var_os("DRIFTGUARD_PEERS")?;
        let out = std::env::var_os("DRIFTGUARD_PEERS_OUT")?;
        let out = PathBuf::from(out);
        std::fs::create_dir_all(&out).expect("create DRIFTGUARD_PEERS_OUT");
        Some(Peers {
            bins: bins.into(),
            out,
        })
    }

    /// Where the results go.
    pub fn out(&self) -> &Path {
        &self.out
    }

    /// Runs every engine on every `(environment, folder of desired manifests)` against the
    /// cluster; `phase` names the run's files under the output folder.
    pub fn run_all(
        &self,
        phase: &str,
        desired: &[(String, PathBuf)],
        kubeconfig: &str,
        kubectl: &str,
    ) -> Vec<EngineRun> {
        ENGINES
            .iter()
            .map(|engine| {
                let mut run = EngineRun {
                    engine: (*engine).to_owned(),
                    ..EngineRun::default()
                };
                for (env, dir) in desired {
                    let dest = self.out.join(phase).join(engine).join(env);
                    std::fs::create_dir_all(&dest).expect("create the output folder");
                    let one = match engine.strip_prefix("kubectl-") {
                        Some(side) => {
                            kubectl_diff(kubectl, kubeconfig, dir, side == "server", &dest)
                        }
                        None => self.peer(engine, dir, kubeconfig, &dest),
                    };
                    match one {
                        Ok(mut r) => {
                            for v in &mut r.verdicts {
                                v.env = env.clone();
                            }
                            run.verdicts.extend(r.verdicts);
                            run.seconds += r.seconds;
                            run.peak_rss_kb = run.peak_rss_kb.max(r.peak_rss_kb);
                            run.version = r.version;
                        }
                        Err(e) => {
                            eprintln!("peers: {engine} on {env}: {e}");
                            run.failed.get_or_insert(format!("{env}: {e}"));
                        }
                    }
                }
                run
            })
            .collect()
    }

    fn peer(
        &self,
        mode: &str,
        dir: &Path,
        kubeconfig: &str,
        dest: &Path,
    ) -> Result<EngineRun, String> {
        let out = dest.join("result.json");
        // `build.sh`'s wrapper runs the binary that has the mode
        let bin = self.bins.join("peers");
        let run = Command::new(&bin)
            .args(["--mode", mode, "--desired"])
            .arg(dir)
            .args(["--kubeconfig", kubeconfig, "--out"])
            .arg(&out)
            .output()
            .map_err(|e| format!("{}: {e}", bin.display()))?;
        if !run.status.success() {
            return Err(format!(
                "{} exited with {}: {}",
                bin.display(),
                run.status,
                String::from_utf8_lossy(&run.stderr)
            ));
        }
        let text = std::fs::read_to_string(&out).map_err(|e| format!("{}: {e}", out.display()))?;
        let v: Value =
            serde_json::from_str(&text).map_err(|e| format!("{}: {e}", out.display()))?;
        let verdicts = v["objects"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|o| Verdict {
                env: String::new(),
                kind: o["kind"].as_str().unwrap_or_default().to_owned(),
                object: format!(
                    "{}/{}",
                    o["namespace"].as_str().unwrap_or_default(),
                    o["name"].as_str().unwrap_or_default()
                ),
                drifted: o["drifted"].as_bool().unwrap_or(false),
                missing: o["missing"].as_bool().unwrap_or(false),
                fields: o["fields"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(Value::as_str)
                    .map(str::to_owned)
                    .collect(),
                error: o["error"].as_str().map(str::to_owned),
            })
            .collect();
        Ok(EngineRun {
            engine: mode.to_owned(),
            version: format!(
                "{} {}",
                v["engine"].as_str().unwrap_or("?"),
                v["engine_version"].as_str().unwrap_or("?")
            ),
            verdicts,
            seconds: v["seconds"].as_f64().unwrap_or(0.0),
            peak_rss_kb: v["peak_rss_kb"].as_u64().unwrap_or(0),
            failed: None,
        })
    }
}

/// `kubectl diff -R -f dir` (server-side: `--server-side --force-conflicts`), its live and
/// merged folders kept and compared leaf by leaf.
fn kubectl_diff(
    kubectl: &str,
    kubeconfig: &str,
    dir: &Path,
    server_side: bool,
    dest: &Path,
) -> Result<EngineRun, String> {
    let script = dest.join("keep.sh");
    std::fs::write(
        &script,
        "#!/bin/sh\nrm -rf \"$PEERS_KEEP/live\" \"$PEERS_KEEP/merged\"\n\
         cp -r \"$1\" \"$PEERS_KEEP/live\" && cp -r \"$2\" \"$PEERS_KEEP/merged\"\n",
    )
    .map_err(|e| e.to_string())?;
    make_executable(&script);
    let rss = dest.join("rss");
    let mut cmd = if Path::new("/usr/bin/time").is_file() {
        let mut c = Command::new("/usr/bin/time");
        c.arg("-f").arg("%M").arg("-o").arg(&rss).arg(kubectl);
        c
    } else {
        Command::new(kubectl)
    };
    cmd.args(["diff", "-R", "-f"]).arg(dir);
    if server_side {
        cmd.args(["--server-side", "--force-conflicts"]);
    }
    let started = Instant::now();
    let out = cmd
        .env("KUBECONFIG", kubeconfig)
        .env("KUBECTL_EXTERNAL_DIFF", &script)
        .env("PEERS_KEEP", dest)
        .output()
        .map_err(|e| format!("{kubectl}: {e}"))?;
    let seconds = started.elapsed().as_secs_f64();
    // 0: no difference, 1: differences (the keeping script exits 0, so kubectl does too)
    if out.status.code().is_none_or(|c| c > 1) {
        return Err(format!(
            "kubectl diff exited with {}: {}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    let read = |sub: &str| -> BTreeMap<String, Value> {
        let mut files = BTreeMap::new();
        if let Ok(entries) = std::fs::read_dir(dest.join(sub)) {
            for e in entries.flatten() {
                let text = std::fs::read_to_string(e.path()).unwrap_or_default();
                let v: Value = serde_yaml::from_str(&text).unwrap_or(Value::Null);
                files.insert(e.file_name().to_string_lossy().into_owned(), v);
            }
        }
        files
    };
    let (live, merged) = (read("live"), read("merged"));
    let mut verdicts = Vec::new();
    for (file, m) in &merged {
        let l = live.get(file).filter(|v| !v.is_null());
        let mut fields = Vec::new();
        if let Some(l) = l {
            leaf_diff(&strip(l), &strip(m), String::new(), &mut fields);
        }
        verdicts.push(Verdict {
            env: String::new(),
            kind: m["kind"].as_str().unwrap_or_default().to_owned(),
            object: format!(
                "{}/{}",
                m["metadata"]["namespace"].as_str().unwrap_or_default(),
                m["metadata"]["name"].as_str().unwrap_or_default()
            ),
            drifted: l.is_none() || !fields.is_empty(),
            missing: l.is_none(),
            fields,
            error: None,
        });
    }
    let peak_rss_kb = std::fs::read_to_string(&rss)
        .ok()
        .and_then(|t| t.lines().last().and_then(|l| l.trim().parse().ok()))
        .unwrap_or(0);
    Ok(EngineRun {
        engine: if server_side {
            "kubectl-server"
        } else {
            "kubectl-client"
        }
        .into(),
        version: format!("kubectl {}", kubectl_version(kubectl)),
        verdicts,
        seconds,
        peak_rss_kb,
        failed: None,
    })
}

fn kubectl_version(kubectl: &str) -> String {
    Command::new(kubectl)
        .args(["version", "--client", "-o", "json"])
        .output()
        .ok()
        .and_then(|o| serde_json::from_slice::<Value>(&o.stdout).ok())
        .and_then(|v| v["clientVersion"]["gitVersion"].as_str().map(str::to_owned))
        .unwrap_or_else(|| "?".into())
}

#[cfg(unix)]
fn make_executable(path: &Path) {
    use std::os::unix::fs::PermissionsExt;
    let _ = std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755));
}

/// What the API server writes on every request, and `status`: left out of kubectl's folders.
fn strip(v: &Value) -> Value {
    let mut v = v.clone();
    if let Some(o) = v.as_object_mut() {
        o.remove("status");
        if let Some(m) = o.get_mut("metadata").and_then(Value::as_object_mut) {
            for k in [
                "generation",
                "resourceVersion",
                "managedFields",
                "creationTimestamp",
                "uid",
            ] {
                m.remove(k);
            }
        }
    }
    v
}

/// The paths of the leaves where `a` and `b` differ (`a.b[0].c`).
pub fn leaf_diff(a: &Value, b: &Value, path: String, out: &mut Vec<String>) {
    match (a, b) {
        (Value::Object(x), Value::Object(y)) => {
            let keys: std::collections::BTreeSet<&String> = x.keys().chain(y.keys()).collect();
            for k in keys {
                let p = if path.is_empty() {
                    k.clone()
                } else {
                    format!("{path}.{k}")
                };
                leaf_diff(
                    x.get(k).unwrap_or(&Value::Null),
                    y.get(k).unwrap_or(&Value::Null),
                    p,
                    out,
                );
            }
        }
        (Value::Array(x), Value::Array(y)) => {
            for i in 0..x.len().max(y.len()) {
                leaf_diff(
                    x.get(i).unwrap_or(&Value::Null),
                    y.get(i).unwrap_or(&Value::Null),
                    format!("{path}[{i}]"),
                    out,
                );
            }
        }
        _ if a == b => {}
        _ => out.push(path),
    }
}

/// A field path in one spelling for every engine: a quoted key (`annotations["a/b"]`) becomes
/// a plain segment, a list selector (an index or a merge key) becomes `[]`.
pub fn loose(path: &str) -> String {
    let mut out = String::with_capacity(path.len());
    let mut rest = path.trim_start_matches('.');
    while let Some(open) = rest.find('[') {
        out.push_str(&rest[..open]);
        let after = &rest[open + 1..];
        let Some(close) = after.find(']') else {
            break;
        };
        let inner = &after[..close];
        if inner.starts_with('"') && inner.ends_with('"') && inner.len() >= 2 {
            out.push('.');
            out.push_str(&inner[1..inner.len() - 1]);
        } else {
            out.push_str("[]");
        }
        rest = &after[close + 1..];
    }
    out.push_str(rest);
    out
}

/// Whether two paths name the same field, or one a field inside the other, in any engine's
/// spelling ([`loose`]).
pub fn same_field(a: &str, b: &str) -> bool {
    path_matches(&loose(a), &loose(b))
}

/// A reported path matches an expected one when either is the other or a prefix of it at a
/// segment boundary (`.` or `[`).
pub fn path_matches(reported: &str, expected: &str) -> bool {
    let prefix = |long: &str, short: &str| {
        long == short
            || (long.starts_with(short)
                && matches!(long.as_bytes().get(short.len()), Some(b'.') | Some(b'[')))
    };
    prefix(reported, expected) || prefix(expected, reported)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_of_every_engine_meet() {
        assert_eq!(
            loose("metadata.annotations[\"ingressclass.kubernetes.io/is-default-class\"]"),
            "metadata.annotations.ingressclass.kubernetes.io/is-default-class"
        );
        assert!(same_field(
            "spec.template.spec.containers[controller].image",
            ".spec.template.spec.containers[0].image"
        ));
        assert!(same_field(
            "spec.template.spec.containers[0].env[3].name",
            "spec.template.spec.containers[web].env"
        ));
        assert!(!same_field("spec.replicas", "spec.replicasets"));
        let mut out = Vec::new();
        leaf_diff(
            &serde_json::json!({"a": {"b": [1, 2]}, "c": 1}),
            &serde_json::json!({"a": {"b": [1, 3, 4]}, "c": 1, "d": {"e": true}}),
            String::new(),
            &mut out,
        );
        // an added map is named at its root
        assert_eq!(out, ["a.b[1]", "a.b[2]", "d"]);
    }
}
