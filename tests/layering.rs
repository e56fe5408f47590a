//! The layering rule of `src/`, checked on the source text (std only, no compiler help).
//!
//! Every top-level module of `src/` (a file `src/x.rs` or a folder `src/x/`) has a layer in
//! `MODULES` below, and imports only downward:
//!
//! - **core** imports only core;
//! - **domain** services import core and each other, never an adapter or composition;
//! - **adapters** (REST, the socket) import services and core, never each other, and of
//!   composition only the application state handlers receive (`ADAPTERS_MAY_USE`);
//! - **composition** imports anything.
//!
//! An import is any `crate::…` path outside comments and string literals (`use` trees,
//! grouped and nested, and fully qualified paths in code), and a `super::…` path that climbs
//! out of its top-level module. `crate::name` where `name` is not a module is the crate root
//! (`lib`), except for `#[macro_export]` macros, which belong to the module defining them.
//! Besides: no circle between top-level modules, and no file over `MAX_LINES` lines.
//!
//! Known approximation: a file included with `#[path]` is placed by where it lies on disk,
//! which only matters for a `super::` chain that climbs to the crate root.

use std::{
    collections::{BTreeMap, BTreeSet},
    fmt::Write as _,
    fs,
    path::{Path, PathBuf},
};

use Layer::{Adapter, Composition, Core, Domain};

/// The layer of every top-level module of `src/`. Adding, moving or splitting a module means
/// editing this table (one line per module); everything else is derived from it.
const MODULES: &[(&str, Layer)] = &[
    // Core: imports nothing above it.
    ("bus", Core), // the transport: Redis pub/sub or in-process fan-out
    ("config", Core),
    ("connections", Core), // the listener's caps
    ("db", Core),
    ("env", Core), // reading settings from the environment
    ("envelope", Core),
    ("error", Core),  // errors and their codes
    ("frames", Core), // the wire frames: what the event log stores and the socket sends
    ("http", Core),   // http helpers
    ("hub", Core),    // this process's sockets and the fan-out of frames to them, generic
    ("limits", Core),
    ("metrics", Core), // the registry (an endpoint split out of it is an Adapter)
    ("origins", Core),
    ("telemetry", Core),
    // Domain services: core and each other's public API.
    ("accounts", Domain),
    ("auth", Domain),
    ("catalogue", Domain),
    ("chat", Domain),
    ("domain", Domain),
    ("events", Domain),
    ("musicians", Domain),
    ("notifications", Domain),
    ("moderation", Domain), // reports and what administrators do about them
    ("safety", Domain),     // blocks and presence privacy
    // Adapters: services and core, not each other.
    ("api", Adapter),      // REST
    ("realtime", Adapter), // the socket
    // Composition: anything.
    ("cli", Composition),
    ("lib", Composition),
    ("load_fixture", Composition),
    ("main", Composition),
    ("seed", Composition),
    ("startup", Composition),
    ("state", Composition),
];

/// Composition modules that adapters may import all the same: the application state every
/// handler receives. Empty it to forbid adapters any composition module.
const ADAPTERS_MAY_USE: &[&str] = &["state"];

/// The most lines a file under `src/` may have.
const MAX_LINES: usize = 500;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Layer {
    Core,
    Domain,
    Adapter,
    Composition,
}

impl Layer {
    fn name(self) -> &'static str {
        match self {
            Core => "core",
            Domain => "domain",
            Adapter => "adapter",
            Composition => "composition",
        }
    }
}

/// The rules, in the order the report shows them.
const RULE_TABLE: &str = "every top-level module of src/ has exactly one line in MODULES";
const RULE_CORE: &str = "core imports only core";
const RULE_DOMAIN: &str =
    "domain services import only core and other services (never adapters or composition)";
const RULE_ADAPTERS: &str = "adapters (api, realtime, ...) do not import each other";
const RULE_ADAPTER_UP: &str = "adapters import only services and core (and ADAPTERS_MAY_USE)";
const RULE_CYCLE: &str = "no circle between top-level modules";
const RULE_SIZE: &str = "no file under src/ over MAX_LINES lines";
const RULES: &[(&str, &str)] = &[
    (
        RULE_TABLE,
        "add the module to MODULES with its layer, or drop the stale line",
    ),
    (
        RULE_CORE,
        "move what core needs down into core, or the importing code up",
    ),
    (
        RULE_DOMAIN,
        "pass what the service needs as an argument (&PgPool, &Bus, a handle)",
    ),
    (
        RULE_ADAPTERS,
        "move what both adapters share down into a service or core",
    ),
    (
        RULE_ADAPTER_UP,
        "take it from a service or core, or move it down",
    ),
    (
        RULE_CYCLE,
        "remove every edge of one direction (* marks the edges against the layers)",
    ),
    (RULE_SIZE, "split the file by concern"),
];

