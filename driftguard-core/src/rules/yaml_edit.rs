//! A format-preserving edit of block-style YAML manifests: set, add or remove one field of one
//! document, keeping every other line as it is (comments, blank lines, key order, quoting).
//!
//! Paths are DriftGuard's field paths ([`FieldPath`]): map keys and items of keyed lists
//! (`spec.template.spec.containers[app].env[DEBUG]`). Supported: block maps, block lists whose
//! items are maps (`- name: app`), plain or quoted scalars, values with a trailing comment.
//! Flow style (`{a: 1}`, `[a, b]`) on the way to an edited field, multi-line scalars being
//! edited and anchors are refused with [`YamlEditError::Unsupported`]: adopt then says to edit
//! by hand.

use serde_json::Value;

use crate::path::{FieldPath, Segment};

/// Why a YAML edit could not be made.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum YamlEditError {
    /// The file has fewer documents.
    #[error("the file has no document {0}")]
    NoDocument(usize),
    /// The layout is one this editor does not change.
    #[error("cannot edit `{path}` in place: {why}")]
    Unsupported {
        /// The field path.
        path: FieldPath,
        /// Why.
        why: String,
    },
}

#[derive(Clone, Debug)]
struct Line {
    text: String,
}

impl Line {
    fn indent(&self) -> usize {
        self.text.len() - self.text.trim_start().len()
    }
    fn blank(&self) -> bool {
        let t = self.text.trim();
        t.is_empty() || t.starts_with('#')
    }
}

/// A block inside the document: the lines `start..end` whose content is indented at `indent`.
#[derive(Clone, Copy, Debug)]
struct Block {
    start: usize,
    end: usize,
    /// The indentation of this block's entries (`None`: empty block, any).
    indent: Option<usize>,
    /// The indentation of the parent entry (children must be deeper).
    parent: Option<usize>,
}

/// The key of a `key: value` (or `- key: value`) line at `col`, and the column of its value.
fn key_at(text: &str, col: usize) -> Option<(String, usize)> {
    let rest = text.get(col..)?;
    let (key, after) = if let Some(stripped) = rest.strip_prefix('"') {
        let end = stripped.find('"')?;
        (stripped[..end].to_owned(), col + end + 2)
    } else if let Some(stripped) = rest.strip_prefix('\'') {
        let end = stripped.find('\'')?;
        (stripped[..end].to_owned(), col + end + 2)
    } else {
        let end = rest
            .find(": ")
            .or_else(|| rest.strip_suffix(':').map(str::len))?;
        (rest[..end].trim_end().to_owned(), col + end)
    };
    let tail = text.get(after..)?;
    if !tail.starts_with(':') {
        return None;
    }
    Some((key, after + 1))
}

/// The documents of a file: line ranges between `---` separators.
fn documents(lines: &[Line]) -> Vec<(usize, usize)> {
    let mut docs = Vec::new();
    let mut start = 0;
    for (i, l) in lines.iter().enumerate() {
        if l.text.trim_end() == "---" || l.text.starts_with("--- ") {
            docs.push((start, i));
            start = i + 1;
        }
    }
    docs.push((start, lines.len()));
    // a leading `---` makes an empty first document; keep only those with content
    docs.into_iter()
        .filter(|(s, e)| lines[*s..*e].iter().any(|l| !l.blank()))
        .collect()
}

/// Where one entry lives: its line, the column of its key and of its value.
#[derive(Clone, Copy, Debug)]
struct Entry {
    line: usize,
    key_col: usize,
    value_col: usize,
    /// The block of lines below it (its nested content).
    body: Block,
}

fn body_of(lines: &[Line], line: usize, key_col: usize, end: usize) -> Block {
    let mut e = line + 1;
    let mut indent = None;
    while e < end {
        let l = &lines[e];
        if l.blank() {
            e += 1;
            continue;
        }
        let ind = l.indent();
        // a list may sit at the key's own indentation (`containers:\n- name: a`)
        let list_same = ind == key_col && l.text.trim_start().starts_with("- ");
        if ind > key_col || list_same {
            indent.get_or_insert(ind);
            e += 1;
        } else {
            break;
        }
    }
    // trailing blank or comment lines belong to what follows
    while e > line + 1 && lines[e - 1].blank() {
        e -= 1;
    }
    Block {
        start: line + 1,
        end: e,
        indent,
        parent: Some(key_col),
    }
}

