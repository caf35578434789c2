//! Who made a hand change in AWS (feature `aws`): CloudTrail's `LookupEvents`, read only, for
//! the resources of a Terraform check that changed outside Terraform
//! ([`driftguard_core::audit::cloud`] says which are asked for and what is kept).
//!
//! One lookup a resource: `POST /` with `X-Amz-Target:
//! com.amazonaws.cloudtrail.v20131101.CloudTrail_20131101.LookupEvents` and the resource's
//! cloud id as its `ResourceName`, from the window's start (less a little skew; at most 90 days
//! back, what CloudTrail keeps), signed with AWS Signature Version 4 for `cloudtrail` in the
//! region ([`super::aws_sign`], the listing's own signing and credential chain). Each page's
//! `NextToken` is followed, up to [`CloudTrailConfig::max_pages`]. Only management events are
//! there (CloudTrail's event history), and only writes are kept (`readOnly` false, no
//! `errorCode`).
//!
//! CloudTrail answers two lookups a second in a region: requests are spaced by
//! [`CloudTrailConfig::spacing`], at most [`CloudTrailConfig::max_lookups`] resources are looked
//! up a check (those asked longest ago first; the rest at the next check), and a throttled
//! lookup ends the round. An answer larger than [`MAX_ANSWER`] is refused. Nothing of the
//! credentials is ever logged or put in an error.

use std::collections::HashMap;
use std::fmt;
use std::sync::Mutex;
use std::time::{Duration, Instant, SystemTime};

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use driftguard_core::audit::{CloudEvent, CloudWriteQuery, CloudWrites, SKEW};
use driftguard_core::error::chain;
use driftguard_core::id::ResourceId;
use serde_json::Value;

use super::aws_sign::{sign, CredentialChain, Credentials};
use super::CloudWriteReader;

/// The `X-Amz-Target` of `LookupEvents`.
pub const LOOKUP_EVENTS: &str =
    "com.amazonaws.cloudtrail.v20131101.CloudTrail_20131101.LookupEvents";

/// The largest answer read (one page of 50 events).
pub const MAX_ANSWER: usize = 4 << 20;

/// How far back CloudTrail's event history goes.
pub const RETENTION: Duration = Duration::from_secs(90 * 24 * 3600);

/// How CloudTrail is read.
#[derive(Clone, PartialEq, Eq)]
pub struct CloudTrailConfig {
    /// The region whose trail is read (where the resources are).
    pub region: String,
    /// Send the requests to this URL instead of AWS.
    pub endpoint: Option<String>,
    /// Most resources looked up in one check (default 10).
    pub max_lookups: usize,
    /// Most pages of one lookup (default 4, 200 events).
    pub max_pages: usize,
    /// Least time between two requests (default 500 ms: CloudTrail allows two a second).
    pub spacing: Duration,
    /// Longest one request may take.
    pub timeout: Duration,
    /// Fixed credentials instead of the default credential chain.
    pub credentials: Option<Credentials>,
}

impl fmt::Debug for CloudTrailConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CloudTrailConfig")
            .field("region", &self.region)
            .field("endpoint", &self.endpoint)
            .field("max_lookups", &self.max_lookups)
            .finish_non_exhaustive()
    }
}

impl CloudTrailConfig {
    /// CloudTrail of `region`, on AWS itself, credentials from the default chain.
    pub fn new(region: impl Into<String>) -> Self {
        CloudTrailConfig {
            region: region.into(),
            endpoint: None,
            max_lookups: 10,
            max_pages: 4,
            spacing: Duration::from_millis(500),
            timeout: Duration::from_secs(30),
            credentials: None,
        }
    }
}

/// Why a lookup failed: one line, never a credential.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LookupError {
    /// No credentials.
    #[error("{0}")]
    Credentials(String),
    /// CloudTrail could not be reached, or its answer not read.
    #[error("cannot reach CloudTrail at {url}: {message}")]
    Unreachable {
        /// Where.
        url: String,
        /// What happened.
        message: String,
    },
    /// CloudTrail refused the request (`InvalidSignatureException`, `AccessDeniedException`,
    /// `ThrottlingException`, ...).
    #[error("CloudTrail answered {code}: {message}")]
    Refused {
        /// The HTTP status.
        status: u16,
        /// The error's code.
        code: String,
        /// Its message.
        message: String,
    },
    /// An answer that is not what `LookupEvents` answers.
    #[error("CloudTrail answered something unreadable: {0}")]
    Invalid(String),
}

