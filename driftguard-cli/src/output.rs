//! Renderings: the drift table, field diffs with their findings, events, and `explain`.

use std::fmt::Write as _;

use chrono::{DateTime, Utc};
use driftguard_core::ack::{self, Acknowledgement};
use driftguard_core::compare::FieldDiff;
use driftguard_core::engine::ScanReport;
use driftguard_core::findings::drift_risk;
use driftguard_core::ports::ScanSummary;
use driftguard_core::remediate::advice::suggest;
use driftguard_core::severity::Severity;
use driftguard_core::state::{recurrences_label, Direction, Drift, DriftEvent, DriftKind};
use serde::Serialize;
use serde_json::Value;

/// How text output is styled.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Style {
    /// ANSI colors.
    pub color: bool,
}

impl Style {
    fn paint(&self, code: &str, s: &str) -> String {
        if self.color {
            format!("\x1b[{code}m{s}\x1b[0m")
        } else {
            s.to_owned()
        }
    }

    fn severity(&self, s: Severity, text: &str) -> String {
        let code = match s {
            Severity::Critical => "1;31",
            Severity::High => "31",
            Severity::Medium => "33",
            Severity::Low => "2",
        };
        self.paint(code, text)
    }

    fn bold(&self, s: &str) -> String {
        self.paint("1", s)
    }
}

/// The results of one environment's scan, as printed by `-o json|yaml`.
#[derive(Clone, Debug, Serialize)]
pub struct EnvResult {
    /// Environment.
    pub environment: String,
    /// The scan summary.
    pub summary: ScanSummary,
    /// Open drifts.
    pub drifts: Vec<Drift>,
    /// Drifts this scan saw end.
    pub resolved: Vec<Drift>,
    /// Problems met (manifest errors, unreadable kinds).
    pub errors: Vec<String>,
    /// Notes from the sources.
    pub notes: Vec<String>,
    /// What the deployment tool says of an environment discovered from it (`scan
    /// --discover`), in the API's shape; absent for the file's environments.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tool: Option<driftguard_server::dto::ToolDto>,
}

impl EnvResult {
    /// From a scan report.
    pub fn from_report(r: &ScanReport) -> Self {
        EnvResult {
            environment: r.summary.environment.clone(),
            summary: r.summary.clone(),
            drifts: r.drifts().cloned().collect(),
            resolved: r
                .events
                .iter()
                .filter(|e| e.kind == driftguard_core::state::EventKind::Resolved)
                .map(|e| e.drift.clone())
                .collect(),
            errors: r.summary.errors.clone(),
            notes: r.notes.clone(),
            tool: None,
        }
    }
}

/// One line per discovered environment: what its tool says (`says`: the environment's
/// tool and [`ToolVerdict::summary`](driftguard_server::config::discover::ToolVerdict::summary))
/// beside what DriftGuard saw (`argocd.shop: Argo CD says Synced, Healthy, revision 53e28ff;
/// DriftGuard sees 3 drifts`).
pub fn tool_lines(
    results: &[EnvResult],
    says: impl Fn(&str) -> Option<(String, String)>,
) -> String {
    let mut out = String::new();
    for r in results {
        let Some((who, verdict)) = says(&r.environment) else {
            continue;
        };
        let n = r.drifts.len();
        let ours = if n == 0 {
            "no drift".to_owned()
        } else {
            format!("{n} drift{}", if n == 1 { "" } else { "s" })
        };
        let _ = writeln!(
            out,
            "  {}: {who} says {verdict}; DriftGuard sees {ours}",
            r.environment
        );
    }
    out
}

/// What `scan -o json|yaml` prints.
#[derive(Clone, Debug, Serialize)]
pub struct ScanOutput {
    /// One entry per environment scanned.
    pub environments: Vec<EnvResult>,
    /// Environments that could not be scanned, one line each.
    pub failed: Vec<String>,
}

/// `Kind.group` for display (`Deployment`, not `Deployment.apps`, for well-known groups).
pub fn kind_label(d: &Drift) -> String {
    let g = d.id.group.as_str();
    if g.is_empty() || !g.contains('.') || g.ends_with(".k8s.io") {
        d.id.kind.clone()
    } else {
        format!("{}.{}", d.id.kind, g)
    }
}

