//! What hostile input costs under DriftGuard's limits: time and peak memory (VmHWM) of each
//! case of the hostile-input issue, each measured in a process of its own so that one case's
//! peak does not hide another's.
//!
//! `cargo run --release -p driftguard-benches --bin limits_cost` prints a table; the figures
//! are quoted in `docs/reliability.md`.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use driftguard_core::limits::Limits;
use driftguard_core::manifest::parse_file;
use driftguard_core::ports::{GitSource, GroupVersionKind, LiveScope, LiveSource};
use driftguard_sources::files::{DirSource, DumpSource};

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

const SMALL: &str =
    "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: small, namespace: a}\ndata: {k: v}\n";

/// The cases, by name: what each reads and what it should come to.
const CASES: &[(&str, &str)] = &[
    ("baseline", "the process itself, reading one small manifest"),
    (
        "alias-bomb",
        "a YAML billion laughs (9 levels of 9 aliases)",
    ),
    ("nesting-10k", "10,000 levels of nesting, YAML and JSON"),
    (
        "manifest-100mb",
        "a folder with a 100 MB manifest and a small one (default limits)",
    ),
    (
        "manifest-100mb-raised",
        "the same with maxManifestBytes raised to 128 MiB",
    ),
    ("dump-1m", "a dump of 1,000,000 ConfigMaps (default limits)"),
    (
        "dump-400k",
        "a dump of 400,000 ConfigMaps (under the limits)",
    ),
];

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if let [_, flag, case, dir] = args.as_slice() {
        if flag == "--case" {
            run_case(case, Path::new(dir));
            return;
        }
    }
    let dir = tempfile::tempdir().expect("temp dir");
    prepare(dir.path());
    let exe = std::env::current_exe().expect("own path");
    println!(
        "{:<24} {:>10} {:>12}  outcome",
        "case", "time (ms)", "peak RSS MB"
    );
    for (case, what) in CASES {
        let out = Command::new(&exe)
            .args(["--case", case])
            .arg(dir.path())
            .output()
            .expect("run a case");
        let stdout = String::from_utf8_lossy(&out.stdout);
        let line = stdout.lines().last().unwrap_or("").to_owned();
        if !out.status.success() {
            println!(
                "{case:<24} failed: {} {}",
                out.status,
                String::from_utf8_lossy(&out.stderr)
            );
            continue;
        }
        println!("{line}   ({what})");
    }
}

/// Writes the large inputs once, before any case runs.
fn prepare(dir: &Path) {
    let folder = dir.join("folder");
    std::fs::create_dir_all(&folder).expect("folder");
    std::fs::write(folder.join("a-small.yaml"), SMALL).expect("write");
    let mut big = String::with_capacity(101 * 1024 * 1024);
    big.push_str("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: big, namespace: a}\ndata:\n");
    let mut i = 0;
    while big.len() < 100 * 1024 * 1024 {
        big.push_str(&format!("  k{i}: \"{}\"\n", "x".repeat(100)));
        i += 1;
    }
    std::fs::write(folder.join("b-big.yaml"), big).expect("write");
    dump(&dir.join("dump-1m.json"), 1_000_000);
    dump(&dir.join("dump-400k.json"), 400_000);
}

/// A `kubectl get -o json` list of `n` ConfigMaps.
fn dump(path: &Path, n: usize) {
    use std::io::Write;
    let mut f = std::io::BufWriter::new(std::fs::File::create(path).expect("dump"));
    write!(f, "{{\"apiVersion\":\"v1\",\"kind\":\"List\",\"items\":[").expect("write");
    for i in 0..n {
        if i > 0 {
            write!(f, ",").expect("write");
        }
        write!(
            f,
            "{{\"apiVersion\":\"v1\",\"kind\":\"ConfigMap\",\"metadata\":{{\"name\":\"c{i}\",\"namespace\":\"n{}\",\"uid\":\"u{i}\",\"resourceVersion\":\"{i}\"}},\"data\":{{\"k\":\"v{i}\"}}}}",
            i % 100
        )
        .expect("write");
    }
    write!(f, "]}}").expect("write");
}

fn alias_bomb(levels: usize) -> String {
    let mut s = String::from("  a0: &a0 [lol, lol, lol, lol, lol, lol, lol, lol, lol]\n");
    for i in 1..levels {
        let p = i - 1;
        s.push_str(&format!(
            "  a{i}: &a{i} [*a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}]\n"
        ));
    }
    format!("apiVersion: v1\nkind: ConfigMap\nmetadata: {{name: bomb}}\ndata:\n{s}")
}

fn run_case(case: &str, dir: &Path) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let start = Instant::now();
    let outcome = match case {
        "baseline" => {
            let p = parse_file("small.yaml", SMALL, None);
            format!("{} object(s)", p.objects.len())
        }
        "alias-bomb" => {
            let p = parse_file("bomb.yaml", &alias_bomb(9), None);
            first_error(p.errors.iter().map(|e| e.to_string()))
        }
        "nesting-10k" => {
            let yaml = format!(
                "apiVersion: v1\nkind: ConfigMap\nmetadata: {{name: deep}}\ndata: {}{}\n",
                "[".repeat(10_000),
                "]".repeat(10_000)
            );
            let json = format!(
                "{{\"apiVersion\":\"v1\",\"kind\":\"ConfigMap\",\"metadata\":{{\"name\":\"d\"}},\"data\":{}{}}}",
                "[".repeat(10_000),
                "]".repeat(10_000)
            );
            let a = parse_file("deep.yaml", &yaml, None);
            let b = parse_file("deep.json", &json, None);
            first_error(a.errors.iter().chain(&b.errors).map(|e| e.to_string()))
        }
        "manifest-100mb" | "manifest-100mb-raised" => {
            let mut src = DirSource::new(dir.join("folder"));
            if case.ends_with("raised") {
                src = src.with_limits(Limits {
                    max_manifest_bytes: 128 * 1024 * 1024,
                    ..Limits::default()
                });
            }
            let set = rt.block_on(src.load()).expect("the folder is read");
            format!(
                "{} object(s) read, {}",
                set.objects.len(),
                first_error(set.errors.iter().map(|e| e.to_string()))
            )
        }
        "dump-1m" | "dump-400k" => {
            let file: PathBuf = dir.join(format!("{case}.json"));
            let scope = LiveScope {
                kinds: vec![GroupVersionKind::from_api_version("v1", "ConfigMap")],
                ..LiveScope::default()
            };
            match rt.block_on(DumpSource::new([&file]).snapshot(&scope)) {
                Ok(s) => format!("{} object(s) read", s.objects.len()),
                Err(e) => format!("refused: {e}"),
            }
        }
        other => panic!("unknown case {other}"),
    };
    let ms = start.elapsed().as_secs_f64() * 1000.0;
    let outcome: String = outcome.chars().take(110).collect();
    println!("{case:<24} {ms:>10.1} {:>12.1}  {outcome}", peak_rss_mb());
}

fn first_error(mut errors: impl Iterator<Item = String>) -> String {
    match errors.next() {
        Some(e) => format!("error: {e}"),
        None => "no error".to_owned(),
    }
}

/// Peak resident memory of this process (VmHWM), in MB.
fn peak_rss_mb() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        .map_or(0.0, |kb| kb / 1024.0)
}
