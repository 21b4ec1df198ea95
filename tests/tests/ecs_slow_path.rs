//! EDNS Client Subnet (RFC 7871) on the slow path, through the whole handler (query bytes
//! in, response bytes out) over a config built as xgslbd builds it: the subnet stands for
//! the client, the response echoes it, and the scope is the widest prefix around the
//! subnet over which the answer is the same.
use std::net::IpAddr;

use hickory_proto::{
    op::{Edns, Message, MessageType, OpCode, Query, ResponseCode},
    rr::{
        Name, RData, RecordType,
        rdata::opt::{ClientSubnet, EdnsCode, EdnsOption},
    },
};
use xgslb::{
    daemon::{Built, build},
    dns::Transport,
    test_model::TestModel,
};
use xgslb_tests::gslb::three_sites;

/// A topology wide IP over a /16 region (Tokyo) with a /20 region (New York) inside it and
/// an IPv6 pair the same way; a persist wide IP; one that ignores client subnets.
fn model(ecs: &[&str]) -> TestModel {
    ecs.iter()
        .fold(three_sites(), |m, line| m.set("ecs", line))
        .region("wide", &["198.18.0.0/16", "2001:db8::/32"])
        .region("narrow", &["198.18.0.0/20", "2001:db8::/48"])
        .topology("wide", "tokyo", 10)
        .topology("narrow", "newyork", 10)
        .pool("geo", &["tokyo-a", "frankfurt-a", "newyork-a"], "topology")
        .pool(
            "sticky",
            &["tokyo-a", "frankfurt-a", "newyork-a"],
            "static_persist",
        )
        .wideip("geo.example.test.", &["geo"])
        .wideip("geo-ignore.example.test.", &["geo"])
        .with("ecs = \"ignore\"")
        .wideip("sticky.example.test.", &["sticky"])
        .with("persist_v4 = 28")
}

fn built(ecs: &[&str]) -> Built {
    let dir = tempfile::tempdir().expect("tempdir");
    let cfg = model(ecs).load(dir.path());
    build(&cfg).expect("build")
}

/// What came back: the first A record's address, the rcode, and the echoed subnet.
struct Reply {
    address: Option<IpAddr>,
    rcode: ResponseCode,
    subnet: Option<ClientSubnet>,
}

fn ask(b: &Built, name: &str, from: &str, subnet: Option<(&str, u8)>) -> Reply {
    let mut m = Message::new(7, MessageType::Query, OpCode::Query);
    m.add_query(Query::query(
        Name::from_ascii(name).expect("name"),
        RecordType::A,
    ));
    let mut edns = Edns::new();
    edns.set_max_payload(1232);
    if let Some((a, source)) = subnet {
        edns.options_mut()
            .insert(EdnsOption::Subnet(ClientSubnet::new(
                a.parse().expect("address"),
                source,
                0,
            )));
    }
    m.set_edns(edns);
    let query = m.to_vec().expect("encode");
    let bytes = b
        .catalog
        .respond(
            &query,
            Transport::Udp,
            from.parse().expect("source"),
            b.snapshot.as_ref(),
        )
        .expect("a response");
    let r = Message::from_vec(&bytes).expect("response parses");
    let subnet = r
        .edns
        .as_ref()
        .and_then(|e| e.option(EdnsCode::Subnet))
        .and_then(|o| match o {
            EdnsOption::Subnet(s) => Some(*s),
            _ => None,
        });
    Reply {
        address: r.answers.iter().find_map(|rec| match &rec.data {
            RData::A(a) => Some(IpAddr::V4(a.0)),
            _ => None,
        }),
        rcode: r.metadata.response_code,
        subnet,
    }
}

const TOKYO: &str = "198.18.1.1";
const NEWYORK: &str = "198.18.3.1";
/// A resolver outside every region.
const RESOLVER: &str = "198.19.0.53";

fn addr(s: &str) -> Option<IpAddr> {
    Some(s.parse().expect("address"))
}

#[test]
fn each_client_gets_its_regions_answer_and_the_widest_prefix_with_that_answer() {
    let b = built(&[]);
    let r = ask(&b, "geo.example.test.", RESOLVER, Some(("198.18.3.0", 24)));
    assert_eq!(r.address, addr(NEWYORK));
    let s = r.subnet.expect("the subnet is echoed");
    assert_eq!(
        (s.addr(), s.source_prefix(), s.scope_prefix()),
        ("198.18.3.0".parse().unwrap(), 24, 20),
        "inside the /20: its boundary"
    );
    // The /16's upper half holds no /20: scope 17. Beside the /20 in the /17 below: 20.
    let r = ask(
        &b,
        "geo.example.test.",
        RESOLVER,
        Some(("198.18.200.0", 24)),
    );
    assert_eq!(r.address, addr(TOKYO));
    assert_eq!(r.subnet.map(|s| s.scope_prefix()), Some(17));
    let r = ask(&b, "geo.example.test.", RESOLVER, Some(("198.18.16.0", 24)));
    assert_eq!(r.address, addr(TOKYO));
    assert_eq!(r.subnet.map(|s| s.scope_prefix()), Some(20));
    // IPv6 subnet asked over IPv4: the /48 inside the /32.
    let r = ask(
        &b,
        "geo.example.test.",
        RESOLVER,
        Some(("2001:db8:0:ab00::", 56)),
    );
    assert_eq!(r.address, addr(NEWYORK));
    assert_eq!(r.subnet.map(|s| s.scope_prefix()), Some(48));
    // Without a subnet the resolver's own address decides, and no subnet is echoed.
    let r = ask(&b, "geo.example.test.", "198.18.3.9", None);
    assert_eq!((r.address, r.subnet), (addr(NEWYORK), None));
}

