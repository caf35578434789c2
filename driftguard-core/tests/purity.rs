//! The core does no IO: no async runtime, Kubernetes client, Git, database or HTTP crate may
//! appear in its dependency tree. This test asks cargo itself.

use std::process::Command;

#[test]
fn core_depends_on_no_io_crate() {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let out = Command::new(cargo)
        .args([
            "tree",
            "-p",
            "driftguard-core",
            "--edges",
            "normal,build",
            "--prefix",
            "none",
            "--format",
            "{p}",
        ])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("cargo tree runs");
    assert!(
        out.status.success(),
        "cargo tree failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let tree = String::from_utf8_lossy(&out.stdout);
    let crates: Vec<&str> = tree
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .collect();
    assert!(crates.contains(&"driftguard-core"), "{tree}");
    for banned in [
        "tokio",
        "kube",
        "kube-client",
        "gix",
        "mongodb",
        "axum",
        "hyper",
        "reqwest",
        "rusqlite",
        "mio",
    ] {
        assert!(
            !crates.contains(&banned),
            "driftguard-core depends on {banned}:\n{tree}"
        );
    }
}
