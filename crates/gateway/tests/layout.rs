//! The layout rules of `docs/architecture.md`, checked by reading the
//! sources (std only: no parser, just a scanner that knows comments and
//! string literals apart from code).
//!
//! The crates form a line, `protocol ← auth ← core ← gateway`, and inside
//! them the modules form a tree, so each piece can be read, tested and
//! replaced on its own:
//!
//! 1. **No import cycles between modules.** In `sockgate_core`,
//!    `sockgate_engine` and `sockgate`, a top-level module (`src/X.rs` or `src/X/**`) that names
//!    `crate::Y` depends on `Y`; a name the crate root re-exports
//!    (`crate::Gateway`) counts as its module (`gateway`). These
//!    dependencies have no cycle.
//! 2. **`sio` and `http` never import each other**: the Socket.IO layer
//!    and the HTTP API share only the `Gateway`.
//! 3. **The core names no transport**: no socketioxide, axum, hyper, redis,
//!    sqlx, reqwest or clap in `crates/core`, neither in its code nor in its
//!    `[dependencies]`. Concrete backends are named only by the gateway
//!    (`server.rs` wires them).
//! 4. **Event names are spelled once**, in `crates/protocol/src/events.rs`;
//!    everything else uses its constants, so a rename cannot miss a place.
//!    The load generator (`crates/bench`) uses them too, but is not checked:
//!    it names its scenarios after what they do, and one is `echo`.
//!
//! 5. **One door for publishing**: only `crates/core/src/node/` hands a
//!    delivery to the broker (`broker.publish(`, `Broker::publish`, or a
//!    gateway's `emitter.publish(`); every way in (a socket's
//!    `room:publish`, `/api/publish`, the app's replies, the consumers)
//!    calls `Node::publish`, which owns the checks and the idempotency.
//!
//! Comments never count: `// uses crate::http` or "the `room:join` event"
//! in a doc comment is prose, not a dependency.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::fmt;
use std::fs;
use std::path::{Path, PathBuf};

const ROOT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../..");

/// What the core may not name (nor any crate of the same family:
/// `socketioxide-redis`, `axum-server`, `hyper_util`...).
const TRANSPORTS: [&str; 7] = [
    "socketioxide",
    "axum",
    "hyper",
    "redis",
    "sqlx",
    "reqwest",
    "clap",
];

#[test]
fn no_import_cycles_in_core() {
    assert_no_cycles("crates/core/src");
}

#[test]
fn no_import_cycles_in_engine() {
    assert_no_cycles("crates/engine/src");
}

#[test]
fn no_import_cycles_in_gateway() {
    assert_no_cycles("crates/gateway/src");
}

#[test]
fn sio_and_http_never_import_each_other() {
    let graph = ModuleGraph::of("crates/gateway/src");
    assert!(graph.modules.contains("sio") && graph.modules.contains("http"));
    let crossings: Vec<String> = [("sio", "http"), ("http", "sio")]
        .into_iter()
        .filter_map(|(from, to)| Some(format!("{from} -> {to} ({})", graph.edge(from, to)?)))
        .collect();
    assert!(
        crossings.is_empty(),
        "sio/ and http/ must not import each other (they share only the Gateway):\n  {}",
        crossings.join("\n  ")
    );
}

#[test]
fn the_core_code_names_no_transport() {
    let files = rust_files(&Path::new(ROOT).join("crates/core/src"));
    assert!(!files.is_empty());
    let mut found = Vec::new();
    for file in &files {
        let code = blank_comments(&read(file), false);
        for (at, name) in transport_paths(&code) {
            found.push(format!("{}: {name}", Where::new(file, &code, at)));
        }
    }
    assert!(
        found.is_empty(),
        "crates/core names a transport:\n  {}",
        found.join("\n  ")
    );
}

#[test]
fn the_core_depends_on_no_transport() {
    let manifest = read(&Path::new(ROOT).join("crates/core/Cargo.toml"));
    let deps = dependencies(&manifest);
    assert!(
        deps.iter().any(|d| d == "sockgate-auth"),
        "no dependencies read: {deps:?}"
    );
    let banned: Vec<&String> = deps
        .iter()
        .filter(|d| transport_family(d).is_some())
        .collect();
    assert!(
        banned.is_empty(),
        "crates/core/Cargo.toml [dependencies] names a transport: {banned:?}"
    );
}

