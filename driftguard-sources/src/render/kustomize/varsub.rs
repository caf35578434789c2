//! Flux's post-build variable substitution (a Kustomization's `postBuild.substitute`), as
//! fluxcd/pkg does it (`kustomize/kustomize_varsub.go` over its `envsubst` package, a fork of
//! drone/envsubst):
//!
//! - after the build, on the YAML text of each object, keys and comments included; the text
//!   is read again as YAML afterwards, so `replicas: ${count}` becomes a number;
//! - `${name}` is the variable's value, or nothing when it is not given (Flux's default,
//!   non-strict mode); `$name` without braces is left as written;
//! - `${name:=default}` (also `:-`, `=`, `:?`, `:+`, which Flux all reads the same way) is the
//!   default when the value is empty or not given; the default may hold `${...}` itself;
//! - `${name^}`, `${name^^}`, `${name,}`, `${name,,}` change the case, `${#name}` is the
//!   length in bytes;
//! - `$$` is a `$` (so `$${name}` stays `${name}`);
//! - an object labelled or annotated `kustomize.toolkit.fluxcd.io/substitute: disabled` is
//!   left as built;
//! - values lose their line breaks; names must match `^[_[:alpha:]][_[:alpha:][:digit:]]*$`;
//! - substitution runs only when there are variables.
//!
//! A malformed `${` is an error, as it fails Flux's build. Flux's substring, replacement and
//! pattern-removal forms (`${name:1:2}`, `${name/a/b}`, `${name#pattern}`) are refused with an
//! error rather than left unreplaced. Errors never hold a value: the values may be secrets.

use std::collections::BTreeMap;

use driftguard_core::manifest::parse_file;

/// The label or annotation whose value `disabled` leaves an object as built.
pub const SUBSTITUTE_ANNOTATION: &str = "kustomize.toolkit.fluxcd.io/substitute";

/// Whether `name` may name a variable: `^[_[:alpha:]][_[:alpha:][:digit:]]*$` (ASCII), as
/// Flux checks it.
pub fn is_var_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c == '_' || c.is_ascii_alphabetic())
        && chars.all(|c| c == '_' || c.is_ascii_alphanumeric())
}

/// Why a text cannot be substituted. It names at most a variable, never a value.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum VarsubError {
    /// A `${` that is not an expression.
    #[error("bad substitution")]
    Bad,
    /// A `${name` without its `}`.
    #[error("missing closing brace")]
    MissingBrace,
    /// A `${` not followed by a name.
    #[error("unable to parse variable name")]
    VariableName,
    /// A default that does not end.
    #[error("unable to parse substitution within function")]
    Function,
    /// One of Flux's string functions DriftGuard does not evaluate.
    #[error(
        "`${{{name}{form}...}}` ({what}) is not evaluated by DriftGuard: use `${{{name}}}` or `${{{name}:=default}}`"
    )]
    Unsupported {
        /// The variable.
        name: String,
        /// The operator as written (`/`, `#`, `:`).
        form: String,
        /// What Flux would do.
        what: &'static str,
    },
}

/// The substitution of one text.
struct Eval<'a> {
    text: &'a str,
    at: usize,
    vars: &'a BTreeMap<String, String>,
}

