//! `cargo xtask`: the project's developer and CI commands.
//!
//! # Layout
//! - `setup`: the prerequisites (apt packages, nightly rust-src, bpf-linker, cargo-fuzz,
//!   bpffs), checked quickly and installed only when missing.
//! - `cmd`: running commands, the workspace paths, a clean environment for the eBPF build.
//! - `run`: xgslbd in the foreground on an interface, or the two-namespace demo (two peered
//!   EDNSs).
//! - `fuzz`: the cargo-fuzz targets of fuzz/, run for a time.
//! - `load`: the load bench's report (table, results.json, chart) from the lines that
//!   scripts/bench-load.sh writes.
//! - `package`: the Debian package, built with dpkg-deb and checked (contents, an install
//!   and removal in a throwaway root).
//! - `build`, `test` and `bench` are below: they only string commands together.
mod cmd;
mod fuzz;
mod load;
mod package;
mod run;
mod setup;

use std::{path::PathBuf, process::ExitCode};

use anyhow::{Result, bail};
use clap::{Parser, Subcommand};

use cmd::{Cmd, root, target_dir};

#[derive(Parser)]
#[command(name = "cargo xtask", about = "xgslb developer and CI commands")]
struct Cli {
    #[command(subcommand)]
    task: Task,
}

#[derive(Subcommand)]
enum Task {
    /// Install every prerequisite that is missing (apt packages, nightly rust-src,
    /// bpf-linker, bpffs); fast when all is there.
    Setup,
    /// Build the XDP object and the release binaries.
    Build,
    /// Run xgslbd on an interface, or (without --iface) the two-namespace demo: two peered
    /// EDNSs (config/example.toml and config/example-edns2.toml), or with --config one.
    Run {
        /// Attach to this interface and run xgslbd in the foreground.
        #[arg(long)]
        iface: Option<String>,
        /// The config file (default config/example.toml).
        #[arg(long)]
        config: Option<PathBuf>,
    },
    /// Unit and integration tests, fmt and clippy (both workspaces), a short fuzz run of
    /// every target, the Debian package built and checked, and a bench smoke run.
    Test,
    /// Build the Debian package (target/debian/xgslb_VERSION_ARCH.deb) from release
    /// binaries, and check it: contents, control data, and an install, removal and purge in
    /// a throwaway root.
    Package,
    /// Run the fuzz targets (cargo-fuzz, nightly) for a while each.
    Fuzz {
        /// Seconds per target.
        #[arg(long, default_value_t = 300)]
        seconds: u32,
        /// The targets to run (default: all): dns_query, wire, zone, config.
        targets: Vec<String>,
    },
    /// Time the XDP program through BPF_PROG_TEST_RUN against the reflector, then load
    /// xgslb (XDP and slow path), Knot DNS (UDP and XDP), NSD and the reflector over veth.
    Bench {
        /// A quick run that proves the bench works; its figures mean little.
        #[arg(long)]
        smoke: bool,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    cmd::fix_path();
    let result = match cli.task {
        Task::Setup => setup::ensure(),
        Task::Build => setup::ensure().and_then(|()| build()),
        Task::Run { iface, config } => setup::ensure().and_then(|()| {
            build()?;
            match (iface, config) {
                (Some(iface), config) => {
                    let config = config.unwrap_or_else(|| root().join("config/example.toml"));
                    run::foreground(&iface, &config)
                }
                (None, Some(config)) => run::demo(&config, None),
                // The demo's own copy of the examples, so that its metrics file can be edited
                // while it runs without touching the repository; the second, peered EDNS's
                // config beside the first's.
                (None, None) => {
                    let config = run::demo_config()?;
                    run::demo(&config, Some(&config.with_file_name(run::EDNS2_CONFIG)))
                }
            }
        }),
        Task::Test => setup::ensure().and_then(|()| test()),
        Task::Package => setup::ensure().and_then(|()| package::build_and_check().map(drop)),
        Task::Bench { smoke } => setup::ensure().and_then(|()| bench(smoke)),
        Task::Fuzz { seconds, targets } => {
            setup::ensure().and_then(|()| fuzz::run(&targets, seconds))
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("xtask: error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// The XDP object (its own workspace, nightly) and then the release binaries, which embed it.
fn build() -> Result<()> {
    ebpf_cargo(&["build", "--release"]).run()?;
    Cmd::cargo(&["build", "--release", "--workspace"]).run()
}

/// Cargo in ebpf/, with the outer cargo's environment removed as userspace/build.rs does, so
/// that ebpf/rust-toolchain.toml (nightly) and ebpf/.cargo/config.toml apply.
fn ebpf_cargo(args: &[&str]) -> Cmd {
    Cmd::new("cargo", args).dir(root().join("ebpf")).clean_env()
}

/// Seconds each fuzz target runs in `cargo xtask test`: long enough to catch a regression
/// on the seeds and their neighbours, short enough for CI; `cargo xtask fuzz` runs longer.
const FUZZ_TEST_SECONDS: u32 = 20;

fn test() -> Result<()> {
    let checks: Vec<(&str, Cmd)> = vec![
        (
            "cargo test --workspace",
            Cmd::cargo(&["test", "--workspace"]),
        ),
        (
            "cargo fmt --all --check",
            Cmd::cargo(&["fmt", "--all", "--check"]),
        ),
        (
            "cargo clippy --workspace --all-targets -D warnings",
            Cmd::cargo(&[
                "clippy",
                "--workspace",
                "--all-targets",
                "--",
                "-D",
                "warnings",
            ]),
        ),
        ("ebpf: cargo fmt --check", ebpf_cargo(&["fmt", "--check"])),
        (
            "fuzz: cargo fmt --check",
            Cmd::new("cargo", &["+nightly", "fmt", "--check"])
                .clean_env()
                .dir(root().join("fuzz")),
        ),
        (
            "ebpf: cargo clippy -D warnings",
            ebpf_cargo(&["clippy", "--", "-D", "warnings"]),
        ),
    ];
    let mut results = Vec::new();
    for (name, cmd) in checks {
        eprintln!("xtask: == {name}");
        results.push((name, cmd.run()));
    }
    eprintln!("xtask: == fuzz, {FUZZ_TEST_SECONDS} s per target");
    results.push(("fuzz", fuzz::run(&[], FUZZ_TEST_SECONDS)));
    eprintln!("xtask: == package: build the .deb, install and remove it in a throwaway root");
    results.push(("package", package::build_and_check().map(drop)));
    eprintln!("xtask: == bench --smoke");
    results.push(("bench --smoke", bench(true)));

    println!("\nxtask test summary:");
    let mut failed = 0;
    for (name, r) in &results {
        match r {
            Ok(()) => println!("  ok      {name}"),
            Err(e) => {
                failed += 1;
                println!("  FAILED  {name}: {e:#}");
            }
        }
    }
    println!("checks: {} passed, {failed} failed", results.len() - failed);
    if failed > 0 {
        bail!("{failed} of {} checks failed", results.len());
    }
    Ok(())
}

/// Builds the bench in release and runs its two parts: the in-kernel timing (xgslb-bench:
/// a Markdown table and target/bench/results.json) and the load bench (scripts/bench-load.sh:
/// a table, the `load` object of results.json and target/bench/load.svg).
fn bench(smoke: bool) -> Result<()> {
    Cmd::cargo(&[
        "build",
        "--release",
        "-p",
        "xgslb-tests",
        "--bin",
        "xgslb-bench",
        "--bin",
        "xgslb-testkit",
        "-p",
        "xgslb",
        "--bin",
        "xgslbd",
        "--bin",
        "xgslbctl",
    ])
    .run()?;
    let dir = target_dir().join("bench");
    std::fs::create_dir_all(&dir)?;
    let out = dir.join("results.json");
    let bin = target_dir().join("release/xgslb-bench");
    let mut args = vec!["--out".to_owned(), out.display().to_string()];
    if smoke {
        args.push("--smoke".into());
    }
    Cmd::new(bin, &args).run()?;

    // Ctrl-C reaches the script too (same process group); wait for it to clean up.
    run::catch_signals();
    let lines = dir.join("load.jsonl");
    let script = root().join("scripts/bench-load.sh");
    let mut args = vec![
        script.display().to_string(),
        "--bin-dir".into(),
        target_dir().join("release").display().to_string(),
        "--out".into(),
        lines.display().to_string(),
    ];
    if smoke {
        args.push("--smoke".into());
    }
    Cmd::new("bash", &args).run()?;
    load::report(&lines, &out, &dir.join("load.svg"), smoke)
}
