//! `cargo xtask run`: xgslbd in the foreground on a given interface, or the demo, which puts
//! it in a network namespace of its own with a client namespace beside it (scripts/netns.sh).
use std::{
    io::{BufRead, BufReader},
    path::Path,
    process::{Child, Stdio},
    sync::{
        atomic::{AtomicBool, Ordering},
        mpsc,
    },
    time::{Duration, Instant},
};

use anyhow::{Context, Result, bail};

use crate::cmd::{Cmd, root, target_dir};

const DEMO_PREFIX: &str = "xgslb-demo";
const DEMO_VETH: &str = "xgd";
const SERVER_NS: &str = "xgslb-demo-srv";
const CLIENT_NS: &str = "xgslb-demo-cli";
const SERVER_IFACE: &str = "xgd-s0";
const CLIENT_IFACE: &str = "xgd-c0";
const DEMO_PIN_DIR: &str = "/sys/fs/bpf/xgslb-demo";
/// The pinned link of the XDP_PASS program on the client veth.
const PEER_PIN: &str = "/sys/fs/bpf/xgslb-demo-peer";
/// The line xgslbd prints once it serves.
const READY: &str = "xgslbd ready";
/// Loading the program and the zones takes well under a second; this only bounds a hang.
const READY_TIMEOUT: Duration = Duration::from_secs(60);

/// Runs xgslbd attached to `iface` until it exits. Ctrl-C reaches it directly (same process
/// group); this process only waits for it to shut down.
pub fn foreground(iface: &str, config: &Path) -> Result<()> {
    catch_signals();
    owner_only_keys(config.parent().unwrap_or(Path::new(".")))?;
    let bin = target_dir().join("release/xgslbd");
    Cmd::new(
        &bin,
        &[
            path_arg("--config", config),
            vec!["--iface".into(), iface.into()],
        ]
        .concat(),
    )
    .run()
}

fn path_arg(flag: &str, p: &Path) -> Vec<String> {
    vec![flag.into(), p.display().to_string()]
}

static INTERRUPTED: AtomicBool = AtomicBool::new(false);

extern "C" fn on_signal(_: libc::c_int) {
    INTERRUPTED.store(true, Ordering::SeqCst);
}

/// SIGINT and SIGTERM only set `INTERRUPTED`. Handlers (unlike an ignored signal) are reset to
/// the default in children at exec, so xgslbd still gets its own.
pub(crate) fn catch_signals() {
    // SAFETY: `on_signal` only stores to an atomic, which is async-signal-safe.
    unsafe {
        libc::signal(libc::SIGINT, on_signal as *const () as libc::sighandler_t);
        libc::signal(libc::SIGTERM, on_signal as *const () as libc::sighandler_t);
    }
}

/// Copies config/example.toml, its zone and its metrics file to target/demo/ and returns the
/// config's path there.
pub fn demo_config() -> Result<std::path::PathBuf> {
    let dir = target_dir().join("demo");
    std::fs::create_dir_all(&dir).with_context(|| format!("create {}", dir.display()))?;
    let keys = [
        "agent-tokyo.key",
        "agent-frankfurt.key",
        "agent-newyork.key",
    ];
    for file in ["example.toml", "example.test.zone", "metrics.example.toml"]
        .into_iter()
        .chain(keys)
    {
        let from = root().join("config").join(file);
        std::fs::copy(&from, dir.join(file))
            .with_context(|| format!("copy {} to {}", from.display(), dir.display()))?;
    }
    owner_only_keys(&dir)?;
    Ok(dir.join("example.toml"))
}

/// Makes the agent key files in `dir` owner-only, as xgslbd requires of secrets: git keeps
/// no file modes, so a fresh clone has them readable by all.
pub fn owner_only_keys(dir: &Path) -> Result<()> {
    use std::os::unix::fs::PermissionsExt;
    let entries = std::fs::read_dir(dir).with_context(|| format!("read {}", dir.display()))?;
    for e in entries.flatten() {
        let path = e.path();
        if path.extension().is_some_and(|x| x == "key") {
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600))
                .with_context(|| format!("chmod 0600 {}", path.display()))?;
        }
    }
    Ok(())
}