#[test]
fn event_names_are_spelled_only_in_protocol_events() {
    let events_rs = Path::new(ROOT).join("crates/protocol/src/events.rs");
    let events = event_names(&read(&events_rs));
    assert!(
        events.iter().any(|e| e == "auth:whoami"),
        "no event names read: {events:?}"
    );

    let mut found = Vec::new();
    for krate in sorted_entries(&Path::new(ROOT).join("crates")) {
        if krate.ends_with("bench") {
            continue;
        }
        for file in rust_files(&krate.join("src")) {
            if file == events_rs {
                continue;
            }
            let code = blank_comments(&read(&file), true);
            let mut hits = Vec::new();
            for event in &events {
                let quoted = format!("\"{event}\"");
                hits.extend(code.match_indices(&quoted).map(|(at, _)| (at, event)));
            }
            hits.sort();
            for (at, event) in hits {
                found.push(format!("{}: \"{event}\"", Where::new(&file, &code, at)));
            }
        }
    }
    assert!(
        found.is_empty(),
        "event names spelled outside crates/protocol/src/events.rs \
         (use sockgate_protocol::events):\n  {}",
        found.join("\n  ")
    );
}

#[test]
fn only_the_node_calls_the_broker() {
    let mut found = Vec::new();
    let mut allowed = 0;
    for krate in sorted_entries(&Path::new(ROOT).join("crates")) {
        for file in rust_files(&krate.join("src")) {
            let code = blank_comments(&read(&file), true);
            let in_node = file.starts_with(Path::new(ROOT).join("crates/core/src/node"));
            for (at, _) in broker_calls(&code) {
                if in_node {
                    allowed += 1;
                } else {
                    found.push(Where::new(&file, &code, at).to_string());
                }
            }
        }
    }
    assert!(
        allowed > 0,
        "the node's own call to the broker was not found"
    );
    assert!(
        found.is_empty(),
        "the broker is called outside crates/core/src/node (publish through Node::publish):\n  {}",
        found.join("\n  ")
    );
}

/// Where `code` hands a delivery to a broker.
fn broker_calls(code: &str) -> Vec<(usize, &str)> {
    let mut hits = Vec::new();
    for pattern in ["broker.publish(", "Broker::publish(", "emitter.publish("] {
        hits.extend(code.match_indices(pattern));
    }
    hits.sort();
    hits
}

