//! Who made a hand change in AWS (issue 35), end to end: `examples/terraform` applied to moto
//! with a real terraform (and OpenTofu), checked by the built `driftguard` binary with
//! `terraform.cloudTrail` pointing at a local fake of CloudTrail's `LookupEvents`
//! (`test-support/cloudtrail_fake.py`: moto's server does not answer `LookupEvents`; the fake
//! checks every request's SigV4 signature with botocore's own signer and the test's secret).
//!
//! Right after the apply nothing drifts and CloudTrail is not asked. Then port 22 is opened to
//! the world on the `web` group with boto3, and the fake holds CloudTrail's record of it by
//! `alice`, beside a read by `bob` and an older write by `mallory` from before the last check.
//! The check's drift of the group names alice only, in the scan's JSON, in `explain` and in
//! the API. Then CloudTrail refuses the signature (another secret): the next hand change is
//! reported without a writer, the check does not fail, and its summary says why.
//!
//! Needs terraform and its provider mirror, OpenTofu and moto (`scripts/test-services.sh up`):
//! a missing one fails the test, naming it.

mod util;

use std::path::Path;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use driftguard_test_support::{terraform, tofu, CloudTrailFake, MotoServer, Terraform};
use serde_json::{json, Value};
use util::e2e::{free_port, spawn_server};
use util::git_as as git;
use util::{copy_dir, repo_root, run_env, Run};

const KEY: &str = "tf-ct-secret-key";
const TOKEN: &str = "tf-ct-token-51d2";

/// The user's own `terraform init` and `apply` (their data folder and state, outside
/// DriftGuard's folders).
fn user_apply(t: &Terraform, tmp: &Path, repo: &Path) {
    t.user_apply(
        repo,
        &tmp.join("user-tf-data"),
        &tmp.join("state.tfstate"),
        &tmp.join("vars.tfvars"),
    );
}

fn env_vars() -> Vec<(&'static str, &'static str)> {
    vec![
        ("AWS_ACCESS_KEY_ID", "testing"),
        ("AWS_SECRET_ACCESS_KEY", "testing"),
        ("AWS_REGION", "us-east-1"),
        ("TF_CT_KEY", KEY),
        ("TF_CT_TOKENS", TOKEN),
    ]
}

fn scan(dir: &Path) -> Run {
    run_env(
        dir,
        &["scan", "--config", "driftguard.yaml", "-o", "json"],
        &env_vars(),
    )
}

fn now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("after 1970")
        .as_secs_f64()
}

fn config(t: &Terraform, dir: &Path, cloudtrail: &str) -> String {
    format!(
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
      cloudTrail:
        region: us-east-1
        endpoint: {cloudtrail}
        maxLookupsPerScan: 5
secretKey: {{env: TF_CT_KEY}}
server:
  tokenEnv: TF_CT_TOKENS
  pollInterval: 1h
  fullScanInterval: 1h
  shutdownGrace: 1s
"#,
        bin = t.bin.display(),
        cli = t.cli_config.display(),
        vars = dir.join("vars.tfvars").display(),
        state = dir.join("state.tfstate").display(),
    )
}

/// A CloudTrail event as the fake serves it.
fn event(id: &str, name: &str, at: f64, resource: &str, user: &str, read_only: bool) -> Value {
    json!({
        "EventId": id,
        "EventName": name,
        "EventTime": at,
        "ResourceName": resource,
        "Username": user,
        "ReadOnly": read_only,
        "CloudTrailEvent": {
            "userIdentity": {"type": "IAMUser",
                             "arn": format!("arn:aws:iam::123456789012:user/{user}")},
            "sourceIPAddress": "198.51.100.7",
            "userAgent": "Boto3/1.35.0 md/Botocore#1.35.0",
            "readOnly": read_only,
        },
    })
}

fn drifts(v: &Value) -> &[Value] {
    v["environments"][0]["drifts"]
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or_default()
}

fn drift<'a>(v: &'a Value, name: &str) -> &'a Value {
    drifts(v)
        .iter()
        .find(|d| d["id"]["name"] == name)
        .unwrap_or_else(|| panic!("no drift of {name}: {v:#}"))
}

