//! One drift: its fields, owners, episodes, events, commit, findings and remediation.

use super::*;

/// One drifted field.
#[derive(Clone, Debug)]
pub struct FieldRow {
    pub(super) path: String,
    pub(super) git: Option<String>,
    pub(super) live: Option<String>,
    pub(super) who: String,
}

/// One owner of a drifted field.
#[derive(Clone, Debug)]
pub struct OwnerRow {
    pub(super) path: String,
    pub(super) manager: String,
    pub(super) operation: String,
    pub(super) time: Option<When>,
}

/// One event in a list.
#[derive(Clone, Debug)]
pub struct EventRow {
    pub(super) at: When,
    pub(super) event: Badge,
    pub(super) environment: String,
    pub(super) kind: String,
    pub(super) object: String,
    pub(super) object_link: String,
    pub(super) drift_link: String,
    pub(super) detail: String,
    pub(super) severity: Badge,
    pub(super) direction: Badge,
}

/// `namespace/name`, or the name of a cluster-scoped object.
pub(super) fn namespaced(o: &crate::dto::ObjectRef) -> String {
    match &o.namespace {
        Some(ns) => format!("{ns}/{}", o.name),
        None => o.name.clone(),
    }
}

pub(super) fn event_row(e: &EventDto, now: DateTime<Utc>) -> EventRow {
    let d = &e.drift;
    EventRow {
        at: When::of(e.at, now),
        event: badge("event", &e.event),
        environment: d.object.environment.clone(),
        kind: d.object.kind.clone(),
        object: namespaced(&d.object),
        object_link: view::object_link(&d.object.environment, &d.object.reference),
        drift_link: view::drift_link(&d.episode),
        detail: match (e.event.as_str(), d.ended_how()) {
            ("resolved", Some(how)) => format!("{} ({how})", d.drift),
            _ if d.paths.is_empty() => d.drift.clone(),
            _ => format!("{}: {}", d.drift, d.paths.join(", ")),
        },
        severity: badge("sev", &d.severity),
        direction: badge("dir", &d.direction),
    }
}

/// An earlier (or the current) episode of an object.
#[derive(Clone, Debug)]
pub struct EpisodeRow {
    pub(super) link: String,
    pub(super) current: bool,
    pub(super) drift: String,
    pub(super) direction: String,
    pub(super) detected: When,
    pub(super) ended: String,
}

pub(super) fn episode_row(d: &DriftSummary, current: &str, now: DateTime<Utc>) -> EpisodeRow {
    EpisodeRow {
        link: view::drift_link(&d.episode),
        current: d.episode == current,
        drift: d.drift.clone(),
        direction: d.direction.clone(),
        detected: When::of(d.detected_at, now),
        ended: match (d.resolved_at, d.ended_how()) {
            (Some(t), Some(how)) => format!("{how} {}", view::ago(t, now)),
            (Some(t), None) => format!("resolved {}", view::ago(t, now)),
            _ => "open".into(),
        },
    }
}

/// The commit of a drift.
#[derive(Clone, Debug)]
pub struct CommitView {
    pub(super) id: String,
    pub(super) short: String,
    pub(super) author: String,
    pub(super) email: String,
    pub(super) time: When,
    pub(super) message: String,
}

/// Where the object is defined.
#[derive(Clone, Debug)]
pub struct Where {
    pub(super) file: String,
    pub(super) line: usize,
    pub(super) link: Option<String>,
    pub(super) revision: String,
    /// How a renderer made it (a Helm chart, a command), in words.
    pub(super) rendered: Option<String>,
}

/// A risk finding of a drift (the core's findings, as the API gives them).
#[derive(Clone, Debug)]
pub struct FindingView {
    pub(super) risk: Badge,
    pub(super) rule: String,
    pub(super) category: String,
    pub(super) path: Option<String>,
    pub(super) reason: String,
}