/// The scanners on small inputs, so that a rule passing means something.
#[test]
fn the_checks_themselves() {
    // Comments go, strings stay (or go), line structure stays.
    let src = "let u = \"http://x\"; // crate::http\n/* crate::sio */ let c = '\"'; r#\"a\"b\"#";
    let code = blank_comments(src, true);
    assert_eq!(code.len(), src.len());
    assert!(code.contains("\"http://x\"") && !code.contains("crate::"));
    assert!(code.contains("'\"'") && code.contains("r#\"a\"b\"#"));
    assert!(!blank_comments(src, false).contains("http://x"));

    // `crate::` paths, groups included.
    let firsts = |code: &str| {
        crate_paths(code)
            .into_iter()
            .map(|(_, m)| m)
            .collect::<Vec<_>>()
    };
    assert_eq!(
        firsts("use crate::{Gateway, http::api, telemetry};"),
        ["Gateway", "http", "telemetry"]
    );
    assert_eq!(
        firsts("crate::sio::serve(); $crate::x; sockgate_crate::y"),
        ["sio", "x"]
    );

    // Root re-exports.
    let modules = ["config", "server"].map(String::from).into();
    let names = root_reexports(
        "pub use config::{Config, Settings as S};\npub use server::run;\npub use other::X;",
        &modules,
    );
    assert_eq!(names.get("S").map(String::as_str), Some("config"));
    assert_eq!(names.get("run").map(String::as_str), Some("server"));
    assert!(!names.contains_key("X"));

    // Broker calls, not mentions.
    assert_eq!(
        broker_calls(&blank_comments(
            "self.broker.publish(out); // emitter.publish(x)",
            true
        ))
        .len(),
        1
    );
    assert_eq!(
        broker_calls(&blank_comments(
            "// broker.publish(x)\nlet b = broker;",
            true
        ))
        .len(),
        0
    );

    // Cycles.
    let mut graph = ModuleGraph::default();
    for (from, to) in [("a", "b"), ("b", "c"), ("c", "a"), ("c", "d")] {
        graph
            .edges
            .entry(from.into())
            .or_default()
            .insert(to.into(), Where::default());
    }
    assert_eq!(graph.cycles(), [["a", "b", "c", "a"]]);
    graph.edges.get_mut("c").unwrap().remove("a");
    assert!(graph.cycles().is_empty());

    // Transport paths, not words.
    let hits = |code: &str| {
        transport_paths(code)
            .into_iter()
            .map(|(_, n)| n)
            .collect::<Vec<_>>()
    };
    assert_eq!(
        hits("use axum::Router; socketioxide_core::X; use clap;"),
        ["axum", "socketioxide_core", "clap"]
    );
    assert!(
        hits("stats.redis; fn redis_up() {} telemetry::redis::up(); let hyper = 1;").is_empty()
    );
    assert_eq!(
        dependencies("[dependencies]\nredis.workspace = true\n[dev-dependencies]\naxum = \"1\""),
        ["redis"]
    );

    // Event names.
    let events = event_names("pub const A: &str = \"room:join\";\npub const ALL: [&str; 1] = [A];");
    assert_eq!(events, ["room:join"]);
}

// --- Rule 1: the module graph --------------------------------------------------

fn assert_no_cycles(src: &str) {
    let graph = ModuleGraph::of(src);
    assert!(
        graph.modules.len() > 5,
        "{src}: modules not found: {:?}",
        graph.modules
    );
    let cycles = graph.cycles();
    let described: Vec<String> = cycles
        .iter()
        .map(|cycle| {
            let evidence: Vec<String> = cycle
                .windows(2)
                .map(|w| {
                    format!(
                        "    {} -> {}: {}",
                        w[0],
                        w[1],
                        graph.edge(&w[0], &w[1]).unwrap()
                    )
                })
                .collect();
            format!("  {}\n{}", cycle.join(" -> "), evidence.join("\n"))
        })
        .collect();
    assert!(
        cycles.is_empty(),
        "{src}: import cycles between modules:\n{}",
        described.join("\n")
    );
}

/// The top-level modules of one crate and who names whom, with where
/// (the first mention of each dependency).
#[derive(Default)]
struct ModuleGraph {
    modules: BTreeSet<String>,
    edges: BTreeMap<String, BTreeMap<String, Where>>,
}

impl ModuleGraph {
    fn of(src: &str) -> ModuleGraph {
        let src = Path::new(ROOT).join(src);
        let files: Vec<(String, PathBuf)> = rust_files(&src)
            .into_iter()
            .filter_map(|file| Some((module_of(&src, &file)?, file)))
            .collect();
        let modules: BTreeSet<String> = files.iter().map(|(m, _)| m.clone()).collect();
        let reexports =
            root_reexports(&blank_comments(&read(&src.join("lib.rs")), false), &modules);

        let mut graph = ModuleGraph {
            modules,
            ..ModuleGraph::default()
        };
        for (module, file) in &files {
            let code = blank_comments(&read(file), false);
            for (at, name) in crate_paths(&code) {
                let target = if graph.modules.contains(&name) {
                    Some(&name)
                } else {
                    reexports.get(&name)
                };
                if let Some(target) = target.filter(|t| *t != module) {
                    graph
                        .edges
                        .entry(module.clone())
                        .or_default()
                        .entry(target.clone())
                        .or_insert_with(|| Where::new(file, &code, at));
                }
            }
        }
        graph
    }

    fn edge(&self, from: &str, to: &str) -> Option<&Where> {
        self.edges.get(from)?.get(to)
    }

