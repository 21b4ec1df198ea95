//! GSLB decisions as the XDP program serves them, through BPF_PROG_TEST_RUN with live maps:
//! answer shares follow ratios and computed weights, round robin cycles, static persist keeps
//! an LDNS prefix on its virtual server, a config swap never shows a query anything but
//! the old or the new config, and a client's class is its longest prefix's, whether the
//! program finds it in the class table or the class trie.
use std::{
    collections::{BTreeMap, HashSet},
    net::{IpAddr, Ipv4Addr, Ipv6Addr},
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
};

use hickory_proto::{
    op::Message,
    rr::{Name, RData, RecordType},
};
use ipnet::IpNet;
use xgslb::{
    config::Config,
    daemon::{Built, build, build_with, listener_keys},
    maps::{DataPlane, publish::publish_listeners, tables::class_table},
    model::{Metrics, VsMetrics},
    plan::{plan, slots::slot_table},
    test_model::TestModel,
};
use xgslb_common::{AnswerSet, ClassId, Counter, MAX_CLASS_LENGTHS, NO_STAT, PickMode};
use xgslb_tests::{
    daemon::{ConfigDir, test_model},
    frame::{Udp, XDP_PASS, XDP_TX, dns_query, wire_name},
    gslb::three_sites,
    pins::PinDir,
    require_root, xdp_run,
};

const SERVER4: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 2);
const SERVER6: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 2);

/// `three_sites`, another IPv4 virtual server at tokyo, an IPv6 one at tokyo and
/// frankfurt, and a wide IP per method; `extra` adds to it.
fn config(extra: impl FnOnce(TestModel) -> TestModel) -> (ConfigDir, Config) {
    let all = [
        "tokyo-a",
        "frankfurt-a",
        "newyork-a",
        "tokyo-b",
        "tokyo-6",
        "frankfurt-6",
    ];
    let model = three_sites()
        .vs("tokyo-b", "tokyo-lb", "198.18.1.2", 80)
        .vs("tokyo-6", "tokyo-lb", "2001:db8:1::1", 80)
        .vs("frankfurt-6", "frankfurt-lb", "2001:db8:2::1", 80)
        .pool(
            "by-ratio",
            &[
                "{ vs = \"tokyo-a\", ratio = 5 }",
                "{ vs = \"frankfurt-a\", ratio = 3 }",
            ],
            "ratio",
        )
        .pool("in-turn", &all[..3], "round_robin")
        .pool("by-load", &all[..2], "least_connections")
        .with("alternate = \"round_robin\"")
        .pool("sticky", &all, "static_persist")
        .wideip("ratio.example.test.", &["by-ratio"])
        .wideip("rr.example.test.", &["in-turn"])
        .wideip("lc.example.test.", &["by-load"])
        .wideip("sticky.example.test.", &["sticky"])
        .with("persist_v4 = 24")
        .with("persist_v6 = 56");
    let dir = ConfigDir::new(&extra(model));
    let cfg = Config::load(&dir.path()).unwrap_or_else(|e| panic!("config: {e}"));
    (dir, cfg)
}

fn dataplane(pins: &PinDir, cfg: &Config) -> DataPlane {
    let mut dp = DataPlane::load(pins.path()).expect("load the XDP program");
    publish_listeners(&mut dp.listeners, &listener_keys(&cfg.listen)).expect("listeners");
    dp
}

/// The addresses of one XDP answer to an A query for `name` from `client`, or `None` when
/// the program did not answer with XDP_TX.
fn ask(dp: &mut DataPlane, name: &str, client: IpAddr, id: u16) -> Option<Vec<IpAddr>> {
    let server = match client {
        IpAddr::V4(_) => IpAddr::V4(SERVER4),
        IpAddr::V6(_) => IpAddr::V6(SERVER6),
    };
    let q = Udp::query(
        client,
        server,
        dns_query(id, 0x0100, &wire_name(name), 1, 1, None),
    );
    let (action, out, _) = xdp_run(dp.program(), &q.to_bytes()).expect("test_run");
    match action {
        XDP_TX => {}
        XDP_PASS => return None,
        other => panic!("{name} from {client}: XDP action {other}"),
    }
    let l4 = 14 + if client.is_ipv4() { 20 } else { 40 };
    let msg = Message::from_vec(&out[l4 + 8..]).expect("the XDP answer parses");
    Some(
        msg.answers
            .iter()
            .filter_map(|r| match &r.data {
                RData::A(a) => Some(IpAddr::V4(a.0)),
                RData::AAAA(a) => Some(IpAddr::V6(a.0)),
                _ => None,
            })
            .collect(),
    )
}

