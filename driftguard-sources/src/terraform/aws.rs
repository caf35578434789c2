//! Listing an AWS account for resources in no Terraform state (feature `aws`): S3 buckets,
//! VPCs, security groups, EC2 instances and RDS instances, through the AWS APIs (S3
//! `ListBuckets`; EC2 `DescribeVpcs`, `DescribeSecurityGroups`, `DescribeInstances`; RDS
//! `DescribeDBInstances`), every request signed with AWS Signature Version 4 (the `aws-sigv4`
//! crate), every answer read with an XML parser (`roxmltree`), every page read
//! (`NextToken`, `Marker`, `ContinuationToken`).
//!
//! Credentials come from the AWS SDK's default credential chain (`aws-config`), as the AWS
//! provider finds them: the environment (`AWS_ACCESS_KEY_ID`, ...), the profile files
//! (`AWS_PROFILE`, with SSO and `credential_process`), a web identity token (IRSA), container
//! credentials (ECS, EKS Pod Identity), then the instance metadata service. They are resolved
//! once per listing and never logged or shown. [`AwsConfig::credentials`] replaces the chain
//! with fixed keys. An `endpoint` sends every listing request there instead of AWS (LocalStack,
//! moto's server); the chain itself still talks to AWS.

use std::fmt;
use std::time::{Duration, SystemTime};

use async_trait::async_trait;
use driftguard_core::error::chain;
use driftguard_core::terraform::cloud::AWS_KINDS;
use driftguard_core::terraform::{CloudError, CloudInventory, CloudResource};
use roxmltree::{Document, Node};

use super::aws_sign::{sign, CredentialChain};
use super::CloudLister;

pub use super::aws_sign::Credentials;

/// How an AWS account is listed.
#[derive(Clone, PartialEq, Eq)]
pub struct AwsConfig {
    /// Regions whose VPCs, security groups and instances are listed (S3 buckets are global).
    /// The first is also the region of the credential chain's own calls (STS, SSO).
    pub regions: Vec<String>,
    /// Send every listing request to this URL instead of AWS (`http://127.0.0.1:5000`).
    pub endpoint: Option<String>,
    /// Kinds to list (default: all of [`AWS_KINDS`]).
    pub kinds: Vec<String>,
    /// Globs of ids or names never reported.
    pub exclude: Vec<String>,
    /// Longest one request may take.
    pub timeout: Duration,
    /// Fixed credentials instead of the default credential chain.
    pub credentials: Option<Credentials>,
}

impl fmt::Debug for AwsConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AwsConfig")
            .field("regions", &self.regions)
            .field("endpoint", &self.endpoint)
            .field("kinds", &self.kinds)
            .field("exclude", &self.exclude)
            .finish_non_exhaustive()
    }
}

impl AwsConfig {
    /// Every kind of `regions`, on AWS itself, credentials from the default chain.
    pub fn new(regions: Vec<String>) -> Self {
        AwsConfig {
            regions,
            endpoint: None,
            kinds: AWS_KINDS.iter().map(|k| (*k).to_owned()).collect(),
            exclude: Vec::new(),
            timeout: Duration::from_secs(30),
            credentials: None,
        }
    }

    /// The region of the credential chain's calls and of S3's listing.
    fn home_region(&self) -> &str {
        self.regions.first().map_or("us-east-1", String::as_str)
    }
}

/// The first child element named `name` (any namespace).
fn child<'a, 'i>(node: Node<'a, 'i>, name: &str) -> Option<Node<'a, 'i>> {
    node.children().find(|c| c.has_tag_name(name))
}

/// The `item` elements of the child `set` (EC2's lists).
fn items<'a, 'i>(node: Node<'a, 'i>, set: &str) -> impl Iterator<Item = Node<'a, 'i>> {
    child(node, set)
        .into_iter()
        .flat_map(|s| s.children().filter(|c| c.has_tag_name("item")))
}

/// The text of the element at `path` (child names; empty for an empty element).
fn text_at<'a>(node: Node<'a, '_>, path: &[&str]) -> Option<&'a str> {
    let mut e = node;
    for p in path {
        e = child(e, p)?;
    }
    Some(e.text().unwrap_or(""))
}

/// The first element named `name` at any depth, `node` included.
fn find<'a, 'i>(node: Node<'a, 'i>, name: &str) -> Option<Node<'a, 'i>> {
    node.descendants().find(|d| d.has_tag_name(name))
}

/// The `Name` tag of an EC2 item.
fn name_tag(item: Node<'_, '_>) -> Option<String> {
    items(item, "tagSet")
        .find(|t| text_at(*t, &["key"]) == Some("Name"))
        .and_then(|t| text_at(t, &["value"]))
        .map(str::to_owned)
}