fn find_key(lines: &[Line], b: Block, key: &str) -> Option<Entry> {
    let indent = b.indent?;
    for i in b.start..b.end {
        let l = &lines[i];
        if l.blank() || l.indent() != indent {
            continue;
        }
        if let Some((k, v)) = key_at(&l.text, indent) {
            if k == key {
                return Some(Entry {
                    line: i,
                    key_col: indent,
                    value_col: v,
                    body: body_of(lines, i, indent, b.end),
                });
            }
        }
    }
    None
}

/// The items of a block list: for each, its first line and the block of its content (the
/// content indentation is the column after `- `).
fn items(lines: &[Line], b: Block) -> Vec<Block> {
    let Some(indent) = b.indent else {
        return Vec::new();
    };
    let starts: Vec<usize> = (b.start..b.end)
        .filter(|i| {
            let l = &lines[*i];
            !l.blank() && l.indent() == indent && l.text.trim_start().starts_with("- ")
        })
        .collect();
    let mut out = Vec::new();
    for (n, s) in starts.iter().enumerate() {
        let end = starts.get(n + 1).copied().unwrap_or(b.end);
        let mut end_trim = end;
        while end_trim > s + 1 && lines[end_trim - 1].blank() {
            end_trim -= 1;
        }
        let after_dash = lines[*s].text[indent + 1..]
            .chars()
            .take_while(|c| *c == ' ')
            .count();
        out.push(Block {
            start: *s,
            end: end_trim,
            indent: Some(indent + 1 + after_dash),
            parent: Some(indent),
        });
    }
    out
}

/// The item's lines with the dash replaced by a space, so that its keys read as a map.
fn item_as_map(lines: &[Line], item: Block) -> Vec<Line> {
    let mut out = lines.to_vec();
    if let Some(p) = item.parent {
        let t = &mut out[item.start].text;
        t.replace_range(p..p + 1, " ");
    }
    out
}

fn scalar_of(text: &str, col: usize) -> String {
    let v = text[col..].trim();
    let v = strip_comment(v);
    v.trim_matches(|c| c == '"' || c == '\'').to_owned()
}

fn strip_comment(v: &str) -> &str {
    if v.starts_with('"') || v.starts_with('\'') {
        let q = &v[..1];
        if let Some(end) = v[1..].find(q) {
            return &v[..end + 2];
        }
        return v;
    }
    match v.find(" #") {
        Some(i) => v[..i].trim_end(),
        None => v,
    }
}

fn item_matches(lines: &[Line], item: Block, key: &str) -> bool {
    let view = item_as_map(lines, item);
    let field =
        |k: &str| find_key(&view, item, k).map(|e| scalar_of(&view[e.line].text, e.value_col));
    for k in ["name", "mountPath", "devicePath"] {
        if field(k).as_deref() == Some(key) {
            return true;
        }
    }
    let proto = field("protocol").unwrap_or_else(|| "TCP".into());
    ["containerPort", "port"]
        .iter()
        .any(|k| field(k).is_some_and(|p| format!("{p}/{proto}") == key))
}

/// Renders `v` as YAML lines indented by `indent` (a map or list value below its key).
fn render_block(v: &Value, indent: usize) -> Vec<String> {
    let text = serde_yaml::to_string(v).unwrap_or_default();
    text.lines()
        .filter(|l| *l != "---")
        .map(|l| format!("{}{l}", " ".repeat(indent)))
        .collect()
}

/// Renders a scalar in YAML (strings quoted when needed).
fn render_scalar(v: &Value) -> String {
    serde_yaml::to_string(v)
        .unwrap_or_default()
        .trim_end_matches('\n')
        .to_owned()
}

fn is_scalar(v: &Value) -> bool {
    !matches!(v, Value::Object(_) | Value::Array(_))
}

fn unsupported(path: &FieldPath, why: &str) -> YamlEditError {
    YamlEditError::Unsupported {
        path: path.clone(),
        why: why.to_owned(),
    }
}

