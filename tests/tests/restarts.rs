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

fn xdp_attached(pair: &NetnsPair) -> bool {
    let out = std::process::Command::new("ip")
        .args(["-n", &pair.server, "link", "show", SERVER_IF])
        .output()
        .expect("ip link show");
    String::from_utf8_lossy(&out.stdout).contains("prog/xdp")
}

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
    assert!(xdp_attached(&pair), "the program was detached");
    let status = xgslb::control::client::command(
        std::path::Path::new(&control),
        xgslb::control::protocol::Command::Status,
    )
    .expect("the new xgslbd's control socket answers");
    let udp = status.as_status().expect("status").udp;
    assert!(udp.answered_by_handler >= 500, "{udp:?}");

    assert!(new.signal(libc::SIGTERM).success());
    assert!(!xdp_attached(&pair), "a normal stop detaches");
}
