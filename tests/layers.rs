//! Keeps the code's dependencies running one way (docs/design.md, "Layers"):
//! - the pure layers (`config`, `routing`, `appgroup`, `request_plan`, `daemon::protocol`, `daemon::dispatch`,
//!   `proxy_headers`, `metrics`, `telemetry`) name nothing of Apache, Python or the module's glue;
//! - `daemon/` and `python/` never import `crate::apache` (the glue is on top), `python/` never
//!   imports `daemon/`, and `sys/` (Apache's bindings) imports no oxwsgi layer;
//! - no source file imports one that imports it back, directly or through others;
//! - no code file is longer than ~700 lines before its unit tests.
//!
//! Imports are read from the source: `use` trees (braces expanded) and `crate::`/`super::`/
//! `self::` paths in code, each resolved to the file that defines the module it names. Unit test
//! modules are left out (they may use anything).

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::{Path, PathBuf};

const MANIFEST: &str = env!("CARGO_MANIFEST_DIR");

/// A source file of the library (not the `oxwsgi` command) and its module path.
struct Source {
    rel: String,
    module: Vec<String>,
    code: String,
}

/// Every `.rs` file under `dir`, sorted.
fn rust_files(dir: &Path) -> Vec<PathBuf> {
    fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
        for e in fs::read_dir(dir).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                walk(&p, out);
            } else if p.extension().is_some_and(|x| x == "rs") {
                out.push(p);
            }
        }
    }
    let mut files = Vec::new();
    walk(dir, &mut files);
    files.sort();
    files
}

fn sources() -> Vec<Source> {
    let root = Path::new(MANIFEST).join("src");
    rust_files(&root)
        .into_iter()
        .filter_map(|p| {
            let rel = p.strip_prefix(&root).unwrap().to_string_lossy().into_owned();
            if rel.starts_with("bin/") || rel == "bin" {
                return None;
            }
            let mut module: Vec<String> = rel.trim_end_matches(".rs").split('/').map(str::to_string).collect();
            if module.last().is_some_and(|m| m == "mod" || m == "lib") {
                module.pop();
            }
            let text = fs::read_to_string(&p).unwrap();
            Some(Source { rel, module, code: without_tests(&strip_comments(&text)) })
        })
        .collect()
}

/// The file without `//` comments and string literals' contents (so prose naming a module is no
/// import).
fn strip_comments(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for line in text.lines() {
        let mut in_str = false;
        let mut prev = '\0';
        let mut kept = String::new();
        let chars: Vec<char> = line.chars().collect();
        let mut i = 0;
        while i < chars.len() {
            let c = chars[i];
            if !in_str && c == '/' && chars.get(i + 1) == Some(&'/') {
                break;
            }
            if c == '"' && prev != '\\' && !(prev == '\'' && chars.get(i + 1) == Some(&'\'')) {
                in_str = !in_str;
                kept.push(c);
            } else if !in_str {
                kept.push(c);
            }
            prev = if prev == '\\' && c == '\\' { '\0' } else { c };
            i += 1;
        }
        out.push_str(&kept);
        out.push('\n');
    }
    out
}

/// The code without its `#[cfg(test)] mod name { ... }` blocks (unit tests may import anything;
/// a test module ends at the first `}` in column 0 after it). `#[cfg(test)] mod name;` lines
/// stay: the file they name is left out by [`test_only_files`].
fn without_tests(code: &str) -> String {
    let mut out = String::new();
    let mut rest = code;
    while let Some(at) = rest.find("#[cfg(test)]\nmod ") {
        let tail = &rest[at..];
        let line_end = tail["#[cfg(test)]\n".len()..].find('\n').map_or(tail.len(), |n| n + "#[cfg(test)]\n".len());
        if !tail[..line_end].trim_end().ends_with('{') {
            out.push_str(&rest[..at + line_end]);
            rest = &tail[line_end..];
            continue;
        }
        out.push_str(&rest[..at]);
        rest = match tail.find("\n}\n") {
            Some(end) => &tail[end + 3..],
            None => "",
        };
    }
    out.push_str(rest);
    out
}

