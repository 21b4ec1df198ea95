//! `cargo xtask package`: the Debian package of xgslb, staged by hand and built with
//! `dpkg-deb`, then checked: its contents and control data (`dpkg-deb -c`, `-I`), and an
//! install, a second install, a removal and a purge with `dpkg` in a throwaway root (the
//! maintainer scripts run chrootless against `$DPKG_ROOT`, as mmdebstrap runs them).
//!
//! What it holds: the three release binaries in /usr/bin, the systemd units of contrib/, a
//! sysusers.d entry for the `xgslb` user, /etc/xgslb/xgslbd.toml (the example config up to its
//! agents and peers, listening on loopback) and the demo zone as conffiles, the README, and
//! the Grafana dashboard and Prometheus rules under /usr/share/xgslb.
use std::{
    fmt::Write as _,
    os::unix::fs::PermissionsExt,
    path::{Path, PathBuf},
};

use anyhow::{Context, Result, bail, ensure};

use crate::cmd::{Cmd, root, target_dir};

const NAME: &str = "xgslb";
const BINARIES: [&str; 3] = ["xgslbd", "xgslbctl", "xgslb-agent"];
const UNITS: [&str; 2] = ["xgslbd.service", "xgslb-agent.service"];
/// The files dpkg keeps an operator's edits of (and removes only on purge).
const CONFFILES: [&str; 2] = ["/etc/xgslb/xgslbd.toml", "/etc/xgslb/example.test.zone"];

/// Builds the release binaries and the .deb in `target/debian/`, checks it, and returns its
/// path.
pub fn build_and_check() -> Result<PathBuf> {
    crate::ebpf_cargo(&["build", "--release"]).run()?;
    Cmd::cargo(&["build", "--release", "-p", "xgslb", "--bins"]).run()?;
    let deb = build(&target_dir().join("release"), &target_dir().join("debian"))?;
    check(&deb)?;
    eprintln!("package: {} checked", deb.display());
    Ok(deb)
}

/// The workspace's version (`[workspace.package] version`).
fn version() -> Result<String> {
    let manifest = std::fs::read_to_string(root().join("Cargo.toml"))?;
    manifest
        .lines()
        .find_map(|l| l.strip_prefix("version = \""))
        .and_then(|v| v.strip_suffix('"'))
        .map(str::to_owned)
        .context("no version in Cargo.toml")
}

fn architecture() -> Result<String> {
    Ok(Cmd::new("dpkg", &["--print-architecture"])
        .output()
        .context("dpkg --print-architecture")?
        .trim()
        .to_owned())
}

/// Writes `text` to `path` (parents made) with `mode`.
fn put(path: &Path, text: impl AsRef<[u8]>, mode: u32) -> Result<()> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    std::fs::write(path, text).with_context(|| format!("write {}", path.display()))?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))?;
    Ok(())
}

