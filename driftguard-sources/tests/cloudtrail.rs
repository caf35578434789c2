//! CloudTrail's reader against a local fake of `LookupEvents` (moto's server does not answer
//! it) that checks every request's SigV4 signature with botocore's own signer
//! (`test-support/cloudtrail_fake.py`, run with moto's Python: `MOTO_VENV`).

#![cfg(feature = "aws")]

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use chrono::{DateTime, Utc};
use driftguard_core::audit::{cloud_evidence, CloudWriteQuery, UserNames};
use driftguard_core::id::ResourceId;
use driftguard_core::normalize::{Normalizer, SecretKey};
use driftguard_sources::terraform::aws::Credentials;
use driftguard_sources::terraform::cloudtrail::{CloudTrailConfig, CloudTrailReader, LookupError};
use driftguard_sources::terraform::CloudWriteReader;
use driftguard_test_support::CloudTrailFake;
use serde_json::{json, Value};

const KEY: &str = "AKIDCLOUDTRAILTEST";
const SECRET: &str = "cloudtrail-test-secret-Zq9";

fn now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("after 1970")
        .as_secs_f64()
}

fn reader(fake: &CloudTrailFake, secret: &str) -> CloudTrailReader {
    let mut c = CloudTrailConfig::new("us-east-1");
    c.endpoint = Some(fake.url());
    c.credentials = Some(Credentials::new(KEY, secret, None, None, "test"));
    CloudTrailReader::new(c)
}

fn event(id: &str, name: &str, at: f64, resource: &str, user: &str, read_only: bool) -> Value {
    json!({
        "EventId": id,
        "EventName": name,
        "EventTime": at,
        "ResourceName": resource,
        "Username": user,
        "ReadOnly": read_only,
        "CloudTrailEvent": {
            "userIdentity": {"type": "IAMUser", "arn": format!("arn:aws:iam::123456789012:user/{user}")},
            "sourceIPAddress": "198.51.100.7",
            "userAgent": "aws-cli/2.15.0",
            "readOnly": read_only,
        },
    })
}

fn requests(fake: &CloudTrailFake) -> Vec<Value> {
    fake.requests()
        .iter()
        .map(|l| serde_json::from_str(l).expect("a JSON line"))
        .collect()
}

fn at(secs: f64) -> DateTime<Utc> {
    DateTime::from_timestamp(secs as i64, 0).expect("a time")
}

#[tokio::test]
async fn signed_lookups_page_keep_writes_and_honour_the_window() {
    let fake = CloudTrailFake::start(KEY, SECRET, "us-east-1");
    let t = now();
    fake.set_events(
        &json!([
            event(
                "e-old",
                "ModifySecurityGroupRules",
                t - 5000.0,
                "sg-1",
                "carol",
                false
            ),
            event(
                "e1",
                "AuthorizeSecurityGroupIngress",
                t - 100.0,
                "sg-1",
                "alice",
                false
            ),
            event(
                "e2",
                "DescribeSecurityGroups",
                t - 90.0,
                "sg-1",
                "alice",
                true
            ),
            event(
                "e3",
                "ModifySecurityGroupRules",
                t - 80.0,
                "sg-1",
                "bob",
                false
            ),
            event(
                "e-other",
                "DeleteBucket",
                t - 70.0,
                "bucket-2",
                "dave",
                false
            ),
        ])
        .to_string(),
    );
    let r = reader(&fake, SECRET);
    let (events, more) = r
        .lookup("sg-1", Some(at(t - 1000.0)))
        .await
        .expect("a signed lookup is accepted");
    assert!(!more);
    let ids: Vec<&str> = events.iter().map(|e| e.event_id.as_str()).collect();
    assert_eq!(ids, ["e3", "e1"], "writes of the window only, newest first");
    assert_eq!(events[1].username.as_deref(), Some("alice"));
    assert_eq!(events[1].source_ip.as_deref(), Some("198.51.100.7"));
    let seen = requests(&fake);
    assert_eq!(
        seen.len(),
        2,
        "three events of the window, two a page: {seen:?}"
    );
    assert!(seen.iter().all(|r| r["ok"] == true), "{seen:?}");
    assert!(seen[0]["body"].get("NextToken").is_none());
    assert!(seen[1]["body"]["NextToken"].is_string());
    let start = seen[0]["body"]["StartTime"].as_f64().expect("StartTime");
    assert_eq!(
        start as i64,
        (t - 1000.0) as i64 - 2,
        "the window less the skew"
    );
    assert_eq!(seen[0]["body"]["MaxResults"], 50);
    assert_eq!(
        seen[0]["body"]["LookupAttributes"],
        json!([{"AttributeKey": "ResourceName", "AttributeValue": "sg-1"}])
    );
    // the requests are spaced: two a second at most
    let times: Vec<f64> = seen.iter().filter_map(|r| r["time"].as_f64()).collect();
    assert!(times[1] - times[0] >= 0.45, "{times:?}");

    // no window: as far back as CloudTrail keeps (the old write too)
    let (events, _) = r.lookup("sg-1", None).await.expect("accepted");
    assert_eq!(events.len(), 3);

    // through the port: the writes as the core keeps them
    let id = ResourceId::new(
        "prod",
        "aws",
        "aws_security_group",
        None,
        "aws_security_group.web",
    );
    let answer = r
        .writes(&[CloudWriteQuery {
            id: id.clone(),
            kind: "aws_security_group".into(),
            cloud_id: "sg-1".into(),
            since: Some(at(t - 1000.0)),
        }])
        .await;
    assert!(answer.enabled && answer.errors.is_empty(), "{answer:?}");
    let normalizer = Normalizer::new(SecretKey::new(b"k".to_vec()));
    let ev = cloud_evidence(&answer, UserNames::Keep, &normalizer, None);
    let described: Vec<String> = ev.writes[&id].iter().map(|w| w.describe()).collect();
    assert_eq!(described.len(), 2, "{described:?}");
    assert!(
        described[0]
            .starts_with("alice (AuthorizeSecurityGroupIngress, update, from 198.51.100.7)"),
        "{described:?}"
    );
    assert!(described[1].starts_with("bob (ModifySecurityGroupRules, update"));
}

