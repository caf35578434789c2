//! The MCP server (Model Context Protocol, with the official Rust SDK `rmcp`): AI assistants
//! list environments and drifts, explain a drift (diff, who, commit, findings), read an
//! object's history, scan now and get a remediation plan, never applied.
//!
//! Every tool is a thin view over the same query the REST API answers ([`crate::queries`]),
//! with the API's DTOs as structured results (their JSON Schemas are the tools' output
//! schemas), so nothing here decides anything and no Secret value can appear: the DTOs carry
//! only what the core stores, where Secret values are redacted. Resources: the environments,
//! a drift report per environment (its open drifts with diffs and findings) and each drift
//! episode. One prompt: `triage_open_drifts`.
//!
//! Two transports: [`serve_stdio`] (what `driftguard mcp --config FILE` runs) and
//! [`http_service`], streamable HTTP mounted at `/mcp` by the composed router (`router`)
//! behind the API's bearer-token authentication ([`crate::auth`]).
//!
//! Errors: arguments that do not fit a tool's schema (an unknown or missing field, a wrong
//! type) or values that name nothing (a severity `extreme`, a limit of 0) are JSON-RPC
//! `invalid params` errors; a drift, environment or
//! object that does not exist, a failed scan or an unavailable store are tool results with
//! `isError: true` and the API's error code and message.

use std::sync::Arc;

use axum::http::StatusCode;
use driftguard_core::remediate::advice::RemediationAction;
use rmcp::handler::server::common::{schema_for_empty_input, schema_for_input, FromContextPart};
use rmcp::handler::server::router::prompt::PromptRouter;
use rmcp::handler::server::router::tool::ToolRouter;
use rmcp::handler::server::tool::{schema_for_output, ToolCallContext};
use rmcp::handler::server::wrapper::Parameters;
use rmcp::model::*;
use rmcp::service::RequestContext;
use rmcp::transport::streamable_http_server::session::local::LocalSessionManager;
use rmcp::transport::streamable_http_server::{StreamableHttpServerConfig, StreamableHttpService};
use rmcp::{
    prompt, prompt_handler, prompt_router, tool, tool_handler, tool_router, ErrorData, RoleServer,
    ServerHandler, ServiceExt,
};
use schemars::JsonSchema;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::auth::Caller;
use crate::config::TokenScope;
use crate::dto::*;
use crate::error::AppError;
use crate::queries::{self, DriftFilter, MAX_LIMIT};
use crate::state::AppState;

/// URI of the environments resource.
pub const ENVIRONMENTS_URI: &str = "driftguard://environments";

/// The MCP server over one [`AppState`].
#[derive(Clone)]
pub struct DriftGuardMcp {
    state: AppState,
    tool_router: ToolRouter<DriftGuardMcp>,
    prompt_router: PromptRouter<DriftGuardMcp>,
}

impl std::fmt::Debug for DriftGuardMcp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DriftGuardMcp")
            .field("state", &self.state)
            .finish_non_exhaustive()
    }
}

/// Arguments of `list_drifts`: the store's filters, as the API's `GET /api/v1/drifts` takes
/// them.
#[derive(Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ListDriftsArgs {
    /// Environment (absent: all).
    #[serde(default)]
    pub environment: Option<String>,
    /// API group, exact (`apps`; `""` is the core group).
    #[serde(default)]
    pub group: Option<String>,
    /// Kubernetes kind, exact (`Deployment`).
    #[serde(default)]
    pub kind: Option<String>,
    /// Namespace, exact.
    #[serde(default)]
    pub namespace: Option<String>,
    /// Name glob (`web-*`).
    #[serde(default)]
    pub name: Option<String>,
    /// Kind of drift: `modified`, `missing` or `orphan`.
    #[serde(default)]
    pub drift: Option<String>,
    /// Direction: `forward` (the cluster changed), `reverse` (Git not applied), `conflict`,
    /// `unknown`.
    #[serde(default)]
    pub direction: Option<String>,
    /// Minimum severity: `low`, `medium`, `high`, `critical`.
    #[serde(default)]
    pub severity: Option<String>,
    /// `open` (default), `resolved` or `all`.
    #[serde(default)]
    pub status: Option<String>,
    /// `severity` (default: highest first), `detected`, `updated` or `object`.
    #[serde(default)]
    pub sort: Option<String>,
    /// Page size, 1..1000 (default 100).
    #[serde(default)]
    pub limit: Option<u32>,
    /// Items to skip (default 0).
    #[serde(default)]
    pub offset: Option<u32>,
    /// `true`: only drifts a person acknowledged (and whose acknowledgement holds);
    /// `false`: only the others (absent: both, each with its acknowledgement).
    #[serde(default)]
    pub acknowledged: Option<bool>,
}

