//! Pull and merge requests through a forge's REST API, opened after an adoption's branch is
//! pushed: GitHub (`POST /repos/{owner}/{repo}/pulls`), GitLab
//! (`POST /projects/{id}/merge_requests`) and Gitea (`POST /repos/{owner}/{repo}/pulls`).
//! The same forges carry `driftguard preview --comment`: one comment per pull request, found
//! again by a hidden marker and edited in place on each new push ([`PullRequestConfig::comment`]).
//! The token is read from an environment variable when the request is made; it goes into the
//! request's authentication header only, never into an error, a log line or an event.

use std::time::Duration;

use serde_json::{json, Value};

pub use crate::config::{ForgeKind, PullRequestConfig};

/// Why a pull request was not opened.
#[derive(Debug, thiserror::Error)]
pub enum ForgeError {
    /// The token's environment variable is not set.
    #[error("the forge token variable {0} is not set")]
    NoToken(String),
    /// Gitea has no default API URL.
    #[error("apiUrl is required for {0}")]
    NoApiUrl(&'static str),
    /// The request could not be sent or its answer read.
    #[error("cannot reach the forge API at {url}: {message}")]
    Unreachable {
        /// The endpoint (no token: tokens travel in headers only).
        url: String,
        /// Why.
        message: String,
    },
    /// The forge answered with an error.
    #[error("the forge refused the request ({status}): {message}")]
    Rejected {
        /// HTTP status.
        status: u16,
        /// The forge's message (at most 300 characters).
        message: String,
    },
}

/// The pull request to open.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PullRequest {
    /// The pushed branch.
    pub head: String,
    /// The branch to merge into.
    pub base: String,
    /// Its title.
    pub title: String,
    /// Its description.
    pub body: String,
}

/// What the forge opened.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Opened {
    /// Its web address (empty when the forge did not say).
    pub url: String,
    /// Its number (`iid` on GitLab; 0 when the forge did not say).
    pub number: u64,
}

impl PullRequestConfig {
    /// The API base URL, without a trailing `/`.
    pub fn api_base(&self) -> Result<String, ForgeError> {
        let base = match (&self.api_url, self.forge) {
            (Some(u), _) => u.clone(),
            (None, ForgeKind::Github) => "https://api.github.com".into(),
            (None, ForgeKind::Gitlab) => "https://gitlab.com/api/v4".into(),
            (None, ForgeKind::Gitea) => return Err(ForgeError::NoApiUrl("gitea")),
        };
        Ok(base.trim_end_matches('/').to_owned())
    }

    /// The endpoint a request goes to.
    pub fn endpoint(&self) -> Result<String, ForgeError> {
        let base = self.api_base()?;
        let repo = self.repository.trim_matches('/');
        Ok(match self.forge {
            ForgeKind::Github | ForgeKind::Gitea => format!("{base}/repos/{repo}/pulls"),
            ForgeKind::Gitlab => format!("{base}/projects/{}/merge_requests", encode(repo)),
        })
    }

    /// Opens `pr` with the token read from [`PullRequestConfig::token_env`].
    pub async fn open(&self, pr: &PullRequest) -> Result<Opened, ForgeError> {
        let token = std::env::var(&self.token_env)
            .ok()
            .filter(|t| !t.trim().is_empty())
            .ok_or_else(|| ForgeError::NoToken(self.token_env.clone()))?;
        self.open_with(pr, token.trim()).await
    }

    /// Opens `pr` with `token`.
    pub async fn open_with(&self, pr: &PullRequest, token: &str) -> Result<Opened, ForgeError> {
        let url = self.endpoint()?;
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(30))
            .connect_timeout(Duration::from_secs(10))
            .user_agent(concat!("driftguard/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| unreachable(&url, e))?;
        let req = client.post(&url);
        let (req, body) = match self.forge {
            ForgeKind::Github => (
                req.bearer_auth(token)
                    .header(reqwest::header::ACCEPT, "application/vnd.github+json")
                    .header("X-GitHub-Api-Version", "2022-11-28"),
                json!({"title": pr.title, "head": pr.head, "base": pr.base, "body": pr.body}),
            ),
            ForgeKind::Gitea => (
                req.header(reqwest::header::AUTHORIZATION, format!("token {token}")),
                json!({"title": pr.title, "head": pr.head, "base": pr.base, "body": pr.body}),
            ),
            ForgeKind::Gitlab => (
                req.header("PRIVATE-TOKEN", token),
                json!({"title": pr.title, "source_branch": pr.head,
                       "target_branch": pr.base, "description": pr.body}),
            ),
        };
        let resp = req
            .json(&body)
            .send()
            .await
            .map_err(|e| unreachable(&url, e))?;
        let status = resp.status();
        let answer: Value = resp.json().await.unwrap_or(Value::Null);
        if !status.is_success() {
            let message = answer
                .get("message")
                .map(|m| match m {
                    Value::String(s) => s.clone(),
                    other => other.to_string(),
                })
                .unwrap_or_default();
            return Err(ForgeError::Rejected {
                status: status.as_u16(),
                message: message.chars().take(300).collect(),
            });
        }
        let url_key = match self.forge {
            ForgeKind::Gitlab => "web_url",
            _ => "html_url",
        };
        let number_key = match self.forge {
            ForgeKind::Gitlab => "iid",
            _ => "number",
        };
        Ok(Opened {
            url: answer[url_key].as_str().unwrap_or_default().to_owned(),
            number: answer[number_key].as_u64().unwrap_or_default(),
        })
    }
}

/// What posting a comment did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Commented {
    /// A new comment (no comment with the marker was there).
    Created {
        /// Its id.
        id: u64,
        /// Its web address (empty when the forge did not say).
        url: String,
    },
    /// The comment with the marker, edited.
    Updated {
        /// Its id.
        id: u64,
        /// Its web address (empty when the forge did not say).
        url: String,
    },
}