/// Files declared `#[cfg(test)] mod name;` (helpers for unit tests), relative to src/.
fn test_only_files(sources: &[Source]) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    for src in sources {
        for (at, _) in src.code.match_indices("#[cfg(test)]\nmod ") {
            let rest = &src.code[at + "#[cfg(test)]\nmod ".len()..];
            if let Some(name) = rest.split(';').next().filter(|n| n.chars().all(|c| c.is_alphanumeric() || c == '_')) {
                let mut m = src.module.clone();
                m.push(name.to_string());
                if let Some(f) = module_file(&m) {
                    out.insert(f);
                }
            }
        }
    }
    out
}

/// Lines before the first unit test module.
fn code_lines(path: &Path) -> usize {
    let text = fs::read_to_string(path).unwrap();
    let end = text.find("#[cfg(test)]\nmod ").unwrap_or(text.len());
    text[..end].lines().count()
}

/// Every path the code names from the crate's own modules, as absolute module paths.
fn referenced_paths(src: &Source) -> Vec<Vec<String>> {
    let mut paths = Vec::new();
    // `use` trees, braces expanded.
    let code = &src.code;
    let mut rest = code.as_str();
    while let Some(at) = find_use(rest) {
        let tail = &rest[at..];
        let end = tail.find(';').unwrap_or(tail.len());
        let tree: String = tail[..end].split_whitespace().collect::<Vec<_>>().join("");
        for p in expand(&tree, "") {
            paths.push(p);
        }
        rest = &tail[end..];
    }
    // Paths written in code: crate::a::b, super::a, self::a.
    for start in ["crate::", "super::", "self::"] {
        for (at, _) in code.match_indices(start) {
            let before = code[..at].chars().last().unwrap_or(' ');
            if before.is_alphanumeric() || before == '_' || before == ':' {
                continue;
            }
            let path: String =
                code[at..].chars().take_while(|c| c.is_alphanumeric() || *c == '_' || *c == ':').collect();
            paths.push(path);
        }
    }
    paths.into_iter().filter_map(|p| absolute(&src.module, &src.rel, &p)).collect()
}

/// Offset of the next `use ` item (at a line start, possibly `pub`/`pub(crate)`).
fn find_use(code: &str) -> Option<usize> {
    let mut offset = 0;
    for line in code.split_inclusive('\n') {
        let t = line.trim_start();
        let indent = line.len() - t.len();
        for prefix in ["use ", "pub use ", "pub(crate) use ", "pub(super) use "] {
            if t.starts_with(prefix) {
                return Some(offset + indent + prefix.len());
            }
        }
        offset += line.len();
    }
    None
}

/// `a::{b, c::{d, self}}` -> `a::b`, `a::c::d`, `a::c`.
fn expand(tree: &str, prefix: &str) -> Vec<String> {
    let join = |p: &str, s: &str| if p.is_empty() { s.to_string() } else { format!("{p}::{s}") };
    if let Some(open) = tree.find('{') {
        let head = tree[..open].trim_end_matches("::");
        let inner = &tree[open + 1..tree.rfind('}').unwrap_or(tree.len())];
        let base = join(prefix, head);
        let mut out = Vec::new();
        let mut depth = 0;
        let mut part = String::new();
        for c in inner.chars().chain(std::iter::once(',')) {
            match c {
                '{' => depth += 1,
                '}' => depth -= 1,
                ',' if depth == 0 => {
                    let p = std::mem::take(&mut part);
                    if p == "self" {
                        out.push(base.clone());
                    } else if !p.is_empty() {
                        out.extend(expand(&p, &base));
                    }
                    continue;
                }
                _ => {}
            }
            part.push(c);
        }
        out
    } else {
        vec![join(prefix, tree.split(" as ").next().unwrap_or(tree))]
    }
}

