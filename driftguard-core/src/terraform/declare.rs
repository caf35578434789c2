//! Where a resource is declared: the `resource` and `module` blocks of a module's `.tf` (and
//! `.tf.json`) files, read from their text (no HCL evaluation: labels, comments and heredocs
//! are all that is understood).
//!
//! A resource instance of a plan (`module.net["a"].aws_vpc.main[0]`) is found by its module
//! key (`net`), type and name. A resource of a module whose code is not in the source (one
//! from a registry) is declared, as far as DriftGuard can say, by the `module` block calling
//! it.

use serde_json::Value;

/// What a block declares.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DeclarationKind {
    /// `resource "type" "name" {`.
    Resource,
    /// `module "name" {`.
    Module,
}

/// One `resource` or `module` block.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Declaration {
    /// What it declares.
    pub kind: DeclarationKind,
    /// The key of the module whose folder holds it: `""` for the root module, `net` for
    /// `module.net`, `net.sub` for `module.net.module.sub` (instance keys left out).
    pub module: String,
    /// The resource type (empty for a module block).
    pub resource_type: String,
    /// The block's name.
    pub name: String,
    /// The file, relative to the source root.
    pub file: String,
    /// The 1-based line of the block.
    pub line: usize,
}

/// The module key of a module instance address: `module.a["x"].module.b` → `a.b`.
pub fn module_key(module_address: &str) -> String {
    let mut names = Vec::new();
    let mut rest = module_address;
    while let Some(after) = rest.strip_prefix("module.") {
        let end = after.find(['.', '[']).unwrap_or(after.len());
        names.push(&after[..end]);
        rest = skip_instance_key(&after[end..]);
        rest = rest.strip_prefix('.').unwrap_or(rest);
    }
    names.join(".")
}

/// Skips a leading `[...]` instance key (a quoted key may hold `]` and `.`).
fn skip_instance_key(s: &str) -> &str {
    let Some(inner) = s.strip_prefix('[') else {
        return s;
    };
    let mut in_str = false;
    let mut escaped = false;
    for (i, c) in inner.char_indices() {
        match c {
            _ if escaped => escaped = false,
            '\\' if in_str => escaped = true,
            '"' => in_str = !in_str,
            ']' if !in_str => return &inner[i + 1..],
            _ => {}
        }
    }
    ""
}

/// The `resource` and `module` blocks of one file of the module `module` (its key).
pub fn declarations_in(module: &str, file: &str, text: &str) -> Vec<Declaration> {
    if file.ends_with(".tf.json") {
        return json_declarations(module, file, text);
    }
    let mut out = Vec::new();
    let mut heredoc: Option<String> = None;
    let mut comment = false;
    for (i, raw) in text.lines().enumerate() {
        let line = raw.trim();
        if let Some(end) = &heredoc {
            if line == end {
                heredoc = None;
            }
            continue;
        }
        if comment {
            if line.contains("*/") {
                comment = false;
            }
            continue;
        }
        if line.starts_with("/*") && !line.contains("*/") {
            comment = true;
            continue;
        }
        if let Some(d) = block(module, file, i + 1, line) {
            out.push(d);
        }
        if let Some(pos) = line.rfind("<<") {
            let tag = line[pos + 2..].trim_start_matches('-').trim();
            if !tag.is_empty() && tag.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
                heredoc = Some(tag.to_owned());
            }
        }
    }
    out
}

/// A block header on one line: `resource "t" "n" {` or `module "n" {` (labels quoted or
/// bare).
fn block(module: &str, file: &str, line_no: usize, line: &str) -> Option<Declaration> {
    let (kind, rest) = if let Some(r) = line.strip_prefix("resource") {
        (DeclarationKind::Resource, r)
    } else if let Some(r) = line.strip_prefix("module") {
        (DeclarationKind::Module, r)
    } else {
        return None;
    };
    if !rest.starts_with([' ', '\t', '"']) {
        return None;
    }
    let (first, rest) = label(rest.trim_start())?;
    let (resource_type, name, rest) = match kind {
        DeclarationKind::Resource => {
            let (second, rest) = label(rest.trim_start())?;
            (first, second, rest)
        }
        DeclarationKind::Module => (String::new(), first, rest),
    };
    if !rest.trim_start().starts_with('{') {
        return None;
    }
    Some(Declaration {
        kind,
        module: module.to_owned(),
        resource_type,
        name,
        file: file.to_owned(),
        line: line_no,
    })
}

/// One block label, quoted or bare, and what follows it.
fn label(s: &str) -> Option<(String, &str)> {
    if let Some(q) = s.strip_prefix('"') {
        let end = q.find('"')?;
        return Some((q[..end].to_owned(), &q[end + 1..]));
    }
    let end = s
        .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == '-'))
        .unwrap_or(s.len());
    (end > 0).then(|| (s[..end].to_owned(), &s[end..]))
}

