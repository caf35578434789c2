//! Formatting errors for people: one line for an error and its causes.

use std::error::Error;

/// Formats an error and its causes on one line, `a: b: c`, leaving out a cause whose text the
/// line already contains (errors that print their source in their own message) and turning
/// line breaks into spaces.
///
/// ```
/// #[derive(Debug, thiserror::Error)]
/// #[error("cannot read history")]
/// struct Outer(#[source] std::io::Error);
///
/// let e = Outer(std::io::Error::other("disk on fire"));
/// assert_eq!(driftguard_core::error::chain(&e), "cannot read history: disk on fire");
/// ```
pub fn chain(e: &dyn Error) -> String {
    let mut out = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        let s = c.to_string();
        if !out.contains(&s) {
            out.push_str(": ");
            out.push_str(&s);
        }
        cur = c.source();
    }
    out.replace('\n', " ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, thiserror::Error)]
    #[error("{msg}")]
    struct E {
        msg: String,
        #[source]
        source: Option<Box<E>>,
    }

    fn e(msg: &str, source: Option<E>) -> E {
        E {
            msg: msg.to_owned(),
            source: source.map(Box::new),
        }
    }

    #[test]
    fn one_line_without_repeats() {
        let leaf = e("connection refused", None);
        assert_eq!(chain(&leaf), "connection refused");
        let two = e(
            "cannot reach the store",
            Some(e("connection refused", None)),
        );
        assert_eq!(chain(&two), "cannot reach the store: connection refused");
        // a message that already prints its cause does not get it twice
        let repeated = e(
            "store: connection refused",
            Some(e("connection refused", None)),
        );
        assert_eq!(chain(&repeated), "store: connection refused");
        let three = e(
            "scan failed",
            Some(e("live side\nunreadable", Some(e("timed out", None)))),
        );
        assert_eq!(
            chain(&three),
            "scan failed: live side unreadable: timed out"
        );
    }
}
