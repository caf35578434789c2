//! Terraform and OpenTofu give plans DriftGuard reads the same way (issue #35): the same module,
//! applied to moto and changed the same way by hand and in the code, checked with each binary.
//!
//! - the shape of what the core's plan reader reads (`format_version`, `resource_changes`,
//!   `resource_drift`, `prior_state`, `configuration`: every key it reads and the JSON type of its
//!   value, arrays and objects walked, attribute values by type only) is the same from both;
//! - the drifts found are the same;
//! - with each binary, the normal plan's `resource_drift` is the refresh-only plan's (what
//!   refresh found is in the one plan a check runs: the source runs no `plan -refresh-only`).

use std::collections::BTreeSet;
use std::path::Path;
use std::sync::Once;
use std::time::Duration;

use driftguard_core::engine::{Engine, EnvironmentSpec};
use driftguard_core::error::chain;
use driftguard_core::normalize::{Normalizer, SecretKey};
use driftguard_core::ports::PlanSource;
use driftguard_core::state::{Direction, Presence};
use driftguard_core::terraform::observe;
use driftguard_sources::terraform::{TerraformCode, TerraformConfig, TerraformSource};
use driftguard_test_support::{terraform, tofu, MotoServer, Terraform};
use serde_json::Value;

const MAIN_TF: &str = r#"terraform {
  required_providers {
    aws = {
      source  = "hashicorp/aws"
      version = "5.100.0"
    }
  }
  backend "local" {}
}

variable "endpoint" {
  type = string
}

provider "aws" {
  region                      = "us-east-1"
  skip_credentials_validation = true
  skip_metadata_api_check     = true
  skip_requesting_account_id  = true
  s3_use_path_style           = true
  endpoints {
    s3  = var.endpoint
    ec2 = var.endpoint
  }
}

resource "aws_s3_bucket" "logs" {
  bucket = "logs"
  tags = {
    team = "platform"
  }
}

module "net" {
  source = "./modules/net"
}
"#;

const NET_TF: &str = r#"resource "aws_vpc" "main" {
  cidr_block = "10.30.0.0/16"
  tags = {
    Name = "main"
  }
}

resource "aws_security_group" "web" {
  name   = "web"
  vpc_id = aws_vpc.main.id
}

resource "aws_security_group_rule" "https" {
  type              = "ingress"
  security_group_id = aws_security_group.web.id
  from_port         = 443
  to_port           = 443
  protocol          = "tcp"
  cidr_blocks       = ["10.30.0.0/16"]
}
"#;

fn aws_env() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        std::env::set_var("AWS_ACCESS_KEY_ID", "testing");
        std::env::set_var("AWS_SECRET_ACCESS_KEY", "testing");
    });
}

/// Runs the user's own terraform (or tofu) in `dir`; its standard output.
fn user(t: &Terraform, dir: &Path, data: &Path, args: &[&str]) -> String {
    t.user(dir, data, args, &[])
}

/// The keys the core's plan reader reads (`driftguard_core::terraform::read_plan`), at any depth.
const READ: &[&str] = &[
    "format_version",
    "terraform_version",
    "errored",
    "resource_changes",
    "resource_drift",
    "prior_state",
    "configuration",
    "root_module",
    "resources",
    "child_modules",
    "module_calls",
    "module",
    "address",
    "module_address",
    "mode",
    "type",
    "name",
    "provider_name",
    "deposed",
    "action_reason",
    "change",
    "actions",
    "values",
    "sensitive_values",
    "before",
    "after",
    "after_unknown",
    "before_sensitive",
    "after_sensitive",
    "expressions",
];

/// Keys whose values are the provider's attributes (or the code's expressions): their type is
/// part of the shape, not their content.
const VALUES: &[&str] = &[
    "values",
    "sensitive_values",
    "before",
    "after",
    "after_unknown",
    "before_sensitive",
    "after_sensitive",
    "expressions",
];

fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "bool",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

/// `path: type` of every key the reader reads. `module_calls`' keys are the calls' names.
fn shape(v: &Value, path: &str, out: &mut BTreeSet<String>) {
    match v {
        Value::Object(m) => {
            let calls = path.ends_with(".module_calls");
            for (k, x) in m {
                if !calls && !READ.contains(&k.as_str()) {
                    continue;
                }
                let p = format!("{path}.{k}");
                out.insert(format!("{p}: {}", kind(x)));
                // `prior_state.values` holds the state's modules, not a resource's attributes
                if !VALUES.contains(&k.as_str()) || p == ".prior_state.values" {
                    shape(x, &p, out);
                }
            }
        }
        Value::Array(a) => {
            for x in a {
                shape(x, &format!("{path}[]"), out);
            }
        }
        _ => {}
    }
}

struct Checked {
    shape: BTreeSet<String>,
    drifts: Vec<String>,
}