/// The changed fields of a drift, for the table.
pub fn fields_label(d: &Drift) -> String {
    if d.fields.is_empty() {
        return "-".into();
    }
    d.paths().join(", ")
}

/// "just now", "5m ago", "3h ago", "2d ago".
pub fn ago(t: DateTime<Utc>, now: DateTime<Utc>) -> String {
    let s = (now - t).num_seconds().max(0);
    match s {
        0..=59 => "just now".into(),
        60..=3599 => format!("{}m ago", s / 60),
        3600..=86_399 => format!("{}h ago", s / 3600),
        _ => format!("{}d ago", s / 86_400),
    }
}

fn pad(s: &str, w: usize) -> String {
    let n = s.chars().count();
    if n >= w {
        s.to_owned()
    } else {
        format!("{s}{}", " ".repeat(w - n))
    }
}

/// Renders rows as aligned columns (the last column is not padded). `paint` styles a cell after
/// padding (so colors do not upset alignment).
fn table(
    header: &[&str],
    rows: &[Vec<String>],
    style: Style,
    paint: impl Fn(usize, usize, &str) -> String,
) -> String {
    let mut widths: Vec<usize> = header.iter().map(|h| h.len()).collect();
    for r in rows {
        for (i, c) in r.iter().enumerate() {
            widths[i] = widths[i].max(c.chars().count());
        }
    }
    let mut out = String::new();
    let last = header.len() - 1;
    let line = |cells: Vec<String>| -> String {
        let mut l = String::new();
        for (i, c) in cells.iter().enumerate() {
            if i > 0 {
                l.push_str("  ");
            }
            l.push_str(c);
        }
        l.trim_end().to_owned()
    };
    let head: Vec<String> = header
        .iter()
        .enumerate()
        .map(|(i, h)| {
            let p = if i == last {
                (*h).to_owned()
            } else {
                pad(h, widths[i])
            };
            style.bold(&p)
        })
        .collect();
    out.push_str(&line(head));
    out.push('\n');
    for (ri, r) in rows.iter().enumerate() {
        let cells: Vec<String> = r
            .iter()
            .enumerate()
            .map(|(i, c)| {
                let p = if i == last {
                    c.clone()
                } else {
                    pad(c, widths[i])
                };
                paint(ri, i, &p)
            })
            .collect();
        out.push_str(&line(cells));
        out.push('\n');
    }
    out
}

/// The drift table: environment, kind, namespace/name, drift kind, direction, severity,
/// fields, who, since; and, when one of them is acknowledged (`acks` holding for it now, the
/// core's [`ack::holding`]), who acknowledged it and until when.
pub fn drift_table(
    drifts: &[&Drift],
    acks: &[Acknowledgement],
    now: DateTime<Utc>,
    style: Style,
) -> String {
    let mut header = vec![
        "ENVIRONMENT",
        "KIND",
        "OBJECT",
        "DRIFT",
        "DIRECTION",
        "SEVERITY",
        "FIELDS",
        "WHO",
        "SINCE",
    ];
    let held: Vec<Option<&Acknowledgement>> =
        drifts.iter().map(|d| ack::holding(acks, d, now)).collect();
    let any_held = held.iter().any(Option::is_some);
    if any_held {
        header.push("ACKNOWLEDGED");
    }
    let rows: Vec<Vec<String>> = drifts
        .iter()
        .zip(&held)
        .map(|(d, held)| {
            let who = d.who();
            let mut row = vec![
                d.id.environment.clone(),
                kind_label(d),
                d.id.namespaced_name(),
                d.kind.to_string(),
                d.direction.to_string(),
                d.severity.to_string(),
                fields_label(d),
                if who.is_empty() { "-".into() } else { who },
                ago(d.detected_at, now),
            ];
            if any_held {
                row.push(held.map_or_else(|| "-".into(), acknowledged_label));
            }
            row
        })
        .collect();
    table(&header, &rows, style, |r, c, s| {
        if c == 5 {
            style.severity(drifts[r].severity, s)
        } else {
            s.to_owned()
        }
    })
}

/// `by <who> until <date>` (or `until it changes`) of an acknowledgement that holds.
fn acknowledged_label(a: &Acknowledgement) -> String {
    match a.until {
        Some(u) => format!("by {} until {}", a.by, u.format("%Y-%m-%d %H:%M")),
        None => format!("by {} until it changes", a.by),
    }
}

