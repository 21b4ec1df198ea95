//! Response rate limiting end to end in network namespaces, on both paths (XDP on a real
//! veth, and the slow path with XDP off): a burst of a few hundred queries from one client
//! prefix, far faster than the rate, gets at most two seconds' worth of whole answers (the
//! burst may straddle a second boundary), every `slip`-th limited one as a truncated reply
//! and nothing for the rest, while a client in another prefix gets every answer meanwhile and
//! an exempt client is never limited, nor is one in the flooded prefix whose queries carry a
//! valid DNS server cookie (it proved it gets our replies there); the daemon's counters and its Prometheus endpoint
//! count exactly what the clients received. A reload turns the limit off and on again.
use std::{
    net::{SocketAddr, UdpSocket},
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicUsize, Ordering},
    },
    time::{Duration, Instant},
};

use xgslb::config::XdpModeSetting;
use xgslb_common::Counter;
use xgslb_tests::{
    daemon::{ConfigDir, Daemon, test_model},
    frame::{Opt, dns_query, wire_name},
    metrics::{HTTP_TOKEN, scrape},
    netns::{NetnsPair, SERVER_IF, SERVER_V4, run},
    servers::in_ns,
};

/// Responses per second per bucket, and slip.
const RATE: usize = 20;
const SLIP: usize = 2;
/// Queries of the burst, from two addresses of 198.18.0.0/24.
const BURST: usize = 300;
const FLOODERS: [&str; 2] = ["198.18.0.1", "198.18.0.5"];
/// A client of another prefix, asking `OTHER` times during the burst (fewer than `RATE`).
const NEIGHBOUR: &str = "198.18.1.77";
const OTHER: usize = 10;
/// A client of an exempt prefix, asking `EXEMPT` times (more than `RATE`).
const EXEMPTED: &str = "198.18.2.9";
const EXEMPT: usize = 3 * RATE;
/// A name both paths answer with one A record (XDP from its precomputed response).
const NAME: &str = "mail.example.test";
const METRICS: &str = "198.18.0.2:9153";
/// Bound on every wait: the daemon counting what it was sent, the replies arriving.
const DEADLINE: Duration = Duration::from_secs(20);

/// Header flags' TC bit.
const TC: u16 = 0x0200;

/// The pair with the clients' addresses, and xgslbd limiting responses in `mode`.
fn setup(tag: &str, mode: XdpModeSetting) -> (NetnsPair, ConfigDir, Daemon) {
    let pair = NetnsPair::new(tag);
    for (addr, net) in [
        ("198.18.0.5/24", None),
        ("198.18.1.77/24", Some("198.18.1.0/24")),
        ("198.18.2.9/24", Some("198.18.2.0/24")),
    ] {
        pair.add_client_address(addr);
        // The slow path's replies go through the server's routing table.
        if let Some(net) = net {
            run(&[
                "ip",
                "-n",
                &pair.server,
                "route",
                "add",
                net,
                "dev",
                SERVER_IF,
            ]);
        }
    }
    let cfg = ConfigDir::new(
        &test_model()
            .set("server", &format!("metrics_listen = \"{METRICS}\""))
            .http_token(HTTP_TOKEN)
            .set("rrl", &format!("responses_per_second = {RATE}"))
            .set("rrl", &format!("slip = {SLIP}"))
            .set("rrl", "exempt = [\"198.18.2.0/24\"]"),
    );
    let d = Daemon::start(&pair, &cfg.path(), mode);
    (pair, cfg, d)
}

/// What the daemon counted: responses sent whole, slipped, dropped by the limit.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
struct Counted {
    whole: u64,
    slipped: u64,
    dropped: u64,
}

fn counted(d: &Daemon, mode: XdpModeSetting) -> Counted {
    if mode == XdpModeSetting::Off {
        let t = d.handle().udp_totals();
        Counted {
            whole: t.planned + t.handled,
            slipped: t.rrl_slipped,
            dropped: t.rrl_dropped,
        }
    } else {
        let s = d.stats();
        Counted {
            whole: s[Counter::Answered as usize],
            slipped: s[Counter::RrlSlipped as usize],
            dropped: s[Counter::RrlDropped as usize],
        }
    }
}