/// Applies the module with `t`, changes it by hand and in the code, checks it with DriftGuard.
async fn check_with(t: &Terraform) -> Checked {
    let moto = MotoServer::start();
    let tmp = tempfile::tempdir().expect("temp dir");
    let code = tmp.path().join("code");
    std::fs::create_dir_all(code.join("modules/net")).expect("mkdir");
    std::fs::write(code.join("main.tf"), MAIN_TF).expect("write");
    std::fs::write(code.join("modules/net/main.tf"), NET_TF).expect("write");
    let vars = tmp.path().join("vars.tfvars");
    std::fs::write(&vars, format!("endpoint = \"{}\"\n", moto.url())).expect("write");
    let state = tmp.path().join("state.tfstate");
    let data = tmp.path().join("user-data");
    let var_arg = format!("-var-file={}", vars.display());
    user(
        t,
        &code,
        &data,
        &[
            "init",
            "-input=false",
            &format!("-backend-config=path={}", state.display()),
        ],
    );
    user(
        t,
        &code,
        &data,
        &["apply", "-auto-approve", "-input=false", &var_arg],
    );
    // by hand: the bucket's team tag, SSH opened to the world; in the code: the VPC's name
    moto.boto3(
        r#"
import boto3, os
e = os.environ["ENDPOINT"]
s3 = boto3.client("s3", endpoint_url=e); ec2 = boto3.client("ec2", endpoint_url=e)
s3.put_bucket_tagging(Bucket="logs", Tagging={"TagSet": [{"Key": "team", "Value": "hand"}]})
sg = ec2.describe_security_groups(Filters=[{"Name": "group-name", "Values": ["web"]}])
ec2.authorize_security_group_ingress(GroupId=sg["SecurityGroups"][0]["GroupId"],
    IpPermissions=[{"IpProtocol": "tcp", "FromPort": 22, "ToPort": 22,
                    "IpRanges": [{"CidrIp": "0.0.0.0/0"}]}])
"#,
    );
    std::fs::write(
        code.join("modules/net/main.tf"),
        NET_TF.replace("Name = \"main\"", "Name = \"core\""),
    )
    .expect("write");

    let mut c = TerraformConfig::new(TerraformCode::Folder(code.clone()), tmp.path().join("work"));
    c.binary = Some(t.bin.clone());
    c.cli_config_file = Some(t.cli_config.clone());
    c.var_files = vec![vars.display().to_string()];
    c.backend_config = vec![format!("path={}", state.display())];
    c.timeout = Duration::from_secs(300);
    let run = TerraformSource::new(c)
        .plan()
        .await
        .unwrap_or_else(|e| panic!("{}: {}", t.bin.display(), chain(&e)));
    let plan: Value = serde_json::from_str(run.plan.text()).expect("the plan's JSON");
    let mut s = BTreeSet::new();
    shape(&plan, "", &mut s);

    // the user's refresh-only plan of the same code and cloud: what refresh found is the same
    let file = tmp.path().join("refresh.tfplan");
    user(
        t,
        &code,
        &data,
        &[
            "plan",
            "-refresh-only",
            "-lock=false",
            "-input=false",
            &format!("-out={}", file.display()),
            &var_arg,
        ],
    );
    let refresh: Value = serde_json::from_str(&user(
        t,
        &code,
        &data,
        &["show", "-json", &file.display().to_string()],
    ))
    .expect("the refresh-only plan's JSON");
    assert_eq!(
        refresh["resource_drift"],
        plan["resource_drift"],
        "{}: the refresh-only plan's resource_drift differs from the plan's",
        t.bin.display()
    );
    assert!(
        plan["resource_drift"]
            .as_array()
            .is_some_and(|d| d.len() == 2),
        "{}: {:#}",
        t.bin.display(),
        plan["resource_drift"]
    );

    let engine = Engine::new(
        EnvironmentSpec::new("cloud"),
        Normalizer::new(SecretKey::new(b"k".to_vec())),
    );
    let view = observe(&engine, &run, &Default::default()).expect("observe");
    let drifts = view
        .observations
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
        .collect();
    Checked { shape: s, drifts }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn terraform_and_tofu_plans_read_the_same() {
    aws_env();
    let tf = check_with(&terraform()).await;
    let tofu = check_with(&tofu()).await;
    // what the reader reads is there, in both
    for key in [
        ".format_version: string",
        ".resource_changes[].change.actions: array",
        ".resource_changes[].change.after_unknown: object",
        ".resource_drift[].change.before: object",
        ".prior_state.values.root_module.child_modules[].resources[].values: object",
        ".configuration.root_module.module_calls.net.module.resources[].expressions: object",
    ] {
        assert!(
            tf.shape.contains(key),
            "terraform: no {key}: {:#?}",
            tf.shape
        );
    }
    let only_tf: Vec<_> = tf.shape.difference(&tofu.shape).collect();
    let only_tofu: Vec<_> = tofu.shape.difference(&tf.shape).collect();
    assert!(
        only_tf.is_empty() && only_tofu.is_empty(),
        "only terraform's: {only_tf:#?}\nonly tofu's: {only_tofu:#?}"
    );
    assert_eq!(
        tf.drifts,
        vec![
            "aws_s3_bucket aws_s3_bucket.logs forward [tags.team,tags_all.team]",
            "aws_security_group module.net.aws_security_group.web forward [ingress]",
            "aws_vpc module.net.aws_vpc.main reverse [tags.Name,tags_all.Name]",
        ]
    );
    assert_eq!(tofu.drifts, tf.drifts);
}