/// A value for display: compact JSON, strings bare, absent as `(absent)`.
pub fn show_value(v: &Option<Value>) -> String {
    match v {
        None | Some(Value::Null) => "(absent)".into(),
        Some(Value::String(s)) => s.clone(),
        Some(other) => other.to_string(),
    }
}

/// One field diff line: `path: git=<v> live=<v>`.
pub fn diff_line(f: &FieldDiff) -> String {
    format!(
        "{}: git={} live={}",
        f.path,
        show_value(&f.desired),
        show_value(&f.live)
    )
}

/// Field-level diffs of drifts (Secret values come redacted from the core).
pub fn diffs(drifts: &[&Drift], style: Style) -> String {
    let mut out = String::new();
    for d in drifts {
        let _ = writeln!(
            out,
            "{} {} {} ({}, {}, {})",
            style.bold(&d.id.environment),
            kind_label(d),
            d.id.namespaced_name(),
            d.kind,
            d.direction,
            d.severity
        );
        match d.kind {
            DriftKind::Modified => {
                for f in &d.fields {
                    let _ = writeln!(out, "  {}", diff_line(f));
                }
            }
            DriftKind::Missing => {
                let _ = writeln!(out, "  in Git, not in the cluster");
            }
            DriftKind::Orphan => {
                let _ = writeln!(out, "  in the cluster, not in Git");
            }
        }
        out.push_str(&findings(d, "  ! ", style));
    }
    out
}

/// The findings of a drift, one line each: `high security rbac-widened (rules): reason`.
pub fn findings(d: &Drift, indent: &str, style: Style) -> String {
    let mut out = String::new();
    for f in &d.findings {
        let at = f
            .path
            .as_ref()
            .map(|p| format!(" ({p})"))
            .unwrap_or_default();
        let _ = writeln!(
            out,
            "{indent}{} {} {}{at}: {}",
            style.severity(f.risk, f.risk.as_str()),
            f.category,
            f.rule,
            f.reason
        );
    }
    out
}

/// The events table.
pub fn events_table(events: &[DriftEvent], style: Style) -> String {
    let header = [
        "TIME",
        "EVENT",
        "ENVIRONMENT",
        "KIND",
        "OBJECT",
        "DRIFT",
        "DIRECTION",
        "SEVERITY",
        "DETAIL",
    ];
    let rows: Vec<Vec<String>> = events
        .iter()
        .map(|e| {
            let d = &e.drift;
            let detail = match (e.kind, d.ended_how()) {
                (driftguard_core::state::EventKind::Resolved, Some(how)) => how,
                _ => fields_label(d),
            };
            vec![
                e.at.format("%Y-%m-%d %H:%M:%S").to_string(),
                e.kind.to_string(),
                d.id.environment.clone(),
                kind_label(d),
                d.id.namespaced_name(),
                d.kind.to_string(),
                d.direction.to_string(),
                d.severity.to_string(),
                detail,
            ]
        })
        .collect();
    table(&header, &rows, style, |r, c, s| {
        if c == 7 {
            style.severity(events[r].drift.severity, s)
        } else {
            s.to_owned()
        }
    })
}

/// Why a direction was given (the core's [`Drift::direction_reason`]).
pub fn direction_reason(d: &Drift) -> &'static str {
    d.direction_reason()
}

