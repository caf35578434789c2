//! Durations as people write them, with one unit rule for every flag and configuration key.
//!
//! **The unit rule.** A duration is a whole number followed by a unit: `ms` (milliseconds),
//! `s` (seconds), `m` (minutes), `h` (hours), `d` (days) or `w` (weeks); spaces around the unit
//! are allowed. **A bare number means seconds**, everywhere: `retention: 5`, `pollInterval: 5`
//! and `--since 5` all mean five seconds.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::{Deserializer, Serialize, Serializer};

/// Why a duration could not be read.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum DurationError {
    /// No whole number at the start.
    #[error(
        "invalid duration `{given}` (expected a whole number and a unit: 500ms, 30s, 5m, 1h, 7d, 2w; a bare number is seconds)"
    )]
    NotANumber {
        /// The text given.
        given: String,
    },
    /// A unit other than `ms`, `s`, `m`, `h`, `d` or `w`.
    #[error("invalid duration unit `{unit}` in `{given}` (expected ms, s, m, h, d or w)")]
    UnknownUnit {
        /// The text given.
        given: String,
        /// The unit found.
        unit: String,
    },
    /// More than this program can count.
    #[error("duration `{given}` is too long")]
    TooLong {
        /// The text given.
        given: String,
    },
}

/// A duration written as `500ms`, `30s`, `5m`, `1h`, `7d`, `2w`, or a bare number of seconds
/// (see [the unit rule](self)). Serialized as seconds (`30s`), or milliseconds (`250ms`) when it
/// is not a whole number of seconds.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct HumanDuration(pub Duration);

impl HumanDuration {
    /// Reads a duration by [the unit rule](self).
    pub fn parse(s: &str) -> Result<Self, DurationError> {
        let given = s.trim();
        let split = given
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(given.len());
        let (num, unit) = given.split_at(split);
        let n: u64 = num.parse().map_err(|_| DurationError::NotANumber {
            given: given.to_owned(),
        })?;
        let per_unit: u64 = match unit.trim() {
            "ms" => return Ok(HumanDuration(Duration::from_millis(n))),
            "" | "s" => 1,
            "m" => 60,
            "h" => 3600,
            "d" => 86_400,
            "w" => 7 * 86_400,
            other => {
                return Err(DurationError::UnknownUnit {
                    given: given.to_owned(),
                    unit: other.to_owned(),
                })
            }
        };
        n.checked_mul(per_unit)
            .map(|secs| HumanDuration(Duration::from_secs(secs)))
            .ok_or_else(|| DurationError::TooLong {
                given: given.to_owned(),
            })
    }

    /// The duration.
    pub fn get(self) -> Duration {
        self.0
    }
}

impl From<HumanDuration> for Duration {
    fn from(d: HumanDuration) -> Duration {
        d.0
    }
}

impl From<Duration> for HumanDuration {
    fn from(d: Duration) -> HumanDuration {
        HumanDuration(d)
    }
}

impl FromStr for HumanDuration {
    type Err = DurationError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        HumanDuration::parse(s)
    }
}

impl fmt::Display for HumanDuration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let ms = self.0.as_millis();
        if ms % 1000 == 0 {
            write!(f, "{}s", ms / 1000)
        } else {
            write!(f, "{ms}ms")
        }
    }
}

impl Serialize for HumanDuration {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> serde::Deserialize<'de> for HumanDuration {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl serde::de::Visitor<'_> for Visitor {
            type Value = HumanDuration;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a duration (500ms, 30s, 5m, 1h, 7d, 2w) or a number of seconds")
            }

            fn visit_u64<E: serde::de::Error>(self, n: u64) -> Result<HumanDuration, E> {
                Ok(HumanDuration(Duration::from_secs(n)))
            }

            fn visit_i64<E: serde::de::Error>(self, n: i64) -> Result<HumanDuration, E> {
                u64::try_from(n)
                    .map(|n| HumanDuration(Duration::from_secs(n)))
                    .map_err(|_| E::custom(format!("invalid duration `{n}`: negative")))
            }

            fn visit_str<E: serde::de::Error>(self, s: &str) -> Result<HumanDuration, E> {
                HumanDuration::parse(s).map_err(E::custom)
            }
        }
        d.deserialize_any(Visitor)
    }
}

/// The configuration reference's `duration` (with the `schema` feature).
#[cfg(feature = "schema")]
impl schemars::JsonSchema for HumanDuration {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "HumanDuration".into()
    }

    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({
            "title": "duration",
            "description": "A whole number and a unit: `500ms`, `30s`, `5m`, `1h`, `7d` or `2w`; a bare number is seconds.",
            "type": ["string", "integer"],
            "pattern": "^ *[0-9]+ *(ms|s|m|h|d|w)? *$",
            "minimum": 0,
        })
    }
}

/// A point in time given as a duration back from now (`30m`, `7d`, a bare number of seconds)
/// or as an RFC 3339 time (`2024-05-01T12:00:00Z`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Since {
    /// This long before now.
    Ago(HumanDuration),
    /// This time.
    At(DateTime<Utc>),
}

