//! Terraform end to end (issue 20): `examples/terraform` (an S3 bucket, a VPC in a local
//! module, a security group and a PostgreSQL instance whose password is a sensitive variable)
//! in a real Git repository, applied with a real terraform (1.11.4, the AWS provider 5.100.0
//! from the image's filesystem mirror) to moto's server, checked by the built `driftguard`
//! binary (`scan`, then `serve` and its API).
//!
//! Right after the apply there is no drift. Then, with boto3 as the hand in the console: the
//! bucket's tags changed, an ingress rule opened to 0.0.0.0/0, the VPC deleted, a bucket made
//! outside Terraform; and a `.tf` change committed and not applied. Each comes out with the
//! right kind, direction and attributes, the ingress rule as high severity, the commit named
//! for the reverse drift. A later `terraform apply` resolves them as `applied` (the bucket
//! made by hand stays an orphan: no apply ends it). The sensitive password (a canary) is in
//! no output, no API answer, no log and no file DriftGuard wrote.
//!
//! Each case runs twice: with terraform and with OpenTofu (1.12.6: the user's applies and
//! DriftGuard's checks with the same binary).
//!
//! Needs terraform and its provider mirror (`scripts/terraform/setup.sh`), OpenTofu and the
//! mirror offered to it (`scripts/opentofu/build.sh`) and moto (`scripts/moto/install.sh`), all
//! run by `scripts/test-services.sh up`: a missing one fails the test, naming it.

mod util;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use driftguard_test_support::{terraform, tofu, MotoServer, Terraform};
use serde_json::Value;
use util::e2e::{free_port, spawn_server};
use util::{copy_dir, repo_root, run_env, Run};
use util::{git_as as git, head};

const CANARY: &str = "CANARY-pw-7d41c9e2";
const KEY: &str = "tf-e2e-secret-key";
const TOKEN: &str = "tf-e2e-token-3c9a";

/// The user's own terraform: `init` and `apply` of the repository's code, with the user's
/// data folder and state (outside DriftGuard's folders).
fn user_apply(t: &Terraform, tmp: &Path, repo: &Path) {
    t.user_apply(
        repo,
        &tmp.join("user-tf-data"),
        &tmp.join("state.tfstate"),
        &tmp.join("secrets.tfvars"),
    );
}

fn env_vars() -> Vec<(&'static str, &'static str)> {
    vec![
        ("AWS_ACCESS_KEY_ID", "testing"),
        ("AWS_SECRET_ACCESS_KEY", "testing"),
        ("AWS_REGION", "us-east-1"),
        ("TF_E2E_KEY", KEY),
        ("TF_E2E_TOKENS", TOKEN),
    ]
}

fn scan(dir: &Path) -> (Run, Duration) {
    let started = Instant::now();
    let run = run_env(
        dir,
        &["scan", "--config", "driftguard.yaml", "-o", "json"],
        &env_vars(),
    );
    (run, started.elapsed())
}

/// `kind name drift direction severity [fields]` of drifts.
fn rows(drifts: &[Value]) -> BTreeSet<String> {
    drifts
        .iter()
        .map(|d| {
            let fields: Vec<&str> = d["fields"]
                .as_array()
                .expect("fields")
                .iter()
                .filter_map(|f| f["path"].as_str())
                .collect();
            format!(
                "{} {} {} {} {} [{}]",
                d["id"]["kind"].as_str().expect("kind"),
                d["id"]["name"].as_str().expect("name"),
                d["kind"].as_str().expect("drift kind"),
                d["direction"].as_str().expect("direction"),
                d["severity"].as_str().expect("severity"),
                fields.join(",")
            )
        })
        .collect()
}

/// The same rows from the API's drift summaries.
fn api_rows(drifts: &[Value]) -> BTreeSet<String> {
    drifts
        .iter()
        .map(|d| {
            let paths: Vec<&str> = d["paths"]
                .as_array()
                .expect("paths")
                .iter()
                .filter_map(Value::as_str)
                .collect();
            format!(
                "{} {} {} {} {} [{}]",
                d["object"]["kind"].as_str().expect("kind"),
                d["object"]["name"].as_str().expect("name"),
                d["drift"].as_str().expect("drift kind"),
                d["direction"].as_str().expect("direction"),
                d["severity"].as_str().expect("severity"),
                paths.join(",")
            )
        })
        .collect()
}

fn cloud(v: &Value) -> &Value {
    &v["environments"][0]
}

fn list<'a>(v: &'a Value, key: &str) -> &'a [Value] {
    v[key].as_array().map(Vec::as_slice).unwrap_or_default()
}

/// Every file below `dir` holding `needle`, except those in `skip`.
fn files_holding(dir: &Path, needle: &str, skip: &[PathBuf]) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let Ok(entries) = std::fs::read_dir(dir) else {
        return out;
    };
    for e in entries.flatten() {
        let p = e.path();
        if skip.contains(&p) {
            continue;
        }
        if p.is_dir() && !p.is_symlink() {
            out.extend(files_holding(&p, needle, skip));
        } else if std::fs::read(&p)
            .is_ok_and(|b| b.windows(needle.len()).any(|w| w == needle.as_bytes()))
        {
            out.push(p);
        }
    }
    out
}

#[test]
fn terraform_drift_end_to_end_against_moto() {
    drift_end_to_end(&terraform());
}

#[test]
fn opentofu_drift_end_to_end_against_moto() {
    drift_end_to_end(&tofu());
}