    /// The shortest cycle through each module that is on one, each once,
    /// written from its smallest module: `["a", "b", "a"]`.
    fn cycles(&self) -> Vec<Vec<String>> {
        let mut cycles = BTreeSet::new();
        for start in self.edges.keys() {
            // Breadth first from `start` until it is reached again.
            let mut came_from: BTreeMap<&str, &str> = BTreeMap::new();
            let mut queue = VecDeque::from([start.as_str()]);
            'search: while let Some(at) = queue.pop_front() {
                for next in self.edges.get(at).into_iter().flat_map(|e| e.keys()) {
                    if came_from.contains_key(next.as_str()) {
                        continue;
                    }
                    came_from.insert(next, at);
                    if next == start {
                        break 'search;
                    }
                    queue.push_back(next);
                }
            }
            if !came_from.contains_key(start.as_str()) {
                continue;
            }
            let mut cycle = vec![start.clone()];
            let mut at = came_from[start.as_str()];
            while at != start {
                cycle.push(at.to_owned());
                at = came_from[at];
            }
            cycle.reverse(); // now in the order of the edges, ending at `start`
            let smallest = (0..cycle.len()).min_by_key(|&i| &cycle[i]).unwrap();
            cycle.rotate_left(smallest);
            cycle.push(cycle[0].clone());
            cycles.insert(cycle);
        }
        cycles.into_iter().collect()
    }
}

/// `src/X.rs` and `src/X/**` are module `X`; `lib.rs` and `main.rs` are
/// the crate root.
fn module_of(src: &Path, file: &Path) -> Option<String> {
    let first = file.strip_prefix(src).ok()?.components().next()?;
    let first = first.as_os_str().to_str()?;
    match first {
        "lib.rs" | "main.rs" => None,
        _ => Some(first.strip_suffix(".rs").unwrap_or(first).to_owned()),
    }
}

/// The names `lib.rs` re-exports from the crate's own modules, mapped to
/// their module: `pub use config::{Config, Settings};` gives
/// `Config → config` and `Settings → config`.
fn root_reexports(lib: &str, modules: &BTreeSet<String>) -> BTreeMap<String, String> {
    let mut names = BTreeMap::new();
    for statement in lib.split(';') {
        let Some((_, path)) = statement.split_once("pub use ") else {
            continue;
        };
        let path = path.trim();
        let path = path
            .strip_prefix("crate::")
            .or(path.strip_prefix("self::"))
            .unwrap_or(path);
        let module = leading_ident(path);
        if !modules.contains(module) {
            continue; // another crate's item, such as `sockgate_core::Node`
        }
        let items = path.split_once('{').map_or(path, |(_, group)| group);
        for item in items.split([',', '{', '}']) {
            let name = match item.split_once(" as ") {
                Some((_, alias)) => alias.trim(),
                None => item.trim().rsplit("::").next().unwrap_or(""),
            };
            if !name.is_empty() && name != "self" && name != "*" && name != module {
                names.insert(name.to_owned(), module.to_owned());
            }
        }
    }
    names
}

/// The first segment after each `crate::` (each item of a `crate::{...}`
/// group), with its byte offset.
fn crate_paths(code: &str) -> Vec<(usize, String)> {
    let mut found = Vec::new();
    for (at, _) in code.match_indices("crate::") {
        if code[..at].chars().next_back().is_some_and(is_ident_char) {
            continue; // `sockgate_crate::`, not `crate::`
        }
        let after = at + "crate::".len();
        let rest = &code[after..];
        let Some(group) = rest.trim_start().strip_prefix('{') else {
            found.push((at, leading_ident(rest.trim_start()).to_owned()));
            continue;
        };
        // The items of the group, split at its top-level commas.
        let group_start = after + (rest.len() - group.len());
        let (mut start, mut depth) = (group_start, 0);
        for (i, c) in code[group_start..].char_indices() {
            let i = group_start + i;
            match c {
                '{' => depth += 1,
                '}' if depth > 0 => depth -= 1,
                ',' | '}' if depth == 0 => {
                    let item = &code[start..i];
                    let name = leading_ident(item.trim_start());
                    if !name.is_empty() {
                        found.push((
                            start + (item.len() - item.trim_start().len()),
                            name.to_owned(),
                        ));
                    }
                    start = i + 1;
                    if c == '}' {
                        break;
                    }
                }
                _ => {}
            }
        }
    }
    found
}