/// Resolves a path to an absolute module path inside this crate, or None (std, pyo3, libc...).
fn absolute(module: &[String], rel: &str, path: &str) -> Option<Vec<String>> {
    let parts: Vec<&str> = path.split("::").filter(|s| !s.is_empty()).collect();
    let (mut base, rest): (Vec<String>, &[&str]) = match parts.first()? {
        &"crate" => (Vec::new(), &parts[1..]),
        &"self" => (module.to_vec(), &parts[1..]),
        &"super" => {
            let mut b = module.to_vec();
            let mut i = 0;
            while parts.get(i) == Some(&"super") {
                b.pop();
                i += 1;
            }
            (b, &parts[i..])
        }
        _ => {
            // A bare `use name::...` names a child module of this one (2018 edition) when the
            // child exists; otherwise it is an external crate.
            let mut b = module.to_vec();
            b.push(parts[0].to_string());
            if module_file(&b).is_some() && !rel.is_empty() {
                (module.to_vec(), &parts[..])
            } else {
                return None;
            }
        }
    };
    base.extend(rest.iter().map(|s| s.to_string()));
    Some(base)
}

/// The file that defines module `m`, if there is one.
fn module_file(m: &[String]) -> Option<String> {
    let src = Path::new(MANIFEST).join("src");
    if m.is_empty() {
        return Some("lib.rs".into());
    }
    let joined = m.join("/");
    for candidate in [format!("{joined}.rs"), format!("{joined}/mod.rs")] {
        if src.join(&candidate).is_file() {
            return Some(candidate);
        }
    }
    None
}

/// The file of the longest prefix of `path` that is a module (an item path names its module).
fn file_of(path: &[String]) -> String {
    for n in (0..=path.len()).rev() {
        if let Some(f) = module_file(&path[..n]) {
            return f;
        }
    }
    "lib.rs".into()
}

fn graph() -> BTreeMap<String, BTreeSet<String>> {
    let mut g = BTreeMap::new();
    let all = sources();
    let test_only = test_only_files(&all);
    for src in all.into_iter().filter(|s| !test_only.contains(&s.rel)) {
        let deps: BTreeSet<String> =
            referenced_paths(&src).iter().map(|p| file_of(p)).filter(|f| *f != src.rel).collect();
        g.insert(src.rel.clone(), deps);
    }
    g
}

#[test]
fn the_reader_resolves_imports() {
    // The checks below are only as good as this: a few imports known to exist.
    let g = graph();
    let has = |from: &str, to: &str| g.get(from).is_some_and(|d| d.contains(to));
    assert!(has("apache/request.rs", "apache/conf.rs"), "{:?}", g.get("apache/request.rs"));
    assert!(has("apache/request.rs", "python/wsgi.rs"));
    assert!(has("apache/relay.rs", "daemon/protocol/mod.rs"));
    assert!(has("python/wsgi.rs", "python/state.rs"));
    assert!(has("daemon/server/serve.rs", "daemon/server/shared.rs"));
    assert!(has("lib.rs", "apache/hooks.rs"));
    assert!(has("daemon/protocol/mod.rs", "daemon/protocol/frame.rs"));
    assert!(!g.contains_key("daemon/protocol/test_support.rs"));
    assert!(g.len() > 30, "{} files", g.len());
}

fn pure(rel: &str) -> bool {
    rel.starts_with("config/")
        || rel == "routing.rs"
        || rel == "appgroup.rs"
        || rel == "request_plan.rs"
        || rel.starts_with("daemon/protocol")
        || rel == "daemon/dispatch.rs"
        || rel == "daemon/stop.rs"
        || rel == "proxy_headers.rs"
        || rel == "spool.rs"
        || rel == "collected_body.rs"
        || rel.starts_with("metrics/")
        || rel.starts_with("telemetry/")
}

