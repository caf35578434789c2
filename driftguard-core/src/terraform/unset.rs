//! Attributes the code does not set: what the refresh-only plan shows of them, minus what
//! other resources of the state own.
//!
//! An attribute a resource block leaves unset (Optional and Computed in the provider's schema)
//! is the cloud's: a normal plan keeps whatever the cloud has, so an apply never shows it
//! changing. The refresh-only plan does (`resource_drift`: the state as the last apply wrote
//! it against the cloud now), and that is where a change made outside Terraform shows: the
//! security group of a module that keeps its rules as `aws_security_group_rule` resources
//! leaves its own `ingress` unset, and a rule added in the console shows only as that
//! `ingress` growing.
//!
//! Part of such an attribute can be another resource's: the rules of
//! `aws_security_group_rule`, `aws_vpc_security_group_ingress_rule` and
//! `aws_vpc_security_group_egress_rule` resources show in their group's `ingress`/`egress` as
//! well. Those are taken out, source by source, before anything is compared.

use std::collections::BTreeSet;

use serde_json::{Map, Value};

use super::plan::Plan;
use super::schema::Arguments;
use super::values::value_hash;

/// One rule of a security group, for one source: the group, `ingress` or `egress`, the
/// protocol (named: `tcp`, `-1` for all), the ports, and the source (`cidr:…`, `ipv6:…`,
/// `pl:…`, `sg:…`, or `self`).
pub(crate) type Atom = (String, &'static str, String, i64, i64, String);

/// The security group rules other resources of the state own (their refreshed values from
/// `plan`'s prior state), as atoms.
pub(crate) fn owned_rules(plan: &Plan) -> BTreeSet<Atom> {
    let mut out = BTreeSet::new();
    for (r, v) in plan.prior.values() {
        let s = |k: &str| v.get(k).and_then(Value::as_str).unwrap_or("").to_owned();
        let n = |k: &str| v.get(k).and_then(Value::as_i64).unwrap_or(0);
        let group = s("security_group_id");
        if group.is_empty() {
            continue;
        }
        match r.kind.as_str() {
            "aws_security_group_rule" => {
                let direction = match s("type").as_str() {
                    "ingress" => "ingress",
                    "egress" => "egress",
                    _ => continue,
                };
                let protocol = protocol(&s("protocol"));
                let (from, to) = ports(&protocol, n("from_port"), n("to_port"));
                let mut sources = Vec::new();
                for (key, prefix) in [
                    ("cidr_blocks", "cidr:"),
                    ("ipv6_cidr_blocks", "ipv6:"),
                    ("prefix_list_ids", "pl:"),
                ] {
                    for x in strings(v.get(key)) {
                        sources.push(format!("{prefix}{x}"));
                    }
                }
                let source_group = s("source_security_group_id");
                if v.get("self").and_then(Value::as_bool) == Some(true) || source_group == group {
                    sources.push("self".into());
                } else if !source_group.is_empty() {
                    sources.push(format!("sg:{}", group_id(&source_group)));
                }
                for source in sources {
                    out.insert((group.clone(), direction, protocol.clone(), from, to, source));
                }
            }
            "aws_vpc_security_group_ingress_rule" | "aws_vpc_security_group_egress_rule" => {
                let direction = if r.kind.ends_with("ingress_rule") {
                    "ingress"
                } else {
                    "egress"
                };
                let protocol = protocol(&s("ip_protocol"));
                let (from, to) = ports(&protocol, n("from_port"), n("to_port"));
                let referenced = s("referenced_security_group_id");
                let source = if !s("cidr_ipv4").is_empty() {
                    format!("cidr:{}", s("cidr_ipv4"))
                } else if !s("cidr_ipv6").is_empty() {
                    format!("ipv6:{}", s("cidr_ipv6"))
                } else if !s("prefix_list_id").is_empty() {
                    format!("pl:{}", s("prefix_list_id"))
                } else if referenced == group {
                    "self".into()
                } else if !referenced.is_empty() {
                    format!("sg:{}", group_id(&referenced))
                } else {
                    continue;
                };
                out.insert((group, direction, protocol, from, to, source));
            }
            _ => {}
        }
    }
    out
}

/// A protocol by name, as the security group reads it (`6` is `tcp`, `all` is `-1`).
fn protocol(p: &str) -> String {
    match p.to_ascii_lowercase().as_str() {
        "all" | "-1" => "-1".into(),
        "6" => "tcp".into(),
        "17" => "udp".into(),
        "1" => "icmp".into(),
        "58" => "icmpv6".into(),
        other => other.to_owned(),
    }
}

/// The ports of a rule (all protocols: none).
fn ports(protocol: &str, from: i64, to: i64) -> (i64, i64) {
    if protocol == "-1" {
        (0, 0)
    } else {
        (from, to)
    }
}

/// A security group id without its account (`123456789012/sg-1` → `sg-1`).
fn group_id(s: &str) -> &str {
    s.rsplit('/').next().unwrap_or(s)
}

fn strings(v: Option<&Value>) -> impl Iterator<Item = &str> {
    v.and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
}

/// `rules` (a security group's `ingress` or `egress`) without the sources `owned` holds: a
/// rule keeps the sources no other resource owns, and goes when it has none left.
pub(crate) fn without_owned(
    rules: &Value,
    group: &str,
    direction: &'static str,
    owned: &BTreeSet<Atom>,
) -> Value {
    let Value::Array(items) = rules else {
        return rules.clone();
    };
    let mut out = Vec::new();
    for rule in items {
        let Value::Object(m) = rule else {
            out.push(rule.clone());
            continue;
        };
        let protocol = protocol(m.get("protocol").and_then(Value::as_str).unwrap_or(""));
        let n = |k: &str| m.get(k).and_then(Value::as_i64).unwrap_or(0);
        let (from, to) = ports(&protocol, n("from_port"), n("to_port"));
        let is_owned = |source: String| {
            owned.contains(&(
                group.to_owned(),
                direction,
                protocol.clone(),
                from,
                to,
                source,
            ))
        };
        let mut kept = Map::new();
        let mut any = false;
        for (key, value) in m {
            let prefix = match key.as_str() {
                "cidr_blocks" => "cidr:",
                "ipv6_cidr_blocks" => "ipv6:",
                "prefix_list_ids" => "pl:",
                "security_groups" => "sg:",
                "self" => {
                    let own = value.as_bool() == Some(true) && !is_owned("self".into());
                    any |= own;
                    kept.insert(key.clone(), Value::Bool(own));
                    continue;
                }
                _ => {
                    kept.insert(key.clone(), value.clone());
                    continue;
                }
            };
            let left: Vec<Value> = strings(Some(value))
                .filter(|x| {
                    let x = if prefix == "sg:" { group_id(x) } else { x };
                    !is_owned(format!("{prefix}{x}"))
                })
                .map(|x| Value::String(x.to_owned()))
                .collect();
            any |= !left.is_empty();
            kept.insert(key.clone(), Value::Array(left));
        }
        if any {
            out.push(Value::Object(kept));
        }
    }
    Value::Array(out)
}

/// The ids and ARNs of the state's resources that another resource of the state names (a
/// rule's `security_group_id`, a bucket policy's `bucket`, a subnet's `vpc_id`): another
/// resource may write to such a resource, and which of its attributes it writes only the
/// provider knows, so its arguments left unset are not compared (the security group's rules
/// are: [`owned_rules`] says which are whose).
pub(crate) fn named_by_others(plan: &Plan) -> BTreeSet<String> {
    // each string of each resource's values (its own `id` and `arn` left out), with the
    // resources holding it
    let mut holders: std::collections::HashMap<&str, BTreeSet<&str>> = Default::default();
    for (address, (_, v)) in &plan.prior {
        let mut found = Vec::new();
        match v {
            Value::Object(m) => m
                .iter()
                .filter(|(k, _)| !matches!(k.as_str(), "id" | "arn"))
                .for_each(|(_, x)| collect_strings(x, 1, &mut found)),
            other => collect_strings(other, 0, &mut found),
        }
        for s in found {
            holders.entry(s).or_default().insert(address.as_str());
        }
    }
    let mut names = BTreeSet::new();
    for (address, (_, v)) in &plan.prior {
        for k in ["id", "arn"] {
            let Some(name) = v.get(k).and_then(Value::as_str) else {
                continue;
            };
            if holders
                .get(name)
                .is_some_and(|h| h.iter().any(|a| *a != address.as_str()))
            {
                names.insert(name.to_owned());
            }
        }
    }
    names
}

/// Every string of `v` (at most 16 levels deep).
fn collect_strings<'a>(v: &'a Value, depth: usize, out: &mut Vec<&'a str>) {
    if depth > 16 {
        return;
    }
    match v {
        Value::String(s) if !s.is_empty() => out.push(s),
        Value::Array(a) => a.iter().for_each(|x| collect_strings(x, depth + 1, out)),
        Value::Object(m) => m.values().for_each(|x| collect_strings(x, depth + 1, out)),
        _ => {}
    }
}

