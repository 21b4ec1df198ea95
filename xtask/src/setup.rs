//! The prerequisites, each checked quickly (dpkg-query, rustup, `bpf-linker --version`,
//! /proc/mounts) and installed only when missing, with one line per step.
use anyhow::{Context, Result, bail};

use crate::cmd::{Cmd, is_root};

/// Debian packages: LLVM 22 for bpf-linker, the DNS tools the benchmarks and tests drive
/// (dnsperf, kdig, dig, knotd, nsd, unbound as the ECS resolver), the network tools of the
/// netns setup, the tools that check what contrib/ ships (promtool from prometheus;
/// systemd-analyze from systemd), and the headless browser the web console's test drives
/// (chromium with chromedriver).
const APT_PACKAGES: &[&str] = &[
    "llvm-22-dev",
    "libpolly-22-dev",
    "dnsperf",
    "knot-dnsutils",
    "bind9-dnsutils",
    "bpftool",
    "iproute2",
    "ethtool",
    "knot",
    "nsd",
    "unbound",
    "prometheus",
    "systemd",
    "chromium",
    "chromium-driver",
];

/// The rustup components: nightly builds and lints the XDP program (build-std needs rust-src),
/// the default toolchain lints the workspace.
const NIGHTLY_COMPONENTS: &[&str] = &["rust-src", "rustfmt", "clippy"];
const DEFAULT_COMPONENTS: &[&str] = &["rustfmt", "clippy"];

const BPF_LINKER: &str = "bpf-linker 0.13";
const LLVM_PREFIX: &str = "/usr/lib/llvm-22";

pub fn ensure() -> Result<()> {
    apt()?;
    rustup_components("nightly", NIGHTLY_COMPONENTS)?;
    rustup_components("default toolchain", DEFAULT_COMPONENTS)?;
    bpf_linker()?;
    cargo_fuzz()?;
    bpffs()
}

fn step(what: &str, state: &str) {
    eprintln!("setup: {what}: {state}");
}

fn apt() -> Result<()> {
    let what = "apt packages";
    let listed = Cmd::new(
        "dpkg-query",
        &[
            &["-W", "-f=${Package} ${db:Status-Status}\\n"],
            APT_PACKAGES,
        ]
        .concat(),
    )
    .stdout_any()?;
    let missing: Vec<&str> = APT_PACKAGES
        .iter()
        .copied()
        .filter(|p| !listed.lines().any(|l| l == format!("{p} installed")))
        .collect();
    if missing.is_empty() {
        step(what, "ok, already there");
        return Ok(());
    }
    step(what, &format!("installing {}", missing.join(" ")));
    if !is_root() {
        bail!("installing packages needs root: run as root, or `sudo apt-get install`");
    }
    Cmd::new("apt-get", &["update"])
        .env("DEBIAN_FRONTEND", "noninteractive")
        .run()?;
    Cmd::new(
        "apt-get",
        &[&["install", "-y"], missing.as_slice()].concat(),
    )
    .env("DEBIAN_FRONTEND", "noninteractive")
    .run()
}

/// `toolchain` is "nightly" or "default toolchain" (the one this cargo runs with).
fn rustup_components(toolchain: &str, wanted: &[&str]) -> Result<()> {
    let what = format!("{toolchain} components {}", wanted.join(" "));
    let tc_args: &[&str] = if toolchain == "nightly" {
        &["--toolchain", "nightly"]
    } else {
        &[]
    };
    let installed = Cmd::new(
        "rustup",
        &[&["component", "list", "--installed"], tc_args].concat(),
    )
    .output()
    .with_context(|| {
        format!("`rustup component list` failed for the {toolchain}: is rustup installed?")
    })?;
    // Installed components are listed with their target ("clippy-x86_64-unknown-linux-gnu"),
    // rust-src without one.
    let missing: Vec<&str> = wanted
        .iter()
        .copied()
        .filter(|c| {
            !installed
                .lines()
                .any(|l| l == *c || l.starts_with(&format!("{c}-")))
        })
        .collect();
    if missing.is_empty() {
        step(&what, "ok, already there");
        return Ok(());
    }
    step(&what, &format!("adding {}", missing.join(" ")));
    Cmd::new(
        "rustup",
        &[&["component", "add"], &missing[..], tc_args].concat(),
    )
    .run()
}

fn bpf_linker() -> Result<()> {
    let what = format!("{BPF_LINKER} (LLVM 22)");
    if let Some(v) = Cmd::new("bpf-linker", &["--version"]).output()
        && v.starts_with(BPF_LINKER)
    {
        step(&what, &format!("ok, already there ({})", v.trim()));
        return Ok(());
    }
    step(
        &what,
        &format!("building it with cargo install (LLVM_PREFIX={LLVM_PREFIX}), a few minutes"),
    );
    Cmd::cargo(&[
        "install",
        "bpf-linker",
        "--version",
        "^0.13",
        "--no-default-features",
        "--features",
        "llvm-22",
        "--force",
    ])
    .env("LLVM_PREFIX", LLVM_PREFIX)
    .run()?;
    match Cmd::new("bpf-linker", &["--version"]).output() {
        Some(v) if v.starts_with(BPF_LINKER) => Ok(()),
        _ => bail!("bpf-linker was installed but `bpf-linker --version` does not run from PATH"),
    }
}

/// cargo-fuzz, for the fuzz targets (fuzz/).
fn cargo_fuzz() -> Result<()> {
    let what = "cargo-fuzz";
    if let Some(v) = Cmd::new("cargo", &["+nightly", "fuzz", "--version"]).output() {
        step(what, &format!("ok, already there ({})", v.trim()));
        return Ok(());
    }
    step(what, "building it with cargo install, a few minutes");
    Cmd::cargo(&["install", "cargo-fuzz", "--version", "^0.13", "--locked"]).run()?;
    match Cmd::new("cargo", &["+nightly", "fuzz", "--version"]).output() {
        Some(_) => Ok(()),
        None => bail!("cargo-fuzz was installed but `cargo fuzz --version` does not run"),
    }
}

fn bpffs() -> Result<()> {
    let what = "bpffs at /sys/fs/bpf";
    let mounts = std::fs::read_to_string("/proc/mounts").context("read /proc/mounts")?;
    if mounts.lines().any(|l| {
        let mut f = l.split_whitespace().skip(1);
        f.next() == Some("/sys/fs/bpf") && f.next() == Some("bpf")
    }) {
        step(what, "ok, already there");
        return Ok(());
    }
    step(what, "mounting it");
    if !is_root() {
        bail!("mounting bpffs needs root");
    }
    Cmd::new("mount", &["-t", "bpf", "bpf", "/sys/fs/bpf"]).run()
}
