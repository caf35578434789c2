//! Listing an AWS account for resources in no Terraform state (feature `aws`): S3 buckets,
//! VPCs, security groups, EC2 instances and RDS instances, through the AWS APIs (S3
//! `ListBuckets`; EC2 `DescribeVpcs`, `DescribeSecurityGroups`, `DescribeInstances`; RDS
//! `DescribeDBInstances`), every request signed with AWS Signature Version 4 ([`sign`]), every
//! page read (`NextToken`, `Marker`, `ContinuationToken`).
//!
//! Credentials come from the environment (`AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`,
//! `AWS_SESSION_TOKEN`), as the AWS provider reads them; they are never logged or shown. An
//! `endpoint` sends every request there instead of AWS (LocalStack, moto's server).

use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use driftguard_core::terraform::cloud::AWS_KINDS;
use driftguard_core::terraform::{CloudError, CloudInventory, CloudResource};
use hmac::{Hmac, KeyInit, Mac};
use sha2::{Digest, Sha256};

use super::CloudLister;

/// How an AWS account is listed.
#[derive(Clone, PartialEq, Eq)]
pub struct AwsConfig {
    /// Regions whose VPCs, security groups and instances are listed (S3 buckets are global).
    pub regions: Vec<String>,
    /// Send every request to this URL instead of AWS (`http://127.0.0.1:5000`).
    pub endpoint: Option<String>,
    /// Kinds to list (default: all of [`AWS_KINDS`]).
    pub kinds: Vec<String>,
    /// Globs of ids or names never reported.
    pub exclude: Vec<String>,
    /// Longest one request may take.
    pub timeout: Duration,
    /// The credentials (default: from the environment when listing).
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
    /// Every kind of `regions`, on AWS itself, credentials from the environment.
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
}

/// AWS credentials. `Debug` shows only the access key id.
#[derive(Clone, PartialEq, Eq)]
pub struct Credentials {
    /// The access key id.
    pub access_key_id: String,
    /// The secret access key.
    pub secret_access_key: String,
    /// A session token, for temporary credentials.
    pub session_token: Option<String>,
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Credentials")
            .field("access_key_id", &self.access_key_id)
            .field("secret_access_key", &"<redacted>")
            .field(
                "session_token",
                &self.session_token.as_ref().map(|_| "<redacted>"),
            )
            .finish()
    }
}

impl Credentials {
    /// From `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY` and `AWS_SESSION_TOKEN`.
    pub fn from_env() -> Option<Credentials> {
        let var = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
        Some(Credentials {
            access_key_id: var("AWS_ACCESS_KEY_ID")?,
            secret_access_key: var("AWS_SECRET_ACCESS_KEY")?,
            session_token: var("AWS_SESSION_TOKEN"),
        })
    }
}

/// One request to sign.
#[derive(Clone, Debug)]
pub struct Request<'a> {
    /// `GET` or `POST`.
    pub method: &'a str,
    /// The host (`ec2.us-east-1.amazonaws.com`, `127.0.0.1:5000`).
    pub host: &'a str,
    /// The path (`/`).
    pub path: &'a str,
    /// Query parameters.
    pub query: &'a [(String, String)],
    /// The body.
    pub body: &'a [u8],
    /// The region signed for.
    pub region: &'a str,
    /// The service signed for (`s3`, `ec2`, `rds`).
    pub service: &'a str,
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn hmac(key: &[u8], data: &[u8]) -> Vec<u8> {
    let mut m = Hmac::<Sha256>::new_from_slice(key).expect("HMAC accepts keys of any length");
    m.update(data);
    m.finalize().into_bytes().to_vec()
}

/// RFC 3986 encoding as SigV4 wants it (unreserved characters kept, `/` kept in paths).
fn uri_encode(s: &str, path: bool) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                out.push(char::from(b));
            }
            b'/' if path => out.push('/'),
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