impl Eval<'_> {
    fn rest(&self) -> &str {
        &self.text[self.at..]
    }

    fn peek(&self) -> Option<char> {
        self.rest().chars().next()
    }

    fn bump(&mut self, c: char) {
        self.at += c.len_utf8();
    }

    /// The whole text: `$$` is `$`, `${...}` is evaluated, the rest is kept.
    fn text(&mut self) -> Result<String, VarsubError> {
        let mut out = String::with_capacity(self.text.len());
        while let Some(c) = self.peek() {
            if self.rest().starts_with("$$") {
                out.push('$');
                self.at += 2;
            } else if self.rest().starts_with("${") {
                self.at += 2;
                out.push_str(&self.expression()?);
            } else {
                out.push(c);
                self.bump(c);
            }
        }
        Ok(out)
    }

    /// A variable's name: letters, digits and `_`.
    fn name(&mut self) -> String {
        let start = self.at;
        while let Some(c) = self.peek() {
            if c.is_alphanumeric() || c == '_' {
                self.bump(c);
            } else {
                break;
            }
        }
        self.text[start..self.at].to_owned()
    }

    fn value(&self, name: &str) -> String {
        self.vars.get(name).cloned().unwrap_or_default()
    }

    fn close(&mut self) -> Result<(), VarsubError> {
        match self.peek() {
            Some('}') => {
                self.at += 1;
                Ok(())
            }
            _ => Err(VarsubError::Bad),
        }
    }

    /// After `${`: up to and with its `}`.
    fn expression(&mut self) -> Result<String, VarsubError> {
        if self.peek() == Some('#') {
            self.at += 1;
            let name = self.name();
            if name.is_empty() {
                return Err(VarsubError::Bad);
            }
            self.close()?;
            return Ok(self.value(&name).len().to_string());
        }
        let name = self.name();
        if name.is_empty() {
            return Err(VarsubError::VariableName);
        }
        let unsupported = |form: &str, what| VarsubError::Unsupported {
            name: name.clone(),
            form: form.to_owned(),
            what,
        };
        match self.peek() {
            Some('}') => {
                self.at += 1;
                Ok(self.value(&name))
            }
            Some(':') => match self.rest()[1..].chars().next() {
                Some('=' | '-' | '?' | '+') => {
                    self.at += 2;
                    self.default(&name)
                }
                _ => Err(unsupported(":", "a substring")),
            },
            Some('=') => {
                self.at += 1;
                self.default(&name)
            }
            Some(',' | '^') => {
                let start = self.at;
                while self.at - start < 2 && matches!(self.peek(), Some(',' | '^')) {
                    self.at += 1;
                }
                let op = self.text[start..self.at].to_owned();
                self.close()?;
                Ok(case(&op, self.value(&name)))
            }
            Some('/') => Err(unsupported("/", "a replacement")),
            Some(c @ ('#' | '%')) => Err(unsupported(&c.to_string(), "a pattern removal")),
            _ => Err(VarsubError::MissingBrace),
        }
    }

    /// After `${name:=` (or `:-`, `=`, ...): the default, up to and with the `}`; the value
    /// when it is not empty, else the default.
    fn default(&mut self, name: &str) -> Result<String, VarsubError> {
        let mut default = String::new();
        loop {
            match self.peek() {
                Some('}') => {
                    self.at += 1;
                    break;
                }
                None => return Err(VarsubError::Function),
                Some(_) if self.rest().starts_with("${") => {
                    self.at += 2;
                    default.push_str(&self.expression()?);
                }
                Some(_) => {
                    while let Some(c) = self.peek() {
                        if c == '}' || self.rest().starts_with("${") {
                            break;
                        }
                        default.push(c);
                        self.bump(c);
                    }
                }
            }
        }
        let value = self.value(name);
        Ok(if value.is_empty() { default } else { value })
    }
}

/// `${name^}` and the like: `^` upper-cases the first character, `^^` all, `,` and `,,`
/// lower-case; a mix of the two changes nothing (as Flux's table falls back).
fn case(op: &str, value: String) -> String {
    let first = |v: &str, upper: bool| {
        let mut chars = v.chars();
        match chars.next() {
            Some(c) if upper => c.to_uppercase().chain(chars).collect(),
            Some(c) => c.to_lowercase().chain(chars).collect(),
            None => String::new(),
        }
    };
    match op {
        "^" => first(&value, true),
        "^^" => value.to_uppercase(),
        "," => first(&value, false),
        ",," => value.to_lowercase(),
        _ => value,
    }
}

/// Substitutes `vars` in `text` (values as given: see [`substitute_output`] for Flux's
/// preparation of them).
pub(crate) fn substitute(
    text: &str,
    vars: &BTreeMap<String, String>,
) -> Result<String, VarsubError> {
    Eval { text, at: 0, vars }.text()
}

/// A document of a build's output that cannot be substituted.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct DocumentError {
    /// The object (`Deployment shop/web`), or `document N` when it cannot be read.
    pub object: String,
    /// The line of the output where its document starts.
    pub line: usize,
    /// Why.
    pub error: VarsubError,
}

