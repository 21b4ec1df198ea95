//! The slow path's UDP workers under real traffic: xgslbd with XDP off in one namespace,
//! clients in another sending over IPv4 and IPv6 from many source ports, from a thread
//! pinned to each core (the kernel steers a datagram to the worker of the CPU that received
//! it, so every worker gets its share). Every query is answered exactly once and as the full
//! handler answers it; malformed datagrams sent to every worker get what the handler gives
//! them (a response or nothing), and every worker keeps answering.
use std::net::{IpAddr, SocketAddr, UdpSocket};
use std::time::Duration;

use hickory_proto::op::Message;
use xgslb::{
    config::{Config, XdpModeSetting},
    daemon::build,
    dns::Transport,
};
use xgslb_tests::{
    daemon::{ConfigDir, Daemon, test_model},
    frame::{Opt, dns_query, wire_name},
    metrics::{sample, scrape, value},
    netns::{CLIENT_V4, CLIENT_V6, NetnsPair, SERVER_V4, SERVER_V6},
    servers::in_ns,
};

/// The test config with the metrics endpoint on and UDP queries spread by `steering`; one
/// address for www, so that any pick gives the same answer and a response can be checked
/// against the handler's.
fn config(steering: &str) -> ConfigDir {
    ConfigDir::new(
        &test_model()
            .set("server", "metrics_listen = \"198.18.0.2:9153\"")
            .http_token(xgslb_tests::metrics::HTTP_TOKEN)
            .set("server", &format!("udp_steering = \"{steering}\""))
            .answer("www.example.test.", 30, &[("198.18.1.10", 1)]),
    )
}

/// Questions answered from the plan (an answer set, a static RRset, NXDOMAIN, MX with
/// additional data) and by the handler (a referral, ANY, a client-subnet option).
const QUESTIONS: &[(&str, u16, bool)] = &[
    ("www.example.test", 1, false),
    ("api.example.test", 1, false),
    ("nope.example.test", 1, false),
    ("example.test", 15, false),
    ("host.lab.example.test", 1, false),
    ("example.test", 255, false),
    ("www.example.test", 1, true),
];

/// Source sockets per family per thread.
const SOCKETS: usize = 24;
/// Queries per socket, one outstanding at a time.
const ROUNDS: usize = 15;
/// How long a reply may take before the test calls it lost.
const REPLY_TIMEOUT: Duration = Duration::from_secs(3);

fn query(id: u16, (name, qtype, ecs): (&str, u16, bool)) -> Vec<u8> {
    let mut opt = Opt::plain();
    if ecs {
        // ECS for 198.18.0.0/24 (RFC 7871): family 1, source /24, scope 0, 3 address bytes.
        opt.options.push((8, vec![0, 1, 24, 0, 198, 18, 0]));
    }
    dns_query(id, 0x0100, &wire_name(name), qtype, 1, Some(&opt))
}

/// The parts of a response that must match the handler's (the plan may compress names
/// differently; DNS compares them without regard to case).
fn essentials(bytes: &[u8]) -> String {
    let m = Message::from_vec(bytes).expect("a response that parses");
    format!(
        "{:?} {:?} {:?} {:?} {:?} {:?}",
        m.metadata,
        m.queries,
        m.answers,
        m.authorities,
        m.additionals,
        m.edns
            .as_ref()
            .map(|e| (e.max_payload(), e.flags().dnssec_ok))
    )
}

/// A client socket bound in the client namespace (the calling thread's) to `family`'s
/// address and an ephemeral port.
fn client_socket(v6: bool) -> UdpSocket {
    let bind: SocketAddr = if v6 {
        format!("[{CLIENT_V6}]:0")
    } else {
        format!("{CLIENT_V4}:0")
    }
    .parse()
    .expect("address");
    let s = UdpSocket::bind(bind).expect("bind a client socket");
    s.set_read_timeout(Some(REPLY_TIMEOUT)).expect("timeout");
    s
}

fn server(v6: bool) -> SocketAddr {
    if v6 {
        format!("[{SERVER_V6}]:53")
    } else {
        format!("{SERVER_V4}:53")
    }
    .parse()
    .expect("address")
}