/// Arguments of `explain_drift`: an episode id, or an environment and an object reference.
#[derive(Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ExplainArgs {
    /// Episode id (from `list_drifts`).
    #[serde(default)]
    pub episode: Option<String>,
    /// Environment (with `object`).
    #[serde(default)]
    pub environment: Option<String>,
    /// Object reference `Kind[.group]/[namespace/]name`, e.g. `Deployment/shop/web` (with
    /// `environment`): its open drift, else its latest one.
    #[serde(default)]
    pub object: Option<String>,
}

/// Arguments of `object_history`.
#[derive(Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct HistoryArgs {
    /// Environment.
    pub environment: String,
    /// Object reference `Kind[.group]/[namespace/]name`, e.g. `Deployment.apps/shop/web`.
    pub object: String,
    /// Most events, 1..1000 (default 100).
    #[serde(default)]
    pub limit: Option<u32>,
}

/// Arguments of `scan_now`.
#[derive(Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ScanArgs {
    /// Environment to scan.
    pub environment: String,
}

/// Arguments of `suggest_remediation`.
#[derive(Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RemediationArgs {
    /// Episode id (from `list_drifts`).
    pub episode: String,
    /// `revert` (the cluster back to Git) or `adopt` (Git takes the cluster's state); absent:
    /// the action DriftGuard suggests.
    #[serde(default)]
    pub action: Option<String>,
}

/// Arguments of the `triage_open_drifts` prompt.
#[derive(Debug, Default, Serialize, Deserialize, JsonSchema)]
pub struct TriageArgs {
    /// The environment whose open drifts to triage.
    pub environment: String,
}

/// The drift report of an environment (the `driftguard://environments/{env}/report`
/// resource).
#[derive(Debug, Serialize)]
pub struct DriftReport {
    /// The environment with its status and score.
    pub environment: EnvironmentDto,
    /// How many drifts are open.
    pub open: usize,
    /// The open drifts (highest severity first, at most 1000) with diffs, who and findings.
    pub drifts: Vec<DriftDetail>,
}

/// A tool's arguments. Unlike the SDK's `Parameters`, arguments that do not fit the tool's
/// input schema (an unknown or missing field, a wrong type) are a JSON-RPC `invalid params`
/// error, as every other bad argument is, rather than a tool result.
#[derive(Debug)]
pub struct Args<T>(pub T);

impl<S, T: DeserializeOwned> FromContextPart<ToolCallContext<'_, S>> for Args<T> {
    fn from_context_part(context: &mut ToolCallContext<'_, S>) -> Result<Self, ErrorData> {
        let arguments = context.arguments.take().unwrap_or_default();
        serde_json::from_value(serde_json::Value::Object(arguments))
            .map(Args)
            .map_err(|e| ErrorData::invalid_params(format!("invalid arguments: {e}"), None))
    }
}

/// The input schema of a tool taking `T` (the JSON Schema of `T`).
fn input<T: JsonSchema + 'static>() -> Arc<JsonObject> {
    schema_for_input::<T>().unwrap_or_else(|e| {
        tracing::error!(error = %e, "an MCP tool's input schema is not an object");
        schema_for_empty_input()
    })
}