/// The demo: namespaces up, xgslbd in the server one, instructions once it is ready, and
/// everything removed on Ctrl-C or when xgslbd stops or fails.
pub fn demo(config: &Path) -> Result<()> {
    // The loop below sees the flag and cleans up.
    catch_signals();
    let netns = root().join("scripts/netns.sh");
    let mut demo = Demo {
        netns: netns.display().to_string(),
        child: None,
        helpers: Vec::new(),
    };
    Cmd::new("bash", &[demo.netns.as_str(), "up", DEMO_PREFIX, DEMO_VETH]).run()?;
    // veth hands the frames xgslbd sends with XDP_TX only to a peer running NAPI, which an
    // XDP program on the client end turns on.
    let _ = std::fs::remove_file(PEER_PIN);
    let testkit = target_dir().join("release/xgslb-testkit");
    Cmd::new(
        "nsenter",
        &[
            format!("--net=/run/netns/{CLIENT_NS}"),
            testkit.display().to_string(),
            "veth-peer".into(),
            "--iface".into(),
            CLIENT_IFACE.into(),
            "--pin".into(),
            PEER_PIN.into(),
        ],
    )
    .run()?;

    // nsenter --net, not `ip netns exec`: the latter remounts /sys in a mount namespace of its
    // own, which hides the bpffs at /sys/fs/bpf and with it the pins `xgslbctl` reads.
    let bin = target_dir().join("release/xgslbd");
    let mut cmd = Cmd::new(
        "nsenter",
        &[
            vec![
                format!("--net=/run/netns/{SERVER_NS}"),
                bin.display().to_string(),
            ],
            path_arg("--config", config),
            vec!["--iface".into(), SERVER_IFACE.into()],
            path_arg("--pin-dir", Path::new(DEMO_PIN_DIR)),
        ]
        .concat(),
    );
    eprintln!("+ {}", cmd.shown());
    cmd = cmd.dir(root());
    let mut command = cmd.into_command();
    let mut child = command
        .stdout(Stdio::piped())
        .spawn()
        .context("cannot start xgslbd")?;
    start_sites(&mut demo, config)?;
    let stdout = child.stdout.take().context("xgslbd stdout")?;
    demo.child = Some(child);

    let (ready_tx, ready_rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            println!("{line}");
            if line == READY {
                let _ = ready_tx.send(());
            }
        }
    });

    let started = Instant::now();
    let mut ready = false;
    loop {
        if INTERRUPTED.load(Ordering::SeqCst) {
            eprintln!("\nxtask: stopping the demo");
            return Ok(());
        }
        if let Some(status) = demo.child_mut().try_wait()? {
            bail!("xgslbd exited ({status})");
        }
        if !ready && ready_rx.try_recv().is_ok() {
            ready = true;
            print_instructions(config);
        }
        if !ready && started.elapsed() > READY_TIMEOUT {
            bail!("xgslbd did not print `{READY}` within {READY_TIMEOUT:?}");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn print_instructions(config: &Path) {
    let ctl = target_dir().join("release/xgslbctl");
    let metrics = config.with_file_name("metrics.example.toml");
    println!(
        "\nThe demo is up: xgslbd serves in namespace {SERVER_NS} (XDP on {SERVER_IFACE}).
Try, from another terminal:
  ip netns exec {CLIENT_NS} dig @198.18.0.2 www.example.test A
  ip netns exec {CLIENT_NS} kdig @2001:db8::2 cdn.example.test A
  ip netns exec {CLIENT_NS} dig @198.18.0.2 www.example.test AAAA  (static: from XDP too)
  ip netns exec {CLIENT_NS} dig @198.18.0.2 nothere.example.test A (NXDOMAIN from XDP)
  ip netns exec {CLIENT_NS} dig @198.18.0.2 host.lab.example.test A (a referral: slow path)
Regions: the client has an LDNS address in each of two regions; topology sends one to
frankfurt (198.18.2.10) and the other to tokyo (198.18.1.10):
  ip netns exec {CLIENT_NS} dig @198.18.0.2 geo.example.test A +short -b 198.18.0.1
  ip netns exec {CLIENT_NS} dig @198.18.0.2 geo.example.test A +short -b 198.18.0.130
  ip netns exec {CLIENT_NS} dig @2001:db8::2 geo.example.test A +short -b 2001:db8::8000:0:0:1
Agents: one per site checks the HTTP server behind each virtual server. Stop tokyo-www's
and gslb.example.test (round robin over every www) stops answering 198.18.1.10:
  for i in $(seq 12); do ip netns exec {CLIENT_NS} dig @198.18.0.2 gslb.example.test +short; done | sort | uniq -c
  pkill -f 'demo-http --listen 198.18.1.10:80'
Metrics: dyn.example.test weighs its app servers by least connections (frankfurt-app has
the fewest). Give it more and the answers move to tokyo within a few intervals (damped):
  for i in $(seq 20); do ip netns exec {CLIENT_NS} dig @198.18.0.2 dyn.example.test +short; done | sort | uniq -c
  sed -i 's/^connections = 100$/connections = 5000/' {}
  {} stats --pin-dir {DEMO_PIN_DIR}   (`answered` counts the XDP answers, `generation` the publications)
  {} status      (the agents: address, site, last report, state; the ingest's counters)
SIGHUP to xgslbd reloads {}.
Ctrl-C here stops xgslbd and removes the namespaces.\n",
        metrics.display(),
        ctl.display(),
        ctl.display(),
        config.display()
    );
}

/// A demo site: name, key file, key id, and its virtual servers (name, address:port).
type DemoSite = (
    &'static str,
    &'static str,
    u32,
    &'static [(&'static str, &'static str)],
);

/// The demo's sites: each v4 virtual server's address on the server namespace's loopback
/// with a small HTTP server behind it, and an agent per site checking them and reporting to
/// xgslbd (its [agents] port), all in the server namespace.
const DEMO_SITES: [DemoSite; 3] = [
    (
        "tokyo",
        "agent-tokyo.key",
        1,
        &[
            ("tokyo-www", "198.18.1.10:80"),
            ("tokyo-app", "198.18.1.40:8080"),
        ],
    ),
    (
        "frankfurt",
        "agent-frankfurt.key",
        2,
        &[
            ("frankfurt-www", "198.18.2.10:80"),
            ("frankfurt-app", "198.18.2.40:8080"),
        ],
    ),
    (
        "newyork",
        "agent-newyork.key",
        3,
        &[
            ("newyork-www", "198.18.3.10:80"),
            ("newyork-app", "198.18.3.40:8080"),
        ],
    ),
];

fn start_sites(demo: &mut Demo, config: &Path) -> Result<()> {
    let dir = config.parent().unwrap_or(Path::new("."));
    let testkit = target_dir().join("release/xgslb-testkit");
    let agent = target_dir().join("release/xgslb-agent");
    let in_server = |program: &Path, args: &[String]| {
        let mut a = vec![
            format!("--net=/run/netns/{SERVER_NS}"),
            program.display().to_string(),
        ];
        a.extend_from_slice(args);
        Cmd::new("nsenter", &a).dir(root()).into_command()
    };
    for (site, key, key_id, vss) in DEMO_SITES {
        let mut text = format!(
            "# A demo agent (written by cargo xtask run).\nagent_id = \"{site}-demo\"\n\
             site = \"{site}\"\ninterval_ms = 500\n\n[[edns]]\naddress = \"198.18.0.2:5300\"\n\
             key_id = {key_id}\nsecret_file = \"{key}\"\n"
        );
        for (vs, addr) in vss {
            let ip = addr.split(':').next().unwrap_or_default();
            Cmd::new(
                "ip",
                &[
                    "-n",
                    SERVER_NS,
                    "addr",
                    "add",
                    &format!("{ip}/32"),
                    "dev",
                    "lo",
                ],
            )
            .run()?;
            let server = in_server(
                &testkit,
                &["demo-http".into(), "--listen".into(), addr.to_string()],
            )
            .stdout(Stdio::null())
            .spawn()
            .with_context(|| format!("start the demo server of {vs}"))?;
            demo.helpers.push(server);
            text.push_str(&format!(
                "\n[[vs]]\nname = \"{vs}\"\n[vs.check]\nkind = \"http\"\n\
                 url = \"http://{addr}/\"\ninterval_ms = 500\ntimeout_ms = 400\n"
            ));
        }
        let path = dir.join(format!("agent-{site}.toml"));
        std::fs::write(&path, text).with_context(|| format!("write {}", path.display()))?;
        let child = in_server(&agent, &["--config".into(), path.display().to_string()])
            .stdout(Stdio::null())
            .spawn()
            .with_context(|| format!("start the {site} agent"))?;
        demo.helpers.push(child);
    }
    Ok(())
}

/// What the demo set up, removed on drop: on Ctrl-C, on any error, on a panic.
struct Demo {
    netns: String,
    child: Option<Child>,
    /// The demo's HTTP servers and agents, killed on drop.
    helpers: Vec<Child>,
}

impl Demo {
    fn child_mut(&mut self) -> &mut Child {
        self.child.as_mut().expect("set before the loop")
    }
}

impl Drop for Demo {
    fn drop(&mut self) {
        for helper in &mut self.helpers {
            let _ = helper.kill();
            let _ = helper.wait();
        }
        if let Some(child) = &mut self.child {
            stop(child);
        }
        let _ = std::fs::remove_file(PEER_PIN);
        if let Err(e) = Cmd::new("bash", &[self.netns.as_str(), "down", DEMO_PREFIX]).run() {
            eprintln!("xtask: removing the demo namespaces: {e:#}");
        }
        // An xgslbd that died leaves its pins; the link went with the namespace's veth.
        if let Ok(entries) = std::fs::read_dir(DEMO_PIN_DIR) {
            for e in entries.flatten() {
                let _ = std::fs::remove_file(e.path());
            }
            let _ = std::fs::remove_dir(DEMO_PIN_DIR);
        }
    }
}

/// SIGTERM (xgslbd detaches and exits), then SIGKILL if it has not exited in 10 s.
fn stop(child: &mut Child) {
    if matches!(child.try_wait(), Ok(Some(_))) {
        return;
    }
    if let Ok(pid) = libc::pid_t::try_from(child.id()) {
        // SAFETY: kill has no memory preconditions; the pid is our child's, not yet reaped.
        unsafe { libc::kill(pid, libc::SIGTERM) };
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        if matches!(child.try_wait(), Ok(Some(_))) {
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    eprintln!("xtask: xgslbd did not stop within 10 s; killing it");
    let _ = child.kill();
    let _ = child.wait();
}