/// The canonical query string of SigV4 (and the one sent).
pub fn canonical_query(query: &[(String, String)]) -> String {
    let mut pairs: Vec<(String, String)> = query
        .iter()
        .map(|(k, v)| (uri_encode(k, false), uri_encode(v, false)))
        .collect();
    pairs.sort();
    pairs
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join("&")
}

/// Signs `req` with AWS Signature Version 4 at `now`: the headers to send (`x-amz-date`,
/// `x-amz-content-sha256`, `x-amz-security-token` when there is a session token, and
/// `authorization`).
pub fn sign(req: &Request<'_>, creds: &Credentials, now: DateTime<Utc>) -> Vec<(String, String)> {
    let amz_date = now.format("%Y%m%dT%H%M%SZ").to_string();
    let date = now.format("%Y%m%d").to_string();
    let payload = hex(&Sha256::digest(req.body));
    let mut headers: BTreeMap<String, String> = BTreeMap::new();
    headers.insert("host".into(), req.host.to_owned());
    headers.insert("x-amz-content-sha256".into(), payload.clone());
    headers.insert("x-amz-date".into(), amz_date.clone());
    if let Some(t) = &creds.session_token {
        headers.insert("x-amz-security-token".into(), t.clone());
    }
    let signed: Vec<&str> = headers.keys().map(String::as_str).collect();
    let signed = signed.join(";");
    let canonical_headers: String = headers
        .iter()
        .map(|(k, v)| format!("{k}:{}\n", v.trim()))
        .collect();
    let canonical = format!(
        "{}\n{}\n{}\n{}\n{}\n{}",
        req.method,
        uri_encode(req.path, true),
        canonical_query(req.query),
        canonical_headers,
        signed,
        payload
    );
    let scope = format!("{date}/{}/{}/aws4_request", req.region, req.service);
    let to_sign = format!(
        "AWS4-HMAC-SHA256\n{amz_date}\n{scope}\n{}",
        hex(&Sha256::digest(canonical.as_bytes()))
    );
    let k_date = hmac(
        format!("AWS4{}", creds.secret_access_key).as_bytes(),
        date.as_bytes(),
    );
    let k_region = hmac(&k_date, req.region.as_bytes());
    let k_service = hmac(&k_region, req.service.as_bytes());
    let k_signing = hmac(&k_service, b"aws4_request");
    let signature = hex(&hmac(&k_signing, to_sign.as_bytes()));
    let mut out: Vec<(String, String)> = headers.into_iter().filter(|(k, _)| k != "host").collect();
    out.push((
        "authorization".into(),
        format!(
            "AWS4-HMAC-SHA256 Credential={}/{scope}, SignedHeaders={signed}, Signature={signature}",
            creds.access_key_id
        ),
    ));
    out
}

/// A small XML element tree, enough for the AWS query and S3 APIs' answers.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Element {
    /// The element's name (without a namespace prefix).
    pub name: String,
    /// Its text (entities decoded), when it holds text.
    pub text: String,
    /// Its child elements.
    pub children: Vec<Element>,
}

impl Element {
    /// The first child named `name`.
    pub fn child(&self, name: &str) -> Option<&Element> {
        self.children.iter().find(|c| c.name == name)
    }

    /// The children named `name`.
    pub fn all<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a Element> + 'a {
        self.children.iter().filter(move |c| c.name == name)
    }

    /// The text of the element at `path` (child names).
    pub fn text_at(&self, path: &[&str]) -> Option<&str> {
        let mut e = self;
        for p in path {
            e = e.child(p)?;
        }
        Some(e.text.as_str())
    }

    /// Every element named `name` at any depth (depth first).
    pub fn find_all<'a>(&'a self, name: &str, out: &mut Vec<&'a Element>) {
        for c in &self.children {
            if c.name == name {
                out.push(c);
            }
            c.find_all(name, out);
        }
    }
}