/// The arguments of a resource the code leaves unset that changed outside Terraform and an
/// apply would keep (the normal plan's value is the cloud's): a person set them, in the
/// console or the API, because the cloud never moves an argument by itself (the attributes
/// it moves are computed, not arguments: [`Arguments`]). Each such argument's code value is
/// taken to be the state's (what the last apply recorded), so that the comparison finds it
/// changed outside Terraform (forward). A resource another resource names
/// ([`named_by_others`]) is left out, and so is an argument of a type the schemas do not know.
pub(crate) fn hand_set_arguments(
    kind: &str,
    configured: Option<&Value>,
    arguments: &Arguments,
    unknown: &Value,
    (desired, live, state): (&mut Option<Value>, &mut Option<Value>, &mut Option<Value>),
) {
    let (Some(Value::Object(d)), Some(Value::Object(l)), Some(Value::Object(s))) =
        (desired.as_mut(), live.as_mut(), state.as_ref())
    else {
        return;
    };
    for k in unset_attributes(configured, l.keys()) {
        if arguments.is_argument(kind, &k) != Some(true)
            || unknown
                .get(k.as_str())
                .is_some_and(|u| *u != Value::Bool(false))
            || value_hash(d.get(k.as_str())) != value_hash(l.get(k.as_str()))
        {
            // the cloud's own, or an apply would change it: the normal comparison holds
            continue;
        }
        let recorded = s.get(k.as_str()).cloned().unwrap_or(Value::Null);
        if value_hash(Some(&recorded)) != value_hash(l.get(k.as_str())) {
            d.insert(k, recorded);
        }
    }
}

