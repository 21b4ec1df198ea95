//! GSLB end to end in network namespaces: xgslbd with XDP on a real veth, asked by dig from
//! several LDNS addresses. Topology sends each client region to its own site; every all-down
//! behaviour gives its answer on the XDP path and, with XDP off, on the slow path; the
//! metrics file and config reloads move answers while the daemon serves.
use std::path::Path;

use xgslb::{config::XdpModeSetting, test_model::TestModel};
use xgslb_common::Counter;
use xgslb_tests::{
    daemon::{ConfigDir, Daemon},
    dig::record_lines,
    gslb::three_sites,
    metrics::{sample, scrape},
    netns::{NetnsPair, SERVER_V4, SERVER_V6},
};

/// What dig printed: the status and the answer records (sorted, whitespace normalised), or
/// `None` when no response came.
#[derive(Debug, PartialEq)]
struct Reply {
    status: String,
    answers: Vec<String>,
}

fn dig(
    pair: &NetnsPair,
    server: &str,
    name: &str,
    qtype: &str,
    source: Option<&str>,
) -> Option<Reply> {
    let at = format!("@{server}");
    let mut args = vec![
        "dig",
        &at,
        name,
        qtype,
        "+noall",
        "+comments",
        "+answer",
        "+tries=1",
        "+time=2",
    ];
    if let Some(src) = source {
        args.push("-b");
        args.push(src);
    }
    let out = pair.client_cmd(&args);
    let text = String::from_utf8_lossy(&out.stdout);
    if !out.status.success() {
        assert!(
            text.contains("timed out") || text.contains("no servers could be reached"),
            "{args:?} failed: {text}{}",
            String::from_utf8_lossy(&out.stderr)
        );
        return None;
    }
    let status = text
        .split("status: ")
        .nth(1)
        .and_then(|s| s.split(',').next())
        .unwrap_or_else(|| panic!("{args:?}: no status in {text}"))
        .to_owned();
    let answers = record_lines(&text);
    Some(Reply { status, answers })
}

fn first_address(reply: &Option<Reply>) -> String {
    reply
        .as_ref()
        .and_then(|r| r.answers.first())
        .and_then(|l| l.split(' ').next_back())
        .unwrap_or("none")
        .to_owned()
}

#[test]
fn topology_sends_each_client_region_to_its_site_from_xdp() {
    let pair = NetnsPair::new("topo");
    // A second LDNS on the client: .77 and ::8:77 are in the "far" region.
    pair.add_client_address("198.18.0.77/24");
    pair.add_client_address("2001:db8::8:77/64");
    let cfg = ConfigDir::new(
        &three_sites()
            .region("near", &["198.18.0.0/26", "2001:db8::/112"])
            .region("far", &["198.18.0.64/26", "2001:db8::8:0/112"])
            .topology("near", "tokyo", 100)
            .topology("far", "newyork", 100)
            .vs("tokyo-6", "tokyo-lb", "2001:db8:1::1", 80)
            .vs("newyork-6", "newyork-lb", "2001:db8:3::1", 80)
            .pool(
                "geo",
                &["tokyo-a", "newyork-a", "tokyo-6", "newyork-6"],
                "topology",
            )
            .wideip("geo.example.test.", &["geo"]),
    );
    let d = Daemon::start(&pair, &cfg.path(), XdpModeSetting::Native);
    let v6 = SERVER_V6.to_string();
    let before = d.stats();
    let cases = [
        (SERVER_V4, Some("198.18.0.1"), "198.18.1.1"),
        (SERVER_V4, Some("198.18.0.77"), "198.18.3.1"),
        (v6.as_str(), Some("2001:db8::1"), "198.18.1.1"),
        (v6.as_str(), Some("2001:db8::8:77"), "198.18.3.1"),
    ];
    for (server, source, want) in cases {
        for _ in 0..3 {
            let reply = dig(&pair, server, "geo.example.test", "A", source);
            assert_eq!(
                first_address(&reply),
                want,
                "from {source:?} to {server}: {reply:?}"
            );
        }
    }
    let after = d.stats();
    let answered = after[Counter::Answered as usize] - before[Counter::Answered as usize];
    assert_eq!(answered, 12, "XDP answered {answered} of 12: {after:?}");

    // AAAA from XDP too, from the same classes: the IPv6 virtual server of each site.
    for (server, source, want) in [
        (SERVER_V4, "198.18.0.1", "2001:db8:1::1"),
        (SERVER_V4, "198.18.0.77", "2001:db8:3::1"),
        (v6.as_str(), "2001:db8::1", "2001:db8:1::1"),
        (v6.as_str(), "2001:db8::8:77", "2001:db8:3::1"),
    ] {
        let reply = dig(&pair, server, "geo.example.test", "AAAA", Some(source));
        assert_eq!(first_address(&reply), want, "AAAA from {source}: {reply:?}");
    }
    assert_eq!(
        d.stats()[Counter::Answered as usize],
        after[Counter::Answered as usize] + 4,
        "XDP did not answer every AAAA query"
    );
}

