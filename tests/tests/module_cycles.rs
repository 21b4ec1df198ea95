//! No module of any crate depends on a module that depends back on it (issue 12): shared
//! types live in the module both sides use. Needs no root; it reads the sources.
use std::path::Path;

use xgslb_tests::module_graph::{cycles, sibling_edges};

#[test]
fn no_crate_has_a_module_cycle() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ sits in the workspace root");
    let mut report = String::new();
    for krate in ["common", "ebpf", "userspace", "xtask", "tests"] {
        let src = root.join(krate).join("src");
        let edges = sibling_edges(&src).unwrap_or_else(|e| panic!("reading {krate}: {e}"));
        assert!(
            !edges.is_empty() || krate == "common",
            "{krate}: no edges found"
        );
        for cycle in cycles(&edges) {
            report.push_str(&format!("\n{krate}: a cycle through"));
            for e in cycle {
                report.push_str(&format!(
                    "\n  {} -> {} ({})",
                    e.from.join("::"),
                    e.to.join("::"),
                    e.at
                ));
            }
        }
    }
    assert!(report.is_empty(), "module cycles:{report}");
}
