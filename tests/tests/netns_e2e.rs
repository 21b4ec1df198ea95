//! End to end in network namespaces: xgslbd with its XDP program on a real veth, queried by
//! real dig and kdig from another namespace over IPv4 and IPv6. The XDP counters prove which
//! path answered; with XDP off the slow path gives the same answer section.
use xgslb::config::XdpModeSetting;
use xgslb_common::Counter;
use xgslb_tests::{
    daemon::{ConfigDir, Daemon, test_config},
    netns::{NetnsPair, SERVER_V4, SERVER_V6},
};

const ANSWERS: &str = r#"
[[answer]]
name = "www.example.test."
ttl = 30
addresses = [{ ip = "198.18.1.10" }]

[[answer]]
name = "all.example.test."
ttl = 60
records = 3
addresses = [{ ip = "198.18.1.1" }, { ip = "198.18.1.2", weight = 5 }, { ip = "198.18.1.3" }]
"#;

/// The answer section of a query, one line per record, sorted (rotation order aside).
fn answer_section(
    pair: &NetnsPair,
    tool: &str,
    server: &str,
    name: &str,
    qtype: &str,
    extra: &[&str],
) -> Vec<String> {
    let at = format!("@{server}");
    let mut args = vec![tool, at.as_str(), name, qtype, "+noall", "+answer"];
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
    let text = String::from_utf8_lossy(&out.stdout);
    let mut lines: Vec<String> = text
        .lines()
        .filter(|l| !l.trim().is_empty() && !l.starts_with(';'))
        .map(|l| {
            l.split_whitespace()
                .collect::<Vec<_>>()
                .join(" ")
                .to_lowercase()
        })
        .collect();
    lines.sort();
    lines
}

#[test]
fn xdp_answers_dig_and_kdig_and_the_slow_path_agrees() {
    let pair = NetnsPair::new("e2e");
    let cfg = ConfigDir::new(&test_config(ANSWERS));
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

    // An answer that needs more room than the frame has is passed, and the slow path answers.
    // veth hands XDP frames copied into buffers sized to the packet, so a large growth
    // (three records, an OPT, over IPv6) may not fit there; NIC drivers give whole pages.
    let before = d.stats();
    let all6 = answer_section(&pair, "kdig", &v6, "all.example.test", "A", &["+edns"]);
    assert_eq!(all6, xdp_answers[4]);
    let after = d.stats();
    let grew = |c: Counter| after[c as usize] - before[c as usize];
    let paths = (grew(Counter::Answered), grew(Counter::PassResize));
    assert!(
        paths == (1, 0) || paths == (0, 1),
        "answered {} pass_resize {}: exactly one path must have taken the query",
        paths.0,
        paths.1
    );

    // What XDP passes, the slow path answers; the answered counter does not move.
    let before = d.stats();
    let aaaa = answer_section(&pair, "dig", SERVER_V4, "www.example.test", "AAAA", &[]);
    assert_eq!(aaaa, vec!["www.example.test. 3600 in aaaa 2001:db8:10::10"]);
    let mx = answer_section(&pair, "kdig", &v6, "example.test", "MX", &[]);
    assert_eq!(mx, vec!["example.test. 3600 in mx 10 mail.example.test."]);
    let after = d.stats();
    assert_eq!(
        after[Counter::Answered as usize],
        before[Counter::Answered as usize]
    );
    assert_eq!(
        after[Counter::PassQtype as usize],
        before[Counter::PassQtype as usize] + 2
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
    d.stop().expect("clean shutdown");
}
