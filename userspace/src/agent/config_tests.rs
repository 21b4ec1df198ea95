//! Agent config validation: a good config, then one refused case per rule.
use std::{fs, os::unix::fs::PermissionsExt, path::Path};

use super::*;

const GOOD: &str = r#"
agent_id = "tokyo-1"
site = "tokyo"
interval_ms = 1000

[[edns]]
address = "198.18.0.2:5300"
key_id = 1
secret_file = "agent.key"

[[edns]]
address = "[2001:db8::2]:5300"
key_id = 7
secret_file = "agent.key"

[[vs]]
name = "tokyo-www"
[vs.check]
kind = "tcp"
address = "198.18.1.10:80"
interval_ms = 1000
timeout_ms = 500
rise = 3
fall = 2
[vs.load]
connections_port = 80
interface = "eth0"
cpu = true
capacity = 1000
command = ["/usr/local/bin/load", "--json"]
http_json = "http://127.0.0.1:9100/load"

[[vs]]
name = "tokyo-api"
[vs.check]
kind = "https"
url = "https://api.example.test:8443/health"
expect_status = 204
body_contains = "ok"
insecure = true

[[vs]]
name = "tokyo-dns"
[vs.check]
kind = "dns"
server = "198.18.1.53:53"
name = "www.example.test"
qtype = "aaaa"
expect_rcode = "NXDOMAIN"

[probes]
ldns = ["198.18.64.1", "2001:db8:4000::1"]
max_targets = 64
interval_ms = 5000
count = 5
timeout_ms = 1000
"#;

/// A directory with `agent.key` (mode 0600, 32 bytes and a newline) beside `agent.toml`.
fn dir() -> tempfile::TempDir {
    let d = tempfile::tempdir().unwrap();
    let key = d.path().join("agent.key");
    fs::write(&key, "0123456789abcdef0123456789abcdef\n").unwrap();
    fs::set_permissions(&key, fs::Permissions::from_mode(0o600)).unwrap();
    d
}

fn parse_in(d: &Path, text: &str) -> Result<AgentConfig, Error> {
    AgentConfig::parse(&d.join("agent.toml"), text)
}

fn error_of(text: &str) -> String {
    let d = dir();
    match parse_in(d.path(), text) {
        Ok(_) => panic!("accepted:\n{text}"),
        Err(e) => e.to_string(),
    }
}

#[test]
fn a_good_config_validates() {
    let d = dir();
    let c = parse_in(d.path(), GOOD).unwrap();
    assert_eq!(c.agent_id, "tokyo-1");
    assert_eq!(c.interval, Duration::from_secs(1));
    assert_eq!(c.edns.len(), 2);
    assert_eq!(c.edns[1].key.id, 7);
    // The trailing newline is not part of the secret.
    assert_eq!(c.edns[0].key.secret, b"0123456789abcdef0123456789abcdef");
    assert_eq!(c.edns[0].secret_file, d.path().join("agent.key"));
    let tcp = c.vs[0].check.as_ref().unwrap();
    assert!(matches!(tcp.kind, CheckKind::Tcp { address } if address.port() == 80));
    assert_eq!((tcp.rise, tcp.fall), (3, 2));
    assert_eq!(c.vs[0].load.connections_port, Some(80));
    assert_eq!(c.vs[0].load.http_json.as_ref().unwrap().port, 9100);
    assert_eq!(c.vs[0].load.timeout, Duration::from_secs(1));
    let CheckKind::Http(h) = &c.vs[1].check.as_ref().unwrap().kind else {
        panic!("https check");
    };
    assert!(h.url.tls && h.insecure);
    assert_eq!((h.expect_status, h.url.port), (204, 8443));
    assert!(c.vs[1].load.is_empty());
    let CheckKind::Dns {
        qtype,
        expect_rcode,
        name,
        ..
    } = &c.vs[2].check.as_ref().unwrap().kind
    else {
        panic!("dns check");
    };
    assert_eq!(*qtype, RecordType::AAAA);
    assert_eq!(*expect_rcode, ResponseCode::NXDomain);
    assert_eq!(name.to_string(), "www.example.test.");
    assert_eq!(c.probes.ldns.len(), 2);
    assert_eq!(c.probes.port, 53);
}