/// An API error as a tool's answer: a bad request is a protocol error (invalid params);
/// anything else is a tool result marked as an error, with the API's code and message.
fn tool_error(e: AppError) -> Result<CallToolResult, ErrorData> {
    if e.status == StatusCode::BAD_REQUEST {
        return Err(ErrorData::invalid_params(e.message, None));
    }
    Ok(CallToolResult::structured_error(serde_json::json!({
        "error": {"code": e.code, "message": e.message}
    })))
}

/// Who calls a tool: over HTTP, the caller the API's authentication found for the request
/// (the same [`Caller::may`] check as REST then decides); over stdio, the local user, who
/// started the server and may do anything it does.
fn caller(ctx: &RequestContext<RoleServer>) -> Caller {
    match ctx.extensions.get::<axum::http::request::Parts>() {
        Some(parts) => parts
            .extensions
            .get::<Caller>()
            .cloned()
            .unwrap_or(Caller::with_scopes("unauthenticated", Vec::new())),
        None => Caller::anonymous(),
    }
}

fn structured<T: Serialize>(r: Result<T, AppError>) -> Result<CallToolResult, ErrorData> {
    match r {
        Ok(v) => serde_json::to_value(v)
            .map(CallToolResult::structured)
            .map_err(|e| ErrorData::internal_error(e.to_string(), None)),
        Err(e) => tool_error(e),
    }
}

fn uri_report(env: &str) -> String {
    format!("driftguard://environments/{env}/report")
}

#[tool_router]
impl DriftGuardMcp {
    /// The MCP server over `state`.
    pub fn new(state: AppState) -> Self {
        DriftGuardMcp {
            state,
            tool_router: Self::tool_router(),
            prompt_router: Self::prompt_router(),
        }
    }