#[tokio::test]
async fn a_wrong_secret_is_refused_and_said_without_the_secret() {
    let fake = CloudTrailFake::start(KEY, SECRET, "us-east-1");
    fake.set_events(
        &json!([event(
            "e1",
            "PutBucketPolicy",
            now() - 10.0,
            "b",
            "alice",
            false
        )])
        .to_string(),
    );
    let wrong = "not-the-secret-Xy7";
    let r = reader(&fake, wrong);
    let err = r.lookup("b", None).await.expect_err("refused");
    assert!(
        matches!(&err, LookupError::Refused { status: 403, code, .. } if code == "InvalidSignatureException"),
        "{err:?}"
    );
    let id = ResourceId::new("prod", "aws", "aws_s3_bucket", None, "aws_s3_bucket.b");
    let answer = r
        .writes(&[CloudWriteQuery {
            id: id.clone(),
            kind: "aws_s3_bucket".into(),
            cloud_id: "b".into(),
            since: None,
        }])
        .await;
    assert!(answer.events.is_empty());
    assert_eq!(answer.errors.len(), 1, "{answer:?}");
    let msg = &answer.errors[0];
    assert!(
        msg.contains("InvalidSignatureException") && msg.contains("aws_s3_bucket.b"),
        "{msg}"
    );
    assert!(!msg.contains(wrong) && !msg.contains(SECRET), "{msg}");
    let seen = requests(&fake);
    assert!(
        seen.iter()
            .all(|r| r["ok"] == false && r["why"] == "signature mismatch"),
        "{seen:?}"
    );

    // another region's signature is refused too (the scope is checked)
    let mut c = CloudTrailConfig::new("eu-west-1");
    c.endpoint = Some(fake.url());
    c.credentials = Some(Credentials::new(KEY, SECRET, None, None, "test"));
    let err = CloudTrailReader::new(c)
        .lookup("b", None)
        .await
        .expect_err("refused");
    assert!(
        matches!(err, LookupError::Refused { status: 403, .. }),
        "{err:?}"
    );
}

#[tokio::test]
async fn lookups_a_check_are_bounded_and_the_rest_go_first_next_time() {
    let fake = CloudTrailFake::start(KEY, SECRET, "us-east-1");
    let mut c = CloudTrailConfig::new("us-east-1");
    c.endpoint = Some(fake.url());
    c.credentials = Some(Credentials::new(KEY, SECRET, None, None, "test"));
    c.max_lookups = 2;
    c.spacing = Duration::from_millis(200);
    let r = CloudTrailReader::new(c);
    let q = |n: &str| CloudWriteQuery {
        id: ResourceId::new("prod", "aws", "aws_s3_bucket", None, n),
        kind: "aws_s3_bucket".into(),
        cloud_id: n.into(),
        since: None,
    };
    let wanted = [q("a"), q("b"), q("c")];
    let first = r.writes(&wanted).await;
    assert_eq!(first.events.len(), 2, "{first:?}");
    assert!(
        first
            .notes
            .iter()
            .any(|n| n.contains("1 of the hand changes")),
        "{:?}",
        first.notes
    );
    let second = r.writes(&wanted).await;
    let left = wanted
        .iter()
        .find(|w| !first.events.contains_key(&w.id))
        .expect("one left");
    assert!(
        second.events.contains_key(&left.id),
        "the one left is asked first"
    );
    let seen = requests(&fake);
    assert_eq!(seen.len(), 4);
    let times: Vec<f64> = seen.iter().filter_map(|r| r["time"].as_f64()).collect();
    assert!(
        times.windows(2).all(|w| w[1] - w[0] >= 0.18),
        "spaced: {times:?}"
    );
    assert_eq!(r.requests(), 4);
}