#[derive(Template)]
#[template(path = "drift.html")]
pub(super) struct DriftPage {
    pub(super) layout: Layout,
    /// The acknowledgement in words, when a person acknowledged the drift.
    pub(super) ack: Option<String>,
    /// Whether it holds (the withdraw button) or not (the acknowledge form).
    pub(super) ack_holds: bool,
    /// Why it lapsed.
    pub(super) ack_lapse: Option<String>,
    /// Where the acknowledge form posts.
    pub(super) ack_action: String,
    pub(super) d: DriftSummary,
    pub(super) heading: String,
    pub(super) drift: Badge,
    pub(super) direction: Badge,
    pub(super) severity: Badge,
    pub(super) status: String,
    pub(super) reason: String,
    pub(super) inline: bool,
    pub(super) side_link: String,
    pub(super) inline_link: String,
    pub(super) fields: Vec<FieldRow>,
    pub(super) absent_note: Option<&'static str>,
    pub(super) owners: Vec<OwnerRow>,
    pub(super) who: String,
    pub(super) commit: Option<CommitView>,
    pub(super) place: Option<Where>,
    pub(super) revision: String,
    pub(super) detected: When,
    pub(super) updated: When,
    pub(super) resolved: Option<When>,
    pub(super) events: Vec<EventRow>,
    pub(super) episodes: Vec<EpisodeRow>,
    pub(super) explain: String,
    pub(super) object_link: String,
    pub(super) risk: Badge,
    pub(super) findings: Vec<FindingView>,
    pub(super) remediation: Option<RemediationDto>,
}

