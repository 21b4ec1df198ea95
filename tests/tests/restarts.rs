//! Restarts and upgrades with the real xgslbd binary, under load (issue 16, items 9 and
//! 10): `--replace` hands over without losing a query on either path, and a restart while
//! a virtual server is down never answers it.
use std::{
    net::SocketAddr,
    time::{Duration, Instant},
};

use hickory_proto::rr::RecordType;
use xgslb_tests::{
    daemon::{ConfigDir, test_model},
    load::{TcpStreamLoad, UdpStream, query},
    netns::{NetnsPair, SERVER_IF, SERVER_V4},
    pins::PinDir,
    process::Xgslbd,
};

/// Queries a second on each UDP stream, and at most on the TCP one: enough to keep every
/// path busy through a handover, little enough for two shared cores.
const UDP_RATE: u32 = 1000;
const TCP_RATE: u32 = 50;

/// Waits (bounded) until `done` holds.
fn wait_until(what: &str, done: impl Fn() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting: {what}");
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// `--replace` under a paced load of XDP-answered queries (www A), slow-path ones (ANY over
/// UDP, which XDP passes) and TCP queries: the new xgslbd takes the sockets and the lock,
/// the old one exits by itself, and not one query goes unanswered on any path; the new one
/// answers afterwards, from the same pins and the program still attached.
#[test]
fn replace_under_load_loses_no_query() {
    let pair = NetnsPair::new("repl");
    let cfg = ConfigDir::new(&test_model().answer("www.example.test.", 30, &[("198.18.1.10", 1)]));
    let pins = PinDir::new("repl");
    let control = format!(
        "/tmp/{}.control.sock",
        pins.path().file_name().expect("name").to_string_lossy()
    );
    let config = cfg.path().display().to_string();
    let pin_dir = pins.path().display().to_string();
    let args = |replace: bool| {
        let mut a = vec![
            "--config",
            &config,
            "--iface",
            SERVER_IF,
            "--xdp-mode",
            "native",
            "--pin-dir",
            &pin_dir,
            "--control-socket",
            &control,
        ];
        if replace {
            a.push("--replace");
        }
        a.into_iter().map(str::to_owned).collect::<Vec<_>>()
    };
    let old_args = args(false);
    let mut old = Xgslbd::start(&pair.server, &old_args);

    let server: SocketAddr = format!("{SERVER_V4}:53").parse().expect("addr");
    let xdp = UdpStream::start(
        &pair.client,
        server,
        query("www.example.test.", RecordType::A),
        UDP_RATE,
        None,
    );
    let slow = UdpStream::start(
        &pair.client,
        server,
        query("www.example.test.", RecordType::ANY),
        UDP_RATE,
        None,
    );
    let tcp = TcpStreamLoad::start(
        &pair.client,
        server,
        query("www.example.test.", RecordType::A),
        TCP_RATE,
        None,
    );
    wait_until("answers on every path before the replace", || {
        xdp.answered() > 200 && slow.answered() > 200 && tcp.answered() > 10
    });
    let before = xgslb::maps::dataplane::read_pinned_stats(pins.path()).expect("stats");

    let new_args = args(true);
    let mut new = Xgslbd::start(&pair.server, &new_args);
    let status = old.wait_exit();
    assert!(status.success(), "the replaced xgslbd ended with {status}");
    assert!(new.try_wait().is_none(), "the new xgslbd stopped");

    // The new one alone answers from here: on every path, well after the old one exited.
    let (x, s, t) = (xdp.answered(), slow.answered(), tcp.answered());
    wait_until("answers on every path after the replace", || {
        xdp.answered() > x + 500 && slow.answered() > s + 500 && tcp.answered() > t + 20
    });
    let (xdp, slow, (tcp, tcp_errors)) = (xdp.finish(), slow.finish(), tcp.finish());
    eprintln!("replace under load: XDP {xdp:?}, slow path {slow:?}, TCP {tcp:?}");
    assert_eq!(xdp.lost(), 0, "XDP queries lost: {xdp:?}");
    assert_eq!(slow.lost(), 0, "slow-path UDP queries lost: {slow:?}");
    assert_eq!(tcp.lost(), 0, "TCP queries lost: {tcp:?} {tcp_errors:?}");

    // XDP answered on through the adopted pins; the new xgslbd's slow path answered ANY.
    let after = xgslb::maps::dataplane::read_pinned_stats(pins.path()).expect("stats");
    let answered = xgslb_common::Counter::Answered as usize;
    assert!(
        after[answered] > before[answered] + 500,
        "{before:?} {after:?}"
    );
    assert!(pair.xdp_attached(), "the program was detached");
    let status = xgslb::control::client::command(
        std::path::Path::new(&control),
        xgslb::control::protocol::Command::Status,
    )
    .expect("the new xgslbd's control socket answers");
    let udp = status.as_status().expect("status").udp;
    assert!(udp.answered_by_handler >= 500, "{udp:?}");

    assert!(new.signal(libc::SIGTERM).success());
    assert!(!pair.xdp_attached(), "a normal stop detaches");
}

const AGENT_KEY: &str = "0123456789abcdef0123456789abcdef-warm";
/// The agents' report timeout in this test: short, so that a state file is soon stale.
const TIMEOUT_MS: u64 = 1000;

/// Signed reports, as an agent sends them, from the client namespace every 100 ms while not
/// paused: tokyo-www down, newyork-www up.
struct Reporter {
    paused: std::sync::Arc<std::sync::atomic::AtomicBool>,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Reporter {
    fn start(ns: &str, to: SocketAddr) -> Self {
        use std::sync::{Arc, atomic::AtomicBool, atomic::Ordering};
        use xgslb::metrics::wire::{Header, Kind, Record, encode};
        let (paused, stop) = (
            Arc::new(AtomicBool::new(false)),
            Arc::new(AtomicBool::new(false)),
        );
        let (p, s, ns) = (paused.clone(), stop.clone(), ns.to_owned());
        let thread = std::thread::spawn(move || {
            xgslb_tests::netns::enter_namespace(&ns);
            let socket = std::net::UdpSocket::bind("0.0.0.0:0").expect("bind");
            let key = xgslb::secret::Key {
                id: 1,
                secret: AGENT_KEY.as_bytes().to_vec(),
            };
            let mut sequence = 0u64;
            while !s.load(Ordering::Relaxed) {
                if !p.load(Ordering::Relaxed) {
                    for (site, vs, up) in [
                        ("tokyo", "tokyo-www", false),
                        ("newyork", "newyork-www", true),
                    ] {
                        sequence += 1;
                        let header = Header {
                            kind: Kind::Report,
                            key_id: 1,
                            sequence,
                            timestamp_ms: xgslb::daemon::ingest::now_ms(),
                            agent: format!("{site}-agent"),
                            site: site.into(),
                        };
                        let records = [Record::Health { vs: vs.into(), up }];
                        for d in encode(&header, &records, &key) {
                            let _ = socket.send_to(&d, to);
                        }
                    }
                }
                // The agent's own pace, not a wait for anything.
                std::thread::sleep(Duration::from_millis(100));
            }
        });
        Reporter {
            paused,
            stop,
            thread: Some(thread),
        }
    }

    fn pause(&self, paused: bool) {
        self.paused
            .store(paused, std::sync::atomic::Ordering::Relaxed);
    }
}

impl Drop for Reporter {
    fn drop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// `explain warm.example.test` over the control socket at `control`.
fn explain(control: &str) -> xgslb::control::protocol::Explain {
    let r = xgslb::control::client::command(
        std::path::Path::new(control),
        xgslb::control::protocol::Command::Explain {
            wideip: "warm.example.test.".into(),
            client: "198.18.0.1".into(),
            ecs: None,
        },
    )
    .expect("explain");
    r.as_explain().cloned().unwrap_or_else(|| panic!("{r:?}"))
}

/// A restart while a virtual server is down never answers it (issue 16, item 10): agents
/// report tokyo-www down; xgslbd is killed (-9) and its agents fall silent long enough for
/// its state file to be older than the report timeout; a new xgslbd adopts the program
/// and, knowing less than it, keeps its maps and answers the slow path from the last known
/// reports until the agents report again. Queried all along on XDP (UDP A), the slow path
/// (UDP ANY, TCP A): no answer ever holds tokyo-www's address, and `explain` says what the
/// decision rests on while warming up.
#[test]
fn a_restart_while_a_vs_is_down_never_answers_it() {
    let pair = NetnsPair::new("warm");
    let model = test_model()
        .set("balancer", "interval_ms = 100")
        .set("balancer", "warm_grace_ms = 60000")
        .agents("198.18.0.2:5300")
        .set("agents", &format!("report_timeout_ms = {TIMEOUT_MS}"))
        .agent_key(1, "agent.key", None)
        .site("tokyo", "tokyo-lb", &[("tokyo-www", "198.18.1.10")])
        .site("newyork", "newyork-lb", &[("newyork-www", "198.18.3.10")])
        .pool("p", &["tokyo-www", "newyork-www"], "round_robin")
        .wideip("warm.example.test.", &["p"]);
    let cfg = ConfigDir::new(&model);
    let dir = cfg.path().parent().expect("dir").to_owned();
    xgslb_tests::agents::write_key(&dir.join("agent.key"), AGENT_KEY);
    let state = dir.join("state.json");
    let pins = PinDir::new("warm");
    let control = format!(
        "/tmp/{}.control.sock",
        pins.path().file_name().expect("name").to_string_lossy()
    );
    let args: Vec<String> = [
        "--config",
        &cfg.path().display().to_string(),
        "--iface",
        SERVER_IF,
        "--xdp-mode",
        "native",
        "--pin-dir",
        &pins.path().display().to_string(),
        "--control-socket",
        &control,
    ]
    .into_iter()
    .map(str::to_owned)
    .collect();
    let mut old = Xgslbd::start(&pair.server, &args);
    let reporter = Reporter::start(&pair.client, "198.18.0.2:5300".parse().expect("addr"));
    wait_until("tokyo-www down in the decision", || {
        explain(&control).outcome.contains("newyork-www 100.0%")
    });

    let tokyo: std::net::Ipv4Addr = "198.18.1.10".parse().expect("addr");
    let server: SocketAddr = format!("{SERVER_V4}:53").parse().expect("addr");
    let xdp = UdpStream::start(
        &pair.client,
        server,
        query("warm.example.test.", RecordType::A),
        UDP_RATE,
        Some(tokyo),
    );
    let slow = UdpStream::start(
        &pair.client,
        server,
        query("warm.example.test.", RecordType::ANY),
        UDP_RATE / 4,
        Some(tokyo),
    );
    let tcp = TcpStreamLoad::start(
        &pair.client,
        server,
        query("warm.example.test.", RecordType::A),
        TCP_RATE,
        Some(tokyo),
    );
    wait_until("answers before the kill, and the state saved", || {
        xdp.answered() > 100 && slow.answered() > 25 && tcp.answered() > 5 && state.exists()
    });

    // The agents fall silent and xgslbd dies; its state file grows older than the timeout.
    reporter.pause(true);
    assert!(!old.signal(libc::SIGKILL).success());
    let saved = std::fs::metadata(&state)
        .and_then(|m| m.modified())
        .expect("a state file was saved while serving");
    wait_until("the state file older than the report timeout", || {
        saved
            .elapsed()
            .is_ok_and(|a| a > Duration::from_millis(TIMEOUT_MS + 500))
    });
    let new = Xgslbd::start(&pair.server, &args);
    let during = explain(&control);
    let data = during.data.join("\n");
    assert!(data.contains("warming up"), "{during:?}");
    assert!(
        data.contains("tokyo-www: health unknown") && data.contains("held"),
        "{during:?}"
    );
    assert!(during.outcome.contains("newyork-www 100.0%"), "{during:?}");
    let (x, s, t) = (xdp.answered(), slow.answered(), tcp.answered());
    wait_until("answers while warming up", || {
        xdp.answered() > x + 300 && slow.answered() > s + 75 && tcp.answered() > t + 15
    });
    assert!(
        explain(&control)
            .data
            .iter()
            .any(|l| l.contains("warming up"))
    );

    // The agents report again: warm, published, and still never tokyo-www.
    reporter.pause(false);
    wait_until("warm once the agents reported", || {
        explain(&control).data.is_empty()
    });
    let (x, s, t) = (xdp.answered(), slow.answered(), tcp.answered());
    wait_until("answers once warm", || {
        xdp.answered() > x + 300 && slow.answered() > s + 75 && tcp.answered() > t + 15
    });
    let (xdp, slow, (tcp, _)) = (xdp.finish(), slow.finish(), tcp.finish());
    eprintln!("restart while down: XDP {xdp:?}, slow path {slow:?}, TCP {tcp:?}");
    assert_eq!(xdp.forbidden, 0, "XDP answered the down VS: {xdp:?}");
    assert_eq!(
        slow.forbidden, 0,
        "the slow path answered the down VS: {slow:?}"
    );
    assert_eq!(tcp.forbidden, 0, "TCP answered the down VS: {tcp:?}");
    drop(new);
}
