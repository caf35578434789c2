//! Set-up mistakes of a Terraform environment, with a real terraform (or OpenTofu: `TOFU`)
//! against moto: each is reported naming what to fix (issue #35), not as an unreachable cloud
//! or an unreadable desired state.
//!
//! - a provider mirror that lacks the provider: `init` says which provider and which CLI
//!   configuration's mirrors;
//! - no mirror and the registry out of reach (offline; here through a proxy that refuses
//!   connections): `init` says the registry cannot be reached and to give a mirror;
//! - no cloud credentials in DriftGuard's environment: access denied to the cloud, naming
//!   the ways to give them.
//!
//! And `init` runs only when needed: not again while nothing it depends on changed, again when
//! the plan asks for it (a module call added).
//!
//! This binary runs without AWS credentials in its environment (the user's own terraform
//! gets them explicitly), so every test here shares that environment.

use std::path::{Path, PathBuf};
use std::sync::Once;
use std::time::Duration;

use driftguard_core::error::chain;
use driftguard_core::ports::{PlanSource, SourceError};
use driftguard_sources::terraform::{TerraformCode, TerraformConfig, TerraformSource};
use driftguard_test_support::{terraform, tofu, MotoServer, Terraform};

/// The secret key of the user's own terraform: it must appear in no error.
const SECRET: &str = "user-secret-key-5a1f9c";

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
    s3 = var.endpoint
  }
}

resource "aws_s3_bucket" "logs" {
  bucket = "logs"
}
"#;

/// DriftGuard's environment in this binary: no AWS credentials of any kind, no instance
/// metadata, and HTTPS only through a proxy that refuses connections (a machine offline, and
/// fast), so terraform's registry cannot be reached.
fn environment() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        for k in [
            "AWS_ACCESS_KEY_ID",
            "AWS_SECRET_ACCESS_KEY",
            "AWS_SESSION_TOKEN",
            "AWS_PROFILE",
            "AWS_DEFAULT_PROFILE",
            "AWS_WEB_IDENTITY_TOKEN_FILE",
            "AWS_ROLE_ARN",
            "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
            "AWS_CONTAINER_CREDENTIALS_FULL_URI",
            "TF_PLUGIN_CACHE_DIR",
        ] {
            std::env::remove_var(k);
        }
        std::env::set_var("AWS_CONFIG_FILE", "/nonexistent/aws-config");
        std::env::set_var(
            "AWS_SHARED_CREDENTIALS_FILE",
            "/nonexistent/aws-credentials",
        );
        std::env::set_var("AWS_EC2_METADATA_DISABLED", "true");
        std::env::set_var("HTTPS_PROXY", "http://127.0.0.1:1");
        std::env::set_var("https_proxy", "http://127.0.0.1:1");
        // the user's secret, as a variable of the environment: redacted from every message
        std::env::set_var("DG_TEST_SECRET_TOKEN", SECRET);
    });
}

/// The binaries the cases run with: terraform, and OpenTofu.
fn binaries() -> Vec<Terraform> {
    vec![terraform(), tofu()]
}

fn name(t: &Terraform) -> String {
    t.bin
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
}

/// A folder with the module and a variable file naming moto's endpoint.
fn module(moto: &MotoServer) -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("temp dir");
    std::fs::create_dir_all(dir.path().join("code")).expect("mkdir");
    std::fs::write(dir.path().join("code/main.tf"), MAIN_TF).expect("write");
    std::fs::write(
        dir.path().join("vars.tfvars"),
        format!("endpoint = \"{}\"\n", moto.url()),
    )
    .expect("write");
    dir
}

