//! The module structure, checked: every `crate::` import in `src/` goes to
//! a module of a lower (or the same) layer, and the import graph has no
//! cycle. Storage never calls up into policy, policy never into hooks.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

/// The layers, bottom first (see `src/lib.rs` and `docs/design.md`).
const LAYERS: &[&[&str]] = &[
    // pure, at the side: syscalls, formatting, the range engine, rules
    &["sys", "fmt", "engine", "usermem", "mlock", "lazy"],
    // the environment and test-only fault points
    &["config", "fault"],
    // storage: the shared registry and the per-process summary
    &["registry", "local"],
    // policy: identity, liveness, tracing
    &["owner", "liveness", "identity", "trace", "signals", "mirror"],
    &["mappings"],
    // the QNX rules per call; beside them, the resource-manager lock API
    // (a wing over the engine that uses nothing of the registry)
    &["locks", "iofunc"],
    // the interposed entry points
    &["hooks"],
];

fn layer_of(m: &str) -> Option<usize> {
    LAYERS.iter().position(|l| l.contains(&m))
}

/// Strips line comments and everything from the first `#[cfg(test)]`.
fn code_of(text: &str) -> String {
    let text = text.split("#[cfg(test)]").next().unwrap_or("");
    text.lines().map(|l| l.split("//").next().unwrap_or("")).collect::<Vec<_>>().join("\n")
}

fn imports(code: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    for (i, _) in code.match_indices("crate::") {
        let rest = &code[i + 7..];
        let name: String = rest.chars().take_while(|c| c.is_ascii_alphanumeric() || *c == '_').collect();
        if !name.is_empty() {
            out.insert(name);
        }
        if let Some(list) = rest.strip_prefix('{') {
            for part in list.split('}').next().unwrap_or("").split(',') {
                let n: String = part.trim().chars().take_while(|c| c.is_ascii_alphanumeric() || *c == '_').collect();
                if !n.is_empty() {
                    out.insert(n);
                }
            }
        }
    }
    out
}

fn walk(dir: &Path, root: &Path, graph: &mut BTreeMap<String, BTreeSet<String>>) {
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            walk(&p, root, graph);
        } else if p.extension().is_some_and(|x| x == "rs") {
            let rel = p.strip_prefix(root).unwrap().to_string_lossy().into_owned();
            let top = rel.split(['/', '.']).next().unwrap().to_string();
            if top == "lib" {
                continue;
            }
            let code = code_of(&std::fs::read_to_string(&p).unwrap());
            let deps = graph.entry(top.clone()).or_default();
            for d in imports(&code) {
                if d != top {
                    deps.insert(d);
                }
            }
        }
    }
}

#[test]
fn no_import_runs_back_up() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut graph = BTreeMap::new();
    walk(&root, &root, &mut graph);
    let mut bad = vec![];
    for (m, deps) in &graph {
        let Some(lm) = layer_of(m) else {
            bad.push(format!("module {m} has no layer in tests/layers.rs"));
            continue;
        };
        // Constants at the crate root (F_FLOCK) belong to no module.
        for d in deps.iter().filter(|d| !d.starts_with(|c: char| c.is_ascii_uppercase())) {
            match layer_of(d) {
                Some(ld) if ld <= lm => {}
                Some(ld) => bad.push(format!("{m} (layer {lm}) imports {d} (layer {ld}), above it")),
                None => bad.push(format!("{m} imports {d}, which has no layer")),
            }
        }
    }
    assert!(bad.is_empty(), "{}", bad.join("\n"));
    // No cycle, within a layer either.
    fn visit(m: &str, g: &BTreeMap<String, BTreeSet<String>>, path: &mut Vec<String>, done: &mut BTreeSet<String>) {
        if done.contains(m) {
            return;
        }
        if let Some(i) = path.iter().position(|p| p == m) {
            panic!("import cycle: {} -> {m}", path[i..].join(" -> "));
        }
        path.push(m.to_string());
        for d in g.get(m).into_iter().flatten().filter(|d| g.contains_key(*d)) {
            visit(d, g, path, done);
        }
        path.pop();
        done.insert(m.to_string());
    }
    let mut done = BTreeSet::new();
    for m in graph.keys() {
        visit(m, &graph, &mut vec![], &mut done);
    }
}
