//! Remediation from the dashboard: a drift's page and a selection of the drifts table post
//! here. The first post plans and previews (nothing changes: the API server's dry run, or the
//! fields adopt would write); the preview page's form confirms exactly those plans. Both go
//! through the same functions as the API ([`crate::queries::plan_remediations`],
//! [`crate::queries::confirm_remediations`]): the page holds no rule of its own.
//!
//! Only a session signed in with a token that has the `remediate` scope may post here; every
//! post carries the session's CSRF token and must come from this origin.

use crate::auth::visible::Visible;
use askama::Template;
use axum::body::Bytes;
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use axum::Extension;
use driftguard_core::remediate::advice::RemediationAction;

use super::view;
use super::{check_csrf, html, Layout, Viewer, WebError};
use crate::config::TokenScope;
use crate::error::AppError;
use crate::queries::{self, RemediationItem};

/// What a remediation form sends: the drifts (`episode`, repeated) to plan, or the plans
/// (`confirm` = `<episode>.<plan>`, repeated) to carry out.
#[derive(Debug, PartialEq, Eq)]
pub struct RemediateForm {
    /// The session's CSRF token.
    pub csrf: String,
    /// `revert` or `adopt`.
    pub action: RemediationAction,
    /// Whether an orphan may be deleted.
    pub prune: bool,
    /// The drifts to plan.
    pub episodes: Vec<String>,
    /// The plans to carry out, by episode.
    pub confirm: Vec<(String, String)>,
}

impl RemediateForm {
    /// Reads a form body (`application/x-www-form-urlencoded`, keys may repeat).
    pub fn parse(body: &[u8]) -> Result<RemediateForm, AppError> {
        let pairs: Vec<(String, String)> = serde_urlencoded::from_bytes(body)
            .map_err(|e| AppError::bad_request(format!("invalid form: {e}")))?;
        let mut form = RemediateForm {
            csrf: String::new(),
            action: RemediationAction::Revert,
            prune: false,
            episodes: Vec::new(),
            confirm: Vec::new(),
        };
        for (k, v) in pairs {
            match k.as_str() {
                "csrf" => form.csrf = v,
                "action" if !v.is_empty() => {
                    form.action = v
                        .parse()
                        .map_err(|e| AppError::bad_request(format!("action: {e}")))?;
                }
                "action" => {}
                "prune" => form.prune = v == "on" || v == "true",
                "episode" if !v.is_empty() => form.episodes.push(v),
                "episode" => {}
                "confirm" => {
                    let (episode, plan) = v.split_once('.').ok_or_else(|| {
                        AppError::bad_request("confirm: expected `<episode>.<plan>`")
                    })?;
                    form.confirm.push((episode.to_owned(), plan.to_owned()));
                }
                other => {
                    return Err(AppError::bad_request(format!(
                        "unknown form field `{other}`"
                    )))
                }
            }
            if form.episodes.len() + form.confirm.len() > queries::MAX_REMEDIATE {
                return Err(AppError::bad_request(format!(
                    "too many drifts selected: at most {} at once",
                    queries::MAX_REMEDIATE
                )));
            }
        }
        Ok(form)
    }
}

/// One field change of a plan, as shown.
#[derive(Clone, Debug)]
pub struct ChangeRow {
    path: String,
    from: Option<String>,
    to: Option<String>,
}

/// One drift of the page: its plan and preview, its result, or why not.
#[derive(Clone, Debug)]
pub struct PlanView {
    episode: String,
    object: String,
    link: String,
    operation: String,
    plan: String,
    /// Whether it can be confirmed (a plan was made and not yet carried out).
    ready: bool,
    changes: Vec<ChangeRow>,
    left_alone: Vec<String>,
    /// What was done (after confirming).
    result: Option<String>,
    /// Why not (a refusal, an unknown episode, a failure).
    error: Option<String>,
}

fn plan_view(item: &RemediationItem) -> PlanView {
    let mut v = PlanView {
        episode: item.episode.clone(),
        object: item.object.clone(),
        link: view::drift_link(&item.episode),
        operation: String::new(),
        plan: String::new(),
        ready: false,
        changes: Vec::new(),
        left_alone: Vec::new(),
        result: None,
        error: None,
    };
    match &item.answer {
        Ok(a) => {
            v.operation = a.operation.clone();
            v.plan = a.plan.clone();
            v.ready = a.result.is_none();
            v.changes = a
                .preview
                .iter()
                .map(|c| ChangeRow {
                    path: c.path.clone(),
                    from: view::value(&c.from),
                    to: view::value(&c.to),
                })
                .collect();
            v.left_alone = a.left_alone.clone();
            v.result = a.result.clone();
        }
        Err(e) => v.error = Some(e.message.clone()),
    }
    v
}