fn decode_entities(s: &str) -> String {
    if !s.contains('&') {
        return s.to_owned();
    }
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(i) = rest.find('&') {
        out.push_str(&rest[..i]);
        let after = &rest[i..];
        let Some(end) = after.find(';') else {
            out.push_str(after);
            return out;
        };
        let entity = &after[1..end];
        let decoded = match entity {
            "amp" => Some('&'),
            "lt" => Some('<'),
            "gt" => Some('>'),
            "quot" => Some('"'),
            "apos" => Some('\''),
            e if e.starts_with("#x") => u32::from_str_radix(&e[2..], 16)
                .ok()
                .and_then(char::from_u32),
            e if e.starts_with('#') => e[1..].parse().ok().and_then(char::from_u32),
            _ => None,
        };
        match decoded {
            Some(c) => out.push(c),
            None => out.push_str(&after[..=end]),
        }
        rest = &after[end + 1..];
    }
    out.push_str(rest);
    out
}

/// Parses an XML document into its root element (declarations, comments and attributes are
/// skipped; CDATA is text).
pub fn parse_xml(text: &str) -> Option<Element> {
    let mut stack: Vec<Element> = vec![Element::default()];
    let mut rest = text;
    while let Some(i) = rest.find('<') {
        let before = &rest[..i];
        if !before.trim().is_empty() {
            if let Some(top) = stack.last_mut() {
                top.text.push_str(&decode_entities(before));
            }
        }
        let after = &rest[i..];
        if let Some(c) = after.strip_prefix("<![CDATA[") {
            let end = c.find("]]>")?;
            if let Some(top) = stack.last_mut() {
                top.text.push_str(&c[..end]);
            }
            rest = &c[end + 3..];
            continue;
        }
        if let Some(c) = after.strip_prefix("<!--") {
            rest = &c[c.find("-->")? + 3..];
            continue;
        }
        let end = after.find('>')?;
        let tag = &after[1..end];
        rest = &after[end + 1..];
        if tag.starts_with('?') || tag.starts_with('!') {
            continue;
        }
        if let Some(name) = tag.strip_prefix('/') {
            let done = stack.pop()?;
            let local = name.trim().rsplit(':').next().unwrap_or(name);
            if done.name != local {
                return None;
            }
            stack.last_mut()?.children.push(done);
            continue;
        }
        let self_closing = tag.ends_with('/');
        let name = tag.trim_end_matches('/').split_whitespace().next()?;
        let local = name.rsplit(':').next().unwrap_or(name);
        let e = Element {
            name: local.to_owned(),
            ..Element::default()
        };
        if self_closing {
            stack.last_mut()?.children.push(e);
        } else {
            stack.push(e);
        }
    }
    let mut doc = stack.pop()?;
    if !stack.is_empty() {
        return None;
    }
    doc.children.pop()
}

