//! `cargo xtask fuzz`: the cargo-fuzz targets of fuzz/ (libFuzzer, nightly, AddressSanitizer),
//! each run for a time; `cargo xtask test` runs each briefly. A target that finds a crash
//! fails the run, and libFuzzer leaves the input under fuzz/artifacts/<target>/ to replay
//! with `cargo +nightly fuzz run <target> <file>`.
use anyhow::Result;

use crate::cmd::{Cmd, root};

/// Every target, with the repository files that seed it (besides its own corpus under
/// fuzz/corpus/<target>/, where libFuzzer keeps what it finds).
pub const TARGETS: &[(&str, &[&str])] = &[
    ("dns_query", &["fuzz/seeds/dns_query"]),
    ("wire", &[]),
    ("zone", &["config", "tests/fixtures"]),
    ("config", &["config"]),
];

/// Builds every target, then runs each of `targets` (all when empty) for `seconds`.
pub fn run(targets: &[String], seconds: u32) -> Result<()> {
    fuzz(&["build"]).run()?;
    for (target, seeds) in TARGETS {
        if !targets.is_empty() && !targets.iter().any(|t| t == target) {
            continue;
        }
        let corpus = root().join("fuzz/corpus").join(target);
        std::fs::create_dir_all(&corpus)?;
        let mut args = vec![
            "run".to_owned(),
            (*target).to_owned(),
            corpus.display().to_string(),
        ];
        args.extend(seeds.iter().map(|s| root().join(s).display().to_string()));
        args.extend([
            "--".to_owned(),
            format!("-max_total_time={seconds}"),
            // Bounded, so that a slow or greedy input is a finding, not a hung CI.
            "-rss_limit_mb=2048".to_owned(),
            "-timeout=10".to_owned(),
        ]);
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        fuzz(&args).run()?;
    }
    Ok(())
}

/// `cargo +nightly fuzz <args>` in fuzz/, with the toolchain's own environment.
fn fuzz(args: &[&str]) -> Cmd {
    Cmd::new("cargo", &[&["+nightly", "fuzz"], args].concat())
        .clean_env()
        .dir(root().join("fuzz"))
}
