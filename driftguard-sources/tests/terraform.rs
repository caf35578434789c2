//! The Terraform source with a real terraform (1.11.4) and the AWS provider from the image's
//! filesystem mirror, against moto's server (a server of each test's own): checks of a Git
//! repository and of a folder, the commits of declaring files, errors, and the AWS account
//! lister. Each check runs with terraform and with OpenTofu (1.12.6, `TOFU`). A missing
//! terraform, tofu, provider mirror or moto fails these tests, naming what is missing
//! (`scripts/terraform/setup.sh`, `scripts/opentofu/build.sh`, `scripts/moto/install.sh`).

mod git_support;

use std::path::{Path, PathBuf};
use std::sync::{Arc, Once};
use std::time::Duration;

use driftguard_core::engine::{Engine, EnvironmentSpec};
use driftguard_core::error::chain;
use driftguard_core::normalize::{Normalizer, SecretKey};
use driftguard_core::ports::{PlanSource, SourceError};
use driftguard_core::state::{Direction, Presence};
use driftguard_core::terraform::{observe, PlanView};
use driftguard_sources::git::{GitRepoSource, GitSourceConfig};
use driftguard_sources::terraform::aws::{AwsConfig, AwsLister};
use driftguard_sources::terraform::{CloudLister, TerraformCode, TerraformConfig, TerraformSource};
use driftguard_test_support::{terraform, tofu, MotoServer, Terraform};
use git_support::*;

const CANARY: &str = "CANARY-token-51f0a2";

/// The provider reads its credentials from the environment, as DriftGuard's own process
/// gives them; every test sets the same ones (moto takes any).
fn aws_env() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        std::env::set_var("AWS_ACCESS_KEY_ID", "testing");
        std::env::set_var("AWS_SECRET_ACCESS_KEY", "testing");
    });
}

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

variable "token" {
  type      = string
  sensitive = true
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
    team   = "platform"
    secret = var.token
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
"#;

/// Runs the test's own terraform (the "user") in `dir`.
fn tf(t: &Terraform, dir: &Path, data: &Path, args: &[&str]) {
    t.user(dir, data, args, &[]);
}

/// A user's setup: a variable file outside the code (the endpoint, the sensitive token) and
/// a state file.
struct Setup {
    dir: tempfile::TempDir,
}

impl Setup {
    fn new(moto: &MotoServer) -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        std::fs::write(
            dir.path().join("vars.tfvars"),
            format!("endpoint = \"{}\"\ntoken = \"{CANARY}\"\n", moto.url()),
        )
        .expect("write vars");
        Setup { dir }
    }
    fn vars(&self) -> String {
        self.dir.path().join("vars.tfvars").display().to_string()
    }
    fn state(&self) -> PathBuf {
        self.dir.path().join("state.tfstate")
    }
    fn work(&self) -> PathBuf {
        self.dir.path().join("work")
    }
    /// `terraform init` and `apply` of the code in `module`, as its user would.
    fn apply(&self, t: &Terraform, module: &Path) {
        let data = self.dir.path().join("user-data");
        let backend = format!("-backend-config=path={}", self.state().display());
        tf(
            t,
            module,
            &data,
            &["init", "-input=false", "-no-color", &backend],
        );
        let vars = format!("-var-file={}", self.vars());
        tf(
            t,
            module,
            &data,
            &["apply", "-auto-approve", "-input=false", "-no-color", &vars],
        );
    }
    fn config(&self, t: &Terraform, code: TerraformCode, moto: &MotoServer) -> TerraformConfig {
        let mut c = TerraformConfig::new(code, self.work());
        c.binary = Some(t.bin.clone());
        c.cli_config_file = Some(t.cli_config.clone());
        c.var_files = vec![self.vars()];
        c.backend_config = vec![format!("path={}", self.state().display())];
        c.timeout = Duration::from_secs(300);
        let mut aws = AwsConfig::new(vec!["us-east-1".into()]);
        aws.endpoint = Some(moto.url());
        aws.kinds = vec!["aws_s3_bucket".into(), "aws_vpc".into()];
        c.cloud = Some(Arc::new(AwsLister::new(aws)));
        c
    }
}

fn engine() -> Engine {
    Engine::new(
        EnvironmentSpec::new("cloud"),
        Normalizer::new(SecretKey::new(b"k".to_vec())),
    )
}

/// `name direction [fields]` of every drifted observation.
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

