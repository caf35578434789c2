//! Building the notifiers of a configuration.

use super::*;

/// Notifiers built from the configuration, and their delivery tasks.
pub struct BuiltNotifiers {
    /// Add each to every environment's scanner.
    pub notifiers: Vec<Arc<dyn Notifier>>,
    /// Delivery tasks; they end after the cancellation token given to [`build_notifiers`].
    pub workers: Vec<JoinHandle<()>>,
}

impl std::fmt::Debug for BuiltNotifiers {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BuiltNotifiers")
            .field("notifiers", &self.notifiers.len())
            .finish()
    }
}

impl BuiltNotifiers {
    /// Waits (at most `grace`) for the delivery tasks to flush after cancellation.
    pub async fn flush(self, grace: Duration) {
        let all = futures_util::future::join_all(self.workers);
        if tokio::time::timeout(grace, all).await.is_err() {
            tracing::warn!("notification queues not flushed within the shutdown grace period");
        }
    }
}

pub(super) fn env_var(
    env: &dyn Fn(&str) -> Option<String>,
    var: &str,
    field: &str,
) -> Result<String, SettingError> {
    env(var)
        .filter(|v| !v.is_empty())
        .ok_or_else(|| SettingError::MissingEnv {
            var: var.to_owned(),
            field: field.to_owned(),
        })
}

