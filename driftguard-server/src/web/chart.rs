//! The overview's chart: the open-drift count (all environments) and the drift score (the
//! worst environment) over 24 h, 7 d or 30 d, drawn server-side as inline SVG from the scan
//! history of the store. No script draws it; a table next to it gives the same numbers.

use crate::dto::ScanDto;
use chrono::{DateTime, Duration, Utc};

use super::view::When;

/// Points along the time axis.
const BUCKETS: usize = 48;
/// Drawing size (the SVG scales to its box).
const WIDTH: f64 = 600.0;
const HEIGHT: f64 = 140.0;
const PAD: f64 = 8.0;

/// A time range the chart can show.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Range {
    /// 24 hours.
    Day,
    /// 7 days.
    Week,
    /// 30 days.
    Month,
}

impl Range {
    /// Every range, as offered on the page.
    pub const ALL: [Range; 3] = [Range::Day, Range::Week, Range::Month];

    /// From the URL (`24h`, `7d`, `30d`; anything else: 24 h).
    pub fn parse(s: Option<&str>) -> Range {
        match s {
            Some("7d") => Range::Week,
            Some("30d") => Range::Month,
            _ => Range::Day,
        }
    }

    /// The URL value.
    pub fn key(self) -> &'static str {
        match self {
            Range::Day => "24h",
            Range::Week => "7d",
            Range::Month => "30d",
        }
    }

    /// Its length.
    pub fn duration(self) -> Duration {
        match self {
            Range::Day => Duration::hours(24),
            Range::Week => Duration::days(7),
            Range::Month => Duration::days(30),
        }
    }
}

/// One line of the chart.
#[derive(Clone, Debug, PartialEq)]
pub struct Series {
    /// Its title.
    pub title: &'static str,
    /// CSS class of the line.
    pub class: &'static str,
    /// SVG `points` of each unbroken run (a gap where no scan was known yet).
    pub runs: Vec<String>,
    /// The top of the scale.
    pub max: String,
    /// The latest value.
    pub last: String,
}

/// One row of the chart's data table.
#[derive(Clone, Debug, PartialEq)]
pub struct Row {
    /// The end of the bucket.
    pub at: When,
    /// Open drifts then.
    pub open: usize,
    /// Worst score then.
    pub score: String,
}

/// The chart of one range.
#[derive(Clone, Debug, PartialEq)]
pub struct Chart {
    /// The range shown.
    pub range: Range,
    /// Open drifts, all environments.
    pub open: Series,
    /// Drift score, the worst environment.
    pub score: Series,
    /// The numbers drawn (buckets that had a scan).
    pub rows: Vec<Row>,
    /// `viewBox` of the SVGs.
    pub view_box: String,
    /// First and last time of the axis.
    pub from: When,
    /// The end of the axis.
    pub to: When,
}

fn open_of(s: &ScanDto) -> usize {
    s.counts.modified + s.counts.missing + s.counts.orphan
}

fn runs(values: &[Option<f64>], max: f64) -> Vec<String> {
    let step = (WIDTH - 2.0 * PAD) / (values.len().max(2) - 1) as f64;
    let mut out = Vec::new();
    let mut cur = String::new();
    for (i, v) in values.iter().enumerate() {
        match v {
            Some(v) => {
                let x = PAD + step * i as f64;
                let y = HEIGHT - PAD - (v / max).clamp(0.0, 1.0) * (HEIGHT - 2.0 * PAD);
                if !cur.is_empty() {
                    cur.push(' ');
                }
                cur.push_str(&format!("{x:.1},{y:.1}"));
            }
            None if !cur.is_empty() => out.push(std::mem::take(&mut cur)),
            None => {}
        }
    }
    if !cur.is_empty() {
        out.push(cur);
    }
    // a single point still shows as a short flat line
    out.into_iter()
        .map(|r| {
            if r.contains(' ') {
                r
            } else {
                let (x, y) = r.split_once(',').unwrap_or(("0", "0"));
                let x: f64 = x.parse().unwrap_or(0.0);
                format!("{:.1},{y} {:.1},{y}", (x - 2.0).max(0.0), x + 2.0)
            }
        })
        .collect()
}

/// The times the chart of `range` ending at `now` shows, oldest first: the ends of its
/// buckets, from the range's start to `now`. The state at each is the last scan before it
/// ([`DriftStore::scans_at`](driftguard_core::ports::DriftStore::scans_at) reads just those).
pub fn points(range: Range, now: DateTime<Utc>) -> Vec<DateTime<Utc>> {
    let start = now - range.duration();
    let bucket = range.duration() / BUCKETS as i32;
    (0..=BUCKETS).map(|i| start + bucket * i as i32).collect()
}