/// Substitutes `vars` in every document of `output` (a kustomize build's YAML stream, `---`
/// between documents) but those labelled or annotated
/// `kustomize.toolkit.fluxcd.io/substitute: disabled`. Values lose their line breaks, as Flux
/// takes them; with no variables the output is returned as it is.
pub(crate) fn substitute_output(
    output: &str,
    vars: &BTreeMap<String, String>,
) -> Result<String, DocumentError> {
    if vars.is_empty() {
        return Ok(output.to_owned());
    }
    let vars: BTreeMap<String, String> = vars
        .iter()
        .map(|(k, v)| (k.clone(), v.replace('\n', "")))
        .collect();
    let mut out = String::with_capacity(output.len());
    let (mut line, mut start_line) = (1, 1);
    let mut doc = String::new();
    let mut index = 0;
    let flush = |doc: &mut String, out: &mut String, index: usize, start_line: usize| {
        let text = std::mem::take(doc);
        if !text.contains('$') {
            out.push_str(&text);
            return Ok(());
        }
        let parsed = parse_file("output.yaml", &text, None);
        let object = parsed.objects.first().map(|(o, _)| o);
        let disabled = object.is_some_and(|o| {
            ["labels", "annotations"].iter().any(|m| {
                o.value()
                    .get("metadata")
                    .and_then(|meta| meta.get(*m))
                    .and_then(|m| m.get(SUBSTITUTE_ANNOTATION))
                    .and_then(serde_json::Value::as_str)
                    == Some("disabled")
            })
        });
        if disabled {
            out.push_str(&text);
            return Ok(());
        }
        match substitute(&text, &vars) {
            Ok(s) => {
                out.push_str(&s);
                Ok(())
            }
            Err(error) => Err(DocumentError {
                object: object.map_or_else(
                    || format!("document {}", index + 1),
                    |o| {
                        let m = o.meta();
                        match m.namespace {
                            Some(ns) => format!("{} {ns}/{}", m.kind, m.name),
                            None => format!("{} {}", m.kind, m.name),
                        }
                    },
                ),
                line: start_line,
                error,
            }),
        }
    };
    for l in output.split_inclusive('\n') {
        if l.trim_end() == "---" {
            flush(&mut doc, &mut out, index, start_line)?;
            out.push_str(l);
            index += 1;
            start_line = line + 1;
        } else {
            doc.push_str(l);
        }
        line += 1;
    }
    flush(&mut doc, &mut out, index, start_line)?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[track_caller]
    fn check(text: &str, want: &str) {
        let v = vars(&[
            ("env", "prod"),
            ("count", "3"),
            ("empty", ""),
            ("name", "Shop"),
        ]);
        assert_eq!(substitute(text, &v).as_deref(), Ok(want), "{text}");
    }

    #[test]
    fn variables_and_defaults() {
        check("cluster-${env}", "cluster-prod");
        check("replicas: ${count}", "replicas: 3");
        // not given: nothing (Flux's non-strict mode)
        check("a${missing}b", "ab");
        check("${missing:=eu-1}", "eu-1");
        check("${env:=eu-1}", "prod");
        // an empty value takes the default too
        check("${empty:=fallback}", "fallback");
        check(
            "${missing:-x}|${missing=y}|${missing:?z}|${missing:+w}",
            "x|y|z|w",
        );
        check("${missing:=}", "");
        check("${missing:=${env}-${count}}", "prod-3");
        check("${missing:=a b:c/d}", "a b:c/d");
    }

    #[test]
    fn dollars_escape_and_bare_names_stay() {
        check("$${env}", "${env}");
        check("a$$b", "a$b");
        check("$$$${env}", "$${env}");
        check("$env and $", "$env and $");
        check("cost: 5$", "cost: 5$");
    }

    #[test]
    fn case_and_length() {
        check(
            "${name^^}|${name,,}|${name,}|${env^}",
            "SHOP|shop|shop|Prod",
        );
        check("${#env}", "4");
        check("${name^,}", "Shop");
    }

    #[test]
    fn malformed_expressions_are_errors() {
        let v = vars(&[("env", "s3cr3t")]);
        for (text, want) in [
            ("${}", VarsubError::VariableName),
            ("${ env}", VarsubError::VariableName),
            ("${env", VarsubError::MissingBrace),
            ("${env-x}", VarsubError::MissingBrace),
            ("${env:=x", VarsubError::Function),
            ("${#}", VarsubError::Bad),
            ("${env^^x}", VarsubError::Bad),
        ] {
            assert_eq!(substitute(text, &v), Err(want), "{text}");
        }
        for text in ["${env/a/b}", "${env#x}", "${env%%x}", "${env:1:2}"] {
            let e = substitute(text, &v).expect_err(text);
            assert!(
                matches!(e, VarsubError::Unsupported { .. }),
                "{text}: {e:?}"
            );
            let message = e.to_string();
            assert!(message.contains("`${env"), "{message}");
            assert!(!message.contains("s3cr3t"), "{message}");
        }
    }

    #[test]
    fn names_as_flux_checks_them() {
        for ok in ["env", "_x", "CLUSTER_REGION", "a1"] {
            assert!(is_var_name(ok), "{ok}");
        }
        for bad in ["", "1a", "a-b", "a.b", "é"] {
            assert!(!is_var_name(bad), "{bad}");
        }
    }

    #[test]
    fn documents_are_substituted_but_those_disabled() {
        let output = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: a\ndata:\n  region: ${region}\n---\napiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: b\n  annotations:\n    kustomize.toolkit.fluxcd.io/substitute: disabled\ndata:\n  script: echo ${HOME}\n---\napiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: c\n  labels:\n    kustomize.toolkit.fluxcd.io/substitute: disabled\ndata:\n  x: ${region}\n";
        let v = vars(&[("region", "eu\n-1")]);
        let got = substitute_output(output, &v).expect("substituted");
        assert!(got.contains("region: eu-1\n"), "line breaks removed: {got}");
        assert!(got.contains("script: echo ${HOME}\n"), "{got}");
        assert!(got.contains("x: ${region}\n"), "{got}");
        assert_eq!(got.matches("---\n").count(), 2);
        // no variables: nothing is done, `$$` included
        assert_eq!(
            substitute_output("a: $$x\n", &BTreeMap::new()).as_deref(),
            Ok("a: $$x\n")
        );
    }

    #[test]
    fn a_document_error_names_the_object_and_its_line() {
        let output = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: a\n---\napiVersion: v1\nkind: Secret\nmetadata:\n  name: db\n  namespace: shop\nstringData:\n  password: ${password\n";
        let e = substitute_output(output, &vars(&[("password", "hunter2")])).expect_err("bad");
        assert_eq!(e.object, "Secret shop/db");
        assert_eq!(e.line, 6);
        assert_eq!(e.error, VarsubError::MissingBrace);
    }
}
