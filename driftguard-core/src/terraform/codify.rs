//! Codifying what no code owns: for resources of the account in no state (orphans made by
//! hand), the Terraform `import` blocks that bring them under the code, and the share of the
//! account's resources the code manages (the environment's IaC coverage).
//!
//! Pure rules; the adapter writes the blocks into a private copy of the root module and runs
//! `terraform plan -generate-config-out` to write their configuration
//! (`driftguard_sources::terraform`), then [`redact_generated`] runs over what terraform wrote.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use crate::engine::{Verdict, VerdictStatus};
use crate::normalize::Normalizer;
use crate::state::{Direction, DriftKind};

use super::cloud::{account_kind, unmanaged, CloudInventory, CloudResource};
use super::observe::managed_by_state;
use super::plan::read_plan;
use super::{PlanRun, TerraformError};

/// The file the import blocks are written to, in the root module's folder.
pub const IMPORTS_FILE: &str = "imports_driftguard.tf";

/// The file terraform writes the generated configuration to, in the root module's folder.
pub const GENERATED_FILE: &str = "generated_driftguard.tf";

/// One resource to import: where it goes in the code and what the cloud calls it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Import {
    /// The resource type (`aws_security_group`).
    pub kind: String,
    /// The id the provider imports it by (`sg-…`, a bucket's name).
    pub id: String,
    /// Its address in the root module (`aws_security_group.hand_made`).
    pub address: String,
}

/// A name for a resource block made from `text` (an orphan's name or id): lower case ASCII
/// letters, digits, `_` and `-`, starting with a letter or `_` (as Terraform requires),
/// anything else turned into `_`, runs of `_` made one. Never empty.
pub fn block_name(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        let c = c.to_ascii_lowercase();
        let c = if c.is_ascii_alphanumeric() || c == '-' {
            c
        } else {
            '_'
        };
        if c == '_' && out.ends_with('_') {
            continue;
        }
        out.push(c);
    }
    let trimmed = out.trim_matches(|c| c == '_' || c == '-');
    let mut name = trimmed.to_owned();
    if name.is_empty() {
        return "orphan".into();
    }
    if !name.starts_with(|c: char| c.is_ascii_alphabetic()) {
        name.insert_str(0, "r_");
    }
    name
}

/// The import of each orphan, in the order given: the address is the orphan's kind and a
/// block name made from its name (else its id), made unique with `_2`, `_3` … against the
/// others and against `taken` (the root module's addresses, in the state or the code).
pub fn imports(orphans: &[&CloudResource], taken: &BTreeSet<String>) -> Vec<Import> {
    let mut used: BTreeSet<String> = taken
        .iter()
        .map(|a| a.split('[').next().unwrap_or(a).to_owned())
        .collect();
    orphans
        .iter()
        .map(|r| {
            let base = block_name(r.name.as_deref().filter(|n| !n.is_empty()).unwrap_or(&r.id));
            let mut address = format!("{}.{base}", r.kind);
            let mut n = 2;
            while used.contains(&address) {
                address = format!("{}.{base}_{n}", r.kind);
                n += 1;
            }
            used.insert(address.clone());
            Import {
                kind: r.kind.clone(),
                id: r.id.clone(),
                address,
            }
        })
        .collect()
}