/// Text that is neither a duration nor an RFC 3339 time.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error(
    "`{given}` is neither a duration back (30m, 2h, 7d; a bare number is seconds) nor an RFC 3339 time"
)]
pub struct SinceError {
    /// The text given.
    pub given: String,
    /// Why it is not a duration.
    #[source]
    pub duration: DurationError,
}

impl FromStr for Since {
    type Err = SinceError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if let Ok(t) = DateTime::parse_from_rfc3339(s.trim()) {
            return Ok(Since::At(t.with_timezone(&Utc)));
        }
        HumanDuration::parse(s)
            .map(Since::Ago)
            .map_err(|duration| SinceError {
                given: s.to_owned(),
                duration,
            })
    }
}

impl Since {
    /// The time meant, `now` being now (the core never reads the clock). A duration too long
    /// to subtract gives the earliest time there is.
    pub fn at(self, now: DateTime<Utc>) -> DateTime<Utc> {
        match self {
            Since::At(t) => t,
            Since::Ago(d) => chrono::Duration::from_std(d.0)
                .ok()
                .and_then(|d| now.checked_sub_signed(d))
                .unwrap_or(DateTime::<Utc>::MIN_UTC),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secs(s: &str) -> Result<u64, DurationError> {
        HumanDuration::parse(s).map(|d| d.0.as_secs())
    }

    #[test]
    fn parses_durations() {
        assert_eq!(
            HumanDuration::parse("5m").map(|d| d.0),
            Ok(Duration::from_secs(300))
        );
        assert_eq!(
            HumanDuration::parse("250ms").map(|d| d.0),
            Ok(Duration::from_millis(250))
        );
        assert!(HumanDuration::parse("5 parsecs").is_err());
    }

    #[test]
    fn one_unit_rule() {
        assert_eq!(secs("5"), Ok(5), "a bare number is seconds");
        assert_eq!(secs("5s"), Ok(5));
        assert_eq!(secs(" 5 m "), Ok(300));
        assert_eq!(secs("2h"), Ok(7200));
        assert_eq!(secs("7d"), Ok(604_800));
        assert_eq!(secs("2w"), Ok(1_209_600));
        assert_eq!(
            secs("5 parsecs"),
            Err(DurationError::UnknownUnit {
                given: "5 parsecs".into(),
                unit: "parsecs".into()
            })
        );
        assert_eq!(
            secs("soon"),
            Err(DurationError::NotANumber {
                given: "soon".into()
            })
        );
        assert!(secs("-5s").is_err());
        assert!(secs("1.5h").is_err());
        assert_eq!(
            secs("99999999999999999w"),
            Err(DurationError::TooLong {
                given: "99999999999999999w".into()
            })
        );
        assert!(HumanDuration::parse("soon")
            .expect_err("not a duration")
            .to_string()
            .starts_with("invalid duration `soon`"));
    }

    #[test]
    fn serde_reads_numbers_as_seconds_and_writes_back() {
        let read = |y: &str| serde_yaml::from_str::<HumanDuration>(y);
        assert_eq!(read("5").expect("number").0, Duration::from_secs(5));
        assert_eq!(read("\"5\"").expect("string").0, Duration::from_secs(5));
        assert_eq!(
            read("90d").expect("days").0,
            Duration::from_secs(90 * 86_400)
        );
        assert!(read("-5").is_err());
        assert!(read("soon")
            .expect_err("not a duration")
            .to_string()
            .contains("invalid duration `soon`"));
        let json = |d: Duration| serde_json::to_value(HumanDuration(d)).expect("serializes");
        assert_eq!(json(Duration::from_secs(300)), serde_json::json!("300s"));
        assert_eq!(json(Duration::from_millis(250)), serde_json::json!("250ms"));
        let back: HumanDuration =
            serde_json::from_value(json(Duration::from_millis(1500))).expect("round trip");
        assert_eq!(back.0, Duration::from_millis(1500));
    }

    #[test]
    fn since_is_a_duration_back_or_a_time() {
        let now = DateTime::parse_from_rfc3339("2024-05-01T12:00:00Z")
            .expect("valid")
            .with_timezone(&Utc);
        let at = |s: &str| s.parse::<Since>().map(|x| x.at(now).to_rfc3339());
        assert_eq!(at("30m"), Ok("2024-05-01T11:30:00+00:00".into()));
        assert_eq!(at("5"), Ok("2024-05-01T11:59:55+00:00".into()));
        assert_eq!(at("1w"), Ok("2024-04-24T12:00:00+00:00".into()));
        assert_eq!(
            at("2024-04-30T00:00:00+02:00"),
            Ok("2024-04-29T22:00:00+00:00".into())
        );
        let err = "yesterday".parse::<Since>().expect_err("neither");
        assert_eq!(err.given, "yesterday");
        assert!(matches!(err.duration, DurationError::NotANumber { .. }));
        assert_eq!(
            "99999999999999999s".parse::<Since>().map(|s| s.at(now)),
            Ok(DateTime::<Utc>::MIN_UTC)
        );
    }
}
