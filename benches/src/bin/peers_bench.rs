//! DriftGuard against its peers' diff engines at size (issue #32): on the test cluster, the
//! 500/5,000/20,000-object sets of `live_bench` (namespaces `dg-bench-<n>`, created once with
//! `kubectl apply --server-side` and kept), one full live scan each by every engine, as a
//! process of its own: `driftguard scan` (the release binary, SQLite store), Argo CD's
//! gitops-engine and Flux's `fluxcd/pkg/ssa` through `benches/peers` (one run per mode), and
//! `kubectl diff`, client- and server-side. Prints a Markdown table: wall time, peak RSS (and
//! per object), objects each engine flags right after apply (false drifts), and the ratio to
//! DriftGuard, all from this one run.
//!
//! ```sh
//! benches/peers/build.sh                      # the peers (Go, from the module proxy)
//! cargo build --release -p driftguard-cli -p driftguard-benches --bin driftguard --bin peers_bench
//! target/release/peers_bench [SIZES]          # default 500,5000,20000
//! ```
//!
//! `DRIFTGUARD_PEERS` is the folder of the peers' binaries (default
//! `~/.cache/driftguard/peers/bin`), `DRIFTGUARD_BIN` the driftguard binary (default
//! `target/release/driftguard`), `PEERS_KUBECTL_DIFF_MAX` the largest size `kubectl diff` runs
//! at (default 5000: at 20,000 objects it takes many minutes), `PEERS_DRIFTGUARD_ONLY` runs
//! DriftGuard alone and keeps its configs (to profile it). Peak RSS is `ru_maxrss` through
//! GNU time (`/usr/bin/time`, Debian's `time` package).

use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Instant;

use driftguard_benches::{live_manifests, BoxError, TestCluster};
use serde_json::Value;

/// One engine's run on one size.
struct Measured {
    engine: String,
    seconds: f64,
    peak_kb: u64,
    flagged: Option<usize>,
    note: String,
}

/// Runs `program` under GNU time, its arguments and environment set by `setup`; answers
/// (wall seconds, peak RSS kB, stdout). Exit codes 0 to 2 are answers (drift found), above
/// them failures.
fn timed(
    program: impl AsRef<OsStr>,
    work: &Path,
    setup: impl FnOnce(&mut Command),
) -> Result<(f64, u64, String), BoxError> {
    let rss = work.join("rss.txt");
    let _ = std::fs::remove_file(&rss);
    let program = program.as_ref();
    let mut cmd = Command::new("/usr/bin/time");
    cmd.arg("-f").arg("%M").arg("-o").arg(&rss).arg(program);
    setup(&mut cmd);
    let started = Instant::now();
    let out = cmd
        .stderr(Stdio::piped())
        .stdout(Stdio::piped())
        .output()
        .map_err(|e| format!("/usr/bin/time (Debian's `time` package): {e}"))?;
    let seconds = started.elapsed().as_secs_f64();
    let peak = std::fs::read_to_string(&rss)
        .ok()
        .and_then(|t| t.lines().last().and_then(|l| l.trim().parse().ok()))
        .unwrap_or(0);
    let code = out.status.code().unwrap_or(-1);
    if !(0..=2).contains(&code) {
        return Err(format!(
            "{program:?} exited with {code}: {}",
            String::from_utf8_lossy(&out.stderr)
                .lines()
                .last()
                .unwrap_or_default()
        )
        .into());
    }
    Ok((
        seconds,
        peak,
        String::from_utf8_lossy(&out.stdout).into_owned(),
    ))
}

enum Workdir {
    Temp(tempfile::TempDir),
    Kept(PathBuf),
}

impl Workdir {
    fn path(&self) -> &Path {
        match self {
            Workdir::Temp(t) => t.path(),
            Workdir::Kept(p) => p,
        }
    }
}