/// The account's lister.
pub struct AwsLister {
    config: AwsConfig,
    http: reqwest::Client,
    /// The credential chain, built at the first listing (it reads the profile files).
    chain: CredentialChain,
}

impl fmt::Debug for AwsLister {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AwsLister")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

/// One failed request, as one line (the AWS error code and message, or the HTTP status).
#[derive(Debug)]
struct Failure(String);

impl AwsLister {
    /// A lister for `config`.
    pub fn new(config: AwsConfig) -> Self {
        let http = reqwest::Client::builder()
            .timeout(config.timeout)
            .build()
            .unwrap_or_default();
        let chain = CredentialChain::new(config.credentials.clone(), config.home_region());
        AwsLister {
            config,
            http,
            chain,
        }
    }

    /// Credentials for one listing.
    async fn credentials(&self) -> Result<Credentials, Failure> {
        self.chain.credentials().await.map_err(Failure)
    }
}

/// One listing, with its credentials.
struct Listing<'a> {
    config: &'a AwsConfig,
    http: &'a reqwest::Client,
    credentials: Credentials,
}

impl Listing<'_> {
    /// The base URL of a service in a region.
    fn base(&self, service: &str, region: &str) -> String {
        match &self.config.endpoint {
            Some(e) => e.trim_end_matches('/').to_owned(),
            None => format!("https://{service}.{region}.amazonaws.com"),
        }
    }

    /// One signed request (a query, or a form for EC2 and RDS); its XML answer's text.
    async fn call(
        &self,
        service: &str,
        region: &str,
        query: &[(&str, &str)],
        form: Option<&[(&str, &str)]>,
    ) -> Result<String, Failure> {
        let base = self.base(service, region);
        let url = format!("{base}/");
        let builder = match form {
            Some(f) => self.http.post(&url).form(f),
            None => self.http.get(&url),
        };
        let mut request = builder
            .query(query)
            .build()
            .map_err(|e| Failure(format!("cannot build a request to {service}: {e}")))?;
        sign(
            &mut request,
            &self.credentials,
            region,
            service,
            SystemTime::now(),
        )
        .map_err(Failure)?;
        let resp = self
            .http
            .execute(request)
            .await
            .map_err(|e| Failure(format!("cannot reach {service} at {base}: {}", chain(&e))))?;
        let status = resp.status();
        let text = resp
            .text()
            .await
            .map_err(|e| Failure(format!("cannot read the answer of {service}: {e}")))?;
        if !status.is_success() {
            let doc = Document::parse(&text).ok();
            let msg = doc
                .as_ref()
                .and_then(|d| find(d.root_element(), "Error"))
                .map(|e| {
                    format!(
                        "{}: {}",
                        text_at(e, &["Code"]).unwrap_or("error"),
                        text_at(e, &["Message"]).unwrap_or("")
                    )
                })
                .unwrap_or_else(|| format!("HTTP {status}"));
            return Err(Failure(format!("{service} answered {msg}")));
        }
        Ok(text)
    }

    /// An EC2 `Describe*` action, every page, each page read by `read`.
    async fn ec2(
        &self,
        region: &str,
        action: &str,
        read: impl Fn(Node<'_, '_>) -> Vec<CloudResource>,
    ) -> Result<Vec<CloudResource>, Failure> {
        let mut out = Vec::new();
        let mut token: Option<String> = None;
        for _ in 0..1000 {
            let mut form = vec![("Action", action), ("Version", "2016-11-15")];
            if let Some(t) = &token {
                form.push(("NextToken", t));
            }
            let text = self.call("ec2", region, &[], Some(&form)).await?;
            let doc = parse(&text, "ec2")?;
            out.extend(read(doc.root_element()));
            token = text_at(doc.root_element(), &["nextToken"])
                .filter(|t| !t.is_empty())
                .map(str::to_owned);
            if token.is_none() {
                break;
            }
        }
        Ok(out)
    }

    async fn buckets(&self) -> Result<Vec<CloudResource>, Failure> {
        let region = self.config.home_region();
        let mut out = Vec::new();
        let mut token: Option<String> = None;
        for _ in 0..1000 {
            let mut query = Vec::new();
            if let Some(t) = &token {
                query.push(("continuation-token", t.as_str()));
            }
            let text = self.call("s3", region, &query, None).await?;
            let doc = parse(&text, "s3")?;
            for b in doc.descendants().filter(|d| d.has_tag_name("Bucket")) {
                if let Some(name) = text_at(b, &["Name"]) {
                    out.push(CloudResource {
                        kind: "aws_s3_bucket".into(),
                        id: name.to_owned(),
                        name: Some(name.to_owned()),
                        default: false,
                    });
                }
            }
            token = text_at(doc.root_element(), &["ContinuationToken"])
                .filter(|t| !t.is_empty())
                .map(str::to_owned);
            if token.is_none() {
                break;
            }
        }
        Ok(out)
    }

    async fn vpcs(&self, region: &str) -> Result<Vec<CloudResource>, Failure> {
        self.ec2(region, "DescribeVpcs", |page| {
            items(page, "vpcSet")
                .filter_map(|item| {
                    Some(CloudResource {
                        kind: "aws_vpc".into(),
                        id: text_at(item, &["vpcId"])?.to_owned(),
                        name: name_tag(item),
                        default: text_at(item, &["isDefault"]) == Some("true"),
                    })
                })
                .collect()
        })
        .await
    }

    async fn security_groups(&self, region: &str) -> Result<Vec<CloudResource>, Failure> {
        self.ec2(region, "DescribeSecurityGroups", |page| {
            items(page, "securityGroupInfo")
                .filter_map(|item| {
                    let name = text_at(item, &["groupName"]).map(str::to_owned);
                    Some(CloudResource {
                        kind: "aws_security_group".into(),
                        id: text_at(item, &["groupId"])?.to_owned(),
                        // every VPC's own group
                        default: name.as_deref() == Some("default"),
                        name,
                    })
                })
                .collect()
        })
        .await
    }

    async fn instances(&self, region: &str) -> Result<Vec<CloudResource>, Failure> {
        self.ec2(region, "DescribeInstances", |page| {
            items(page, "reservationSet")
                .flat_map(|reservation| items(reservation, "instancesSet"))
                .filter(|item| {
                    let state = text_at(*item, &["instanceState", "name"]).unwrap_or("");
                    state != "terminated" && state != "shutting-down"
                })
                .filter_map(|item| {
                    Some(CloudResource {
                        kind: "aws_instance".into(),
                        id: text_at(item, &["instanceId"])?.to_owned(),
                        name: name_tag(item),
                        default: false,
                    })
                })
                .collect()
        })
        .await
    }

    async fn databases(&self, region: &str) -> Result<Vec<CloudResource>, Failure> {
        let mut out = Vec::new();
        let mut marker: Option<String> = None;
        for _ in 0..1000 {
            let mut form = vec![("Action", "DescribeDBInstances"), ("Version", "2014-10-31")];
            if let Some(m) = &marker {
                form.push(("Marker", m));
            }
            let text = self.call("rds", region, &[], Some(&form)).await?;
            let doc = parse(&text, "rds")?;
            for d in doc.descendants().filter(|d| d.has_tag_name("DBInstance")) {
                let Some(id) = text_at(d, &["DBInstanceIdentifier"]) else {
                    continue;
                };
                out.push(CloudResource {
                    kind: "aws_db_instance".into(),
                    id: id.to_owned(),
                    name: Some(id.to_owned()),
                    default: false,
                });
            }
            marker = find(doc.root_element(), "Marker")
                .and_then(|m| m.text())
                .filter(|m| !m.is_empty())
                .map(str::to_owned);
            if marker.is_none() {
                break;
            }
        }
        Ok(out)
    }

    /// Every resource of `kind`, in every region (S3: once).
    async fn kind(&self, kind: &str) -> Result<Vec<CloudResource>, Failure> {
        if kind == "aws_s3_bucket" {
            return self.buckets().await;
        }
        let mut found = Vec::new();
        for region in &self.config.regions {
            let listed = match kind {
                "aws_vpc" => self.vpcs(region).await,
                "aws_security_group" => self.security_groups(region).await,
                "aws_instance" => self.instances(region).await,
                "aws_db_instance" => self.databases(region).await,
                other => Err(Failure(format!("{other} cannot be listed"))),
            };
            found.extend(listed.map_err(|Failure(m)| Failure(format!("{region}: {m}")))?);
        }
        Ok(found)
    }
}

