//! End to end in network namespaces: xgslbd with its XDP program on a real veth, queried by
//! real dig and kdig from another namespace over IPv4 and IPv6: A, AAAA, HTTPS (NODATA), MX
//! with additional data and NXDOMAIN. The XDP counters prove which path answered; with XDP
//! off the slow path gives the same responses.
use xgslb::config::XdpModeSetting;
use xgslb_common::Counter;
use xgslb_tests::{
    daemon::{ConfigDir, Daemon, test_model},
    dig::record_lines,
    netns::{NetnsPair, SERVER_V4, SERVER_V6},
};

/// What `tool` prints for a query, with `extra` options; the tool must succeed.
fn run(
    pair: &NetnsPair,
    tool: &str,
    server: &str,
    name: &str,
    qtype: &str,
    extra: &[&str],
) -> String {
    let at = format!("@{server}");
    let mut args = vec![tool, at.as_str(), name, qtype];
    args.extend_from_slice(if tool == "dig" {
        &["+tries=1", "+time=3"]
    } else {
        &["+retry=0", "+time=3"]
    });
    args.extend_from_slice(extra);
    let out = pair.client_cmd(&args);
    assert!(
        out.status.success(),
        "{args:?}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The answer section of a query, one line per record, sorted.
fn answer_section(
    pair: &NetnsPair,
    tool: &str,
    server: &str,
    name: &str,
    qtype: &str,
    extra: &[&str],
) -> Vec<String> {
    let extra = [&["+noall", "+answer"], extra].concat();
    record_lines(&run(pair, tool, server, name, qtype, &extra))
}

/// The whole response as the tool prints it: the status, then every record of every section
/// (one line each, sorted).
fn response(
    pair: &NetnsPair,
    tool: &str,
    server: &str,
    name: &str,
    qtype: &str,
    extra: &[&str],
) -> Vec<String> {
    let text = run(pair, tool, server, name, qtype, extra);
    let status = text
        .split("status: ")
        .nth(1)
        .and_then(|s| s.split([',', ';']).next())
        .unwrap_or_else(|| panic!("{tool} {name} {qtype}: no status in {text}"))
        .to_owned();
    let mut lines = record_lines(&text);
    lines.insert(0, status);
    lines
}

/// A query: tool, server, name, type, the tool's options, and the kind of answer XDP counts.
type Query = (
    &'static str,
    String,
    &'static str,
    &'static str,
    Vec<&'static str>,
    Counter,
);

/// The queries beyond A that XDP answers, each with the kind of answer it counts as.
fn other_queries(v6: &str) -> Vec<Query> {
    vec![
        (
            "dig",
            SERVER_V4.to_string(),
            "www.example.test",
            "AAAA",
            vec![],
            Counter::AnsweredRecords,
        ),
        (
            "kdig",
            v6.to_string(),
            "WwW.example.test",
            "AAAA",
            vec!["+edns"],
            Counter::AnsweredRecords,
        ),
        (
            "kdig",
            v6.to_string(),
            "www.example.test",
            "HTTPS",
            vec![],
            Counter::AnsweredNoData,
        ),
        (
            "dig",
            SERVER_V4.to_string(),
            "all.example.test",
            "TXT",
            vec![],
            Counter::AnsweredNoData,
        ),
        (
            "kdig",
            v6.to_string(),
            "example.test",
            "MX",
            vec!["+edns"],
            Counter::AnsweredRecords,
        ),
        (
            "dig",
            SERVER_V4.to_string(),
            "example.test",
            "NS",
            vec!["+noedns"],
            Counter::AnsweredRecords,
        ),
        (
            "dig",
            SERVER_V4.to_string(),
            "nope.example.test",
            "A",
            vec![],
            Counter::AnsweredNxDomain,
        ),
        (
            "kdig",
            v6.to_string(),
            "a.b.NOPE.example.test",
            "HTTPS",
            vec!["+edns"],
            Counter::AnsweredNxDomain,
        ),
    ]
}

#[test]
fn xdp_answers_dig_and_kdig_and_the_slow_path_agrees() {
    let pair = NetnsPair::new("e2e");
    let cfg = ConfigDir::new(
        &test_model()
            .answer("www.example.test.", 30, &[("198.18.1.10", 1)])
            .answer(
                "all.example.test.",
                60,
                &[("198.18.1.1", 1), ("198.18.1.2", 5), ("198.18.1.3", 1)],
            )
            .with("records = 3"),
    );
    let d = Daemon::start(&pair, &cfg.path(), XdpModeSetting::Native);

    let v6 = SERVER_V6.to_string();
    let queries: Vec<(&str, &str, &str, Vec<&str>)> = vec![
        ("dig", SERVER_V4, "www.example.test", vec![]),
        ("dig", v6.as_str(), "www.example.test", vec![]),
        ("kdig", SERVER_V4, "www.example.test", vec![]),
        ("kdig", v6.as_str(), "WwW.ExAmPlE.TeSt", vec!["+edns"]),
        ("dig", SERVER_V4, "all.example.test", vec!["+noedns"]),
        (
            "kdig",
            v6.as_str(),
            "www.example.test",
            vec!["+edns", "+dnssec"],
        ),
    ];
    let mut xdp_answers = Vec::new();
    for (tool, server, name, extra) in &queries {
        let before = d.stats();
        let ans = answer_section(&pair, tool, server, name, "A", extra);
        let after = d.stats();
        let grew: Vec<&str> = Counter::ALL
            .iter()
            .filter(|c| after[**c as usize] != before[**c as usize])
            .map(|c| c.name())
            .collect();
        assert_eq!(
            after[Counter::Answered as usize],
            before[Counter::Answered as usize] + 1,
            "{tool} @{server} {name} {extra:?} was not answered by XDP: {grew:?}"
        );
        xdp_answers.push(ans);
    }
    assert_eq!(
        xdp_answers[0],
        vec!["www.example.test. 30 in a 198.18.1.10"]
    );
    assert_eq!(xdp_answers[2], xdp_answers[0]);
    assert_eq!(
        xdp_answers[4],
        vec![
            "all.example.test. 60 in a 198.18.1.1",
            "all.example.test. 60 in a 198.18.1.2",
            "all.example.test. 60 in a 198.18.1.3"
        ]
    );

    // An answer that needs more room than the frame's tailroom (veth copies frames into
    // buffers sized to the packet) takes it from the headroom: still answered by XDP.
    let before = d.stats();
    let all6 = answer_section(&pair, "kdig", &v6, "all.example.test", "A", &["+edns"]);
    assert_eq!(all6, xdp_answers[4]);
    let after = d.stats();
    let grew = |c: Counter| after[c as usize] - before[c as usize];
    assert_eq!((grew(Counter::Answered), grew(Counter::PassResize)), (1, 0));

    // AAAA (www's is static: a precomputed RRset), NODATA, RRsets with additional data and
    // NXDOMAIN: all from XDP, each counted as its kind.
    let mut xdp_responses = Vec::new();
    for (tool, server, name, qtype, extra, kind) in other_queries(&v6) {
        let before = d.stats();
        xdp_responses.push(response(&pair, tool, &server, name, qtype, &extra));
        let after = d.stats();
        let grew = |c: Counter| after[c as usize] - before[c as usize];
        assert_eq!(
            (grew(Counter::Answered), grew(kind)),
            (1, 1),
            "{tool} @{server} {name} {qtype} {extra:?} was not answered by XDP as {}",
            kind.name()
        );
    }
    assert_eq!(
        xdp_responses[0],
        vec!["NOERROR", "www.example.test. 3600 in aaaa 2001:db8:10::10"]
    );
    assert_eq!(xdp_responses[3][0], "NOERROR");
    assert!(
        xdp_responses[3][1].contains(" in soa "),
        "{:?}",
        xdp_responses[3]
    );
    assert!(
        xdp_responses[4].contains(&"example.test. 3600 in mx 10 mail.example.test.".to_owned())
            && xdp_responses[4].contains(&"mail.example.test. 3600 in a 198.18.0.25".to_owned()),
        "{:?}",
        xdp_responses[4]
    );
    assert_eq!(xdp_responses[6][0], "NXDOMAIN");

    // What XDP passes, the slow path answers; the answered counter does not move.
    let before = d.stats();
    let any = response(&pair, "kdig", SERVER_V4, "www.example.test", "ANY", &[]);
    assert_eq!(any[0], "NOERROR");
    let after = d.stats();
    assert_eq!(
        after[Counter::Answered as usize],
        before[Counter::Answered as usize]
    );
    assert_eq!(
        after[Counter::PassQtype as usize],
        before[Counter::PassQtype as usize] + 1,
        "{:?}",
        Counter::ALL
            .iter()
            .filter(|c| after[**c as usize] != before[**c as usize])
            .map(|c| c.name())
            .collect::<Vec<_>>()
    );
    d.stop().expect("clean shutdown");

    // The same queries with XDP off: the slow path gives the same answer sections.
    let d = Daemon::start(&pair, &cfg.path(), XdpModeSetting::Off);
    for ((tool, server, name, extra), xdp) in queries.iter().zip(&xdp_answers) {
        let slow = answer_section(&pair, tool, server, name, "A", extra);
        assert_eq!(
            &slow, xdp,
            "{tool} @{server} {name} {extra:?}: slow path differs from XDP"
        );
    }
    for ((tool, server, name, qtype, extra, _), xdp) in
        other_queries(&v6).iter().zip(&xdp_responses)
    {
        let slow = response(&pair, tool, server, name, qtype, extra);
        assert_eq!(
            &slow, xdp,
            "{tool} @{server} {name} {qtype} {extra:?}: slow path differs from XDP"
        );
    }
    d.stop().expect("clean shutdown");
}