    /// The environments DriftGuard watches, with status, drift score, open drifts and sources.
    #[tool(
        annotations(title = "List environments", read_only_hint = true),
        output_schema = schema_for_output::<EnvironmentList>()
    )]
    async fn list_environments(
        &self,
        ctx: RequestContext<RoleServer>,
    ) -> Result<CallToolResult, ErrorData> {
        structured(queries::environments(&self.seen(&ctx)).await)
    }

    /// Drift episodes with the store's filters (environment, group, kind, namespace, name,
    /// drift kind, direction, minimum severity, status, sort, paging). Each has its risk and
    /// risk findings (security, availability, supply-chain, likely-noise, cosmetic).
    #[tool(
        annotations(title = "List drifts", read_only_hint = true),
        input_schema = input::<ListDriftsArgs>(),
        output_schema = schema_for_output::<DriftPage>()
    )]
    async fn list_drifts(
        &self,
        Args(a): Args<ListDriftsArgs>,
        ctx: RequestContext<RoleServer>,
    ) -> Result<CallToolResult, ErrorData> {
        let filter = DriftFilter {
            environment: a.environment,
            group: a.group,
            kind: a.kind,
            namespace: a.namespace,
            name: a.name,
            drift: a.drift,
            direction: a.direction,
            severity: a.severity,
            status: a.status,
            // the age filter is the API's and the dashboard's; the tool does not offer it
            detected_before: None,
            sort: a.sort,
            limit: a.limit.map(|n| n.to_string()),
            offset: a.offset.map(|n| n.to_string()),
            acknowledged: a.acknowledged.map(|b| b.to_string()),
        };
        let query = match filter.query() {
            Ok(q) => q,
            Err(e) => return tool_error(e),
        };
        structured(queries::drifts(&self.seen(&ctx), &query, a.acknowledged).await)
    }

    /// One drift explained: the field diff (Git and live values; Secret values redacted), who
    /// changed each field, the Git commit, where it is defined, and its risk findings. By
    /// episode id, or by environment and object reference.
    #[tool(
        annotations(title = "Explain a drift", read_only_hint = true),
        input_schema = input::<ExplainArgs>(),
        output_schema = schema_for_output::<DriftDetail>()
    )]
    async fn explain_drift(
        &self,
        Args(a): Args<ExplainArgs>,
        ctx: RequestContext<RoleServer>,
    ) -> Result<CallToolResult, ErrorData> {
        let state = self.seen(&ctx);
        match (a.episode, a.environment, a.object) {
            (Some(ep), None, None) => structured(queries::drift(&state, &ep).await),
            (None, Some(env), Some(object)) => {
                structured(queries::object_drift(&state, &env, &object).await)
            }
            _ => Err(ErrorData::invalid_params(
                "give either `episode`, or `environment` and `object`",
                None,
            )),
        }
    }

    /// The history of one object: its current record and its drift events (detected, changed,
    /// resolved and how), oldest first.
    #[tool(
        annotations(title = "Object history", read_only_hint = true),
        input_schema = input::<HistoryArgs>(),
        output_schema = schema_for_output::<ObjectHistory>()
    )]
    async fn object_history(
        &self,
        Args(a): Args<HistoryArgs>,
        ctx: RequestContext<RoleServer>,
    ) -> Result<CallToolResult, ErrorData> {
        let limit = a.limit.unwrap_or(100) as usize;
        if limit == 0 || limit > MAX_LIMIT {
            return Err(ErrorData::invalid_params(
                format!("limit: 1..{MAX_LIMIT}"),
                None,
            ));
        }
        structured(
            queries::object_history(&self.seen(&ctx), &a.environment, &a.object, limit).await,
        )
    }

    /// Scans an environment now (Git and the cluster) and answers the scan summary: counts,
    /// drift score, problems met. Records the result in DriftGuard's history; changes nothing
    /// in Git or the cluster.
    #[tool(
        annotations(
            title = "Scan now",
            read_only_hint = false,
            destructive_hint = false,
            idempotent_hint = true
        ),
        input_schema = input::<ScanArgs>(),
        output_schema = schema_for_output::<ScanDto>()
    )]
    async fn scan_now(
        &self,
        Args(a): Args<ScanArgs>,
        ctx: RequestContext<RoleServer>,
    ) -> Result<CallToolResult, ErrorData> {
        let who = caller(&ctx);
        if let Err(e) = who.may(TokenScope::Scan) {
            return tool_error(e);
        }
        structured(queries::scan_now(&self.seen(&ctx), &who, &a.environment).await)
    }

    /// How to end a drift: the revert plan (the cluster back to Git) or the adopt plan (Git
    /// takes the cluster's state) with steps, kubectl commands and field changes, and which one
    /// DriftGuard suggests and why. Never applied by this tool or by DriftGuard.
    #[tool(
        annotations(title = "Suggest a remediation", read_only_hint = true),
        input_schema = input::<RemediationArgs>(),
        output_schema = schema_for_output::<RemediationDto>()
    )]
    async fn suggest_remediation(
        &self,
        Args(a): Args<RemediationArgs>,
        ctx: RequestContext<RoleServer>,
    ) -> Result<CallToolResult, ErrorData> {
        let action = match a.action.as_deref().filter(|s| !s.is_empty()) {
            None => None,
            Some(s) => Some(
                s.parse::<RemediationAction>()
                    .map_err(|e| ErrorData::invalid_params(format!("action: {e}"), None))?,
            ),
        };
        structured(queries::remediation(&self.seen(&ctx), &a.episode, action).await)
    }
}