/// Share of each answered address over `n` queries (the first record of each answer).
fn shares(dp: &mut DataPlane, name: &str, n: usize) -> BTreeMap<IpAddr, f64> {
    let mut counts: BTreeMap<IpAddr, usize> = BTreeMap::new();
    let client = IpAddr::V4(Ipv4Addr::new(198, 18, 0, 1));
    for i in 0..n {
        let answer = ask(dp, name, client, i as u16).unwrap_or_else(|| panic!("{name} passed"));
        *counts.entry(answer[0]).or_default() += 1;
    }
    counts
        .into_iter()
        .map(|(a, c)| (a, c as f64 / n as f64))
        .collect()
}

fn assert_shares(got: &BTreeMap<IpAddr, f64>, want: &[(&str, f64)], what: &str) {
    assert_eq!(got.len(), want.len(), "{what}: answered {got:?}");
    for (addr, share) in want {
        let addr: IpAddr = addr.parse().expect("address");
        let g = got.get(&addr).copied().unwrap_or(0.0);
        assert!(
            (g - share).abs() <= 0.01,
            "{what}: {addr} got {:.2}% of answers, want {:.2}% (within 1 point); all: {got:?}",
            g * 100.0,
            share * 100.0
        );
    }
}

#[test]
fn answer_shares_follow_ratios_and_computed_weights() {
    require_root();
    let (_dir, cfg) = config(|m| m);
    let pins = PinDir::new("shares");
    let mut dp = dataplane(&pins, &cfg);
    // Least connections weighs 1/(connections + 1): 1/101 against 1/301 is 74.9% to 25.1%.
    let mut metrics = Metrics::default();
    let vs = |name: &str| {
        cfg.model
            .vss
            .iter()
            .position(|v| v.name == name)
            .expect("vs")
    };
    for (name, connections) in [("tokyo-a", 100), ("frankfurt-a", 300)] {
        metrics.vs.insert(
            vs(name),
            VsMetrics {
                connections: Some(connections),
                ..VsMetrics::default()
            },
        );
    }
    let built = build_with(&cfg, &metrics).expect("build");
    dp.tables
        .swap(&built.entries, &built.prefixes)
        .expect("publish");

    const N: usize = 100_000;
    assert_shares(
        &shares(&mut dp, "ratio.example.test", N),
        &[("198.18.1.1", 5.0 / 8.0), ("198.18.2.1", 3.0 / 8.0)],
        "ratio 5:3",
    );
    assert_shares(
        &shares(&mut dp, "lc.example.test", N),
        &[("198.18.1.1", 301.0 / 402.0), ("198.18.2.1", 101.0 / 402.0)],
        "least connections 100 vs 300",
    );
    assert_shares(
        &shares(&mut dp, "rr.example.test", N),
        &[
            ("198.18.1.1", 1.0 / 3.0),
            ("198.18.2.1", 1.0 / 3.0),
            ("198.18.3.1", 1.0 / 3.0),
        ],
        "round robin",
    );

    // Round robin cycles: from a known counter, every three answers name all three.
    dp.set_pick_counter(0).expect("pick counter");
    let client = IpAddr::V4(Ipv4Addr::new(198, 18, 0, 1));
    let answers: Vec<IpAddr> = (0..120)
        .map(|i| ask(&mut dp, "rr.example.test", client, i).expect("answered")[0])
        .collect();
    for w in answers.chunks(3) {
        let distinct: HashSet<_> = w.iter().collect();
        assert_eq!(distinct.len(), 3, "round robin does not cycle: {answers:?}");
    }
}