/// Every file below `dir` that holds `needle`.
fn files_holding(dir: &Path, needle: &str) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let Ok(entries) = std::fs::read_dir(dir) else {
        return out;
    };
    for e in entries.flatten() {
        let p = e.path();
        if p.is_dir() && !p.is_symlink() {
            out.extend(files_holding(&p, needle));
        } else if std::fs::read(&p).is_ok_and(|b| String::from_utf8_lossy(&b).contains(needle)) {
            out.push(p);
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_git_repository_is_checked_with_read_only_plans() {
    git_repository_case(terraform()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_git_repository_is_checked_with_read_only_plans_of_opentofu() {
    git_repository_case(tofu()).await;
}

async fn git_repository_case(t: Terraform) {
    aws_env();
    let moto = MotoServer::start();
    let setup = Setup::new(&moto);
    let mut repo = TestRepo::new();
    repo.write("infra/main.tf", MAIN_TF);
    repo.write("infra/modules/net/main.tf", NET_TF);
    repo.write("README.md", "infra\n");
    let alice = repo.commit("infra: logs bucket and network", "Alice");
    setup.apply(&t, &repo.path().join("infra"));
    let state_before = std::fs::read(setup.state()).expect("state");

    let cache = cache();
    let git = GitRepoSource::open(GitSourceConfig::new(repo.url(), cache.path()).path("infra"))
        .await
        .expect("open");
    let code = TerraformCode::Git {
        source: Arc::new(git),
        path: "infra".into(),
    };
    let src = TerraformSource::new(setup.config(&t, code, &moto));
    assert!(
        src.describe().contains("(workspace default)"),
        "{}",
        src.describe()
    );
    let run = src.plan().await.unwrap_or_else(|e| panic!("{}", chain(&e)));
    assert_eq!(
        run.revision.as_ref().map(|r| r.id.as_str()),
        Some(alice.as_str())
    );
    assert_eq!(run.module.folder, "infra");
    let state = run.state.clone().expect("a state");
    assert!(state.serial > 0 && !state.lineage.is_empty());
    let mut declared: Vec<(String, String, usize)> = run
        .declarations
        .iter()
        .map(|d| (d.file.clone(), d.name.clone(), d.line))
        .collect();
    declared.sort();
    assert_eq!(
        declared,
        vec![
            ("infra/main.tf".into(), "logs".into(), 32),
            ("infra/main.tf".into(), "net".into(), 40),
            ("infra/modules/net/main.tf".into(), "main".into(), 1),
        ]
    );
    let cloud = run.cloud.clone().expect("the account listed");
    assert!(cloud.errors.is_empty(), "{:?}", cloud.errors);
    assert!(cloud
        .resources
        .iter()
        .any(|r| r.kind == "aws_vpc" && r.default));
    // the providers' schemas were read: arguments left unset are compared
    let arguments = run.arguments.clone().expect("the providers' schemas");
    assert_eq!(
        arguments.is_argument("aws_s3_bucket", "versioning"),
        Some(true)
    );
    assert_eq!(arguments.is_argument("aws_s3_bucket", "arn"), Some(false));
    assert!(run.warnings.is_empty(), "{:?}", run.warnings);
    // and kept in the data folder for the next process: a new source reads them from there
    let kept: Vec<PathBuf> = std::fs::read_dir(setup.work().join("data"))
        .expect("data folder")
        .flatten()
        .map(|e| e.path())
        .filter(|p| {
            p.file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with("arguments-"))
        })
        .collect();
    assert_eq!(kept.len(), 1, "{kept:?}");
    let read: driftguard_core::terraform::Arguments =
        serde_json::from_slice(&std::fs::read(&kept[0]).expect("kept")).expect("arguments");
    assert_eq!(read, *arguments);
    let view = observe(&engine(), &run, &Default::default()).expect("observe");
    assert_eq!(drifts(&view), Vec::<String>::new());
    assert_eq!(view.observations.len(), 2);

    // by hand: the bucket's team tag, its versioning and a public policy (neither of which
    // the code sets), a bucket of its own; in the code, the VPC's name
    moto.boto3(
        r#"
import boto3, os
s3 = boto3.client("s3", endpoint_url=os.environ["ENDPOINT"])
tags = s3.get_bucket_tagging(Bucket="logs")["TagSet"]
tags = [t if t["Key"] != "team" else {"Key": "team", "Value": "hand"} for t in tags]
s3.put_bucket_tagging(Bucket="logs", Tagging={"TagSet": tags})
s3.put_bucket_versioning(Bucket="logs", VersioningConfiguration={"Status": "Enabled"})
s3.put_bucket_policy(Bucket="logs", Policy='{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":"*","Action":"s3:GetObject","Resource":"arn:aws:s3:::logs/*"}]}')
s3.create_bucket(Bucket="by-hand")
"#,
    );
    repo.write(
        "infra/modules/net/main.tf",
        &NET_TF.replace("\"main\"\n  }", "\"core\"\n  }"),
    );
    let bob = repo.commit("net: rename the VPC", "Bob");
    let fetched = src.fetch().await.expect("fetch");
    assert_eq!(fetched.map(|r| r.id), Some(bob.clone()));
    let run = src.plan().await.unwrap_or_else(|e| panic!("{}", chain(&e)));
    assert_eq!(
        run.revision.as_ref().map(|r| r.id.as_str()),
        Some(bob.as_str())
    );
    let view = observe(&engine(), &run, &Default::default()).expect("observe");
    assert_eq!(
        drifts(&view),
        vec![
            "aws_s3_bucket aws_s3_bucket.logs forward [policy,tags.team,tags_all.team,versioning[0].enabled]",
            "aws_s3_bucket by-hand forward []",
            "aws_vpc module.net.aws_vpc.main reverse [tags.Name,tags_all.Name]",
        ]
    );
    // the commit of each declaring file
    let commits = src
        .last_commits(&[
            "infra/main.tf".into(),
            "infra/modules/net/main.tf".into(),
            "nope.tf".into(),
        ])
        .await;
    assert_eq!(
        commits.get("infra/main.tf").map(|c| c.id.as_str()),
        Some(alice.as_str())
    );
    assert_eq!(
        commits
            .get("infra/modules/net/main.tf")
            .map(|c| c.author.as_str()),
        Some("Bob")
    );
    assert!(!commits.contains_key("nope.tf"));

    // read-only: the state is as the user's apply left it, the plan files are gone, and the
    // sensitive value is in none of DriftGuard's files
    assert_eq!(std::fs::read(setup.state()).expect("state"), state_before);
    let leftovers: Vec<_> = std::fs::read_dir(setup.work())
        .expect("work dir")
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("plans-"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
    assert_eq!(files_holding(&setup.work(), CANARY), Vec::<PathBuf>::new());
    assert!(!format!("{run:?}").contains(CANARY));

    // the cloud down: the live side cannot be read
    drop(moto);
    match src.plan().await {
        Err(SourceError::Unreachable { .. }) => {}
        other => panic!(
            "expected the cloud unreachable, got {:?}",
            other.map(|_| ())
        ),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_folder_is_checked_in_place_and_errors_name_what_is_wrong() {
    folder_case(terraform()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_folder_is_checked_in_place_and_errors_name_what_is_wrong_with_opentofu() {
    folder_case(tofu()).await;
}

async fn folder_case(t: Terraform) {
    aws_env();
    let moto = MotoServer::start();
    let setup = Setup::new(&moto);
    let folder = tempfile::tempdir().expect("temp dir");
    std::fs::write(folder.path().join("main.tf"), MAIN_TF).expect("write");
    std::fs::create_dir_all(folder.path().join("modules/net")).expect("mkdir");
    std::fs::write(folder.path().join("modules/net/main.tf"), NET_TF).expect("write");
    // nothing applied: the state is empty, everything of the code is missing and reverse
    let src = TerraformSource::new(setup.config(
        &t,
        TerraformCode::Folder(folder.path().to_path_buf()),
        &moto,
    ));
    let run = src.plan().await.unwrap_or_else(|e| panic!("{}", chain(&e)));
    assert!(run
        .revision
        .as_ref()
        .is_some_and(|r| r.id.starts_with("dir:")));
    assert!(run.state.is_none());
    assert!(
        run.warnings
            .iter()
            .any(|w| w.contains("state of workspace default is empty")),
        "{:?}",
        run.warnings
    );
    // refused unless the environment says the state is meant to be empty
    let err = observe(&engine(), &run, &Default::default()).expect_err("an empty state");
    assert!(
        chain(&err).contains("terraform.expectEmptyState: true"),
        "{}",
        chain(&err)
    );
    let mut meant = engine();
    meant.spec.expect_empty_state = true;
    let view = observe(&meant, &run, &Default::default()).expect("observe");
    assert_eq!(
        drifts(&view),
        vec![
            "aws_s3_bucket aws_s3_bucket.logs reverse []",
            "aws_vpc module.net.aws_vpc.main reverse []",
        ]
    );
    let declared: Vec<&str> = run.declarations.iter().map(|d| d.file.as_str()).collect();
    assert_eq!(declared, vec!["main.tf", "main.tf", "modules/net/main.tf"]);
    // the folder: no .terraform of DriftGuard's (its data folder is its own)
    assert!(!folder.path().join(".terraform").exists());
    assert!(src.last_commits(&["main.tf".into()]).await.is_empty());

    // a variable file that does not exist
    let mut c = setup.config(
        &t,
        TerraformCode::Folder(folder.path().to_path_buf()),
        &moto,
    );
    c.var_files.push("prod.tfvars".into());
    let err = TerraformSource::new(c)
        .plan()
        .await
        .expect_err("no such file");
    assert!(
        chain(&err).contains("variable file prod.tfvars: does not exist"),
        "{}",
        chain(&err)
    );
    // no terraform
    let mut c = setup.config(
        &t,
        TerraformCode::Folder(folder.path().to_path_buf()),
        &moto,
    );
    c.binary = Some("/nonexistent/terraform".into());
    let err = TerraformSource::new(c).plan().await.expect_err("no binary");
    assert!(
        chain(&err).contains("/nonexistent/terraform was not found (set terraform.binary)"),
        "{}",
        chain(&err)
    );
    // code that does not plan
    std::fs::write(
        folder.path().join("broken.tf"),
        "resource \"aws_s3_bucket\" \"x\" {\n  nonsense = 1\n}\n",
    )
    .expect("write");
    let err = src.plan().await.expect_err("broken code");
    let text = chain(&err);
    assert!(matches!(err, SourceError::Terraform(_)), "{text}");
    // named as the binary that ran: `terraform plan`, `tofu plan`
    let program = t
        .bin
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    assert!(
        text.contains(&format!("{program} init")) || text.contains(&format!("{program} plan")),
        "{text}"
    );
    assert!(text.contains("nonsense"), "{text}");
}

#[tokio::test]
async fn the_aws_lister_lists_every_kind_of_the_account() {
    aws_env();
    let moto = MotoServer::start();
    moto.boto3(
        r#"
import boto3, os
e = os.environ["ENDPOINT"]
s3 = boto3.client("s3", endpoint_url=e); ec2 = boto3.client("ec2", endpoint_url=e)
rds = boto3.client("rds", endpoint_url=e)
s3.create_bucket(Bucket="one"); s3.create_bucket(Bucket="two")
vpc = ec2.create_vpc(CidrBlock="10.1.0.0/16")["Vpc"]["VpcId"]
ec2.create_tags(Resources=[vpc], Tags=[{"Key": "Name", "Value": "made-by-hand"}])
ec2.create_security_group(GroupName="hand", Description="by hand", VpcId=vpc)
ami = ec2.describe_images()["Images"][0]["ImageId"]
ec2.run_instances(ImageId=ami, MinCount=1, MaxCount=1)
gone = ec2.run_instances(ImageId=ami, MinCount=1, MaxCount=1)["Instances"][0]["InstanceId"]
ec2.terminate_instances(InstanceIds=[gone])
rds.create_db_instance(DBInstanceIdentifier="hand-db", Engine="postgres",
    DBInstanceClass="db.t3.micro", AllocatedStorage=20, MasterUsername="u",
    MasterUserPassword="p4ssword!")
"#,
    );
    let mut config = AwsConfig::new(vec!["us-east-1".into()]);
    config.endpoint = Some(moto.url());
    let inv = AwsLister::new(config.clone()).list().await;
    assert!(inv.errors.is_empty(), "{:?}", inv.errors);
    assert_eq!(inv.kinds.len(), 5);
    let of = |kind: &str| -> Vec<(String, Option<String>, bool)> {
        let mut v: Vec<_> = inv
            .resources
            .iter()
            .filter(|r| r.kind == kind)
            .map(|r| (r.id.clone(), r.name.clone(), r.default))
            .collect();
        v.sort();
        v
    };
    assert_eq!(
        of("aws_s3_bucket")
            .iter()
            .map(|b| b.0.as_str())
            .collect::<Vec<_>>(),
        vec!["one", "two"]
    );
    let vpcs = of("aws_vpc");
    assert_eq!(vpcs.len(), 2, "{vpcs:?}");
    assert_eq!(vpcs.iter().filter(|v| v.2).count(), 1, "one default VPC");
    assert!(vpcs.iter().any(|v| v.1.as_deref() == Some("made-by-hand")));
    let sgs = of("aws_security_group");
    assert!(sgs.iter().any(|s| s.1.as_deref() == Some("hand") && !s.2));
    assert!(sgs
        .iter()
        .filter(|s| s.1.as_deref() == Some("default"))
        .all(|s| s.2));
    assert_eq!(
        of("aws_instance").len(),
        1,
        "the terminated instance is gone"
    );
    assert_eq!(
        of("aws_db_instance"),
        vec![("hand-db".into(), Some("hand-db".into()), false)]
    );

    // an account that cannot be reached: every kind is unknown, none is empty
    drop(moto);
    let inv = AwsLister::new(config).list().await;
    assert!(inv.kinds.is_empty() && inv.resources.is_empty());
    assert_eq!(inv.errors.len(), 5);
    assert!(
        inv.errors[0].message.contains("cannot reach s3"),
        "{:?}",
        inv.errors
    );
}