/// One wide IP per all-down behaviour, each over a pool whose only member is disabled.
fn all_down_config() -> TestModel {
    let mut model = three_sites()
        .vs("off", "tokyo-lb", "198.18.1.99", 80)
        .with("enabled = false")
        .pool("down", &["off"], "");
    for (name, behaviour) in [
        ("down-fallback", "fallback_ip\"\nfallback_ip = \"198.18.9.9"),
        ("failover", "return_to_dns"),
        ("down-servfail", "servfail"),
        ("down-nodata", "nodata"),
        ("down-drop", "drop"),
    ] {
        model = model
            .wideip(&format!("{name}.example.test."), &["down"])
            .with(&format!("when_all_down = \"{behaviour}\""));
    }
    model
}

fn all_down_replies(pair: &NetnsPair) -> Vec<(String, Option<Reply>)> {
    [
        "down-fallback",
        "failover",
        "down-servfail",
        "down-nodata",
        "down-drop",
    ]
    .iter()
    .map(|n| {
        let name = format!("{n}.example.test");
        (name.clone(), dig(pair, SERVER_V4, &name, "A", None))
    })
    .collect()
}

#[test]
fn every_all_down_behaviour_answers_alike_on_both_paths() {
    let pair = NetnsPair::new("alldown");
    let cfg = ConfigDir::new(&all_down_config());
    let d = Daemon::start(&pair, &cfg.path(), XdpModeSetting::Native);
    let before = d.stats();
    let xdp = all_down_replies(&pair);
    let after = d.stats();
    let delta = |c: Counter| after[c as usize] - before[c as usize];
    // Fallback IP and NODATA (precomputed from the zone) are answered by XDP; return to DNS
    // and SERVFAIL go to the slow path; drop is dropped (dig retries nothing: +tries=1).
    assert_eq!(delta(Counter::Answered), 2, "{after:?}");
    assert_eq!(delta(Counter::AnsweredNoData), 1, "{after:?}");
    assert_eq!(delta(Counter::PassSlowPath), 2, "{after:?}");
    assert_eq!(delta(Counter::DropPolicy), 1, "{after:?}");
    d.stop().expect("daemon stops cleanly");

    let want = |name: &str| -> Option<(&str, Vec<String>)> {
        match name {
            "down-fallback.example.test" => Some((
                "NOERROR",
                vec!["down-fallback.example.test. 30 in a 198.18.9.9".into()],
            )),
            "failover.example.test" => Some((
                "NOERROR",
                vec!["failover.example.test. 3600 in a 198.18.0.83".into()],
            )),
            "down-servfail.example.test" => Some(("SERVFAIL", vec![])),
            "down-nodata.example.test" => Some(("NOERROR", vec![])),
            _ => None,
        }
    };
    for (name, reply) in &xdp {
        let got = reply
            .as_ref()
            .map(|r| (r.status.as_str(), r.answers.clone()));
        assert_eq!(got, want(name), "{name} with XDP");
    }

    let d = Daemon::start(&pair, &cfg.path(), XdpModeSetting::Off);
    let slow = all_down_replies(&pair);
    assert_eq!(slow, xdp, "the slow path alone answers differently");
    drop(d);
}