#[test]
fn pure_layers_name_no_apache_or_python() {
    let mut bad = Vec::new();
    for src in sources().iter().filter(|s| pure(&s.rel)) {
        for word in ["pyo3", "crate::apache", "crate::python", "crate::sys", "wsgi_module"] {
            if src.code.contains(word) {
                bad.push(format!("{} mentions {word}", src.rel));
            }
        }
    }
    // And through the resolved imports: a pure file imports only pure files.
    for (from, deps) in graph() {
        if pure(&from) {
            bad.extend(
                deps.iter().filter(|d| !pure(d) && *d != "daemon/mod.rs").map(|d| format!("{from} imports {d}")),
            );
        }
    }
    assert!(bad.is_empty(), "{bad:#?}");
}

/// Python's C API is called from `src/python/` only: the hosts (Apache's side, the daemon)
/// reach Python through its functions, which keep the attach/GIL rules in one place.
#[test]
fn only_the_python_layer_calls_python() {
    let bad: Vec<String> = sources()
        .iter()
        .filter(|s| !s.rel.starts_with("python/") && s.code.contains("pyo3"))
        .map(|s| format!("{} uses pyo3", s.rel))
        .collect();
    assert!(bad.is_empty(), "{bad:#?}");
}

#[test]
fn imports_run_downward() {
    let rules: &[(&str, &[&str])] = &[
        ("daemon/", &["apache/"]),
        ("python/", &["apache/", "daemon/", "sys/"]),
        ("sys/", &["apache/", "daemon/", "python/", "config/", "routing.rs", "appgroup.rs"]),
        ("config/", &["apache/", "daemon/", "python/", "sys/"]),
    ];
    let mut bad = Vec::new();
    for (from, deps) in graph() {
        for (layer, forbidden) in rules {
            if from.starts_with(layer) {
                for d in &deps {
                    if forbidden.iter().any(|f| d.starts_with(f)) {
                        bad.push(format!("{from} imports {d}"));
                    }
                }
            }
        }
    }
    assert!(bad.is_empty(), "{bad:#?}");
}

#[test]
fn no_file_imports_one_that_imports_it_back() {
    let g = graph();
    // Depth-first search for a cycle; report the first one found.
    fn visit(
        n: &str,
        g: &BTreeMap<String, BTreeSet<String>>,
        state: &mut BTreeMap<String, u8>,
        stack: &mut Vec<String>,
    ) -> Option<Vec<String>> {
        state.insert(n.to_string(), 1);
        stack.push(n.to_string());
        for d in g.get(n).into_iter().flatten() {
            match state.get(d.as_str()).copied().unwrap_or(0) {
                1 => {
                    let at = stack.iter().position(|s| s == d).unwrap();
                    let mut cycle = stack[at..].to_vec();
                    cycle.push(d.clone());
                    return Some(cycle);
                }
                0 => {
                    if let Some(c) = visit(d, g, state, stack) {
                        return Some(c);
                    }
                }
                _ => {}
            }
        }
        stack.pop();
        state.insert(n.to_string(), 2);
        None
    }
    let mut state = BTreeMap::new();
    for n in g.keys() {
        if state.get(n.as_str()).copied().unwrap_or(0) == 0 {
            if let Some(cycle) = visit(n, &g, &mut state, &mut Vec::new()) {
                panic!("import cycle: {}", cycle.join(" -> "));
            }
        }
    }
}

#[test]
fn no_code_file_is_over_700_lines_before_its_tests() {
    let files = rust_files(&Path::new(MANIFEST).join("src"));
    assert!(files.len() > 30);
    let long: Vec<String> = files
        .iter()
        .map(|p| (p, code_lines(p)))
        .filter(|(_, n)| *n > 700)
        .map(|(p, n)| format!("{}: {n} lines", p.strip_prefix(MANIFEST).unwrap().display()))
        .collect();
    assert!(long.is_empty(), "{long:#?}");
}
