//! The pages: each reads through the same functions as the API and the MCP server
//! ([`crate::queries`], answering the API's DTOs) and fills a template; no page reads the
//! store itself.

use std::collections::HashMap;

use askama::Template;
use axum::extract::{Path, Query};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::{Extension, Form};
use chrono::{DateTime, Datelike, Utc};
use driftguard_core::duration::HumanDuration;
use driftguard_core::id::ResourceId;
use driftguard_core::query::{DriftQuery, DriftSort, EventQuery};
use driftguard_core::severity::Severity;
use driftguard_core::state::{Direction, DriftKind, EventKind};

use super::chart::{self, Chart, Range};
use super::view::{self, When};
use super::{check_csrf, html, CsrfForm, Layout, Viewer, WebError};
use crate::auth::visible::Visible;
use crate::config::TokenScope;
use crate::dto::{DriftSummary, EnvironmentDto, EventDto, RemediationDto};
use crate::error::AppError;
use crate::queries::{self, DriftFilter, MAX_LIMIT};

type Params = Query<HashMap<String, String>>;

mod drift;
mod drifts;
mod events;
mod object;
mod overview;
mod scans;

pub(crate) use drift::*;
pub(crate) use drifts::*;
pub(crate) use events::*;
pub(crate) use object::*;
pub(crate) use overview::*;
pub(crate) use scans::*;

pub(super) fn param<'a>(q: &'a HashMap<String, String>, k: &str) -> &'a str {
    q.get(k).map_or("", |v| v.as_str())
}

/// A choice of a `<select>`.
#[derive(Clone, Debug)]
pub struct Choice {
    pub(super) value: String,
    pub(super) label: String,
    pub(super) selected: bool,
}

pub(super) fn choices<'a>(
    current: &str,
    any: &str,
    values: impl IntoIterator<Item = &'a str>,
) -> Vec<Choice> {
    let mut out = vec![Choice {
        value: String::new(),
        label: any.to_owned(),
        selected: current.is_empty(),
    }];
    out.extend(values.into_iter().map(|v| Choice {
        value: v.to_owned(),
        label: v.to_owned(),
        selected: v == current,
    }));
    out
}

/// A badge: text and CSS class.
#[derive(Clone, Debug)]
pub struct Badge {
    pub(super) text: String,
    pub(super) class: String,
}

pub(super) fn badge(prefix: &str, text: &str) -> Badge {
    Badge {
        text: text.replace('_', " "),
        class: format!("badge {prefix}-{text}"),
    }
}