/// Whether a module of layer `from` may import `to_module` of layer `to`; the broken rule if not.
fn check(from: Layer, to: Layer, to_module: &str) -> Option<&'static str> {
    match (from, to) {
        (Composition, _) | (_, Core) => None,
        (Core, _) => Some(RULE_CORE),
        (Domain, Domain) => None,
        (Domain, _) => Some(RULE_DOMAIN),
        (Adapter, Domain) => None,
        (Adapter, Adapter) => Some(RULE_ADAPTERS),
        (Adapter, Composition) if ADAPTERS_MAY_USE.contains(&to_module) => None,
        (Adapter, Composition) => Some(RULE_ADAPTER_UP),
    }
}

// ---------------------------------------------------------------------------------------
// The main test.

#[test]
fn src_follows_the_layering_rule() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let report = check_tree(&root.join("src"));
    assert!(report.is_empty(), "\n{report}");
}

/// One finding, filed under its rule.
struct Violation {
    rule: &'static str,
    text: String,
}

/// Where a file reaches into another top-level module, and the paths as written there.
#[derive(Clone, Debug)]
struct Site {
    file: String,
    line: usize,
    path: String,
}

/// Checks the whole tree under `src`; answers the report, empty when all is well.
fn check_tree(src: &Path) -> String {
    let mut violations = Vec::new();
    let layers = table(src, &mut violations);

    let mut files = Vec::new();
    collect_rs_files(src, &mut files);
    files.sort();
    let sources: Vec<(String, Vec<String>, String)> = files
        .iter()
        .map(|path| {
            let rel = path.strip_prefix(src).unwrap_or(path);
            let parts: Vec<String> = rel
                .components()
                .map(|c| c.as_os_str().to_string_lossy().into_owned())
                .collect();
            let text = fs::read_to_string(path)
                .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
            (format!("src/{}", parts.join("/")), parts, text)
        })
        .collect();

    let mut macros = BTreeMap::new();
    for (_, parts, text) in &sources {
        for name in exported_macros(text) {
            macros.insert(name, top_module(parts));
        }
    }

    let mut edges: BTreeMap<(String, String), Vec<Site>> = BTreeMap::new();
    for (file, parts, text) in &sources {
        let lines = text.lines().count();
        if lines > MAX_LINES {
            violations.push(Violation {
                rule: RULE_SIZE,
                text: format!("{file}: {lines} lines (MAX_LINES = {MAX_LINES})"),
            });
        }
        let from = top_module(parts);
        // The paths of one line into one module make one site: `crate::chat::{log, store}`.
        let mut by_line: BTreeMap<(usize, String), Vec<String>> = BTreeMap::new();
        for import in imports(text, &module_path(parts)) {
            let to = resolve(&import.target, &layers, &macros);
            if to != from {
                let paths = by_line.entry((import.line, to)).or_default();
                if !paths.contains(&import.path) {
                    paths.push(import.path);
                }
            }
        }
        for ((line, to), paths) in by_line {
            let site = Site {
                file: file.clone(),
                line,
                path: merge_paths(&paths),
            };
            if let Some(rule) = broken_rule(&layers, &from, &to) {
                violations.push(Violation {
                    rule,
                    text: format!(
                        "{}:{}  {}  ({from}: {} -> {to}: {})",
                        site.file,
                        site.line,
                        site.path,
                        layers[&from].name(),
                        layers[&to].name()
                    ),
                });
            }
            edges.entry((from.clone(), to)).or_default().push(site);
        }
    }

    for component in cycles(&edges) {
        let mut text = component.join(" <-> ");
        for ((from, to), sites) in &edges {
            if component.contains(from) && component.contains(to) {
                let shown: Vec<String> = sites
                    .iter()
                    .take(3)
                    .map(|s| format!("{}:{} {}", s.file, s.line, s.path))
                    .collect();
                let more = match sites.len().saturating_sub(3) {
                    0 => String::new(),
                    n => format!("; and {n} more"),
                };
                let mark = if broken_rule(&layers, from, to).is_some() {
                    '*'
                } else {
                    ' '
                };
                let _ = write!(
                    text,
                    "\n      {mark} {from} -> {to} ({}{more})",
                    shown.join("; ")
                );
            }
        }
        violations.push(Violation {
            rule: RULE_CYCLE,
            text,
        });
    }

    render(&violations)
}

/// The rule an import from module `from` into module `to` breaks, if any (none when either
/// is missing from the table: that is reported on its own).
fn broken_rule(layers: &BTreeMap<String, Layer>, from: &str, to: &str) -> Option<&'static str> {
    match (layers.get(from), layers.get(to)) {
        (Some(&from_layer), Some(&to_layer)) if from != to => check(from_layer, to_layer, to),
        _ => None,
    }
}

