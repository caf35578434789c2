//! Reading a Git forge's push webhook (GitHub, GitLab, Gitea): which event it is and which
//! repository it names. The signature is checked before (see the handler in [`crate::api`]).

use serde_json::Value;

/// What a webhook body says.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Push {
    /// The event as sent (`push`, `Push Hook`, `ping`, ...).
    pub event: String,
    /// Whether it is a push (anything else triggers nothing).
    pub is_push: bool,
    /// The URLs the payload gives for the pushed repository (empty for other events).
    pub repositories: Vec<String>,
}

/// Why a body is not a webhook payload DriftGuard can use.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum PushError {
    /// Not JSON.
    #[error("body is not JSON: {0}")]
    NotJson(String),
    /// JSON, but not an object.
    #[error("body is not a webhook payload (expected a JSON object)")]
    NotAnObject,
    /// A push that names no repository.
    #[error("push payload names no repository (repository.clone_url, project.git_http_url, ...)")]
    NoRepository,
}

/// The URL fields a payload may give: GitHub and Gitea under `repository`, GitLab under
/// `project` (and `repository`).
const URL_FIELDS: &[(&str, &[&str])] = &[
    (
        "repository",
        &[
            "clone_url",
            "html_url",
            "ssh_url",
            "git_url",
            "url",
            "git_http_url",
            "git_ssh_url",
            "homepage",
        ],
    ),
    (
        "project",
        &[
            "git_http_url",
            "git_ssh_url",
            "web_url",
            "http_url",
            "ssh_url",
        ],
    ),
];

/// Reads a webhook body sent with `event` (the `X-GitHub-Event` / `X-Gitlab-Event` header;
/// absent means a push).
pub fn read_push(event: Option<&str>, body: &[u8]) -> Result<Push, PushError> {
    let event = event.unwrap_or("push").to_owned();
    let payload: Value =
        serde_json::from_slice(body).map_err(|e| PushError::NotJson(e.to_string()))?;
    if !payload.is_object() {
        return Err(PushError::NotAnObject);
    }
    let is_push = matches!(event.as_str(), "push" | "Push Hook")
        || payload.get("object_kind").and_then(Value::as_str) == Some("push");
    if !is_push {
        return Ok(Push {
            event,
            is_push,
            repositories: Vec::new(),
        });
    }
    let repositories: Vec<String> = URL_FIELDS
        .iter()
        .filter_map(|(obj, keys)| payload.get(*obj).map(|o| (o, keys)))
        .flat_map(|(o, keys)| keys.iter().filter_map(|k| o.get(*k)?.as_str()))
        .map(str::to_owned)
        .collect();
    if repositories.is_empty() {
        return Err(PushError::NoRepository);
    }
    Ok(Push {
        event,
        is_push,
        repositories,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_pushes_and_refuses_what_is_not_one() {
        let p = read_push(
            Some("push"),
            br#"{"repository": {"clone_url": "https://git.example/shop.git"}}"#,
        )
        .expect("a push");
        assert_eq!(p.repositories, vec!["https://git.example/shop.git"]);
        let p = read_push(Some("ping"), b"{}").expect("a ping");
        assert!(!p.is_push);
        assert_eq!(read_push(None, b"null"), Err(PushError::NotAnObject));
        assert_eq!(read_push(None, b"{}"), Err(PushError::NoRepository));
        assert!(matches!(read_push(None, b"{"), Err(PushError::NotJson(_))));
        let gitlab = read_push(
            Some("Push Hook"),
            br#"{"object_kind": "push", "project": {"git_http_url": "https://gl.example/a.git"}}"#,
        )
        .expect("GitLab");
        assert_eq!(gitlab.repositories, vec!["https://gl.example/a.git"]);
    }
}