/// The machine's cores, by id.
fn cores() -> Vec<usize> {
    core_affinity::get_core_ids()
        .expect("cores")
        .iter()
        .map(|c| c.id)
        .collect()
}

/// `f(core)` on a thread in the client namespace pinned to each core; their results.
fn on_every_core<T: Send + 'static>(
    pair: &NetnsPair,
    f: impl Fn(usize) -> T + Send + Sync + 'static,
) -> Vec<T> {
    let f = std::sync::Arc::new(f);
    let threads: Vec<_> = cores()
        .into_iter()
        .map(|core| {
            let f = f.clone();
            in_ns(&pair.client, move || {
                core_affinity::set_for_current(core_affinity::CoreId { id: core });
                f(core)
            })
        })
        .collect();
    threads
        .into_iter()
        .map(|t| t.join().expect("client thread"))
        .collect()
}

/// Every one of the `workers` workers read some of the queries (Prometheus says).
fn every_worker_read_some(pair: &NetnsPair, workers: usize) {
    let s = scrape(pair, "198.18.0.2:9153");
    for w in 0..workers {
        let got = sample(
            &s,
            "xgslb_slow_path_udp_worker_received_total",
            ("worker", &w.to_string()),
        );
        assert!(
            got > 0.0,
            "worker {w} read nothing: the kernel did not spread"
        );
    }
}

/// Waits for the reply to `id` on `s`; returns it and whatever came before it.
fn reply_to(s: &UdpSocket, id: u16) -> (Vec<u8>, Vec<Vec<u8>>) {
    let mut before = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        let n = s
            .recv(&mut buf)
            .unwrap_or_else(|e| panic!("no reply to query {id}: {e}"));
        let r = buf[..n].to_vec();
        if n >= 2 && u16::from_be_bytes([r[0], r[1]]) == id {
            return (r, before);
        }
        before.push(r);
    }
}

/// Steered by the receiving CPU: the client threads, one per core, send from every CPU.
#[test]
fn steered_by_cpu_every_worker_answers_each_query_once() {
    each_query_answered_once_by_every_worker("cpu", "udpc");
}

/// Spread by the kernel's hash of addresses and ports.
#[test]
fn spread_by_hash_every_worker_answers_each_query_once() {
    each_query_answered_once_by_every_worker("hash", "udph");
}

fn each_query_answered_once_by_every_worker(steering: &str, tag: &str) {
    let pair = NetnsPair::new(tag);
    let dir = config(steering);
    let cfg = Config::load(&dir.path()).expect("config");
    let built = std::sync::Arc::new(build(&cfg).expect("build"));
    let d = Daemon::start(&pair, &dir.path(), XdpModeSetting::Off);
    let cores = cores();
    let answered: usize = on_every_core(&pair, move |core| {
        let sockets: Vec<(UdpSocket, bool)> = (0..2 * SOCKETS)
            .map(|i| (client_socket(i % 2 == 1), i % 2 == 1))
            .collect();
        let mut answered = 0usize;
        for round in 0..ROUNDS {
            let sent: Vec<(u16, Vec<u8>)> = sockets
                .iter()
                .enumerate()
                .map(|(i, (s, v6))| {
                    let id = (core * 10_000 + round * 2 * SOCKETS + i) as u16;
                    let q = query(id, QUESTIONS[(round + i) % QUESTIONS.len()]);
                    s.send_to(&q, server(*v6)).expect("send");
                    (id, q)
                })
                .collect();
            for ((s, v6), (id, q)) in sockets.iter().zip(&sent) {
                let (reply, extra) = reply_to(s, *id);
                assert!(extra.is_empty(), "replies to no query before {id}");
                let client: IpAddr = if *v6 { CLIENT_V6 } else { CLIENT_V4 }
                    .parse()
                    .expect("client");
                let want = built
                    .catalog
                    .respond(q, Transport::Udp, client, &*built.snapshot)
                    .expect("the handler answers every question here");
                assert_eq!(essentials(&reply), essentials(&want), "query {id}");
                answered += 1;
            }
        }
        // Exactly once: nothing more is waiting on any socket.
        for (s, _) in &sockets {
            s.set_nonblocking(true).expect("nonblocking");
            let mut buf = [0u8; 512];
            assert!(s.recv(&mut buf).is_err(), "a second reply");
        }
        answered
    })
    .into_iter()
    .sum();
    assert_eq!(answered, cores.len() * 2 * SOCKETS * ROUNDS);
    // The workers' counters (what `xgslbctl stats` sums) saw each query once.
    let t = d.handle().udp_totals();
    assert_eq!(t.workers, cores.len());
    assert_eq!(
        (t.received, t.planned + t.handled),
        (answered as u64, answered as u64)
    );
    let s = scrape(&pair, "198.18.0.2:9153");
    let workers = value(&s, "xgslb_slow_path_udp_workers");
    assert_eq!(workers as usize, cores.len(), "a worker per core");
    every_worker_read_some(&pair, cores.len());
    // Both ways of answering were used.
    for outcome in ["answered_from_plan", "answered_by_handler"] {
        assert!(sample(&s, "xgslb_slow_path_udp_total", ("outcome", outcome)) > 0.0);
    }
    d.stop().expect("xgslbd stops cleanly");
}