#[test]
fn longer_subnets_are_cut_to_the_honoured_length_and_the_scope_never_exceeds_it() {
    let b = built(&[]);
    // A /32 is cut to /24: the answer of the /24's network, scope at most 24.
    let r = ask(&b, "geo.example.test.", RESOLVER, Some(("198.18.3.77", 32)));
    assert_eq!(r.address, addr(NEWYORK));
    let s = r.subnet.expect("echoed");
    assert_eq!(
        (s.addr(), s.source_prefix(), s.scope_prefix()),
        ("198.18.3.77".parse().unwrap(), 32, 20),
        "echoed as sent"
    );
    // A /8 covers both regions: answered for its network address, scope 8.
    let r = ask(&b, "geo.example.test.", RESOLVER, Some(("198.0.0.0", 8)));
    assert_eq!(r.subnet.map(|s| s.scope_prefix()), Some(8));
    // A /0 says nothing about the client: the resolver's address decides, scope 0.
    let r = ask(&b, "geo.example.test.", "198.18.3.9", Some(("0.0.0.0", 0)));
    assert_eq!(r.address, addr(NEWYORK));
    assert_eq!(r.subnet.map(|s| s.scope_prefix()), Some(0));
}

#[test]
fn static_names_negative_answers_and_ignoring_wide_ips_have_scope_zero() {
    let b = built(&[]);
    for name in [
        "mail.example.test.",
        "nothing-here.example.test.",
        "geo-ignore.example.test.",
    ] {
        let r = ask(&b, name, "198.18.3.9", Some(("198.18.200.0", 24)));
        let s = r.subnet.unwrap_or_else(|| panic!("{name}: echoed"));
        assert_eq!(s.scope_prefix(), 0, "{name}");
    }
    assert_eq!(
        ask(
            &b,
            "nothing-here.example.test.",
            RESOLVER,
            Some(("198.18.200.0", 24))
        )
        .rcode,
        ResponseCode::NXDomain
    );
    // Ignored: the resolver's region (New York), not the subnet's (Tokyo).
    let r = ask(
        &b,
        "geo-ignore.example.test.",
        "198.18.3.9",
        Some(("198.18.200.0", 24)),
    );
    assert_eq!(r.address, addr(NEWYORK));
}

#[test]
fn persist_names_get_the_persist_mask_within_the_honoured_length() {
    let b = built(&["max_source_v4 = 32"]);
    let r = ask(
        &b,
        "sticky.example.test.",
        RESOLVER,
        Some(("198.18.200.7", 32)),
    );
    assert_eq!(r.subnet.map(|s| s.scope_prefix()), Some(28));
    // Every client of one /28 gets one answer; and a /24 is scoped /24.
    let first = r.address;
    for last in 0..16u8 {
        let a = format!("198.18.200.{last}");
        assert_eq!(
            ask(&b, "sticky.example.test.", RESOLVER, Some((&a, 32))).address,
            first
        );
    }
    let r = ask(
        &b,
        "sticky.example.test.",
        RESOLVER,
        Some(("198.18.200.0", 24)),
    );
    assert_eq!(r.subnet.map(|s| s.scope_prefix()), Some(24));
}

#[test]
fn only_trusted_resolvers_subnets_are_honoured_when_some_are_named() {
    let b = built(&["trusted = [\"198.19.0.0/24\"]"]);
    let r = ask(&b, "geo.example.test.", RESOLVER, Some(("198.18.3.0", 24)));
    assert_eq!(r.address, addr(NEWYORK));
    assert_eq!(r.subnet.map(|s| s.scope_prefix()), Some(20));
    // From elsewhere: the source decides (Tokyo's region), scope 0.
    let r = ask(
        &b,
        "geo.example.test.",
        "198.18.200.1",
        Some(("198.18.3.0", 24)),
    );
    assert_eq!(r.address, addr(TOKYO));
    assert_eq!(r.subnet.map(|s| s.scope_prefix()), Some(0));
}

#[test]
fn bad_ecs_settings_are_refused_with_the_key() {
    let dir = tempfile::tempdir().expect("tempdir");
    for (line, key) in [
        ("max_source_v4 = 33", "ecs.max_source_v4"),
        ("max_source_v6 = 129", "ecs.max_source_v6"),
        ("trusted = [\"not-a-prefix\"]", "ecs.trusted[0]"),
    ] {
        let path = model(&[line]).write(dir.path());
        let e = xgslb::config::Config::load(&path).expect_err(line);
        assert!(e.to_string().contains(key), "{line}: {e}");
    }
    let path = model(&[]).with("ecs = \"sometimes\"").write(dir.path());
    let e = xgslb::config::Config::load(&path).expect_err("bad ecs");
    assert!(e.to_string().contains(".ecs"), "{e}");
}
