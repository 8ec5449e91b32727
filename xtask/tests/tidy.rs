//! Tidy: the claims ARCHITECTURE.md makes about the code, checked on the source tree (in the
//! style of rust-analyzer's tidy tests). Each check names the file and line at fault.
//!
//! - lb-core has no dependencies;
//! - the data plane (`crates/proxy/src/data`) takes no lock: no `Mutex`, `RwLock` or
//!   `parking_lot`, and no `CancellationToken` (its state sits behind a mutex that
//!   `is_cancelled`, `clone` and `drop` take); arc-swap, atomics, lock-free queues and the
//!   `Tripwire` instead;
//! - the proxy's subsystems form layers: a folder imports only from layers below it, so there
//!   is no import cycle between them (and the data plane imports nothing from control or
//!   observe);
//! - no function in the data plane is longer than [`MAX_DATA_PLANE_FN`] lines;
//! - no source file is longer than [`MAX_FILE_LINES`] lines unless its first lines say why
//!   (`tidy: long file: <reason>`).

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

const MAX_DATA_PLANE_FN: usize = 80;
const MAX_FILE_LINES: usize = 800;

/// The proxy's subsystems, lowest layer first. A module may import its own subsystem and any
/// subsystem of a lower layer, nothing else.
const LAYERS: &[(&str, u8)] = &[
    ("config", 0),
    ("counters", 0),
    ("tls", 1),
    ("listen", 1),
    ("resolve", 1),
    ("stats", 2),
    ("data", 3),
    ("control", 4),
    ("observe", 5),
    ("supervisor", 6),
    ("process", 7),
];

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("xtask lives in the workspace")
        .to_owned()
}

fn rust_files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_owned()];
    while let Some(d) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in entries.flatten() {
            let p = e.path();
            if p.is_dir() {
                if p.file_name().is_some_and(|n| n != "target") {
                    stack.push(p);
                }
            } else if p.extension().is_some_and(|x| x == "rs") {
                out.push(p);
            }
        }
    }
    out.sort();
    out
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn rel(path: &Path) -> String {
    path.strip_prefix(root())
        .unwrap_or(path)
        .display()
        .to_string()
}

/// The code of a line, without its `//` comment (good enough for this tree: no `//` in the
/// string literals the checks look at).
fn code(line: &str) -> &str {
    line.split("//").next().unwrap_or("")
}

fn fail_if_any(what: &str, problems: &str) {
    assert!(problems.is_empty(), "{what}:\n{problems}");
}

#[test]
fn lb_core_has_no_dependencies() {
    let manifest: toml::Table = read(&root().join("crates/lb-core/Cargo.toml"))
        .parse()
        .expect("lb-core's Cargo.toml parses");
    let deps = manifest
        .get("dependencies")
        .and_then(toml::Value::as_table)
        .map(|t| t.keys().cloned().collect::<Vec<_>>())
        .unwrap_or_default();
    assert!(
        deps.is_empty(),
        "lb-core must stay pure, but depends on {deps:?}"
    );
}

/// Lines of `text` that mention a lock type in code.
fn lock_lines(text: &str) -> Vec<(usize, String)> {
    let words = ["Mutex", "RwLock", "parking_lot", "CancellationToken"];
    text.lines()
        .enumerate()
        .filter(|(_, l)| {
            // A lock that no request takes (one per connection opened or closed), said so on
            // its line, where a reviewer sees it.
            if l.contains(NOT_PER_REQUEST) {
                return false;
            }
            let c = code(l);
            words.iter().any(|w| {
                c.match_indices(w).any(|(i, _)| {
                    let before = c[..i].chars().next_back();
                    let after = c[i + w.len()..].chars().next();
                    let ident =
                        |ch: Option<char>| ch.is_some_and(|c| c.is_alphanumeric() || c == '_');
                    !ident(before) && !ident(after)
                })
            })
        })
        .map(|(i, l)| (i + 1, l.trim().to_owned()))
        .collect()
}

/// The mark of a lock the request path never takes.
const NOT_PER_REQUEST: &str = "// tidy: lock per connection, never per request";

#[test]
fn the_data_plane_takes_no_lock() {
    let mut problems = String::new();
    for file in rust_files(&root().join("crates/proxy/src/data")) {
        for (n, line) in lock_lines(&read(&file)) {
            let _ = writeln!(problems, "  {}:{n}: {line}", rel(&file));
        }
    }
    fail_if_any(
        "a lock in the data plane (use arc-swap, atomics or a lock-free queue)",
        &problems,
    );
}

#[test]
fn the_lock_check_sees_locks() {
    let found = lock_lines(
        "use parking_lot::Mutex;\nlet m: std::sync::RwLock<u8>;\n// a Mutex in a comment\nstruct MutexFree;\nlet t = CancellationToken::new();\nstruct Live(Mutex<u8>); // tidy: lock per connection, never per request\nlet m: Mutex<u8>; // tidy: some other excuse\n",
    );
    assert_eq!(found.iter().map(|f| f.0).collect::<Vec<_>>(), [1, 2, 5, 7]);
}