fn config(t: &Terraform, dir: &Path, cli: Option<PathBuf>) -> TerraformConfig {
    let mut c = TerraformConfig::new(TerraformCode::Folder(dir.join("code")), dir.join("work"));
    c.binary = Some(t.bin.clone());
    c.cli_config_file = cli;
    c.var_files = vec![dir.join("vars.tfvars").display().to_string()];
    c.backend_config = vec![format!("path={}", dir.join("state.tfstate").display())];
    c.timeout = Duration::from_secs(300);
    c
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_provider_missing_from_the_mirror_is_named_with_the_mirror() {
    environment();
    for t in binaries() {
        let moto = MotoServer::start();
        let dir = module(&moto);
        let empty = dir.path().join("empty-mirror");
        std::fs::create_dir_all(&empty).expect("mkdir");
        let cli = dir.path().join("tf.rc");
        std::fs::write(
            &cli,
            format!(
                "provider_installation {{\n  filesystem_mirror {{\n    path = \"{}\"\n  }}\n}}\n",
                empty.display()
            ),
        )
        .expect("write");
        let err = TerraformSource::new(config(&t, dir.path(), Some(cli.clone())))
            .plan()
            .await
            .expect_err("no provider");
        let text = chain(&err);
        assert!(
            matches!(err, SourceError::Backend { .. }),
            "{}: {text}",
            name(&t)
        );
        assert!(
            text.starts_with(&format!("{} init cannot install the provider hashicorp/aws: it is in none of the provider mirrors of the CLI configuration", name(&t))),
            "{}: {text}",
            name(&t)
        );
        assert!(
            text.contains(&cli.display().to_string()),
            "{}: {text}",
            name(&t)
        );
        assert!(!text.contains("cannot reach"), "{}: {text}", name(&t));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_registry_without_a_mirror_asks_for_one() {
    environment();
    for t in binaries() {
        let moto = MotoServer::start();
        let dir = module(&moto);
        // a CLI configuration with no mirror: providers from their registry
        let cli = dir.path().join("tf.rc");
        std::fs::write(&cli, "disable_checkpoint = true\n").expect("write");
        let err = TerraformSource::new(config(&t, dir.path(), Some(cli)))
            .plan()
            .await
            .expect_err("offline");
        let text = chain(&err);
        assert!(
            matches!(err, SourceError::Backend { .. }),
            "{}: {text}",
            name(&t)
        );
        assert!(
            text.starts_with(&format!("{} init cannot download the provider hashicorp/aws: its registry cannot be reached", name(&t))),
            "{}: {text}",
            name(&t)
        );
        assert!(text.contains("filesystem_mirror"), "{}: {text}", name(&t));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn missing_credentials_are_denied_access_to_the_cloud() {
    environment();
    for t in binaries() {
        let moto = MotoServer::start();
        let dir = module(&moto);
        // the user applies, with their credentials
        let data = dir.path().join("user-data");
        let code = dir.path().join("code");
        let backend = format!(
            "-backend-config=path={}",
            dir.path().join("state.tfstate").display()
        );
        let vars = format!("-var-file={}", dir.path().join("vars.tfvars").display());
        for args in [
            &["init", "-input=false", &backend][..],
            &["apply", "-auto-approve", "-input=false", &vars],
        ] {
            t.user(&code, &data, args, &[("AWS_SECRET_ACCESS_KEY", SECRET)]);
        }
        // DriftGuard's process has none
        let err = TerraformSource::new(config(&t, dir.path(), Some(t.cli_config.clone())))
            .plan()
            .await
            .expect_err("no credentials");
        let text = chain(&err);
        assert!(
            matches!(&err, SourceError::Forbidden { what } if what.starts_with(&format!("the cloud ({} plan): the provider found no credentials", name(&t)))),
            "{}: {text}",
            name(&t)
        );
        assert!(
            text.contains("AWS_ACCESS_KEY_ID") && text.contains("AWS_PROFILE"),
            "{text}"
        );
        assert!(!text.contains(SECRET), "{text}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn secret_values_of_the_environment_are_removed_from_errors() {
    environment();
    for t in binaries() {
        let dir = tempfile::tempdir().expect("temp dir");
        std::fs::create_dir_all(dir.path().join("code")).expect("mkdir");
        // a variable whose validation fails: terraform's diagnostic quotes its value, which
        // holds the secret of DriftGuard's environment (DG_TEST_SECRET_TOKEN)
        let code = MAIN_TF.replace(
            "variable \"endpoint\" {\n  type = string\n}\n",
            "variable \"endpoint\" {\n  type = string\n  validation {\n    condition     = startswith(var.endpoint, \"https://\")\n    error_message = \"The endpoint must be HTTPS.\"\n  }\n}\n",
        );
        assert!(code.contains("validation"));
        std::fs::write(dir.path().join("code/main.tf"), code).expect("write");
        std::fs::write(
            dir.path().join("vars.tfvars"),
            format!("endpoint = \"http://127.0.0.1:1/{SECRET}\"\n"),
        )
        .expect("write");
        let err = TerraformSource::new(config(&t, dir.path(), Some(t.cli_config.clone())))
            .plan()
            .await
            .expect_err("an invalid variable");
        let text = chain(&err);
        assert!(
            text.contains("The endpoint must be HTTPS"),
            "{}: {text}",
            name(&t)
        );
        assert!(
            text.contains("127.0.0.1:1/<redacted>"),
            "{}: {text}",
            name(&t)
        );
        assert!(!text.contains(SECRET), "{}: {text}", name(&t));
    }
}

/// `init` runs when nothing was initialized, not again while nothing it depends on changed
/// (its mark in the data folder is not rewritten), and again when the plan asks for it (a
/// module call added to the code).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn init_runs_only_when_needed() {
    environment();
    for t in binaries() {
        let moto = MotoServer::start();
        let dir = module(&moto);
        // this binary has no credentials in its environment: static keys in the code
        let code = MAIN_TF.replace(
            "  region ",
            "  access_key = \"testing\"\n  secret_key = \"testing\"\n  region ",
        );
        std::fs::write(dir.path().join("code/main.tf"), &code).expect("write");
        let mark = dir.path().join("work/data/driftguard-init");
        let src = TerraformSource::new(config(&t, dir.path(), Some(t.cli_config.clone())));
        let again = config(&t, dir.path(), Some(t.cli_config.clone()));
        let run = src
            .plan()
            .await
            .unwrap_or_else(|e| panic!("{}: {}", name(&t), chain(&e)));
        assert!(run.plan.text().contains("aws_s3_bucket.logs"));
        let first = std::fs::metadata(&mark)
            .expect("the init mark")
            .modified()
            .ok();
        // a new process, nothing changed: no init
        std::thread::sleep(Duration::from_millis(1100));
        TerraformSource::new(again)
            .plan()
            .await
            .unwrap_or_else(|e| panic!("{}: {}", name(&t), chain(&e)));
        let second = std::fs::metadata(&mark)
            .expect("the init mark")
            .modified()
            .ok();
        assert_eq!(first, second, "{}: init ran again", name(&t));
        // a module call added: the plan asks for init, which runs, then the plan again
        std::fs::create_dir_all(dir.path().join("code/modules/extra")).expect("mkdir");
        std::fs::write(
            dir.path().join("code/modules/extra/main.tf"),
            "resource \"aws_s3_bucket\" \"extra\" {\n  bucket = \"extra\"\n}\n",
        )
        .expect("write");
        std::fs::write(
            dir.path().join("code/main.tf"),
            format!("{code}\nmodule \"extra\" {{\n  source = \"./modules/extra\"\n}}\n"),
        )
        .expect("write");
        let run = src
            .plan()
            .await
            .unwrap_or_else(|e| panic!("{}: {}", name(&t), chain(&e)));
        assert!(
            run.plan.text().contains("module.extra.aws_s3_bucket.extra"),
            "{}",
            name(&t)
        );
        let third = std::fs::metadata(&mark)
            .expect("the init mark")
            .modified()
            .ok();
        assert_ne!(second, third, "{}: init did not run", name(&t));
    }
}
