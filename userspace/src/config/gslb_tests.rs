//! The GSLB sections' parser and validation: the config text is what is under test, so it
//! stays literal TOML here (not `test_model`): a good config with most keys set, and an error
//! per rule naming its key.
use std::path::Path;

use super::*;
use crate::config::tests::{error_of, parse};

/// Every GSLB section, most keys set.
const GOOD: &str = r#"
[server]
listen = ["198.18.0.2:53"]

[[zone]]
origin = "example.test."
file = "example.test.zone"

[[answer]]
name = "www.example.test."
ttl = 30
addresses = [{ ip = "198.18.1.10" }]

[balancer]
interval_ms = 500
metrics_file = "metrics.toml"
cpu = 1
max_classes = 256
damping = { max_step = 0.25, hysteresis = 0.05 }

[[site]]
name = "tokyo"

[[site]]
name = "newyork"

[[site_server]]
name = "tokyo-lb"
site = "tokyo"
kind = "controller"

[[site_server]]
name = "newyork-host"
site = "newyork"
kind = "host"

[[virtual_server]]
name = "tokyo-www"
server = "tokyo-lb"
address = "198.18.1.10"
port = 80
capacity = 1000
ratio = 2
limits = { connections = 5000, bits_per_second = 1e9, packets_per_second = 100000, cpu_percent = 90 }

[[virtual_server]]
name = "newyork-www"
server = "newyork-host"
address = "2001:db8:3::10"
port = 80
enabled = false

[[pool]]
name = "www-asia"
members = ["tokyo-www", { vs = "newyork-www", ratio = 3 }]
preferred = "topology"
alternate = "least_connections"
fallback = "fallback_ip"
fallback_ip = "198.18.9.9"
ttl = 60
records = 2
ratio = 4
qos = { round_trip_time = 10, hops = 1 }

[[pool]]
name = "www-us"
members = ["newyork-www"]

[[wideip]]
name = "GSLB.example.test"
pools = ["www-asia", "www-us"]
pool_method = "global_availability"
persist_v4 = 20
persist_v6 = 48
when_all_down = "fallback_ip"
fallback_ip = "2001:db8::99"

[[wideip]]
name = "app.example.test."
pools = ["www-us"]

[[region]]
name = "japan"
prefixes = ["198.18.64.0/20"]

[[region]]
name = "asia"
prefixes = ["198.18.80.0/20", "2001:db8:4000::/34"]
members = ["japan"]

[[topology]]
ldns = "asia"
site = "tokyo"
score = 100

[[topology]]
ldns = "any"
region = "japan"
score = 5
"#;

