//! The `use` graph of a crate's modules, and its cycles. Every path in non-test code that
//! starts with `crate`, `super` or `self` is an edge from the module it is written in to the
//! deepest module it names. An edge between a module and its own ancestor or descendant is
//! not a dependency between parts (a parent re-exports its children); every other edge is
//! lifted to the two siblings under the modules' closest common ancestor, so that both
//! `dns/lookup -> dns/response -> dns/lookup` and `config/agents -> metrics/wire`,
//! `metrics/ingest -> config` show as cycles (the second between `config` and `metrics`).
use std::{
    collections::{BTreeMap, BTreeSet},
    path::{Path, PathBuf},
};

use syn::visit::Visit;

/// A module, as the path of names from the crate root (`[]` is the root).
pub type Module = Vec<String>;

/// An edge between two sibling modules, with where one use of it is written.
#[derive(Clone, Debug)]
pub struct Edge {
    pub from: Module,
    pub to: Module,
    /// `file:line` of one path that makes the edge.
    pub at: String,
}

/// The modules of the crate whose root directory is `src` (its `lib.rs` or `main.rs`),
/// without `bin/` (separate crates) and without test modules (`tests.rs`, `*_tests.rs`,
/// items under `#[cfg(test)]`): tests may use anything.
pub fn sibling_edges(src: &Path) -> Result<Vec<Edge>, String> {
    let mut files = Vec::new();
    collect(src, src, &mut files)?;
    let modules: BTreeSet<Module> = files.iter().map(|(m, _)| m.clone()).collect();
    let mut edges = Vec::new();
    for (module, file) in &files {
        let text = std::fs::read_to_string(file).map_err(|e| format!("{}: {e}", file.display()))?;
        let ast = syn::parse_file(&text).map_err(|e| format!("{}: {e}", file.display()))?;
        let mut paths = Paths::default();
        paths.visit_file(&ast);
        for (segments, line) in paths.found {
            let Some(target) = resolve(module, &segments, &modules) else {
                continue;
            };
            let common = module
                .iter()
                .zip(&target)
                .take_while(|(a, b)| a == b)
                .count();
            // The same module, or an ancestor or a descendant of it.
            if common == module.len() || common == target.len() {
                continue;
            }
            edges.push(Edge {
                from: module[..=common].to_vec(),
                to: target[..=common].to_vec(),
                at: format!("{}:{line}", file.display()),
            });
        }
    }
    Ok(edges)
}

/// Every cycle (a strongly connected component of more than one module), each with the
/// edges inside it, so that a failure says where to look.
pub fn cycles(edges: &[Edge]) -> Vec<Vec<Edge>> {
    let mut graph: BTreeMap<&Module, BTreeSet<&Module>> = BTreeMap::new();
    for e in edges {
        graph.entry(&e.from).or_default().insert(&e.to);
        graph.entry(&e.to).or_default();
    }
    let components = strongly_connected(&graph);
    components
        .into_iter()
        .filter(|c| c.len() > 1)
        .map(|c| {
            let mut seen = BTreeSet::new();
            edges
                .iter()
                .filter(|e| c.contains(&e.from) && c.contains(&e.to))
                .filter(|e| seen.insert((e.from.clone(), e.to.clone())))
                .cloned()
                .collect()
        })
        .collect()
}

/// The strongly connected components: the modules reachable from a module that also reach
/// it. Module graphs have tens of nodes, so a walk from each is cheaper to read than Tarjan.
fn strongly_connected<'a>(
    graph: &BTreeMap<&'a Module, BTreeSet<&'a Module>>,
) -> Vec<BTreeSet<&'a Module>> {
    let reach = |from: &'a Module| {
        let mut seen = BTreeSet::new();
        let mut todo = vec![from];
        while let Some(v) = todo.pop() {
            for &w in graph.get(v).into_iter().flatten() {
                if seen.insert(w) {
                    todo.push(w);
                }
            }
        }
        seen
    };
    let reachable: BTreeMap<&Module, BTreeSet<&Module>> =
        graph.keys().map(|&v| (v, reach(v))).collect();
    let mut out: Vec<BTreeSet<&Module>> = Vec::new();
    for (&v, from_v) in &reachable {
        if out.iter().any(|c| c.contains(v)) {
            continue;
        }
        let mut component: BTreeSet<&Module> = from_v
            .iter()
            .copied()
            .filter(|w| reachable[w].contains(v))
            .collect();
        component.insert(v);
        out.push(component);
    }
    out
}

/// The module a path names: the longest prefix of it that is a module, or `None` for a
/// path that does not start at `crate`, `super` or `self`.
fn resolve(from: &Module, segments: &[String], modules: &BTreeSet<Module>) -> Option<Module> {
    let (mut base, rest) = match segments.first().map(String::as_str) {
        Some("crate") => (Vec::new(), &segments[1..]),
        Some("self") => (from.clone(), &segments[1..]),
        Some("super") => {
            let mut base = from.clone();
            let mut rest = segments;
            while rest.first().map(String::as_str) == Some("super") {
                base.pop();
                rest = &rest[1..];
            }
            (base, rest)
        }
        _ => return None,
    };
    let mut found = base.clone();
    for s in rest {
        base.push(s.clone());
        if modules.contains(&base) {
            found = base.clone();
        } else {
            break;
        }
    }
    Some(found)
}