/// Polls `done` until it holds or `DEADLINE` passes.
fn wait_for(what: &str, mut done: impl FnMut() -> bool) {
    let end = Instant::now() + DEADLINE;
    while !done() {
        assert!(Instant::now() < end, "{what}: not within {DEADLINE:?}");
        std::thread::yield_now();
    }
}

fn query(id: u16) -> Vec<u8> {
    dns_query(id, 0x0100, &wire_name(NAME), 1, 1, None)
}

/// A reply's flags and answer count.
fn flags_and_answers(reply: &[u8]) -> Option<(u16, u16)> {
    Some((
        u16::from_be_bytes([*reply.get(2)?, *reply.get(3)?]),
        u16::from_be_bytes([*reply.get(6)?, *reply.get(7)?]),
    ))
}

fn socket(addr: &str) -> UdpSocket {
    let s = UdpSocket::bind(format!("{addr}:0")).unwrap_or_else(|e| panic!("bind {addr}: {e}"));
    s.set_read_timeout(Some(Duration::from_millis(50)))
        .expect("read timeout");
    s
}

/// The query of `query` with a COOKIE option of `cookie` (a client cookie, perhaps with a
/// server cookie).
fn query_with_cookie(id: u16, cookie: &[u8]) -> Vec<u8> {
    let opt = Opt {
        options: vec![(10, cookie.to_vec())],
        ..Opt::plain()
    };
    dns_query(id, 0x0100, &wire_name(NAME), 1, 1, Some(&opt))
}

/// The client cookie of the cookie client.
const CLIENT_COOKIE: [u8; 8] = *b"xgslbrrl";

/// Asks (from the flooded prefix's first address, its bucket spent) with a client cookie
/// alone until a reply, whole or slipped (both carry the OPT), comes: the client and server
/// cookie it carries.
fn learn_server_cookie(s: &UdpSocket, server: SocketAddr) -> Vec<u8> {
    let mut buf = [0u8; 1500];
    let end = Instant::now() + DEADLINE;
    for id in 40_000u16.. {
        assert!(Instant::now() < end, "no reply with a server cookie");
        s.send_to(&query_with_cookie(id, &CLIENT_COOKIE), server)
            .expect("send");
        let Ok(n) = s.recv(&mut buf) else { continue };
        let mut option = vec![0, 10, 0, 24];
        option.extend_from_slice(&CLIENT_COOKIE);
        if let Some(at) = buf[..n].windows(option.len()).position(|w| w == option) {
            return buf[at + 4..at + 28].to_vec();
        }
        panic!("a reply without our cookie: {:02x?}", &buf[..n]);
    }
    unreachable!("the loop returns or panics")
}

/// Asks once from `s` and waits for the reply: whether it came whole (one record, no TC).
fn ask_whole(s: &UdpSocket, server: SocketAddr, id: u16) -> bool {
    ask_whole_with(s, server, id, &query(id))
}

/// `ask_whole` of the message `m` (its id `id`).
fn ask_whole_with(s: &UdpSocket, server: SocketAddr, id: u16, m: &[u8]) -> bool {
    s.send_to(m, server).expect("send");
    let end = Instant::now() + Duration::from_secs(2);
    let mut buf = [0u8; 1500];
    while Instant::now() < end {
        if let Ok(n) = s.recv(&mut buf)
            && buf[..2] == id.to_be_bytes()
        {
            return flags_and_answers(&buf[..n]).is_some_and(|(f, an)| f & TC == 0 && an == 1);
        }
    }
    false
}

/// Replies one flooder's socket received: whole and truncated.
#[derive(Default)]
struct Received {
    whole: AtomicUsize,
    truncated: AtomicUsize,
}

/// Reads replies on `s` into `got` until `stop`.
fn read_replies(s: UdpSocket, got: Arc<Received>, stop: Arc<AtomicBool>) {
    let mut buf = [0u8; 1500];
    while !stop.load(Ordering::Relaxed) {
        let Ok(n) = s.recv(&mut buf) else { continue };
        match flags_and_answers(&buf[..n]) {
            Some((f, 0)) if f & TC != 0 => got.truncated.fetch_add(1, Ordering::Relaxed),
            Some((f, 1)) if f & TC == 0 => got.whole.fetch_add(1, Ordering::Relaxed),
            other => panic!("an unexpected reply {other:?}: {:02x?}", &buf[..n]),
        };
    }
}