#[test]
fn a_good_config_validates_into_the_model() {
    let c = parse(GOOD).unwrap();
    let b = &c.balancer;
    assert_eq!(b.interval, Duration::from_millis(500));
    assert_eq!(
        b.metrics_file.as_deref(),
        Some(Path::new("/etc/xgslb/metrics.toml"))
    );
    assert_eq!((b.cpu, b.max_classes), (Some(1), 256));

    let m = &c.model;
    assert_eq!(
        m.damping,
        Damping {
            max_step: 0.25,
            hysteresis: 0.05
        }
    );
    assert_eq!(m.sites.len(), 2);
    assert_eq!(m.sites[1].name, "newyork");
    assert_eq!(
        m.servers[1],
        Server {
            name: "newyork-host".into(),
            site: 1,
            kind: ServerKind::Host
        }
    );
    assert_eq!(m.servers[0].kind, ServerKind::Controller);

    let tokyo = &m.vss[0];
    assert_eq!((tokyo.server, tokyo.site), (0, 0));
    assert_eq!(tokyo.addr, "198.18.1.10".parse::<IpAddr>().unwrap());
    assert_eq!(
        (tokyo.port, tokyo.capacity, tokyo.ratio),
        (80, Some(1000), 2)
    );
    assert!(tokyo.enabled);
    assert_eq!(
        tokyo.limits,
        crate::model::Limits {
            connections: Some(5000),
            bits_per_second: Some(1_000_000_000),
            packets_per_second: Some(100_000),
            cpu_percent: Some(90.0),
        }
    );
    let ny = &m.vss[1];
    assert_eq!((ny.server, ny.site, ny.ratio, ny.enabled), (1, 1, 1, false));
    assert_eq!(ny.capacity, None);
    assert_eq!(ny.limits, crate::model::Limits::default());

    let asia = &m.pools[0];
    assert_eq!(
        asia.members,
        vec![
            PoolMember { vs: 0, ratio: 2 }, // the VS's ratio
            PoolMember { vs: 1, ratio: 3 },
        ]
    );
    assert_eq!(
        asia.tiers,
        [
            Method::Topology,
            Method::LeastConnections,
            Method::FallbackIp
        ]
    );
    assert_eq!(asia.fallback_ip, Some("198.18.9.9".parse().unwrap()));
    assert_eq!((asia.ttl, asia.records, asia.ratio), (60, 2, 4));
    assert_eq!(asia.qos.round_trip_time, 10.0);
    assert_eq!(asia.qos.hops, 1.0);
    assert_eq!(
        asia.qos.completion_rate,
        QosCoefficients::default().completion_rate
    );
    let us = &m.pools[1];
    assert_eq!(us.members, vec![PoolMember { vs: 1, ratio: 1 }]);
    assert_eq!(us.tiers, [Method::RoundRobin, Method::None, Method::None]);
    assert_eq!(
        (us.fallback_ip, us.ttl, us.records, us.ratio),
        (None, 30, 1, 1)
    );
    assert_eq!(us.qos, QosCoefficients::default());

    let w = &m.wideips[0];
    // Names are read as IDNA, so lowercased.
    assert_eq!(w.name.to_string(), "gslb.example.test.");
    assert_eq!(w.pools, vec![0, 1]);
    assert_eq!(w.pool_method, PoolMethod::GlobalAvailability);
    assert_eq!((w.persist_v4, w.persist_v6), (20, 48));
    assert_eq!(
        w.all_down,
        AllDown::FallbackIp("2001:db8::99".parse().unwrap())
    );
    let app = &m.wideips[1];
    assert_eq!(app.pools, vec![1]);
    assert_eq!(app.pool_method, PoolMethod::RoundRobin);
    assert_eq!((app.persist_v4, app.persist_v6), (24, 56));
    assert_eq!(app.all_down, AllDown::ReturnToDns);

    assert_eq!(m.regions[1].members, vec![0]);
    assert_eq!(
        m.regions[1].prefixes,
        vec![
            "198.18.80.0/20".parse::<IpNet>().unwrap(),
            "2001:db8:4000::/34".parse().unwrap()
        ]
    );
    assert_eq!(
        m.topology,
        vec![
            TopologyRecord {
                ldns: LdnsMatch::Region(1),
                target: TargetMatch::Site(0),
                score: 100
            },
            TopologyRecord {
                ldns: LdnsMatch::Any,
                target: TargetMatch::Region(0),
                score: 5
            },
        ]
    );
}

#[test]
fn the_gslb_sections_are_optional() {
    let head = GOOD.split("[balancer]").next().unwrap();
    let c = parse(head).unwrap();
    assert_eq!(c.model, Model::default());
    assert_eq!(c.balancer, BalancerConfig::default());
    assert_eq!(c.balancer.interval, Duration::from_secs(1));
    let c = parse(&format!(
        "{head}\n[balancer]\ndamping = {{ max_step = 0.5 }}"
    ))
    .unwrap();
    assert_eq!(c.model.damping.max_step, 0.5);
    assert_eq!(c.model.damping.hysteresis, Damping::default().hysteresis);
    assert_eq!(c.balancer.max_classes, 1024);
}

#[test]
fn a_region_cycle_is_named() {
    let text = format!(
        "{GOOD}\n[[region]]\nname = \"a\"\nmembers = [\"b\"]\n[[region]]\nname = \"b\"\nmembers = [\"japan\", \"a\"]"
    );
    let err = error_of(&text);
    assert!(
        err.contains("region[3].members[1]: a cycle of regions: a > b > a"),
        "{err}"
    );
}