/// Answers of the sticky wide IP for one client per /24 (v4) and /56 (v6) prefix.
fn sticky_answers(dp: &mut DataPlane, host: u8) -> BTreeMap<String, IpAddr> {
    let mut out = BTreeMap::new();
    for p in 0..=255u8 {
        let v4 = IpAddr::V4(Ipv4Addr::new(198, 19, p, host));
        let v6 = IpAddr::V6(Ipv6Addr::new(
            0x2001,
            0xdb8,
            0x100,
            u16::from(p) << 8 | u16::from(host),
            0,
            0,
            0,
            u16::from(host),
        ));
        // A answers over both transports: an IPv6 LDNS is hashed by its /56.
        for (prefix, client) in [(format!("v4 {p}"), v4), (format!("v6 {p}"), v6)] {
            let a = ask(dp, "sticky.example.test", client, 1).expect("answered");
            out.insert(prefix, a[0]);
        }
    }
    out
}

#[test]
fn static_persist_keeps_each_ldns_prefix_and_moves_only_the_leaving_members() {
    require_root();
    let (_dir, cfg) = config(|m| m);
    let pins = PinDir::new("persist");
    let mut dp = dataplane(&pins, &cfg);
    let built = build(&cfg).expect("build");
    dp.tables
        .swap(&built.entries, &built.prefixes)
        .expect("publish");

    let before = sticky_answers(&mut dp, 1);
    // Other hosts of the same prefixes, and the pick counter moving, change nothing.
    dp.set_pick_counter(12345).expect("pick counter");
    assert_eq!(
        sticky_answers(&mut dp, 200),
        before,
        "another host of the prefix moved"
    );
    // Every member serves some prefixes (256 prefixes over 4 IPv4 members).
    let used: HashSet<_> = before.values().collect();
    assert_eq!(used.len(), 4, "members used: {used:?}");

    // A publication of the same members (a full swap) keeps every prefix where it was.
    let again = build(&cfg).expect("build");
    dp.tables
        .swap(&again.entries, &again.prefixes)
        .expect("publish");
    assert_eq!(
        sticky_answers(&mut dp, 1),
        before,
        "a republication moved prefixes"
    );

    // frankfurt-a goes down: only the prefixes it had move.
    let gone: IpAddr = "198.18.2.1".parse().expect("address");
    let mut metrics = Metrics::default();
    let idx = cfg
        .model
        .vss
        .iter()
        .position(|v| v.name == "frankfurt-a")
        .expect("vs");
    metrics.vs.insert(
        idx,
        VsMetrics {
            up: Some(false),
            ..VsMetrics::default()
        },
    );
    let down = build_with(&cfg, &metrics).expect("build");
    dp.tables
        .update(&down.entries, &down.prefixes)
        .expect("publish");
    let after = sticky_answers(&mut dp, 1);
    let mut moved = 0;
    for (prefix, was) in &before {
        let now = after[prefix];
        if *was == gone {
            assert_ne!(now, gone, "{prefix} still answered by the member that left");
            moved += 1;
        } else {
            assert_eq!(now, *was, "{prefix} moved though its member stayed");
        }
    }
    assert!(moved > 0, "no prefix was on the member that left");
}

/// The configs in `dir_a` and `dir_b` built, and two handles on one set of pinned maps: a
/// reader whose program answers, and a writer that has published A.
fn reader_and_writer(
    dir_a: &ConfigDir,
    dir_b: &ConfigDir,
    pins: &str,
) -> (PinDir, DataPlane, DataPlane, Built, Built) {
    let cfg_a = Config::load(&dir_a.path()).expect("config A");
    let cfg_b = Config::load(&dir_b.path()).expect("config B");
    let a = build(&cfg_a).expect("build A");
    let b = build(&cfg_b).expect("build B");
    let pins = PinDir::new(pins);
    let reader = dataplane(&pins, &cfg_a);
    let mut writer = DataPlane::load(pins.path()).expect("load the writer");
    writer
        .tables
        .swap(&a.entries, &a.prefixes)
        .expect("publish A");
    (pins, reader, writer, a, b)
}

/// A thread that publishes `first` and `second` in turn, `swaps` times, then sets the flag
/// it returns; the thread returns the writer.
fn swap_back_and_forth(
    mut writer: DataPlane,
    first: Built,
    second: Built,
    swaps: usize,
) -> (Arc<AtomicBool>, std::thread::JoinHandle<DataPlane>) {
    let stop = Arc::new(AtomicBool::new(false));
    let done = stop.clone();
    let thread = std::thread::spawn(move || {
        for i in 0..swaps {
            let next = if i % 2 == 0 { &first } else { &second };
            writer
                .tables
                .swap(&next.entries, &next.prefixes)
                .expect("swap");
        }
        done.store(true, Ordering::Relaxed);
        writer
    });
    (stop, thread)
}