/// One page of `LookupEvents`.
#[derive(Debug, Default, PartialEq)]
pub struct Page {
    /// Its events, as read.
    pub events: Vec<CloudEvent>,
    /// The next page's token.
    pub next: Option<String>,
}

/// Reads an answer's page: `Events[].{EventId, EventName, EventTime, Username, ReadOnly,
/// CloudTrailEvent}` (the latter a JSON text: `userIdentity.{arn, type, invokedBy}`,
/// `sourceIPAddress`, `userAgent`, `readOnly`, `errorCode`) and `NextToken`.
pub fn read_page(text: &str) -> Result<Page, LookupError> {
    let doc: Value =
        serde_json::from_str(text).map_err(|e| LookupError::Invalid(format!("not JSON: {e}")))?;
    let str_at = |v: &Value, k: &str| v.get(k).and_then(Value::as_str).map(str::to_owned);
    let mut page = Page {
        next: str_at(&doc, "NextToken").filter(|t| !t.is_empty()),
        ..Page::default()
    };
    let events = match doc.get("Events") {
        Some(Value::Array(a)) => a.as_slice(),
        None | Some(Value::Null) => &[],
        Some(_) => return Err(LookupError::Invalid("Events is not a list".into())),
    };
    for e in events {
        let Some(at) = e
            .get("EventTime")
            .and_then(Value::as_f64)
            .and_then(|t| DateTime::<Utc>::from_timestamp_millis((t * 1000.0) as i64))
        else {
            continue;
        };
        let detail: Value = str_at(e, "CloudTrailEvent")
            .and_then(|t| serde_json::from_str(&t).ok())
            .unwrap_or(Value::Null);
        let identity = detail.get("userIdentity").unwrap_or(&Value::Null);
        let read_only = match e.get("ReadOnly") {
            Some(Value::String(s)) => s.parse::<bool>().ok(),
            Some(Value::Bool(b)) => Some(*b),
            _ => None,
        }
        .or_else(|| detail.get("readOnly").and_then(Value::as_bool));
        page.events.push(CloudEvent {
            event_id: str_at(e, "EventId").unwrap_or_default(),
            event_name: str_at(e, "EventName").unwrap_or_default(),
            at,
            username: str_at(e, "Username").filter(|u| !u.is_empty()),
            arn: str_at(identity, "arn"),
            identity_type: str_at(identity, "type"),
            invoked_by: str_at(identity, "invokedBy"),
            source_ip: str_at(&detail, "sourceIPAddress"),
            user_agent: str_at(&detail, "userAgent").unwrap_or_default(),
            read_only,
            error_code: str_at(&detail, "errorCode"),
        });
    }
    Ok(page)
}

/// Reads CloudTrail for the writers of hand changes.
pub struct CloudTrailReader {
    config: CloudTrailConfig,
    http: reqwest::Client,
    chain: CredentialChain,
    /// When the previous request's answer came (requests are spaced).
    last_request: tokio::sync::Mutex<Option<Instant>>,
    /// When each resource was last looked up (the longest ago go first).
    asked: Mutex<HashMap<ResourceId, Instant>>,
    /// Requests sent so far (for tests).
    requests: std::sync::atomic::AtomicU64,
}

impl fmt::Debug for CloudTrailReader {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CloudTrailReader")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl CloudTrailReader {
    /// A reader for `config`.
    pub fn new(config: CloudTrailConfig) -> Self {
        let http = reqwest::Client::builder()
            .timeout(config.timeout)
            .build()
            .unwrap_or_default();
        let chain = CredentialChain::new(config.credentials.clone(), &config.region);
        CloudTrailReader {
            config,
            http,
            chain,
            last_request: tokio::sync::Mutex::new(None),
            asked: Mutex::new(HashMap::new()),
            requests: std::sync::atomic::AtomicU64::new(0),
        }
    }

    /// How many requests were sent.
    pub fn requests(&self) -> u64 {
        self.requests.load(std::sync::atomic::Ordering::Relaxed)
    }

    fn url(&self) -> String {
        match &self.config.endpoint {
            Some(e) => format!("{}/", e.trim_end_matches('/')),
            None => format!("https://cloudtrail.{}.amazonaws.com/", self.config.region),
        }
    }

