//! xgslbd as an unprivileged user (nobody) with exactly the capabilities the README lists
//! (CAP_BPF, CAP_PERFMON, CAP_NET_ADMIN, CAP_NET_BIND_SERVICE), given by setpriv as ambient
//! capabilities, in a network namespace over veth: it loads and attaches the XDP program,
//! answers an A query from XDP and reloads on SIGHUP; started without any one of them, it
//! exits with an error naming that capability.
use std::{
    os::unix::fs::PermissionsExt,
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    sync::mpsc,
    time::{Duration, Instant},
};

use xgslb::test_model::TestModel;

mod support;

/// The capabilities xgslbd needs (the list the README and the unit file give), as setpriv
/// spells them, with the name its error gives.
fn caps() -> Vec<(String, &'static str)> {
    xgslb::privileges::XGSLBD
        .iter()
        .map(|c| {
            let name = c.name();
            (name.trim_start_matches("CAP_").to_lowercase(), name)
        })
        .collect()
}
const NOBODY: u32 = 65534;
const SERVER_V4: &str = "198.19.210.2";
const CLIENT_V4: &str = "198.19.210.1";
const SERVER_IF: &str = "lpt0s";
const CLIENT_IF: &str = "lpt0c";
/// How long xgslbd may take to start, fail, or apply a reload: a bound, not a sleep.
const DEADLINE: Duration = Duration::from_secs(60);

