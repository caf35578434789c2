//! Terraform check benchmark (issue #35): how long DriftGuard's Terraform source takes to check a
//! root module of 27 resources made of community modules (`benches/terraform/community`: the
//! terraform-aws-modules vpc, security-group and s3-bucket modules, vendored), applied to moto.
//! Each check is what one `driftguard scan` (or one poll of `serve`) runs: the terraform steps
//! of `driftguard_sources::terraform`, then the core's reading of the plans.
//!
//! ```sh
//! scripts/test-services.sh up          # terraform, its provider mirror, moto (and TOFU)
//! . /tmp/driftguard-test/services.env
//! cargo run -p driftguard-benches --bin terraform_bench -- [RUNS] [--tofu]
//! #   RUNS: timed checks of each kind (default 3; the table shows each and the median)
//! #   --tofu: with OpenTofu ($TOFU and $TOFU_CLI_CONFIG_FILE), not terraform ($TERRAFORM)
//! ```
//!
//! The module is committed to a Git repository of its own, applied by the "user" (terraform
//! `init` and `apply` with their own data folder and state), then checked through the Git
//! source, each check by a new `TerraformSource` on the same working folder, as a new
//! `driftguard scan` process would:
//!
//! 1. `first`: a working folder never used (so `init` runs);
//! 2. `unchanged`: nothing changed since;
//! 3. `hand changes`: after changes by hand with boto3 (the bucket's tags, port 22 opened to
//!    the world on the security group, a subnet's Name tag);
//! 4. `new commit`: after a commit changing the bucket's tags in the code (a new revision
//!    written out).
//!
//! Each check's drifts (`kind address direction [fields]`) are printed once, so that runs of
//! different versions can be compared for the same results. The time of each step is printed
//! as a Markdown table, with the load average of the machine before the first check.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use driftguard_benches::BoxError;
use driftguard_core::engine::{Engine, EnvironmentSpec};
use driftguard_core::error::chain;
use driftguard_core::normalize::{Normalizer, SecretKey};
use driftguard_core::ports::PlanSource;
use driftguard_core::state::{Direction, Presence};
use driftguard_core::terraform::{observe, PlanView};
use driftguard_sources::git::{GitRepoSource, GitSourceConfig};
use driftguard_sources::terraform::{TerraformCode, TerraformConfig, TerraformSource};
use driftguard_test_support::{terraform, tofu, MotoServer};

/// `kind address direction [fields]` of every drifted resource.
fn drifts(view: &PlanView) -> Vec<String> {
    view.observations
        .iter()
        .filter(|o| o.presence.drifted())
        .map(|o| {
            let fields = match &o.presence {
                Presence::Both(c) => c.drifted_paths().join(","),
                _ => String::new(),
            };
            format!(
                "{} {} {} [{fields}]",
                o.id.kind,
                o.id.name,
                o.evidence.unwrap_or(Direction::Unknown)
            )
        })
        .collect()
}

fn git(dir: &Path, args: &[&str]) -> Result<(), BoxError> {
    let out = Command::new("git")
        .args(args)
        .current_dir(dir)
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("GIT_AUTHOR_NAME", "Bench")
        .env("GIT_AUTHOR_EMAIL", "bench@example.com")
        .env("GIT_COMMITTER_NAME", "Bench")
        .env("GIT_COMMITTER_EMAIL", "bench@example.com")
        .output()?;
    if !out.status.success() {
        return Err(format!("git {args:?}: {}", String::from_utf8_lossy(&out.stderr)).into());
    }
    Ok(())
}

fn copy_dir(from: &Path, to: &Path) -> Result<(), BoxError> {
    std::fs::create_dir_all(to)?;
    for e in std::fs::read_dir(from)? {
        let e = e?;
        let target = to.join(e.file_name());
        if e.file_type()?.is_dir() {
            copy_dir(&e.path(), &target)?;
        } else {
            std::fs::copy(e.path(), target)?;
        }
    }
    Ok(())
}