/// The samples of `xgslb_rrl_limited` for `path`: (slipped, dropped).
fn limited_metrics(pair: &NetnsPair, path: &str) -> (f64, f64) {
    let s = scrape(pair, METRICS);
    let get = |action: &str| {
        s.samples
            .iter()
            .find(|x| {
                x.metric == "xgslb_rrl_limited_total"
                    && x.labels.get("path") == Some(path)
                    && x.labels.get("action") == Some(action)
            })
            .map(|x| match x.value {
                prometheus_parse::Value::Counter(v) => v,
                _ => f64::NAN,
            })
            .unwrap_or_else(|| panic!("no xgslb_rrl_limited_total{{path={path},action={action}}}"))
    };
    (get("slipped"), get("dropped"))
}

fn limits_a_flood_from_one_prefix(tag: &str, mode: XdpModeSetting) {
    let (pair, _cfg, d) = setup(tag, mode);
    let path = if mode == XdpModeSetting::Off {
        "slow_path"
    } else {
        "xdp"
    };
    let server: SocketAddr = format!("{SERVER_V4}:53").parse().expect("addr");
    let before = counted(&d, mode);
    let metrics_before = limited_metrics(&pair, path);

    let got = Arc::new(Received::default());
    let stop = Arc::new(AtomicBool::new(false));
    let client = {
        let (got, stop) = (got.clone(), stop.clone());
        in_ns(&pair.client, move || {
            let flooders: Vec<UdpSocket> = FLOODERS.iter().map(|a| socket(a)).collect();
            let readers: Vec<_> = flooders
                .iter()
                .map(|s| {
                    let (s, got, stop) = (s.try_clone().expect("clone"), got.clone(), stop.clone());
                    std::thread::spawn(move || read_replies(s, got, stop))
                })
                .collect();
            let neighbour = socket(NEIGHBOUR);
            let mut neighbour_whole = 0;
            for i in 0..BURST {
                flooders[i % 2]
                    .send_to(&query(i as u16), server)
                    .expect("send");
                if i % (BURST / OTHER) == 0 {
                    neighbour_whole +=
                        usize::from(ask_whole(&neighbour, server, 50_000 + i as u16));
                }
            }
            (readers, neighbour_whole)
        })
    };
    let (readers, neighbour_whole) = client.join().expect("client thread");
    assert_eq!(
        neighbour_whole, OTHER,
        "{path}: the other prefix's queries were not all answered whole"
    );
    // The daemon has counted every query, and the clients have every reply it sent.
    let mut after = before;
    wait_for("the daemon counting the burst", || {
        after = counted(&d, mode);
        let c = |a: u64, b: u64| (a - b) as usize;
        c(after.whole, before.whole)
            + c(after.slipped, before.slipped)
            + c(after.dropped, before.dropped)
            == BURST + OTHER
    });
    let (whole, slipped, dropped) = (
        (after.whole - before.whole) as usize - OTHER,
        (after.slipped - before.slipped) as usize,
        (after.dropped - before.dropped) as usize,
    );
    wait_for("the replies reaching the flooders", || {
        got.whole.load(Ordering::Relaxed) == whole
            && got.truncated.load(Ordering::Relaxed) == slipped
    });
    stop.store(true, Ordering::Relaxed);
    for r in readers {
        r.join().expect("reader");
    }
    let report = format!("{path}: {whole} whole, {slipped} slipped, {dropped} dropped of {BURST}");
    println!("{report}");
    assert!((RATE..=2 * RATE).contains(&whole), "{report}");
    let limited = BURST - whole;
    assert_eq!(slipped + dropped, limited, "{report}");
    // Every SLIP-th limited reply slips, counted per second (two at most).
    assert!(
        (slipped * SLIP).abs_diff(limited) <= 2 * SLIP,
        "{report}: not about 1 in {SLIP} slipped"
    );
    // Exactly what the clients received, on the metrics endpoint too.
    assert_eq!(got.whole.load(Ordering::Relaxed), whole, "{report}");
    assert_eq!(got.truncated.load(Ordering::Relaxed), slipped, "{report}");
    let metrics = limited_metrics(&pair, path);
    assert_eq!(
        (metrics.0 - metrics_before.0, metrics.1 - metrics_before.1),
        (slipped as f64, dropped as f64),
        "{report}: Prometheus"
    );

    // An exempt client asks three seconds' worth at once: every answer whole.
    let exempt_whole = in_ns(&pair.client, move || {
        let s = socket(EXEMPTED);
        (0..EXEMPT)
            .filter(|&i| ask_whole(&s, server, 60_000 + i as u16))
            .count()
    })
    .join()
    .expect("exempt client");
    assert_eq!(
        exempt_whole, EXEMPT,
        "{path}: the exempt client was limited"
    );

    // A flooder that learnt a server cookie of ours and sends it back asks three seconds'
    // worth at once from the limited prefix: every answer whole.
    let cookie_whole = in_ns(&pair.client, move || {
        let s = socket(FLOODERS[0]);
        let cookie = learn_server_cookie(&s, server);
        (0..EXEMPT)
            .filter(|&i| {
                let id = 61_000 + i as u16;
                ask_whole_with(&s, server, id, &query_with_cookie(id, &cookie))
            })
            .count()
    })
    .join()
    .expect("cookie client");
    assert_eq!(
        cookie_whole, EXEMPT,
        "{path}: the client with a valid server cookie was limited"
    );
}