/// Sets (`Some`) or removes (`None`) the field `path` of document `doc` of `text`.
pub fn edit(
    text: &str,
    doc: usize,
    path: &FieldPath,
    to: Option<&Value>,
) -> Result<String, YamlEditError> {
    let mut lines: Vec<Line> = text.lines().map(|l| Line { text: l.to_owned() }).collect();
    let docs = documents(&lines);
    let (ds, de) = *docs.get(doc).ok_or(YamlEditError::NoDocument(doc))?;
    let root_indent = lines[ds..de].iter().find(|l| !l.blank()).map(Line::indent);
    let mut block = Block {
        start: ds,
        end: de,
        indent: root_indent,
        parent: None,
    };
    let segs: Vec<Segment<'_>> = path.segments().collect();
    let mut view = lines.clone();
    for (n, seg) in segs.iter().enumerate() {
        let last = n + 1 == segs.len();
        match seg {
            Segment::Key(k) => match find_key(&view, block, k) {
                Some(e) => {
                    let rest = view[e.line].text[e.value_col..].trim();
                    let rest = strip_comment(rest);
                    if last {
                        return Ok(finish(apply_key(&mut lines, e, to, path)?, text));
                    }
                    if rest.starts_with('{') || rest.starts_with('[') {
                        return Err(unsupported(path, "a flow-style map or list on the way"));
                    }
                    if !rest.is_empty() {
                        return Err(unsupported(path, "a scalar where a map is expected"));
                    }
                    block = e.body;
                    if block.indent.is_none() {
                        block.indent = Some(e.key_col + 2);
                    }
                }
                None => {
                    let Some(to) = to else {
                        // removing what is not there: nothing to do
                        return Ok(text.to_owned());
                    };
                    // build the rest of the path as a value and insert it here
                    let mut v = to.clone();
                    for s in segs[n + 1..].iter().rev() {
                        v = match s {
                            Segment::Key(k) => serde_json::json!({ k.to_string(): v }),
                            Segment::Item(_) => serde_json::json!([v]),
                        };
                    }
                    let indent = block
                        .indent
                        .unwrap_or_else(|| block.parent.map_or(0, |p| p + 2));
                    let mut new = Vec::new();
                    let key = render_scalar(&Value::String(k.to_string()));
                    if is_scalar(&v) {
                        new.push(format!(
                            "{}{key}: {}",
                            " ".repeat(indent),
                            render_scalar(&v)
                        ));
                    } else {
                        new.push(format!("{}{key}:", " ".repeat(indent)));
                        new.extend(render_block(&v, indent + 2));
                    }
                    let at = block.end.max(block.start);
                    for (i, l) in new.into_iter().enumerate() {
                        lines.insert(at + i, Line { text: l });
                    }
                    return Ok(finish(lines, text));
                }
            },
            Segment::Item(k) => {
                let list = items(&view, block);
                if list.is_empty() && block.indent.is_some() {
                    return Err(unsupported(path, "not a block list of maps"));
                }
                match list.iter().find(|it| item_matches(&view, **it, k)) {
                    Some(it) => {
                        if last {
                            // replace or remove the whole item
                            let (s, e) = (it.start, it.end);
                            let indent = it.parent.unwrap_or(0);
                            lines.drain(s..e);
                            if let Some(v) = to {
                                let rendered = render_block(&serde_json::json!([v]), indent);
                                for (i, l) in rendered.into_iter().enumerate() {
                                    lines.insert(s + i, Line { text: l });
                                }
                            }
                            return Ok(finish(lines, text));
                        }
                        view = item_as_map(&view, *it);
                        block = *it;
                    }
                    None => {
                        let Some(to) = to else {
                            return Ok(text.to_owned());
                        };
                        if !last {
                            return Err(unsupported(
                                path,
                                "a new list item holding only part of a field",
                            ));
                        }
                        let indent = block
                            .indent
                            .unwrap_or_else(|| block.parent.map_or(0, |p| p + 2));
                        let rendered = render_block(&serde_json::json!([to]), indent);
                        let at = block.end.max(block.start);
                        for (i, l) in rendered.into_iter().enumerate() {
                            lines.insert(at + i, Line { text: l });
                        }
                        return Ok(finish(lines, text));
                    }
                }
            }
        }
    }
    Err(unsupported(path, "an empty path"))
}

/// Sets or removes the entry `e`.
fn apply_key(
    lines: &mut Vec<Line>,
    e: Entry,
    to: Option<&Value>,
    path: &FieldPath,
) -> Result<Vec<Line>, YamlEditError> {
    let text = lines[e.line].text.clone();
    let rest = text[e.value_col..].trim();
    if rest.starts_with('|')
        || rest.starts_with('>')
        || rest.starts_with('&')
        || rest.starts_with('*')
    {
        return Err(unsupported(path, "a block scalar, anchor or alias"));
    }
    let body_end = if rest.is_empty() || strip_comment(rest).is_empty() {
        e.body.end
    } else {
        e.line + 1
    };
    match to {
        None => {
            if lines[e.line].text.trim_start().starts_with("- ") {
                return Err(unsupported(path, "the first key of a list item"));
            }
            lines.drain(e.line..body_end.max(e.line + 1));
        }
        Some(v) if is_scalar(v) => {
            let comment = {
                let value = strip_comment(rest);
                rest[value.len()..].to_owned()
            };
            let head = &text[..e.value_col];
            lines[e.line].text = format!("{head} {}{comment}", render_scalar(v));
            if body_end > e.line + 1 {
                lines.drain(e.line + 1..body_end);
            }
        }
        Some(v) => {
            let head = text[..e.value_col].to_owned();
            let comment = if strip_comment(rest).is_empty() {
                rest.to_owned()
            } else {
                String::new()
            };
            lines[e.line].text = if comment.is_empty() {
                head
            } else {
                format!("{head} {comment}")
            };
            let child = e.body.indent.unwrap_or(e.key_col + 2);
            let child = if matches!(v, Value::Array(_)) && e.body.indent == Some(e.key_col) {
                e.key_col
            } else {
                child
            };
            let start = e.line + 1;
            lines.drain(start..body_end.max(start));
            for (i, l) in render_block(v, child).into_iter().enumerate() {
                lines.insert(start + i, Line { text: l });
            }
        }
    }
    Ok(std::mem::take(lines))
}