fn write(path: &Path, text: &str) {
    // Written whole to a temporary name, then renamed: the watcher never reads half a file.
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, text).expect("write");
    std::fs::rename(&tmp, path).expect("rename");
}

#[test]
fn metrics_file_changes_and_reloads_move_answers_while_serving() {
    let pair = NetnsPair::new("metrics");
    let cfg = ConfigDir::new(
        &three_sites()
            .set("balancer", "interval_ms = 50")
            .set("balancer", "metrics_file = \"metrics.toml\"")
            .set("balancer", "damping = { max_step = 1.0, hysteresis = 0.0 }")
            .pool("both", &["tokyo-a", "newyork-a"], "global_availability")
            .wideip("ga.example.test.", &["both"]),
    );
    let metrics = cfg.path().with_file_name("metrics.toml");
    write(&metrics, "[[vs]]\nname = \"tokyo-a\"\nup = true\n");
    let d = Daemon::start(&pair, &cfg.path(), XdpModeSetting::Native);
    let ask = || first_address(&dig(&pair, SERVER_V4, "ga.example.test", "A", None));
    assert_eq!(ask(), "198.18.1.1", "global availability: tokyo first");

    // tokyo reported down: the next publication answers newyork.
    let seen = d.handle().published().metric_updates;
    write(&metrics, "[[vs]]\nname = \"tokyo-a\"\nup = false\n");
    d.wait_published("tokyo down", |p| p.metric_updates > seen);
    assert_eq!(ask(), "198.18.3.1", "tokyo is down");

    // A broken metrics file is refused and changes nothing.
    let seen = d.handle().published();
    write(&metrics, "[[vs]]\nname = \"nowhere\"\n");
    d.wait_published("the broken metrics file", |p| {
        p.metric_errors > seen.metric_errors
    });
    assert_eq!(ask(), "198.18.3.1");

    // A reload with a broken config is refused, naming the key; answers go on.
    let good = std::fs::read_to_string(cfg.path()).expect("read config");
    std::fs::write(
        cfg.path(),
        good.replace(
            "preferred = \"global_availability\"",
            "preferred = \"fastest\"",
        ),
    )
    .expect("write");
    let err = d
        .handle()
        .reload()
        .expect_err("a broken config is refused")
        .to_string();
    assert!(err.contains("pool[0].preferred"), "{err}");
    assert_eq!(ask(), "198.18.3.1");
    assert_eq!(d.handle().published().reloads, seen.reloads);

    // A good reload: newyork removed from the pool, tokyo up again in a fresh metrics file.
    write(&metrics, "[[vs]]\nname = \"tokyo-a\"\nup = true\n");
    std::fs::write(
        cfg.path(),
        good.replace(
            "members = [\"tokyo-a\", \"newyork-a\"]",
            "members = [\"newyork-a\", \"tokyo-a\"]",
        ),
    )
    .expect("write");
    // The reload returns once the new config is published: no waiting.
    d.handle().reload().expect("reload");
    assert!(d.handle().published().reloads > seen.reloads);
    assert_eq!(ask(), "198.18.3.1", "newyork is first in the reloaded pool");

    // A [server] change takes a restart: the reload says so and applies nothing.
    let reloaded = std::fs::read_to_string(cfg.path()).expect("read config");
    let moved = reloaded.replace("198.18.0.2:53", "198.18.0.9:53");
    assert_ne!(moved, reloaded);
    std::fs::write(cfg.path(), moved).expect("write");
    let before = d.handle().published();
    let err = d
        .handle()
        .reload()
        .expect_err("a listen change is refused")
        .to_string();
    assert!(err.contains("server.listen changed"), "{err}");
    assert_eq!(d.handle().published().reloads, before.reloads);
    assert_eq!(ask(), "198.18.3.1");
}

fn control(
    d: &Daemon,
    command: xgslb::control::protocol::Command,
) -> xgslb::control::protocol::Response {
    xgslb::control::client::command(d.control_socket(), command)
        .expect("the control socket answers")
}