/// Several paths as one use tree: `[crate::a::B, crate::a::c::D]` -> `crate::a::{B, c::D}`.
fn merge_paths(paths: &[String]) -> String {
    if paths.len() < 2 {
        return paths.concat();
    }
    let split: Vec<Vec<&str>> = paths.iter().map(|p| p.split("::").collect()).collect();
    let mut common = 0;
    while split
        .iter()
        .all(|s| s.len() > common && s[common] == split[0][common])
    {
        common += 1;
    }
    let rest: Vec<String> = split
        .iter()
        .map(|s| match s[common..].join("::") {
            r if r.is_empty() => "self".to_owned(),
            r => r,
        })
        .collect();
    format!("{}::{{{}}}", split[0][..common].join("::"), rest.join(", "))
}

/// The table as a map, checked against the modules that exist under `src`.
fn table(src: &Path, violations: &mut Vec<Violation>) -> BTreeMap<String, Layer> {
    let mut layers = BTreeMap::new();
    for &(name, layer) in MODULES {
        if layers.insert(name.to_owned(), layer).is_some() {
            violations.push(Violation {
                rule: RULE_TABLE,
                text: format!("MODULES lists `{name}` twice: keep one line"),
            });
        }
    }
    let entries =
        fs::read_dir(src).unwrap_or_else(|e| panic!("cannot list {}: {e}", src.display()));
    let mut present = BTreeMap::new();
    for entry in entries {
        let path = entry
            .unwrap_or_else(|e| panic!("cannot list {}: {e}", src.display()))
            .path();
        let Some(name) = path.file_name().map(|n| n.to_string_lossy().into_owned()) else {
            continue;
        };
        if path.is_dir() {
            present.insert(name.clone(), format!("src/{name}/"));
        } else if let Some(stem) = name.strip_suffix(".rs") {
            present.insert(stem.to_owned(), format!("src/{name}"));
        }
    }
    for (name, shown) in &present {
        if !layers.contains_key(name) {
            violations.push(Violation {
                rule: RULE_TABLE,
                text: format!(
                    "{shown}: top-level module `{name}` is not in MODULES: \
                     add it to the table with its layer"
                ),
            });
        }
    }
    for name in layers.keys() {
        if !present.contains_key(name) {
            violations.push(Violation {
                rule: RULE_TABLE,
                text: format!(
                    "MODULES lists `{name}` but there is no src/{name}.rs or src/{name}/: \
                     remove the line"
                ),
            });
        }
    }
    layers
}