fn finish(lines: Vec<Line>, original: &str) -> String {
    let mut out = lines
        .into_iter()
        .map(|l| l.text)
        .collect::<Vec<_>>()
        .join("\n");
    if original.ends_with('\n') {
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const FILE: &str = "# the web app
apiVersion: v1
kind: ConfigMap
metadata:
  name: other
---
apiVersion: apps/v1
kind: Deployment   # the workload
metadata:
  name: web
  labels:
    app: web  # keep
spec:
  replicas: 3 # three
  template:
    spec:
      containers:
        - name: app
          # pinned on purpose
          image: \"nginx:1.25\"
          env:
            - name: A
              value: \"1\"
      volumes: []
";

    #[test]
    fn sets_a_scalar_keeping_comments_and_order() {
        let out = edit(FILE, 1, "spec.replicas", Some(&json!(5))).expect("edit");
        assert!(out.contains("  replicas: 5 # three\n"), "{out}");
        let out = edit(
            &out,
            1,
            "spec.template.spec.containers[app].image",
            Some(&json!("nginx:1.26")),
        )
        .expect("edit");
        assert!(out.contains("          image: nginx:1.26\n"), "{out}");
        assert!(out.contains("# pinned on purpose") && out.starts_with("# the web app"));
        let changed: Vec<(&str, &str)> = FILE
            .lines()
            .zip(out.lines())
            .filter(|(a, b)| a != b)
            .collect();
        assert_eq!(changed.len(), 2, "{changed:?}");
    }

    #[test]
    fn adds_and_removes_keys_and_items() {
        let out = edit(FILE, 1, "metadata.labels.hotfix", Some(&json!("yes"))).expect("edit");
        assert!(
            out.contains("    app: web  # keep\n    hotfix: yes\n"),
            "{out}"
        );
        let out = edit(
            &out,
            1,
            "spec.template.spec.containers[app].env[DEBUG]",
            Some(&json!({"name": "DEBUG", "value": "true"})),
        )
        .expect("edit");
        assert!(out.contains("              value: \"1\"\n            - name: DEBUG\n              value: 'true'\n"), "{out}");
        let parsed: Vec<serde_yaml::Value> = serde_yaml::Deserializer::from_str(&out)
            .map(|d| serde_yaml::Value::deserialize(d).expect("yaml"))
            .collect();
        assert_eq!(
            parsed[1]["metadata"]["labels"]["hotfix"],
            serde_yaml::Value::from("yes")
        );
        let back = edit(
            &out,
            1,
            "spec.template.spec.containers[app].env[DEBUG]",
            None,
        )
        .expect("edit");
        let back = edit(&back, 1, "metadata.labels.hotfix", None).expect("edit");
        assert_eq!(back, FILE);
        let new_map = edit(FILE, 1, "metadata.annotations.team", Some(&json!("a"))).expect("edit");
        assert!(
            new_map.contains("  annotations:\n    team: a\n"),
            "{new_map}"
        );
    }

    #[test]
    fn refuses_what_it_cannot_keep() {
        let flow = "kind: ConfigMap\ndata: {a: \"1\"}\n";
        assert!(matches!(
            edit(flow, 0, "data.b", Some(&json!("2"))),
            Err(YamlEditError::Unsupported { .. })
        ));
        assert_eq!(
            edit(FILE, 5, "spec", None),
            Err(YamlEditError::NoDocument(5))
        );
    }

    use serde::Deserialize;

    /// [`super::edit`] of a printed path.
    fn edit(
        text: &str,
        doc: usize,
        path: &str,
        to: Option<&Value>,
    ) -> Result<String, YamlEditError> {
        super::edit(text, doc, &FieldPath::parse(path), to)
    }
}
