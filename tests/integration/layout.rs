//! The house rules of `src/`, checked: imports point down the layers of
//! `src/lib.rs` (or sideways inside one layer), no two top-level modules
//! import each other in a circle, no source file grows past 600 lines, and
//! no function past a screen (60 lines) without a comment saying why.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::{Path, PathBuf};

/// Each top-level module and its layer (0 = top). A module may use modules
/// of its own layer or below, never above.
const LAYERS: &[(&str, u8)] = &[
    ("main", 0),
    ("commands", 0),
    ("cli", 1),
    ("pipeline", 1),
    ("governance", 1),
    ("recovery", 1),
    ("retrieve", 1),
    ("vicidial", 1),
    ("serve", 1),
    ("catalog", 1),
    ("console", 1),
    ("fleet", 1),
    ("error", 2),
    ("ledger", 3),
    ("store", 3),
    ("codec", 3),
    ("spool", 3),
    ("config", 4),
    ("recording", 4),
    ("units", 5),
    ("digest", 5),
    ("logging", 5),
    ("metrics", 5),
];

fn sources(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            sources(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The top-level module a file under `src/` belongs to.
fn module_of(src: &Path, file: &Path) -> String {
    let rel = file.strip_prefix(src).unwrap();
    let first = rel
        .components()
        .next()
        .unwrap()
        .as_os_str()
        .to_string_lossy();
    first.trim_end_matches(".rs").to_string()
}

/// Top-level modules a file's code (not its unit tests) refers to.
fn uses(text: &str) -> BTreeSet<String> {
    let code = text.split("#[cfg(test)]").next().unwrap_or(text);
    let mut out = BTreeSet::new();
    for marker in ["crate::", "recvault::"] {
        for piece in code.split(marker).skip(1) {
            let name: String = piece
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                .collect();
            if !name.is_empty() {
                out.insert(name);
            }
        }
    }
    // `use crate::{a, b}` names several at once.
    for piece in code.split("crate::{").skip(1) {
        let inner = piece.split('}').next().unwrap_or("");
        for name in inner.split(',') {
            let name: String = name
                .trim()
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                .collect();
            out.insert(name);
        }
    }
    out
}

fn graph() -> BTreeMap<String, BTreeSet<String>> {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    sources(&src, &mut files);
    let mut edges: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for file in files {
        let from = module_of(&src, &file);
        let text = fs::read_to_string(&file).unwrap();
        for to in uses(&text) {
            if to != from && LAYERS.iter().any(|(m, _)| *m == to) {
                edges.entry(from.clone()).or_default().insert(to);
            }
        }
    }
    edges
}

fn layer(module: &str) -> u8 {
    LAYERS
        .iter()
        .find(|(m, _)| *m == module)
        .unwrap_or_else(|| panic!("module `{module}` has no layer in tests/integration/layout.rs"))
        .1
}

#[test]
fn imports_point_down_the_layers() {
    let mut upward = Vec::new();
    for (from, tos) in graph() {
        for to in tos {
            if layer(&to) < layer(&from) {
                upward.push(format!(
                    "{from} (layer {}) uses {to} (layer {})",
                    layer(&from),
                    layer(&to)
                ));
            }
        }
    }
    assert!(
        upward.is_empty(),
        "imports pointing up:\n{}",
        upward.join("\n")
    );
}

#[test]
fn no_modules_import_each_other_in_a_circle() {
    let edges = graph();
    // Depth-first search for a back edge.
    fn visit(
        node: &str,
        edges: &BTreeMap<String, BTreeSet<String>>,
        path: &mut Vec<String>,
        done: &mut BTreeSet<String>,
    ) -> Option<Vec<String>> {
        if let Some(i) = path.iter().position(|n| n == node) {
            let mut cycle = path[i..].to_vec();
            cycle.push(node.to_string());
            return Some(cycle);
        }
        if done.contains(node) {
            return None;
        }
        path.push(node.to_string());
        for next in edges.get(node).into_iter().flatten() {
            if let Some(c) = visit(next, edges, path, done) {
                return Some(c);
            }
        }
        path.pop();
        done.insert(node.to_string());
        None
    }
    let mut done = BTreeSet::new();
    for node in edges.keys() {
        if let Some(cycle) = visit(node, &edges, &mut Vec::new(), &mut done) {
            panic!(
                "modules import each other in a circle: {}",
                cycle.join(" → ")
            );
        }
    }
}

#[test]
fn no_source_file_is_over_600_lines() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    sources(&src, &mut files);
    let long: Vec<String> = files
        .iter()
        .filter_map(|f| {
            let n = fs::read_to_string(f).unwrap().lines().count();
            (n > 600).then(|| format!("{} ({n} lines)", f.display()))
        })
        .collect();
    assert!(
        long.is_empty(),
        "files over 600 lines:\n{}",
        long.join("\n")
    );
}

/// Functions of `text`'s code (not its unit tests) longer than `max` lines
/// with no reason given in a comment just above (one that says "long").
fn long_functions(text: &str, max: usize) -> Vec<(usize, String, usize)> {
    let code = text.split("#[cfg(test)]").next().unwrap_or(text);
    let lines: Vec<&str> = code.lines().collect();
    let mut out = Vec::new();
    for (i, line) in lines.iter().enumerate() {
        let trimmed = line.trim_start();
        let indent = &line[..line.len() - trimmed.len()];
        let signature = trimmed
            .trim_start_matches("pub ")
            .trim_start_matches("pub(crate) ")
            .trim_start_matches("pub(super) ")
            .trim_start_matches("async ");
        let Some(name) = signature.strip_prefix("fn ") else {
            continue;
        };
        if line.trim_end().ends_with(';') {
            continue;
        }
        let close = format!("{indent}}}");
        let Some(end) = lines[i..].iter().position(|l| l.trim_end() == close) else {
            continue;
        };
        let reason = lines[i.saturating_sub(4)..i]
            .iter()
            .any(|l| l.trim_start().starts_with("//") && l.contains("long"));
        if end + 1 > max && !reason {
            let name = name.split(['(', '<']).next().unwrap_or(name);
            out.push((i + 1, name.to_string(), end + 1));
        }
    }
    out
}

#[test]
fn no_function_is_longer_than_a_screen_without_a_reason() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    sources(&src, &mut files);
    let mut long = Vec::new();
    for f in files.iter().filter(|f| !f.ends_with("tests.rs")) {
        for (line, name, n) in long_functions(&fs::read_to_string(f).unwrap(), 60) {
            long.push(format!("{}:{line} {name} ({n} lines)", f.display()));
        }
    }
    assert!(
        long.is_empty(),
        "functions over 60 lines with no reason given:\n{}",
        long.join("\n")
    );
}

#[test]
fn the_rules_can_fail() {
    let body = "    x();\n".repeat(3);
    let f = format!("pub async fn f(a: u8) {{\n{body}}}\n");
    assert_eq!(long_functions(&f, 4), [(1, "f".to_string(), 5)]);
    assert!(long_functions(&f, 5).is_empty());
    let explained = format!("// One arm per command: long on purpose.\n{f}");
    assert!(long_functions(&explained, 4).is_empty());
    let in_tests = format!("#[cfg(test)]\n{f}");
    assert!(long_functions(&in_tests, 4).is_empty());
    // The parser sees what an upward import would look like.
    let used =
        uses("use crate::commands::x;\nuse crate::{ledger, store};\n#[cfg(test)]\nuse crate::cli;");
    assert_eq!(
        used.into_iter().collect::<Vec<_>>(),
        ["commands", "ledger", "store"]
    );
    assert!(layer("commands") < layer("ledger"));
}