#[test]
fn defaults_fill_in() {
    let text = r#"
agent_id = "a"
site = "s"
[[edns]]
address = "127.0.0.1:5300"
key_id = 1
secret_file = "agent.key"
[[vs]]
name = "v"
[vs.check]
kind = "http"
url = "http://127.0.0.1/"
"#;
    let d = dir();
    let c = parse_in(d.path(), text).unwrap();
    assert_eq!(c.interval, Duration::from_millis(1000));
    let check = c.vs[0].check.as_ref().unwrap();
    assert_eq!(
        (check.interval, check.timeout, check.rise, check.fall),
        (
            Duration::from_millis(1000),
            Duration::from_millis(500),
            2,
            2
        )
    );
    let CheckKind::Http(h) = &check.kind else {
        panic!("http");
    };
    assert_eq!((h.expect_status, h.insecure), (200, false));
    assert_eq!(c.probes, ProbeConfig::default());
}

#[test]
fn errors_name_the_key() {
    let cases: Vec<(String, &str)> = vec![
        (GOOD.replace("site = ", "sight = "), "unknown field `sight`"),
        (
            GOOD.replace("kind = \"tcp\"", "kind = \"icmp\""),
            "unknown variant `icmp`",
        ),
        (GOOD.replace("\"tokyo-1\"", "\"\""), "agent_id: 1 to 63"),
        (
            GOOD.replace("\"tokyo-1\"", &format!("{:?}", "a".repeat(64))),
            "agent_id: 1 to 63",
        ),
        (
            GOOD.replace("site = \"tokyo\"", "site = \"\""),
            "site: 1 to 63",
        ),
        (
            GOOD.replace(
                "interval_ms = 1000\n\n[[edns]]",
                "interval_ms = 0\n\n[[edns]]",
            ),
            "interval_ms: 100 to",
        ),
        (
            GOOD.replace("198.18.0.2:5300", "198.18.0.2"),
            "edns[0].address",
        ),
        (
            GOOD.replace("198.18.0.2:5300", "0.0.0.0:5300"),
            "edns[0].address",
        ),
        (
            GOOD.replace("[2001:db8::2]:5300", "198.18.0.2:5300"),
            "edns[1].address: 198.18.0.2:5300 twice",
        ),
        (
            GOOD.replace(
                "secret_file = \"agent.key\"\n\n[[edns]]",
                "secret_file = \"missing.key\"\n\n[[edns]]",
            ),
            "edns[0].secret_file",
        ),
        (
            GOOD.replace("name = \"tokyo-api\"", "name = \"tokyo-www\""),
            "vs[1].name: \"tokyo-www\" twice",
        ),
        (
            GOOD.replace("name = \"tokyo-api\"", "name = \"\""),
            "vs[1].name: 1 to 255",
        ),
        (
            GOOD.replace("timeout_ms = 500", "timeout_ms = 1500"),
            "vs[0].check.timeout_ms: at most interval_ms",
        ),
        (
            GOOD.replace("timeout_ms = 500", "timeout_ms = 0"),
            "vs[0].check.timeout_ms",
        ),
        (GOOD.replace("rise = 3", "rise = 0"), "vs[0].check.rise"),
        (GOOD.replace("fall = 2", "fall = 0"), "vs[0].check.fall"),
        (
            GOOD.replace("address = \"198.18.1.10:80\"", "url = \"http://x/\""),
            "vs[0].check.url: not used by kind tcp",
        ),
        (
            GOOD.replace("address = \"198.18.1.10:80\"\n", ""),
            "vs[0].check.address: required for kind tcp",
        ),
        (
            GOOD.replace("198.18.1.10:80", "198.18.1.10:0"),
            "vs[0].check.address",
        ),
        (
            GOOD.replace("kind = \"https\"", "kind = \"http\""),
            "vs[1].check.insecure: not used by kind http",
        ),
        (
            GOOD.replace("https://api", "http://api"),
            "vs[1].check.url: kind https needs a https:// URL",
        ),
        (
            GOOD.replace(
                "https://api.example.test:8443/health",
                "https://api example/",
            ),
            "vs[1].check.url",
        ),
        (
            GOOD.replace("expect_status = 204", "expect_status = 600"),
            "vs[1].check.expect_status",
        ),
        (
            GOOD.replace("body_contains = \"ok\"", "body_contains = \"\""),
            "vs[1].check.body_contains",
        ),
        (
            GOOD.replace("qtype = \"aaaa\"", "qtype = \"BOGUS\""),
            "vs[2].check.qtype",
        ),
        (
            GOOD.replace("\"NXDOMAIN\"", "\"NOPE\""),
            "vs[2].check.expect_rcode",
        ),
        (
            GOOD.replace("name = \"www.example.test\"", "name = \"a..b\""),
            "vs[2].check.name",
        ),
        (
            GOOD.replace("server = \"198.18.1.53:53\"\n", ""),
            "vs[2].check.server: required",
        ),
        (
            GOOD.replace("connections_port = 80", "connections_port = 0"),
            "vs[0].load.connections_port",
        ),
        (
            GOOD.replace("interface = \"eth0\"", "interface = \"../etc\""),
            "vs[0].load.interface",
        ),
        (
            GOOD.replace(
                "interface = \"eth0\"",
                "interface = \"averyveryverylongname\"",
            ),
            "vs[0].load.interface",
        ),
        (
            GOOD.replace("[\"/usr/local/bin/load\", \"--json\"]", "[]"),
            "vs[0].load.command",
        ),
        (
            GOOD.replace("http://127.0.0.1:9100/load", "https://127.0.0.1:9100/load"),
            "vs[0].load.http_json",
        ),
        (
            GOOD.replace("cpu = true", "cpu = true\ntimeout_ms = 0"),
            "vs[0].load.timeout_ms",
        ),
        (
            GOOD.replace("cpu = true", "cpu = true\nkind = \"tcp\""),
            "unknown field `kind`",
        ),
        (
            GOOD.replace("\"198.18.64.1\"", "\"198.18.64\""),
            "probes.ldns[0]",
        ),
        (
            GOOD.replace("\"198.18.64.1\"", "\"224.0.0.1\""),
            "probes.ldns[0]: 224.0.0.1 cannot be probed",
        ),
        (
            GOOD.replace("\"2001:db8:4000::1\"", "\"198.18.64.1\""),
            "probes.ldns[1]: 198.18.64.1 twice",
        ),
        (
            GOOD.replace("max_targets = 64", "max_targets = 1"),
            "probes.max_targets: below the 2",
        ),
        (
            GOOD.replace("max_targets = 64", "max_targets = 5000"),
            "probes.max_targets: at most",
        ),
        (GOOD.replace("count = 5", "count = 0"), "probes.count"),
        (GOOD.replace("count = 5", "count = 101"), "probes.count"),
        (
            GOOD.replace("timeout_ms = 1000\n", "timeout_ms = 6000\n"),
            "probes.timeout_ms: at most probes.interval_ms",
        ),
        (
            GOOD.replace("interval_ms = 5000", "interval_ms = 5"),
            "probes.interval_ms",
        ),
        (
            GOOD.replace("count = 5", "count = 5\nport = 0"),
            "probes.port",
        ),
    ];
    for (text, want) in cases {
        assert_ne!(text, GOOD, "case {want:?} changed nothing");
        let err = error_of(&text);
        assert!(err.contains(want), "error {err:?} lacks {want:?}");
    }
}