/// The top-level attributes of a resource the code does not set, given the shape of its block
/// (`None`: the block is not known, nothing is said to be unset).
pub(crate) fn unset_attributes<'a>(
    configured: Option<&Value>,
    values: impl Iterator<Item = &'a String>,
) -> Vec<String> {
    let Some(Value::Object(set)) = configured else {
        return Vec::new();
    };
    values
        .filter(|k| !set.contains_key(k.as_str()))
        .cloned()
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// A resource of the root module in `plan`'s refreshed state.
    fn add_prior(plan: &mut Plan, kind: &str, name: &str, values: Value) {
        let r = super::super::plan::PlannedResource {
            address: format!("{kind}.{name}"),
            module_address: String::new(),
            kind: kind.into(),
            name: name.into(),
            provider: "registry.terraform.io/hashicorp/aws".into(),
        };
        plan.prior.insert(r.address.clone(), (r, values));
    }

    #[test]
    fn rules_lose_the_sources_other_resources_own() {
        let owned: BTreeSet<Atom> = [
            (
                "sg-1".to_owned(),
                "ingress",
                "tcp".to_owned(),
                443,
                443,
                "cidr:10.0.0.0/16".to_owned(),
            ),
            (
                "sg-1".to_owned(),
                "ingress",
                "-1".to_owned(),
                0,
                0,
                "self".to_owned(),
            ),
            (
                "sg-1".to_owned(),
                "egress",
                "-1".to_owned(),
                0,
                0,
                "cidr:0.0.0.0/0".to_owned(),
            ),
        ]
        .into_iter()
        .collect();
        let ingress = json!([
            {"protocol": "tcp", "from_port": 443, "to_port": 443, "description": "x",
             "cidr_blocks": ["10.0.0.0/16", "0.0.0.0/0"], "ipv6_cidr_blocks": [],
             "security_groups": [], "prefix_list_ids": [], "self": false},
            {"protocol": "-1", "from_port": 0, "to_port": 0, "cidr_blocks": [],
             "ipv6_cidr_blocks": [], "security_groups": [], "prefix_list_ids": [], "self": true},
            {"protocol": "tcp", "from_port": 22, "to_port": 22, "cidr_blocks": ["0.0.0.0/0"],
             "ipv6_cidr_blocks": [], "security_groups": [], "prefix_list_ids": [], "self": false}
        ]);
        let left = without_owned(&ingress, "sg-1", "ingress", &owned);
        assert_eq!(
            left,
            json!([
                {"protocol": "tcp", "from_port": 443, "to_port": 443, "description": "x",
                 "cidr_blocks": ["0.0.0.0/0"], "ipv6_cidr_blocks": [],
                 "security_groups": [], "prefix_list_ids": [], "self": false},
                {"protocol": "tcp", "from_port": 22, "to_port": 22, "cidr_blocks": ["0.0.0.0/0"],
                 "ipv6_cidr_blocks": [], "security_groups": [], "prefix_list_ids": [],
                 "self": false}
            ])
        );
        // another group's, or the other direction's, rules are not owned
        assert_eq!(without_owned(&ingress, "sg-2", "ingress", &owned), ingress);
        assert_eq!(without_owned(&ingress, "sg-1", "egress", &owned), ingress);
        assert_eq!(protocol("6"), "tcp");
        assert_eq!(protocol("ALL"), "-1");
    }

    #[test]
    fn the_rule_resources_of_the_state_own_their_sources() {
        let mut plan = Plan::default();
        let mut add =
            |kind: &str, name: &str, values: Value| add_prior(&mut plan, kind, name, values);
        // as the AWS provider 5.100.0 refreshes them
        add(
            "aws_security_group_rule",
            "https",
            json!({"security_group_id": "sg-1", "type": "ingress", "protocol": "tcp",
                   "from_port": 443, "to_port": 443, "cidr_blocks": ["10.0.0.0/16"],
                   "ipv6_cidr_blocks": ["2001:db8::/32"], "prefix_list_ids": [],
                   "source_security_group_id": null, "self": false}),
        );
        add(
            "aws_security_group_rule",
            "peers",
            json!({"security_group_id": "sg-1", "type": "ingress", "protocol": "-1",
                   "from_port": 0, "to_port": 0, "source_security_group_id": "sg-1",
                   "self": false}),
        );
        add(
            "aws_vpc_security_group_ingress_rule",
            "ssh",
            json!({"security_group_id": "sg-1", "ip_protocol": "tcp", "from_port": 22,
                   "to_port": 22, "cidr_ipv4": "10.1.0.0/16"}),
        );
        add(
            "aws_vpc_security_group_egress_rule",
            "all",
            json!({"security_group_id": "sg-1", "ip_protocol": "-1", "from_port": null,
                   "to_port": null, "referenced_security_group_id": "123456789012/sg-2"}),
        );
        let owned = owned_rules(&plan);
        let atom = |d: &'static str, p: &str, f: i64, t: i64, s: &str| {
            ("sg-1".to_owned(), d, p.to_owned(), f, t, s.to_owned())
        };
        let want: BTreeSet<Atom> = [
            atom("ingress", "tcp", 443, 443, "cidr:10.0.0.0/16"),
            atom("ingress", "tcp", 443, 443, "ipv6:2001:db8::/32"),
            atom("ingress", "-1", 0, 0, "self"),
            atom("ingress", "tcp", 22, 22, "cidr:10.1.0.0/16"),
            atom("egress", "-1", 0, 0, "sg:sg-2"),
        ]
        .into_iter()
        .collect();
        assert_eq!(owned, want);
        // a group's entries as the provider reads them: an `all` egress to another account's
        // group, and a rule of its own
        let egress = json!([{"protocol": "-1", "from_port": 0, "to_port": 0,
            "security_groups": ["123456789012/sg-2"], "cidr_blocks": [], "self": false}]);
        assert_eq!(without_owned(&egress, "sg-1", "egress", &owned), json!([]));
    }

    #[test]
    fn resources_other_resources_name_are_told_apart() {
        let mut plan = Plan::default();
        let mut add =
            |kind: &str, name: &str, values: Value| add_prior(&mut plan, kind, name, values);
        add(
            "aws_s3_bucket",
            "logs",
            json!({"id": "logs", "arn": "arn:aws:s3:::logs", "bucket": "logs"}),
        );
        add(
            "aws_s3_bucket_versioning",
            "logs",
            json!({"id": "logs", "bucket": "logs",
                   "versioning_configuration": [{"status": "Enabled"}]}),
        );
        add(
            "aws_vpc",
            "main",
            json!({"id": "vpc-1", "arn": "arn:aws:ec2:vpc/vpc-1"}),
        );
        add(
            "aws_subnet",
            "a",
            json!({"id": "subnet-1", "vpc_id": "vpc-1", "tags": {"Name": "a"}}),
        );
        add(
            "aws_db_instance",
            "db",
            json!({"id": "db-1", "arn": "arn:aws:rds:db:db-1", "identifier": "db-1"}),
        );
        let named = named_by_others(&plan);
        assert_eq!(
            named.into_iter().collect::<Vec<_>>(),
            vec!["logs".to_owned(), "vpc-1".to_owned()]
        );
    }

    #[test]
    fn arguments_set_by_hand_are_compared_with_the_state_the_clouds_own_are_not() {
        let arguments = Arguments::from_kinds([(
            "aws_db_instance",
            &[
                "engine",
                "identifier",
                "backup_retention_period",
                "deletion_protection",
                "ca_cert_identifier",
                "tags",
                "versioning",
            ][..],
        )]);
        let configured = json!({"engine": true, "identifier": true, "tags": true});
        // the cloud now: the normal plan keeps what the code does not set
        let cloud = json!({"engine": "postgres", "identifier": "db-1",
            "backup_retention_period": 0, "deletion_protection": true,
            "ca_cert_identifier": "rds-ca-rsa2048-g1",
            "latest_restorable_time": "2026-12-07T11:05:00Z",
            "versioning": [{"enabled": true}],
            "tags": {"team": "hand"}});
        let mut desired = Some(cloud.clone());
        // except the tags, which the code sets: an apply would put them back
        desired.as_mut().expect("values")["tags"] = json!({"team": "db"});
        let mut live = Some(cloud.clone());
        // as the last apply recorded it
        let mut state = Some(json!({"engine": "postgres", "identifier": "db-1",
            "backup_retention_period": 7, "deletion_protection": false,
            "ca_cert_identifier": "rds-ca-rsa2048-g1",
            "latest_restorable_time": "2026-12-07T10:00:00Z",
            "versioning": [{"enabled": false}],
            "tags": {"team": "db"}}));
        hand_set_arguments(
            "aws_db_instance",
            Some(&configured),
            &arguments,
            &Value::Null,
            (&mut desired, &mut live, &mut state),
        );
        let d = desired.expect("values");
        assert_eq!(d["backup_retention_period"], json!(7));
        assert_eq!(d["deletion_protection"], json!(false));
        assert_eq!(d["versioning"], json!([{"enabled": false}]));
        // unchanged, the cloud's own (computed only), or set by the code
        assert_eq!(d["ca_cert_identifier"], json!("rds-ca-rsa2048-g1"));
        assert_eq!(d["latest_restorable_time"], json!("2026-12-07T11:05:00Z"));
        assert_eq!(d["tags"], json!({"team": "db"}));
        assert_eq!(live, Some(cloud.clone()));

        // a type the schemas do not know, or an unknown block shape: nothing is compared
        let mut desired = Some(cloud.clone());
        hand_set_arguments(
            "aws_rds_cluster",
            Some(&configured),
            &arguments,
            &Value::Null,
            (&mut desired, &mut live, &mut state),
        );
        assert_eq!(desired, Some(cloud.clone()));
        let mut desired = Some(cloud.clone());
        hand_set_arguments(
            "aws_db_instance",
            None,
            &arguments,
            &Value::Null,
            (&mut desired, &mut live, &mut state),
        );
        assert_eq!(desired, Some(cloud));
    }
}