/// Malformed datagrams, each followed on its socket by a good query: whatever came before the
/// good query's reply is the malformed one's reply, and it must be what the handler gives.
#[test]
fn malformed_datagrams_to_every_worker_get_what_the_handler_gives_and_stop_none() {
    let pair = NetnsPair::new("udpm");
    let dir = config("auto");
    let cfg = Config::load(&dir.path()).expect("config");
    let built = std::sync::Arc::new(build(&cfg).expect("build"));
    let d = Daemon::start(&pair, &dir.path(), XdpModeSetting::Off);
    let good = query(7, QUESTIONS[0]);
    let mut bad: Vec<Vec<u8>> = vec![
        Vec::new(),
        vec![0x12],
        good[..11].to_vec(),
        good[..20].to_vec(),
        good[..good.len() - 1].to_vec(),
    ];
    // Huge section counts.
    for (at, v) in [(4, 0xffff), (6, 0xffff), (8, 0x7fff), (10, 0xffff)] {
        let mut q = good.clone();
        q[at..at + 2].copy_from_slice(&u16::to_be_bytes(v));
        bad.push(q);
    }
    // A name that points at itself, and two that point at each other.
    let mut looped = good[..12].to_vec();
    looped.extend_from_slice(&[0xc0, 12, 0, 1, 0, 1]);
    bad.push(looped);
    let mut pair_loop = good[..12].to_vec();
    pair_loop.extend_from_slice(&[1, b'a', 0xc0, 17, 1, b'b', 0xc0, 12, 0, 1, 0, 1]);
    bad.push(pair_loop);
    // A response (QR set), an unknown opcode, 4,000 bytes of query.
    let mut response = good.clone();
    response[2] |= 0x80;
    bad.push(response);
    let mut opcode = good.clone();
    opcode[2] |= 0x78;
    bad.push(opcode);
    let mut long = good.clone();
    long.resize(4000, 0);
    bad.push(long);
    let bad = std::sync::Arc::new(bad);
    on_every_core(&pair, move |_| {
        for v6 in [false, true] {
            let client: IpAddr = if v6 { CLIENT_V6 } else { CLIENT_V4 }
                .parse()
                .expect("client");
            for (i, b) in bad.iter().enumerate() {
                let s = client_socket(v6);
                s.send_to(b, server(v6)).expect("send");
                let id = 40_000 + i as u16;
                let after = query(id, QUESTIONS[1]);
                s.send_to(&after, server(v6)).expect("send");
                let (reply, before) = reply_to(&s, id);
                let want = built
                    .catalog
                    .respond(b, Transport::Udp, client, &*built.snapshot);
                match (before.as_slice(), want) {
                    ([], None) => {}
                    ([got], Some(want)) => assert_eq!(
                        got, &want,
                        "malformed datagram {i} ({v6}): the handler's response"
                    ),
                    (got, want) => {
                        panic!("malformed datagram {i} ({v6}): got {got:02x?}, want {want:02x?}")
                    }
                }
                let want = built
                    .catalog
                    .respond(&after, Transport::Udp, client, &*built.snapshot)
                    .expect("an answer");
                assert_eq!(essentials(&reply), essentials(&want));
            }
        }
    });
    every_worker_read_some(&pair, cores().len());
    d.stop().expect("xgslbd stops cleanly");
}