fn writer_names(d: &Value) -> Vec<String> {
    d["attribution"]["writers"]
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or_default()
        .iter()
        .map(|w| w["user"]["name"].as_str().unwrap_or("?").to_owned())
        .collect()
}

#[test]
fn cloudtrail_names_who_changed_the_cloud_with_terraform() {
    cloudtrail_end_to_end(&terraform());
}

#[test]
fn cloudtrail_names_who_changed_the_cloud_with_opentofu() {
    cloudtrail_end_to_end(&tofu());
}

fn cloudtrail_end_to_end(t: &Terraform) {
    let moto = MotoServer::start();
    // the AWS credentials DriftGuard finds in its environment (the SDK's chain) are moto's
    let trail = CloudTrailFake::start("testing", "testing", "us-east-1");
    let tmp = tempfile::tempdir().expect("temp dir");
    let dir = tmp.path();
    let repo = dir.join("repo");
    copy_dir(&repo_root().join("examples/terraform"), &repo);
    git(&repo, &["init", "-q", "-b", "main"], "Carol Ops");
    git(&repo, &["add", "-A"], "Carol Ops");
    git(&repo, &["commit", "-q", "-m", "infra"], "Carol Ops");
    std::fs::write(
        dir.join("vars.tfvars"),
        format!(
            "aws_endpoint = \"{}\"\ndb_password = \"pw-not-checked-here\"\n",
            moto.url()
        ),
    )
    .expect("write variables");
    user_apply(t, dir, &repo);
    std::fs::write(dir.join("driftguard.yaml"), config(t, dir, &trail.url())).expect("config");

    // 1. in sync: CloudTrail is not asked
    let first_started = now();
    let first = scan(dir);
    assert_eq!(first.code, 0, "{}\n{}", first.stdout, first.stderr);
    assert!(drifts(&first.json()).is_empty(), "{}", first.stdout);
    assert!(trail.requests().is_empty(), "{:?}", trail.requests());

    // 2. port 22 opened to the world by hand; CloudTrail recorded it (alice), a read (bob)
    // and a write from before the last check (mallory)
    let sg = moto
        .boto3(
            r#"
import boto3, os
ec2 = boto3.client("ec2", endpoint_url=os.environ["ENDPOINT"])
sg = ec2.describe_security_groups(Filters=[{"Name": "group-name", "Values": ["web"]}])
gid = sg["SecurityGroups"][0]["GroupId"]
ec2.authorize_security_group_ingress(GroupId=gid,
    IpPermissions=[{"IpProtocol": "tcp", "FromPort": 22, "ToPort": 22,
                    "IpRanges": [{"CidrIp": "0.0.0.0/0"}]}])
print(gid)
"#,
        )
        .trim()
        .to_owned();
    assert!(sg.starts_with("sg-"), "{sg}");
    let t_hand = now();
    trail.set_events(
        &json!([
            event(
                "ev-mallory",
                "ModifySecurityGroupRules",
                first_started - 3600.0,
                &sg,
                "mallory",
                false
            ),
            event(
                "ev-alice",
                "AuthorizeSecurityGroupIngress",
                t_hand,
                &sg,
                "alice",
                false
            ),
            event(
                "ev-bob",
                "DescribeSecurityGroups",
                t_hand + 1.0,
                &sg,
                "bob",
                true
            ),
        ])
        .to_string(),
    );
    let second = scan(dir);
    assert_eq!(second.code, 2, "{}\n{}", second.stdout, second.stderr);
    let v = second.json();
    let d = drift(&v, "aws_security_group.web");
    assert_eq!(d["direction"], "forward", "{d:#}");
    assert_eq!(d["severity"], "high", "{d:#}");
    assert_eq!(writer_names(d), ["alice"], "{d:#}");
    let w = &d["attribution"]["writers"][0];
    assert_eq!(w["audit_id"], "ev-alice", "{w:#}");
    assert_eq!(w["manager"], "AuthorizeSecurityGroupIngress", "{w:#}");
    assert_eq!(w["verb"], "update", "{w:#}");
    let errors = v["environments"][0]["summary"]["errors"].to_string();
    assert!(!errors.contains("CloudTrail"), "{errors}");
    // the lookup was signed and asked for the group by its id, from the last check's start
    let asked: Vec<Value> = trail
        .requests()
        .iter()
        .map(|l| serde_json::from_str(l).expect("JSON"))
        .collect();
    assert_eq!(asked.len(), 1, "{asked:?}");
    assert_eq!(asked[0]["ok"], true, "{asked:?}");
    assert_eq!(
        asked[0]["body"]["LookupAttributes"][0]["AttributeValue"],
        sg.as_str()
    );
    let start = asked[0]["body"]["StartTime"].as_f64().expect("StartTime");
    assert!(
        start >= first_started - 5.0 && start <= t_hand,
        "the window starts at the last check: {start} vs {first_started}"
    );

    // explain names alice and CloudTrail's event
    let explained = run_env(
        dir,
        &[
            "explain",
            "--config",
            "driftguard.yaml",
            "cloud:aws_security_group.aws/aws_security_group.web",
        ],
        &env_vars(),
    );
    assert!(
        explained.code == 0 || explained.code == 2,
        "{}{}",
        explained.stdout,
        explained.stderr
    );
    let text = &explained.stdout;
    assert!(
        text.contains("who:       alice (AuthorizeSecurityGroupIngress) (CloudTrail since"),
        "{text}"
    );
    assert!(
        text.contains("alice (AuthorizeSecurityGroupIngress, update, from 198.51.100.7)")
            && text.contains("[event id ev-alice]"),
        "{text}"
    );
    assert!(!text.contains("mallory") && !text.contains("bob"), "{text}");

    // the API: the drift's detail names alice (the stored drift, not asked again)
    let port = free_port();
    let mut server = spawn_server(
        dir,
        &["--config", "driftguard.yaml"],
        &env_vars(),
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
        assert!(Instant::now() < deadline, "no check:\n{}", server.log());
        std::thread::sleep(Duration::from_millis(200));
    };
    let summary = api
        .iter()
        .find(|d| d["object"]["name"] == "aws_security_group.web")
        .expect("the group's drift");
    let detail = server
        .json(&format!(
            "/api/v1/drifts/{}",
            summary["episode"].as_str().expect("episode")
        ))
        .expect("the drift's detail");
    let users: Vec<&str> = detail["attribution"]["writers"]
        .as_array()
        .expect("writers")
        .iter()
        .filter_map(|w| w["user"].as_str())
        .collect();
    assert_eq!(users, ["alice"], "{detail:#}");
    let _ = server.child.kill();
    let _ = server.child.wait();
    drop(server);
    let after_serve = trail.requests().len();
    assert_eq!(
        after_serve, 1,
        "a drift naming its writer is not asked again"
    );

    // 3. CloudTrail refuses the signature: a new hand change names no one, the check does
    // not fail, and its summary says why (without the secret)
    let refusing = CloudTrailFake::start("testing", "another-secret", "us-east-1");
    std::fs::write(dir.join("driftguard.yaml"), config(t, dir, &refusing.url())).expect("config");
    moto.boto3(
        r#"
import boto3, os
s3 = boto3.client("s3", endpoint_url=os.environ["ENDPOINT"])
tags = s3.get_bucket_tagging(Bucket="driftguard-data")["TagSet"]
tags = [t if t["Key"] != "team" else {"Key": "team", "Value": "data-eng"} for t in tags]
s3.put_bucket_tagging(Bucket="driftguard-data", Tagging={"TagSet": tags})
"#,
    );
    let third = scan(dir);
    assert_eq!(third.code, 2, "{}\n{}", third.stdout, third.stderr);
    let v = third.json();
    let bucket = drift(&v, "aws_s3_bucket.data");
    assert!(writer_names(bucket).is_empty(), "{bucket:#}");
    assert_eq!(writer_names(drift(&v, "aws_security_group.web")), ["alice"]);
    let errors = v["environments"][0]["summary"]["errors"].to_string();
    assert!(
        errors.contains("InvalidSignatureException") && errors.contains("aws_s3_bucket.data"),
        "{errors}"
    );
    assert!(
        !errors.contains("testing\"") && !errors.contains("another-secret"),
        "{errors}"
    );
    let refused: Vec<Value> = refusing
        .requests()
        .iter()
        .map(|l| serde_json::from_str(l).expect("JSON"))
        .collect();
    assert!(
        !refused.is_empty() && refused.iter().all(|r| r["why"] == "signature mismatch"),
        "{refused:?}"
    );
}
