//! Running commands (echoed, failing with their exit status) and the workspace paths.
use std::{
    ffi::{OsStr, OsString},
    path::{Path, PathBuf},
    process::{Command, Stdio},
};

use anyhow::{Context, Result, bail};

/// The workspace root (xtask/ sits in it).
pub fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("xtask/ has a parent")
}

/// Cargo's target directory: $CARGO_TARGET_DIR (relative to the root, where every cargo
/// command here runs) or target/.
pub fn target_dir() -> PathBuf {
    match std::env::var_os("CARGO_TARGET_DIR") {
        Some(d) if !d.is_empty() => root().join(d),
        _ => root().join("target"),
    }
}

/// Cargo's bin directory ($CARGO_HOME/bin, by default ~/.cargo/bin), where bpf-linker goes.
pub fn cargo_bin_dir() -> Option<PathBuf> {
    let home = std::env::var_os("CARGO_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cargo")))?;
    Some(home.join("bin"))
}

/// Puts cargo's bin directory on PATH for every child (the eBPF build needs bpf-linker there)
/// when a login shell did not.
pub fn fix_path() {
    let Some(bin) = cargo_bin_dir() else { return };
    let path = std::env::var_os("PATH").unwrap_or_default();
    if std::env::split_paths(&path).any(|p| p == bin) {
        return;
    }
    let mut dirs = vec![bin];
    dirs.extend(std::env::split_paths(&path));
    if let Ok(joined) = std::env::join_paths(dirs) {
        // SAFETY: called at the start of main, before any other thread exists.
        unsafe { std::env::set_var("PATH", joined) };
    }
}

/// A command to run from the workspace root, echoed before it runs.
pub struct Cmd {
    cmd: Command,
    shown: String,
}

impl Cmd {
    pub fn new<S: AsRef<OsStr>>(program: impl AsRef<OsStr>, args: &[S]) -> Self {
        let mut cmd = Command::new(&program);
        cmd.args(args).current_dir(root());
        let shown = std::iter::once(program.as_ref())
            .chain(args.iter().map(AsRef::as_ref))
            .map(|s| s.to_string_lossy())
            .collect::<Vec<_>>()
            .join(" ");
        Self { cmd, shown }
    }

    /// Cargo for the workspace, without the variables `cargo run` set for this process
    /// (CARGO_PKG_NAME...): build scripts that watch such a variable (ring's) would otherwise
    /// see it change between `cargo xtask build` and a plain `cargo build`, and rebuild.
    pub fn cargo(args: &[&str]) -> Self {
        let mut c = Self::new("cargo", args);
        for (k, _) in std::env::vars_os() {
            let Some(s) = k.to_str() else { continue };
            let from_cargo_run = s == "CARGO"
                || s.starts_with("CARGO_PKG_")
                || s.starts_with("CARGO_MANIFEST_")
                || matches!(
                    s,
                    "CARGO_CRATE_NAME"
                        | "CARGO_BIN_NAME"
                        | "CARGO_PRIMARY_PACKAGE"
                        | "CARGO_RUSTC_CURRENT_DIR"
                );
            if from_cargo_run {
                c.cmd.env_remove(&k);
            }
        }
        c
    }

    pub fn dir(mut self, dir: impl AsRef<Path>) -> Self {
        self.cmd.current_dir(dir);
        self
    }

    pub fn env(mut self, key: &str, value: impl AsRef<OsStr>) -> Self {
        self.cmd.env(key, value);
        self
    }

    /// Removes the variables cargo and rustup set for this process (toolchain, flags, target
    /// dir), so that a cargo in another directory picks its own toolchain and config.
    /// HOST is set as cargo sets it for userspace/build.rs, whose inner build of the same crate
    /// must find everything fresh (aya-ebpf's build script watches HOST).
    pub fn clean_env(mut self) -> Self {
        let vars: Vec<OsString> = std::env::vars_os().map(|(k, _)| k).collect();
        for k in vars {
            let Some(s) = k.to_str() else { continue };
            let keep = s == "CARGO_HOME" || s == "RUSTUP_HOME";
            if !keep && (s.starts_with("CARGO") || s.starts_with("RUST")) {
                self.cmd.env_remove(&k);
            }
        }
        if let Some(host) = host_triple() {
            self.cmd.env("HOST", host);
        }
        self
    }

    pub fn shown(&self) -> &str {
        &self.shown
    }

    /// Runs it; an error unless it exits with 0.
    pub fn run(mut self) -> Result<()> {
        eprintln!("+ {}", self.shown);
        let status = self
            .cmd
            .status()
            .with_context(|| format!("cannot run {}", self.shown))?;
        if !status.success() {
            bail!("`{}` failed ({status})", self.shown);
        }
        Ok(())
    }

    /// Runs it quietly and returns its stdout, or None when it cannot run or fails.
    pub fn output(mut self) -> Option<String> {
        let out = self.cmd.stderr(Stdio::null()).output().ok()?;
        out.status
            .success()
            .then(|| String::from_utf8_lossy(&out.stdout).into_owned())
    }

    /// Runs it quietly and returns its stdout whatever the exit status (dpkg-query exits 1
    /// when it does not know a package but still lists the others).
    pub fn stdout_any(mut self) -> Result<String> {
        let out = self
            .cmd
            .stderr(Stdio::null())
            .output()
            .with_context(|| format!("cannot run {}", self.shown))?;
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }

    pub fn into_command(self) -> Command {
        self.cmd
    }
}

/// The host triple, from `rustc -vV`.
fn host_triple() -> Option<String> {
    let out = Cmd::new("rustc", &["-vV"]).output()?;
    out.lines()
        .find_map(|l| l.strip_prefix("host: "))
        .map(str::to_owned)
}

pub fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}