#[test]
fn errors_name_the_key() {
    let tail = |s: &str| format!("{GOOD}\n{s}");
    let cases: Vec<(String, &str)> = vec![
        // balancer
        (GOOD.replace("interval_ms = 500", "interval_ms = 10"), "balancer.interval_ms: 50 to 60000"),
        (GOOD.replace("max_classes = 256", "max_classes = 0"), "balancer.max_classes: 1 to 65535"),
        (GOOD.replace("max_step = 0.25", "max_step = 0"), "balancer.damping.max_step"),
        (GOOD.replace("max_step = 0.25", "max_step = 1.5"), "balancer.damping.max_step"),
        (GOOD.replace("hysteresis = 0.05", "hysteresis = 0.25"), "balancer.damping.hysteresis"),
        (GOOD.replace("hysteresis = 0.05", "hysteresis = -0.1"), "balancer.damping.hysteresis"),
        (GOOD.replace("cpu = 1", "cpus = 1"), "unknown field `cpus`"),
        // names
        (GOOD.replace("name = \"newyork\"", "name = \"tokyo\""), "site[1].name: \"tokyo\" twice (also site[0])"),
        (GOOD.replace("name = \"newyork\"", "name = \"new york\""), "site[1].name"),
        (GOOD.replace("name = \"www-us\"", "name = \"www-asia\""), "pool[1].name"),
        (GOOD.replace("name = \"newyork-www\"", "name = \"tokyo-www\""), "virtual_server[1].name"),
        (GOOD.replace("name = \"newyork-host\"", "name = \"tokyo-lb\""), "site_server[1].name"),
        (GOOD.replace("name = \"japan\"", "name = \"asia\""), "region[1].name"),
        (GOOD.replace("name = \"japan\"", "name = \"any\""), "region[0].name: \"any\" is reserved"),
        // servers
        (GOOD.replace("site = \"newyork\"", "site = \"paris\""), "site_server[1].site: no site \"paris\""),
        (GOOD.replace("kind = \"host\"", "kind = \"router\""), "site_server[1].kind: unknown value \"router\"; one of controller, host"),
        // virtual servers
        (GOOD.replace("server = \"newyork-host\"", "server = \"x\""), "virtual_server[1].server: no server \"x\""),
        (GOOD.replace("\"2001:db8:3::10\"", "\"2001:db8:3::10::1\""), "virtual_server[1].address"),
        (GOOD.replace("\"2001:db8:3::10\"", "\"::\""), "virtual_server[1].address"),
        (GOOD.replace("\"2001:db8:3::10\"", "\"198.18.1.10\""), "virtual_server[1].address: 198.18.1.10 port 80 is also virtual_server[0]"),
        (GOOD.replace("port = 80\nenabled", "port = 0\nenabled"), "virtual_server[1].port"),
        (GOOD.replace("capacity = 1000", "capacity = 0"), "virtual_server[0].capacity"),
        (GOOD.replace("ratio = 2", "ratio = 0"), "virtual_server[0].ratio"),
        (GOOD.replace("connections = 5000", "connections = 0"), "virtual_server[0].limits.connections"),
        (GOOD.replace("bits_per_second = 1e9", "bits_per_second = 1.5"), "virtual_server[0].limits.bits_per_second: 1.5 is not a whole number"),
        (GOOD.replace("packets_per_second = 100000", "packets_per_second = -1"), "virtual_server[0].limits.packets_per_second"),
        (GOOD.replace("cpu_percent = 90", "cpu_percent = 101"), "virtual_server[0].limits.cpu_percent"),
        (GOOD.replace("cpu_percent = 90", "cpu_percent = 0"), "virtual_server[0].limits.cpu_percent"),
        // pools
        (GOOD.replace("members = [\"newyork-www\"]", "members = []"), "pool[1].members: at least one"),
        (GOOD.replace("members = [\"newyork-www\"]", "members = [\"nope\"]"), "pool[1].members[0]: no virtual server \"nope\""),
        (GOOD.replace("{ vs = \"newyork-www\", ratio = 3 }", "{ vs = \"tokyo-www\" }"), "pool[0].members[1]: \"tokyo-www\" twice"),
        (GOOD.replace("ratio = 3 }", "ratio = 0 }"), "pool[0].members[1].ratio"),
        (GOOD.replace("ratio = 3 }", "weight = 3 }"), "unknown field `weight`"),
        (GOOD.replace("members = [\"newyork-www\"]", "members = [1]"), "a virtual server name or a table"),
        (GOOD.replace("alternate = \"least_connections\"", "alternate = \"fastest\""), "pool[0].alternate: unknown method \"fastest\"; one of round_robin, ratio"),
        (GOOD.replace("fallback_ip = \"198.18.9.9\"", ""), "pool[0].fallback_ip: required"),
        (GOOD.replace("fallback = \"fallback_ip\"", ""), "pool[0].fallback_ip: set, but no tier is fallback_ip"),
        (GOOD.replace("\"198.18.9.9\"", "\"198.18.9\""), "pool[0].fallback_ip: \"198.18.9\" is not an IP address"),
        (GOOD.replace("ttl = 60", "ttl = 2147483648"), "pool[0].ttl"),
        (GOOD.replace("records = 2", "records = 9"), "pool[0].records: 1 to 8"),
        (GOOD.replace("records = 2", "records = 0"), "pool[0].records"),
        (GOOD.replace("ratio = 4", "ratio = 0"), "pool[0].ratio"),
        (GOOD.replace("hops = 1 }", "hops = -1 }"), "pool[0].qos.hops"),
        (GOOD.replace("qos = { round_trip_time = 10, hops = 1 }", "qos = { round_trip_time = 0, completion_rate = 0, packet_rate = 0, kilobytes_per_second = 0 }"), "pool[0].qos: at least one"),
        (GOOD.replace("hops = 1 }", "jitter = 1 }"), "unknown field `jitter`"),
        (
            {
                let members: Vec<String> = (0..65).map(|i| format!("\"v{i}\"")).collect();
                GOOD.replace("members = [\"newyork-www\"]", &format!("members = [{}]", members.join(",")))
            },
            "pool[1].members: at most 64",
        ),
        // wide IPs
        (GOOD.replace("GSLB.example.test", "gslb.other.test"), "wideip[0].name: gslb.other.test. is in none"),
        (GOOD.replace("GSLB.example.test", "WWW.example.test"), "wideip[0].name: www.example.test. is also an [[answer]]"),
        (GOOD.replace("GSLB.example.test", "*.example.test"), "wideip[0].name: *.example.test.: a wide IP cannot be a wildcard"),
        (GOOD.replace("GSLB.example.test", "a..b"), "wideip[0].name"),
        (GOOD.replace("app.example.test.", "gslb.EXAMPLE.test"), "wideip[1].name: gslb.example.test. twice (also wideip[0])"),
        (GOOD.replace("pools = [\"www-us\"]", "pools = []"), "wideip[1].pools: at least one pool"),
        (GOOD.replace("pools = [\"www-us\"]", "pools = [\"www-eu\"]"), "wideip[1].pools[0]: no pool \"www-eu\""),
        (GOOD.replace("pools = [\"www-asia\", \"www-us\"]", "pools = [\"www-us\", \"www-us\"]"), "wideip[0].pools[1]: \"www-us\" twice"),
        (GOOD.replace("pool_method = \"global_availability\"", "pool_method = \"least_connections\""), "wideip[0].pool_method: unknown value \"least_connections\"; one of round_robin, ratio, global_availability, topology"),
        (GOOD.replace("persist_v4 = 20", "persist_v4 = 33"), "wideip[0].persist_v4: 0 to 32"),
        (GOOD.replace("persist_v6 = 48", "persist_v6 = 129"), "wideip[0].persist_v6: 0 to 128"),
        (GOOD.replace("when_all_down = \"fallback_ip\"", "when_all_down = \"panic\""), "wideip[0].when_all_down: unknown value \"panic\"; one of fallback_ip, return_to_dns, servfail, nodata, drop"),
        (GOOD.replace("fallback_ip = \"2001:db8::99\"", ""), "wideip[0].fallback_ip: required"),
        (GOOD.replace("when_all_down = \"fallback_ip\"", "when_all_down = \"servfail\""), "wideip[0].fallback_ip: set, but when_all_down is not fallback_ip"),
        // regions
        (GOOD.replace("\"198.18.64.0/20\"", "\"198.18.64.0\""), "region[0].prefixes[0]: \"198.18.64.0\" is not a prefix"),
        (GOOD.replace("\"198.18.64.0/20\"", "\"198.18.64.1/20\""), "region[0].prefixes[0]: 198.18.64.1/20 has host bits set (the prefix is 198.18.64.0/20)"),
        (GOOD.replace("\"198.18.80.0/20\"", "\"198.18.64.0/20\""), "region[1].prefixes[0]: 198.18.64.0/20 is also in region[0]"),
        (GOOD.replace("members = [\"japan\"]", "members = [\"kyoto\"]"), "region[1].members[0]: no region \"kyoto\""),
        (GOOD.replace("members = [\"japan\"]", "members = [\"japan\", \"japan\"]"), "region[1].members[1]: \"japan\" twice"),
        (GOOD.replace("members = [\"japan\"]", "members = [\"asia\"]"), "region[1].members[0]: a cycle of regions: asia > asia"),
        (GOOD.replace("prefixes = [\"198.18.64.0/20\"]", ""), "region[0]: a region needs prefixes or members"),
        // topology
        (GOOD.replace("ldns = \"asia\"", "ldns = \"europe\""), "topology[0].ldns: no region \"europe\""),
        (GOOD.replace("site = \"tokyo\"\nscore", "site = \"osaka\"\nscore"), "topology[0].site: no site \"osaka\""),
        (GOOD.replace("region = \"japan\"", "region = \"kyoto\""), "topology[1].region: no region \"kyoto\""),
        (GOOD.replace("region = \"japan\"", "region = \"japan\"\nsite = \"tokyo\""), "topology[1]: exactly one of site and region"),
        (GOOD.replace("site = \"tokyo\"\nscore", "score"), "topology[0]: exactly one of site and region"),
        (tail("[[topology]]\nldns = \"asia\"\nsite = \"tokyo\"\nscore = 1"), "topology[2]: the same ldns and target as topology[0]"),
        (
            GOOD.split("[[topology]]").next().unwrap().to_owned(),
            "pool[0].preferred: topology needs [[topology]] records",
        ),
        (
            GOOD.split("[[topology]]")
                .next()
                .unwrap()
                .replace("preferred = \"topology\"", "")
                .replace("pool_method = \"global_availability\"", "pool_method = \"topology\""),
            "wideip[0].pool_method: topology needs [[topology]] records",
        ),
    ];
    for (text, want) in cases {
        let err = error_of(&text);
        assert!(err.contains(want), "error {err:?} lacks {want:?}");
    }
}