/// Stages the package from the binaries in `bins` and builds it into `out`.
fn build(bins: &Path, out: &Path) -> Result<PathBuf> {
    let (version, arch) = (version()?, architecture()?);
    let stage = out.join(format!("{NAME}_{version}_{arch}"));
    if stage.exists() {
        std::fs::remove_dir_all(&stage)?;
    }
    let file = |p: &str| stage.join(p.trim_start_matches('/'));
    let source = |p: &str| -> Result<Vec<u8>> {
        std::fs::read(root().join(p)).with_context(|| format!("read {p}"))
    };
    for bin in BINARIES {
        put(
            &file(&format!("usr/bin/{bin}")),
            source_bin(bins, bin)?,
            0o755,
        )?;
    }
    for unit in UNITS {
        put(
            &file(&format!("lib/systemd/system/{unit}")),
            source(&format!("contrib/systemd/{unit}"))?,
            0o644,
        )?;
    }
    put(&file("usr/lib/sysusers.d/xgslb.conf"), SYSUSERS, 0o644)?;
    let example = String::from_utf8(source("config/example.toml")?)?;
    put(&file(CONFFILES[0]), installed_config(&example)?, 0o644)?;
    put(
        &file(CONFFILES[1]),
        source("config/example.test.zone")?,
        0o644,
    )?;
    put(
        &file("usr/share/doc/xgslb/README.md"),
        source("README.md")?,
        0o644,
    )?;
    put(&file("usr/share/doc/xgslb/copyright"), COPYRIGHT, 0o644)?;
    put(
        &file("usr/share/xgslb/grafana/xgslb.json"),
        source("contrib/grafana/xgslb.json")?,
        0o644,
    )?;
    put(
        &file("usr/share/xgslb/prometheus/xgslb.rules.yml"),
        source("contrib/prometheus/xgslb.rules.yml")?,
        0o644,
    )?;
    let size_kib = Cmd::new("du", &["-sk".as_ref(), stage.as_os_str()])
        .output()
        .and_then(|o| o.split_whitespace().next().map(str::to_owned))
        .context("du")?;
    put(
        &file("DEBIAN/control"),
        control(&version, &arch, &size_kib),
        0o644,
    )?;
    put(
        &file("DEBIAN/conffiles"),
        CONFFILES.join("\n") + "\n",
        0o644,
    )?;
    put(&file("DEBIAN/postinst"), POSTINST, 0o755)?;
    put(&file("DEBIAN/prerm"), PRERM, 0o755)?;
    put(&file("DEBIAN/postrm"), POSTRM, 0o755)?;
    let deb = out.join(format!("{NAME}_{version}_{arch}.deb"));
    Cmd::new(
        "dpkg-deb",
        &[
            "--root-owner-group".as_ref(),
            "--build".as_ref(),
            stage.as_os_str(),
            deb.as_os_str(),
        ],
    )
    .run()?;
    Ok(deb)
}

/// A release binary, its debug information stripped (the line tables the release profile
/// keeps for backtraces are for developers).
fn source_bin(bins: &Path, bin: &str) -> Result<Vec<u8>> {
    let from = bins.join(bin);
    ensure!(from.exists(), "{} is not built", from.display());
    let to = target_dir().join("debian").join(format!("{bin}.stripped"));
    std::fs::create_dir_all(to.parent().context("parent")?)?;
    Cmd::new(
        "strip",
        &[
            "--strip-debug".as_ref(),
            "-o".as_ref(),
            to.as_os_str(),
            from.as_os_str(),
        ],
    )
    .run()?;
    Ok(std::fs::read(&to)?)
}

fn control(version: &str, arch: &str, size_kib: &str) -> String {
    format!(
        "Package: {NAME}\n\
         Version: {version}\n\
         Architecture: {arch}\n\
         Maintainer: xgslb developers <xgslb@localhost>\n\
         Installed-Size: {size_kib}\n\
         Depends: libc6 (>= 2.34), libgcc-s1, passwd\n\
         Section: net\n\
         Priority: optional\n\
         Description: authoritative DNS server and GSLB with an XDP data plane\n \
         xgslbd answers for wide IPs with the virtual server that best balances load\n \
         across sites, from an XDP program in the NIC driver, and serves full\n \
         authoritative DNS from the same data. xgslb-agent reports health, load and\n \
         LDNS paths; xgslbctl drives and inspects a running xgslbd.\n"
    )
}

/// The example config as installed: listening on loopback until the operator names the
/// addresses and interface, the control socket and metrics on their system paths, and
/// without the demo's metrics file, agents and peers (their keys are the demo's).
fn installed_config(example: &str) -> Result<String> {
    let demo_listen = "listen = [\"198.18.0.2:53\", \"[2001:db8::2]:53\"]";
    let pins = "pin_dir = \"/sys/fs/bpf/xgslb\"";
    let agents = "# --- Agents ---";
    let Some(cut) = example.find(agents) else {
        bail!("config/example.toml: no {agents:?} line to cut at");
    };
    ensure!(
        example.contains(demo_listen) && example.contains(pins),
        "config/example.toml: its listen or pin_dir line changed; adjust xtask/src/package.rs"
    );
    let mut out = String::from(
        "# xgslbd's configuration, from the example of xgslb's source (its keys are documented in\n\
         # /usr/share/doc/xgslb/README.md). It serves the example zone on loopback: set `listen`\n\
         # to the addresses of the NIC that takes DNS traffic and `interface` to that NIC, then\n\
         # `xgslbd --check --config /etc/xgslb/xgslbd.toml` and `systemctl enable --now xgslbd`.\n",
    );
    let body = &example[..cut];
    let body = body
        .split_once("\n\n")
        .map_or(body, |(_, rest)| rest)
        .replace(
            demo_listen,
            "listen = [\"127.0.0.1:53\", \"[::1]:53\"]\n\
             # The NIC the XDP program attaches to (without it, XDP is loaded but not attached).\n\
             # interface = \"eth0\"",
        )
        .replace(
            pins,
            &format!(
                "{pins}\n\
                 # xgslbctl's socket (the unit's RuntimeDirectory) and the Prometheus endpoint.\n\
                 control_socket = \"/run/xgslb/control.sock\"\n\
                 metrics_listen = \"127.0.0.1:9153\""
            ),
        );
    let mut dropped = false;
    for line in body.lines() {
        if line.starts_with("metrics_file = ") {
            dropped = true;
            continue;
        }
        let _ = writeln!(out, "{line}");
    }
    ensure!(dropped, "config/example.toml: no metrics_file line");
    Ok(out.trim_end().to_owned() + "\n")
}