#[derive(Template)]
#[template(path = "remediate.html")]
struct RemediatePage {
    layout: Layout,
    heading: String,
    summary: String,
    confirmed: bool,
    action: String,
    prune: bool,
    items: Vec<PlanView>,
    ready: usize,
    verb: &'static str,
}

/// `POST /drifts/remediate`: plans and previews the selected drifts, or carries out the
/// confirmed plans.
pub(crate) async fn remediate(
    Visible(state): Visible,
    Extension(viewer): Extension<Viewer>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, WebError> {
    let form = RemediateForm::parse(&body)?;
    check_csrf(&viewer, &headers, &form.csrf)?;
    viewer.require(TokenScope::Remediate)?;
    let confirmed = !form.confirm.is_empty();
    let items = if confirmed {
        tracing::info!(caller = %viewer.caller.name, plans = form.confirm.len(), "remediation confirmed on the dashboard");
        queries::confirm_remediations(&state, &form.confirm, form.prune, &viewer.caller).await?
    } else {
        queries::plan_remediations(
            &state,
            &form.episodes,
            form.action,
            form.prune,
            &viewer.caller,
        )
        .await?
    };
    let items: Vec<PlanView> = items.iter().map(plan_view).collect();
    let ready = items.iter().filter(|p| p.ready).count();
    let verb = match form.action {
        RemediationAction::Revert => "revert",
        RemediationAction::Adopt => "adopt",
    };
    let n = items.len();
    let drifts = |n: usize| format!("{n} drift{}", if n == 1 { "" } else { "s" });
    let (heading, summary) = if confirmed {
        let done = items.iter().filter(|p| p.result.is_some()).count();
        (
            format!("Remediation: {} of {} carried out", done, drifts(n)),
            "Each is recorded in the history as a remediated event naming you; a scan has \
             started, and the drifts resolve when it sees the change."
                .to_owned(),
        )
    } else {
        (
            format!("Preview: {verb} {}", drifts(n)),
            match form.action {
                RemediationAction::Revert => {
                    "Nothing has changed yet. Below is what the API server's dry run says \
                     applying Git's version would change. Confirm to carry it out."
                }
                RemediationAction::Adopt => {
                    "Nothing has changed yet. Below are the live values that would be written \
                     into Git, on a new branch. Confirm to push it."
                }
            }
            .to_owned(),
        )
    };
    let page = RemediatePage {
        layout: Layout::page(heading.clone(), "/drifts", &viewer, &state),
        heading,
        summary,
        confirmed,
        action: verb.to_owned(),
        prune: form.prune,
        items,
        ready,
        verb,
    };
    Ok(html(&page)?.into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_form_names_drifts_or_plans_and_nothing_else() {
        let f = RemediateForm::parse(b"csrf=c&action=adopt&episode=a1&episode=b2&prune=on")
            .expect("parses");
        assert_eq!(f.action, RemediationAction::Adopt);
        assert_eq!(f.episodes, ["a1", "b2"]);
        assert!(f.prune && f.confirm.is_empty());
        let f = RemediateForm::parse(b"csrf=c&confirm=a1.p1&confirm=b2.p2").expect("parses");
        assert_eq!(f.action, RemediationAction::Revert, "revert by default");
        assert_eq!(
            f.confirm,
            [("a1".into(), "p1".into()), ("b2".into(), "p2".into())]
        );
        for bad in [
            &b"csrf=c&action=explode&episode=a"[..],
            b"csrf=c&confirm=noplan",
            b"csrf=c&episode=a&token=x",
        ] {
            let e = RemediateForm::parse(bad).expect_err("refused");
            assert_eq!(e.status, axum::http::StatusCode::BAD_REQUEST);
        }
        let many: String = (0..=queries::MAX_REMEDIATE)
            .map(|i| format!("episode=e{i}&"))
            .collect();
        let e = RemediateForm::parse(many.as_bytes()).expect_err("too many");
        assert!(e.message.contains("at most"), "{}", e.message);
    }
}
