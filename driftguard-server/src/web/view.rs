//! Small presentation helpers of the dashboard: times, values, links. Presentation only: what
//! a drift means is decided by the core, the pages only show it.

use std::fmt;

use askama::filters::Escaper;
use chrono::{DateTime, SecondsFormat, Utc};
use serde_json::Value;

/// Whether `c` is a Unicode bidirectional control (embeddings, overrides, isolates and marks):
/// in a name or a value it reorders the text around it on the page (`\u{202E}` made
/// `evil.yaml` read as `lmay.live`).
pub fn is_bidi_control(c: char) -> bool {
    matches!(
        c,
        '\u{061C}' | '\u{200E}' | '\u{200F}' | '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}'
    )
}

/// The dashboard's one escaper (`askama.toml` gives it every `.html` template, so every value
/// a template writes passes through it, names and values from Git and the cluster included):
/// askama's HTML escaping, with each bidirectional control shown as a visible escape
/// (`\u{202E}`) instead of acting on the page.
#[derive(Clone, Copy, Debug, Default)]
pub struct Html;

impl Escaper for Html {
    fn write_escaped_str<W: fmt::Write>(&self, mut dest: W, string: &str) -> fmt::Result {
        let mut rest = string;
        while let Some(at) = rest.find(is_bidi_control) {
            askama::filters::Html.write_escaped_str(&mut dest, &rest[..at])?;
            let c = rest[at..]
                .chars()
                .next()
                .expect("a character was found there");
            write!(dest, "\\u{{{:04X}}}", u32::from(c))?;
            rest = &rest[at + c.len_utf8()..];
        }
        askama::filters::Html.write_escaped_str(dest, rest)
    }

    fn write_escaped_char<W: fmt::Write>(&self, dest: W, c: char) -> fmt::Result {
        self.write_escaped_str(dest, c.encode_utf8(&mut [0; 4]))
    }
}

/// A time as a page shows it: relative text, the exact time for `<time datetime>` and a
/// readable UTC time for its title.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct When {
    /// `just now`, `5 min ago`, `3 h ago`, `2 d ago`.
    pub ago: String,
    /// RFC 3339.
    pub iso: String,
    /// `2024-05-01 12:00:00 UTC`.
    pub utc: String,
}

impl When {
    /// `t` seen from `now`.
    pub fn of(t: DateTime<Utc>, now: DateTime<Utc>) -> When {
        When {
            ago: ago(t, now),
            iso: t.to_rfc3339_opts(SecondsFormat::Secs, true),
            utc: t.format("%Y-%m-%d %H:%M:%S UTC").to_string(),
        }
    }
}

/// How long ago, in words.
pub fn ago(t: DateTime<Utc>, now: DateTime<Utc>) -> String {
    let s = (now - t).num_seconds().max(0);
    match s {
        0..=59 => "just now".into(),
        60..=3599 => format!("{} min ago", s / 60),
        3600..=86_399 => format!("{} h ago", s / 3600),
        _ => format!("{} d ago", s / 86_400),
    }
}

/// An acknowledgement in words: `acknowledged by token:ops 2 h ago until 2024-05-03 17:00 UTC:
/// load test`.
pub fn ack_label(a: &crate::dto::AcknowledgementDto, now: DateTime<Utc>) -> String {
    let until = a
        .until
        .map(|u| format!(" until {}", u.format("%Y-%m-%d %H:%M UTC")))
        .unwrap_or_default();
    format!(
        "acknowledged by {} {}{until}: {}",
        a.by,
        ago(a.at, now),
        a.reason
    )
}

/// A duration in words (`3 d 4 h`, `5 min`).
pub fn age(t: DateTime<Utc>, now: DateTime<Utc>) -> String {
    let s = (now - t).num_seconds().max(0);
    match s {
        0..=59 => format!("{s} s"),
        60..=3599 => format!("{} min", s / 60),
        3600..=86_399 => format!("{} h {} min", s / 3600, s % 3600 / 60),
        _ => format!("{} d {} h", s / 86_400, s % 86_400 / 3600),
    }
}

/// A field value for display: strings bare, other values as compact JSON, `None` when the
/// field is not set on that side. (Secret values arrive already redacted by the core.)
pub fn value(v: &Option<Value>) -> Option<String> {
    match v {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) => Some(s.clone()),
        Some(other) => Some(other.to_string()),
    }
}

/// A query string from pairs, leaving out empty values (`?a=1&b=x%20y`, or `""`).
pub fn query_string(pairs: &[(&str, &str)]) -> String {
    let kept: Vec<(&str, &str)> = pairs
        .iter()
        .filter(|(_, v)| !v.is_empty())
        .copied()
        .collect();
    if kept.is_empty() {
        return String::new();
    }
    serde_urlencoded::to_string(&kept)
        .map(|q| format!("?{q}"))
        .unwrap_or_default()
}

/// Percent-encodes one path segment (an episode id, an environment name).
pub fn segment(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~' | b':') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// The page of a drift episode.
pub fn drift_link(episode: &str) -> String {
    format!("/drifts/{}", segment(episode))
}

/// The history page of an object (`reference` is `Kind[.group]/[namespace/]name`).
pub fn object_link(environment: &str, reference: &str) -> String {
    let rest: Vec<String> = reference.split('/').map(segment).collect();
    format!("/objects/{}/{}", segment(environment), rest.join("/"))
}

/// A short commit or revision id.
pub fn short(id: &str) -> String {
    id.chars().take(12).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn escaped(s: &str) -> String {
        let mut out = String::new();
        Html.write_escaped_str(&mut out, s)
            .expect("a String takes it");
        out
    }

    #[test]
    fn bidi_controls_are_shown_not_obeyed() {
        assert_eq!(escaped("evil\u{202E}lmay.yaml"), "evil\\u{202E}lmay.yaml");
        assert_eq!(
            escaped("<a>\u{2066}\u{200F}&\u{061C}"),
            "&#60;a&#62;\\u{2066}\\u{200F}&#38;\\u{061C}"
        );
        assert_eq!(
            escaped("ünïcode ✓ שלום"),
            "ünïcode ✓ שלום",
            "other text is left alone"
        );
        let mut one = String::new();
        Html.write_escaped_char(&mut one, '\u{202D}')
            .expect("a String takes it");
        assert_eq!(one, "\\u{202D}");
    }

    #[test]
    fn times_links_and_values() {
        let t = Utc
            .with_ymd_and_hms(2024, 5, 1, 12, 0, 0)
            .single()
            .expect("valid");
        let w = When::of(t, t + chrono::Duration::seconds(7200));
        assert_eq!(
            (w.ago.as_str(), w.iso.as_str()),
            ("2 h ago", "2024-05-01T12:00:00Z")
        );
        assert_eq!(age(t, t + chrono::Duration::seconds(90_000)), "1 d 1 h");
        assert_eq!(
            query_string(&[("a", "1"), ("b", ""), ("c", "x y&")]),
            "?a=1&c=x+y%26"
        );
        assert_eq!(query_string(&[("a", "")]), "");
        assert_eq!(
            object_link("prod", "Deployment.apps/shop/web"),
            "/objects/prod/Deployment.apps/shop/web"
        );
        assert_eq!(drift_link("a/b c"), "/drifts/a%2Fb%20c");
        assert_eq!(value(&Some(serde_json::json!("x"))).as_deref(), Some("x"));
        assert_eq!(
            value(&Some(serde_json::json!({"a": 1}))).as_deref(),
            Some("{\"a\":1}")
        );
        assert_eq!(value(&None), None);
    }
}
