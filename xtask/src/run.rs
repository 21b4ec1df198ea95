//! `cargo xtask run`: xgslbd in the foreground on a given interface, or the demo, which puts
//! it in a network namespace of its own with a client namespace beside it (scripts/netns.sh),
//! and a second, peered xgslbd (another EDNS, at another site) on a second address there.
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
/// The demo's second EDNS: its config beside the first's, its addresses on the server
/// namespace's veth (the first's XDP program passes queries to them up the stack), and its
/// control socket (passed on its command line, so that the instructions are right).
pub const EDNS2_CONFIG: &str = "example-edns2.toml";
const EDNS2_NAME: &str = "edns-newyork";
const EDNS2_V4: &str = "198.18.0.3";
const EDNS2_V6: &str = "2001:db8::3";
const EDNS2_SOCKET: &str = "/run/xgslb/edns2.sock";
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

/// Copies config/example.toml, the second EDNS's config, their zone, metrics file and keys to
/// target/demo/ and returns the first config's path there.
pub fn demo_config() -> Result<std::path::PathBuf> {
    let dir = target_dir().join("demo");
    std::fs::create_dir_all(&dir).with_context(|| format!("create {}", dir.display()))?;
    let keys = [
        "agent-tokyo.key",
        "agent-frankfurt.key",
        "agent-newyork.key",
        "peer-tokyo-newyork.key",
    ];
    for file in [
        "example.toml",
        EDNS2_CONFIG,
        "example.test.zone",
        "metrics.example.toml",
    ]
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

/// Makes the key files (agents', peers') in `dir` owner-only, as xgslbd requires of secrets: git keeps
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

/// The demo: namespaces up, xgslbd in the server one (and with `second`, the config of a
/// second EDNS, a peered xgslbd on a second address there), instructions once every xgslbd
/// is ready, and everything removed on Ctrl-C or when an xgslbd stops or fails.
pub fn demo(config: &Path, second: Option<&Path>) -> Result<()> {
    // The loop below sees the flag and cleans up.
    catch_signals();
    let netns = root().join("scripts/netns.sh");
    let mut demo = Demo {
        netns: netns.display().to_string(),
        ednss: Vec::new(),
        helpers: Vec::new(),
    };
    Cmd::new("bash", &[demo.netns.as_str(), "up", DEMO_PREFIX, DEMO_VETH]).run()?;
    if second.is_some() {
        add_edns2_addresses()?;
    }
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

    let bin = target_dir().join("release/xgslbd");
    let (ready_tx, ready_rx) = mpsc::channel();
    demo.start_edns(
        "xgslbd",
        in_server(
            &bin,
            &[
                path_arg("--config", config),
                vec!["--iface".into(), SERVER_IFACE.into()],
                path_arg("--pin-dir", Path::new(DEMO_PIN_DIR)),
            ]
            .concat(),
        ),
        false,
        ready_tx.clone(),
    )?;
    if let Some(second) = second {
        // No --iface: its config has XDP off.
        demo.start_edns(
            EDNS2_NAME,
            in_server(
                &bin,
                &[
                    path_arg("--config", second),
                    path_arg("--control-socket", Path::new(EDNS2_SOCKET)),
                ]
                .concat(),
            ),
            true,
            ready_tx,
        )?;
    }
    start_sites(&mut demo, config, second.is_some())?;

    let started = Instant::now();
    let mut ready = 0;
    let mut shown = false;
    loop {
        if INTERRUPTED.load(Ordering::SeqCst) {
            eprintln!("\nxtask: stopping the demo");
            return Ok(());
        }
        for (name, child) in &mut demo.ednss {
            if let Some(status) = child.try_wait()? {
                bail!("{name} exited ({status})");
            }
        }
        while ready_rx.try_recv().is_ok() {
            ready += 1;
        }
        if !shown && ready == demo.ednss.len() {
            shown = true;
            let first = demo.ednss[0].1.id();
            print_instructions(config, second.is_some().then_some(first));
        }
        if !shown && started.elapsed() > READY_TIMEOUT {
            bail!("xgslbd did not print `{READY}` within {READY_TIMEOUT:?}");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// `program` with `args`, run in the server namespace from the workspace root. nsenter
/// --net, not `ip netns exec`: the latter remounts /sys in a mount namespace of its own,
/// which hides the bpffs at /sys/fs/bpf and with it the pins `xgslbctl` reads.
fn in_server(program: &Path, args: &[String]) -> Cmd {
    let mut a = vec![
        format!("--net=/run/netns/{SERVER_NS}"),
        program.display().to_string(),
    ];
    a.extend_from_slice(args);
    Cmd::new("nsenter", &a).dir(root())
}

/// The second EDNS's addresses, beside the first's on the server end of the veth: the
/// client reaches both over it (no duplicate address detection, as netns.sh).
fn add_edns2_addresses() -> Result<()> {
    for (addr, extra) in [
        (format!("{EDNS2_V4}/24"), None),
        (format!("{EDNS2_V6}/64"), Some("nodad")),
    ] {
        let mut args = vec!["-n", SERVER_NS, "addr", "add", &addr, "dev", SERVER_IFACE];
        args.extend(extra);
        Cmd::new("ip", &args).run()?;
    }
    Ok(())
}

/// The commands to try; `peered`: the second EDNS runs, and this is the first's pid.
fn print_instructions(config: &Path, peered: Option<u32>) {
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
  sed -i 's/^connections = 100$/connections = 5000/' {metrics}
  {ctl} stats --pin-dir {DEMO_PIN_DIR}   (`answered` counts the XDP answers, `generation` the publications)
  {ctl} status      (the agents: address, site, last report, state; the ingest's counters)
SIGHUP to xgslbd reloads {config}.",
        metrics = metrics.display(),
        ctl = ctl.display(),
        config = config.display()
    );
    if let Some(first) = peered {
        println!(
            "
A second EDNS, {EDNS2_NAME} (site newyork; slow path only, XDP off), answers on {EDNS2_V4}
and {EDNS2_V6}, peered with the first (edns-tokyo); its log lines start with `{EDNS2_NAME} |`.
The newyork agent reports to it alone, tokyo's and frankfurt's to the first; each EDNS
relays what it accepts to the other, so both know all three agents:
  {ctl} status --socket {EDNS2_SOCKET}
  {ctl} peers --socket {EDNS2_SOCKET}   (edns-tokyo: state, relays, decisions held, agreement)
  {ctl} peers                                (the first's view of edns-newyork)
It defers geo.example.test to edns-tokyo: it serves the first's decision, per client class:
  ip netns exec {CLIENT_NS} dig @{EDNS2_V4} geo.example.test A +short -b 198.18.0.1
  ip netns exec {CLIENT_NS} dig @{EDNS2_V4} geo.example.test A +short -b 198.18.0.130
  {ctl} explain geo.example.test --client 198.18.0.1 --socket {EDNS2_SOCKET}
Take frankfurt out on the first EDNS only: the second follows it for geo (198.18.3.10 now),
while its own wide IPs keep frankfurt (gslb.example.test still answers 198.18.2.10):
  {ctl} disable --site frankfurt
  ip netns exec {CLIENT_NS} dig @{EDNS2_V4} geo.example.test A +short -b 198.18.0.1
  for i in $(seq 12); do ip netns exec {CLIENT_NS} dig @{EDNS2_V4} gslb.example.test +short; done | sort | uniq -c
  {ctl} enable --site frankfurt
Pause the first EDNS: 3 s on (silent_after_ms) the second decides geo itself (explain says
so) -- with tokyo's and frankfurt's servers down, as their agents report to the first alone;
resume it and the second follows it again:
  kill -STOP {first}; sleep 4; {ctl} explain geo.example.test --client 198.18.0.1 --socket {EDNS2_SOCKET}
  kill -CONT {first}",
            ctl = ctl.display(),
        );
    }
    println!("Ctrl-C here stops every xgslbd and removes the namespaces.\n");
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

/// The site of the second EDNS, whose agent reports to it (and only to it) when it runs:
/// the first hears that agent by relay, as the second hears the others.
const EDNS2_SITE: &str = "newyork";

fn start_sites(demo: &mut Demo, config: &Path, second: bool) -> Result<()> {
    let dir = config.parent().unwrap_or(Path::new("."));
    let testkit = target_dir().join("release/xgslb-testkit");
    let agent = target_dir().join("release/xgslb-agent");
    for (site, key, key_id, vss) in DEMO_SITES {
        let edns = if second && site == EDNS2_SITE {
            EDNS2_V4
        } else {
            "198.18.0.2"
        };
        let mut text = format!(
            "# A demo agent (written by cargo xtask run).\nagent_id = \"{site}-demo\"\n\
             site = \"{site}\"\ninterval_ms = 500\n\n[[edns]]\naddress = \"{edns}:5300\"\n\
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
            .into_command()
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
            .into_command()
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
    /// Each xgslbd, by the name errors give it.
    ednss: Vec<(&'static str, Child)>,
    /// The demo's HTTP servers and agents, killed on drop.
    helpers: Vec<Child>,
}

impl Demo {
    /// Starts an xgslbd (`cmd`): its stdout printed here, and `ready` told when it serves.
    /// `labelled`: its stdout and stderr lines start with `name |`, to tell it from the
    /// first, whose stderr is this terminal's.
    fn start_edns(
        &mut self,
        name: &'static str,
        cmd: Cmd,
        labelled: bool,
        ready: mpsc::Sender<()>,
    ) -> Result<()> {
        eprintln!("+ {}", cmd.shown());
        let mut command = cmd.into_command();
        command.stdout(Stdio::piped());
        if labelled {
            command.stderr(Stdio::piped());
        }
        let mut child = command
            .spawn()
            .with_context(|| format!("cannot start {name}"))?;
        let label = if labelled {
            format!("{name} | ")
        } else {
            String::new()
        };
        let stdout = child.stdout.take().context("xgslbd stdout")?;
        let stderr = child.stderr.take();
        self.ednss.push((name, child));
        if let Some(stderr) = stderr {
            let label = label.clone();
            std::thread::spawn(move || {
                for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                    eprintln!("{label}{line}");
                }
            });
        }
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                println!("{label}{line}");
                if line == READY {
                    let _ = ready.send(());
                }
            }
        });
        Ok(())
    }
}

impl Drop for Demo {
    fn drop(&mut self) {
        for helper in &mut self.helpers {
            let _ = helper.kill();
            let _ = helper.wait();
        }
        // All told first, so that they shut down together.
        for (_, child) in &mut self.ednss {
            terminate(child);
        }
        for (name, child) in &mut self.ednss {
            wait_or_kill(name, child);
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

/// SIGTERM (xgslbd detaches and exits), unless it has exited already; then SIGCONT, so
/// that one paused with `kill -STOP` (as the instructions suggest) gets it too.
fn terminate(child: &mut Child) {
    if matches!(child.try_wait(), Ok(Some(_))) {
        return;
    }
    if let Ok(pid) = libc::pid_t::try_from(child.id()) {
        // SAFETY: kill has no memory preconditions; the pid is our child's, not yet reaped.
        unsafe {
            libc::kill(pid, libc::SIGTERM);
            libc::kill(pid, libc::SIGCONT);
        }
    }
}

/// Waits for `child` to exit, and SIGKILLs it if it has not within 10 s.
fn wait_or_kill(name: &str, child: &mut Child) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        if matches!(child.try_wait(), Ok(Some(_))) {
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    eprintln!("xtask: {name} did not stop within 10 s; killing it");
    let _ = child.kill();
    let _ = child.wait();
}