fn collect_rs_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let entries =
        fs::read_dir(dir).unwrap_or_else(|e| panic!("cannot list {}: {e}", dir.display()));
    for entry in entries {
        let path = entry
            .unwrap_or_else(|e| panic!("cannot list {}: {e}", dir.display()))
            .path();
        if path.is_dir() {
            collect_rs_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// `["chat", "store.rs"]` -> `chat`; `["lib.rs"]` -> `lib`.
fn top_module(parts: &[String]) -> String {
    let first = parts.first().map_or("", String::as_str);
    first.strip_suffix(".rs").unwrap_or(first).to_owned()
}

/// The module a file is, below the crate root: `chat/store.rs` -> `[chat, store]`,
/// `chat/mod.rs` -> `[chat]`, `lib.rs` -> `[]`.
fn module_path(parts: &[String]) -> Vec<String> {
    let mut path: Vec<String> = parts
        .iter()
        .map(|p| p.strip_suffix(".rs").unwrap_or(p).to_owned())
        .collect();
    if parts.len() == 1 && matches!(path[0].as_str(), "lib" | "main") {
        path.clear();
    } else if path.last().is_some_and(|p| p == "mod") {
        path.pop();
    }
    path
}

/// The top-level module the first segment after `crate::` names.
fn resolve(
    target: &str,
    layers: &BTreeMap<String, Layer>,
    macros: &BTreeMap<String, String>,
) -> String {
    if layers.contains_key(target) {
        target.to_owned()
    } else if let Some(module) = macros.get(target) {
        module.clone()
    } else {
        "lib".to_owned()
    }
}

/// The report, grouped by rule; empty when there is nothing to report.
fn render(violations: &[Violation]) -> String {
    if violations.is_empty() {
        return String::new();
    }
    let mut out = format!(
        "{} layering violation(s) in src/ (the rules and the module table: tests/layering.rs)\n",
        violations.len()
    );
    for (rule, fix) in RULES {
        let found: Vec<&Violation> = violations.iter().filter(|v| v.rule == *rule).collect();
        if found.is_empty() {
            continue;
        }
        let _ = write!(out, "\n== {rule} ({}) -- fix: {fix}\n", found.len());
        for v in found {
            let _ = writeln!(out, "    {}", v.text);
        }
    }
    out
}

/// The strongly connected components of more than one module (Tarjan), each sorted.
fn cycles(edges: &BTreeMap<(String, String), Vec<Site>>) -> Vec<Vec<String>> {
    struct Tarjan<'a> {
        next: BTreeMap<&'a str, Vec<&'a str>>,
        index: BTreeMap<&'a str, usize>,
        low: BTreeMap<&'a str, usize>,
        stack: Vec<&'a str>,
        on_stack: BTreeSet<&'a str>,
        found: Vec<Vec<String>>,
    }
    impl<'a> Tarjan<'a> {
        fn visit(&mut self, v: &'a str) {
            let i = self.index.len();
            self.index.insert(v, i);
            self.low.insert(v, i);
            self.stack.push(v);
            self.on_stack.insert(v);
            for w in self.next.get(v).cloned().unwrap_or_default() {
                if !self.index.contains_key(w) {
                    self.visit(w);
                    let low = self.low[v].min(self.low[w]);
                    self.low.insert(v, low);
                } else if self.on_stack.contains(w) {
                    let low = self.low[v].min(self.index[w]);
                    self.low.insert(v, low);
                }
            }
            if self.low[v] == self.index[v] {
                let mut component = Vec::new();
                while let Some(w) = self.stack.pop() {
                    self.on_stack.remove(w);
                    component.push(w.to_owned());
                    if w == v {
                        break;
                    }
                }
                if component.len() > 1 {
                    component.sort();
                    self.found.push(component);
                }
            }
        }
    }
    let mut t = Tarjan {
        next: BTreeMap::new(),
        index: BTreeMap::new(),
        low: BTreeMap::new(),
        stack: Vec::new(),
        on_stack: BTreeSet::new(),
        found: Vec::new(),
    };
    for (from, to) in edges.keys() {
        t.next.entry(from.as_str()).or_default().push(to.as_str());
        t.next.entry(to.as_str()).or_default();
    }
    let nodes: Vec<&str> = t.next.keys().copied().collect();
    for v in nodes {
        if !t.index.contains_key(v) {
            t.visit(v);
        }
    }
    t.found.sort();
    t.found
}

// ---------------------------------------------------------------------------------------
// The parser: comments and literals blanked out, a few tokens, `use` trees.

/// One path into another module: its line, the path as written, and the first segment after
/// `crate::` (or after the `super::` chain that reaches the crate root).
#[derive(Debug, PartialEq)]
struct Import {
    line: usize,
    path: String,
    target: String,
}

/// `source` with comments (doc comments too), string, byte-string, raw-string and character
/// literals replaced by spaces; newlines are kept, so line numbers stay right.
fn strip(source: &str) -> String {
    let c: Vec<char> = source.chars().collect();
    let mut out = String::with_capacity(source.len());
    let blank = |out: &mut String, chars: &[char]| {
        for &ch in chars {
            out.push(if ch == '\n' { '\n' } else { ' ' });
        }
    };
    let mut i = 0;
    while i < c.len() {
        let end = match (c[i], c.get(i + 1).copied()) {
            ('/', Some('/')) => c[i..]
                .iter()
                .position(|&ch| ch == '\n')
                .map_or(c.len(), |p| i + p),
            ('/', Some('*')) => block_comment_end(&c, i),
            ('r', _) => raw_string_end(&c, i).unwrap_or(i),
            ('"', _) => string_end(&c, i + 1),
            ('\'', _) => char_literal_end(&c, i).unwrap_or(i),
            _ => i,
        };
        if end > i {
            blank(&mut out, &c[i..end]);
            i = end;
        } else {
            out.push(c[i]);
            i += 1;
        }
    }
    out
}

fn is_ident_char(ch: char) -> bool {
    ch.is_alphanumeric() || ch == '_'
}

/// After the `*/` that closes the (nestable) block comment opening at `i`.
fn block_comment_end(c: &[char], mut i: usize) -> usize {
    let mut depth = 0;
    while i < c.len() {
        match (c[i], c.get(i + 1).copied()) {
            ('/', Some('*')) => {
                depth += 1;
                i += 2;
            }
            ('*', Some('/')) => {
                depth -= 1;
                i += 2;
                if depth == 0 {
                    return i;
                }
            }
            _ => i += 1,
        }
    }
    c.len()
}

/// After the closing quote of a string whose content starts at `i`.
fn string_end(c: &[char], mut i: usize) -> usize {
    while i < c.len() {
        match c[i] {
            '\\' => i += 2,
            '"' => return i + 1,
            _ => i += 1,
        }
    }
    c.len()
}

/// After the raw string (`r"…"`, `r#"…"#`, also after `b`/`c`) starting at the `r` at `i`.
fn raw_string_end(c: &[char], i: usize) -> Option<usize> {
    let starts_word = match i.checked_sub(1).map(|p| c[p]) {
        None => true,
        Some('b' | 'c') => i < 2 || !is_ident_char(c[i - 2]),
        Some(p) => !is_ident_char(p),
    };
    if !starts_word {
        return None;
    }
    let hashes = c[i + 1..].iter().take_while(|&&ch| ch == '#').count();
    if c.get(i + 1 + hashes) != Some(&'"') {
        return None;
    }
    let mut j = i + 2 + hashes;
    while j < c.len() {
        if c[j] == '"'
            && c[j + 1..]
                .iter()
                .take(hashes)
                .filter(|&&ch| ch == '#')
                .count()
                == hashes
        {
            return Some(j + 1 + hashes);
        }
        j += 1;
    }
    Some(c.len())
}

/// After the character literal starting at the quote at `i`; `None` for a lifetime or label.
fn char_literal_end(c: &[char], i: usize) -> Option<usize> {
    match (c.get(i + 1), c.get(i + 2)) {
        (Some('\\'), _) => {
            // `'\n'`, `'\''`, `'\u{1F600}'`: the closing quote comes after the escaped char.
            let rest = c.get(i + 3..)?;
            rest.iter()
                .take(10)
                .position(|&ch| ch == '\'')
                .map(|p| i + 3 + p + 1)
        }
        (Some(&ch), Some('\'')) if ch != '\'' => Some(i + 3),
        _ => None,
    }
}

#[derive(Debug, PartialEq)]
enum Tok {
    Ident(String),
    /// `::`
    Sep,
    Punct(char),
}

struct Token {
    tok: Tok,
    line: usize,
}

/// Identifiers (and numbers), `::` and single punctuation, with their 1-based line.
fn tokenize(stripped: &str) -> Vec<Token> {
    let c: Vec<char> = stripped.chars().collect();
    let mut out = Vec::new();
    let mut line = 1;
    let mut i = 0;
    while i < c.len() {
        let ch = c[i];
        if ch == '\n' {
            line += 1;
            i += 1;
        } else if ch.is_whitespace() {
            i += 1;
        } else if is_ident_char(ch) {
            // `r#type` is the identifier `type`.
            if ch == 'r'
                && c.get(i + 1) == Some(&'#')
                && c.get(i + 2).is_some_and(|&n| is_ident_char(n))
            {
                i += 2;
            }
            let start = i;
            while i < c.len() && is_ident_char(c[i]) {
                i += 1;
            }
            out.push(Token {
                tok: Tok::Ident(c[start..i].iter().collect()),
                line,
            });
        } else if ch == ':' && c.get(i + 1) == Some(&':') {
            out.push(Token {
                tok: Tok::Sep,
                line,
            });
            i += 2;
        } else {
            out.push(Token {
                tok: Tok::Punct(ch),
                line,
            });
            i += 1;
        }
    }
    out
}

fn is_ident(t: Option<&Token>, name: &str) -> bool {
    matches!(t, Some(Token { tok: Tok::Ident(n), .. }) if n == name)
}

fn is_tok(t: Option<&Token>, tok: &Tok) -> bool {
    t.is_some_and(|t| t.tok == *tok)
}

/// A path being read: its segments with the line of each.
type Segments = Vec<(String, usize)>;

/// Reads the use tree (or plain path) at `i` below `prefix`, pushing one leaf per path it
/// names; answers the index after it.
fn parse_tree(
    toks: &[Token],
    i: usize,
    prefix: &[(String, usize)],
    out: &mut Vec<Segments>,
) -> usize {
    let skip_alias = |j: usize| {
        if is_ident(toks.get(j), "as") {
            j + 2
        } else {
            j
        }
    };
    match toks.get(i).map(|t| &t.tok) {
        Some(Tok::Punct('{')) => {
            let mut j = i + 1;
            loop {
                match toks.get(j).map(|t| &t.tok) {
                    None => return j,
                    Some(Tok::Punct('}')) => return j + 1,
                    Some(Tok::Punct(',')) => j += 1,
                    Some(Tok::Ident(n)) if n == "self" => {
                        out.push(prefix.to_vec());
                        j = skip_alias(j + 1);
                    }
                    Some(_) => j = parse_tree(toks, j, prefix, out).max(j + 1),
                }
            }
        }
        Some(Tok::Punct('*')) => {
            let mut leaf = prefix.to_vec();
            leaf.push(("*".to_owned(), toks[i].line));
            out.push(leaf);
            i + 1
        }
        Some(Tok::Ident(name)) => {
            let mut leaf = prefix.to_vec();
            leaf.push((name.clone(), toks[i].line));
            let continues = is_tok(toks.get(i + 1), &Tok::Sep)
                && toks.get(i + 2).is_some_and(|t| {
                    matches!(t.tok, Tok::Ident(_) | Tok::Punct('{') | Tok::Punct('*'))
                });
            if continues {
                parse_tree(toks, i + 2, &leaf, out)
            } else {
                out.push(leaf);
                skip_alias(i + 1)
            }
        }
        _ => {
            out.push(prefix.to_vec());
            i
        }
    }
}

/// Every path in `source` that leaves the module at `module_path` for another top-level
/// module: `crate::…` anywhere, and `super::…` chains that climb to the crate root.
fn imports(source: &str, module_path: &[String]) -> Vec<Import> {
    let toks = tokenize(&strip(source));
    let mut found = Vec::new();
    let mut record = |leaves: Vec<Segments>, root_len: usize| {
        for leaf in leaves {
            // `crate::{self}` or a bare `super::…` root names the crate root itself.
            let (target, line) = match (leaf.get(root_len), leaf.last()) {
                (Some((segment, line)), _) => (segment.clone(), *line),
                (None, last) => ("self".to_owned(), last.map_or(0, |(_, line)| *line)),
            };
            let path = leaf
                .iter()
                .map(|(s, _)| s.as_str())
                .collect::<Vec<_>>()
                .join("::");
            found.push(Import { line, path, target });
        }
    };
    // Inline modules (`mod tests { … }`) deepen `super::`: their names and brace depths.
    let mut inline: Vec<(String, usize)> = Vec::new();
    let mut depth = 0;
    let mut i = 0;
    while i < toks.len() {
        let prev = i.checked_sub(1).and_then(|p| toks.get(p));
        match &toks[i].tok {
            Tok::Punct('{') => depth += 1,
            Tok::Punct('}') => {
                if inline.last().is_some_and(|m| m.1 == depth) {
                    inline.pop();
                }
                depth = depth.saturating_sub(1);
            }
            Tok::Ident(kw) if kw == "mod" => {
                if let Some(Token {
                    tok: Tok::Ident(name),
                    ..
                }) = toks.get(i + 1)
                    && is_tok(toks.get(i + 2), &Tok::Punct('{'))
                {
                    inline.push((name.clone(), depth + 1));
                    i += 2;
                    continue;
                }
            }
            Tok::Ident(kw)
                if kw == "crate"
                    && is_tok(toks.get(i + 1), &Tok::Sep)
                    && !is_tok(prev, &Tok::Punct('$'))
                    && !is_tok(prev, &Tok::Sep) =>
            {
                let root = vec![("crate".to_owned(), toks[i].line)];
                let mut leaves = Vec::new();
                let next = parse_tree(&toks, i + 2, &root, &mut leaves);
                record(leaves, 1);
                i = next.max(i + 1);
                continue;
            }
            Tok::Ident(kw)
                if kw == "super"
                    && is_tok(toks.get(i + 1), &Tok::Sep)
                    && !is_tok(prev, &Tok::Sep) =>
            {
                let mut root = Vec::new();
                let mut j = i;
                while is_ident(toks.get(j), "super") && is_tok(toks.get(j + 1), &Tok::Sep) {
                    root.push(("super".to_owned(), toks[j].line));
                    j += 2;
                }
                let mut leaves = Vec::new();
                let next = parse_tree(&toks, j, &root, &mut leaves);
                // Only a chain that climbs exactly to the crate root leaves the module.
                if root.len() == module_path.len() + inline.len() {
                    record(leaves, root.len());
                }
                i = next.max(i + 1);
                continue;
            }
            _ => {}
        }
        i += 1;
    }
    found
}

/// The names of the `#[macro_export]` macros in `source` (they live at the crate root).
fn exported_macros(source: &str) -> Vec<String> {
    let toks = tokenize(&strip(source));
    let mut names = Vec::new();
    let mut exported = false;
    for (i, t) in toks.iter().enumerate() {
        if t.tok == Tok::Ident("macro_export".to_owned()) {
            exported = true;
        } else if exported
            && t.tok == Tok::Ident("macro_rules".to_owned())
            && is_tok(toks.get(i + 1), &Tok::Punct('!'))
            && let Some(Token {
                tok: Tok::Ident(name),
                ..
            }) = toks.get(i + 2)
        {
            names.push(name.clone());
            exported = false;
        }
    }
    names
}

// ---------------------------------------------------------------------------------------
// Tests of the parser and the checks, on small inputs.

mod parser {
    use super::*;

    fn at_root(source: &str) -> Vec<(usize, String, String)> {
        in_module(source, &["x"])
    }

    fn in_module(source: &str, module: &[&str]) -> Vec<(usize, String, String)> {
        let module: Vec<String> = module.iter().map(|s| (*s).to_owned()).collect();
        imports(source, &module)
            .into_iter()
            .map(|i| (i.line, i.path, i.target))
            .collect()
    }

    fn imp(line: usize, path: &str, target: &str) -> (usize, String, String) {
        (line, path.to_owned(), target.to_owned())
    }

    #[test]
    fn simple_and_aliased_use() {
        assert_eq!(
            at_root("use crate::error::ApiError;\npub use crate::bus::Bus as B;"),
            vec![
                imp(1, "crate::error::ApiError", "error"),
                imp(2, "crate::bus::Bus", "bus"),
            ]
        );
    }

    #[test]
    fn grouped_and_nested_use() {
        assert_eq!(
            at_root("use crate::{a::X, b, c::{self, d::{E, F as G}, h::*}};"),
            vec![
                imp(1, "crate::a::X", "a"),
                imp(1, "crate::b", "b"),
                imp(1, "crate::c", "c"),
                imp(1, "crate::c::d::E", "c"),
                imp(1, "crate::c::d::F", "c"),
                imp(1, "crate::c::h::*", "c"),
            ]
        );
    }

    #[test]
    fn multi_line_use_reports_the_line_of_each_module() {
        let source = "use std::fmt;\n\nuse crate::{\n    bus::Bus,\n    realtime::{\n        frames::ServerFrame,\n    },\n};\n";
        assert_eq!(
            at_root(source),
            vec![
                imp(4, "crate::bus::Bus", "bus"),
                imp(5, "crate::realtime::frames::ServerFrame", "realtime"),
            ]
        );
    }

    #[test]
    fn comments_and_literals_are_not_code() {
        let source = r##"
//! Module doc: uses crate::api::x.
/// Doc: see [`crate::realtime::Hub`].
// use crate::state::AppState;
/* block crate::seed /* nested crate::cli */ still crate::startup */
const S: &str = "crate::api::y \" crate::api::z";
const R: &str = r#"crate::api::raw "quoted" crate::api::w"#;
const B: &[u8] = br"crate::api::bytes";
const Q: char = '"';
fn f<'a>(x: &'a str) -> &'a str { crate::real::g(x) }
"##;
        assert_eq!(at_root(source), vec![imp(10, "crate::real::g", "real")]);
    }

    #[test]
    fn char_literals_do_not_open_strings() {
        let source = "let a = '\\''; let b = b'\"'; let c = crate::one::f();\nlet d = \"x\"; crate::two::g();";
        assert_eq!(
            at_root(source),
            vec![
                imp(1, "crate::one::f", "one"),
                imp(2, "crate::two::g", "two")
            ]
        );
    }

    #[test]
    fn paths_in_expressions_types_and_attributes() {
        let source = "fn f() -> crate::a::T {\n    let v = crate::b::C::<u8>::new() + crate::c::f(1);\n    <crate::d::E as Tr>::g()\n}\n#[oai(tag = crate::e::Tags::X)]";
        assert_eq!(
            at_root(source),
            vec![
                imp(1, "crate::a::T", "a"),
                imp(2, "crate::b::C", "b"),
                imp(2, "crate::c::f", "c"),
                imp(3, "crate::d::E", "d"),
                imp(5, "crate::e::Tags::X", "e"),
            ]
        );
    }

    #[test]
    fn macro_crate_and_visibility_are_not_imports() {
        let source = "pub(crate) fn f() {}\nmacro_rules! m { () => { $crate::api::x() } }\nextern crate alloc;";
        assert_eq!(at_root(source), vec![]);
    }

    #[test]
    fn super_inside_a_module_stays_inside() {
        let source = "use super::{Role, store};\nfn f() { super::super::x::g() }";
        assert_eq!(in_module(source, &["auth", "guard", "inner"]), vec![]);
        assert_eq!(in_module("use super::Role;", &["auth", "guard"]), vec![]);
    }

    #[test]
    fn super_climbing_to_the_crate_root_is_an_import() {
        assert_eq!(
            in_module("use super::chat::Message;", &["realtime"]),
            vec![imp(1, "super::chat::Message", "chat")]
        );
        assert_eq!(
            in_module("fn f() { super::super::api::x() }", &["realtime", "hub"]),
            vec![imp(1, "super::super::api::x", "api")]
        );
    }

    #[test]
    fn inline_modules_deepen_super() {
        let source = "mod tests {\n    use super::*;\n    mod deeper { use super::super::Y; }\n}\nuse super::z::W;";
        assert_eq!(in_module(source, &["x"]), vec![imp(5, "super::z::W", "z")]);
    }

    #[test]
    fn exported_macros_are_found() {
        let source = "/// Doc.\n#[macro_export]\nmacro_rules! error_set { () => {} }\nmacro_rules! local { () => {} }";
        assert_eq!(exported_macros(source), vec!["error_set".to_owned()]);
    }

    #[test]
    fn paths_of_one_line_merge_into_a_tree() {
        let merge = |paths: &[&str]| {
            merge_paths(&paths.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>())
        };
        assert_eq!(merge(&["crate::a::B"]), "crate::a::B");
        assert_eq!(
            merge(&["crate::a::B", "crate::a::c::D"]),
            "crate::a::{B, c::D}"
        );
        assert_eq!(
            merge(&["crate::chat", "crate::chat::store"]),
            "crate::chat::{self, store}"
        );
    }

    #[test]
    fn module_paths() {
        let p = |parts: &[&str]| {
            module_path(&parts.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>())
        };
        assert_eq!(p(&["lib.rs"]), Vec::<String>::new());
        assert_eq!(p(&["chat.rs"]), vec!["chat"]);
        assert_eq!(p(&["chat", "mod.rs"]), vec!["chat"]);
        assert_eq!(p(&["chat", "store.rs"]), vec!["chat", "store"]);
    }

    #[test]
    fn the_rules() {
        assert_eq!(check(Core, Core, "db"), None);
        assert_eq!(check(Core, Domain, "chat"), Some(RULE_CORE));
        assert_eq!(check(Domain, Domain, "chat"), None);
        assert_eq!(check(Domain, Adapter, "realtime"), Some(RULE_DOMAIN));
        assert_eq!(check(Domain, Composition, "state"), Some(RULE_DOMAIN));
        assert_eq!(check(Adapter, Domain, "chat"), None);
        assert_eq!(check(Adapter, Adapter, "realtime"), Some(RULE_ADAPTERS));
        assert_eq!(check(Adapter, Composition, "state"), None);
        assert_eq!(
            check(Adapter, Composition, "startup"),
            Some(RULE_ADAPTER_UP)
        );
        assert_eq!(check(Composition, Adapter, "api"), None);
    }

    #[test]
    fn cycles_are_the_components_of_more_than_one_module() {
        let site = || Site {
            file: String::new(),
            line: 1,
            path: String::new(),
        };
        let edges: BTreeMap<(String, String), Vec<Site>> = [
            ("a", "b"),
            ("b", "c"),
            ("c", "a"),
            ("c", "d"),
            ("d", "e"),
            ("e", "d"),
            ("f", "a"),
        ]
        .into_iter()
        .map(|(x, y)| ((x.to_owned(), y.to_owned()), vec![site()]))
        .collect();
        assert_eq!(cycles(&edges), vec![vec!["a", "b", "c"], vec!["d", "e"]]);
    }

    #[test]
    fn a_small_tree_is_reported_by_rule() {
        let dir = std::env::temp_dir().join(format!("layering-test-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(dir.join("chat")).expect("temp dir");
        fs::create_dir_all(dir.join("realtime")).expect("temp dir");
        let write = |path: &str, text: &str| fs::write(dir.join(path), text).expect("write");
        write(
            "lib.rs",
            "pub mod chat;\npub mod realtime;\npub mod error;\npub mod gizmo;",
        );
        write("error.rs", "use crate::chat::Message;\n");
        write("gizmo.rs", "");
        write("chat/mod.rs", "pub mod store;\n");
        write(
            "chat/store.rs",
            "\n\nuse crate::{error::ApiError, realtime::frames};\n",
        );
        write(
            "realtime/mod.rs",
            &"use crate::chat::Message;\n".repeat(MAX_LINES + 1),
        );
        let report = check_tree(&dir);
        let _ = fs::remove_dir_all(&dir);
        for expected in [
            "src/gizmo.rs: top-level module `gizmo` is not in MODULES",
            "== core imports only core (1)",
            "src/error.rs:1  crate::chat::Message  (error: core -> chat: domain)",
            "src/chat/store.rs:3  crate::realtime::frames  (chat: domain -> realtime: adapter)",
            "chat <-> error <-> realtime",
            "chat -> realtime (src/chat/store.rs:3 crate::realtime::frames)",
            "src/realtime/mod.rs: 501 lines",
            "MODULES lists `state` but there is no src/state.rs or src/state/",
        ] {
            assert!(
                report.contains(expected),
                "missing {expected:?} in:\n{report}"
            );
        }
    }
}