/// Builds the configured notifiers (must run inside a Tokio runtime: it spawns their queues).
/// `env` reads environment variables (pass `|k| std::env::var(k).ok()`).
pub fn build_notifiers(
    configs: &[NotifierConfig],
    metrics: Arc<Metrics>,
    public_url: Option<String>,
    cancel: CancellationToken,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<BuiltNotifiers, SettingError> {
    build_notifiers_marked(configs, metrics, public_url, cancel, env, None)
}

/// Like [`build_notifiers`], the queues recording in `marks` how far deliveries went (see
/// [`QueuedNotifier::spawn_marked`] and [`resend_undelivered`]).
pub fn build_notifiers_marked(
    configs: &[NotifierConfig],
    metrics: Arc<Metrics>,
    public_url: Option<String>,
    cancel: CancellationToken,
    env: &dyn Fn(&str) -> Option<String>,
    marks: Option<Arc<dyn DriftStore>>,
) -> Result<BuiltNotifiers, SettingError> {
    let marks = marks.map_or(Marks::None, Marks::PerNotifier);
    build_notifiers_with_marks(
        configs,
        metrics,
        public_url,
        cancel,
        env,
        marks,
        Arc::new(SystemClock),
    )
}

/// Like [`build_notifiers`], the queues keeping their delivery marks as `marks` says, the
/// notifiers that date what they send (e-mail) reading `clock` ([`build_notifiers`] and
/// [`build_notifiers_marked`] read the system clock).
pub fn build_notifiers_with_marks(
    configs: &[NotifierConfig],
    metrics: Arc<Metrics>,
    public_url: Option<String>,
    cancel: CancellationToken,
    env: &dyn Fn(&str) -> Option<String>,
    marks: Marks,
    clock: Arc<dyn Clock>,
) -> Result<BuiltNotifiers, SettingError> {
    let public_url = public_url.map(|u| u.trim_end_matches('/').to_owned());
    let mut out = BuiltNotifiers {
        notifiers: Vec::new(),
        workers: Vec::new(),
    };
    for (i, cfg) in configs.iter().enumerate() {
        let field = |f: &str| format!("server.notifiers[{i}].{f}");
        let (inner, route, queue): (Arc<dyn Notifier>, &RouteConfig, &QueueConfig) = match cfg {
            NotifierConfig::Slack {
                name: _,
                url_env,
                url,
                route,
                queue,
            } => {
                let url = match (url_env, url) {
                    (Some(var), _) => env_var(env, var, &field("urlEnv"))?,
                    (None, Some(u)) => u.clone(),
                    (None, None) => {
                        return Err(SettingError::Invalid {
                            field: field("urlEnv"),
                            message: "a Slack notifier needs urlEnv (or url)".into(),
                        })
                    }
                };
                let n = slack::SlackNotifier::new(
                    cfg.name().to_owned(),
                    parse_url(&url, &field("url"))?,
                    public_url.clone(),
                );
                (Arc::new(n), route, queue)
            }
            NotifierConfig::Webhook {
                name: _,
                url,
                secret_env,
                route,
                queue,
            } => {
                let secret = secret_env
                    .as_ref()
                    .map(|v| env_var(env, v, &field("secretEnv")))
                    .transpose()?;
                let n = webhook::WebhookNotifier::new(
                    cfg.name().to_owned(),
                    parse_url(url, &field("url"))?,
                    secret,
                    public_url.clone(),
                );
                (Arc::new(n), route, queue)
            }
            NotifierConfig::Pagerduty {
                name: _,
                routing_key_env,
                events_url,
                route,
                queue,
            } => {
                let key = env_var(env, routing_key_env, &field("routingKeyEnv"))?;
                let url = events_url
                    .clone()
                    .unwrap_or_else(|| pagerduty::DEFAULT_EVENTS_URL.into());
                let n = pagerduty::PagerDutyNotifier::new(
                    cfg.name().to_owned(),
                    parse_url(&url, &field("eventsUrl"))?,
                    key,
                    public_url.clone(),
                );
                (Arc::new(n), route, queue)
            }
            NotifierConfig::Email {
                name: _,
                host,
                port,
                tls,
                ca_file,
                from,
                to,
                username,
                password_env,
                route,
                queue,
            } => {
                let credentials = match (username, password_env) {
                    (Some(u), Some(p)) => {
                        Some((u.clone(), env_var(env, p, &field("passwordEnv"))?))
                    }
                    (None, None) => None,
                    _ => {
                        return Err(SettingError::Invalid {
                            field: field("username"),
                            message: "username and passwordEnv go together".into(),
                        })
                    }
                };
                let n = smtp::SmtpNotifier::new(
                    cfg.name().to_owned(),
                    host.clone(),
                    port.unwrap_or(tls.default_port()),
                    from.clone(),
                    to.clone(),
                    credentials,
                    public_url.clone(),
                )
                .map_err(|e| SettingError::Invalid {
                    field: field("to"),
                    message: driftguard_core::error::chain(&e),
                })?
                .with_tls(*tls, ca_file.as_deref())
                .map_err(|e| SettingError::Invalid {
                    field: field("caFile"),
                    message: driftguard_core::error::chain(&e),
                })?
                .with_clock(clock.clone());
                (Arc::new(n), route, queue)
            }
        };
        // names label metrics and delivery marks: each must be its own
        if out.notifiers.iter().any(|n| n.name() == inner.name()) {
            return Err(SettingError::Invalid {
                field: field("name"),
                message: format!(
                    "the name `{}` is used by another notifier: give each its own `name`",
                    inner.name()
                ),
            });
        }
        let (queued, handle) = QueuedNotifier::spawn_with_marks(
            inner,
            queue.clone(),
            metrics.clone(),
            cancel.clone(),
            marks.clone(),
        );
        out.workers.push(handle);
        out.notifiers.push(Arc::new(RoutedNotifier {
            inner: queued,
            environments: route.environments.clone(),
            min_severity: route.min_severity.unwrap_or(Severity::Low),
        }));
    }
    Ok(out)
}

pub(super) fn parse_url(u: &str, field: &str) -> Result<reqwest::Url, SettingError> {
    let url = reqwest::Url::parse(u).map_err(|e| SettingError::Invalid {
        field: field.to_owned(),
        message: format!("not a URL: {e}"),
    })?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(SettingError::Invalid {
            field: field.to_owned(),
            message: "expected an http or https URL".into(),
        });
    }
    Ok(url)
}