fn main() -> Result<(), BoxError> {
    let sizes: Vec<usize> = std::env::args()
        .nth(1)
        .map(|s| s.split(',').filter_map(|x| x.trim().parse().ok()).collect())
        .unwrap_or_else(|| vec![500, 5000, 20000]);
    let c = TestCluster::from_env()?;
    let home = std::env::var("HOME").unwrap_or_else(|_| "/root".into());
    let peers = PathBuf::from(
        std::env::var("DRIFTGUARD_PEERS")
            .unwrap_or_else(|_| format!("{home}/.cache/driftguard/peers/bin")),
    );
    let bin = PathBuf::from(
        std::env::var("DRIFTGUARD_BIN").unwrap_or_else(|_| "target/release/driftguard".into()),
    );
    let diff_max: usize = std::env::var("PEERS_KUBECTL_DIFF_MAX")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(5000);
    // DriftGuard alone, to profile its own scan between full runs
    let driftguard_only = std::env::var_os("PEERS_DRIFTGUARD_ONLY").is_some();
    // `build.sh`'s wrapper runs the binary that has the mode
    let peer_bin = peers.join("peers");
    let work = tempfile::tempdir()?;
    let work = if driftguard_only {
        // kept, with its configs and manifests, for a profiler
        let kept = work.keep();
        eprintln!("manifests and configs kept in {}", kept.display());
        Workdir::Kept(kept)
    } else {
        Workdir::Temp(work)
    };
    let mut table = Vec::new();
    for &n in &sizes {
        let ns = format!("dg-bench-{n}");
        let dir = work.path().join(&ns);
        std::fs::create_dir_all(&dir)?;
        for (name, text) in live_manifests(&ns, n) {
            std::fs::write(dir.join(name), text)?;
        }
        let have = c.live_set_count(&ns);
        if have < n {
            eprintln!("creating {n} objects in {ns} (have {have}) ...");
            let status = c
                .kubectl(&["apply", "--server-side", "-f", &dir.to_string_lossy()])
                .stdout(Stdio::null())
                .status()?;
            if !status.success() {
                return Err(format!("kubectl apply of {ns} failed").into());
            }
            std::thread::sleep(std::time::Duration::from_secs(2));
        }
        let config = work.path().join(format!("driftguard-{n}.yaml"));
        std::fs::write(
            &config,
            format!(
                "environments:\n  - name: bench\n    dir: {}\n    live: {{kubeconfig: {}}}\n    namespaces: [{ns}]\nstore:\n  sqlite: {}\n",
                serde_json::to_string(&dir.to_string_lossy())?,
                serde_json::to_string(&c.kubeconfig.to_string_lossy())?,
                serde_json::to_string(&work.path().join(format!("dg-{n}.db")).to_string_lossy())?,
            ),
        )?;
        let mut rows: Vec<Measured> = Vec::new();
        let scan = |cmd: &mut Command| {
            cmd.args(["scan", "--config"])
                .arg(&config)
                .args(["-o", "json"])
                .env("DRIFTGUARD_SECRET_KEY", "peers-bench");
        };
        // warm-up: discovery, the API server's caches
        let _ = timed(&bin, work.path(), scan)?;
        let (s, kb, out) = timed(&bin, work.path(), scan)?;
        let v: Value = serde_json::from_str(&out).unwrap_or(Value::Null);
        let flagged = v["environments"][0]["drifts"]
            .as_array()
            .map(|d| d.iter().filter(|d| d["kind"] != "orphan").count());
        rows.push(Measured {
            engine: "DriftGuard (`driftguard scan`)".into(),
            seconds: s,
            peak_kb: kb,
            flagged,
            note: String::new(),
        });
        let modes: &[&str] = if driftguard_only {
            &[]
        } else {
            &[
                "argocd-legacy",
                "argocd-structured",
                "argocd-server-side",
                "flux-ssa",
            ]
        };
        for &mode in modes {
            let out_file = work.path().join(format!("{mode}-{n}.json"));
            let r = timed(&peer_bin, work.path(), |cmd| {
                cmd.args(["--mode", mode, "--desired"])
                    .arg(&dir)
                    .arg("--kubeconfig")
                    .arg(&c.kubeconfig)
                    .arg("--out")
                    .arg(&out_file);
            });
            match r {
                Ok((s, kb, _)) => {
                    let v: Value = std::fs::read_to_string(&out_file)
                        .ok()
                        .and_then(|t| serde_json::from_str(&t).ok())
                        .unwrap_or(Value::Null);
                    let objects = v["objects"].as_array();
                    let errors =
                        objects.map_or(0, |o| o.iter().filter(|o| !o["error"].is_null()).count());
                    rows.push(Measured {
                        engine: format!(
                            "{mode} ({} {})",
                            v["engine"].as_str().unwrap_or("?"),
                            v["engine_version"].as_str().unwrap_or("?")
                        ),
                        seconds: s,
                        peak_kb: kb,
                        flagged: objects.map(|o| o.iter().filter(|o| o["drifted"] == true).count()),
                        note: format!(
                            "diff phase {:.2} s{}",
                            v["seconds"].as_f64().unwrap_or(f64::NAN),
                            if errors > 0 {
                                format!(", {errors} objects failed")
                            } else {
                                String::new()
                            }
                        ),
                    });
                }
                Err(e) => rows.push(Measured {
                    engine: mode.into(),
                    seconds: f64::NAN,
                    peak_kb: 0,
                    flagged: None,
                    note: format!("failed: {e}"),
                }),
            }
        }
        for server_side in [false, true] {
            let engine = if server_side {
                "kubectl diff --server-side"
            } else {
                "kubectl diff"
            };
            if driftguard_only {
                continue;
            }
            if n > diff_max {
                rows.push(Measured {
                    engine: engine.into(),
                    seconds: f64::NAN,
                    peak_kb: 0,
                    flagged: None,
                    note: format!("not run above {diff_max} objects (PEERS_KUBECTL_DIFF_MAX)"),
                });
                continue;
            }
            let (s, kb, out) = timed(&c.kubectl, work.path(), |cmd| {
                cmd.env("KUBECONFIG", &c.kubeconfig)
                    .args(["diff", "-f"])
                    .arg(&dir);
                if server_side {
                    cmd.args(["--server-side", "--force-conflicts"]);
                }
            })?;
            let flagged = out.lines().filter(|l| l.starts_with("diff -u")).count();
            rows.push(Measured {
                engine: engine.into(),
                seconds: s,
                peak_kb: kb,
                flagged: Some(flagged),
                note: String::new(),
            });
        }
        let dg = rows[0].seconds;
        let fastest_peer = rows[1..]
            .iter()
            .filter(|r| r.seconds.is_finite())
            .map(|r| r.seconds)
            .fold(f64::INFINITY, f64::min);
        for r in &rows {
            let ran = r.seconds.is_finite();
            table.push(format!(
                "| {n} | {} | {} | {} | {} | {} | {} | {} |",
                r.engine,
                if ran {
                    format!("{:.2} s", r.seconds)
                } else {
                    "—".into()
                },
                if ran && dg > 0.0 {
                    format!("{:.1}×", r.seconds / dg)
                } else {
                    "—".into()
                },
                if ran {
                    format!("{} MB", r.peak_kb / 1024)
                } else {
                    "—".into()
                },
                if ran {
                    format!("{:.1} KB", r.peak_kb as f64 / n as f64)
                } else {
                    "—".into()
                },
                r.flagged.map_or("—".into(), |f| f.to_string()),
                r.note
            ));
        }
        eprintln!(
            "{n} objects: DriftGuard {dg:.2} s; fastest peer {fastest_peer:.2} s ({:.1}×)",
            fastest_peer / dg
        );
    }
    let version = c
        .kubectl(&["version", "-o", "json"])
        .output()
        .ok()
        .and_then(|o| serde_json::from_slice::<Value>(&o.stdout).ok())
        .and_then(|v| v["serverVersion"]["gitVersion"].as_str().map(str::to_owned))
        .unwrap_or_else(|| "?".into());
    println!(
        "### At size: one full live scan each (kube-apiserver {version}, {} cores)\n",
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );
    println!("| objects | engine | wall time (whole process) | × DriftGuard | peak RSS | peak RSS per object | objects flagged right after apply | note |");
    println!("|---|---|---|---|---|---|---|---|");
    for r in table {
        println!("{r}");
    }
    Ok(())
}
