//! Resources of a cloud account that no Terraform state holds (driftctl's "unmanaged"
//! resources): which account resources a state's resources stand for, and which account
//! resources are never orphans (those the cloud makes by itself).
//!
//! An adapter lists the account ([`CloudInventory`]); the rules here decide. Kinds are named
//! after the Terraform resource type that manages them (`aws_s3_bucket`, `aws_vpc`,
//! `aws_security_group`, `aws_instance`, `aws_db_instance`), so that an orphan reads as what
//! one would write to import it.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// The AWS kinds listed for orphans.
pub const AWS_KINDS: &[&str] = &[
    "aws_s3_bucket",
    "aws_vpc",
    "aws_security_group",
    "aws_instance",
    "aws_db_instance",
];

/// One resource of the account.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CloudResource {
    /// Its kind, as the Terraform resource type managing it (`aws_vpc`).
    pub kind: String,
    /// Its id as the state holds it: a bucket's name, `vpc-…`, `sg-…`, `i-…`, a database
    /// instance's identifier.
    pub id: String,
    /// A name to show, if it has one (a `Name` tag, a security group's name).
    #[serde(default)]
    pub name: Option<String>,
    /// Whether the cloud made it by itself (a default VPC, a VPC's `default` security
    /// group): never an orphan.
    #[serde(default)]
    pub default: bool,
}

/// A kind that could not be listed: its orphans are unknown.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CloudError {
    /// The kind.
    pub kind: String,
    /// Why (one line).
    pub message: String,
}

/// What a cloud account holds, for the kinds listed.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CloudInventory {
    /// The provider's group (`aws`).
    pub provider: String,
    /// The provider's source address (`registry.terraform.io/hashicorp/aws`).
    pub provider_source: String,
    /// The kinds that were listed (those in `errors` were not).
    pub kinds: Vec<String>,
    /// The resources.
    pub resources: Vec<CloudResource>,
    /// Kinds that could not be listed.
    pub errors: Vec<CloudError>,
    /// Globs of ids or names never reported, as configured (a state bucket, resources another
    /// tool manages).
    #[serde(default)]
    pub exclude: Vec<String>,
}

/// The account kind a resource of Terraform type `kind` stands for, if it is one that is
/// listed (`aws_default_vpc` is an `aws_vpc`).
pub fn account_kind(kind: &str) -> Option<&'static str> {
    Some(match kind {
        "aws_s3_bucket" => "aws_s3_bucket",
        "aws_vpc" | "aws_default_vpc" => "aws_vpc",
        "aws_security_group" | "aws_default_security_group" => "aws_security_group",
        "aws_instance" => "aws_instance",
        "aws_spot_instance_request" => "aws_instance",
        "aws_db_instance" => "aws_db_instance",
        _ => return None,
    })
}

/// The ids of the account resource a state resource of type `kind` with `values` stands for
/// (every attribute that can name it: a database instance by its identifier and its
/// resource id).
pub fn managed_ids(kind: &str, values: &Value) -> Vec<String> {
    let attrs: &[&str] = match kind {
        "aws_s3_bucket" => &["bucket", "id"],
        "aws_spot_instance_request" => &["spot_instance_id"],
        "aws_db_instance" => &["identifier", "resource_id", "id"],
        _ => &["id"],
    };
    attrs
        .iter()
        .filter_map(|a| values.get(*a).and_then(Value::as_str))
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .collect()
}

/// The account resources no state resource stands for and that the cloud did not make by
/// itself, given the ids the states hold by account kind; those the inventory's `exclude`
/// globs match (the id or the name) are left out.
pub fn unmanaged<'a>(
    inventory: &'a CloudInventory,
    managed: &BTreeMap<&'static str, BTreeSet<String>>,
) -> Vec<&'a CloudResource> {
    let excluded = |r: &CloudResource| {
        inventory.exclude.iter().any(|g| {
            crate::path::glob_match(g, &r.id)
                || r.name
                    .as_deref()
                    .is_some_and(|n| crate::path::glob_match(g, n))
        })
    };
    inventory
        .resources
        .iter()
        .filter(|r| !r.default && !excluded(r))
        .filter(|r| {
            !managed
                .get(r.kind.as_str())
                .is_some_and(|ids| ids.contains(&r.id))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn state_resources_name_account_resources() {
        assert_eq!(account_kind("aws_default_vpc"), Some("aws_vpc"));
        assert_eq!(account_kind("aws_subnet"), None);
        assert_eq!(
            managed_ids(
                "aws_db_instance",
                &json!({"id": "db-ABC", "identifier": "app", "resource_id": "db-ABC"})
            ),
            vec!["app", "db-ABC", "db-ABC"]
        );
        assert_eq!(
            managed_ids("aws_s3_bucket", &json!({"bucket": "b", "id": "b"})),
            vec!["b", "b"]
        );
        let r = |kind: &str, id: &str, default| CloudResource {
            kind: kind.into(),
            id: id.into(),
            name: None,
            default,
        };
        let inv = CloudInventory {
            resources: vec![
                r("aws_s3_bucket", "data", false),
                r("aws_s3_bucket", "hand-made", false),
                r("aws_s3_bucket", "tfstate-prod", false),
                r("aws_vpc", "vpc-default", true),
                r("aws_vpc", "vpc-1", false),
            ],
            exclude: vec!["tfstate-*".into()],
            ..CloudInventory::default()
        };
        let mut managed: BTreeMap<&'static str, BTreeSet<String>> = BTreeMap::new();
        managed
            .entry("aws_s3_bucket")
            .or_default()
            .insert("data".into());
        managed.entry("aws_vpc").or_default().insert("vpc-1".into());
        let found: Vec<&str> = unmanaged(&inv, &managed)
            .iter()
            .map(|r| r.id.as_str())
            .collect();
        assert_eq!(found, vec!["hand-made"]);
    }
}