/// `GET /drifts/{episode}`.
pub(crate) async fn drift(
    Visible(state): Visible,
    Extension(viewer): Extension<Viewer>,
    Path(episode): Path<String>,
    Query(q): Params,
) -> Result<Html<String>, WebError> {
    let now = state.clock.now();
    let detail = queries::drift(&state, &episode).await?;
    let s = detail.drift.clone();
    let o = &s.object;
    let id = ResourceId::new(
        &o.environment,
        &o.group,
        &o.kind,
        o.namespace.as_deref(),
        &o.name,
    );
    let history = queries::events(
        &state,
        &EventQuery {
            environment: Some(o.environment.clone()),
            object: Some(id),
            limit: MAX_LIMIT,
            ..EventQuery::default()
        },
    )
    .await?;
    let events: Vec<EventRow> = history
        .items
        .iter()
        .filter(|e| e.drift.episode == s.episode)
        .rev()
        .map(|e| event_row(e, now))
        .collect();
    let episodes = queries::episodes(&state, o, MAX_LIMIT)
        .await?
        .iter()
        .map(|x| episode_row(x, &s.episode, now))
        .collect();
    // an open drift's suggested plan, shown and never applied (the API's remediation query)
    let remediation = if s.status == "open" {
        Some(queries::remediation(&state, &s.episode, None).await?)
    } else {
        None
    };
    let inline = param(&q, "view") == "inline";
    let base = view::drift_link(&s.episode);
    let fields = detail
        .fields
        .iter()
        .map(|f| FieldRow {
            path: f.path.clone(),
            git: view::value(&f.desired),
            live: view::value(&f.live),
            who: detail
                .attribution
                .owners
                .iter()
                .filter(|o| o.path == f.path)
                .map(|o| o.manager.clone())
                .collect::<Vec<_>>()
                .join(", "),
        })
        .collect();
    let reference = format!("{}:{}", s.object.environment, s.object.reference);
    html(&DriftPage {
        layout: Layout::page(
            format!("{} {}", o.kind, namespaced(o)),
            "/drifts",
            &viewer,
            &state,
        ),
        heading: format!("{} {}", o.kind, namespaced(o)),
        drift: badge("drift", &s.drift),
        direction: badge("dir", &s.direction),
        severity: badge("sev", &s.severity),
        status: s.status_label(),
        reason: detail.direction_reason.clone(),
        inline,
        side_link: base.clone(),
        inline_link: format!("{base}?view=inline"),
        fields,
        absent_note: match s.drift.parse::<DriftKind>() {
            Ok(DriftKind::Missing) => Some("The object is in Git and not in the cluster."),
            Ok(DriftKind::Orphan) => Some("The object is in the cluster and not in Git."),
            _ if detail.fields.is_empty() => Some("No field detail was kept."),
            _ => None,
        },
        owners: detail
            .attribution
            .owners
            .iter()
            .map(|o| OwnerRow {
                path: o.path.clone(),
                manager: o.manager.clone(),
                operation: if o.subresource.is_empty() {
                    o.operation.clone()
                } else {
                    format!("{} ({})", o.operation, o.subresource)
                },
                time: o.time.map(|t| When::of(t, now)),
            })
            .collect(),
        who: detail.attribution.who.clone(),
        commit: detail.attribution.commit.as_ref().map(|c| CommitView {
            id: c.id.clone(),
            short: view::short(&c.id),
            author: c.author.clone(),
            email: c.email.clone(),
            time: When::of(c.time, now),
            message: c.message.clone(),
        }),
        place: detail.provenance.as_ref().map(|p| Where {
            file: p.file.clone(),
            line: p.line,
            link: p.web_url.clone(),
            revision: p.revision.as_deref().map(view::short).unwrap_or_default(),
            rendered: p.rendered.as_ref().map(|r| {
                let mut text = format!("rendered by {} from {}", r.renderer, r.source);
                if !r.values.is_empty() {
                    text.push_str(&format!(" with {}", r.values.join(", ")));
                }
                if let Some(c) = &r.inputs_commit {
                    text.push_str(&format!("; inputs last changed in {}", view::short(c)));
                }
                text
            }),
        }),
        revision: s.revision.as_deref().map(view::short).unwrap_or_default(),
        detected: When::of(s.detected_at, now),
        updated: When::of(s.updated_at, now),
        resolved: s.resolved_at.map(|t| When::of(t, now)),
        events,
        episodes,
        explain: format!("driftguard explain {reference}"),
        object_link: view::object_link(&s.object.environment, &s.object.reference),
        risk: badge("sev", &s.risk),
        findings: s
            .findings
            .iter()
            .map(|f| FindingView {
                risk: badge("sev", &f.risk),
                rule: f.rule.clone(),
                category: f.category.replace('-', " "),
                path: f.path.clone(),
                reason: f.reason.clone(),
            })
            .collect(),
        remediation,
        ack: s.acknowledgement.as_ref().map(|a| view::ack_label(a, now)),
        ack_holds: s.acknowledgement.as_ref().is_some_and(|a| a.holds()),
        ack_action: format!("{}/acknowledge", view::drift_link(&s.episode)),
        ack_lapse: s.acknowledgement.as_ref().and_then(|a| a.lapse.clone()),
        d: s,
    })
}

/// The acknowledge form of a drift's page.
#[derive(Debug, serde::Deserialize)]
pub(crate) struct AckForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    reason: String,
    /// `3d`, `12h`, an RFC 3339 time, or empty.
    #[serde(default)]
    until: String,
    /// `1`: withdraw the acknowledgement that holds.
    #[serde(default)]
    withdraw: String,
}

/// `POST /drifts/{episode}/acknowledge`: acknowledges the drift (or withdraws its
/// acknowledgement) through the API's query, and goes back to its page.
pub(crate) async fn acknowledge(
    Visible(state): Visible,
    Extension(viewer): Extension<Viewer>,
    Path(episode): Path<String>,
    headers: HeaderMap,
    Form(form): Form<AckForm>,
) -> Result<Response, WebError> {
    check_csrf(&viewer, &headers, &form.csrf)?;
    viewer.require(TokenScope::Scan)?;
    if form.withdraw == "1" {
        queries::ack::withdraw(&state, &viewer.caller, &episode).await?;
    } else {
        let until = queries::ack::parse_until(Some(&form.until), state.clock.now())?;
        let selection = queries::ack::Selection::Episodes(vec![episode.clone()]);
        queries::ack::acknowledge(&state, &viewer.caller, &selection, &form.reason, until).await?;
    }
    Ok(Redirect::to(&view::drift_link(&episode)).into_response())
}