/// A successful answer's XML document.
fn parse<'i>(text: &'i str, service: &str) -> Result<Document<'i>, Failure> {
    Document::parse(text)
        .map_err(|e| Failure(format!("{service} answered something that is not XML: {e}")))
}

#[async_trait]
impl CloudLister for AwsLister {
    fn describe(&self) -> String {
        let at = self
            .config
            .endpoint
            .as_ref()
            .map(|e| format!(" at {e}"))
            .unwrap_or_default();
        format!("aws {}{at}", self.config.regions.join(", "))
    }

    async fn list(&self) -> CloudInventory {
        let mut inv = CloudInventory {
            provider: "aws".into(),
            provider_source: "registry.terraform.io/hashicorp/aws".into(),
            exclude: self.config.exclude.clone(),
            ..CloudInventory::default()
        };
        let listing = self.credentials().await.map(|credentials| Listing {
            config: &self.config,
            http: &self.http,
            credentials,
        });
        for kind in &self.config.kinds {
            let listed = match &listing {
                Ok(l) => l.kind(kind).await,
                Err(Failure(m)) => Err(Failure(m.clone())),
            };
            match listed {
                Ok(found) => {
                    inv.kinds.push(kind.clone());
                    inv.resources.extend(found);
                }
                Err(Failure(message)) => inv.errors.push(CloudError {
                    kind: kind.clone(),
                    message,
                }),
            }
        }
        inv
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn xml_answers_are_read() {
        let text = r#"<?xml version="1.0" encoding="UTF-8"?>
<DescribeVpcsResponse xmlns="http://ec2.amazonaws.com/doc/2016-11-15/">
  <requestId>7a62c49f</requestId>
  <vpcSet>
    <item><vpcId>vpc-1</vpcId><isDefault>true</isDefault><tagSet/></item>
    <item><vpcId>vpc-2</vpcId><isDefault>false</isDefault>
      <tagSet><item><key>Name</key><value>a &amp; b</value></item></tagSet></item>
  </vpcSet>
  <nextToken><![CDATA[t<1>]]></nextToken>
</DescribeVpcsResponse>"#;
        let doc = parse(text, "ec2").expect("XML");
        let root = doc.root_element();
        assert_eq!(root.tag_name().name(), "DescribeVpcsResponse");
        let items: Vec<Node> = items(root, "vpcSet").collect();
        assert_eq!(items.len(), 2);
        assert_eq!(name_tag(items[1]).as_deref(), Some("a & b"));
        assert_eq!(name_tag(items[0]), None);
        assert_eq!(text_at(items[0], &["isDefault"]), Some("true"));
        assert_eq!(text_at(root, &["nextToken"]), Some("t<1>"));
        assert!(parse("<a><b></a>", "ec2").is_err());
    }

    #[test]
    fn an_error_answer_names_its_code() {
        let text = r#"<Response><Errors><Error><Code>UnauthorizedOperation</Code>
<Message>You are not authorized</Message></Error></Errors></Response>"#;
        let doc = parse(text, "ec2").expect("XML");
        let e = find(doc.root_element(), "Error").expect("an Error");
        assert_eq!(text_at(e, &["Code"]), Some("UnauthorizedOperation"));
    }

    /// The credential chain reads the process environment, so the check runs in a child
    /// process of this test binary whose environment holds nothing but a profile: no keys,
    /// no instance metadata (`AWS_EC2_METADATA_DISABLED`), no network at all.
    #[test]
    fn credentials_come_from_a_profile_file() {
        const CHILD: &str = "DRIFTGUARD_TEST_AWS_PROFILE_CHILD";
        if std::env::var_os(CHILD).is_some() {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("a runtime");
            let lister = AwsLister::new(AwsConfig::new(vec!["eu-west-1".into()]));
            let creds = rt
                .block_on(lister.credentials())
                .expect("credentials from the profile");
            assert_eq!(creds.access_key_id(), "AKIDPROFILE");
            assert_eq!(creds.secret_access_key(), "secret-from-the-file");
            assert_eq!(creds.session_token(), Some("token-from-the-file"));
            return;
        }
        let dir = tempfile::tempdir().expect("a temporary folder");
        let config = dir.path().join("config");
        let credentials = dir.path().join("credentials");
        std::fs::write(&config, "[profile ci]\nregion = eu-west-1\n").expect("written");
        std::fs::write(
            &credentials,
            "[ci]\naws_access_key_id = AKIDPROFILE\naws_secret_access_key = \
             secret-from-the-file\naws_session_token = token-from-the-file\n",
        )
        .expect("written");
        let name = concat!(module_path!(), "::credentials_come_from_a_profile_file");
        let name = name.split_once("::").map_or(name, |(_, n)| n);
        let out = std::process::Command::new(std::env::current_exe().expect("the test binary"))
            .args(["--exact", name, "--test-threads=1"])
            .env_clear()
            .env(CHILD, "1")
            .env("HOME", dir.path())
            .env("AWS_CONFIG_FILE", &config)
            .env("AWS_SHARED_CREDENTIALS_FILE", &credentials)
            .env("AWS_PROFILE", "ci")
            .env("AWS_EC2_METADATA_DISABLED", "true")
            .output()
            .expect("the test binary runs");
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success() && stdout.contains("1 passed"),
            "{stdout}\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    #[tokio::test]
    async fn fixed_credentials_replace_the_chain() {
        let mut config = AwsConfig::new(vec!["us-east-1".into()]);
        config.credentials = Some(Credentials::new("AKIDFIXED", "s3cr3t", None, None, "test"));
        let lister = AwsLister::new(config);
        let creds = lister.credentials().await.expect("the fixed credentials");
        assert_eq!(creds.access_key_id(), "AKIDFIXED");
        assert!(!format!("{lister:?}").contains("s3cr3t"));
    }
}