/// The `.rs` files under `dir` with their module paths.
fn collect(root: &Path, dir: &Path, out: &mut Vec<(Module, PathBuf)>) -> Result<(), String> {
    let entries = std::fs::read_dir(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    for entry in entries {
        let path = entry.map_err(|e| e.to_string())?.path();
        let rel = path.strip_prefix(root).map_err(|e| e.to_string())?;
        if path.is_dir() {
            if rel != Path::new("bin") {
                collect(root, &path, out)?;
            }
            continue;
        }
        let Some(stem) = path
            .file_name()
            .and_then(|n| n.to_str())
            .and_then(|n| n.strip_suffix(".rs"))
        else {
            continue;
        };
        if stem == "tests" || stem.ends_with("_tests") {
            continue;
        }
        let mut module: Module = rel
            .parent()
            .into_iter()
            .flat_map(|p| p.components())
            .map(|c| c.as_os_str().to_string_lossy().into_owned())
            .collect();
        if !matches!(stem, "mod" | "lib" | "main") {
            module.push(stem.to_owned());
        }
        out.push((module, path));
    }
    Ok(())
}

/// Every path (in `use` trees, types and expressions) of a file's non-test items.
#[derive(Default)]
struct Paths {
    /// The segments and the line of each path.
    found: Vec<(Vec<String>, usize)>,
}

impl Paths {
    fn use_tree(&mut self, prefix: &mut Vec<String>, tree: &syn::UseTree) {
        match tree {
            syn::UseTree::Path(p) => {
                prefix.push(p.ident.to_string());
                self.use_tree(prefix, &p.tree);
                prefix.pop();
            }
            syn::UseTree::Name(n) => {
                let mut path = prefix.clone();
                path.push(n.ident.to_string());
                self.found.push((path, n.ident.span().start().line));
            }
            syn::UseTree::Rename(r) => {
                let mut path = prefix.clone();
                path.push(r.ident.to_string());
                self.found.push((path, r.ident.span().start().line));
            }
            syn::UseTree::Glob(g) => self
                .found
                .push((prefix.clone(), g.star_token.spans[0].start().line)),
            syn::UseTree::Group(g) => {
                for t in &g.items {
                    self.use_tree(prefix, t);
                }
            }
        }
    }
}

/// Whether the attributes hold `#[cfg(test)]`.
fn is_test(attrs: &[syn::Attribute]) -> bool {
    attrs.iter().any(|a| {
        a.path().is_ident("cfg") && a.parse_args::<syn::Ident>().is_ok_and(|i| i == "test")
    })
}

impl<'ast> Visit<'ast> for Paths {
    fn visit_item(&mut self, item: &'ast syn::Item) {
        let attrs = match item {
            syn::Item::Mod(m) => &m.attrs,
            syn::Item::Fn(f) => &f.attrs,
            syn::Item::Impl(i) => &i.attrs,
            syn::Item::Use(u) => &u.attrs,
            _ => return syn::visit::visit_item(self, item),
        };
        if !is_test(attrs) {
            syn::visit::visit_item(self, item);
        }
    }

    fn visit_item_use(&mut self, u: &'ast syn::ItemUse) {
        self.use_tree(&mut Vec::new(), &u.tree);
    }

    fn visit_path(&mut self, p: &'ast syn::Path) {
        let segments: Vec<String> = p.segments.iter().map(|s| s.ident.to_string()).collect();
        if let Some(first) = p.segments.first() {
            self.found.push((segments, first.ident.span().start().line));
        }
        syn::visit::visit_path(self, p);
    }

    fn visit_macro(&mut self, m: &'ast syn::Macro) {
        // Paths inside macro calls (format arguments, `matches!`) are tokens, not syntax;
        // the crate's own macros are few and the paths they hide are also written outside.
        syn::visit::visit_path(self, &m.path);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tree(files: &[(&str, &str)]) -> tempfile::TempDir {
        let dir = tempfile::tempdir().expect("temp dir");
        for (name, text) in files {
            let path = dir.path().join(name);
            std::fs::create_dir_all(path.parent().expect("has a parent")).expect("mkdir");
            std::fs::write(path, text).expect("write");
        }
        dir
    }

    fn names(cycle: &[Edge]) -> BTreeSet<String> {
        cycle.iter().map(|e| e.from.join("/")).collect()
    }

    #[test]
    fn a_cycle_between_siblings_and_one_across_parents_are_found() {
        let dir = tree(&[
            ("lib.rs", "pub mod a; pub mod b; pub mod c;"),
            ("a/mod.rs", "pub mod x; pub mod y;"),
            ("a/x.rs", "use super::y::Y; pub struct X;"),
            ("a/y.rs", "pub struct Y(crate::a::x::X);"),
            ("b.rs", "pub fn f() { crate::c::g() }"),
            (
                "c.rs",
                "use crate::{a::x::X, b};\n pub fn g() { let _ = b::f; }",
            ),
        ]);
        let found = cycles(&sibling_edges(dir.path()).expect("parses"));
        let mut all: Vec<BTreeSet<String>> = found.iter().map(|c| names(c)).collect();
        all.sort();
        assert_eq!(
            all,
            vec![
                BTreeSet::from(["a/x".to_owned(), "a/y".to_owned()]),
                BTreeSet::from(["b".to_owned(), "c".to_owned()]),
            ]
        );
    }

    #[test]
    fn parents_children_and_tests_make_no_cycle() {
        let dir = tree(&[
            ("lib.rs", "pub mod a; pub mod b;"),
            ("a/mod.rs", "pub mod x; pub use x::X; pub struct Shared;"),
            ("a/x.rs", "use super::Shared; pub struct X(Shared);"),
            (
                "b.rs",
                "use crate::a::X;\n#[cfg(test)]\nmod tests { use crate::a::x::X; }",
            ),
            ("a/x_tests.rs", "use crate::b;"),
            ("a/other.rs", "#[cfg(test)]\nfn t() { crate::b::f(); }"),
        ]);
        let edges = sibling_edges(dir.path()).expect("parses");
        assert!(cycles(&edges).is_empty(), "{edges:?}");
        assert_eq!(edges.len(), 1, "{edges:?}");
    }
}