    /// The write events of `cloud_id` since `since` (less [`SKEW`]; at most [`RETENTION`]
    /// back), newest first, every page up to [`CloudTrailConfig::max_pages`]; `true` when
    /// pages were left.
    pub async fn lookup(
        &self,
        cloud_id: &str,
        since: Option<DateTime<Utc>>,
    ) -> Result<(Vec<CloudEvent>, bool), LookupError> {
        let credentials = self
            .chain
            .credentials()
            .await
            .map_err(LookupError::Credentials)?;
        self.lookup_with(&credentials, cloud_id, since).await
    }

    async fn lookup_with(
        &self,
        credentials: &Credentials,
        cloud_id: &str,
        since: Option<DateTime<Utc>>,
    ) -> Result<(Vec<CloudEvent>, bool), LookupError> {
        let oldest = DateTime::<Utc>::from(SystemTime::now() - RETENTION);
        let start = since.map_or(oldest, |s| (s - SKEW).max(oldest)).timestamp();
        let mut out = Vec::new();
        let mut token: Option<String> = None;
        for _ in 0..self.config.max_pages.max(1) {
            let mut body = serde_json::json!({
                "LookupAttributes": [{"AttributeKey": "ResourceName", "AttributeValue": cloud_id}],
                "StartTime": start,
                "MaxResults": 50,
            });
            if let Some(t) = &token {
                body["NextToken"] = Value::String(t.clone());
            }
            let page = read_page(&self.call(credentials, &body.to_string()).await?)?;
            out.extend(page.events.into_iter().filter(CloudEvent::is_write));
            token = page.next;
            if token.is_none() {
                return Ok((out, false));
            }
        }
        Ok((out, true))
    }

    /// One signed `LookupEvents` request, spaced from the previous one; the answer's text.
    async fn call(&self, credentials: &Credentials, body: &str) -> Result<String, LookupError> {
        let url = self.url();
        let unreachable = |message: String| LookupError::Unreachable {
            url: url.clone(),
            message,
        };
        let mut request = self
            .http
            .post(&url)
            .header("x-amz-target", LOOKUP_EVENTS)
            .header("content-type", "application/x-amz-json-1.1")
            .body(body.to_owned())
            .build()
            .map_err(|e| unreachable(chain(&e)))?;
        // the previous request's answer ended at least `spacing` ago (so CloudTrail received
        // them at least that far apart)
        let mut last = self.last_request.lock().await;
        if let Some(at) = *last {
            let wait = self.config.spacing.saturating_sub(at.elapsed());
            if !wait.is_zero() {
                tokio::time::sleep(wait).await;
            }
        }
        sign(
            &mut request,
            credentials,
            &self.config.region,
            "cloudtrail",
            SystemTime::now(),
        )
        .map_err(LookupError::Credentials)?;
        self.requests
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let sent = self.http.execute(request).await;
        *last = Some(Instant::now());
        drop(last);
        let mut resp = sent.map_err(|e| unreachable(chain(&e)))?;
        let status = resp.status();
        let mut text = Vec::new();
        while let Some(chunk) = resp.chunk().await.map_err(|e| unreachable(chain(&e)))? {
            if text.len() + chunk.len() > MAX_ANSWER {
                return Err(LookupError::Invalid(format!(
                    "an answer larger than {MAX_ANSWER} bytes"
                )));
            }
            text.extend_from_slice(&chunk);
        }
        let text = String::from_utf8_lossy(&text).into_owned();
        if !status.is_success() {
            let doc: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
            let field = |k: &str| doc.get(k).and_then(Value::as_str).unwrap_or("");
            let kind = field("__type");
            let code = kind.rsplit('#').next().unwrap_or(kind);
            let message = [field("message"), field("Message")]
                .into_iter()
                .find(|m| !m.is_empty())
                .unwrap_or("")
                .chars()
                .take(300)
                .collect();
            return Err(LookupError::Refused {
                status: status.as_u16(),
                code: if code.is_empty() {
                    format!("HTTP {status}")
                } else {
                    code.to_owned()
                },
                message,
            });
        }
        Ok(text)
    }
}

#[async_trait]
impl CloudWriteReader for CloudTrailReader {
    fn describe(&self) -> String {
        let at = self
            .config
            .endpoint
            .as_ref()
            .map(|e| format!(" at {e}"))
            .unwrap_or_default();
        format!("CloudTrail {}{at}", self.config.region)
    }

