//! A preview as Markdown for a pull-request comment: a summary table, then one collapsed
//! `<details>` per environment with its objects and fields, sized to stay well under the
//! forges' comment limits (GitHub's 65,536 characters). The first line is a hidden marker by
//! which the comment is found and edited on the next push ([`MARKER`]). Secret values never
//! reach it: the core redacts them in the preview itself.

use std::fmt::Write;

use driftguard_core::preview::{ChangeClass, EnvPreview, ObjectChange, ObjectPreview};
use serde_json::Value;

use super::{class_label, PreviewReport};

/// The hidden first line of a preview comment.
pub const MARKER: &str = "<!-- driftguard-preview -->";

/// Most characters of a comment; what goes beyond is left out with a note.
pub const MAX_COMMENT: usize = 60_000;

/// Most characters of one value shown.
const MAX_VALUE: usize = 80;

/// The report as a pull-request comment.
pub fn render(report: &PreviewReport) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "{MARKER}");
    let _ = writeln!(
        out,
        "### DriftGuard preview: `{}` → `{}`\n",
        code(&report.base),
        code(&report.head)
    );
    if report.environments.is_empty() {
        out.push_str("No environment's desired state changes.\n");
    } else {
        out.push_str("| environment | overwrites a hand change | conflicts | adopts a drift | new | created | pruned | high risk |\n");
        out.push_str("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |\n");
        for e in &report.environments {
            let c = e.counts();
            let _ = writeln!(
                out,
                "| {} | {} | {} | {} | {} | {} | {} | {} |",
                e.environment,
                strong(c.overwrites),
                strong(c.conflicts),
                c.adopts,
                c.new,
                c.created,
                c.pruned,
                strong(c.high)
            );
        }
        out.push('\n');
    }
    let tail = footer(report);
    for e in &report.environments {
        let section = environment(e);
        if out.len() + section.len() + tail.len() > MAX_COMMENT {
            let _ = writeln!(
                out,
                "_{}: left out, the comment would be too long; run `driftguard preview` for all of it._\n",
                e.environment
            );
            continue;
        }
        out.push_str(&section);
    }
    out.push_str(&tail);
    out
}

fn footer(report: &PreviewReport) -> String {
    let mut out = String::new();
    if !report.skipped.is_empty() {
        let names: Vec<String> = report
            .skipped
            .iter()
            .map(|s| format!("{} ({})", s.environment, s.reason))
            .collect();
        let _ = writeln!(out, "Not changed: {}.\n", names.join(", "));
    }
    for p in report.problems.iter().take(10) {
        let _ = writeln!(out, "> ⚠️ {}", cell(p, 300));
    }
    out
}

fn environment(e: &EnvPreview) -> String {
    let mut out = String::new();
    let c = e.counts();
    let mut summary = Vec::new();
    if c.overwrites > 0 {
        summary.push(format!("**{} hand change(s) overwritten**", c.overwrites));
    }
    if c.conflicts > 0 {
        summary.push(format!("**{} conflict(s)**", c.conflicts));
    }
    if c.adopts > 0 {
        summary.push(format!("{} drift(s) adopted", c.adopts));
    }
    summary.push(format!("{} object(s)", e.objects.len()));
    let rev = |r: &Option<driftguard_core::model::Revision>| {
        r.as_ref().map(|r| r.short().to_owned()).unwrap_or_default()
    };
    let _ = writeln!(
        out,
        "<details><summary><b>{}</b> ({} → {}): {}</summary>\n",
        e.environment,
        rev(&e.base),
        rev(&e.head),
        summary.join(", ")
    );
    out.push_str("| object | field | change | Git: base → head | cluster now | hand change |\n");
    out.push_str("| --- | --- | --- | --- | --- | --- |\n");
    for o in &e.objects {
        object_rows(&mut out, o);
    }
    let findings: Vec<String> = e
        .objects
        .iter()
        .flat_map(|o| {
            o.findings.iter().map(move |f| {
                format!(
                    "- **{}** `{}` on {}: {}",
                    f.risk,
                    f.rule,
                    object_name(o),
                    cell(&f.reason, 300)
                )
            })
        })
        .collect();
    if !findings.is_empty() {
        out.push_str("\nRisk findings of the result:\n\n");
        for f in findings {
            let _ = writeln!(out, "{f}");
        }
    }
    out.push_str("\n</details>\n\n");
    out
}

fn object_rows(out: &mut String, o: &ObjectPreview) {
    let name = object_name(o);
    let whole = o.hand_change.as_ref().map(hand).unwrap_or_default();
    match o.change {
        ObjectChange::Modified => {}
        other => {
            let what = match other {
                ObjectChange::Created => "created",
                ObjectChange::Pruned => "pruned",
                _ => "adopted (the cluster runs it as head has it)",
            };
            let _ = writeln!(
                out,
                "| {name} | | {}{} | | | {whole} |",
                mark(o.class),
                if o.class == ChangeClass::New {
                    what.to_owned()
                } else {
                    format!("{what}, {}", class_label(o.class))
                }
            );
        }
    }
    for f in &o.fields {
        let _ = writeln!(
            out,
            "| {name} | `{}` | {}{} | {} → {} | {} | {} |",
            code(f.path.as_str()),
            mark(f.class),
            class_label(f.class),
            value(&f.base),
            value(&f.head),
            if o.live_unknown {
                "(unknown)".to_owned()
            } else {
                value(&f.live)
            },
            f.hand_change.as_ref().map(hand).unwrap_or_default()
        );
    }
    if o.change == ObjectChange::Modified && o.fields.is_empty() {
        let _ = writeln!(out, "| {name} | | {} | | | {whole} |", class_label(o.class));
    }
}