/// Most pages of comments read when looking for the marker.
const MAX_COMMENT_PAGES: u32 = 20;

impl PullRequestConfig {
    /// Posts `body` on pull (merge) request `number`, or edits the comment that holds `marker`
    /// when there is one (one comment per pull request, however many pushes), with the token
    /// read from [`PullRequestConfig::token_env`].
    pub async fn comment(
        &self,
        number: u64,
        marker: &str,
        body: &str,
    ) -> Result<Commented, ForgeError> {
        let token = std::env::var(&self.token_env)
            .ok()
            .filter(|t| !t.trim().is_empty())
            .ok_or_else(|| ForgeError::NoToken(self.token_env.clone()))?;
        self.comment_with(number, marker, body, token.trim()).await
    }

    /// [`PullRequestConfig::comment`] with `token`.
    pub async fn comment_with(
        &self,
        number: u64,
        marker: &str,
        body: &str,
        token: &str,
    ) -> Result<Commented, ForgeError> {
        let base = self.api_base()?;
        let repo = self.repository.trim_matches('/');
        let (list, edit) = match self.forge {
            ForgeKind::Github | ForgeKind::Gitea => (
                format!("{base}/repos/{repo}/issues/{number}/comments"),
                format!("{base}/repos/{repo}/issues/comments/"),
            ),
            ForgeKind::Gitlab => {
                let l = format!(
                    "{base}/projects/{}/merge_requests/{number}/notes",
                    encode(repo)
                );
                (l.clone(), format!("{l}/"))
            }
        };
        let client = client(&list)?;
        let (per_page, size_key) = match self.forge {
            ForgeKind::Gitea => (50, "limit"),
            _ => (100, "per_page"),
        };
        let mut found = None;
        for page in 1..=MAX_COMMENT_PAGES {
            let url = format!("{list}?{size_key}={per_page}&page={page}");
            let answer = self.send(client.get(&url), token, None, &list).await?;
            let items = answer.as_array().cloned().unwrap_or_default();
            found = items.iter().find_map(|c| {
                let text = c["body"].as_str()?;
                text.contains(marker).then(|| c["id"].as_u64()).flatten()
            });
            if found.is_some() || items.len() < per_page {
                break;
            }
        }
        let body = json!({ "body": body });
        let url_of = |answer: &Value| answer["html_url"].as_str().unwrap_or_default().to_owned();
        match found {
            Some(id) => {
                let url = format!("{edit}{id}");
                let req = match self.forge {
                    ForgeKind::Gitlab => client.put(&url),
                    _ => client.patch(&url),
                };
                let answer = self.send(req, token, Some(&body), &url).await?;
                Ok(Commented::Updated {
                    id,
                    url: url_of(&answer),
                })
            }
            None => {
                let answer = self
                    .send(client.post(&list), token, Some(&body), &list)
                    .await?;
                Ok(Commented::Created {
                    id: answer["id"].as_u64().unwrap_or_default(),
                    url: url_of(&answer),
                })
            }
        }
    }

    /// Sends one request with the forge's authentication, and reads its JSON answer.
    async fn send(
        &self,
        req: reqwest::RequestBuilder,
        token: &str,
        body: Option<&Value>,
        url: &str,
    ) -> Result<Value, ForgeError> {
        let req = match self.forge {
            ForgeKind::Github => req
                .bearer_auth(token)
                .header(reqwest::header::ACCEPT, "application/vnd.github+json")
                .header("X-GitHub-Api-Version", "2022-11-28"),
            ForgeKind::Gitea => {
                req.header(reqwest::header::AUTHORIZATION, format!("token {token}"))
            }
            ForgeKind::Gitlab => req.header("PRIVATE-TOKEN", token),
        };
        let req = match body {
            Some(b) => req.json(b),
            None => req,
        };
        let resp = req.send().await.map_err(|e| unreachable(url, e))?;
        let status = resp.status();
        let answer: Value = resp.json().await.unwrap_or(Value::Null);
        if !status.is_success() {
            return Err(rejected(status.as_u16(), &answer));
        }
        Ok(answer)
    }
}

fn client(url: &str) -> Result<reqwest::Client, ForgeError> {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .connect_timeout(Duration::from_secs(10))
        .user_agent(concat!("driftguard/", env!("CARGO_PKG_VERSION")))
        .build()
        .map_err(|e| unreachable(url, e))
}

fn rejected(status: u16, answer: &Value) -> ForgeError {
    let message = answer
        .get("message")
        .map(|m| match m {
            Value::String(s) => s.clone(),
            other => other.to_string(),
        })
        .unwrap_or_default();
    ForgeError::Rejected {
        status,
        message: message.chars().take(300).collect(),
    }
}

fn unreachable(url: &str, e: reqwest::Error) -> ForgeError {
    ForgeError::Unreachable {
        url: url.to_owned(),
        message: driftguard_core::error::chain(&e.without_url()),
    }
}

/// Percent-encodes a GitLab project path (`group/name` → `group%2Fname`).
fn encode(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                out.push(b as char)
            }
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}