    async fn writes(&self, wanted: &[CloudWriteQuery]) -> CloudWrites {
        let mut answer = CloudWrites {
            enabled: true,
            ..CloudWrites::default()
        };
        if wanted.is_empty() {
            return answer;
        }
        // the longest ago asked first; the rest wait for the next check
        let mut order: Vec<&CloudWriteQuery> = wanted.iter().collect();
        {
            let asked = self.asked.lock().expect("asked cell is never poisoned");
            order.sort_by_key(|q| asked.get(&q.id).copied());
        }
        let max = self.config.max_lookups.max(1);
        if order.len() > max {
            answer.notes.push(format!(
                "{}: who made {} of the hand changes is asked at the next check ({max} lookups a check)",
                self.describe(),
                order.len() - max
            ));
            order.truncate(max);
        }
        let credentials = match self.chain.credentials().await {
            Ok(c) => c,
            Err(m) => {
                answer.errors.push(format!(
                    "{}: who made the hand changes is unknown: {m}",
                    self.describe()
                ));
                return answer;
            }
        };
        for q in order {
            let looked = self.lookup_with(&credentials, &q.cloud_id, q.since).await;
            self.asked
                .lock()
                .expect("asked cell is never poisoned")
                .insert(q.id.clone(), Instant::now());
            match looked {
                Ok((events, more)) => {
                    if more {
                        answer.notes.push(format!(
                            "{}: {} ({}) has more write events than were read",
                            self.describe(),
                            q.id.name,
                            q.cloud_id
                        ));
                    }
                    answer.events.insert(q.id.clone(), events);
                }
                Err(e) => {
                    // the same refusal would meet every other lookup (a signature, a
                    // permission, the rate): the rest wait for the next check
                    answer.errors.push(format!(
                        "{}: who changed {} ({}) is unknown: {e}",
                        self.describe(),
                        q.id.name,
                        q.cloud_id
                    ));
                    break;
                }
            }
        }
        let keep: std::collections::HashSet<&ResourceId> = wanted.iter().map(|q| &q.id).collect();
        self.asked
            .lock()
            .expect("asked cell is never poisoned")
            .retain(|id, _| keep.contains(id));
        answer
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_page_is_read() {
        let detail = serde_json::json!({
            "userIdentity": {"type": "IAMUser", "arn": "arn:aws:iam::1:user/alice"},
            "sourceIPAddress": "198.51.100.7",
            "userAgent": "aws-cli/2.15",
            "readOnly": false,
        });
        let text = serde_json::json!({
            "Events": [
                {"EventId": "e1", "EventName": "AuthorizeSecurityGroupIngress",
                 "EventTime": 1_700_000_000.5, "Username": "alice", "ReadOnly": "false",
                 "CloudTrailEvent": detail.to_string()},
                {"EventId": "e2", "EventName": "DescribeSecurityGroups",
                 "EventTime": 1_700_000_001, "CloudTrailEvent": "{\"readOnly\": true}"},
                {"EventId": "e3", "EventName": "NoTime"},
            ],
            "NextToken": "t2",
        })
        .to_string();
        let page = read_page(&text).expect("a page");
        assert_eq!(page.next.as_deref(), Some("t2"));
        assert_eq!(page.events.len(), 2, "an event without a time is left out");
        let e = &page.events[0];
        assert_eq!(e.username.as_deref(), Some("alice"));
        assert_eq!(e.arn.as_deref(), Some("arn:aws:iam::1:user/alice"));
        assert_eq!(e.identity_type.as_deref(), Some("IAMUser"));
        assert_eq!(e.source_ip.as_deref(), Some("198.51.100.7"));
        assert_eq!(e.at.timestamp_millis(), 1_700_000_000_500);
        assert!(e.is_write());
        assert_eq!(page.events[1].read_only, Some(true));
        assert!(!page.events[1].is_write());
        assert!(read_page("{\"Events\": 3}").is_err());
        assert_eq!(read_page("{}").expect("empty"), Page::default());
    }

    #[test]
    fn credentials_stay_out_of_debug() {
        let mut c = CloudTrailConfig::new("us-east-1");
        c.credentials = Some(Credentials::new("AKID", "s3cr3t-key", None, None, "t"));
        let r = CloudTrailReader::new(c);
        assert!(!format!("{r:?}").contains("s3cr3t"));
        assert_eq!(r.url(), "https://cloudtrail.us-east-1.amazonaws.com/");
    }
}
