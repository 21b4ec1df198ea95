//! A small model for the balancing tests: three sites, one VS each, regions with a group, and
//! topology records.
use std::{net::IpAddr, str::FromStr};

use hickory_proto::rr::Name;
use ipnet::IpNet;

use crate::model::{
    AllDown, Damping, LdnsMatch, Limits, Method, Model, PathMetrics, Pool, PoolMember, PoolMethod,
    QosCoefficients, Region, Server, ServerKind, Site, TargetMatch, TopologyRecord, VirtualServer,
    WideIp,
};

pub const TOKYO: usize = 0;
pub const NEWYORK: usize = 1;
pub const LONDON: usize = 2;

pub const JAPAN: usize = 0;
pub const USA: usize = 1;
pub const ASIA: usize = 2;
pub const APAC_DCS: usize = 3;

pub fn net(s: &str) -> IpNet {
    s.parse().unwrap()
}

pub fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

pub fn path(rtt_ms: f64, hops: u32, completion: f64) -> PathMetrics {
    PathMetrics {
        rtt_ms,
        hops,
        completion,
    }
}

pub fn vs(name: &str, site: usize, addr: &str) -> VirtualServer {
    VirtualServer {
        name: name.into(),
        server: site,
        site,
        addr: ip(addr),
        port: 80,
        capacity: None,
        ratio: 1,
        limits: Limits::default(),
        enabled: true,
    }
}

pub fn pool(name: &str, members: &[(usize, u32)], tiers: [Method; 3]) -> Pool {
    Pool {
        name: name.into(),
        members: members
            .iter()
            .map(|&(vs, ratio)| PoolMember { vs, ratio })
            .collect(),
        tiers,
        fallback_ip: None,
        ttl: 30,
        records: 1,
        ratio: 1,
        qos: QosCoefficients::default(),
    }
}

/// Sites tokyo, newyork, london with VSs 0, 1, 2 (tokyo-www 192.0.2.1, newyork-www
/// 198.51.100.1, london-www 203.0.113.1). Regions japan 10.1/16 (0), usa 10.2/16 (1), asia
/// 10.3/16 + japan (2), apac-dcs = {jp-dc} (3), jp-dc 192.0.2.0/24 (4). Topology: japan ->
/// tokyo 100, asia -> london 50, any -> newyork 10. Pool 0 `www` over VSs 0, 1, 2 (ratios 3,
/// 1, 2), round robin then none; wide IP 0 `www.example.com.` over pool 0, global
/// availability, all down SERVFAIL.
pub fn fixture() -> Model {
    let sites: Vec<Site> = ["tokyo", "newyork", "london"]
        .iter()
        .map(|n| Site { name: (*n).into() })
        .collect();
    let servers = sites
        .iter()
        .enumerate()
        .map(|(i, s)| Server {
            name: format!("{}-lb", s.name),
            site: i,
            kind: ServerKind::Controller,
        })
        .collect();
    let region = |name: &str, prefixes: &[&str], members: &[usize]| Region {
        name: name.into(),
        prefixes: prefixes.iter().map(|p| net(p)).collect(),
        members: members.to_vec(),
    };
    Model {
        sites,
        servers,
        vss: vec![
            vs("tokyo-www", TOKYO, "192.0.2.1"),
            vs("newyork-www", NEWYORK, "198.51.100.1"),
            vs("london-www", LONDON, "203.0.113.1"),
        ],
        pools: vec![pool(
            "www",
            &[(0, 3), (1, 1), (2, 2)],
            [Method::RoundRobin, Method::None, Method::None],
        )],
        wideips: vec![WideIp {
            name: Name::from_str("www.example.com.").unwrap(),
            pools: vec![0],
            pool_method: PoolMethod::GlobalAvailability,
            persist_v4: 24,
            persist_v6: 56,
            all_down: AllDown::ServFail,
            deferral: None,
            ecs: Default::default(),
        }],
        regions: vec![
            region("japan", &["10.1.0.0/16"], &[]),
            region("usa", &["10.2.0.0/16"], &[]),
            region("asia", &["10.3.0.0/16"], &[JAPAN]),
            region("apac-dcs", &[], &[4]),
            region("jp-dc", &["192.0.2.0/24"], &[]),
        ],
        topology: vec![
            TopologyRecord {
                ldns: LdnsMatch::Region(JAPAN),
                target: TargetMatch::Site(TOKYO),
                score: 100,
            },
            TopologyRecord {
                ldns: LdnsMatch::Region(ASIA),
                target: TargetMatch::Site(LONDON),
                score: 50,
            },
            TopologyRecord {
                ldns: LdnsMatch::Any,
                target: TargetMatch::Site(NEWYORK),
                score: 10,
            },
        ],
        damping: Damping::default(),
    }
}
