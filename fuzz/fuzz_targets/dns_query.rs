//! Any bytes as a DNS query to both user-space paths, over UDP and TCP: the UDP workers' plan
//! (`PlanAnswers::answer`, the XDP program's twin) and the full handler (`Catalog::respond`),
//! serving the demo zone with wide IPs, answer sets, regions and a delegation. Neither may
//! panic, every response must parse as a DNS message with the query's id, and a UDP one
//! must fit the buffer it was written to.
#![no_main]

use std::{net::IpAddr, sync::OnceLock};

use hickory_proto::op::Message;
use libfuzzer_sys::fuzz_target;
use xgslb::{
    daemon::{Built, build},
    dns::Transport,
    test_model::TestModel,
    udp::{PlanAnswers, Planned},
};

struct Served {
    built: Built,
    plan: PlanAnswers,
}

fn served() -> &'static Served {
    static SERVED: OnceLock<Served> = OnceLock::new();
    SERVED.get_or_init(|| {
        let dir = tempfile::tempdir().expect("temp dir");
        let cfg = TestModel::new(&["198.18.0.2:53"])
            .demo_zone()
            .answer(
                "www.example.test.",
                30,
                &[("198.18.1.10", 2), ("198.18.1.11", 1)],
            )
            .site(
                "tokyo",
                "lb",
                &[("tokyo-www", "198.18.1.20"), ("tokyo-v6", "2001:db8:1::20")],
            )
            .site("newyork", "lb2", &[("newyork-www", "198.18.2.20")])
            .region("asia", &["198.18.64.0/18", "2001:db8:4000::/34"])
            .topology("asia", "tokyo", 100)
            .pool("p", &["tokyo-www", "newyork-www", "tokyo-v6"], "topology")
            .wideip("app.example.test.", &["p"])
            .pool("q", &["tokyo-www", "newyork-www"], "static_persist")
            .wideip("failover.example.test.", &["q"])
            .load(dir.path());
        let built = build(&cfg).expect("build the demo");
        let plan = PlanAnswers::new(built.entries.clone(), &built.prefixes);
        // The zone files were read: the directory can go.
        drop(dir);
        Served { built, plan }
    })
}

fuzz_target!(|data: &[u8]| {
    let s = served();
    // The first byte picks the client: inside the region or not, either family.
    let (client, query): (IpAddr, &[u8]) = match data.split_first() {
        Some((b, rest)) => (
            match b % 4 {
                0 => "198.18.64.7".parse().expect("address"),
                1 => "198.18.200.1".parse().expect("address"),
                2 => "2001:db8:4000::7".parse().expect("address"),
                _ => "2001:db8:ffff::1".parse().expect("address"),
            },
            rest,
        ),
        None => return,
    };
    let mut out = [0u8; 1232];
    let mut pick = 0;
    if let Planned::Answered(n) = s.plan.answer(query, client, &mut pick, &mut out) {
        assert!(n <= out.len());
        let m = Message::from_vec(&out[..n]).expect("the plan's response parses");
        assert_eq!(
            Some(m.id),
            query.get(..2).map(|b| u16::from_be_bytes([b[0], b[1]]))
        );
    }
    for transport in [Transport::Udp, Transport::Tcp] {
        if let Some(r) = s
            .built
            .catalog
            .respond(query, transport, client, &*s.built.snapshot)
        {
            let m = Message::from_vec(&r).expect("the handler's response parses");
            if let Some(id) = query.get(..2) {
                assert_eq!(m.id, u16::from_be_bytes([id[0], id[1]]));
            }
        }
    }
});