#[test]
fn control_socket_explains_drains_enables_and_checks_reloads() {
    use xgslb::control::protocol::{Command, Target};
    let pair = NetnsPair::new("ctl");
    let cfg = ConfigDir::new(
        &three_sites()
            .pool(
                "ratio",
                &[
                    "{ vs = \"tokyo-a\", ratio = 3 }",
                    "frankfurt-a",
                    "newyork-a",
                ],
                "ratio",
            )
            .wideip("www2.example.test.", &["ratio"]),
    );
    let d = Daemon::start(&pair, &cfg.path(), XdpModeSetting::Native);
    let answers = |n: usize| -> Vec<String> {
        let mut v: Vec<String> = (0..n)
            .map(|_| first_address(&dig(&pair, SERVER_V4, "www2.example.test", "A", None)))
            .collect();
        v.sort();
        v.dedup();
        v
    };
    assert_eq!(answers(10), vec!["198.18.1.1", "198.18.2.1", "198.18.3.1"]);

    // explain: the ratio tier, and the shares the table holds (3:1:1 over 128 slots).
    let r = control(
        &d,
        Command::Explain {
            wideip: "www2.example.test".into(),
            client: "198.18.0.1".into(),
            ecs: None,
        },
    );
    let e = r.as_explain().cloned().expect("an explanation");
    assert!(e.trace.iter().any(|l| l.contains("ratio")), "{e:?}");
    let shares: Vec<(String, i64)> = e
        .a_records
        .iter()
        .map(|(a, s)| (a.clone(), (s * 128.0).round() as i64))
        .collect();
    assert_eq!(
        shares,
        vec![
            ("198.18.1.1".into(), 77),
            ("198.18.2.1".into(), 26),
            ("198.18.3.1".into(), 25)
        ],
        "{e:?}"
    );

    // drain tokyo-a: no more answers to it, from XDP, once published (the reply comes after).
    let r = control(
        &d,
        Command::Drain {
            target: Target::Vs("tokyo-a".into()),
        },
    );
    assert!(r.ok, "{r:?}");
    assert_eq!(answers(10), vec!["198.18.2.1", "198.18.3.1"]);
    // show vs: the live model says why tokyo-a is out.
    let table = control(
        &d,
        Command::Show {
            what: xgslb::control::protocol::ShowWhat::Vs,
        },
    )
    .as_table()
    .map(<[_]>::to_vec)
    .expect("a table");
    assert_eq!(table[0][0], "VS");
    let tokyo = table
        .iter()
        .find(|r| r[0] == "tokyo-a")
        .expect("tokyo-a listed");
    assert_eq!(tokyo[4], "false", "{table:?}");
    assert!(tokyo[5].starts_with("no: "), "{table:?}");
    let pools = control(
        &d,
        Command::Show {
            what: xgslb::control::protocol::ShowWhat::Pools,
        },
    )
    .as_table()
    .map(<[_]>::to_vec)
    .expect("a table");
    assert!(
        pools
            .iter()
            .any(|r| r[0] == "ratio" && r[2].contains("tokyo-a:3")),
        "{pools:?}"
    );
    // disable the newyork site: frankfurt alone.
    assert!(
        control(
            &d,
            Command::Disable {
                target: Target::Site("newyork".into())
            }
        )
        .ok
    );
    assert_eq!(answers(6), vec!["198.18.2.1"]);
    // enable both back.
    for target in [Target::Vs("tokyo-a".into()), Target::Site("newyork".into())] {
        assert!(control(&d, Command::Enable { target }).ok);
    }
    assert_eq!(answers(10), vec!["198.18.1.1", "198.18.2.1", "198.18.3.1"]);

    // Refused commands say why and change nothing.
    let r = control(
        &d,
        Command::Disable {
            target: Target::Vs("nowhere".into()),
        },
    );
    assert!(
        !r.ok && r.error_text().unwrap_or("").contains("nowhere"),
        "{r:?}"
    );
    let r = control(
        &d,
        Command::SetRatio {
            vs: "tokyo-a".into(),
            ratio: 0,
        },
    );
    assert!(!r.ok, "{r:?}");

    // reload --check: a broken config is refused, naming the key, and changes nothing.
    let good = std::fs::read_to_string(cfg.path()).expect("read");
    std::fs::write(
        cfg.path(),
        good.replace("preferred = \"ratio\"", "preferred = \"rratio\""),
    )
    .expect("write");
    let r = control(&d, Command::Reload { check: true });
    assert!(
        !r.ok && r.error_text().unwrap_or("").contains("pool[0].preferred"),
        "{r:?}"
    );
    let r = control(&d, Command::Reload { check: false });
    assert!(!r.ok, "{r:?}");
    assert_eq!(answers(10), vec!["198.18.1.1", "198.18.2.1", "198.18.3.1"]);
    // A listen address moved: a restart's business. Both refuse naming the key; answers go on.
    std::fs::write(
        cfg.path(),
        good.replace("listen = [", "listen = [\"198.18.0.2:5353\", "),
    )
    .expect("write");
    for check in [true, false] {
        let r = control(&d, Command::Reload { check });
        assert!(
            !r.ok
                && r.error_text()
                    .unwrap_or("")
                    .contains("server.listen changed: [server] changes take a restart"),
            "{r:?}"
        );
    }
    assert_eq!(answers(10), vec!["198.18.1.1", "198.18.2.1", "198.18.3.1"]);
    std::fs::write(cfg.path(), &good).expect("write");
    let r = control(&d, Command::Reload { check: true });
    assert!(r.ok, "{r:?}");
    assert!(r.message().unwrap_or("").ends_with("none"), "{r:?}");
    // A changed ratio: --check prints the decision it would change, and applies nothing.
    std::fs::write(
        cfg.path(),
        good.replace(
            "{ vs = \"tokyo-a\", ratio = 3 }",
            "{ vs = \"tokyo-a\", ratio = 1 }",
        ),
    )
    .expect("write");
    let r = control(&d, Command::Reload { check: true });
    let m = r.message().unwrap_or_default().to_owned();
    assert!(
        m.contains(
            "~ www2.example.test. A [default]: frankfurt-a (198.18.2.1) 20%, newyork-a \
             (198.18.3.1) 20%, tokyo-a (198.18.1.1) 60% -> frankfurt-a (198.18.2.1) 33%, \
             newyork-a (198.18.3.1) 33%, tokyo-a (198.18.1.1) 33%"
        ),
        "{m}"
    );
    let e = control(
        &d,
        Command::Explain {
            wideip: "www2.example.test".into(),
            client: "198.18.0.1".into(),
            ecs: None,
        },
    )
    .as_explain()
    .cloned()
    .expect("an explanation");
    assert_eq!(e.a_records[0], ("198.18.1.1".into(), 77.0 / 128.0), "{e:?}");
}

