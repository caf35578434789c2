//! The filters a caller gives a query, as text (a URL's query string, an MCP tool's
//! arguments, a dashboard form), read into the core's typed queries: one reading of each
//! value, with the one error for a value that names nothing, for the API, MCP and the
//! dashboard alike.

use std::str::FromStr;

use chrono::{DateTime, Utc};
use driftguard_core::query::{DriftQuery, DriftSort, DriftStatus};
use driftguard_core::severity::Severity;
use driftguard_core::state::{Direction, DriftKind};
use serde::Deserialize;
use utoipa::IntoParams;

use crate::error::AppError;

/// Largest page size.
pub const MAX_LIMIT: usize = 1000;

/// The largest `offset` of a page (the OpenAPI document's `maximum`).
pub const MAX_OFFSET: usize = i32::MAX as usize;

/// The filters of a drift list (`GET /api/v1/drifts`, the MCP tool `list_drifts`, the
/// dashboard's drifts table): each value as given, read by [`DriftFilter::query`].
#[derive(Debug, Default, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct DriftFilter {
    /// Environment.
    pub environment: Option<String>,
    /// API group (exact, e.g. `apps`; absent or empty: any).
    pub group: Option<String>,
    /// Kubernetes kind (exact).
    pub kind: Option<String>,
    /// Namespace (exact).
    pub namespace: Option<String>,
    /// Name (glob, e.g. `web-*`).
    pub name: Option<String>,
    /// Kind of drift: `modified`, `missing`, `orphan`.
    pub drift: Option<String>,
    /// Direction: `forward`, `reverse`, `conflict`, `unknown`.
    pub direction: Option<String>,
    /// Minimum severity: `low`, `medium`, `high`, `critical`.
    pub severity: Option<String>,
    /// `open` (default), `resolved` or `all`.
    pub status: Option<String>,
    /// Only drifts detected before this time (RFC 3339): an age filter.
    #[param(value_type = Option<String>, format = DateTime)]
    pub detected_before: Option<String>,
    /// `severity` (default), `detected`, `updated` or `object`.
    pub sort: Option<String>,
    /// Page size (1..1000, default 100).
    #[param(value_type = Option<u32>, minimum = 1, maximum = 1000)]
    pub limit: Option<String>,
    /// Items to skip (default 0).
    #[param(value_type = Option<u32>, maximum = 2147483647)]
    pub offset: Option<String>,
    /// `true`: only drifts whose acknowledgement holds; `false`: only the others (absent:
    /// both, each marked).
    #[param(value_type = Option<bool>)]
    pub acknowledged: Option<String>,
}

impl DriftFilter {
    /// The `acknowledged` filter (`true`/`yes`, `false`/`no`; absent or empty: none).
    pub fn acknowledged(&self) -> Result<Option<bool>, AppError> {
        parse_flag("acknowledged", &self.acknowledged)
    }

    /// The store query these filters ask for (a value that is not a name of its enum, or a
    /// limit out of range, is a 400).
    pub fn query(&self) -> Result<DriftQuery, AppError> {
        let non_empty = |v: &Option<String>| v.clone().filter(|s| !s.is_empty());
        Ok(DriftQuery {
            environment: non_empty(&self.environment),
            group: non_empty(&self.group),
            kind: non_empty(&self.kind),
            namespace: non_empty(&self.namespace),
            name: non_empty(&self.name),
            drift: parse::<DriftKind>("drift", &self.drift)?,
            direction: parse::<Direction>("direction", &self.direction)?,
            min_severity: parse::<Severity>("severity", &self.severity)?,
            detected_before: parse_time("detected_before", &self.detected_before)?,
            status: parse::<DriftStatus>("status", &self.status)?.unwrap_or_default(),
            sort: parse::<DriftSort>("sort", &self.sort)?.unwrap_or_default(),
            limit: parse_limit(&self.limit, 100)?,
            offset: parse_offset(&self.offset)?,
        })
    }
}

/// A value read with its type's `FromStr` (absent or empty: `None`; otherwise unreadable: a
/// 400 naming the parameter).
pub fn parse<T: FromStr>(name: &str, v: &Option<String>) -> Result<Option<T>, AppError>
where
    T::Err: std::fmt::Display,
{
    v.as_deref()
        .filter(|s| !s.is_empty())
        .map(|s| T::from_str(s).map_err(|e| AppError::bad_request(format!("{name}: {e}"))))
        .transpose()
}

fn parse_usize(
    name: &str,
    v: &Option<String>,
    default: usize,
    max: usize,
) -> Result<usize, AppError> {
    match v.as_deref() {
        None | Some("") => Ok(default),
        Some(s) => {
            let n: usize = s.parse().map_err(|_| {
                AppError::bad_request(format!("{name}: `{s}` is not a non-negative integer"))
            })?;
            if n > max {
                return Err(AppError::bad_request(format!("{name}: at most {max}")));
            }
            Ok(n)
        }
    }
}

/// The `offset` of a page: 0 when absent, at most [`MAX_OFFSET`].
pub fn parse_offset(v: &Option<String>) -> Result<usize, AppError> {
    parse_usize("offset", v, 0, MAX_OFFSET)
}

/// The `limit` of a page: `default` when absent, 1..[`MAX_LIMIT`].
pub fn parse_limit(v: &Option<String>, default: usize) -> Result<usize, AppError> {
    let n = parse_usize("limit", v, default, MAX_LIMIT)?;
    if n == 0 {
        return Err(AppError::bad_request("limit: must be at least 1"));
    }
    Ok(n)
}

/// A yes-or-no value (`true`/`yes`/`1`, `false`/`no`/`0`, any case; absent or empty: `None`).
pub fn parse_flag(name: &str, v: &Option<String>) -> Result<Option<bool>, AppError> {
    match v.as_deref().map(str::trim) {
        None | Some("") => Ok(None),
        Some(s) => match s.to_ascii_lowercase().as_str() {
            "true" | "yes" | "1" => Ok(Some(true)),
            "false" | "no" | "0" => Ok(Some(false)),
            _ => Err(AppError::bad_request(format!(
                "{name}: `{s}` is neither true nor false"
            ))),
        },
    }
}

/// A time bound (RFC 3339; absent: no bound, empty: a 400).
pub fn parse_time(name: &str, v: &Option<String>) -> Result<Option<DateTime<Utc>>, AppError> {
    v.as_deref()
        .map(|s| {
            if s.is_empty() {
                return Err(AppError::bad_request(format!(
                    "{name}: empty (leave the parameter out for no bound)"
                )));
            }
            DateTime::parse_from_rfc3339(s)
                .map(|t| t.with_timezone(&Utc))
                .map_err(|_| {
                    AppError::bad_request(format!(
                        "{name}: `{s}` is not an RFC 3339 time (e.g. 2024-05-01T12:00:00Z)"
                    ))
                })
        })
        .transpose()
}