const SYSUSERS: &str = "# The user xgslbd and xgslb-agent run as (see their units).\n\
                        u xgslb - \"xgslb DNS and GSLB\" /nonexistent /usr/sbin/nologin\n";

const COPYRIGHT: &str = "Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/\n\
                         Upstream-Name: xgslb\n\n\
                         Files: *\n\
                         Copyright: the xgslb developers\n\
                         License: MIT or Apache-2.0\n";

/// Creates the xgslb user once (systemd-sysusers from the package's sysusers.d entry, else
/// useradd), and lets it read /etc/xgslb. Under $DPKG_ROOT (an install into another root,
/// scripts run chrootless) everything happens inside that root; systemctl only on a running
/// systemd outside one.
const POSTINST: &str = r#"#!/bin/sh
set -e
root="${DPKG_ROOT:-}"
case "$1" in
configure)
    if ! grep -q '^xgslb:' "$root/etc/passwd" 2>/dev/null; then
        if command -v systemd-sysusers >/dev/null 2>&1; then
            systemd-sysusers --root="${root:-/}" "$root/usr/lib/sysusers.d/xgslb.conf"
        else
            useradd ${root:+--prefix "$root"} --system --user-group \
                --home-dir /nonexistent --no-create-home --shell /usr/sbin/nologin \
                --comment "xgslb DNS and GSLB" xgslb
        fi
    fi
    gid=$(awk -F: '$1 == "xgslb" { print $3 }' "$root/etc/group")
    [ -n "$gid" ] || { echo "xgslb: no xgslb group in $root/etc/group" >&2; exit 1; }
    chown "0:$gid" "$root/etc/xgslb"
    chmod 0750 "$root/etc/xgslb"
    if [ -z "$root" ] && [ -d /run/systemd/system ]; then
        systemctl --system daemon-reload >/dev/null || true
        # An upgrade: a running xgslbd is told (SIGUSR2) to start the new binary with
        # --replace, which takes its sockets and pins over without losing a query and
        # becomes the service's main process (sd_notify MAINPID); a stopped one stays so.
        if systemctl --system -q is-active xgslbd.service; then
            systemctl --system kill --kill-who=main --signal=SIGUSR2 xgslbd.service || true
        fi
        systemctl --system try-restart xgslb-agent.service >/dev/null || true
    fi
    ;;
esac
exit 0
"#;

/// Stops the services when the package goes (not on upgrade: postinst restarts them).
const PRERM: &str = r#"#!/bin/sh
set -e
if [ -z "${DPKG_ROOT:-}" ] && [ -d /run/systemd/system ]; then
    case "$1" in
    remove|deconfigure)
        systemctl --system stop xgslbd.service xgslb-agent.service >/dev/null 2>&1 || true
        ;;
    esac
fi
exit 0
"#;

/// Forgets the units; on purge removes /etc/xgslb (dpkg has removed the conffiles). The xgslb
/// user stays, as Debian keeps system users (files it owned may remain): `userdel xgslb`.
const POSTRM: &str = r#"#!/bin/sh
set -e
root="${DPKG_ROOT:-}"
case "$1" in
purge)
    rm -f "$root/etc/xgslb/xgslbd.toml.dpkg-old" "$root/etc/xgslb/xgslbd.toml.dpkg-dist"
    rmdir "$root/etc/xgslb" 2>/dev/null || true
    ;;