/// `explain`: the classification, the risk findings and the suggested remediation, the
/// commit, and the field diff with who changed each field. A Terraform resource is told in
/// Terraform's words (the code, the state, the cloud; no field managers), and a change made
/// outside Terraform names no commit.
pub fn explain(d: &Drift, now: DateTime<Utc>, style: Style) -> String {
    let tf = d.is_terraform();
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{} {} in {} ({})",
        style.bold(&kind_label(d)),
        style.bold(&d.id.namespaced_name()),
        d.id.environment,
        d.api_version
    );
    if let Some(p) = &d.provenance {
        if tf {
            let _ = writeln!(out, "  declared in the code at {p}");
        } else {
            let _ = writeln!(out, "  defined in Git at {p}");
        }
    }
    let status = match (d.ended_how(), recurrences_label(d.recurrences)) {
        (Some(how), _) => format!(
            "resolved {} ({how})",
            d.resolved_at.map(|t| ago(t, now)).unwrap_or_default(),
        ),
        (None, Some(again)) => format!("open, {again}"),
        (None, None) => "open".to_owned(),
    };
    let _ = writeln!(
        out,
        "  drift:     {} ({status}), detected {}, updated {}",
        d.kind,
        ago(d.detected_at, now),
        ago(d.updated_at, now)
    );
    let _ = writeln!(
        out,
        "  direction: {} — {}",
        d.direction,
        direction_reason(d)
    );
    let _ = writeln!(
        out,
        "  severity:  {}",
        style.severity(d.severity, d.severity.as_str())
    );
    let risk = drift_risk(d.severity, &d.findings);
    if risk != d.severity {
        let _ = writeln!(
            out,
            "  risk:      {} (raised by the findings)",
            style.severity(risk, risk.as_str())
        );
    }
    if d.findings.is_empty() {
        let _ = writeln!(out, "  findings:  none");
    } else {
        let _ = writeln!(out, "  findings:");
        out.push_str(&findings(d, "    ", style));
    }
    let (suggested, why) = suggest(d);
    if d.is_open() {
        let _ = writeln!(out, "  suggested: {suggested} — {why}");
    }
    if let Some(r) = &d.revision {
        let _ = writeln!(out, "  revision:  {r}");
    }
    match &d.attribution.commit {
        // a change made in the cloud, outside Terraform, comes from no commit
        _ if tf && d.direction == Direction::Forward => {
            let _ = writeln!(
                out,
                "  commit:    none (changed outside Terraform, not by a commit)"
            );
        }
        Some(c) => {
            let _ = writeln!(
                out,
                "  commit:    {} {} <{}> {} \"{}\"",
                &c.id[..c.id.len().min(12)],
                c.author,
                c.email,
                c.time.format("%Y-%m-%d %H:%M:%S UTC"),
                c.message
            );
        }
        None => {
            let _ = writeln!(out, "  commit:    unknown (no Git history for this source)");
        }
    }
    if tf && d.direction == Direction::Forward && d.attribution.writers.is_empty() {
        let _ = writeln!(
            out,
            "  who:       unknown (in the cloud account, outside Terraform; no CloudTrail event read names anyone)"
        );
    }
    if !d.attribution.writers.is_empty() {
        let since = d
            .attribution
            .audit_since
            .map(|t| format!(" since {}", t.format("%Y-%m-%d %H:%M:%S UTC")))
            .unwrap_or_default();
        // a Terraform drift's writers are CloudTrail's events, a cluster's its audit log's
        let (trail, id) = if tf {
            ("CloudTrail", "event id")
        } else {
            ("audit log", "audit id")
        };
        let _ = writeln!(
            out,
            "  who:       {} ({trail}{since})",
            d.attribution.users().join(", ")
        );
        for w in &d.attribution.writers {
            let _ = writeln!(out, "    {} [{id} {}]", w.describe(), w.audit_id);
        }
    }
    if d.fields.is_empty() {
        let _ = writeln!(
            out,
            "  {}",
            match (d.kind, tf) {
                (DriftKind::Missing, false) => "the object is in Git, not in the cluster",
                (DriftKind::Orphan, false) => "the object is in the cluster, not in Git",
                (DriftKind::Missing, true) => "the resource is in the code, not in the cloud",
                (DriftKind::Orphan, true) =>
                    "the resource is in the cloud, not in the code (or in no state)",
                (DriftKind::Modified, _) => "no field detail",
            }
        );
    } else {
        let _ = writeln!(out, "  fields:");
    }
    for f in &d.fields {
        let _ = writeln!(out, "    {}", f.path);
        if tf {
            let _ = writeln!(out, "      code:  {}", show_value(&f.desired));
            let _ = writeln!(out, "      cloud: {}", show_value(&f.live));
            continue;
        }
        let _ = writeln!(out, "      git:  {}", show_value(&f.desired));
        let _ = writeln!(out, "      live: {}", show_value(&f.live));
        let owners: Vec<String> = d
            .attribution
            .owners
            .iter()
            .filter(|o| o.path == f.path)
            .map(|o| {
                let mut s = format!("{} ({}, {}", o.manager, o.kind().as_str(), o.operation);
                if !o.subresource.is_empty() {
                    let _ = write!(s, ", subresource {}", o.subresource);
                }
                s.push(')');
                if let Some(t) = o.time {
                    let _ = write!(s, " at {}", t.format("%Y-%m-%d %H:%M:%S UTC"));
                }
                s
            })
            .collect();
        let by = if owners.is_empty() {
            "unknown (no field manager owns it)".to_owned()
        } else {
            owners.join("; ")
        };
        let _ = writeln!(out, "      live value set by: {by}");
        for w in d
            .attribution
            .owners
            .iter()
            .filter(|o| o.path == f.path)
            .filter_map(|o| d.attribution.writer_of(o))
        {
            let _ = writeln!(out, "      who:  {}", w.describe());
        }
    }
    out
}

