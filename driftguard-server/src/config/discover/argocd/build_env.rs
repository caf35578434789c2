//! Argo CD's build environment (`ARGOCD_APP_NAME`, ...), as its repo server substitutes it.

use std::collections::BTreeMap;

use serde_json::Value;

use crate::config::discover::read::{get, Problems};

/// Argo CD's build environment (`ARGOCD_APP_*`), substituted where Argo CD substitutes it:
/// Helm parameters and value file paths, kustomize images, commonLabels and (with
/// `commonAnnotationsEnvsubst`) commonAnnotations, the way Go's `os.Expand` does it: `$NAME`
/// and `${NAME}`, `$$` for `$`, unknown names empty.
///
/// DriftGuard's kustomize renderer expands images and commonLabels itself when it builds a
/// revision (it knows the revision and the folder, not the Application): for those,
/// [`BuildEnv::pre_subst`] replaces only what the Application gives and leaves the rest to
/// it, so that nothing is expanded twice.
pub(super) struct BuildEnv {
    vars: BTreeMap<&'static str, String>,
}

/// What is only known when Argo CD renders a revision of a cluster: not substituted.
const UNKNOWN_HERE: [&str; 5] = [
    "ARGOCD_APP_REVISION",
    "ARGOCD_APP_REVISION_SHORT",
    "ARGOCD_APP_REVISION_SHORT_8",
    "KUBE_VERSION",
    "KUBE_API_VERSIONS",
];

impl BuildEnv {
    pub(super) fn new(
        instance: &str,
        project: &str,
        dest_ns: Option<&str>,
        source: &Value,
    ) -> Self {
        let text = |k: &str| {
            get(source, k)
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_owned()
        };
        let vars = BTreeMap::from([
            ("ARGOCD_APP_NAME", instance.to_owned()),
            (
                "ARGOCD_APP_NAMESPACE",
                dest_ns.unwrap_or_default().to_owned(),
            ),
            ("ARGOCD_APP_PROJECT_NAME", project.to_owned()),
            ("ARGOCD_APP_SOURCE_REPO_URL", text("repoURL")),
            ("ARGOCD_APP_SOURCE_PATH", text("path")),
            ("ARGOCD_APP_SOURCE_TARGET_REVISION", text("targetRevision")),
        ]);
        BuildEnv { vars }
    }

    /// `text` substituted in full, as Argo CD's repo server does; the revision's variables,
    /// unknown here, are left as written with a problem.
    pub(super) fn subst(&self, text: &str, f: &str, p: &mut Problems) -> String {
        if !text.contains('$') {
            return text.to_owned();
        }
        let b = text.as_bytes();
        let mut out = String::with_capacity(text.len());
        let (mut i, mut last) = (0, 0);
        while i < b.len() {
            if b[i] == b'$' && i + 1 < b.len() {
                out.push_str(&text[last..i]);
                let (name, width) = shell_name(&text[i + 1..]);
                let token = &text[i..i + 1 + width];
                // `$` before no name stays; `$$` is a `$`
                if (name.is_empty() && width == 0) || name == "$" {
                    out.push('$');
                } else if UNKNOWN_HERE.contains(&name) {
                    p.note(
                        f,
                        format!("`{token}` is only known when Argo CD renders: left as written"),
                    );
                    out.push_str(token);
                } else if !name.is_empty() {
                    out.push_str(self.vars.get(name).map_or("", String::as_str));
                }
                i += 1 + width;
                last = i;
                continue;
            }
            i += 1;
        }
        out.push_str(&text[last..]);
        out
    }

    /// `text` with only the variables the Application gives replaced (its name, destination
    /// namespace, project, repository URL and target revision; a `$` in their values
    /// doubled), everything else as written: for the fields DriftGuard's kustomize renderer
    /// expands at build (`ARGOCD_APP_REVISION*`, `ARGOCD_APP_SOURCE_PATH`, `$$`).
    pub(super) fn pre_subst(&self, text: &str) -> String {
        if !text.contains('$') {
            return text.to_owned();
        }
        let b = text.as_bytes();
        let mut out = String::with_capacity(text.len());
        let (mut i, mut last) = (0, 0);
        while i < b.len() {
            if b[i] == b'$' && i + 1 < b.len() {
                let (name, width) = shell_name(&text[i + 1..]);
                let value = self
                    .vars
                    .get(name)
                    .filter(|_| name != "ARGOCD_APP_SOURCE_PATH");
                if let Some(value) = value {
                    out.push_str(&text[last..i]);
                    out.push_str(&value.replace('$', "$$"));
                    last = i + 1 + width;
                }
                // `$$` is one token (width 1): its second `$` starts nothing
                i += 1 + width;
                continue;
            }
            i += 1;
        }
        out.push_str(&text[last..]);
        out
    }
}

/// The variable name after a `$` and how many bytes it takes (Go's `getShellName`): a name
/// of `_`, letters and digits, a special character, or `{...}`; `("", n)` for bad syntax
/// (eaten), `("", 0)` when no name follows (the `$` stays).
fn shell_name(s: &str) -> (&str, usize) {
    let b = s.as_bytes();
    let special =
        |c: u8| matches!(c, b'*' | b'#' | b'$' | b'@' | b'!' | b'?' | b'-') || c.is_ascii_digit();
    if b[0] == b'{' {
        if b.len() > 2 && special(b[1]) && b[2] == b'}' {
            return (&s[1..2], 3);
        }
        for (i, c) in b.iter().enumerate().skip(1) {
            if *c == b'}' {
                return if i == 1 { ("", 2) } else { (&s[1..i], i + 1) };
            }
        }
        return ("", 1);
    }
    if special(b[0]) {
        return (&s[..1], 1);
    }
    let n = b
        .iter()
        .take_while(|c| c.is_ascii_alphanumeric() || **c == b'_')
        .count();
    (&s[..n], n)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn the_build_environment_is_substituted_as_argo_cd_does() {
        let env = BuildEnv::new(
            "shop",
            "default",
            Some("shop-prod"),
            &json!({"repoURL": "https://git.example/gitops.git", "path": "charts/shop"}),
        );
        let mut p = Problems::default();
        assert_eq!(env.subst("plain", "f", &mut p), "plain");
        assert_eq!(
            env.subst("${ARGOCD_APP_NAME}-$ARGOCD_APP_NAMESPACE", "f", &mut p),
            "shop-shop-prod"
        );
        assert_eq!(
            env.subst("cost $$5 and $UNSET.", "f", &mut p),
            "cost $5 and ."
        );
        assert_eq!(env.subst("end$", "f", &mut p), "end$");
        assert_eq!(env.subst("a${}b${c", "f", &mut p), "abc");
        assert!(p.clone().into_vec().is_empty());
        assert_eq!(
            env.subst("rev-${ARGOCD_APP_REVISION}", "f", &mut p),
            "rev-${ARGOCD_APP_REVISION}"
        );
        assert_eq!(p.into_vec().len(), 1);
        // for the renderer: only the Application's variables now
        assert_eq!(
            env.pre_subst(
                "${ARGOCD_APP_NAME}:${ARGOCD_APP_REVISION_SHORT}-$$x-$ARGOCD_APP_SOURCE_PATH"
            ),
            "shop:${ARGOCD_APP_REVISION_SHORT}-$$x-$ARGOCD_APP_SOURCE_PATH"
        );
        assert_eq!(env.pre_subst("$$ARGOCD_APP_NAME"), "$$ARGOCD_APP_NAME");
        assert_eq!(env.pre_subst("plain"), "plain");
    }
}