esac
if [ -z "$root" ] && [ -d /run/systemd/system ]; then
    systemctl --system daemon-reload >/dev/null || true
fi
exit 0
"#;

/// Runs `cmd` and returns its stdout; an error with its output unless it exits with 0.
fn stdout_of(cmd: Cmd) -> Result<String> {
    let shown = cmd.shown().to_owned();
    let out = cmd
        .into_command()
        .output()
        .with_context(|| format!("cannot run {shown}"))?;
    let (stdout, stderr) = (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    );
    ensure!(out.status.success(), "`{shown}` failed: {stdout}{stderr}");
    Ok(stdout)
}

/// dpkg on the throwaway root `r`, scripts chrootless.
fn dpkg(r: &Path, args: &[&str]) -> Result<String> {
    let root = format!("--root={}", r.display());
    let mut all = vec![root.as_str(), "--force-script-chrootless"];
    all.extend(args);
    // dpkg looks for ldconfig and start-stop-daemon on PATH, which may lack the sbin dirs.
    let path = format!(
        "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin:{}",
        std::env::var("PATH").unwrap_or_default()
    );
    stdout_of(Cmd::new("dpkg", &all).env("PATH", path))
}

/// The package's contents and control data, then an install, a second install, a removal
/// and a purge in a throwaway root.
pub fn check(deb: &Path) -> Result<()> {
    let deb_arg = deb.to_str().context("utf-8 path")?;
    let contents = stdout_of(Cmd::new("dpkg-deb", &["-c", deb_arg]))?;
    let listed = |path: &str| {
        contents
            .lines()
            .find(|l| l.ends_with(&format!(".{path}")))
            .map(str::to_owned)
    };
    let mut wanted: Vec<String> = BINARIES.iter().map(|b| format!("/usr/bin/{b}")).collect();
    wanted.extend(UNITS.iter().map(|u| format!("/lib/systemd/system/{u}")));
    wanted.extend(CONFFILES.iter().map(|c| (*c).to_owned()));
    wanted.push("/usr/lib/sysusers.d/xgslb.conf".into());
    wanted.push("/usr/share/xgslb/grafana/xgslb.json".into());
    wanted.push("/usr/share/xgslb/prometheus/xgslb.rules.yml".into());
    for path in &wanted {
        let line = listed(path).with_context(|| format!("the package lacks {path}"))?;
        ensure!(
            line.contains("root/root"),
            "{path} not owned by root: {line}"
        );
        if path.starts_with("/usr/bin/") {
            ensure!(
                line.starts_with("-rwxr-xr-x"),
                "{path} not executable: {line}"
            );
        }
    }
    let info = stdout_of(Cmd::new("dpkg-deb", &["-I", deb_arg]))?;
    for field in [
        "Package: xgslb",
        "Version: ",
        "Architecture: ",
        "Depends: ",
        "Description: ",
    ] {
        ensure!(info.contains(field), "control lacks {field:?}:\n{info}");
    }
    for script in ["postinst", "prerm", "postrm", "conffiles"] {
        ensure!(
            info.lines()
                .any(|l| l.contains(" lines ") && l.split_whitespace().any(|w| w == script)),
            "control area lacks {script}:\n{info}"
        );
    }
    let conffiles = stdout_of(Cmd::new("dpkg-deb", &["-I", deb_arg, "conffiles"]))?;
    ensure!(
        conffiles.lines().collect::<Vec<_>>() == CONFFILES,
        "conffiles: {conffiles}"
    );

    let tmp = target_dir().join("debian").join("root");
    if tmp.exists() {
        std::fs::remove_dir_all(&tmp)?;
    }
    let result = install_and_remove(deb_arg, &tmp);
    if result.is_ok() {
        std::fs::remove_dir_all(&tmp)?;
    }
    result.with_context(|| format!("in the throwaway root {}", tmp.display()))
}