/// The account's lister.
#[derive(Debug)]
pub struct AwsLister {
    config: AwsConfig,
    http: reqwest::Client,
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
        AwsLister { config, http }
    }

    fn credentials(&self) -> Option<Credentials> {
        self.config
            .credentials
            .clone()
            .or_else(Credentials::from_env)
    }

    /// The base URL and host of a service in a region.
    fn endpoint(&self, service: &str, region: &str) -> (String, String) {
        match &self.config.endpoint {
            Some(e) => {
                let base = e.trim_end_matches('/').to_owned();
                let host = base
                    .split_once("://")
                    .map_or(base.as_str(), |(_, h)| h)
                    .split('/')
                    .next()
                    .unwrap_or_default()
                    .to_owned();
                (base, host)
            }
            None => {
                let host = format!("{service}.{region}.amazonaws.com");
                (format!("https://{host}"), host)
            }
        }
    }

    /// One signed request; its XML answer.
    async fn call(
        &self,
        service: &str,
        region: &str,
        method: &str,
        query: Vec<(String, String)>,
        form: Option<Vec<(String, String)>>,
    ) -> Result<Element, Failure> {
        let creds = self.credentials().ok_or_else(|| {
            Failure("no AWS credentials (AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY)".into())
        })?;
        let (base, host) = self.endpoint(service, region);
        let body = form.as_deref().map(canonical_query).unwrap_or_default();
        let req = Request {
            method,
            host: &host,
            path: "/",
            query: &query,
            body: body.as_bytes(),
            region,
            service,
        };
        let headers = sign(
            &req,
            &creds,
            DateTime::<Utc>::from(std::time::SystemTime::now()),
        );
        let q = canonical_query(&query);
        let url = if q.is_empty() {
            format!("{base}/")
        } else {
            format!("{base}/?{q}")
        };
        let mut rb = match method {
            "POST" => self.http.post(&url),
            _ => self.http.get(&url),
        };
        for (k, v) in headers {
            rb = rb.header(k, v);
        }
        if form.is_some() {
            rb = rb
                .header(
                    "content-type",
                    "application/x-www-form-urlencoded; charset=utf-8",
                )
                .body(body);
        }
        let resp = rb.send().await.map_err(|e| {
            Failure(format!(
                "cannot reach {service} at {base}: {}",
                driftguard_core::error::chain(&e)
            ))
        })?;
        let status = resp.status();
        let text = resp
            .text()
            .await
            .map_err(|e| Failure(format!("cannot read the answer of {service}: {e}")))?;
        let doc = parse_xml(&text);
        if !status.is_success() {
            let mut errors = Vec::new();
            if let Some(d) = &doc {
                if d.name == "Error" {
                    errors.push(d);
                }
                d.find_all("Error", &mut errors);
            }
            let msg = errors
                .first()
                .map(|e| {
                    format!(
                        "{}: {}",
                        e.text_at(&["Code"]).unwrap_or("error"),
                        e.text_at(&["Message"]).unwrap_or("")
                    )
                })
                .unwrap_or_else(|| format!("HTTP {status}"));
            return Err(Failure(format!("{service} answered {msg}")));
        }
        doc.ok_or_else(|| Failure(format!("{service} answered something that is not XML")))
    }

    /// An EC2 `Describe*` action, every page.
    async fn ec2(&self, region: &str, action: &str) -> Result<Vec<Element>, Failure> {
        let mut pages = Vec::new();
        let mut token: Option<String> = None;
        loop {
            let mut form = vec![
                ("Action".to_owned(), action.to_owned()),
                ("Version".to_owned(), "2016-11-15".to_owned()),
            ];
            if let Some(t) = &token {
                form.push(("NextToken".into(), t.clone()));
            }
            let doc = self
                .call("ec2", region, "POST", Vec::new(), Some(form))
                .await?;
            token = doc
                .text_at(&["nextToken"])
                .filter(|t| !t.is_empty())
                .map(str::to_owned);
            pages.push(doc);
            if token.is_none() || pages.len() > 1000 {
                return Ok(pages);
            }
        }
    }

    async fn buckets(&self) -> Result<Vec<CloudResource>, Failure> {
        let region = self
            .config
            .regions
            .first()
            .map_or("us-east-1", String::as_str);
        let mut out = Vec::new();
        let mut token: Option<String> = None;
        loop {
            let mut query = Vec::new();
            if let Some(t) = &token {
                query.push(("continuation-token".to_owned(), t.clone()));
            }
            let doc = self.call("s3", region, "GET", query, None).await?;
            let mut found = Vec::new();
            doc.find_all("Bucket", &mut found);
            for b in found {
                if let Some(name) = b.text_at(&["Name"]) {
                    out.push(CloudResource {
                        kind: "aws_s3_bucket".into(),
                        id: name.to_owned(),
                        name: Some(name.to_owned()),
                        default: false,
                    });
                }
            }
            token = doc
                .text_at(&["ContinuationToken"])
                .filter(|t| !t.is_empty())
                .map(str::to_owned);
            if token.is_none() {
                return Ok(out);
            }
        }
    }

    async fn vpcs(&self, region: &str) -> Result<Vec<CloudResource>, Failure> {
        let mut out = Vec::new();
        for page in self.ec2(region, "DescribeVpcs").await? {
            for item in page.child("vpcSet").into_iter().flat_map(|s| s.all("item")) {
                let Some(id) = item.text_at(&["vpcId"]) else {
                    continue;
                };
                out.push(CloudResource {
                    kind: "aws_vpc".into(),
                    id: id.to_owned(),
                    name: name_tag(item),
                    default: item.text_at(&["isDefault"]) == Some("true"),
                });
            }
        }
        Ok(out)
    }

    async fn security_groups(&self, region: &str) -> Result<Vec<CloudResource>, Failure> {
        let mut out = Vec::new();
        for page in self.ec2(region, "DescribeSecurityGroups").await? {
            for item in page
                .child("securityGroupInfo")
                .into_iter()
                .flat_map(|s| s.all("item"))
            {
                let Some(id) = item.text_at(&["groupId"]) else {
                    continue;
                };
                let name = item.text_at(&["groupName"]).map(str::to_owned);
                out.push(CloudResource {
                    kind: "aws_security_group".into(),
                    id: id.to_owned(),
                    // every VPC's own group
                    default: name.as_deref() == Some("default"),
                    name,
                });
            }
        }
        Ok(out)
    }

    async fn instances(&self, region: &str) -> Result<Vec<CloudResource>, Failure> {
        let mut out = Vec::new();
        for page in self.ec2(region, "DescribeInstances").await? {
            for reservation in page
                .child("reservationSet")
                .into_iter()
                .flat_map(|s| s.all("item"))
            {
                for item in reservation
                    .child("instancesSet")
                    .into_iter()
                    .flat_map(|s| s.all("item"))
                {
                    let Some(id) = item.text_at(&["instanceId"]) else {
                        continue;
                    };
                    let state = item.text_at(&["instanceState", "name"]).unwrap_or("");
                    if state == "terminated" || state == "shutting-down" {
                        continue;
                    }
                    out.push(CloudResource {
                        kind: "aws_instance".into(),
                        id: id.to_owned(),
                        name: name_tag(item),
                        default: false,
                    });
                }
            }
        }
        Ok(out)
    }

    async fn databases(&self, region: &str) -> Result<Vec<CloudResource>, Failure> {
        let mut out = Vec::new();
        let mut marker: Option<String> = None;
        for _ in 0..1000 {
            let mut form = vec![
                ("Action".to_owned(), "DescribeDBInstances".to_owned()),
                ("Version".to_owned(), "2014-10-31".to_owned()),
            ];
            if let Some(m) = &marker {
                form.push(("Marker".into(), m.clone()));
            }
            let doc = self
                .call("rds", region, "POST", Vec::new(), Some(form))
                .await?;
            let mut found = Vec::new();
            doc.find_all("DBInstance", &mut found);
            for d in found {
                let Some(id) = d.text_at(&["DBInstanceIdentifier"]) else {
                    continue;
                };
                out.push(CloudResource {
                    kind: "aws_db_instance".into(),
                    id: id.to_owned(),
                    name: Some(id.to_owned()),
                    default: false,
                });
            }
            let mut markers = Vec::new();
            doc.find_all("Marker", &mut markers);
            marker = markers
                .first()
                .map(|m| m.text.clone())
                .filter(|m| !m.is_empty());
            if marker.is_none() {
                break;
            }
        }
        Ok(out)
    }
}

