//! A real ECS resolver in front of xgslbd (issue 14): Debian's unbound, its subnetcache module
//! sending each client's /24 (RFC 7871) to xgslbd through a stub zone, asked by clients in
//! two topology regions. Three namespaces: xgslbd (XDP on its veth), unbound, and the
//! clients, whose addresses sit in region A (two of them) and region B.
//!
//! It proves, counted on xgslbd's side (the pinned XDP counters and the slow path's Prometheus
//! counters): each region's client gets its own region's answer through the one resolver,
//! from one upstream query each; the second client of region A is answered from unbound's
//! cache with no query to xgslbd (the scope xgslbd returned, /24, let unbound share the
//! answer across the /24); the upstream queries were answered by XDP. The scope itself is
//! read from xgslbd's answer to a resolver's query (kdig +subnet).
use xgslb::config::XdpModeSetting;
use xgslb_common::Counter;
use xgslb_tests::{
    daemon::{ConfigDir, Daemon},
    gslb::three_sites,
    metrics::{sample, scrape},
    netns::{Leaf, NetnsPair, SERVER_V4},
    unbound::{Resolver, Unbound},
};

/// Unbound's address, on the clients' side; the clients' own address beside it.
const RESOLVER: &str = "198.18.100.1";
const GATEWAY: &str = "198.18.100.1/24";
const LEAF: &str = "198.18.100.2/24";
/// Two clients in region A, one in region B.
const A1: &str = "198.18.110.5";
const A2: &str = "198.18.110.6";
const B1: &str = "198.18.120.5";
/// Region A prefers tokyo's virtual server, region B newyork's (gslb::three_sites).
const TOKYO: &str = "198.18.1.1";
const NEWYORK: &str = "198.18.3.1";
const NAME: &str = "geo.example.test";
const METRICS: &str = "198.18.0.2:9153";

/// What xgslbd has counted: the XDP counters (pinned, as `xgslbctl stats` reads them) and the
/// slow path's (its Prometheus endpoint).
struct Counts {
    xdp: [u64; Counter::COUNT],
    /// UDP queries the slow path's workers read (every query XDP passed).
    slow_udp: f64,
    /// Slow-path responses, every rcode, UDP and TCP.
    slow_responses: f64,
}

/// How the counts moved between two readings.
#[derive(Debug, PartialEq)]
struct Moved {
    xdp_answered: u64,
    xdp_dropped: u64,
    slow_udp: f64,
    slow_responses: f64,
}

impl Moved {
    /// UDP queries that reached xgslbd: answered or dropped in XDP, or read by the slow path.
    fn udp_queries(&self) -> f64 {
        (self.xdp_answered + self.xdp_dropped) as f64 + self.slow_udp
    }
}

fn counts(pair: &NetnsPair, d: &Daemon) -> Counts {
    let s = scrape(pair, METRICS);
    let slow_responses = s
        .samples
        .iter()
        .filter(|x| x.metric == "xgslb_slow_path_responses_total")
        .map(|x| match x.value {
            prometheus_parse::Value::Counter(v) => v,
            _ => f64::NAN,
        })
        .sum();
    Counts {
        xdp: d.stats(),
        slow_udp: sample(&s, "xgslb_slow_path_udp_total", ("outcome", "received")),
        slow_responses,
    }
}

impl Counts {
    fn since(&self, before: &Counts) -> Moved {
        let xdp = |c: Counter| self.xdp[c as usize] - before.xdp[c as usize];
        Moved {
            xdp_answered: xdp(Counter::Answered),
            xdp_dropped: xdp(Counter::Dropped) + xdp(Counter::DropPolicy),
            slow_udp: self.slow_udp - before.slow_udp,
            slow_responses: self.slow_responses - before.slow_responses,
        }
    }
}

/// The A records unbound gives `source` for the wide IP (kdig from the clients' namespace).
fn through_unbound(clients: &Leaf, source: &str, unbound: &Unbound) -> Vec<String> {
    let at = format!("@{RESOLVER}");
    let out = clients.cmd(&[
        "kdig", "+retry=0", "+time=2", "-b", source, &at, "+short", NAME, "A",
    ]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "kdig -b {source} {at} failed: {text}{}\nunbound's log:\n{}",
        String::from_utf8_lossy(&out.stderr),
        unbound.log()
    );
    let mut addrs: Vec<String> = text.split_whitespace().map(str::to_owned).collect();
    addrs.sort();
    addrs
}