/// `s` as an HCL quoted string: `\`, `"` and control characters escaped, and `${`/`%{` written
/// `$${`/`%%{` so that nothing in an id is read as a template.
pub fn hcl_string(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    let mut chars = s.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '$' | '%' if chars.peek() == Some(&'{') => {
                out.push(c);
                out.push(c);
            }
            c if c.is_control() => out.push_str(&format!("\\u{:04X}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// The text of [`IMPORTS_FILE`]: one `import` block per import.
pub fn import_blocks(imports: &[Import]) -> String {
    let mut out = String::from(
        "# Resources of the account that no Terraform state held, found by DriftGuard.\n# Review the generated configuration, then `terraform apply` imports them.\n",
    );
    for i in imports {
        out.push_str(&format!(
            "\nimport {{\n  to = {}\n  id = {}\n}}\n",
            i.address,
            hcl_string(&i.id)
        ));
    }
    out
}

/// Words of an attribute name that hold a secret value (`password`, `master_password`,
/// `secret_string`, `private_key`, `token`).
const SECRET_WORDS: &[&str] = &[
    "password",
    "passwd",
    "secret",
    "token",
    "private_key",
    "credential",
    "api_key",
];

/// The configuration terraform generated with nothing secret left in it: terraform itself
/// writes `null # sensitive` for an attribute its provider marks sensitive; an attribute whose
/// name says it holds a secret (`password`, `secret`, `token`, `private_key`, …) and has a
/// value anyway becomes `null # sensitive (removed by DriftGuard)`, and every occurrence of one
/// of `secrets` (DriftGuard's own secret values) becomes `<redacted>`.
pub fn redact_generated(text: &str, secrets: &[String]) -> String {
    let mut out = String::with_capacity(text.len());
    for line in text.split_inclusive('\n') {
        let body = line.trim_end_matches(['\n', '\r']);
        let ending = &line[body.len()..];
        let redacted = body.split_once('=').and_then(|(name, value)| {
            let key = name.trim();
            let value = value.trim();
            let is_name = !key.is_empty()
                && key
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
            let secret = SECRET_WORDS
                .iter()
                .any(|w| key.to_ascii_lowercase().contains(w));
            // nothing, or a block opening (`{`, `[` alone: terraform writes its members
            // on their own lines)
            let empty = value.is_empty()
                || value.starts_with("null")
                || ["\"\"", "[]", "{}", "[", "{"].contains(&value);
            (is_name && secret && !empty).then(|| {
                let indent = &name[..name.len() - name.trim_start().len()];
                format!("{indent}{key} = null # sensitive (removed by DriftGuard)")
            })
        });
        let mut l = redacted.unwrap_or_else(|| body.to_owned());
        for s in secrets.iter().filter(|s| s.len() >= 4) {
            if l.contains(s.as_str()) {
                l = l.replace(s.as_str(), "<redacted>");
            }
        }
        out.push_str(&l);
        out.push_str(ending);
    }
    out
}

/// The configuration terraform generated, made plannable where a generator writes an empty
/// string for an unset argument: OpenTofu (1.12) writes `name_prefix = ""` beside
/// `name = "web"` (terraform writes `null` for an optional string it reads as `""`), and the
/// AWS provider refuses the two together. In each `resource` block, `<arg>_prefix = ""` whose
/// `<arg>` has a value becomes `<arg>_prefix = null`.
pub fn tidy_generated(text: &str) -> String {
    let lines: Vec<&str> = text.split_inclusive('\n').collect();
    // top-level arguments of one block: `  name = value`
    let argument = |l: &str| -> Option<(String, String)> {
        let body = l.trim_end_matches(['\n', '\r']);
        let rest = body.strip_prefix("  ")?;
        if rest.starts_with(' ') {
            return None;
        }
        let (k, v) = rest.split_once('=')?;
        let k = k.trim();
        (!k.is_empty() && k.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'))
            .then(|| (k.to_owned(), v.trim().to_owned()))
    };
    let mut out = String::with_capacity(text.len());
    let mut start = 0;
    while start < lines.len() {
        // one top-level block: up to the line `}`
        let end = (start..lines.len())
            .find(|&i| lines[i].trim_end() == "}")
            .map_or(lines.len(), |i| i + 1);
        let block = &lines[start..end];
        let set: BTreeMap<String, String> = block.iter().filter_map(|l| argument(l)).collect();
        for l in block {
            match argument(l) {
                Some((k, v))
                    if v == "\"\""
                        && k.strip_suffix("_prefix").is_some_and(|base| {
                            set.get(base)
                                .is_some_and(|b| b != "null" && b != "\"\"" && !b.is_empty())
                        }) =>
                {
                    let ending = &l[l.trim_end_matches(['\n', '\r']).len()..];
                    out.push_str(&format!("  {k} = null{ending}"));
                }
                _ => out.push_str(l),
            }
        }
        start = end;
    }
    out
}

/// How much of one kind of the account's resources code manages.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct KindCoverage {
    /// Resources a state holds.
    pub managed: usize,
    /// Resources no state holds (the orphans).
    pub unmanaged: usize,
}

/// The share of the account's resources, of the kinds listed, that code manages: those a state
/// holds against those none holds. The cloud's own resources (a default VPC, a VPC's
/// `default` group) and those `exclude` names count on neither side; a kind that could not be
/// listed is left out and named in `unknown_kinds`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Coverage {
    /// Resources a state holds.
    pub managed: usize,
    /// Resources no state holds.
    pub unmanaged: usize,
    /// By kind (the kinds listed).
    pub by_kind: BTreeMap<String, KindCoverage>,
    /// Kinds that could not be listed: not counted.
    #[serde(default)]
    pub unknown_kinds: Vec<String>,
}

impl Coverage {
    /// `managed / (managed + unmanaged)`; `None` when nothing was counted.
    pub fn ratio(&self) -> Option<f64> {
        let total = self.managed + self.unmanaged;
        (total > 0).then(|| self.managed as f64 / total as f64)
    }

    /// `87 % (26 of 30 resources)`, or `unknown (no resource listed)`.
    pub fn describe(&self) -> String {
        match self.ratio() {
            Some(r) => format!(
                "{} % ({} of {} resources)",
                (r * 100.0).round() as u64,
                self.managed,
                self.managed + self.unmanaged
            ),
            None => "unknown (no resource listed)".into(),
        }
    }
}

/// The coverage of `inventory`, the ids the states hold by account kind being `managed`.
pub fn coverage(
    inventory: &CloudInventory,
    managed: &BTreeMap<&'static str, BTreeSet<String>>,
) -> Coverage {
    let failed: BTreeSet<&str> = inventory.errors.iter().map(|e| e.kind.as_str()).collect();
    let mut out = Coverage {
        unknown_kinds: failed.iter().map(|k| (*k).to_owned()).collect(),
        ..Coverage::default()
    };
    for k in inventory
        .kinds
        .iter()
        .filter(|k| !failed.contains(k.as_str()))
    {
        out.by_kind.entry(k.clone()).or_default();
    }
    let orphans: BTreeSet<(&str, &str)> = unmanaged(inventory, managed)
        .into_iter()
        .map(|r| (r.kind.as_str(), r.id.as_str()))
        .collect();
    for r in &inventory.resources {
        if failed.contains(r.kind.as_str()) || r.default {
            continue;
        }
        let is_managed = managed
            .get(r.kind.as_str())
            .is_some_and(|ids| ids.contains(&r.id));
        let is_orphan = orphans.contains(&(r.kind.as_str(), r.id.as_str()));
        let k = out.by_kind.entry(r.kind.clone()).or_default();
        if is_managed {
            k.managed += 1;
            out.managed += 1;
        } else if is_orphan {
            k.unmanaged += 1;
            out.unmanaged += 1;
        }
        // neither: excluded by a glob
    }
    out
}

/// The kind a scan error says could not be listed (`cannot list aws_instance of the account
/// …`, as a check reports it), if it is one.
pub fn unlisted_kind(error: &str) -> Option<&str> {
    let rest = error.strip_prefix("cannot list ")?;
    let (kind, _) = rest.split_once(" of the account")?;
    (!kind.is_empty() && !kind.contains(' ')).then_some(kind)
}

/// The coverage as a check's verdicts give it, the account's kinds `kinds` listed and the
/// check's `errors` naming those that could not be: a resource of a listed kind that the
/// cloud has and a state holds (in sync, modified, or an orphan an apply would destroy) is
/// managed, one in no state (an orphan made by hand) is not; one the cloud does not have
/// (missing) or whose side is unknown is not counted. The same account as [`coverage`]
/// counts from the listing: the cloud's own and excluded resources are never verdicts.
pub fn coverage_of_verdicts<'a>(
    verdicts: impl IntoIterator<Item = &'a Verdict>,
    kinds: &[String],
    errors: &[String],
) -> Coverage {
    let unknown: BTreeSet<&str> = errors.iter().filter_map(|e| unlisted_kind(e)).collect();
    let mut out = Coverage {
        unknown_kinds: unknown.iter().map(|k| (*k).to_owned()).collect(),
        ..Coverage::default()
    };
    let counted: BTreeSet<&str> = kinds
        .iter()
        .map(String::as_str)
        .filter(|k| !unknown.contains(k))
        .collect();
    for k in &counted {
        out.by_kind.entry((*k).to_owned()).or_default();
    }
    for v in verdicts {
        let kind = v.id.kind.as_str();
        // the resource type that is the account's kind itself (not `aws_default_vpc`, the
        // cloud's own VPC adopted into a state: the listing leaves those out)
        if !counted.contains(kind) || account_kind(kind) != Some(kind) {
            continue;
        }
        let managed = match (v.status, v.drift.as_deref()) {
            (VerdictStatus::InSync, _) => true,
            (VerdictStatus::Drifted, Some(d)) => match d.kind {
                DriftKind::Modified => true,
                DriftKind::Orphan => d.direction != Direction::Forward,
                DriftKind::Missing => continue,
            },
            _ => continue,
        };
        let k = out.by_kind.entry(kind.to_owned()).or_default();
        if managed {
            k.managed += 1;
            out.managed += 1;
        } else {
            k.unmanaged += 1;
            out.unmanaged += 1;
        }
    }
    out
}

/// What a check says of the account: its orphans, the coverage, and the root module's
/// addresses (an import must not take one).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct AccountView {
    /// The account's resources in no state.
    pub orphans: Vec<CloudResource>,
    /// The share the code manages.
    pub coverage: Coverage,
    /// The addresses of the root module's resources (in the state or the code).
    pub addresses: BTreeSet<String>,
}