/// The case with terraform or OpenTofu: the user's applies and DriftGuard's checks run the
/// same binary.
fn drift_end_to_end(t: &Terraform) {
    let moto = MotoServer::start();
    let tmp = tempfile::tempdir().expect("temp dir");
    let dir = tmp.path();
    let repo = dir.join("repo");
    copy_dir(&repo_root().join("examples/terraform"), &repo);
    git(&repo, &["init", "-q", "-b", "main"], "Alice Dev");
    git(&repo, &["add", "-A"], "Alice Dev");
    git(
        &repo,
        &["commit", "-q", "-m", "infra: data bucket, network, web, db"],
        "Alice Dev",
    );
    // the sensitive value lives outside the repository, in a variable file of the host
    std::fs::write(
        dir.join("secrets.tfvars"),
        format!(
            "aws_endpoint = \"{}\"\ndb_password = \"{CANARY}\"\n",
            moto.url()
        ),
    )
    .expect("write variables");
    user_apply(t, dir, &repo);

    let config = format!(
        r#"environments:
  - name: cloud
    git:
      url: ./repo
    terraform:
      binary: {bin}
      cliConfigFile: {cli}
      varFiles: [{vars}]
      backendConfig: ["path={state}"]
      timeout: 5m
      orphans:
        aws:
          regions: [us-east-1]
          endpoint: {endpoint}
secretKey: {{env: TF_E2E_KEY}}
server:
  tokenEnv: TF_E2E_TOKENS
  pollInterval: 1h
  fullScanInterval: 1h
  shutdownGrace: 1s
"#,
        bin = t.bin.display(),
        cli = t.cli_config.display(),
        vars = dir.join("secrets.tfvars").display(),
        state = dir.join("state.tfstate").display(),
        endpoint = moto.url(),
    );
    std::fs::write(dir.join("driftguard.yaml"), config).expect("write config");
    let validate = run_env(dir, &["config", "validate"], &[]);
    assert_eq!(validate.code, 0, "{}{}", validate.stdout, validate.stderr);
    let mut outputs = vec![validate.stdout, validate.stderr];

    // 1. right after the apply: everything in sync
    let (first, took) = scan(dir);
    eprintln!("first check of the module (init, the plan, the account listed): {took:?}");
    assert_eq!(first.code, 0, "{}\n{}", first.stdout, first.stderr);
    let v = first.json();
    assert_eq!(rows(list(cloud(&v), "drifts")), BTreeSet::new(), "{v:#}");
    assert_eq!(cloud(&v)["summary"]["counts"]["tracked"], 4, "{v:#}");
    assert_eq!(cloud(&v)["summary"]["counts"]["in_sync"], 4, "{v:#}");
    outputs.extend([first.stdout.clone(), first.stderr.clone()]);

    // 2. the hand in the console, and a code change committed and not applied
    moto.boto3(
        r#"
import boto3, os
e = os.environ["ENDPOINT"]
s3 = boto3.client("s3", endpoint_url=e)
ec2 = boto3.client("ec2", endpoint_url=e)
tags = s3.get_bucket_tagging(Bucket="driftguard-data")["TagSet"]
tags = [t if t["Key"] != "team" else {"Key": "team", "Value": "data-eng"} for t in tags]
s3.put_bucket_tagging(Bucket="driftguard-data", Tagging={"TagSet": tags})
sg = ec2.describe_security_groups(Filters=[{"Name": "group-name", "Values": ["web"]}])
ec2.authorize_security_group_ingress(GroupId=sg["SecurityGroups"][0]["GroupId"],
    IpPermissions=[{"IpProtocol": "tcp", "FromPort": 22, "ToPort": 22,
                    "IpRanges": [{"CidrIp": "0.0.0.0/0"}]}])
vpcs = ec2.describe_vpcs(Filters=[{"Name": "tag:Name", "Values": ["main"]}])["Vpcs"]
assert len(vpcs) == 1, vpcs
ec2.delete_vpc(VpcId=vpcs[0]["VpcId"])
s3.create_bucket(Bucket="hand-made-reports")
"#,
    );
    let main_tf = repo.join("main.tf");
    let text = std::fs::read_to_string(&main_tf).expect("read main.tf");
    assert!(text.contains("allocated_storage   = 20"));
    std::fs::write(
        &main_tf,
        text.replace("allocated_storage   = 20", "allocated_storage   = 30"),
    )
    .expect("write main.tf");
    git(
        &repo,
        &["commit", "-q", "-a", "-m", "db: 30 GB of storage"],
        "Bob Sre",
    );
    let storage_commit = head(&repo);

    let (second, took) = scan(dir);
    eprintln!("drift check of the module (fetch, the plan, the account listed): {took:?}");
    assert_eq!(second.code, 2, "{}\n{}", second.stdout, second.stderr);
    let v = second.json();
    let drifts = list(cloud(&v), "drifts");
    let expected: BTreeSet<String> = [
        "aws_db_instance aws_db_instance.db modified reverse medium [allocated_storage]",
        "aws_s3_bucket aws_s3_bucket.data modified forward low [tags.team,tags_all.team]",
        "aws_s3_bucket hand-made-reports orphan forward medium []",
        "aws_security_group aws_security_group.web modified forward high [ingress]",
        "aws_vpc module.network.aws_vpc.main missing forward medium []",
    ]
    .into_iter()
    .map(str::to_owned)
    .collect();
    assert_eq!(rows(drifts), expected, "{v:#}");
    let drift = |name: &str| {
        drifts
            .iter()
            .find(|d| d["id"]["name"] == name)
            .unwrap_or_else(|| panic!("no drift of {name}"))
    };
    for d in drifts {
        assert_eq!(d["id"]["group"], "aws", "{d:#}");
        assert_eq!(d["id"]["environment"], "cloud", "{d:#}");
    }
    // the reverse drift names the commit of the file declaring the resource
    let db = drift("aws_db_instance.db");
    assert_eq!(db["attribution"]["commit"]["id"], storage_commit.as_str());
    assert_eq!(db["attribution"]["commit"]["author"], "Bob Sre");
    assert_eq!(
        db["attribution"]["commit"]["message"],
        "db: 30 GB of storage"
    );
    assert_eq!(db["fields"][0]["desired"], 30);
    assert_eq!(db["fields"][0]["live"], 20);
    assert_eq!(db["provenance"]["file"], "main.tf");
    let sg = drift("aws_security_group.web");
    let live = sg["fields"][0]["live"].to_string();
    assert!(
        live.contains("0.0.0.0/0") && live.contains("\"from_port\":22"),
        "{live}"
    );
    let vpc = drift("module.network.aws_vpc.main");
    assert_eq!(vpc["provenance"]["file"], "modules/network/main.tf");
    let bucket = drift("aws_s3_bucket.data");
    assert_eq!(bucket["fields"][0]["desired"], "platform");
    assert_eq!(bucket["fields"][0]["live"], "data-eng");
    eprintln!(
        "scan summary of the drift check: duration_ms {}",
        cloud(&v)["summary"]["duration_ms"]
    );
    outputs.extend([second.stdout.clone(), second.stderr.clone()]);

    // the stored drifts (a table and JSON), the events, an explanation
    let env = env_vars();
    for args in [
        vec!["drifts", "--config", "driftguard.yaml"],
        vec!["drifts", "--config", "driftguard.yaml", "-o", "json"],
        vec!["events", "--config", "driftguard.yaml", "-o", "json"],
        vec![
            "explain",
            "--config",
            "driftguard.yaml",
            "cloud:aws_db_instance.aws/aws_db_instance.db",
        ],
    ] {
        let r = run_env(dir, &args, &env);
        assert!(
            r.code == 0 || r.code == 2,
            "{args:?}: {}{}",
            r.stdout,
            r.stderr
        );
        outputs.extend([r.stdout, r.stderr]);
    }
    let table = &outputs[outputs.len() - 8];
    assert!(
        table.contains("aws_security_group.web") && table.contains("high"),
        "{table}"
    );
    let explained = &outputs[outputs.len() - 2];
    assert!(explained.contains("Bob Sre"), "{explained}");

    // 3. the server: the same drifts through the API, with their severities
    let port = free_port();
    let mut server = spawn_server(
        dir,
        &["--config", "driftguard.yaml"],
        &env,
        port,
        dir.join("serve.log"),
        TOKEN,
    );
    let deadline = Instant::now() + Duration::from_secs(300);
    let api = loop {
        if let Ok(Some(st)) = server.child.try_wait() {
            panic!("driftguard serve exited ({st}):\n{}", server.log());
        }
        let scanned = server
            .json("/api/v1/environments")
            .is_some_and(|e| e["items"][0]["last_scan"]["started_at"].is_string());
        if scanned {
            break server.drifts("environment=cloud");
        }
        assert!(
            Instant::now() < deadline,
            "no check of the Terraform environment:\n{}",
            server.log()
        );
        std::thread::sleep(Duration::from_millis(200));
    };
    assert_eq!(api_rows(&api), expected, "{api:#?}");
    let db_api = api
        .iter()
        .find(|d| d["object"]["name"] == "aws_db_instance.db")
        .expect("the database's drift");
    assert!(
        db_api["who"]
            .as_str()
            .is_some_and(|w| w.contains("Bob Sre")),
        "{db_api:#}"
    );
    let detail = server
        .json(&format!(
            "/api/v1/drifts/{}",
            db_api["episode"].as_str().expect("episode")
        ))
        .expect("the drift's detail");
    assert_eq!(
        detail["attribution"]["commit"]["id"],
        storage_commit.as_str(),
        "{detail:#}"
    );
    let envs = server.json("/api/v1/environments").expect("environments");
    // the IaC coverage of the last check: of the account's buckets, groups and database (the
    // VPC deleted; the default VPC and its group the cloud's own), three in the state and the
    // bucket made by hand in none
    let coverage = &envs["items"][0]["iac_coverage"];
    assert_eq!(coverage["managed"], 3, "{envs:#}");
    assert_eq!(coverage["unmanaged"], 1, "{envs:#}");
    assert_eq!(coverage["ratio"], 0.75, "{envs:#}");
    assert_eq!(
        coverage["by_kind"]["aws_s3_bucket"],
        serde_json::json!({"managed": 1, "unmanaged": 1}),
        "{envs:#}"
    );
    assert_eq!(coverage["unknown_kinds"], serde_json::json!([]), "{envs:#}");
    let metrics = server.get("/metrics").map(|(_, b)| b).unwrap_or_default();
    for line in [
        "driftguard_iac_coverage_ratio{environment=\"cloud\"} 0.75",
        "driftguard_iac_resources{environment=\"cloud\",state=\"managed\"} 3",
        "driftguard_iac_resources{environment=\"cloud\",state=\"unmanaged\"} 1",
    ] {
        assert!(metrics.lines().any(|l| l == line), "{line}:\n{metrics}");
    }
    let page = dashboard_page(port, "/drifts?environment=cloud");
    assert!(
        page.contains("IaC coverage 75 % (3 of 4 resources)"),
        "{page}"
    );
    let overview = dashboard_page(port, "/");
    assert!(
        overview.contains(
            "<dt>IaC coverage</dt><dd class=\"iac-coverage\">75 % (3 of 4 resources)</dd>"
        ),
        "{overview}"
    );
    outputs.push(envs.to_string());
    outputs.push(serde_json::to_string(&api).expect("json"));
    for d in &api {
        if let Some(ep) = d["episode"].as_str() {
            if let Some((_, body)) = server.get(&format!("/api/v1/drifts/{ep}")) {
                outputs.push(body);
            }
        }
    }
    let _ = server.child.kill();
    let _ = server.child.wait();
    outputs.push(server.log());
    drop(server);

    // 4. terraform apply: every drift it can end is resolved as applied; the bucket made
    // outside Terraform stays an orphan
    user_apply(t, dir, &repo);
    let (third, took) = scan(dir);
    eprintln!("check after the apply: {took:?}");
    assert_eq!(third.code, 2, "{}\n{}", third.stdout, third.stderr);
    let v = third.json();
    let resolved: BTreeSet<String> = list(cloud(&v), "resolved")
        .iter()
        .map(|d| {
            format!(
                "{} {}",
                d["id"]["name"].as_str().expect("name"),
                d["resolution"].as_str().unwrap_or("-")
            )
        })
        .collect();
    assert_eq!(
        resolved,
        [
            "aws_db_instance.db applied",
            "aws_s3_bucket.data applied",
            "aws_security_group.web applied",
            "module.network.aws_vpc.main applied",
        ]
        .into_iter()
        .map(str::to_owned)
        .collect::<BTreeSet<_>>(),
        "{v:#}"
    );
    assert_eq!(
        rows(list(cloud(&v), "drifts")),
        ["aws_s3_bucket hand-made-reports orphan forward medium []".to_owned()]
            .into_iter()
            .collect::<BTreeSet<_>>()
    );
    outputs.extend([third.stdout.clone(), third.stderr.clone()]);

    // DriftGuard's working folder: the revision written out, terraform's data folder beside
    // it (not inside the tree), no plan file left
    let work = dir.join(".driftguard/terraform/cloud");
    assert!(work.join("tree/main.tf").is_file() && work.join("data").is_dir());
    assert!(!work.join("tree/.driftguard").exists() && !work.join("tree/.terraform").exists());
    let leftovers: Vec<String> = std::fs::read_dir(&work)
        .expect("work dir")
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("plans-"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");

    // nothing sensitive: in no output, and in no file but the user's own (the variable
    // file, terraform's state and its data folder)
    for (i, o) in outputs.iter().enumerate() {
        assert!(
            !o.contains(CANARY),
            "output {i} holds the sensitive value:\n{o}"
        );
    }
    let skip = [
        dir.join("secrets.tfvars"),
        dir.join("state.tfstate"),
        dir.join("state.tfstate.backup"),
        dir.join("user-tf-data"),
    ];
    let leaked = files_holding(dir, CANARY, &skip);
    assert_eq!(
        leaked,
        Vec::<PathBuf>::new(),
        "files holding the sensitive value"
    );
    assert!(
        dir.join(".driftguard/driftguard.db").is_file(),
        "the store was written (and searched)"
    );
    // the user's state does hold it: the search would have found it
    assert!(std::fs::read_to_string(dir.join("state.tfstate"))
        .expect("state")
        .contains(CANARY));
}

/// Community modules (issue 35): `examples/terraform-modules`, a root module in `live/prod`
/// calling terraform-aws-modules' security group (rules as `aws_security_group_rule`
/// resources) and DynamoDB table (point-in-time recovery), vendored from GitHub, applied to
/// moto. By hand: port 22 opened to the world on the group (only its `ingress` grows, which
/// the code leaves unset), the table's point-in-time recovery turned off. In the code: the
/// table's team tag changed where the module is called (`live/prod/main.tf`), not applied.
/// Then `terraform apply`. And the same code without its backend: an empty state, refused.
#[test]
fn community_modules_end_to_end_against_moto() {
    community_modules_end_to_end(&terraform());
}

#[test]
fn community_modules_end_to_end_against_moto_with_opentofu() {
    community_modules_end_to_end(&tofu());
}

/// The community modules' case with terraform or OpenTofu.
fn community_modules_end_to_end(t: &Terraform) {
    let moto = MotoServer::start();
    let tmp = tempfile::tempdir().expect("temp dir");
    let dir = tmp.path();
    let repo = dir.join("repo");
    copy_dir(&repo_root().join("examples/terraform-modules"), &repo);
    git(&repo, &["init", "-q", "-b", "main"], "Alice Dev");
    git(&repo, &["add", "-A"], "Alice Dev");
    git(
        &repo,
        &[
            "commit",
            "-q",
            "-m",
            "prod: network, web group, orders table",
        ],
        "Alice Dev",
    );
    let first = head(&repo);
    std::fs::write(
        dir.join("secrets.tfvars"),
        format!("aws_endpoint = \"{}\"\n", moto.url()),
    )
    .expect("write variables");
    let root = repo.join("live/prod");
    user_apply(t, dir, &root);

    let environment = |name: &str, backend: bool| {
        format!(
            r#"  - name: {name}
    git:
      url: ./repo
      path: live/prod
    terraform:
      binary: {bin}
      cliConfigFile: {cli}
      varFiles: [{vars}]
{backend}      timeout: 5m
"#,
            bin = t.bin.display(),
            cli = t.cli_config.display(),
            vars = dir.join("secrets.tfvars").display(),
            backend = if backend {
                format!(
                    "      backendConfig: [\"path={}\"]\n",
                    dir.join("state.tfstate").display()
                )
            } else {
                String::new()
            },
        )
    };
    let settings = "secretKey: {env: TF_E2E_KEY}\n";
    std::fs::write(
        dir.join("driftguard.yaml"),
        format!("environments:\n{}{settings}", environment("cloud", true)),
    )
    .expect("write config");
    let validate = run_env(dir, &["config", "validate"], &[]);
    assert_eq!(validate.code, 0, "{}{}", validate.stdout, validate.stderr);

    // 1. right after the apply: the refresh shows the group's rules growing by those of its
    // rule resources, and that is not drift
    let (first_scan, took) = scan(dir);
    eprintln!("first check of the modules: {took:?}");
    assert_eq!(
        first_scan.code, 0,
        "{}\n{}",
        first_scan.stdout, first_scan.stderr
    );
    let v = first_scan.json();
    assert_eq!(rows(list(cloud(&v), "drifts")), BTreeSet::new(), "{v:#}");
    assert_eq!(cloud(&v)["summary"]["counts"]["tracked"], 5, "{v:#}");

    // 2. by hand
    moto.boto3(
        r#"
import boto3, os
e = os.environ["ENDPOINT"]
ec2 = boto3.client("ec2", endpoint_url=e)
ddb = boto3.client("dynamodb", endpoint_url=e)
sg = ec2.describe_security_groups(Filters=[{"Name": "group-name", "Values": ["web-*"]}])
groups = sg["SecurityGroups"]
assert len(groups) == 1, groups
ec2.authorize_security_group_ingress(GroupId=groups[0]["GroupId"],
    IpPermissions=[{"IpProtocol": "tcp", "FromPort": 22, "ToPort": 22,
                    "IpRanges": [{"CidrIp": "0.0.0.0/0"}]}])
ddb.update_continuous_backups(TableName="orders",
    PointInTimeRecoverySpecification={"PointInTimeRecoveryEnabled": False})
"#,
    );
    let sg = "module.web_sg.aws_security_group.this_name_prefix[0]";
    let table = "module.orders.aws_dynamodb_table.this[0]";
    let (second, took) = scan(dir);
    eprintln!("check after the hand changes: {took:?}");
    assert_eq!(second.code, 2, "{}\n{}", second.stdout, second.stderr);
    let v = second.json();
    let expected: BTreeSet<String> = [
        format!("aws_dynamodb_table {table} modified forward medium [point_in_time_recovery[0].enabled]"),
        format!("aws_security_group {sg} modified forward high [ingress]"),
    ]
    .into_iter()
    .collect();
    assert_eq!(rows(list(cloud(&v), "drifts")), expected, "{v:#}");
    let drift = |v: &Value, name: &str| {
        list(cloud(v), "drifts")
            .iter()
            .find(|d| d["id"]["name"] == name)
            .cloned()
            .unwrap_or_else(|| panic!("no drift of {name}: {v:#}"))
    };
    let open = drift(&v, sg);
    let live = open["fields"][0]["live"].to_string();
    assert!(
        live.contains("0.0.0.0/0") && live.contains("\"from_port\":22") && !live.contains("443"),
        "only the rule no rule resource owns: {live}"
    );
    // a hand change: explain names no commit (the repository's first commit is not it) and
    // speaks of the cloud, not of clusters and field managers
    let explained = run_env(
        dir,
        &[
            "explain",
            "--config",
            "driftguard.yaml",
            &format!("cloud:aws_security_group.aws/{sg}"),
        ],
        &env_vars(),
    );
    assert_eq!(
        explained.code, 0,
        "{}{}",
        explained.stdout, explained.stderr
    );
    let text = &explained.stdout;
    for word in ["cluster", "field manager", "Alice"] {
        assert!(!text.contains(word), "{word:?} in:\n{text}");
    }
    // the revision checked is the first commit; no commit is named for the change
    let commit_line = text
        .lines()
        .find(|l| l.trim_start().starts_with("commit:"))
        .unwrap_or_default();
    assert!(!commit_line.contains(&first[..12]), "{text}");
    assert!(
        text.contains("the cloud changed outside Terraform")
            && text.contains("commit:    none (changed outside Terraform"),
        "{text}"
    );

    // 3. the recovery turned back on by hand, and the table's team changed where the module
    // is called: the commit of live/prod/main.tf is named, not the module's file's
    moto.boto3(
        r#"
import boto3, os
ddb = boto3.client("dynamodb", endpoint_url=os.environ["ENDPOINT"])
ddb.update_continuous_backups(TableName="orders",
    PointInTimeRecoverySpecification={"PointInTimeRecoveryEnabled": True})
"#,
    );
    let main_tf = root.join("main.tf");
    let text = std::fs::read_to_string(&main_tf).expect("read main.tf");
    assert!(text.contains("team = \"shop\""));
    std::fs::write(
        &main_tf,
        text.replace("team = \"shop\"", "team = \"orders\""),
    )
    .expect("write main.tf");
    git(
        &repo,
        &[
            "commit",
            "-q",
            "-a",
            "-m",
            "orders: the orders team owns the table",
        ],
        "Bob Sre",
    );
    let inputs = head(&repo);
    let (third, took) = scan(dir);
    eprintln!("check after the commit: {took:?}");
    assert_eq!(third.code, 2, "{}\n{}", third.stdout, third.stderr);
    let v = third.json();
    let expected: BTreeSet<String> = [
        format!("aws_dynamodb_table {table} modified reverse low [tags.team,tags_all.team]"),
        format!("aws_security_group {sg} modified forward high [ingress]"),
    ]
    .into_iter()
    .collect();
    assert_eq!(rows(list(cloud(&v), "drifts")), expected, "{v:#}");
    let reverse = drift(&v, table);
    assert_eq!(
        reverse["attribution"]["commit"]["id"],
        inputs.as_str(),
        "{reverse:#}"
    );
    assert_eq!(reverse["attribution"]["commit"]["author"], "Bob Sre");
    assert_eq!(
        reverse["provenance"]["file"],
        "modules/dynamodb-table/main.tf"
    );

    // 4. terraform apply: the table's tags applied; the rule is still open (an apply leaves
    // what the code does not set), and still reported
    user_apply(t, dir, &root);
    let (fourth, took) = scan(dir);
    eprintln!("check after the apply: {took:?}");
    assert_eq!(fourth.code, 2, "{}\n{}", fourth.stdout, fourth.stderr);
    let v = fourth.json();
    assert_eq!(
        rows(list(cloud(&v), "drifts")),
        [format!(
            "aws_security_group {sg} modified forward high [ingress]"
        )]
        .into_iter()
        .collect::<BTreeSet<_>>(),
        "{v:#}"
    );
    let resolved: Vec<String> = list(cloud(&v), "resolved")
        .iter()
        .map(|d| {
            format!(
                "{} {}",
                d["id"]["name"].as_str().unwrap_or(""),
                d["resolution"].as_str().unwrap_or("-")
            )
        })
        .collect();
    assert_eq!(resolved, vec![format!("{table} applied")], "{v:#}");

    // 5. the same code without its backend: an empty state, refused, and nothing stored of
    // the first environment is lost
    std::fs::write(
        dir.join("empty.yaml"),
        format!(
            "environments:\n{}{settings}",
            environment("nobackend", false)
        ),
    )
    .expect("write config");
    let refused = run_env(
        dir,
        &["scan", "--config", "empty.yaml", "-o", "json"],
        &env_vars(),
    );
    let said = format!("{}{}", refused.stdout, refused.stderr);
    assert_ne!(refused.code, 0, "{said}");
    assert!(
        said.contains("holds no resource") && said.contains("terraform.expectEmptyState: true"),
        "{said}"
    );
    let stored = run_env(
        dir,
        &["drifts", "--config", "driftguard.yaml", "-o", "json"],
        &env_vars(),
    );
    assert!(
        stored.stdout.contains(sg),
        "{}{}",
        stored.stdout,
        stored.stderr
    );
    // nothing was recorded for the refused environment (the store is shared)
    let v = stored.json();
    let envs: BTreeSet<&str> = v
        .as_array()
        .expect("a list of drifts")
        .iter()
        .filter_map(|d| d["id"]["environment"].as_str())
        .collect();
    assert_eq!(
        envs,
        ["cloud"].into_iter().collect::<BTreeSet<_>>(),
        "{v:#}"
    );
}

/// A dashboard page of the server on `port`, signed in with [`TOKEN`] (the sign-in form,
/// then the session cookie).
fn dashboard_page(port: u16, path: &str) -> String {
    use std::io::{Read, Write};
    let exchange = |request: String| {
        let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).expect("connect");
        s.set_read_timeout(Some(Duration::from_secs(10)))
            .expect("timeout");
        s.write_all(request.as_bytes()).expect("write");
        let mut out = String::new();
        s.read_to_string(&mut out).expect("read");
        out
    };
    let form = format!("token={TOKEN}&next=%2F");
    let answer = exchange(format!(
        "POST /login HTTP/1.0\r\nHost: 127.0.0.1:{port}\r\nOrigin: http://127.0.0.1:{port}\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\n\r\n{form}",
        form.len()
    ));
    let cookie = answer
        .lines()
        .find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.eq_ignore_ascii_case("set-cookie")
                .then(|| v.trim().split(';').next().unwrap_or("").to_owned())
        })
        .unwrap_or_else(|| panic!("no session cookie: {answer}"));
    let page = exchange(format!(
        "GET {path} HTTP/1.0\r\nHost: 127.0.0.1:{port}\r\nCookie: {cookie}\r\n\r\n"
    ));
    assert!(
        page.starts_with("HTTP/1.1 200") || page.starts_with("HTTP/1.0 200"),
        "{page}"
    );
    page
}