#[test]
fn xdp_limits_a_flood_from_one_prefix_with_slip() {
    limits_a_flood_from_one_prefix("rrl-xdp", XdpModeSetting::Native);
}

#[test]
fn the_slow_path_limits_a_flood_from_one_prefix_with_slip() {
    limits_a_flood_from_one_prefix("rrl-slow", XdpModeSetting::Off);
}

/// What the daemon did with `n` queries sent at once from the first flooder (the replies
/// are not read).
fn flood(pair: &NetnsPair, d: &Daemon, mode: XdpModeSetting, n: usize) -> Counted {
    let before = counted(d, mode);
    let server: SocketAddr = format!("{SERVER_V4}:53").parse().expect("addr");
    in_ns(&pair.client, move || {
        let s = socket(FLOODERS[0]);
        for i in 0..n {
            s.send_to(&query(i as u16), server).expect("send");
        }
    })
    .join()
    .expect("flooder");
    let mut after = before;
    wait_for("the daemon counting the flood", || {
        after = counted(d, mode);
        (after.whole + after.slipped + after.dropped) as usize
            == (before.whole + before.slipped + before.dropped) as usize + n
    });
    Counted {
        whole: after.whole - before.whole,
        slipped: after.slipped - before.slipped,
        dropped: after.dropped - before.dropped,
    }
}

#[test]
fn a_reload_turns_the_limit_off_and_on_on_both_paths() {
    for (tag, mode) in [
        ("rrl-reload-xdp", XdpModeSetting::Native),
        ("rrl-reload-slow", XdpModeSetting::Off),
    ] {
        let (pair, cfg, d) = setup(tag, mode);
        let limited = std::fs::read_to_string(cfg.path()).expect("the config");
        let off: String = limited
            .lines()
            .filter(|l| !l.starts_with("responses_per_second"))
            .map(|l| format!("{l}\n"))
            .collect();
        std::fs::write(cfg.path(), off).expect("write the config");
        d.handle().reload().expect("reload without a rate");
        let all = flood(&pair, &d, mode, 3 * RATE);
        assert_eq!(
            all.whole as usize,
            3 * RATE,
            "{tag}: limited while off: {all:?}"
        );
        std::fs::write(cfg.path(), limited).expect("write the config");
        d.handle().reload().expect("reload with a rate");
        let some = flood(&pair, &d, mode, 3 * RATE);
        assert!(
            some.whole as usize <= 2 * RATE && some.slipped > 0 && some.dropped > 0,
            "{tag}: not limited after the reload: {some:?}"
        );
    }
}