#[test]
fn config_swaps_never_show_a_mix_or_a_missing_wide_ip() {
    require_root();
    // Config A answers from 198.18.1.x, config B from 198.18.2.x; both have the same names.
    let pool = |addr: &str| {
        let (v1, v2) = (format!("{addr}1"), format!("{addr}2"));
        test_model()
            .site("s", "lb", &[("v1", &v1), ("v2", &v2)])
            .pool("p", &["v1", "v2"], "")
            .wideip("swap1.example.test.", &["p"])
            .wideip("swap2.example.test.", &["p"])
    };
    let dir_a = ConfigDir::new(&pool("198.18.1."));
    let dir_b = ConfigDir::new(&pool("198.18.2."));
    let (_pins, mut reader, writer, a, b) = reader_and_writer(&dir_a, &dir_b, "swap");

    let (stop, swaps) = swap_back_and_forth(writer, b, a, 400);
    let in_a: HashSet<IpAddr> = ["198.18.1.1", "198.18.1.2"]
        .iter()
        .map(|s| s.parse().expect("a"))
        .collect();
    let in_b: HashSet<IpAddr> = ["198.18.2.1", "198.18.2.2"]
        .iter()
        .map(|s| s.parse().expect("b"))
        .collect();
    let client = IpAddr::V4(Ipv4Addr::new(198, 18, 0, 1));
    let mut queries = 0usize;
    let mut seen = (0usize, 0usize);
    // Bounded: the writer's 400 swaps end the loop, and so does the query count.
    while !stop.load(Ordering::Relaxed) && queries < 2_000_000 {
        for name in ["swap1.example.test", "swap2.example.test"] {
            let answer = ask(&mut reader, name, client, queries as u16)
                .unwrap_or_else(|| panic!("{name} was missing during a swap (query {queries})"));
            let addr = answer[0];
            if in_a.contains(&addr) {
                seen.0 += 1;
            } else if in_b.contains(&addr) {
                seen.1 += 1;
            } else {
                panic!("{name}: {addr} is in neither config");
            }
            queries += 1;
        }
    }
    let _writer = swaps.join().expect("writer thread");
    assert!(
        seen.0 > 0 && seen.1 > 0,
        "the queries did not overlap the swaps: {seen:?}"
    );
}

/// The DNS message of one XDP answer to `name`/`qtype` from 198.18.0.1, or the counter of
/// the reason the program passed the query.
fn ask_message(dp: &mut DataPlane, name: &str, qtype: u16, id: u16) -> Result<Message, Counter> {
    let client = IpAddr::V4(Ipv4Addr::new(198, 18, 0, 1));
    let q = Udp::query(
        client,
        IpAddr::V4(SERVER4),
        dns_query(id, 0x0100, &wire_name(name), qtype, 1, None),
    );
    let before = dp.stats().expect("stats");
    let (action, out, _) = xdp_run(dp.program(), &q.to_bytes()).expect("test_run");
    match action {
        XDP_TX => Ok(Message::from_vec(&out[14 + 20 + 8..]).expect("the XDP answer parses")),
        XDP_PASS => {
            let after = dp.stats().expect("stats");
            let moved = |c: &&Counter| after[**c as usize] != before[**c as usize];
            Err(*Counter::ALL
                .iter()
                .filter(|c| !matches!(c, Counter::Received))
                .find(moved)
                .expect("a pass counts its reason"))
        }
        other => panic!("{name} {qtype}: XDP action {other}"),
    }
}

/// What a reload of the zone file changes, as XDP answers it: api's address, mail's (which
/// is the MX's additional data), and a name only the old zone has.
#[derive(Debug, PartialEq)]
struct ZoneView {
    api: Vec<String>,
    mx_additional: Vec<String>,
    old: (String, Vec<String>),
}