/// The user's own `terraform plan` of `dir` (with the user's data folder and state, as
/// [`user_apply`] left them): its standard output.
fn user_plan(t: &Terraform, tmp: &Path, dir: &Path) -> String {
    let vars = format!("-var-file={}", tmp.join("secrets.tfvars").display());
    t.user(
        dir,
        &tmp.join("user-tf-data"),
        &["plan", "-input=false", "-no-color", "-lock=false", &vars],
        &[],
    )
}

#[test]
fn terraform_codify_with_a_pull_request() {
    codify_end_to_end(&terraform());
}

#[test]
fn opentofu_codify_with_a_pull_request() {
    codify_end_to_end(&tofu());
}

/// Codify (issue 35): `examples/terraform` applied to moto from a repository served by a `git
/// daemon` on 127.0.0.1, then a bucket and a security group made by hand (in no state). The
/// check finds them as orphans and the IaC coverage as 4 of 6; `codify --all --out` writes
/// import blocks and the configuration terraform generates, and the user's own `terraform
/// plan` with those two files added imports both and changes nothing else; `codify --all
/// --pull-request` pushes a branch with the two files in the root module's folder, the fake
/// GitHub API gets the pull request, and each orphan's history has the `remediated` event.
fn codify_end_to_end(t: &Terraform) {
    use util::e2e::{fake_forge, GitDaemon};
    let moto = MotoServer::start();
    let gitbin = driftguard_test_support::program("git", &["--version"]);
    let tmp = tempfile::tempdir().expect("temp dir");
    let dir = tmp.path();
    let srv = dir.join("srv");
    std::fs::create_dir_all(&srv).expect("mkdir");
    git(
        &srv,
        &["init", "-q", "--bare", "-b", "main", "infra.git"],
        "x",
    );
    let repo = dir.join("repo");
    copy_dir(&repo_root().join("examples/terraform"), &repo);
    git(&repo, &["init", "-q", "-b", "main"], "Alice Dev");
    git(&repo, &["add", "-A"], "Alice Dev");
    git(
        &repo,
        &["commit", "-q", "-m", "infra: data bucket, network, web, db"],
        "Alice Dev",
    );
    let daemon = GitDaemon::start(&gitbin, &srv);
    let url = format!("git://127.0.0.1:{}/infra.git", daemon.port);
    git(&repo, &["remote", "add", "origin", &url], "x");
    git(&repo, &["push", "-q", "origin", "main"], "x");
    std::fs::write(
        dir.join("secrets.tfvars"),
        format!(
            "aws_endpoint = \"{}\"\ndb_password = \"{CANARY}\"\n",
            moto.url()
        ),
    )
    .expect("write variables");
    user_apply(t, dir, &repo);
    moto.boto3(
        r#"
import boto3, os
e = os.environ["ENDPOINT"]
s3 = boto3.client("s3", endpoint_url=e)
ec2 = boto3.client("ec2", endpoint_url=e)
s3.create_bucket(Bucket="hand-made-reports")
ec2.create_security_group(GroupName="hand-made-sg", Description="made in the console")
"#,
    );
    let (forge_port, forge_seen) = fake_forge();
    let config = format!(
        r#"environments:
  - name: cloud
    git:
      url: "{url}"
      ref: main
      pullRequest: {{forge: github, apiUrl: "http://127.0.0.1:{forge_port}", repository: acme/infra, tokenEnv: TF_E2E_FORGE_TOKEN}}
    terraform:
      binary: {bin}
      cliConfigFile: {cli}
      varFiles: [{vars}]
      backendConfig: ["path={state}"]
      timeout: 5m
      orphans:
        aws:
          regions: [us-east-1]
          endpoint: {endpoint}
secretKey: {{env: TF_E2E_KEY}}
"#,
        bin = t.bin.display(),
        cli = t.cli_config.display(),
        vars = dir.join("secrets.tfvars").display(),
        state = dir.join("state.tfstate").display(),
        endpoint = moto.url(),
    );
    std::fs::write(dir.join("driftguard.yaml"), config).expect("write config");
    let validate = run_env(dir, &["config", "validate"], &[]);
    assert_eq!(validate.code, 0, "{}{}", validate.stdout, validate.stderr);
    let mut env = env_vars();
    env.push(("TF_E2E_FORGE_TOKEN", "ghp-tf-e2e"));

    // the check: two orphans
    let (first, took) = scan(dir);
    eprintln!("check with two orphans: {took:?}");
    assert_eq!(first.code, 2, "{}\n{}", first.stdout, first.stderr);
    let v = first.json();
    let orphans: BTreeSet<String> = rows(list(cloud(&v), "drifts"))
        .into_iter()
        .filter(|r| r.contains(" orphan forward "))
        .collect();
    assert_eq!(orphans.len(), 2, "{v:#}");
    assert!(
        orphans.contains("aws_s3_bucket hand-made-reports orphan forward medium []"),
        "{orphans:?}"
    );
    let sg_id = list(cloud(&v), "drifts")
        .iter()
        .filter_map(|d| d["id"]["name"].as_str())
        .find(|n| n.starts_with("sg-"))
        .expect("the hand-made group is an orphan")
        .to_owned();

    // the preview: two files written, nothing pushed
    let out = dir.join("codified");
    let started = Instant::now();
    let preview = run_env(
        dir,
        &[
            "codify",
            "--all",
            "--out",
            &out.display().to_string(),
            "--config",
            "driftguard.yaml",
            "-o",
            "json",
        ],
        &env,
    );
    eprintln!("codify preview: {:?}", started.elapsed());
    assert_eq!(preview.code, 0, "{}\n{}", preview.stdout, preview.stderr);
    let p = preview.json();
    // the account: driftguard-data, hand-made-reports, main, web, hand-made-sg, the database
    // (the default VPC and each VPC's default group are the cloud's own)
    assert_eq!(p["coverage"]["managed"], 4, "{p:#}");
    assert_eq!(p["coverage"]["unmanaged"], 2, "{p:#}");
    assert!(
        (p["coverage"]["ratio"].as_f64().expect("ratio") - 4.0 / 6.0).abs() < 1e-9,
        "{p:#}"
    );
    assert_eq!(
        p["coverage"]["by_kind"]["aws_s3_bucket"],
        serde_json::json!({"managed": 1, "unmanaged": 1}),
        "{p:#}"
    );
    assert!(p["pull_request"].is_null(), "{p:#}");
    assert_eq!(
        p["plan"], "Plan: 2 to import, 0 to add, 0 to change, 0 to destroy.",
        "{p:#}"
    );
    assert!(p["problem"].is_null(), "{p:#}");
    let imports = std::fs::read_to_string(out.join("imports_driftguard.tf")).expect("imports");
    assert!(
        imports.contains(
            "import {\n  to = aws_s3_bucket.hand-made-reports\n  id = \"hand-made-reports\"\n}"
        ),
        "{imports}"
    );
    assert!(
        imports.contains(&format!(
            "import {{\n  to = aws_security_group.hand-made-sg\n  id = \"{sg_id}\"\n}}"
        )),
        "{imports}"
    );
    let generated = std::fs::read_to_string(out.join("generated_driftguard.tf")).expect("config");
    assert!(
        generated.contains("resource \"aws_s3_bucket\" \"hand-made-reports\"")
            && generated.contains("resource \"aws_security_group\" \"hand-made-sg\""),
        "{generated}"
    );
    assert!(!generated.contains(CANARY) && !imports.contains(CANARY));
    // nothing was written into the user's tree, nothing pushed
    assert!(!repo.join("imports_driftguard.tf").exists());
    assert!(forge_seen.lock().expect("lock").is_empty());

    // the generated configuration is right: with the two files, the user's own plan imports
    // both and changes nothing
    let check = dir.join("check");
    copy_dir(&repo, &check);
    for f in ["imports_driftguard.tf", "generated_driftguard.tf"] {
        std::fs::copy(out.join(f), check.join(f)).expect("copy");
    }
    let planned = user_plan(t, dir, &check);
    assert!(
        planned.contains("Plan: 2 to import, 0 to add, 0 to change, 0 to destroy."),
        "{planned}\n{generated}"
    );

    // the pull request
    let started = Instant::now();
    let pr = run_env(
        dir,
        &[
            "codify",
            "--all",
            "--pull-request",
            "--config",
            "driftguard.yaml",
            "-o",
            "json",
        ],
        &env,
    );
    eprintln!("codify with a pull request: {:?}", started.elapsed());
    assert_eq!(pr.code, 0, "{}\n{}", pr.stdout, pr.stderr);
    let r = pr.json();
    assert_eq!(r["pull_request"]["number"], 42, "{r:#}");
    let branch = r["pull_request"]["branch"]
        .as_str()
        .expect("branch")
        .to_owned();
    assert!(branch.starts_with("driftguard/codify-"), "{branch}");
    assert_eq!(r["recorded"].as_array().map(Vec::len), Some(2), "{r:#}");
    // the branch, as the remote has it: the two files, the same as the preview's
    git(&repo, &["fetch", "-q", "origin"], "x");
    let shown = |f: &str| git(&repo, &["show", &format!("origin/{branch}:{f}")], "x");
    assert_eq!(shown("imports_driftguard.tf").trim(), imports.trim());
    assert_eq!(shown("generated_driftguard.tf").trim(), generated.trim());
    let parent = git(&repo, &["rev-parse", &format!("origin/{branch}^")], "x");
    assert_eq!(
        parent.trim(),
        head(&repo),
        "the branch starts at the commit checked"
    );
    let log = git(
        &repo,
        &["log", "-1", "--format=%B", &format!("origin/{branch}")],
        "x",
    );
    assert!(
        log.contains("Codify 2 resources no code owns") && log.contains("Requested-By: cli:"),
        "{log}"
    );
    // the pull request, as the (local, fake) GitHub API received it
    let requests = forge_seen.lock().expect("lock").clone();
    assert_eq!(requests.len(), 1, "{requests:?}");
    let (request_line, auth, body) = &requests[0];
    assert_eq!(request_line, "POST /repos/acme/infra/pulls");
    assert_eq!(auth, "Bearer ghp-tf-e2e");
    assert_eq!(body["head"], branch.as_str(), "{body}");
    assert_eq!(body["base"], "main", "{body}");
    assert_eq!(
        body["title"], "DriftGuard: codify 2 resources no code owns",
        "{body}"
    );
    let text = body["body"].as_str().expect("body");
    assert!(
        text.contains("`aws_s3_bucket` `hand-made-reports` as `aws_s3_bucket.hand-made-reports`")
            && text.contains(&sg_id)
            && text.contains("IaC coverage before: 67 % (4 of 6 resources)")
            && text.contains("Requested by: cli:"),
        "{text}"
    );
    // the history of the orphan
    let h = run_env(
        dir,
        &[
            "history",
            "cloud:aws_s3_bucket.aws/hand-made-reports",
            "--config",
            "driftguard.yaml",
            "-o",
            "json",
        ],
        &env,
    );
    assert_eq!(h.code, 0, "{}\n{}", h.stdout, h.stderr);
    assert!(
        h.stdout.contains("\"codify\"")
            && h.stdout
                .contains("opened pull request #42 https://github.example/shop/gitops/pull/42"),
        "{}",
        h.stdout
    );
    for o in [&preview, &pr, &h] {
        assert!(!o.stdout.contains(CANARY) && !o.stderr.contains(CANARY));
    }
    drop(daemon);
}