/// Draws the chart of `range` ending at `now` from the scans of each environment (each list
/// newest first, holding at least the last scan at or before each of [`points`]).
pub fn draw(range: Range, now: DateTime<Utc>, scans: &[Vec<ScanDto>]) -> Chart {
    let start = now - range.duration();
    let mut open = Vec::with_capacity(BUCKETS + 1);
    let mut score = Vec::with_capacity(BUCKETS + 1);
    let mut rows = Vec::new();
    for end in points(range, now) {
        let mut o: Option<usize> = None;
        let mut s: Option<f64> = None;
        for env in scans {
            // newest first: the first one not after the bucket's end is the state then
            if let Some(last) = env.iter().find(|x| x.started_at <= end) {
                o = Some(o.unwrap_or(0) + open_of(last));
                s = Some(s.map_or(last.score, |v: f64| v.max(last.score)));
            }
        }
        open.push(o.map(|v| v as f64));
        score.push(s);
        if let (Some(o), Some(s)) = (o, s) {
            rows.push(Row {
                at: When::of(end, now),
                open: o,
                score: format!("{s:.1}"),
            });
        }
    }
    let max_open = open.iter().flatten().fold(1.0f64, |a, b| a.max(*b)).ceil();
    let last_open = open.last().copied().flatten();
    let last_score = score.last().copied().flatten();
    Chart {
        range,
        open: Series {
            title: "Open drifts (all environments)",
            class: "line-open",
            runs: runs(&open, max_open),
            max: format!("{max_open:.0}"),
            last: last_open.map_or("–".into(), |v| format!("{v:.0}")),
        },
        score: Series {
            title: "Drift score (worst environment, 0–100)",
            class: "line-score",
            runs: runs(&score, 100.0),
            max: "100".into(),
            last: last_score.map_or("–".into(), |v| format!("{v:.1}")),
        },
        rows,
        view_box: format!("0 0 {WIDTH} {HEIGHT}"),
        from: When::of(start, now),
        to: When::of(now, now),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use driftguard_core::ports::{ScanCounts, ScanSummary};

    fn scan(at: DateTime<Utc>, modified: usize, score: f64) -> ScanDto {
        ScanDto::from(&ScanSummary {
            scan_id: at.to_rfc3339(),
            environment: "e".into(),
            started_at: at,
            duration_ms: 1,
            revision: None,
            counts: ScanCounts {
                modified,
                ..ScanCounts::default()
            },
            score,
            errors: Vec::new(),
            events: 0,
        })
    }

    #[test]
    fn the_state_at_each_point_is_the_last_scan_before_it_summed_over_environments() {
        let now = Utc::now();
        let a = vec![
            scan(now - Duration::hours(1), 3, 20.0),
            scan(now - Duration::hours(30), 1, 5.0),
        ];
        let b = vec![scan(now - Duration::hours(12), 2, 40.0)];
        let c = draw(Range::Day, now, &[a, b]);
        assert_eq!(c.open.last, "5");
        assert_eq!(c.score.last, "40.0");
        assert_eq!(c.open.max, "5");
        // the first point knows only environment a's scan from before the range
        assert_eq!(
            c.rows.first().map(|r| (r.open, r.score.as_str())),
            Some((1, "5.0"))
        );
        assert_eq!(c.open.runs.len(), 1, "no gap once a scan is known");
    }

    #[test]
    fn the_scans_at_the_points_draw_the_same_chart_as_every_scan() {
        let now = Utc::now();
        let summary = |env: &str, i: i64, every: Duration| ScanSummary {
            scan_id: format!("{env}-{i}"),
            environment: env.into(),
            started_at: now - every * i as i32,
            duration_ms: 1,
            revision: None,
            counts: ScanCounts {
                modified: (i % 7) as usize,
                ..ScanCounts::default()
            },
            score: (i % 11) as f64,
            errors: Vec::new(),
            events: 0,
        };
        // newest first: every 10 minutes for 40 days, every 7 hours, once 3 days ago, never
        let histories: Vec<Vec<ScanSummary>> = vec![
            (0..5760)
                .map(|i| summary("a", i, Duration::minutes(10)))
                .collect(),
            (1..200)
                .map(|i| summary("b", i, Duration::hours(7)))
                .collect(),
            vec![summary("c", 1, Duration::days(3))],
            Vec::new(),
        ];
        let dtos = |v: &[ScanSummary]| v.iter().map(ScanDto::from).collect::<Vec<_>>();
        for range in Range::ALL {
            let every: Vec<Vec<ScanDto>> = histories.iter().map(|h| dtos(h)).collect();
            let points = points(range, now);
            let chosen: Vec<Vec<ScanDto>> = histories
                .iter()
                .map(|h| dtos(&driftguard_core::query::scans_at(h, &points)))
                .collect();
            assert!(chosen[0].len() <= points.len());
            assert_eq!(
                draw(range, now, &every),
                draw(range, now, &chosen),
                "{range:?}"
            );
        }
    }

    #[test]
    fn no_scan_no_line() {
        let c = draw(Range::Week, Utc::now(), &[vec![]]);
        assert!(c.open.runs.is_empty() && c.rows.is_empty());
        assert_eq!(c.open.last, "–");
    }
}