/// xgslbd's answer to a resolver's query with client subnet `subnet`: the A records and the
/// CLIENT-SUBNET option kdig prints (`address/source/scope`).
fn direct_with_subnet(pair: &NetnsPair, subnet: &str) -> (Vec<String>, String) {
    let at = format!("@{SERVER_V4}");
    let ecs = format!("+subnet={subnet}");
    let out = pair.client_cmd(&["kdig", "+retry=0", "+time=2", &at, &ecs, NAME, "A"]);
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(out.status.success(), "kdig {ecs} {at} failed: {text}");
    let option = text
        .lines()
        .find_map(|l| l.strip_prefix(";; CLIENT-SUBNET: "))
        .unwrap_or_else(|| panic!("no CLIENT-SUBNET in xgslbd's answer:\n{text}"))
        .trim()
        .to_owned();
    let mut addrs: Vec<String> = text
        .lines()
        .filter(|l| !l.starts_with(';'))
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            (f.len() == 5 && f[3] == "A").then(|| f[4].to_owned())
        })
        .collect();
    addrs.sort();
    (addrs, option)
}

#[test]
fn unbound_shares_each_regions_answer_by_the_scope_xgslbd_returns() {
    xgslb_tests::unbound::require_subnetcache();
    // xgslbd's namespace ("server") and unbound's ("client" of the pair: it asks xgslbd),
    // the clients' namespace hanging from unbound's.
    let pair = NetnsPair::new("ecsub");
    let clients = Leaf::new("ecsub", &pair.client, GATEWAY, LEAF, &[A1, A2, B1]);
    let cfg = ConfigDir::new(
        &three_sites()
            .set("server", &format!("metrics_listen = \"{METRICS}\""))
            .http_token(xgslb_tests::metrics::HTTP_TOKEN)
            .region("a", &["198.18.110.0/24"])
            .region("b", &["198.18.120.0/24"])
            .topology("a", "tokyo", 100)
            .topology("b", "newyork", 100)
            .pool("geo", &["tokyo-a", "newyork-a"], "topology")
            .wideip(&format!("{NAME}."), &["geo"]),
    );
    let d = Daemon::start(&pair, &cfg.path(), XdpModeSetting::Native);

    // What xgslbd tells a resolver for each region's /24: that region's site, scope /24
    // (a /24 region with nothing inside it), the subnet echoed.
    for (subnet, want) in [("198.18.110.0/24", TOKYO), ("198.18.120.0/24", NEWYORK)] {
        let (addrs, option) = direct_with_subnet(&pair, subnet);
        assert_eq!(addrs, [want], "{subnet}");
        assert_eq!(option, format!("{subnet}/24"), "{subnet}: source/scope");
    }

    let unbound = Unbound::start(&Resolver {
        ns: &pair.client,
        listen: RESOLVER,
        clients: "198.18.0.0/15",
        zone: "example.test.",
        authority: SERVER_V4,
        max_source_v4: 24,
    });

    // Each region's client: its own region's answer, from one query to xgslbd.
    let mut upstream = Vec::new();
    for (source, want) in [(A1, TOKYO), (B1, NEWYORK)] {
        let before = counts(&pair, &d);
        assert_eq!(
            through_unbound(&clients, source, &unbound),
            [want],
            "{source}"
        );
        let moved = counts(&pair, &d).since(&before);
        assert_eq!(
            moved.udp_queries(),
            1.0,
            "{source}: one upstream query: {moved:?}\nunbound's log:\n{}",
            unbound.log()
        );
        upstream.push((source, moved));
    }

    // The second client of region A: unbound's cache (the /24 scope covers it), nothing new
    // reached xgslbd on either path.
    let before = counts(&pair, &d);
    assert_eq!(through_unbound(&clients, A2, &unbound), [TOKYO], "{A2}");
    let moved = counts(&pair, &d).since(&before);
    assert_eq!(
        moved,
        Moved {
            xdp_answered: 0,
            xdp_dropped: 0,
            slow_udp: 0.0,
            slow_responses: 0.0
        },
        "{A2} is in region A's cached /24: no query to xgslbd"
    );
    // And region B's client again: cached too, still its own answer.
    let before = counts(&pair, &d);
    assert_eq!(through_unbound(&clients, B1, &unbound), [NEWYORK], "{B1}");
    assert_eq!(counts(&pair, &d).since(&before).udp_queries(), 0.0);

    // Last, as it needs XDP to answer ECS queries: each upstream query was answered in the
    // kernel, none by the slow path.
    for (source, moved) in upstream {
        assert_eq!(
            (moved.xdp_answered, moved.slow_udp),
            (1, 0.0),
            "{source}'s upstream query was not answered by XDP: {moved:?}"
        );
    }
}
