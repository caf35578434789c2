//! What a configuration may set, by resource type, as the providers' schemas say
//! (`terraform providers schema -json`).
//!
//! A resource type's schema lists its attributes, each `required`, `optional` and/or
//! `computed`, and its nested block types. An attribute that is `computed` and not `optional`
//! is the cloud's alone: no configuration can set it (a database's `latest_restorable_time`,
//! an `arn`), and it moves by itself. Every other attribute, and every nested block, is an
//! **argument**: something a configuration may set. An argument the code leaves unset that
//! changes in the cloud was changed by someone, not by the cloud (see `unset.rs`).

use std::collections::{BTreeMap, BTreeSet};

use serde::Deserialize;

/// The arguments of each resource type of the providers a root module uses (serialized as a
/// map of type to names, for a cache).
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize, Deserialize)]
#[serde(transparent)]
pub struct Arguments {
    kinds: BTreeMap<String, BTreeSet<String>>,
}

#[derive(Deserialize)]
struct SchemaDoc {
    #[serde(default)]
    provider_schemas: BTreeMap<String, ProviderDoc>,
}

#[derive(Deserialize)]
struct ProviderDoc {
    #[serde(default)]
    resource_schemas: BTreeMap<String, ResourceDoc>,
}

#[derive(Deserialize)]
struct ResourceDoc {
    block: BlockDoc,
}

#[derive(Deserialize)]
struct BlockDoc {
    #[serde(default)]
    attributes: BTreeMap<String, AttributeDoc>,
    #[serde(default)]
    block_types: BTreeMap<String, serde::de::IgnoredAny>,
}

#[derive(Deserialize)]
struct AttributeDoc {
    #[serde(default)]
    required: bool,
    #[serde(default)]
    optional: bool,
}

impl Arguments {
    /// Reads `terraform providers schema -json` (OpenTofu prints the same format). Only the
    /// managed resources' top-level attributes and block types are kept.
    pub fn from_schema_json(text: &str) -> Result<Self, String> {
        let doc: SchemaDoc = serde_json::from_str(text)
            .map_err(|e| format!("the providers' schemas are not Terraform's JSON format: {e}"))?;
        let mut kinds: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
        for provider in doc.provider_schemas.into_values() {
            for (kind, r) in provider.resource_schemas {
                let names = kinds.entry(kind).or_default();
                names.extend(
                    r.block
                        .attributes
                        .into_iter()
                        .filter(|(_, a)| a.required || a.optional)
                        .map(|(n, _)| n),
                );
                names.extend(r.block.block_types.into_keys());
            }
        }
        Ok(Arguments { kinds })
    }

    /// Arguments from `(type, names)` pairs (for tests and other sources of schemas).
    pub fn from_kinds<'a>(kinds: impl IntoIterator<Item = (&'a str, &'a [&'a str])>) -> Arguments {
        Arguments {
            kinds: kinds
                .into_iter()
                .map(|(k, names)| {
                    (
                        k.to_owned(),
                        names.iter().map(|n| (*n).to_owned()).collect(),
                    )
                })
                .collect(),
        }
    }

    /// Whether a configuration of `kind` may set `name` (`None`: the type is not in the
    /// schemas).
    pub fn is_argument(&self, kind: &str, name: &str) -> Option<bool> {
        self.kinds.get(kind).map(|names| names.contains(name))
    }

    /// How many resource types are known.
    pub fn len(&self) -> usize {
        self.kinds.len()
    }

    /// Whether no resource type is known.
    pub fn is_empty(&self) -> bool {
        self.kinds.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn computed_only_attributes_are_not_arguments_blocks_are() {
        // the shape of `terraform providers schema -json` (AWS provider 5.100.0, abridged)
        let text = r#"{"format_version":"1.0","provider_schemas":{
          "registry.terraform.io/hashicorp/aws":{"provider":{"block":{}},"resource_schemas":{
            "aws_db_instance":{"version":2,"block":{"attributes":{
              "latest_restorable_time":{"type":"string","computed":true},
              "ca_cert_identifier":{"type":"string","optional":true,"computed":true},
              "engine":{"type":"string","required":true},
              "arn":{"type":"string","computed":true}},
              "block_types":{"timeouts":{"nesting_mode":"single","block":{}}}}},
            "aws_s3_bucket":{"version":0,"block":{"attributes":{
              "bucket":{"type":"string","optional":true,"computed":true}},
              "block_types":{"versioning":{"nesting_mode":"list","block":{},"max_items":1}}}}
          }}}}"#;
        let a = Arguments::from_schema_json(text).expect("a schema");
        assert_eq!(a.len(), 2);
        assert_eq!(
            a.is_argument("aws_db_instance", "latest_restorable_time"),
            Some(false)
        );
        assert_eq!(a.is_argument("aws_db_instance", "arn"), Some(false));
        assert_eq!(
            a.is_argument("aws_db_instance", "ca_cert_identifier"),
            Some(true)
        );
        assert_eq!(a.is_argument("aws_db_instance", "engine"), Some(true));
        assert_eq!(a.is_argument("aws_db_instance", "timeouts"), Some(true));
        assert_eq!(a.is_argument("aws_s3_bucket", "versioning"), Some(true));
        assert_eq!(a.is_argument("aws_vpc", "cidr_block"), None);
        assert!(Arguments::from_schema_json("{\"provider_schemas\": 3}").is_err());
        // kept as a map of type to names
        let kept = serde_json::to_value(&a).expect("serialized");
        assert_eq!(
            kept["aws_s3_bucket"],
            serde_json::json!(["bucket", "versioning"])
        );
        assert_eq!(serde_json::from_value::<Arguments>(kept).expect("read"), a);
    }
}