/// The blocks of a `.tf.json` file (the line is that of the block's name).
fn json_declarations(module: &str, file: &str, text: &str) -> Vec<Declaration> {
    let Ok(doc) = serde_json::from_str::<Value>(text) else {
        return Vec::new();
    };
    let line_of = |after: &str, key: &str| {
        let start = text.find(&format!("\"{after}\"")).unwrap_or(0);
        let at = text[start..]
            .find(&format!("\"{key}\""))
            .map_or(start, |i| start + i);
        text[..at].matches('\n').count() + 1
    };
    let mut out = Vec::new();
    let names = |v: Option<&Value>| -> Vec<String> {
        v.and_then(Value::as_object)
            .map(|m| m.keys().cloned().collect())
            .unwrap_or_default()
    };
    if let Some(types) = doc.get("resource").and_then(Value::as_object) {
        for (t, blocks) in types {
            for n in names(Some(blocks)) {
                out.push(Declaration {
                    kind: DeclarationKind::Resource,
                    module: module.to_owned(),
                    resource_type: t.clone(),
                    line: line_of(t, &n),
                    name: n,
                    file: file.to_owned(),
                });
            }
        }
    }
    for n in names(doc.get("module")) {
        out.push(Declaration {
            kind: DeclarationKind::Module,
            module: module.to_owned(),
            resource_type: String::new(),
            line: line_of("module", &n),
            name: n,
            file: file.to_owned(),
        });
    }
    out
}

/// The block declaring a resource of type `resource_type` named `name` in the module
/// instance `module_address`: its `resource` block when the module's code was read, else
/// the `module` block calling the nearest module whose code was not.
pub fn find<'a>(
    declarations: &'a [Declaration],
    module_address: &str,
    resource_type: &str,
    name: &str,
) -> Option<&'a Declaration> {
    let key = module_key(module_address);
    if let Some(d) = declarations.iter().find(|d| {
        d.kind == DeclarationKind::Resource
            && d.module == key
            && d.resource_type == resource_type
            && d.name == name
    }) {
        return Some(d);
    }
    // the outermost call whose module's code is not there
    let parts: Vec<&str> = key.split('.').filter(|p| !p.is_empty()).collect();
    for depth in 1..=parts.len() {
        let inner = parts[..depth].join(".");
        if declarations.iter().any(|d| d.module == inner) {
            continue;
        }
        let parent = parts[..depth - 1].join(".");
        return declarations.iter().find(|d| {
            d.kind == DeclarationKind::Module && d.module == parent && d.name == parts[depth - 1]
        });
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn module_keys() {
        assert_eq!(module_key(""), "");
        assert_eq!(module_key("module.net"), "net");
        assert_eq!(module_key("module.net[0].module.sub"), "net.sub");
        assert_eq!(module_key("module.a[\"x.y]z\"].module.b"), "a.b");
    }

    #[test]
    fn blocks_are_found_outside_comments_and_heredocs() {
        let text = r#"
# resource "aws_vpc" "commented" {
resource "aws_vpc" "main" {
  cidr_block = "10.0.0.0/16"
}
/*
resource "aws_vpc" "in_a_comment" {
}
*/
resource aws_s3_bucket logs {
  policy = <<-EOT
    resource "aws_vpc" "in_a_heredoc" {
  EOT
}
  module "net" {
  source = "./modules/net"
}
resource "aws_iam_policy" "p" { policy = "{}" }
"#;
        let found: Vec<(DeclarationKind, String, String, usize)> =
            declarations_in("", "infra/main.tf", text)
                .into_iter()
                .map(|d| (d.kind, d.resource_type, d.name, d.line))
                .collect();
        assert_eq!(
            found,
            vec![
                (
                    DeclarationKind::Resource,
                    "aws_vpc".into(),
                    "main".into(),
                    3
                ),
                (
                    DeclarationKind::Resource,
                    "aws_s3_bucket".into(),
                    "logs".into(),
                    10
                ),
                (DeclarationKind::Module, String::new(), "net".into(), 15),
                (
                    DeclarationKind::Resource,
                    "aws_iam_policy".into(),
                    "p".into(),
                    18
                ),
            ]
        );
        let json = "{\n  \"resource\": {\n    \"aws_vpc\": {\n      \"main\": {}\n    }\n  }\n}";
        let d = declarations_in("net", "m/main.tf.json", json);
        assert_eq!(d.len(), 1);
        assert_eq!(
            (d[0].name.as_str(), d[0].line, d[0].module.as_str()),
            ("main", 4, "net")
        );
    }

    #[test]
    fn resources_of_modules_without_code_are_declared_by_their_call() {
        let mut decls = declarations_in(
            "",
            "main.tf",
            "module \"net\" {\n}\nmodule \"remote\" {\n}\n",
        );
        decls.extend(declarations_in(
            "net",
            "modules/net/main.tf",
            "resource \"aws_vpc\" \"main\" {\n}\nmodule \"deep\" {\n}\n",
        ));
        let at =
            |m: &str, t: &str, n: &str| find(&decls, m, t, n).map(|d| (d.file.as_str(), d.line));
        assert_eq!(
            at("module.net", "aws_vpc", "main"),
            Some(("modules/net/main.tf", 1))
        );
        assert_eq!(at("module.remote[0]", "aws_vpc", "x"), Some(("main.tf", 3)));
        assert_eq!(
            at("module.net.module.deep", "aws_subnet", "a"),
            Some(("modules/net/main.tf", 3))
        );
        assert_eq!(at("", "aws_vpc", "nowhere"), None);
    }
}