/// The subsystems a file imports through `crate::` paths, with the line, plus the names it
/// imports from the crate root that are not modules (re-exports hide the real layer).
fn crate_imports(text: &str) -> Vec<(usize, String)> {
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let c = code(line);
        let mut rest = c;
        while let Some(at) = rest.find("crate::") {
            let before = rest[..at].chars().next_back();
            rest = &rest[at + "crate::".len()..];
            if before.is_some_and(|ch| ch.is_alphanumeric() || ch == '_' || ch == '$') {
                continue;
            }
            if let Some(group) = rest.strip_prefix('{') {
                let end = group.find('}').unwrap_or(group.len());
                for name in group[..end].split(',') {
                    let name = name.trim().split("::").next().unwrap_or("").trim();
                    if !name.is_empty() {
                        out.push((i + 1, name.to_owned()));
                    }
                }
            } else {
                let name: String = rest
                    .chars()
                    .take_while(|ch| ch.is_alphanumeric() || *ch == '_')
                    .collect();
                out.push((i + 1, name));
            }
        }
    }
    out
}

fn layer(name: &str) -> Option<u8> {
    LAYERS.iter().find(|(n, _)| *n == name).map(|(_, l)| *l)
}

fn layering_problems(subsystem: &str, file: &str, text: &str) -> String {
    let mut problems = String::new();
    let Some(own) = layer(subsystem) else {
        return format!("  {file}: `{subsystem}` is not a known subsystem (add it to LAYERS)\n");
    };
    for (n, name) in crate_imports(text) {
        let verdict = match layer(&name) {
            _ if name == subsystem || name == "Error" => None,
            Some(l) if l < own => None,
            Some(_) => Some(format!(
                "imports `{name}`, which is not below `{subsystem}`"
            )),
            None => Some(format!(
                "imports `crate::{name}`: name the subsystem it lives in instead"
            )),
        };
        if let Some(v) = verdict {
            let _ = writeln!(problems, "  {file}:{n}: {v}");
        }
    }
    problems
}

#[test]
fn proxy_subsystems_form_layers_without_cycles() {
    let src = root().join("crates/proxy/src");
    let mut problems = String::new();
    for file in rust_files(&src) {
        let rel_src = file.strip_prefix(&src).expect("under src");
        let first = rel_src
            .components()
            .next()
            .and_then(|c| c.as_os_str().to_str())
            .unwrap_or("");
        if first == "lib.rs" {
            continue;
        }
        let subsystem = first.trim_end_matches(".rs");
        problems += &layering_problems(subsystem, &rel(&file), &read(&file));
    }
    fail_if_any(
        "a proxy subsystem imports from a layer not below it",
        &problems,
    );
}

#[test]
fn the_layer_check_sees_upward_imports() {
    let text = "use crate::control::ControlHandle;\nuse crate::{Error, Proxy};\nuse crate::counters::Counters;\n";
    let problems = layering_problems("data", "data/x.rs", text);
    assert!(
        problems.contains("data/x.rs:1: imports `control`"),
        "{problems}"
    );
    assert!(
        problems.contains("data/x.rs:2: imports `crate::Proxy`"),
        "{problems}"
    );
    assert!(!problems.contains(":3:"), "{problems}");
}

/// Functions longer than `max` lines, as (first line, name, length). Relies on rustfmt's
/// layout: a body closes with `}` at the indentation its `fn` line starts at.
fn long_functions(text: &str, max: usize) -> Vec<(usize, String, usize)> {
    let lines: Vec<&str> = text.lines().collect();
    let mut out = Vec::new();
    for (i, line) in lines.iter().enumerate() {
        let trimmed = line.trim_start();
        let indent = line.len() - trimmed.len();
        let Some(at) = trimmed.find("fn ") else {
            continue;
        };
        let prefix = &trimmed[..at];
        let is_item = prefix.split_whitespace().all(|w| {
            matches!(
                w,
                "pub" | "pub(crate)" | "pub(super)" | "async" | "const" | "unsafe"
            ) || w.starts_with("pub(")
        });
        if !is_item || trimmed.ends_with(';') {
            continue;
        }
        let name: String = trimmed[at + 3..]
            .chars()
            .take_while(|c| c.is_alphanumeric() || *c == '_')
            .collect();
        let close = format!("{}}}", " ".repeat(indent));
        let Some(len) = lines[i..].iter().position(|l| *l == close) else {
            continue;
        };
        if len + 1 > max {
            out.push((i + 1, name, len + 1));
        }
    }
    out
}

#[test]
fn data_plane_functions_are_short() {
    let mut problems = String::new();
    for file in rust_files(&root().join("crates/proxy/src/data")) {
        for (n, name, len) in long_functions(&read(&file), MAX_DATA_PLANE_FN) {
            let _ = writeln!(problems, "  {}:{n}: fn {name} is {len} lines", rel(&file));
        }
    }
    fail_if_any(
        &format!(
            "data-plane functions over {MAX_DATA_PLANE_FN} lines (split them into named steps)"
        ),
        &problems,
    );
}

#[test]
fn the_function_check_measures_bodies() {
    let body = "    let x = 1;\n".repeat(5);
    let text = format!("pub(crate) async fn long() {{\n{body}}}\n\nfn short() {{\n}}\n");
    assert_eq!(long_functions(&text, 6), [(1, "long".to_owned(), 7)]);
    assert!(long_functions(&text, 7).is_empty());
}

#[test]
fn long_files_say_why() {
    let mut problems = String::new();
    for dir in ["crates", "bins", "xtask"] {
        for file in rust_files(&root().join(dir)) {
            let text = read(&file);
            let n = text.lines().count();
            let explained = text
                .lines()
                .take(30)
                .any(|l| l.contains("tidy: long file:"));
            if n > MAX_FILE_LINES && !explained {
                let _ = writeln!(problems, "  {}: {n} lines", rel(&file));
            }
        }
    }
    fail_if_any(
        &format!(
            "files over {MAX_FILE_LINES} lines without `tidy: long file: <reason>` in their first lines"
        ),
        &problems,
    );
}
