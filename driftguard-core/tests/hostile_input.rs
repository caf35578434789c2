//! Hostile manifests: each gives a clear error naming the file and line, and the other
//! documents of the file are still read.

use driftguard_core::manifest::parse_file;

const GOOD: &str =
    "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: good, namespace: a}\ndata: {k: v}\n";

/// A YAML "billion laughs": nine levels of nine aliases each.
fn alias_bomb(levels: usize) -> String {
    let mut s = String::from("  a0: &a0 [lol, lol, lol, lol, lol, lol, lol, lol, lol]\n");
    for i in 1..levels {
        let p = i - 1;
        s.push_str(&format!(
            "  a{i}: &a{i} [*a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}]\n"
        ));
    }
    format!("apiVersion: v1\nkind: ConfigMap\nmetadata: {{name: bomb}}\ndata:\n{s}")
}

#[test]
fn a_yaml_alias_bomb_is_refused_and_the_next_document_read() {
    let text = format!("{GOOD}---\n{}---\n{GOOD}", alias_bomb(9));
    let p = parse_file("bomb.yaml", &text, None);
    assert_eq!(p.errors.len(), 1, "{:?}", p.errors);
    let e = &p.errors[0];
    assert_eq!(e.file, "bomb.yaml");
    assert_eq!(e.line, 6, "the bomb's document starts on line 6: {e}");
    assert!(e.message.contains("repetition limit"), "{e}");
    // the good documents before and after it are read
    assert_eq!(p.objects.len(), 2);
}

#[test]
fn ten_thousand_levels_of_nesting_are_refused() {
    let deep = format!(
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {{name: deep}}\ndata: {}{}\n",
        "[".repeat(10_000),
        "]".repeat(10_000)
    );
    let p = parse_file("deep.yaml", &format!("{GOOD}---\n{deep}"), None);
    assert_eq!(p.objects.len(), 1);
    assert!(
        p.errors
            .iter()
            .any(|e| e.file == "deep.yaml" && e.line == 9 && e.message.contains("recursion limit")),
        "{:?}",
        p.errors
    );
    let deep_json = format!(
        "{{\"apiVersion\":\"v1\",\"kind\":\"ConfigMap\",\"metadata\":{{\"name\":\"d\"}},\"data\":{}{}}}",
        "[".repeat(10_000),
        "]".repeat(10_000)
    );
    let p = parse_file("deep.json", &deep_json, None);
    assert!(p.objects.is_empty());
    assert!(
        p.errors
            .iter()
            .any(|e| e.file == "deep.json" && e.message.contains("recursion limit")),
        "{:?}",
        p.errors
    );
    // maps nest the same way
    let deep_map = format!(
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {{name: m}}\ndata: {}1{}\n",
        "{a: ".repeat(10_000),
        "}".repeat(10_000)
    );
    let p = parse_file("map.yaml", &deep_map, None);
    assert!(
        p.objects.is_empty() && !p.errors.is_empty(),
        "{:?}",
        p.errors
    );
}