// the macro adds an undocumented attribute function per prompt
#[allow(missing_docs)]
#[prompt_router]
impl DriftGuardMcp {
    /// Triage the open drifts of an environment: judge each, decide revert or adopt, and say
    /// what to do first.
    #[prompt(name = "triage_open_drifts")]
    async fn triage_open_drifts(
        &self,
        Parameters(a): Parameters<TriageArgs>,
        ctx: RequestContext<RoleServer>,
    ) -> Result<GetPromptResult, ErrorData> {
        let state = self.seen(&ctx);
        let env = queries::environment(&state, &a.environment)
            .map_err(|e| ErrorData::invalid_params(e.message, None))?;
        let dto = queries::environment_dto(&state, &env)
            .await
            .map_err(|e| ErrorData::internal_error(e.message, None))?;
        let text = format!(
            "Triage the open configuration drifts of the DriftGuard environment `{name}` \
             (status {status}, drift score {score}, {open} open drifts).\n\n\
             1. Call `list_drifts` with environment `{name}` (status open, sorted by severity).\n\
             2. For each drift, call `explain_drift` with its episode: read the field diff, who \
             changed it (field managers for forward drift, the commit author for reverse drift) \
             and DriftGuard's risk findings (security, availability, supply-chain, likely-noise, \
             cosmetic).\n\
             3. Classify each drift as a security loosening, an availability risk, a forgotten \
             hotfix, a Git change never applied, or harmless noise, and say how sure you are.\n\
             4. For each, call `suggest_remediation` and say whether to revert (the cluster back \
             to Git) or adopt (write the change into Git), and why.\n\
             5. Answer with a table (object, drift, risk, your verdict, action) ordered by \
             urgency, then the first three things to do.\n\n\
             Do not apply anything: the plans are for a person to review. The drift report is \
             also available as the resource {uri}.",
            name = dto.name,
            status = dto.status,
            score = dto
                .score
                .map_or_else(|| "unknown".to_owned(), |s| s.to_string()),
            open = dto.open_drifts,
            uri = uri_report(&dto.name),
        );
        Ok(
            GetPromptResult::new(vec![PromptMessage::new_text(Role::User, text)]).with_description(
                format!("Triage the open drifts of environment {}", dto.name),
            ),
        )
    }
}

impl DriftGuardMcp {
    /// The state as the caller of `ctx` sees it (roles per environment: the one check,
    /// [`Caller::may_in`]).
    fn seen(&self, ctx: &RequestContext<RoleServer>) -> AppState {
        self.state.for_caller(&caller(ctx))
    }

    async fn report(state: &AppState, env: &str) -> Result<DriftReport, AppError> {
        let e = queries::environment(state, env)?;
        let environment = queries::environment_dto(state, &e).await?;
        let (drifts, open) = queries::open_drift_details(state, env, MAX_LIMIT).await?;
        Ok(DriftReport {
            environment,
            open,
            drifts,
        })
    }
}

fn json_contents<T: Serialize>(uri: &str, v: &T) -> Result<ReadResourceResponse, ErrorData> {
    let text = serde_json::to_string_pretty(v)
        .map_err(|e| ErrorData::internal_error(e.to_string(), None))?;
    Ok(ReadResourceResult::new(vec![
        ResourceContents::text(text, uri.to_owned()).with_mime_type("application/json")
    ])
    .into())
}

fn resource_error(uri: &str, e: AppError) -> ErrorData {
    if e.status == StatusCode::NOT_FOUND || e.status == StatusCode::BAD_REQUEST {
        ErrorData::resource_not_found(e.message, Some(serde_json::json!({ "uri": uri })))
    } else {
        ErrorData::internal_error(format!("{}: {}", e.code, e.message), None)
    }
}

#[tool_handler(router = self.tool_router)]
#[prompt_handler(router = self.prompt_router)]
impl ServerHandler for DriftGuardMcp {
    fn get_info(&self) -> ServerConfig {
        ServerConfig::new(
            ServerCapabilities::builder()
                .enable_tools()
                .enable_resources()
                .enable_prompts()
                .build(),
        )
        .with_server_info(Implementation::new("driftguard", env!("CARGO_PKG_VERSION")))
        .with_instructions(
            "DriftGuard finds configuration drift between Kubernetes manifests in Git and live \
             clusters, and judges each drift with risk findings. Start with list_environments \
             and list_drifts; explain_drift gives the diff, who and the findings; \
             suggest_remediation gives a revert or adopt plan (never applied). Secret values \
             are never shown.",
        )
    }

