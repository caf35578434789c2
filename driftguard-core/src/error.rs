//! One formatter for error chains.

use std::error::Error;

/// An error and its causes on one line (`a: b: c`), without repeating a cause whose text the
/// message before it already contains, with line breaks turned into spaces.
pub fn chain(e: &(dyn Error + 'static)) -> String {
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