fn run(args: &[&str]) {
    let out = Command::new(args[0])
        .args(&args[1..])
        .output()
        .unwrap_or_else(|e| panic!("cannot run {args:?}: {e}"));
    assert!(
        out.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The server and client namespaces over a veth pair, the client end with the pass program
/// (veth delivers XDP_TX frames only to a receive side running NAPI); deleted on drop.
struct Topology {
    server: String,
    client: String,
    /// A bpffs of the test's own (not /sys/fs/bpf, whose mode is the host's): the pins.
    bpffs: tempfile::TempDir,
}

impl Topology {
    fn new() -> Self {
        let base = format!("xgslb-lpt-{}", std::process::id());
        let bpffs = tempfile::tempdir().expect("temp dir");
        let t = Topology {
            server: format!("{base}-s"),
            client: format!("{base}-c"),
            bpffs,
        };
        // A bpffs of our own, mode 0755 so that nobody reaches the pin directory in it.
        let root = t.bpffs.path().to_str().expect("utf-8 path");
        run(&["mount", "-t", "bpf", "-o", "mode=0755", "bpf", root]);
        run(&["ip", "netns", "add", &t.server]);
        run(&["ip", "netns", "add", &t.client]);
        run(&[
            "ip", "link", "add", SERVER_IF, "netns", &t.server, "type", "veth", "peer", "name",
            CLIENT_IF, "netns", &t.client,
        ]);
        for (ns, ifname, v4) in [
            (&t.server, SERVER_IF, SERVER_V4),
            (&t.client, CLIENT_IF, CLIENT_V4),
        ] {
            let cidr = format!("{v4}/24");
            run(&["ip", "-n", ns, "addr", "add", &cidr, "dev", ifname]);
            run(&["ip", "-n", ns, "link", "set", ifname, "up"]);
            run(&["ip", "-n", ns, "link", "set", "lo", "up"]);
        }
        // Full UDP checksums from the sender, as real NICs deliver them.
        run(&[
            "ip", "netns", "exec", &t.client, "ethtool", "-K", CLIENT_IF, "tx", "off",
        ]);
        let (client, link) = (t.client.clone(), t.bpffs.path().join("client-pass"));
        std::thread::spawn(move || {
            enter_namespace(&client);
            xgslb::maps::DataPlane::attach_pass_pinned(CLIENT_IF, &link)
                .unwrap_or_else(|e| panic!("attach the pass program to the client veth: {e}"));
        })
        .join()
        .expect("attaching the client's pass program");
        t
    }

    /// An empty pin directory owned by nobody.
    fn pin_dir(&self) -> PathBuf {
        let dir = self.bpffs.path().join("xgslb");
        if dir.exists() {
            for e in std::fs::read_dir(&dir).expect("read the pin dir").flatten() {
                std::fs::remove_file(e.path()).expect("remove a pin");
            }
        } else {
            std::fs::create_dir(&dir).expect("create the pin dir");
        }
        std::os::unix::fs::chown(&dir, Some(NOBODY), Some(NOBODY)).expect("chown the pin dir");
        dir
    }

    fn dig(&self, name: &str) -> String {
        let out = Command::new("ip")
            .args(["netns", "exec", &self.client, "dig", "+short", "+tries=1"])
            .args(["+time=2", &format!("@{SERVER_V4}"), name, "A"])
            .output()
            .expect("run dig");
        String::from_utf8_lossy(&out.stdout).trim().to_owned()
    }
}

impl Drop for Topology {
    fn drop(&mut self) {
        for ns in [&self.server, &self.client] {
            let _ = Command::new("ip").args(["netns", "del", ns]).output();
        }
        let _ = Command::new("umount").arg(self.bpffs.path()).output();
    }
}

fn enter_namespace(name: &str) {
    use std::os::fd::AsRawFd;
    let path = format!("/run/netns/{name}");
    let f = std::fs::File::open(&path).unwrap_or_else(|e| panic!("open {path}: {e}"));
    // SAFETY: setns on a valid netns fd; it changes only the calling thread's namespace.
    let rc = unsafe { libc::setns(f.as_raw_fd(), libc::CLONE_NEWNET) };
    assert_eq!(rc, 0, "setns {path}: {}", std::io::Error::last_os_error());
}

/// The config: the demo zone with www.example.test answering `address` from XDP on the
/// server veth, every path nobody needs in `dir` (readable by it).
fn write_config(dir: &Path, pin_dir: &Path, address: &str) -> PathBuf {
    let text = |p: &Path| format!("{:?}", p.display().to_string());
    let path = TestModel::new(&[&format!("{SERVER_V4}:53")])
        .set("server", &format!("pin_dir = {}", text(pin_dir)))
        .set("server", "xdp_mode = \"native\"")
        .set("server", &format!("interface = \"{SERVER_IF}\""))
        .set(
            "server",
            &format!("control_socket = {}", text(&dir.join("run/control.sock"))),
        )
        .demo_zone()
        .answer("www.example.test.", 30, &[(address, 1)])
        .write(dir);
    for f in std::fs::read_dir(dir)
        .expect("read the config dir")
        .flatten()
    {
        if f.path().is_file() {
            std::fs::set_permissions(f.path(), std::fs::Permissions::from_mode(0o644))
                .expect("chmod");
        }
    }
    path
}

/// xgslbd as nobody in the server namespace with exactly `caps` (setpriv's names).
fn xgslbd_as_nobody(t: &Topology, config: &Path, caps: &[&str]) -> (Child, mpsc::Receiver<String>) {
    let set: String = std::iter::once("-all".to_owned())
        .chain(caps.iter().map(|c| format!("+{c}")))
        .collect::<Vec<_>>()
        .join(",");
    let mut cmd = Command::new("nsenter");
    cmd.arg(format!("--net=/run/netns/{}", t.server))
        .args([
            "setpriv",
            "--reuid=65534",
            "--regid=65534",
            "--clear-groups",
        ])
        .arg(format!("--inh-caps={set}"))
        .arg(format!("--ambient-caps={set}"))
        .arg(format!("--bounding-set={set}"));
    // xgslbd as the other tests run it (JSON logs), behind nsenter and setpriv.
    let xgslbd = support::xgslbd(config);
    cmd.arg(xgslbd.get_program())
        .args(xgslbd.get_args())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    support::start(cmd)
}

/// Waits for a log line containing `text`; the lines seen if none comes.
fn wait_line(rx: &mpsc::Receiver<String>, text: &str) -> Result<String, Vec<String>> {
    let end = Instant::now() + DEADLINE;
    let mut seen = Vec::new();
    while let Some(left) = end.checked_duration_since(Instant::now()) {
        match rx.recv_timeout(left) {
            Ok(line) if line.contains(text) => return Ok(line),
            Ok(line) => seen.push(line),
            Err(_) => break,
        }
    }
    Err(seen)
}

/// Waits for `child` to exit by itself (killed and failed after the deadline).
fn wait_exit(child: &mut Child) -> std::process::ExitStatus {
    let end = Instant::now() + DEADLINE;
    loop {
        if let Some(status) = child.try_wait().expect("wait") {
            return status;
        }
        if Instant::now() > end {
            let _ = child.kill();
            panic!("xgslbd did not exit");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn answered_by_xdp(pin_dir: &Path) -> u64 {
    let stats = xgslb::maps::dataplane::read_pinned_stats(pin_dir).expect("read the XDP stats");
    stats[xgslb_common::Counter::Answered as usize]
}

#[test]
fn with_the_documented_capabilities_nobody_serves_from_xdp_and_without_one_is_told_which() {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        panic!("this test needs root (namespaces, bpffs, setpriv to nobody)");
    }
    let t = Topology::new();
    let dir = tempfile::tempdir().expect("temp dir");
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).expect("chmod");
    let run_dir = dir.path().join("run");
    std::fs::create_dir(&run_dir).expect("run dir");
    std::os::unix::fs::chown(&run_dir, Some(NOBODY), Some(NOBODY)).expect("chown");

    // Without each capability in turn: an error that names it, and no serving.
    let caps = caps();
    assert_eq!(caps.len(), 4, "{caps:?}");
    for (i, (_, name)) in caps.iter().enumerate() {
        let pin_dir = t.pin_dir();
        let config = write_config(dir.path(), &pin_dir, "198.18.1.10");
        let others: Vec<&str> = caps
            .iter()
            .enumerate()
            .filter(|&(j, _)| j != i)
            .map(|(_, (c, _))| c.as_str())
            .collect();
        let (mut child, rx) = xgslbd_as_nobody(&t, &config, &others);
        let status = wait_exit(&mut child);
        let lines: Vec<String> = rx.try_iter().collect();
        assert!(!status.success(), "started without {name}: {lines:#?}");
        let error = lines
            .iter()
            .find(|l| l.starts_with("xgslbd: "))
            .unwrap_or_else(|| panic!("no error line without {name}: {lines:#?}"));
        assert!(
            error.contains(&format!("missing {name} (")),
            "without {name}: {error}"
        );
    }

    // With all of them: attached, answering from XDP, reloading on SIGHUP.
    let pin_dir = t.pin_dir();
    let config = write_config(dir.path(), &pin_dir, "198.18.1.10");
    let all: Vec<&str> = caps.iter().map(|(c, _)| c.as_str()).collect();
    let (mut child, rx) = xgslbd_as_nobody(&t, &config, &all);
    if let Err(seen) = wait_line(&rx, "serving") {
        let _ = child.kill();
        panic!("xgslbd as nobody did not serve: {seen:#?}");
    }
    let before = answered_by_xdp(&pin_dir);
    assert_eq!(t.dig("www.example.test"), "198.18.1.10");
    assert_eq!(answered_by_xdp(&pin_dir), before + 1, "answered by XDP");
    let owner = std::fs::metadata(pin_dir.join(format!("link_{SERVER_IF}")))
        .map(|m| std::os::unix::fs::MetadataExt::uid(&m));
    assert_eq!(owner.ok(), Some(NOBODY), "the link pinned by nobody");

    write_config(dir.path(), &pin_dir, "198.18.1.11");
    // SAFETY: kill has no memory preconditions; the pid is our child's (setpriv execs).
    unsafe { libc::kill(child.id() as i32, libc::SIGHUP) };
    if let Err(seen) = wait_line(&rx, "reloaded") {
        let _ = child.kill();
        panic!("no reload: {seen:#?}");
    }
    assert_eq!(
        t.dig("www.example.test"),
        "198.18.1.11",
        "the reloaded answer"
    );
    assert_eq!(answered_by_xdp(&pin_dir), before + 2, "answered by XDP");

    // SAFETY: as above.
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    let status = wait_exit(&mut child);
    assert!(status.success(), "{status:?}");
    assert!(
        !pin_dir.join(format!("link_{SERVER_IF}")).exists(),
        "detached on exit"
    );
}
