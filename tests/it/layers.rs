//! The folder tree is the architecture (`src/lib.rs`, ARCHITECTURE.md): this test reads the
//! sources and fails when an import breaks it — a module cycle, a layer that uses a layer
//! below it in the list, the engine touching IO crates, or a file grown past 800 lines of code.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// The layers, in the one direction a line travels: each may use those before it only.
const LAYERS: [&str; 6] = ["engine", "source", "render", "store", "delivery", "app"];

/// Crates the pure core must not use: files, sockets, clocks and runtimes live in the shell.
const NOT_IN_THE_ENGINE: [&str; 8] = [
    "std::fs", "std::net", "tokio", "rusqlite", "reqwest", "lettre", "notify", "Utc::now",
];

const MAX_CODE_LINES: usize = 800;

struct File {
    /// `engine::parse::haproxy`, `app::daemon` (for `mod.rs`).
    module: String,
    /// The code outside `#[cfg(test)]` modules, without comments.
    code: String,
}

fn files() -> Vec<File> {
    fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
        for e in std::fs::read_dir(dir).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                walk(&p, out);
            } else if p.extension().is_some_and(|x| x == "rs") {
                out.push(p);
            }
        }
    }
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut paths = Vec::new();
    walk(&src, &mut paths);
    paths
        .into_iter()
        .map(|p| {
            let rel = p.strip_prefix(&src).unwrap().with_extension("");
            let mut parts: Vec<String> = rel
                .iter()
                .map(|s| s.to_string_lossy().into_owned())
                .collect();
            if parts.last().is_some_and(|l| l == "mod") {
                parts.pop();
            }
            let text = std::fs::read_to_string(&p).unwrap();
            let text = match text.find("#[cfg(test)]\nmod ") {
                Some(i) => &text[..i],
                None => &text[..],
            };
            let code: Vec<&str> = text
                .lines()
                .filter(|l| {
                    let t = l.trim();
                    !t.is_empty() && !t.starts_with("//")
                })
                .collect();
            File {
                module: parts.join("::"),
                code: code.join("\n"),
            }
        })
        .collect()
}

/// The modules a file names: `crate::a::b::…` paths and `use crate::{a::b, c}` groups,
/// resolved to the longest module that exists.
fn uses(f: &File, modules: &BTreeSet<String>) -> BTreeSet<String> {
    let mut paths: Vec<String> = Vec::new();
    let code = &f.code;
    let mut rest = code.as_str();
    while let Some(i) = rest.find("crate::") {
        rest = &rest[i + 7..];
        if let Some(group) = rest.strip_prefix('{') {
            let end = group.find('}').unwrap_or(group.len());
            for item in group[..end].split(',') {
                paths.push(item.trim().to_string());
            }
            continue;
        }
        let end = rest
            .find(|c: char| !(c.is_alphanumeric() || c == '_' || c == ':'))
            .unwrap_or(rest.len());
        let path = &rest[..end];
        if let Some(prefix) = path.strip_suffix("::") {
            // `use crate::a::{b, c}`
            let group = &rest[end..];
            if let Some(g) = group.strip_prefix('{') {
                let close = g.find('}').unwrap_or(g.len());
                for item in g[..close].split(',') {
                    paths.push(format!("{prefix}::{}", item.trim()));
                }
            }
        } else {
            paths.push(path.to_string());
        }
    }
    let mut out = BTreeSet::new();
    for p in paths {
        let segs: Vec<&str> = p.split("::").filter(|s| !s.is_empty()).collect();
        let mut best = None;
        for n in 1..=segs.len() {
            let m = segs[..n].join("::");
            if modules.contains(&m) {
                best = Some(m);
            }
        }
        if let Some(m) = best
            && m != f.module
            && !f.module.starts_with(&format!("{m}::"))
            && !m.starts_with(&format!("{}::", f.module))
        {
            out.insert(m);
        }
    }
    out
}

fn layer(module: &str) -> Option<usize> {
    let top = module.split("::").next()?;
    LAYERS.iter().position(|l| *l == top)
}