fn install_and_remove(deb: &str, r: &Path) -> Result<()> {
    // An empty system: a dpkg database and the base accounts, nothing else.
    for dir in ["var/lib/dpkg/info", "var/lib/dpkg/updates", "etc"] {
        std::fs::create_dir_all(r.join(dir))?;
    }
    put(&r.join("var/lib/dpkg/status"), "", 0o644)?;
    put(
        &r.join("etc/passwd"),
        "root:x:0:0:root:/root:/bin/sh\n",
        0o644,
    )?;
    put(&r.join("etc/group"), "root:x:0:\n", 0o644)?;
    let base: Vec<PathBuf> = walk(r)?;

    // Depends name packages this empty root's database does not hold.
    dpkg(r, &["--force-depends", "--install", deb])?;
    ensure!(r.join("usr/bin/xgslbd").exists(), "xgslbd not installed");
    let users = |r: &Path| -> Result<Vec<String>> {
        Ok(std::fs::read_to_string(r.join("etc/passwd"))?
            .lines()
            .filter(|l| l.starts_with("xgslb:"))
            .map(str::to_owned)
            .collect())
    };
    let user = users(r)?;
    ensure!(user.len() == 1, "the xgslb user: {user:?}");
    let gid = std::fs::read_to_string(r.join("etc/group"))?
        .lines()
        .find_map(|l| l.strip_prefix("xgslb:x:"))
        .and_then(|rest| rest.split(':').next()?.parse::<u32>().ok())
        .context("no xgslb group")?;
    let etc = std::fs::metadata(r.join("etc/xgslb"))?;
    use std::os::unix::fs::MetadataExt;
    ensure!(
        etc.gid() == gid && etc.mode() & 0o777 == 0o750,
        "/etc/xgslb: gid {} mode {:o}",
        etc.gid(),
        etc.mode()
    );
    // The installed binary takes the installed config.
    let config = r.join("etc/xgslb/xgslbd.toml");
    stdout_of(Cmd::new(
        r.join("usr/bin/xgslbd"),
        &["--check".as_ref(), "--config".as_ref(), config.as_os_str()],
    ))?;
    let status = dpkg(r, &["--status", NAME])?;
    ensure!(status.contains("Status: install ok installed"), "{status}");

    // Again (an upgrade to the same version): the user is not made twice.
    dpkg(r, &["--force-depends", "--install", deb])?;
    ensure!(users(r)? == user, "a second install changed the user");

    dpkg(r, &["--remove", NAME])?;
    ensure!(
        !r.join("usr/bin/xgslbd").exists(),
        "xgslbd left after remove"
    );
    ensure!(config.exists(), "remove must keep the conffiles");
    dpkg(r, &["--purge", NAME])?;
    let status = Cmd::new(
        "dpkg",
        &[&format!("--root={}", r.display()), "--status", NAME],
    )
    .output();
    ensure!(status.is_none(), "still known after purge: {status:?}");
    // Nothing left but what was there, dpkg's own records and the accounts.
    let left: Vec<PathBuf> = walk(r)?
        .into_iter()
        .filter(|p| !base.contains(p))
        .filter(|p| {
            let rel = p.strip_prefix(r).unwrap_or(p);
            !(rel.starts_with("var/lib/dpkg")
                || rel.starts_with("var/log")
                || rel.to_string_lossy().starts_with("etc/passwd")
                || rel.to_string_lossy().starts_with("etc/group")
                || rel.to_string_lossy().starts_with("etc/shadow")
                || rel.to_string_lossy().starts_with("etc/gshadow")
                || rel.to_string_lossy().starts_with("etc/.pwd.lock"))
        })
        .collect();
    ensure!(left.is_empty(), "left after purge: {left:?}");
    Ok(())
}

/// Every file (not directory) under `dir`.
fn walk(dir: &Path) -> Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir)? {
        let e = e?;
        if e.file_type()?.is_dir() {
            out.extend(walk(&e.path())?);
        } else {
            out.push(e.path());
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_installed_config_listens_on_loopback_without_the_demos_keys() {
        let example = std::fs::read_to_string(root().join("config/example.toml")).unwrap();
        let c = installed_config(&example).unwrap();
        assert!(
            c.contains("listen = [\"127.0.0.1:53\", \"[::1]:53\"]"),
            "{c}"
        );
        assert!(c.contains("control_socket = \"/run/xgslb/control.sock\""));
        for gone in [
            "198.18.0.2:53",
            "metrics_file",
            "[agents]",
            "[peering]",
            ".key",
        ] {
            assert!(!c.contains(gone), "{gone} in {c}");
        }
        assert!(installed_config("listen = []").is_err());
    }
}
