//! Architecture invariant, checked on the source: no circle of imports between the files
//! of a crate (ARCHITECTURE.md). A file's references to `crate::a::b` and `super::x` are
//! resolved to the file that defines the module; a module and its own children may refer
//! to each other (that is what `super::` is for), and `lib.rs`/`main.rs` are the crate's
//! root, so neither counts. Any other circle fails, with its files named.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// `a/b.rs` as the module path `["a", "b"]`.
fn module_of(file: &str) -> Vec<&str> {
    file.trim_end_matches(".rs").split('/').collect()
}

/// The file that defines the longest prefix of `segments` that is a module.
fn resolve(files: &BTreeSet<String>, segments: &[&str]) -> Option<String> {
    (1..=segments.len()).rev().find_map(|n| {
        let file = format!("{}.rs", segments[..n].join("/"));
        files.contains(&file).then_some(file)
    })
}

/// Runs of `ident::ident::...` right after `prefix` in `text`.
fn paths_after<'t>(text: &'t str, prefix: &str) -> Vec<Vec<&'t str>> {
    let mut out = Vec::new();
    for (at, _) in text.match_indices(prefix) {
        let before = text[..at].chars().next_back();
        if before.is_some_and(|c| c.is_alphanumeric() || c == '_') {
            continue;
        }
        let rest = &text[at + prefix.len()..];
        let end = rest
            .find(|c: char| !(c.is_alphanumeric() || c == '_' || c == ':'))
            .unwrap_or(rest.len());
        let segments: Vec<&str> = rest[..end].split("::").filter(|s| !s.is_empty()).collect();
        if !segments.is_empty() {
            out.push(segments);
        }
        // `super::{a, b::c}`: each name of the list.
        if rest[end..].starts_with('{')
            && let Some(close) = rest[end..].find('}')
        {
            for item in rest[end + 1..end + close].split(',') {
                let name = item.trim().split("::").next().unwrap_or("").trim();
                if !name.is_empty() && name != "self" && name != "*" {
                    out.push(vec![name]);
                }
            }
        }
    }
    out
}

/// What a crate's files refer to, as edges between files.
fn edges(src: &Path) -> BTreeMap<String, BTreeSet<String>> {
    let mut paths = Vec::new();
    rust_files(src, &mut paths);
    let files: BTreeSet<String> = paths
        .iter()
        .map(|p| p.strip_prefix(src).unwrap().to_string_lossy().into_owned())
        .collect();
    let mut graph: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for file in &files {
        if file.ends_with("tests.rs") || file == "lib.rs" || file == "main.rs" {
            continue;
        }
        let text = std::fs::read_to_string(src.join(file)).unwrap();
        let text = text.split("#[cfg(test)]\nmod tests {").next().unwrap();
        let code: String = text
            .lines()
            .map(|l| l.split("//").next().unwrap())
            .collect::<Vec<_>>()
            .join("\n");
        let me = module_of(file);
        let parent = &me[..me.len() - 1];
        let mut targets = Vec::new();
        for p in paths_after(&code, "crate::") {
            targets.extend(resolve(&files, &p));
        }
        for p in paths_after(&code, "super::") {
            let full: Vec<&str> = parent.iter().copied().chain(p).collect();
            targets.extend(resolve(&files, &full));
        }
        for t in targets {
            let (a, b) = (file.trim_end_matches(".rs"), t.trim_end_matches(".rs"));
            let family = b.starts_with(&format!("{a}/")) || a.starts_with(&format!("{b}/"));
            if t != *file && !family && t != "lib.rs" && t != "main.rs" {
                graph.entry(file.clone()).or_default().insert(t);
            }
        }
    }
    graph
}

/// A circle through `graph`, if there is one: its files in order.
fn circle(graph: &BTreeMap<String, BTreeSet<String>>) -> Option<Vec<String>> {
    fn visit(
        graph: &BTreeMap<String, BTreeSet<String>>,
        at: &str,
        path: &mut Vec<String>,
        done: &mut BTreeSet<String>,
    ) -> Option<Vec<String>> {
        if let Some(i) = path.iter().position(|p| p == at) {
            return Some(path[i..].to_vec());
        }
        if done.contains(at) {
            return None;
        }
        path.push(at.to_owned());
        for next in graph.get(at).into_iter().flatten() {
            if let Some(c) = visit(graph, next, path, done) {
                return Some(c);
            }
        }
        path.pop();
        done.insert(at.to_owned());
        None
    }
    let mut done = BTreeSet::new();
    graph
        .keys()
        .find_map(|start| visit(graph, start, &mut Vec::new(), &mut done))
}

#[test]
fn no_crate_has_a_circle_of_imports_between_its_files() {
    let crates = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
    let mut checked = 0;
    for entry in std::fs::read_dir(crates).unwrap() {
        let src = entry.unwrap().path().join("src");
        if !src.is_dir() {
            continue;
        }
        let graph = edges(&src);
        assert!(
            circle(&graph).is_none(),
            "{}: a circle of imports: {:?}",
            src.display(),
            circle(&graph).unwrap()
        );
        checked += 1;
    }
    assert!(
        checked >= 7,
        "only {checked} crates found under {}",
        crates.display()
    );
}

#[test]
fn the_check_finds_a_circle_where_there_is_one() {
    let graph: BTreeMap<String, BTreeSet<String>> = [
        ("a.rs", "b.rs"),
        ("b.rs", "c.rs"),
        ("c.rs", "a.rs"),
        ("d.rs", "a.rs"),
    ]
    .into_iter()
    .fold(BTreeMap::new(), |mut g, (a, b)| {
        g.entry(a.to_owned()).or_default().insert(b.to_owned());
        g
    });
    let found = circle(&graph).expect("a circle");
    assert_eq!(found.len(), 3, "{found:?}");
    let dir = std::env::temp_dir().join(format!("bellows-circle-{}", std::process::id()));
    std::fs::create_dir_all(dir.join("m")).unwrap();
    std::fs::write(dir.join("lib.rs"), "mod a;\nmod m;\n").unwrap();
    std::fs::write(dir.join("a.rs"), "use crate::m::b::Thing;\n").unwrap();
    std::fs::write(dir.join("m.rs"), "mod b;\n").unwrap();
    std::fs::write(
        dir.join("m/b.rs"),
        "pub struct Thing;\nuse super::{c, super::a};\nfn f() { crate::a::g(); }\n",
    )
    .unwrap();
    std::fs::write(dir.join("m/c.rs"), "// crate::a::nothing in a comment\n").unwrap();
    let g = edges(&dir);
    assert!(circle(&g).is_some(), "{g:?}");
    std::fs::remove_dir_all(&dir).unwrap();
}