fn hand(h: &driftguard_core::preview::HandChange) -> String {
    let who = if h.who.is_empty() {
        "someone"
    } else {
        h.who.as_str()
    };
    format!(
        "{} on {}",
        cell(who, 120),
        h.at.format("%Y-%m-%d %H:%M UTC")
    )
}

fn object_name(o: &ObjectPreview) -> String {
    let id = &o.id;
    match &id.namespace {
        Some(ns) => format!("{} {ns}/{}", id.kind, id.name),
        None => format!("{} {}", id.kind, id.name),
    }
}

/// The sign before a class, with its space (none for an ordinary change).
fn mark(class: ChangeClass) -> &'static str {
    match class {
        ChangeClass::New => "",
        ChangeClass::Adopts => "✅ ",
        ChangeClass::Overwrites => "⚠️ ",
        ChangeClass::Conflicts => "❌ ",
    }
}

fn strong(n: usize) -> String {
    if n > 0 {
        format!("**{n}**")
    } else {
        "0".into()
    }
}

fn value(v: &Option<Value>) -> String {
    match v {
        None | Some(Value::Null) => "_(absent)_".into(),
        Some(Value::String(s)) => format!("`{}`", code(&cell(s, MAX_VALUE))),
        Some(other) => format!("`{}`", code(&cell(&other.to_string(), MAX_VALUE))),
    }
}

/// Text in a table cell: one line, no pipe breaking the table, at most `max` characters.
fn cell(s: &str, max: usize) -> String {
    let one: String = s
        .chars()
        .map(|c| if c == '\n' || c == '\r' { ' ' } else { c })
        .collect();
    let mut out: String = one.chars().take(max).collect();
    if one.chars().count() > max {
        out.push('…');
    }
    out.replace('|', "\\|").replace('<', "&lt;")
}

/// Text inside an inline code span (no backtick closing it early).
fn code(s: &str) -> String {
    s.replace('`', "'")
}

#[cfg(test)]
mod tests {
    use super::*;
    use driftguard_core::id::ResourceId;
    use driftguard_core::preview::{FieldChange, HandChange};
    use driftguard_core::state::Direction;
    use serde_json::json;

    fn report(fields: Vec<FieldChange>) -> PreviewReport {
        PreviewReport {
            base: "main".into(),
            head: "fix|x".into(),
            environments: vec![EnvPreview {
                environment: "prod".into(),
                base: None,
                head: None,
                objects: vec![ObjectPreview {
                    id: ResourceId::new("prod", "apps", "Deployment", Some("shop"), "api"),
                    api_version: "apps/v1".into(),
                    change: ObjectChange::Modified,
                    class: ChangeClass::Overwrites,
                    fields,
                    hand_change: None,
                    findings: Vec::new(),
                    provenance: None,
                    live_unknown: false,
                }],
            }],
            ..PreviewReport::default()
        }
    }

    #[test]
    fn a_comment_names_the_hand_change_and_keeps_tables_whole() {
        let md = render(&report(vec![FieldChange {
            path: "spec.template.spec.containers[api].image".into(),
            class: ChangeClass::Overwrites,
            base: Some(json!("shop/api:1")),
            head: Some(json!("shop/api:1")),
            live: Some(json!("shop/api:1-hot|fix")),
            hand_change: Some(HandChange {
                who: "alice (kubectl-set)".into(),
                at: chrono::DateTime::parse_from_rfc3339("2026-12-07T08:40:00Z")
                    .expect("time")
                    .into(),
                episode: "ep".into(),
                direction: Direction::Forward,
            }),
        }]));
        assert!(md.starts_with(MARKER), "{md}");
        assert!(
            md.contains("| prod | **1** | 0 | 0 | 0 | 0 | 0 | 0 |"),
            "{md}"
        );
        assert!(md.contains("<details><summary><b>prod</b>"), "{md}");
        assert!(md.contains("⚠️ overwrites a hand change"), "{md}");
        assert!(md.contains("`shop/api:1-hot\\|fix`"), "{md}");
        assert!(
            md.contains("alice (kubectl-set) on 2026-12-07 08:40 UTC"),
            "{md}"
        );
        assert!(md.contains("</details>"), "{md}");
    }

    #[test]
    fn a_long_preview_stays_under_the_limit() {
        let fields = (0..5000)
            .map(|i| FieldChange {
                path: format!("data.key{i}").as_str().into(),
                class: ChangeClass::New,
                base: Some(json!("x".repeat(500))),
                head: Some(json!("y")),
                live: Some(json!("x")),
                hand_change: None,
            })
            .collect();
        let md = render(&report(fields));
        assert!(md.len() <= MAX_COMMENT, "{}", md.len());
        assert!(md.contains("left out"), "{md}");
    }
}