/// The user's own `init` and `apply` (their data folder and state, outside DriftGuard's).
fn user_apply(bin: &Path, cli: &Path, tmp: &Path, repo: &Path) -> Result<(), BoxError> {
    let state = format!(
        "-backend-config=path={}",
        tmp.join("state.tfstate").display()
    );
    let vars = format!("-var-file={}", tmp.join("vars.tfvars").display());
    for args in [
        vec!["init", "-input=false", "-no-color", state.as_str()],
        vec![
            "apply",
            "-auto-approve",
            "-input=false",
            "-no-color",
            vars.as_str(),
        ],
    ] {
        let out = Command::new(bin)
            .args(&args)
            .current_dir(repo)
            .env("TF_CLI_CONFIG_FILE", cli)
            .env("TF_DATA_DIR", tmp.join("user-data"))
            .env("CHECKPOINT_DISABLE", "1")
            .env("TF_IN_AUTOMATION", "1")
            .output()?;
        if !out.status.success() {
            return Err(format!(
                "{} {args:?}: {}",
                bin.display(),
                String::from_utf8_lossy(&out.stderr)
            )
            .into());
        }
    }
    Ok(())
}

fn secs(d: Duration) -> String {
    format!("{:.1}", d.as_secs_f64())
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> Result<(), BoxError> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let mut runs = 3usize;
    let mut open_tofu = false;
    for a in &args {
        match a.as_str() {
            "--tofu" => open_tofu = true,
            n => {
                runs = n
                    .parse()
                    .map_err(|_| format!("not a number of runs: {n}"))?
            }
        }
    }
    let runs = runs.max(1);
    // the provider reads its credentials from DriftGuard's environment (moto takes any)
    std::env::set_var("AWS_ACCESS_KEY_ID", "testing");
    std::env::set_var("AWS_SECRET_ACCESS_KEY", "testing");
    let t = if open_tofu { tofu() } else { terraform() };
    let bin = t.bin.clone();
    let moto = MotoServer::start();
    let tmp = tempfile::tempdir()?;
    let dir = tmp.path();
    std::fs::write(
        dir.join("vars.tfvars"),
        format!("endpoint = \"{}\"\n", moto.url()),
    )?;
    let repo = dir.join("repo");
    let module = Path::new(env!("CARGO_MANIFEST_DIR")).join("terraform/community");
    copy_dir(&module, &repo)?;
    // the security-group module is the one the Terraform e2e test vendors (same release): one copy
    let security_group = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../examples/terraform-modules/modules/security-group");
    copy_dir(&security_group, &repo.join("modules/security-group"))?;
    git(&repo, &["init", "-q", "-b", "main"])?;
    git(&repo, &["add", "-A"])?;
    git(&repo, &["commit", "-q", "-m", "community modules"])?;
    let started = Instant::now();
    user_apply(&bin, &t.cli_config, dir, &repo)?;
    eprintln!("applied in {}", secs(started.elapsed()));
    let version = Command::new(&bin).arg("version").output()?;
    let version = String::from_utf8_lossy(&version.stdout)
        .lines()
        .find(|l| l.starts_with("Terraform v") || l.starts_with("OpenTofu v"))
        .unwrap_or("?")
        .to_owned();

    let engine = Engine::new(
        EnvironmentSpec::new("bench"),
        Normalizer::new(SecretKey::new(b"bench".to_vec())),
    );
    let git_cache = tempfile::tempdir()?;
    let source = Arc::new(
        GitRepoSource::open(GitSourceConfig::new(
            repo.display().to_string(),
            git_cache.path(),
        ))
        .await?,
    );
    let source_for = |work: &Path| {
        let mut c = TerraformConfig::new(
            TerraformCode::Git {
                source: Arc::clone(&source),
                path: String::new(),
            },
            work,
        );
        c.binary = Some(bin.clone());
        c.cli_config_file = Some(t.cli_config.clone());
        c.var_files = vec![dir.join("vars.tfvars").display().to_string()];
        c.backend_config = vec![format!("path={}", dir.join("state.tfstate").display())];
        c.timeout = Duration::from_secs(600);
        TerraformSource::new(c)
    };
    // one check by a new source (a new process) on `work`
    let check = |work: PathBuf| {
        let src = source_for(&work);
        let engine = &engine;
        async move {
            src.fetch().await.map_err(|e| chain(&e))?;
            let started = Instant::now();
            let run = src.plan().await.map_err(|e| chain(&e))?;
            let took = started.elapsed();
            let view = observe(engine, &run, &Default::default()).map_err(|e| e.to_string())?;
            Ok::<_, String>((took, view))
        }
    };
    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    let mut rows: Vec<(&str, Vec<Duration>, Vec<String>, usize)> = Vec::new();

    let mut times = Vec::new();
    let mut last = (Vec::new(), 0);
    for i in 0..runs {
        let (took, view) = check(dir.join(format!("work-first-{i}"))).await?;
        times.push(took);
        last = (drifts(&view), view.observations.len());
    }
    rows.push(("first (init)", times, std::mem::take(&mut last.0), last.1));

    let work = dir.join("work");
    check(work.clone()).await?;
    let mut times = Vec::new();
    for _ in 0..runs {
        let (took, view) = check(work.clone()).await?;
        times.push(took);
        last = (drifts(&view), view.observations.len());
    }
    rows.push(("unchanged", times, std::mem::take(&mut last.0), last.1));

    moto.boto3(
        r#"
import boto3, os
e = os.environ["ENDPOINT"]
s3 = boto3.client("s3", endpoint_url=e); ec2 = boto3.client("ec2", endpoint_url=e)
s3.put_bucket_tagging(Bucket="bench-logs", Tagging={"TagSet": [{"Key": "team", "Value": "hand"}]})
sg = ec2.describe_security_groups(Filters=[{"Name": "group-name", "Values": ["web-*"]}])
ec2.authorize_security_group_ingress(GroupId=sg["SecurityGroups"][0]["GroupId"],
    IpPermissions=[{"IpProtocol": "tcp", "FromPort": 22, "ToPort": 22,
                    "IpRanges": [{"CidrIp": "0.0.0.0/0"}]}])
subnets = ec2.describe_subnets(Filters=[{"Name": "cidr-block", "Values": ["10.40.12.0/24"]}])
ec2.create_tags(Resources=[subnets["Subnets"][0]["SubnetId"]],
    Tags=[{"Key": "Name", "Value": "renamed-by-hand"}])
"#,
    );
    let mut times = Vec::new();
    for _ in 0..runs {
        let (took, view) = check(work.clone()).await?;
        times.push(took);
        last = (drifts(&view), view.observations.len());
    }
    rows.push(("hand changes", times, std::mem::take(&mut last.0), last.1));

    let mut times = Vec::new();
    for i in 0..runs {
        let main_tf = repo.join("main.tf");
        let text = std::fs::read_to_string(&main_tf)?;
        // the VPC's tags (the module passes them to its subnets, route tables, ...)
        let text = if i == 0 {
            text.replacen(
                "team = \"platform\"\n",
                "team = \"platform\"\n    cost = \"c0\"\n",
                1,
            )
        } else {
            text.replace(
                &format!("cost = \"c{}\"", i - 1),
                &format!("cost = \"c{i}\""),
            )
        };
        std::fs::write(&main_tf, text)?;
        git(
            &repo,
            &["commit", "-q", "-a", "-m", &format!("logs: cost c{i}")],
        )?;
        let (took, view) = check(work.clone()).await?;
        times.push(took);
        last = (drifts(&view), view.observations.len());
    }
    rows.push(("new commit", times, std::mem::take(&mut last.0), last.1));

    println!("{version}, {runs} run(s) of each check, load average before: {load}");
    println!("| check | median s | each run, s | resources | drifts |");
    println!("| --- | --- | --- | --- | --- |");
    for (name, times, drifted, resources) in &rows {
        let each: Vec<String> = times.iter().map(|d| secs(*d)).collect();
        println!(
            "| {name} | {} | {} | {resources} | {} |",
            secs(median(times.clone())),
            each.join(", "),
            drifted.len()
        );
    }
    for (name, _, drifted, _) in &rows {
        println!("\n{name}:");
        for d in drifted {
            println!("  {d}");
        }
    }
    Ok(())
}