#[test]
fn prometheus_counts_match_the_queries_each_path_answered() {
    let pair = NetnsPair::new("prom");
    let cfg = ConfigDir::new(
        &three_sites()
            .set("server", "metrics_listen = \"198.18.0.2:9153\"")
            .http_token(xgslb_tests::metrics::HTTP_TOKEN)
            .pool("one", &["tokyo-a"], "")
            .wideip("app.example.test.", &["one"]),
    );
    let d = Daemon::start(&pair, &cfg.path(), XdpModeSetting::Native);
    let before = scrape(&pair, "198.18.0.2:9153");
    // XDP answers 5 A queries, 3 AAAA queries (app has no IPv6 VS: NOERROR with no records)
    // and 2 for a name that does not exist (NXDOMAIN); the slow path 3 ANY queries.
    for _ in 0..5 {
        assert_eq!(
            first_address(&dig(&pair, SERVER_V4, "app.example.test", "A", None)),
            "198.18.1.1"
        );
    }
    for _ in 0..3 {
        let r = dig(&pair, SERVER_V4, "app.example.test", "AAAA", None).expect("a reply");
        assert_eq!(r.status, "NOERROR");
    }
    for _ in 0..2 {
        let r = dig(&pair, SERVER_V4, "nope.example.test", "A", None).expect("a reply");
        assert_eq!(r.status, "NXDOMAIN");
    }
    for _ in 0..3 {
        let r = dig(&pair, SERVER_V4, "app.example.test", "ANY", None).expect("a reply");
        assert_eq!(r.status, "NOERROR");
    }
    // 4 with a client subnet: app depends on no address, so scope 0; XDP answers them.
    for _ in 0..4 {
        let out = pair.client_cmd(&[
            "dig",
            &format!("@{SERVER_V4}"),
            "app.example.test",
            "A",
            "+subnet=198.18.77.0/24",
            "+tries=1",
            "+time=2",
        ]);
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(text.contains("CLIENT-SUBNET: 198.18.77.0/24/0"), "{text}");
    }
    let after = scrape(&pair, "198.18.0.2:9153");
    let ecs = |s: &prometheus_parse::Scrape, path: &str| -> f64 {
        s.samples
            .iter()
            .filter(|x| {
                x.metric == "xgslb_ecs_answers_total"
                    && x.labels.get("path") == Some(path)
                    && x.labels.get("family") == Some("ipv4")
                    && x.labels.get("scope") == Some("0")
            })
            .map(|x| match x.value {
                prometheus_parse::Value::Counter(v) => v,
                _ => f64::NAN,
            })
            .sum()
    };
    let (ecs_xdp, ecs_slow) = (
        ecs(&after, "xdp") - ecs(&before, "xdp"),
        ecs(&after, "slow_path") - ecs(&before, "slow_path"),
    );
    assert_eq!((ecs_xdp, ecs_slow), (4.0, 0.0));
    let delta = |name: &str, label: (&str, &str)| {
        sample(&after, name, label) - sample(&before, name, label)
    };
    assert_eq!(
        delta("xgslb_xdp_packets_total", ("outcome", "answered")),
        10.0 + ecs_xdp,
        "{:?}",
        d.stats()
    );
    assert_eq!(
        delta("xgslb_slow_path_responses_total", ("rcode", "NOERROR")),
        3.0 + ecs_slow
    );
    assert_eq!(
        delta("xgslb_slow_path_responses_total", ("rcode", "NXDOMAIN")),
        0.0
    );
    for (kind, n) in [
        ("addresses", 5.0 + ecs_xdp),
        ("nodata", 3.0),
        ("nxdomain", 2.0),
    ] {
        assert_eq!(
            delta("xgslb_xdp_answers_by_kind_total", ("kind", kind)),
            n,
            "{kind}"
        );
    }
    assert_eq!(sample(&after, "xgslb_vs_available", ("vs", "tokyo-a")), 1.0);
    // Answers per wide IP by region and VS: the XDP answers, led by tokyo-a, default class.
    let answers = after
        .samples
        .iter()
        .find(|x| {
            x.metric == "xgslb_answers_total"
                && x.labels.get("wideip") == Some("app.example.test.")
                && x.labels.get("vs") == Some("tokyo-a")
                && x.labels.get("region") == Some("default")
        })
        .expect("xgslb_answers_total for app by tokyo-a");
    assert!(
        matches!(answers.value, prometheus_parse::Value::Counter(v) if v == 5.0 + ecs_xdp),
        "{answers:?}"
    );
    // The counters agree with the pinned maps xgslbctl stats reads.
    let stats = d.stats();
    assert_eq!(
        sample(&after, "xgslb_xdp_packets_total", ("outcome", "answered")),
        stats[xgslb_common::Counter::Answered as usize] as f64
    );
    // Out of rotation: the availability gauge drops and says why, read from the view the
    // disable published before its reply.
    let r = control(
        &d,
        xgslb::control::protocol::Command::Disable {
            target: xgslb::control::protocol::Target::Vs("tokyo-a".into()),
        },
    );
    assert!(r.ok, "{r:?}");
    let disabled = scrape(&pair, "198.18.0.2:9153");
    assert_eq!(
        sample(&disabled, "xgslb_vs_available", ("vs", "tokyo-a")),
        0.0
    );
    let why = disabled
        .samples
        .iter()
        .find(|x| x.metric == "xgslb_vs_unavailable" && x.labels.get("vs") == Some("tokyo-a"))
        .expect("xgslb_vs_unavailable for tokyo-a");
    assert_eq!(why.labels.get("reason"), Some("disabled"), "{why:?}");
    assert!(
        !disabled
            .samples
            .iter()
            .any(|x| x.metric == "xgslb_vs_unavailable" && x.labels.get("vs") != Some("tokyo-a")),
        "only tokyo-a is out"
    );
}