#[test]
fn the_module_tree_has_no_cycle_and_every_layer_uses_only_those_before_it() {
    let files = files();
    let modules: BTreeSet<String> = files.iter().map(|f| f.module.clone()).collect();
    for l in LAYERS {
        assert!(modules.contains(l), "the layer {l} is missing from src/");
    }
    let graph: BTreeMap<String, BTreeSet<String>> = files
        .iter()
        .map(|f| (f.module.clone(), uses(f, &modules)))
        .collect();
    // The parser finds what it must: the daemon uses the store, the engine's pipeline the
    // detector (so an empty graph cannot pass).
    assert!(
        graph["app::daemon"].contains("store"),
        "{:?}",
        graph["app::daemon"]
    );
    assert!(graph["engine::pipeline"].contains("engine::detect"));

    let mut wrong = Vec::new();
    for (m, deps) in &graph {
        let Some(mine) = layer(m) else { continue };
        for d in deps {
            if layer(d).is_some_and(|theirs| theirs > mine) {
                wrong.push(format!("{m} uses {d}"));
            }
        }
    }
    assert!(
        wrong.is_empty(),
        "layers used from below (order: {LAYERS:?}):\n{}",
        wrong.join("\n")
    );

    // Cycles: Tarjan's strongly connected components.
    struct Tarjan<'a> {
        graph: &'a BTreeMap<String, BTreeSet<String>>,
        index: BTreeMap<&'a str, usize>,
        low: BTreeMap<&'a str, usize>,
        stack: Vec<&'a str>,
        on: BTreeSet<&'a str>,
        cycles: Vec<Vec<&'a str>>,
    }
    impl<'a> Tarjan<'a> {
        fn visit(&mut self, v: &'a str) {
            let n = self.index.len();
            self.index.insert(v, n);
            self.low.insert(v, n);
            self.stack.push(v);
            self.on.insert(v);
            for w in self.graph.get(v).into_iter().flatten() {
                let w = w.as_str();
                if !self.index.contains_key(w) {
                    self.visit(w);
                    let lw = self.low[w];
                    let lv = self.low.get_mut(v).unwrap();
                    *lv = (*lv).min(lw);
                } else if self.on.contains(w) {
                    let iw = self.index[w];
                    let lv = self.low.get_mut(v).unwrap();
                    *lv = (*lv).min(iw);
                }
            }
            if self.low[v] == self.index[v] {
                let mut comp = Vec::new();
                while let Some(w) = self.stack.pop() {
                    self.on.remove(w);
                    comp.push(w);
                    if w == v {
                        break;
                    }
                }
                if comp.len() > 1 {
                    self.cycles.push(comp);
                }
            }
        }
    }
    let mut t = Tarjan {
        graph: &graph,
        index: BTreeMap::new(),
        low: BTreeMap::new(),
        stack: Vec::new(),
        on: BTreeSet::new(),
        cycles: Vec::new(),
    };
    for m in graph.keys() {
        if !t.index.contains_key(m.as_str()) {
            t.visit(m);
        }
    }
    assert!(t.cycles.is_empty(), "import cycles: {:?}", t.cycles);
}

#[test]
fn the_engine_does_no_io_and_reads_no_clock() {
    for f in files().iter().filter(|f| f.module.starts_with("engine")) {
        for bad in NOT_IN_THE_ENGINE {
            assert!(
                !f.code.contains(bad),
                "{} uses {bad}: the engine is pure (bytes and times in, values out)",
                f.module
            );
        }
    }
}

#[test]
fn no_source_file_is_over_800_lines_of_code() {
    let big: Vec<String> = files()
        .iter()
        .map(|f| (f.code.lines().count(), &f.module))
        .filter(|(n, _)| *n > MAX_CODE_LINES)
        .map(|(n, m)| format!("{m}: {n}"))
        .collect();
    assert!(big.is_empty(), "split these by concern: {big:?}");
}