#[test]
fn no_edns_is_refused() {
    let text = "agent_id = \"a\"\nsite = \"s\"\n";
    assert!(error_of(text).contains("edns: at least one"));
}

#[test]
fn a_vs_needs_a_check_or_a_load_source() {
    let text = r#"
agent_id = "a"
site = "s"
[[edns]]
address = "127.0.0.1:5300"
key_id = 1
secret_file = "agent.key"
[[vs]]
name = "idle"
"#;
    assert!(error_of(text).contains("vs[0].name: \"idle\" has neither"));
    let with_capacity = format!("{text}[vs.load]\ncapacity = 10\n");
    let d = dir();
    assert_eq!(
        parse_in(d.path(), &with_capacity).unwrap().vs[0]
            .load
            .capacity,
        Some(10)
    );
}

#[test]
fn secrets_must_be_private_regular_and_long() {
    let d = dir();
    let key = d.path().join("agent.key");
    fs::set_permissions(&key, fs::Permissions::from_mode(0o640)).unwrap();
    let e = parse_in(d.path(), GOOD).unwrap_err().to_string();
    assert!(
        e.contains("edns[0].secret_file") && e.contains("mode 0640"),
        "{e}"
    );

    fs::set_permissions(&key, fs::Permissions::from_mode(0o400)).unwrap();
    parse_in(d.path(), GOOD).expect("0400 is stricter than 0600");

    fs::set_permissions(&key, fs::Permissions::from_mode(0o600)).unwrap();
    fs::write(&key, "short\r\n").unwrap();
    let e = parse_in(d.path(), GOOD).unwrap_err().to_string();
    assert!(e.contains("holds 5 bytes"), "{e}");

    fs::remove_file(&key).unwrap();
    fs::create_dir(&key).unwrap();
    let e = parse_in(d.path(), GOOD).unwrap_err().to_string();
    assert!(e.contains("not a regular file"), "{e}");
}

#[test]
fn rcodes_parse() {
    assert_eq!(parse_rcode("noerror"), Some(ResponseCode::NoError));
    assert_eq!(parse_rcode("REFUSED"), Some(ResponseCode::Refused));
    assert_eq!(parse_rcode("2"), Some(ResponseCode::ServFail));
    assert_eq!(parse_rcode("4096"), None);
    assert_eq!(parse_rcode("x"), None);
}