/// `None` when a question was passed because a swap came between its lookups (the slow path
/// answers it from the config it has); any other pass fails the test.
fn zone_view(dp: &mut DataPlane, id: u16) -> Option<ZoneView> {
    let mut ask = |name: &str, qtype: u16| match ask_message(dp, name, qtype, id) {
        Ok(message) => Some(message),
        Err(Counter::PassTableSwapped) => None,
        Err(why) => panic!("{name} {qtype} was passed during a reload: {why:?}"),
    };
    let records = |rs: &[hickory_proto::rr::Record]| -> Vec<String> {
        rs.iter().map(|r| r.data.to_string()).collect()
    };
    let api = ask("api.example.test", 1)?;
    let mx = ask("example.test", 15)?;
    let old = ask("old.example.test", 16)?;
    Some(ZoneView {
        api: records(&api.answers),
        mx_additional: records(&mx.additionals),
        old: (
            old.metadata.response_code.to_string(),
            records(&old.answers),
        ),
    })
}

#[test]
fn a_reload_changes_static_answers_whole_within_one_publication() {
    require_root();
    let dir_a = ConfigDir::new(&test_model());
    let dir_b = ConfigDir::new(&test_model());
    // A: the demo zone and a TXT at old; B: api and mail moved, old gone.
    let zone_of = |dir: &ConfigDir| dir.path().with_file_name("example.test.zone");
    let demo = std::fs::read_to_string(zone_of(&dir_a)).expect("zone");
    std::fs::write(zone_of(&dir_a), format!("{demo}old IN TXT \"old\"\n")).expect("zone A");
    let moved = demo
        .replace("198.18.0.81", "198.18.0.99")
        .replace("198.18.0.25", "198.18.0.26");
    assert_ne!(moved, demo);
    std::fs::write(zone_of(&dir_b), moved).expect("zone B");
    let (_pins, mut reader, mut writer, a, b) = reader_and_writer(&dir_a, &dir_b, "reload");
    let view_a = zone_view(&mut reader, 1).expect("no swap under way");
    writer
        .tables
        .swap(&b.entries, &b.prefixes)
        .expect("publish B");
    // Within one publication: the very next query sees B.
    let view_b = zone_view(&mut reader, 2).expect("no swap under way");
    assert_eq!(view_a.api, ["198.18.0.81"]);
    assert_eq!(view_b.api, ["198.18.0.99"]);
    assert_eq!(view_a.mx_additional, ["198.18.0.25"]);
    assert_eq!(view_b.mx_additional, ["198.18.0.26"]);
    assert_eq!(view_a.old, ("No Error".to_owned(), vec!["old".to_owned()]));
    assert_eq!(view_b.old.0, "Non-Existent Domain");

    // Under reloads back and forth, every query sees A or B, whole.
    let (stop, swaps) = swap_back_and_forth(writer, a, b, 300);
    let (mut seen_a, mut seen_b, mut passed, mut n) = (0, 0, 0, 0u16);
    // Bounded: the writer's swaps end the loop, and so does the query count.
    while !stop.load(Ordering::Relaxed) && n < 60_000 {
        n += 1;
        let Some(view) = zone_view(&mut reader, n) else {
            passed += 1;
            continue;
        };
        // One question at a time is one table: each answer is A's or B's whole (a swap may
        // come between two questions).
        if view.api == view_a.api {
            seen_a += 1;
        } else if view.api == view_b.api {
            seen_b += 1;
        } else {
            panic!("api answered {:?}, in neither zone", view.api);
        }
        let additional = &view.mx_additional;
        assert!(
            *additional == view_a.mx_additional || *additional == view_b.mx_additional,
            "MX additional {additional:?}: a mix"
        );
        assert!(
            view.old == view_a.old || view.old == view_b.old,
            "old answered {:?}: a mix",
            view.old
        );
    }
    swaps.join().expect("writer thread");
    // A pass is the slow path's to answer; it must stay the rare query that met a swap.
    assert!(passed * 100 < n, "{passed} of {n} views passed");
    assert!(
        seen_a > 0 && seen_b > 0,
        "the queries did not overlap the reloads: {seen_a} {seen_b}"
    );
}