    async fn list_resources(
        &self,
        _request: Option<PaginatedRequestParams>,
        ctx: RequestContext<RoleServer>,
    ) -> Result<ListResourcesResult, ErrorData> {
        let mut resources = vec![Resource::new(ENVIRONMENTS_URI, "environments")
            .with_description("The environments with status, drift score and sources")
            .with_mime_type("application/json")];
        for e in self.seen(&ctx).environments().iter() {
            resources.push(
                Resource::new(uri_report(&e.name), format!("{} drift report", e.name))
                    .with_description(format!(
                        "The open drifts of environment {} with diffs, who and findings",
                        e.name
                    ))
                    .with_mime_type("application/json"),
            );
        }
        Ok(ListResourcesResult {
            resources,
            ..Default::default()
        })
    }

    async fn list_resource_templates(
        &self,
        _request: Option<PaginatedRequestParams>,
        _: RequestContext<RoleServer>,
    ) -> Result<ListResourceTemplatesResult, ErrorData> {
        Ok(ListResourceTemplatesResult {
            resource_templates: vec![
                ResourceTemplate::new("driftguard://environments/{environment}/report", "report")
                    .with_description("The drift report of an environment")
                    .with_mime_type("application/json"),
                ResourceTemplate::new("driftguard://drifts/{episode}", "drift")
                    .with_description("One drift episode with its diff, who and findings")
                    .with_mime_type("application/json"),
            ],
            ..Default::default()
        })
    }

    async fn read_resource(
        &self,
        request: ReadResourceRequestParams,
        ctx: RequestContext<RoleServer>,
    ) -> Result<ReadResourceResponse, ErrorData> {
        let uri = request.uri.as_str();
        let state = self.seen(&ctx);
        if uri == ENVIRONMENTS_URI {
            let list = queries::environments(&state)
                .await
                .map_err(|e| resource_error(uri, e))?;
            return json_contents(uri, &list);
        }
        if let Some(env) = uri
            .strip_prefix("driftguard://environments/")
            .and_then(|r| r.strip_suffix("/report"))
        {
            let report = Self::report(&state, env)
                .await
                .map_err(|e| resource_error(uri, e))?;
            return json_contents(uri, &report);
        }
        if let Some(ep) = uri.strip_prefix("driftguard://drifts/") {
            let d = queries::drift(&state, ep)
                .await
                .map_err(|e| resource_error(uri, e))?;
            return json_contents(uri, &d);
        }
        Err(ErrorData::resource_not_found(
            format!("no resource `{uri}`"),
            Some(serde_json::json!({ "uri": uri })),
        ))
    }
}

/// Why the stdio MCP server stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum McpError {
    /// The session could not start (the client did not initialize).
    #[error("the MCP session did not start")]
    Start(#[source] Box<dyn std::error::Error + Send + Sync>),
    /// The session ended abnormally.
    #[error("the MCP session failed")]
    Session(#[source] tokio::task::JoinError),
}

/// Serves MCP on stdin/stdout until the client closes the session.
pub async fn serve_stdio(state: AppState) -> Result<(), McpError> {
    let running = DriftGuardMcp::new(state)
        .serve(rmcp::transport::stdio())
        .await
        .map_err(|e| McpError::Start(Box::new(e)))?;
    running.waiting().await.map_err(McpError::Session)?;
    Ok(())
}

/// The streamable HTTP MCP service for `state` (mounted at `/mcp`; authentication is the
/// router's). Sessions end when the state's MCP cancellation token is cancelled (at
/// shutdown). With API tokens the `Host` header is not restricted (the token is the
/// protection); without, only loopback hosts are served, against DNS rebinding.
pub fn http_service(state: AppState) -> StreamableHttpService<DriftGuardMcp, LocalSessionManager> {
    let mut config =
        StreamableHttpServerConfig::default().with_cancellation_token(state.mcp_cancel.clone());
    if state.auth_required() {
        config = config.disable_allowed_hosts();
    }
    StreamableHttpService::new(
        move || Ok(DriftGuardMcp::new(state.clone())),
        Arc::new(LocalSessionManager::default()),
        config,
    )
}