// --- Rule 3: transports ---------------------------------------------------------

/// Every transport crate named as a path in `code` (comments and strings
/// already blanked): `axum::Router`, `use hyper;`, `extern crate redis;`.
/// A field or function that happens to be called `redis` is not one, nor
/// is a module `redis` further down someone's path.
fn transport_paths(code: &str) -> Vec<(usize, String)> {
    let mut found = Vec::new();
    let mut previous_word = "";
    for (at, word) in words(code) {
        let before = code[..at].trim_end();
        let after = code[at + word.len()..].trim_start();
        let imported = ["use", "crate"].contains(&previous_word) && before.ends_with(previous_word);
        let is_root = !before.ends_with("::") && (after.starts_with("::") || imported);
        if is_root && transport_family(word).is_some() {
            found.push((at, word.to_owned()));
        }
        previous_word = word;
    }
    found
}

/// The transport `name` belongs to: `axum`, `axum-server`, `socketioxide_core`...
fn transport_family(name: &str) -> Option<&'static str> {
    TRANSPORTS.into_iter().find(|t| {
        name.strip_prefix(t)
            .is_some_and(|rest| rest.is_empty() || rest.starts_with(['-', '_']))
    })
}

/// The crates a `Cargo.toml` names in `[dependencies]` (and in
/// `[dependencies.X]` or `[target.'...'.dependencies]`, were there any).
fn dependencies(manifest: &str) -> Vec<String> {
    let mut deps = Vec::new();
    let mut in_dependencies = false;
    for line in manifest.lines().map(str::trim) {
        if let Some(header) = line.strip_prefix('[') {
            let header = header.trim_end_matches(']').trim();
            in_dependencies = header == "dependencies" || header.ends_with(".dependencies");
            if let Some(name) = header.strip_prefix("dependencies.") {
                deps.push(name.trim_matches('"').to_owned());
            }
        } else if in_dependencies
            && !line.starts_with('#')
            && let Some((key, _)) = line.split_once('=')
        {
            let name = key.trim().split('.').next().unwrap_or("");
            deps.push(name.trim_matches('"').to_owned());
        }
    }
    deps
}

// --- Rule 4: event names --------------------------------------------------------

/// The values of the `&str` constants of `events.rs`: `"auth:whoami"`,
/// `"room:join"`... (not the arrays: `ALL`, the reserved prefixes, and
/// Socket.IO's own names).
fn event_names(events_rs: &str) -> Vec<String> {
    blank_comments(events_rs, true)
        .lines()
        .filter_map(|line| line.split_once(": &str = \"")?.1.split_once('"'))
        .map(|(name, _)| name.to_owned())
        .collect()
}

// --- Reading the sources --------------------------------------------------------