#[test]
fn the_busiest_ldns_of_each_class_are_sampled_for_probing() {
    require_root();
    let (_dir, cfg) = config(|m| m.region("near", &["198.18.0.0/26"]));
    let pins = PinDir::new("ldns");
    let mut dp = dataplane(&pins, &cfg);
    let built = build(&cfg).expect("build");
    dp.tables
        .swap(&built.entries, &built.prefixes)
        .expect("publish");
    // 1 query in 16 is counted: 1,600, 320 and 32 queries from three LDNSs, two of them in
    // the "near" region, one outside any.
    let busy: IpAddr = "198.18.0.1".parse().expect("a");
    let less: IpAddr = "198.18.0.2".parse().expect("b");
    let far: IpAddr = "198.18.0.200".parse().expect("c");
    for (client, n) in [(busy, 1_600), (less, 320), (far, 32)] {
        for i in 0..n {
            ask(&mut dp, "ratio.example.test", client, i as u16).expect("answered");
        }
    }
    let samples = dp.take_ldns_samples().expect("samples");
    let count = |a: IpAddr| -> u64 {
        let IpAddr::V4(a) = a else {
            return 0;
        };
        samples
            .iter()
            .filter(|(k, _)| k.family == 4 && k.addr[..4] == a.octets())
            .map(|(_, c)| c)
            .sum()
    };
    let (b, l, f) = (count(busy), count(less), count(far));
    // Sampling is per CPU: the counts are 100, 20 and 2 give or take a sample each.
    assert!(
        (99..=101).contains(&b) && (19..=21).contains(&l) && (1..=3).contains(&f),
        "{samples:?}"
    );
    let top = xgslb::daemon::probe_targets::top_ldns(&samples, 1, 8);
    assert_eq!(top, vec![busy, far], "the busiest of each class");
    // Taking the samples starts a new period.
    assert!(dp.take_ldns_samples().expect("samples").is_empty());
}

/// A class's answer: 192.0.2.<class>.
fn class_answer(class: ClassId) -> IpAddr {
    IpAddr::V4(Ipv4Addr::new(192, 0, 2, class as u8))
}

#[test]
fn a_clients_class_is_its_longest_prefixs_in_the_class_table_and_in_the_class_trie() {
    require_root();
    let (_dir, cfg) = config(|m| m);
    let pins = PinDir::new("classes");
    let mut dp = dataplane(&pins, &cfg);
    let name = "classed.example.test";
    let owner = Name::from_ascii(format!("{name}.")).expect("a name");
    // One A answer per class (0: every other client), each its own address.
    let sets: Vec<_> = (0..=MAX_CLASS_LENGTHS as ClassId + 1)
        .map(|class| {
            let mut set = AnswerSet {
                ttl: 30,
                count: 1,
                records: 1,
                pick: PickMode::Counter as u8,
                stat: NO_STAT,
                slots: slot_table(&[1]),
                ..bytemuck::Zeroable::zeroed()
            };
            let IpAddr::V4(a) = class_answer(class) else {
                unreachable!("an IPv4 answer")
            };
            set.addrs[0][..4].copy_from_slice(&a.octets());
            (owner.clone(), RecordType::A, class, set)
        })
        .collect();
    let entries = plan(&[], &sets);
    // Nested prefixes, class i + 1 for the i-th longest: as many lengths as the class table
    // takes, then one more, which sends each family to its trie.
    for lengths in [MAX_CLASS_LENGTHS, MAX_CLASS_LENGTHS + 1] {
        let prefixes: Vec<(IpNet, ClassId)> = (0..lengths)
            .flat_map(|i| {
                let class = i as ClassId + 1;
                [
                    (format!("10.0.0.0/{}", 8 + i), class),
                    (format!("2001:db8::/{}", 32 + i), class),
                ]
            })
            .map(|(p, class)| (p.parse().expect("a prefix"), class))
            .collect();
        let trie = class_table(&prefixes).1;
        let in_trie = lengths > MAX_CLASS_LENGTHS;
        assert_eq!((trie.trie4 != 0, trie.trie6 != 0), (in_trie, in_trie));
        dp.tables.swap(&entries, &prefixes).expect("publish");
        let longest = lengths as ClassId;
        for (client, class) in [
            ("10.0.0.1", longest),
            ("10.128.0.1", 1),
            ("11.0.0.1", 0),
            ("2001:db8::1", longest),
            ("2001:db8:8000::1", 1),
            ("2001:db9::1", 0),
        ] {
            let client: IpAddr = client.parse().expect("an address");
            assert_eq!(
                ask(&mut dp, name, client, 1),
                Some(vec![class_answer(class)]),
                "{client} with {lengths} prefix lengths"
            );
        }
    }
}
