//! Finding the line of a key in the configuration's YAML text, for error messages.

use super::keys::snake_case;

/// Finds the line of a key path (`environments[1].live.dump`) in block-style YAML text.
/// Returns the line (1-based) of the deepest segment found. A camelCase key is also found
/// under its deprecated snake_case spelling (`caFile` as `ca_file`).
pub fn locate(text: &str, path: &str) -> Option<usize> {
    let lines: Vec<&str> = text.lines().collect();
    let mut segments = Vec::new();
    for part in path.split('.') {
        match part.split_once('[') {
            Some((key, rest)) => {
                if !key.is_empty() {
                    segments.push(Seg::Key(key.to_owned()));
                }
                for idx in rest.split('[') {
                    if let Ok(n) = idx.trim_end_matches(']').parse::<usize>() {
                        segments.push(Seg::Index(n));
                    }
                }
            }
            None => segments.push(Seg::Key(part.to_owned())),
        }
    }
    // effective indentation and content of a line (`- key: v` counts as `key: v` two deeper)
    let eff = |line: &str| -> Option<(usize, bool, String)> {
        let t = line.trim_start();
        if t.is_empty() || t.starts_with('#') {
            return None;
        }
        let indent = line.len() - t.len();
        Some((indent, t.starts_with("- ") || t == "-", t.to_owned()))
    };
    let (mut start, mut end) = (0usize, lines.len());
    let mut want: Option<usize> = None; // indentation of the keys of the current block
    let mut found = None;
    for seg in segments {
        let mut hit = None;
        let mut count = 0;
        for (i, line) in lines.iter().enumerate().take(end).skip(start) {
            let Some((indent, dash, t)) = eff(line) else {
                continue;
            };
            match &seg {
                Seg::Key(k) => {
                    let (ind, body) = if dash && i == start && want.is_some_and(|w| w == indent + 2)
                    {
                        (indent + 2, t[2..].trim_start().to_owned())
                    } else {
                        (indent, t)
                    };
                    let w = *want.get_or_insert(ind);
                    if ind == w
                        && (body.starts_with(&format!("{k}:"))
                            || body.starts_with(&format!("{}:", snake_case(k))))
                    {
                        hit = Some((i, ind));
                        break;
                    }
                }
                Seg::Index(n) => {
                    let w = *want.get_or_insert(indent);
                    if dash && indent == w {
                        if count == *n {
                            hit = Some((i, indent));
                            break;
                        }
                        count += 1;
                    }
                }
            }
        }
        let Some((i, ind)) = hit else {
            break;
        };
        found = Some(i + 1);
        let mut e = i + 1;
        while e < lines.len() {
            if let Some((indent, _, _)) = eff(lines[e]) {
                if indent <= ind {
                    break;
                }
            }
            e += 1;
        }
        match seg {
            Seg::Index(_) => {
                start = i;
                want = Some(ind + 2);
            }
            Seg::Key(_) => {
                start = i + 1;
                want = None;
            }
        }
        end = e;
    }
    found
}

enum Seg {
    Key(String),
    Index(usize),
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;
    use std::path::Path;

    const TEXT: &str = "# c\nenvironments:\n  - name: a\n    dir: x\n  - name: b\n    live:\n      dump: y.yaml\n    dir: z\nstore:\n  sqlite: s.db\n";

    #[test]
    fn locates_keys() {
        assert_eq!(locate(TEXT, "environments"), Some(2));
        assert_eq!(locate(TEXT, "environments[0]"), Some(3));
        assert_eq!(locate(TEXT, "environments[1].name"), Some(5));
        assert_eq!(locate(TEXT, "environments[1].live.dump"), Some(7));
        assert_eq!(locate(TEXT, "environments[1].dir"), Some(8));
        assert_eq!(locate(TEXT, "store.sqlite"), Some(10));
    }

    #[test]
    fn unknown_keys_are_located() {
        let text = "environments:\n  - name: a\n    git:\n      url: x\n      rf: main\n";
        let e = Config::from_text(Path::new("d.yaml"), text).expect_err("unknown key");
        let s = e.to_string();
        assert!(s.starts_with("d.yaml:5:"), "{s}");
        assert!(s.contains("environments[0].git: unknown field `rf`"), "{s}");
    }
}