/// `src` with its comments blanked out (and, unless `keep_strings`, the
/// contents of its string literals too). Every byte that goes becomes a
/// space and newlines stay, so offsets and line numbers are the file's.
fn blank_comments(src: &str, keep_strings: bool) -> String {
    let b = src.as_bytes();
    let mut out = b.to_vec();
    let mut blank = |from: usize, to: usize| {
        for byte in &mut out[from..to] {
            if *byte != b'\n' {
                *byte = b' ';
            }
        }
    };
    let ident_before = |i: usize| i > 0 && (b[i - 1].is_ascii_alphanumeric() || b[i - 1] == b'_');
    let mut i = 0;
    while i < b.len() {
        let rest = &b[i..];
        if rest.starts_with(b"//") {
            let end = rest
                .iter()
                .position(|&c| c == b'\n')
                .map_or(b.len(), |n| i + n);
            blank(i, end);
            i = end;
        } else if rest.starts_with(b"/*") {
            // Block comments nest in Rust.
            let (mut depth, mut j) = (0, i);
            while j < b.len() {
                if b[j..].starts_with(b"/*") {
                    depth += 1;
                    j += 2;
                } else if b[j..].starts_with(b"*/") {
                    depth -= 1;
                    j += 2;
                    if depth == 0 {
                        break;
                    }
                } else {
                    j += 1;
                }
            }
            blank(i, j);
            i = j;
        } else if b[i] == b'"' {
            // "...", with escapes.
            let mut j = i + 1;
            while j < b.len() && b[j] != b'"' {
                j += if b[j] == b'\\' { 2 } else { 1 };
            }
            let end = (j + 1).min(b.len());
            if !keep_strings {
                blank(i + 1, end - 1);
            }
            i = end;
        } else if b[i] == b'r' && (!ident_before(i) || (b[i - 1] == b'b' && !ident_before(i - 1))) {
            // r"...", r#"..."#, br#"..."#.
            let hashes = rest[1..].iter().take_while(|&&c| c == b'#').count();
            if rest.get(1 + hashes) != Some(&b'"') {
                i += 1;
                continue;
            }
            let open = i + 2 + hashes;
            let close: Vec<u8> = std::iter::once(b'"')
                .chain(std::iter::repeat_n(b'#', hashes))
                .collect();
            let end = b[open..]
                .windows(close.len())
                .position(|w| w == close)
                .map_or(b.len(), |n| open + n);
            if !keep_strings {
                blank(open, end);
            }
            i = (end + close.len()).min(b.len());
        } else if b[i] == b'\'' {
            // A char literal ('x', '\n', '"'), or else a lifetime or label.
            let end = if rest.get(1) == Some(&b'\\') {
                let from = (i + 3).min(b.len());
                b[from..]
                    .iter()
                    .position(|&c| c == b'\'')
                    .map(|n| from + n + 1)
            } else {
                let len = src[i + 1..].chars().next().map_or(1, char::len_utf8);
                (b.get(i + 1 + len) == Some(&b'\'')).then_some(i + 2 + len)
            };
            match end {
                Some(end) => {
                    if !keep_strings {
                        blank(i + 1, end - 1);
                    }
                    i = end;
                }
                None => i += 1,
            }
        } else {
            i += 1;
        }
    }
    String::from_utf8(out).expect("only ASCII bytes were replaced, by spaces")
}

/// The identifiers (and keywords) of `code`, with their byte offsets.
fn words(code: &str) -> impl Iterator<Item = (usize, &str)> {
    let mut at = 0;
    std::iter::from_fn(move || {
        let start = at + code[at..].find(|c: char| c.is_alphabetic() || c == '_')?;
        let len = code[start..]
            .find(|c: char| !is_ident_char(c))
            .unwrap_or(code.len() - start);
        at = start + len;
        Some((start, &code[start..at]))
    })
    .filter(move |&(start, _)| !code[..start].ends_with(|c: char| c.is_ascii_digit()))
}

fn leading_ident(s: &str) -> &str {
    &s[..s.find(|c: char| !is_ident_char(c)).unwrap_or(s.len())]
}

fn is_ident_char(c: char) -> bool {
    c.is_alphanumeric() || c == '_'
}

/// Every `.rs` file under `dir`, in a stable order (none if `dir` is absent).
fn rust_files(dir: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    for entry in sorted_entries(dir) {
        if entry.is_dir() {
            files.extend(rust_files(&entry));
        } else if entry.extension().is_some_and(|e| e == "rs") {
            files.push(entry);
        }
    }
    files
}

fn sorted_entries(dir: &Path) -> Vec<PathBuf> {
    let mut entries: Vec<PathBuf> = match fs::read_dir(dir) {
        Ok(read) => read.map(|e| e.unwrap().path()).collect(),
        Err(_) => Vec::new(),
    };
    entries.sort();
    entries
}

fn read(path: &Path) -> String {
    fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// A place in the sources, `crates/gateway/src/sio/mod.rs:12`.
#[derive(Default)]
struct Where {
    file: String,
    line: usize,
}

impl Where {
    fn new(file: &Path, code: &str, at: usize) -> Where {
        let file = file
            .strip_prefix(ROOT)
            .unwrap_or(file)
            .display()
            .to_string();
        Where {
            file,
            line: code[..at].matches('\n').count() + 1,
        }
    }
}

impl fmt::Display for Where {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.file, self.line)
    }
}