/// The account as a check's plans and listing show it (`None`: the account was not listed).
/// The same rule as the orphans [`observe`](super::observe) records.
pub fn account_view(
    run: &PlanRun,
    normalizer: &Normalizer,
) -> Result<Option<AccountView>, TerraformError> {
    let Some(inventory) = &run.cloud else {
        return Ok(None);
    };
    let refresh = read_plan(&run.refresh_only, "refresh-only plan", normalizer)?;
    let plan = read_plan(&run.plan, "plan", normalizer)?;
    let managed = managed_by_state(&refresh, &plan);
    let addresses = plan
        .changes
        .values()
        .map(|c| &c.resource)
        .chain(plan.prior.values().map(|(r, _)| r))
        .filter(|r| r.module_address.is_empty())
        .map(|r| format!("{}.{}", r.kind, r.name))
        .collect();
    Ok(Some(AccountView {
        orphans: unmanaged(inventory, &managed)
            .into_iter()
            .cloned()
            .collect(),
        coverage: coverage(inventory, &managed),
        addresses,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::terraform::CloudError;

    fn r(kind: &str, id: &str, name: Option<&str>) -> CloudResource {
        CloudResource {
            kind: kind.into(),
            id: id.into(),
            name: name.map(str::to_owned),
            default: false,
        }
    }

    #[test]
    fn block_names_are_valid_terraform_names() {
        assert_eq!(block_name("hand-made-reports"), "hand-made-reports");
        assert_eq!(block_name("Web SG (prod)"), "web_sg_prod");
        assert_eq!(block_name("sg-0a1b2c"), "sg-0a1b2c");
        assert_eq!(block_name("1st.bucket"), "r_1st_bucket");
        assert_eq!(block_name("__"), "orphan");
        assert_eq!(block_name("é"), "orphan");
        assert_eq!(block_name("-x-"), "x");
    }

    #[test]
    fn addresses_are_unique_and_never_the_states() {
        let a = r("aws_s3_bucket", "data", None);
        let b = r("aws_security_group", "sg-1", Some("web"));
        let c = r("aws_security_group", "sg-2", Some("web"));
        let d = r("aws_security_group", "sg-3", Some(""));
        let taken: BTreeSet<String> = ["aws_s3_bucket.data", "aws_security_group.web_2[0]"]
            .into_iter()
            .map(str::to_owned)
            .collect();
        let got: Vec<String> = imports(&[&a, &b, &c, &d], &taken)
            .into_iter()
            .map(|i| i.address)
            .collect();
        assert_eq!(
            got,
            vec![
                "aws_s3_bucket.data_2",
                "aws_security_group.web",
                "aws_security_group.web_3",
                "aws_security_group.sg-3",
            ]
        );
    }

    #[test]
    fn import_blocks_quote_ids() {
        assert_eq!(hcl_string("a\"b\\c"), r#""a\"b\\c""#);
        assert_eq!(hcl_string("x${y}%{z}"), r#""x$${y}%%{z}""#);
        assert_eq!(hcl_string("l\n\u{1}"), r#""l\n\u0001""#);
        let text = import_blocks(&[Import {
            kind: "aws_s3_bucket".into(),
            id: "hand-made".into(),
            address: "aws_s3_bucket.hand-made".into(),
        }]);
        assert!(
            text.ends_with("\nimport {\n  to = aws_s3_bucket.hand-made\n  id = \"hand-made\"\n}\n"),
            "{text}"
        );
    }

    #[test]
    fn generated_configuration_keeps_no_secret() {
        let text = "resource \"aws_db_instance\" \"x\" {\n  password = \"hunter22\"\n  master_password = null # sensitive\n  secret_arn = \"\"\n  name = \"app\"\n  note = \"key AKIAEXAMPLESECRET1\"\n  token_list = []\n}\n";
        let out = redact_generated(text, &["AKIAEXAMPLESECRET1".into(), "ab".into()]);
        assert_eq!(
            out,
            "resource \"aws_db_instance\" \"x\" {\n  password = null # sensitive (removed by DriftGuard)\n  master_password = null # sensitive\n  secret_arn = \"\"\n  name = \"app\"\n  note = \"key <redacted>\"\n  token_list = []\n}\n"
        );
        assert!(!out.contains("hunter22"));
    }

    #[test]
    fn empty_prefixes_beside_their_argument_are_null() {
        let text = "resource \"aws_s3_bucket\" \"a\" {\n  bucket        = \"hand-made\"\n  bucket_prefix = \"\"\n  tags = {\n    name_prefix = \"\"\n  }\n}\n\nresource \"aws_security_group\" \"b\" {\n  name        = null\n  name_prefix = \"\"\n}\n";
        assert_eq!(
            tidy_generated(text),
            "resource \"aws_s3_bucket\" \"a\" {\n  bucket_prefix = null\n".replace(
                "  bucket_prefix = null\n",
                "  bucket        = \"hand-made\"\n  bucket_prefix = null\n"
            ) + "  tags = {\n    name_prefix = \"\"\n  }\n}\n\nresource \"aws_security_group\" \"b\" {\n  name        = null\n  name_prefix = \"\"\n}\n"
        );
    }

    #[test]
    fn coverage_from_a_checks_verdicts() {
        use crate::id::ResourceId;
        let verdict = |kind: &str, name: &str, drift: Option<(DriftKind, Direction)>| {
            let id = ResourceId::new("prod", "aws", kind, None, name);
            Verdict {
                status: if drift.is_some() {
                    VerdictStatus::Drifted
                } else {
                    VerdictStatus::InSync
                },
                drift: drift.map(|(k, dir)| {
                    let mut d = crate::testkit::drift().id(id.clone()).build();
                    d.kind = k;
                    d.direction = dir;
                    Box::new(d)
                }),
                id,
            }
        };
        let verdicts = vec![
            verdict("aws_s3_bucket", "aws_s3_bucket.data", None),
            verdict(
                "aws_s3_bucket",
                "hand-made",
                Some((DriftKind::Orphan, Direction::Forward)),
            ),
            verdict(
                "aws_security_group",
                "aws_security_group.web",
                Some((DriftKind::Modified, Direction::Forward)),
            ),
            verdict(
                "aws_vpc",
                "module.net.aws_vpc.main",
                Some((DriftKind::Missing, Direction::Forward)),
            ),
            verdict(
                "aws_vpc",
                "aws_vpc.old",
                Some((DriftKind::Orphan, Direction::Reverse)),
            ),
            verdict("aws_default_vpc", "aws_default_vpc.this", None),
            verdict("aws_subnet", "aws_subnet.a", None),
            verdict(
                "aws_instance",
                "i-1",
                Some((DriftKind::Orphan, Direction::Forward)),
            ),
        ];
        let kinds: Vec<String> = crate::terraform::cloud::AWS_KINDS
            .iter()
            .map(|k| (*k).to_owned())
            .collect();
        let errors = vec![
            "cannot list aws_instance of the account (orphans of that kind unknown): access denied"
                .to_owned(),
            "something else".to_owned(),
        ];
        let c = coverage_of_verdicts(&verdicts, &kinds, &errors);
        assert_eq!((c.managed, c.unmanaged), (3, 1));
        assert_eq!(c.unknown_kinds, vec!["aws_instance"]);
        assert!(!c.by_kind.contains_key("aws_instance"));
        assert_eq!(
            c.by_kind["aws_vpc"],
            KindCoverage {
                managed: 1,
                unmanaged: 0
            }
        );
        assert_eq!(
            c.by_kind["aws_db_instance"],
            KindCoverage::default(),
            "a listed kind with nothing is named"
        );
        assert_eq!(c.describe(), "75 % (3 of 4 resources)");
        assert_eq!(unlisted_kind("cannot list a b of the account"), None);
    }

    #[test]
    fn coverage_counts_listed_kinds_only() {
        let mut default_vpc = r("aws_vpc", "vpc-default", None);
        default_vpc.default = true;
        let inv = CloudInventory {
            kinds: vec![
                "aws_s3_bucket".into(),
                "aws_vpc".into(),
                "aws_security_group".into(),
                "aws_instance".into(),
            ],
            resources: vec![
                r("aws_s3_bucket", "data", None),
                r("aws_s3_bucket", "hand-made", None),
                r("aws_s3_bucket", "tfstate-prod", None),
                default_vpc,
                r("aws_vpc", "vpc-1", None),
                r("aws_security_group", "sg-1", Some("web")),
                r("aws_security_group", "sg-2", Some("legacy")),
            ],
            errors: vec![CloudError {
                kind: "aws_instance".into(),
                message: "access denied".into(),
            }],
            exclude: vec!["tfstate-*".into()],
            ..CloudInventory::default()
        };
        let mut managed: BTreeMap<&'static str, BTreeSet<String>> = BTreeMap::new();
        managed
            .entry("aws_s3_bucket")
            .or_default()
            .insert("data".into());
        managed.entry("aws_vpc").or_default().insert("vpc-1".into());
        managed
            .entry("aws_security_group")
            .or_default()
            .insert("sg-1".into());
        let c = coverage(&inv, &managed);
        assert_eq!((c.managed, c.unmanaged), (3, 2));
        assert_eq!(c.unknown_kinds, vec!["aws_instance"]);
        assert_eq!(
            c.by_kind.keys().collect::<Vec<_>>(),
            vec!["aws_s3_bucket", "aws_security_group", "aws_vpc"]
        );
        assert_eq!(
            c.by_kind["aws_s3_bucket"],
            KindCoverage {
                managed: 1,
                unmanaged: 1
            }
        );
        assert_eq!(
            c.by_kind["aws_vpc"],
            KindCoverage {
                managed: 1,
                unmanaged: 0
            }
        );
        assert_eq!(c.ratio(), Some(0.6));
        assert_eq!(c.describe(), "60 % (3 of 5 resources)");
        assert_eq!(Coverage::default().ratio(), None);
    }
}