/// The `Name` tag of an EC2 item.
fn name_tag(item: &Element) -> Option<String> {
    item.child("tagSet")?
        .all("item")
        .find(|t| t.text_at(&["key"]) == Some("Name"))
        .and_then(|t| t.text_at(&["value"]))
        .map(str::to_owned)
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
        for kind in &self.config.kinds {
            let mut found = Vec::new();
            let mut failed: Option<String> = None;
            if kind == "aws_s3_bucket" {
                match self.buckets().await {
                    Ok(b) => found = b,
                    Err(Failure(m)) => failed = Some(m),
                }
            } else {
                for region in &self.config.regions {
                    let listed = match kind.as_str() {
                        "aws_vpc" => self.vpcs(region).await,
                        "aws_security_group" => self.security_groups(region).await,
                        "aws_instance" => self.instances(region).await,
                        "aws_db_instance" => self.databases(region).await,
                        other => Err(Failure(format!("{other} cannot be listed"))),
                    };
                    match listed {
                        Ok(r) => found.extend(r),
                        Err(Failure(m)) => {
                            failed = Some(format!("{region}: {m}"));
                            break;
                        }
                    }
                }
            }
            match failed {
                Some(message) => inv.errors.push(CloudError {
                    kind: kind.clone(),
                    message,
                }),
                None => {
                    inv.kinds.push(kind.clone());
                    inv.resources.extend(found);
                }
            }
        }
        inv
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn signature_v4_matches_the_aws_test_suite() {
        // the `get-vanilla-query-order-key-case` case of AWS's SigV4 test suite, with the
        // content hash header every request of this module carries (S3 needs it), checked
        // against botocore's signer
        let creds = Credentials {
            access_key_id: "AKIDEXAMPLE".into(),
            secret_access_key: "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY".into(),
            session_token: None,
        };
        let now = Utc
            .with_ymd_and_hms(2015, 8, 30, 12, 36, 0)
            .single()
            .expect("valid time");
        let query = vec![
            ("Param2".to_owned(), "value2".to_owned()),
            ("Param1".to_owned(), "value1".to_owned()),
        ];
        let headers = sign(
            &Request {
                method: "GET",
                host: "example.amazonaws.com",
                path: "/",
                query: &query,
                body: b"",
                region: "us-east-1",
                service: "service",
            },
            &creds,
            now,
        );
        let auth = headers
            .iter()
            .find(|(k, _)| k == "authorization")
            .map(|(_, v)| v.as_str())
            .expect("authorization");
        assert_eq!(
            auth,
            "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request, SignedHeaders=host;x-amz-content-sha256;x-amz-date, Signature=311c7f58b10b06de8540bb5a27f441ee0609f1d5ad7b191e68d7ea87d90e3d6b"
        );
        assert!(!format!("{creds:?}").contains("wJalr"));
    }

    #[test]
    fn xml_answers_are_read() {
        let doc = parse_xml(
            r#"<?xml version="1.0" encoding="UTF-8"?>
<DescribeVpcsResponse xmlns="http://ec2.amazonaws.com/doc/2016-11-15/">
  <requestId>7a62c49f</requestId>
  <vpcSet>
    <item><vpcId>vpc-1</vpcId><isDefault>true</isDefault><tagSet/></item>
    <item><vpcId>vpc-2</vpcId><isDefault>false</isDefault>
      <tagSet><item><key>Name</key><value>a &amp; b</value></item></tagSet></item>
  </vpcSet>
  <nextToken><![CDATA[t<1>]]></nextToken>
</DescribeVpcsResponse>"#,
        )
        .expect("XML");
        assert_eq!(doc.name, "DescribeVpcsResponse");
        let items: Vec<&Element> = doc.child("vpcSet").expect("set").all("item").collect();
        assert_eq!(items.len(), 2);
        assert_eq!(name_tag(items[1]).as_deref(), Some("a & b"));
        assert_eq!(items[0].text_at(&["isDefault"]), Some("true"));
        assert_eq!(doc.text_at(&["nextToken"]), Some("t<1>"));
        assert!(parse_xml("<a><b></a>").is_none());
    }
}