/// A preview (`driftguard preview`): one row per field a merge writes (and per object created,
/// pruned or adopted), then the risk findings and a summary line. Secret values come redacted
/// from the core.
pub fn preview_table(
    report: &driftguard_server::preview::PreviewReport,
    now: DateTime<Utc>,
    style: Style,
) -> String {
    use driftguard_core::preview::{ChangeClass, ObjectChange};
    use driftguard_server::preview::class_label;
    let header = [
        "ENVIRONMENT",
        "KIND",
        "OBJECT",
        "FIELD",
        "CHANGE",
        "GIT (BASE -> HEAD)",
        "LIVE",
        "HAND CHANGE",
    ];
    let hand = |h: &Option<driftguard_core::preview::HandChange>| match h {
        Some(h) => format!(
            "{} {}",
            if h.who.is_empty() { "someone" } else { &h.who },
            ago(h.at, now)
        ),
        None => "-".into(),
    };
    let mut rows: Vec<Vec<String>> = Vec::new();
    let mut classes: Vec<ChangeClass> = Vec::new();
    for e in &report.environments {
        for o in &e.objects {
            let kind = if o.id.group.is_empty() {
                o.id.kind.clone()
            } else {
                format!("{}.{}", o.id.kind, o.id.group)
            };
            if o.change != ObjectChange::Modified || o.fields.is_empty() {
                let what = match o.class {
                    ChangeClass::New => o.change.to_string(),
                    c => format!("{}, {}", o.change, class_label(c)),
                };
                rows.push(vec![
                    e.environment.clone(),
                    kind.clone(),
                    o.id.namespaced_name(),
                    "-".into(),
                    what,
                    "-".into(),
                    "-".into(),
                    hand(&o.hand_change),
                ]);
                classes.push(o.class);
            }
            for f in &o.fields {
                rows.push(vec![
                    e.environment.clone(),
                    kind.clone(),
                    o.id.namespaced_name(),
                    f.path.to_string(),
                    class_label(f.class).to_owned(),
                    format!("{} -> {}", show_value(&f.base), show_value(&f.head)),
                    if o.live_unknown {
                        "(unknown)".into()
                    } else {
                        show_value(&f.live)
                    },
                    hand(&f.hand_change),
                ]);
                classes.push(f.class);
            }
        }
    }
    let mut out = if rows.is_empty() {
        String::new()
    } else {
        table(&header, &rows, style, |r, c, s| {
            if c != 4 {
                return s.to_owned();
            }
            match classes[r] {
                ChangeClass::Conflicts => style.severity(Severity::Critical, s),
                ChangeClass::Overwrites => style.severity(Severity::High, s),
                ChangeClass::Adopts => style.paint("32", s),
                ChangeClass::New => s.to_owned(),
            }
        })
    };
    for e in &report.environments {
        for o in &e.objects {
            for f in &o.findings {
                let at = f
                    .path
                    .as_ref()
                    .map(|p| format!(" ({p})"))
                    .unwrap_or_default();
                let _ = writeln!(
                    out,
                    "! {} {} {}: {} {} {}{at}: {}",
                    e.environment,
                    o.id.kind,
                    o.id.namespaced_name(),
                    style.severity(f.risk, f.risk.as_str()),
                    f.category,
                    f.rule,
                    f.reason
                );
            }
        }
    }
    let c = report.counts();
    if !out.is_empty() {
        out.push('\n');
    }
    let _ = writeln!(
        out,
        "{} overwritten hand change{}, {} conflict{}, {} adopted drift{}, {} new; {} created, {} pruned ({} → {}; {} environment{} changed).",
        c.overwrites,
        if c.overwrites == 1 { "" } else { "s" },
        c.conflicts,
        if c.conflicts == 1 { "" } else { "s" },
        c.adopts,
        if c.adopts == 1 { "" } else { "s" },
        c.new,
        c.created,
        c.pruned,
        report.base,
        report.head,
        report.environments.len(),
        if report.environments.len() == 1 { "" } else { "s" },
    );
    for s in &report.skipped {
        let _ = writeln!(out, "{}: {}.", s.environment, s.reason);
    }
    for p in &report.problems {
        let _ = writeln!(out, "warning: {p}");
    }
    out
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;
    use driftguard_core::ports::ScanCounts;

    use super::*;

    fn result(environment: &str) -> EnvResult {
        EnvResult {
            environment: environment.into(),
            summary: ScanSummary {
                scan_id: format!("{environment}-1"),
                environment: environment.into(),
                started_at: Utc.with_ymd_and_hms(2026, 12, 1, 9, 0, 0).unwrap(),
                duration_ms: 10,
                revision: None,
                counts: ScanCounts::default(),
                score: 0.0,
                errors: Vec::new(),
                events: 0,
            },
            drifts: Vec::new(),
            resolved: Vec::new(),
            errors: Vec::new(),
            notes: Vec::new(),
            tool: None,
        }
    }

    #[test]
    fn tool_lines_only_for_discovered_environments() {
        let results = [result("prod"), result("argocd.shop")];
        let lines = tool_lines(&results, |name| {
            (name == "argocd.shop").then(|| ("Argo CD".to_owned(), "Synced, Healthy".to_owned()))
        });
        assert_eq!(
            lines,
            "  argocd.shop: Argo CD says Synced, Healthy; DriftGuard sees no drift\n"
        );
        assert_eq!(tool_lines(&results, |_| None), "");
        // JSON: no `tool` for the file's environments
        let json = serde_json::to_value(&results[0]).expect("serializable");
        assert!(json.get("tool").is_none(), "{json}");
    }

    #[test]
    fn a_terraform_drift_is_explained_in_terraform_terms() {
        use driftguard_core::id::ResourceId;
        use driftguard_core::model::CommitInfo;
        use driftguard_core::testkit::drift;
        let first = CommitInfo {
            id: "a11ce0000000000000000000000000000000000".into(),
            author: "Alice".into(),
            email: "alice@example.com".into(),
            time: Utc.with_ymd_and_hms(2026, 12, 1, 8, 0, 0).unwrap(),
            message: "infra".into(),
        };
        let sg = "module.web_sg.aws_security_group.this_name_prefix[0]";
        // a rule opened by hand on a group whose code leaves `ingress` to rule resources; the
        // repository's first commit is known for the module, and must not be named
        let d = drift()
            .id(ResourceId::new(
                "cloud",
                "aws",
                "aws_security_group",
                None,
                sg,
            ))
            .api_version("registry.terraform.io/hashicorp/aws")
            .direction(Direction::Forward)
            .field(
                "ingress",
                None,
                Some(serde_json::json!([{"from_port": 22}])),
            )
            .provenance("modules/security-group/main.tf", 0, 45)
            .build();
        let mut d = d;
        d.attribution.commit = Some(first.clone());
        let now = Utc.with_ymd_and_hms(2026, 12, 1, 9, 0, 0).unwrap();
        let text = explain(&d, now, Style { color: false });
        for word in ["cluster", "field manager", "Git", "Alice", "a11ce00"] {
            assert!(!text.contains(word), "{word:?} in:\n{text}");
        }
        for want in [
            "declared in the code at modules/security-group/main.tf",
            "the cloud changed outside Terraform",
            "commit:    none (changed outside Terraform, not by a commit)",
            "who:       unknown (in the cloud account, outside Terraform",
            "terraform apply leaves it as it is",
            "      cloud: [{\"from_port\":22}]",
        ] {
            assert!(text.contains(want), "{want:?} not in:\n{text}");
        }
        // a change of the code, not applied, names its commit
        let mut r = d.clone();
        r.direction = Direction::Reverse;
        let text = explain(&r, now, Style { color: false });
        assert!(text.contains("commit:    a11ce0000000 Alice"), "{text}");
        assert!(
            text.contains("review terraform plan and apply it"),
            "{text}"
        );
        // a Kubernetes drift keeps its words
        let k = drift().api_version("apps/v1").build();
        let text = explain(&k, now, Style { color: false });
        assert!(text.contains("Git did not"), "{text}");
    }
}
