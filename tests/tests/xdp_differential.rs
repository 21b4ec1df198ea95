//! Differential test of the two paths: 1,000,000 random and mutated queries (seeded; the seed
//! is printed on failure, and XGSLB_DIFF_SEED replays one) through the XDP program with
//! BPF_PROG_TEST_RUN: every query type, names that exist, that do not, under wildcards, cuts
//! and empty non-terminals, CNAMEs, both families, with and without OPT, with and without an
//! EDNS Client Subnet (both families over either transport, every source prefix length,
//! well formed or not, beside other options). Every XDP_TX output must be a well-formed frame
//! back to the sender (addresses and ports swapped, checksums valid) whose DNS message is,
//! section by section and flag by flag, the response the authoritative logic computes from
//! the zone for that query with the same pick (not the bytes XDP copied), its OPT's options
//! byte for byte (the client subnet echoed with the scope), but for a DNS cookie: queries
//! carry client cookies alone, server cookies of ours (young, old, expired) and others', and
//! both paths' COOKIE must be the query's echoed where both echo it, or else a fresh server
//! cookie that validates under the shared secret for the client's address, stamped during
//! the comparison (the two paths may stamp different seconds); everything else must be
//! XDP_PASS, unchanged.
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use hickory_proto::{
    op::{Header, Message, Query},
    rr::{LowerName, Record, RecordType},
    serialize::binary::{BinDecodable, BinDecoder},
};
use rand::{RngExt, SeedableRng, rngs::StdRng};
use xgslb::{
    config::{Config, RrlPolicy},
    daemon::{build, listener_keys},
    dns::{
        Client, CookieSecret, DynamicAnswers, Scoped, Transport,
        cookies::{self, unix_now},
    },
    maps::{DataPlane, publish::publish_listeners},
    plan::snapshot::Snapshot,
    test_model::TestModel,
    udp::{PlanAnswers, Planned, limit::slip_in_place},
};
use xgslb_common::{CookieSeen, Counter, ecs_stat_index};
use xgslb_tests::{
    daemon::ConfigDir,
    frame::{Opt, Udp, XDP_DROP, XDP_PASS, XDP_TX, dns_query, fold, inet_sum, wire_name},
    gslb::three_sites,
    pins::PinDir,
    require_root, xdp_run,
};

const QUERIES: usize = 1_000_000;

/// Static answer sets over `three_sites`, and wide IPs: by ratio, by the client's region (one
/// that ignores client subnets), persisting per LDNS prefix, and two all-down behaviours
/// (drop, SERVFAIL). Regions nest (a /20 in a /16 and an IPv6 pair of another site), so that
/// a client subnet's class and scope depend on where in them it lies; the source prefixes
/// honoured are cut below the defaults.
fn model() -> TestModel {
    let eight: Vec<String> = (1..=8).map(|i| format!("198.18.1.{i}")).collect();
    let eight: Vec<(&str, u32)> = eight.iter().map(|a| (a.as_str(), 1)).collect();
    let sites = ["tokyo-a", "frankfurt-a", "newyork-a"];
    three_sites()
        .answer(
            "www.example.test.",
            30,
            &[("198.18.1.10", 3), ("198.18.2.10", 1)],
        )
        .answer("all.example.test.", 60, &eight)
        .with("records = 8")
        .answer(
            "some.example.test.",
            300,
            &[
                ("198.18.3.1", 7),
                ("198.18.3.2", 2),
                ("198.18.3.3", 1),
                ("2001:db8:3::1", 1),
            ],
        )
        .with("records = 2")
        .answer(
            "a-rather-long-label-to-fill-the-key.with-another-label-here.x.example.test.",
            5,
            &[("198.18.4.1", 1)],
        )
        .vs("off", "tokyo-lb", "198.18.1.99", 80)
        .with("enabled = false")
        .region("r1", &["198.18.0.0/26", "2001:db8::/112"])
        .region("r2", &["198.18.0.64/26", "2001:db8::1:0/112"])
        .region("r3", &["198.19.0.0/16", "2001:db8:1000::/36"])
        .region("r4", &["198.19.0.0/20", "2001:db8:1000::/44"])
        .topology("r1", "tokyo", 10)
        .topology("r2", "newyork", 10)
        .topology("r3", "frankfurt", 10)
        .topology("r4", "newyork", 10)
        .set("ecs", "max_source_v4 = 22")
        .set("ecs", "max_source_v6 = 60")
        .pool(
            "ratio",
            &[
                "{ vs = \"tokyo-a\", ratio = 5 }",
                "{ vs = \"frankfurt-a\", ratio = 3 }",
            ],
            "ratio",
        )
        .with("records = 2")
        .pool("geo", &sites, "topology")
        .with("alternate = \"round_robin\"")
        .pool("sticky", &sites, "static_persist")
        .pool("down", &["off"], "")
        .wideip("gr.example.test.", &["ratio"])
        .wideip("gt.example.test.", &["geo"])
        .wideip("gi.example.test.", &["geo"])
        .with("ecs = \"ignore\"")
        .wideip("gp.example.test.", &["sticky"])
        .with("persist_v4 = 28")
        .with("persist_v6 = 120")
        .wideip("gd.example.test.", &["down"])
        .with("when_all_down = \"drop\"")
        .wideip("gs.example.test.", &["down"])
        .with("when_all_down = \"servfail\"")
}

/// The slow path's dynamic answers with the pick the XDP program used.
struct FixedPick<'a>(&'a Snapshot, u32);

impl DynamicAnswers for FixedPick<'_> {
    fn answer(&self, name: &LowerName, rtype: RecordType, client: &Client) -> Scoped {
        self.0.answer_with_pick(name, rtype, client, self.1)
    }
}

const NAMES: &[&str] = &[
    "www.example.test",
    "all.example.test",
    "some.example.test",
    "a-rather-long-label-to-fill-the-key.with-another-label-here.x.example.test",
    "example.test",
    "ftp.example.test",
    "nope.example.test",
    "x.shop.example.test",
    "host.lab.example.test",
    "lab.example.test",
    "ns.lab.example.test",
    "shop.example.test",
    "a.b.shop.example.test",
    "ns1.example.test",
    "mail.example.test",
    "api.example.test",
    "app.example.test",
    "failover.example.test",
    "deep.er.nope.example.test",
    "x.www.example.test",
    "www.example.org",
    "",
    "gr.example.test",
    "gt.example.test",
    "gi.example.test",
    "gp.example.test",
    "gd.example.test",
    "gs.example.test",
];

fn random_case(rng: &mut StdRng, name: &str) -> String {
    name.chars()
        .map(|c| {
            if rng.random_bool(0.3) {
                c.to_ascii_uppercase()
            } else {
                c
            }
        })
        .collect()
}

/// Who a query comes from, for making it server cookies: the secret both paths share and
/// the client's address.
struct CookieMaker<'a> {
    secret: &'a CookieSecret,
    client: IpAddr,
}

impl CookieMaker<'_> {
    /// The data of a COOKIE option: a client cookie alone, with one of our server cookies
    /// (young, due for renewal, expired, ahead of time; never within seconds of a boundary,
    /// where the two paths could see different seconds), or with another server's.
    fn data(&self, rng: &mut StdRng) -> Vec<u8> {
        let client: [u8; 8] = rng.random();
        let now = i64::from(unix_now());
        let age = match rng.random_range(0..10) {
            0..=3 => return client.to_vec(),
            4 => {
                let len = rng.random_range(8..=32);
                let other: Vec<u8> = (0..len).map(|_| rng.random()).collect();
                return [&client[..], &other].concat();
            }
            5..=6 => rng.random_range(0..1700),
            7 => rng.random_range(1900..3500),
            8 => rng.random_range(3700..90_000),
            _ => -rng.random_range(0..280),
        };
        let server = self
            .secret
            .server_cookie(&client, self.client, (now - age) as u32);
        [&client[..], &server[..]].concat()
    }
}

/// A query: mostly plausible, with every field sometimes random.
fn random_query(rng: &mut StdRng, cookie: &CookieMaker) -> Vec<u8> {
    let name = NAMES[rng.random_range(0..NAMES.len())];
    let qname = if rng.random_bool(0.05) {
        let len = rng.random_range(1..120);
        let mut v = Vec::new();
        while v.len() < len {
            let l = rng.random_range(1..=63usize).min(len);
            v.push(l as u8);
            v.extend((0..l).map(|_| rng.random::<u8>()));
        }
        v.push(0);
        v
    } else if rng.random_bool(0.1) && !name.is_empty() {
        // A label that does not exist, below a name that may.
        let label: String = (0..rng.random_range(1..12))
            .map(|_| (b'a' + rng.random_range(0..26u8)) as char)
            .collect();
        wire_name(&random_case(rng, &format!("{label}.{name}")))
    } else {
        wire_name(&random_case(rng, name))
    };
    let qtype = match rng.random_range(0..20) {
        0..=7 => 1,
        8..=10 => 28,
        11 => 65,
        12 => 255,
        13 => 15,
        14 => [2, 5, 6, 16, 43, 64, 99][rng.random_range(0..7)],
        15 => rng.random_range(0..300),
        _ => rng.random(),
    };
    let qclass = if rng.random_bool(0.95) {
        1
    } else {
        rng.random_range(0..5)
    };
    let flags = match rng.random_range(0..10) {
        0..=6 => 0x0100,
        7 => 0,
        8 => rng.random::<u16>() & 0x0130,
        _ => rng.random(),
    };
    let opt = if rng.random_bool(0.5) {
        let mut o = Opt::plain();
        o.udp_size = rng.random_range(0..5000);
        o.dnssec_ok = rng.random_bool(0.3);
        if rng.random_bool(0.05) {
            o.version = rng.random_range(1..3);
        }
        for _ in 0..rng.random_range(0..3) {
            let code = if rng.random_bool(0.5) {
                10
            } else {
                rng.random_range(0..20)
            };
            let data = if code == 10 && rng.random_bool(0.8) {
                cookie.data(rng)
            } else {
                let len = rng.random_range(0..20);
                (0..len).map(|_| rng.random()).collect()
            };
            o.options.push((code, data));
        }
        if rng.random_bool(0.5) {
            let at = rng.random_range(0..=o.options.len());
            o.options.insert(at, (ECS, ecs_data(rng)));
            if rng.random_bool(0.02) {
                o.options.push((ECS, ecs_data(rng)));
            }
        }
        Some(o)
    } else {
        None
    };
    dns_query(rng.random(), flags, &qname, qtype, qclass, opt.as_ref())
}

/// EDNS option code of Client Subnet.
const ECS: u16 = 8;

/// The data of a client subnet option (RFC 7871 6): mostly well formed, of either family,
/// every source prefix length, at addresses in and around the regions; sometimes malformed
/// (another family, a source longer than the address, address bits past the source, an
/// address field of the wrong length), which XDP must pass for the slow path's FORMERR.
fn ecs_data(rng: &mut StdRng) -> Vec<u8> {
    let family: u16 = match rng.random_range(0..40) {
        0 => rng.random_range(3..300),
        1 => 0,
        2..=21 => 1,
        _ => 2,
    };
    let max: u8 = if family == 2 { 128 } else { 32 };
    let source: u8 = if rng.random_bool(0.02) {
        rng.random()
    } else {
        rng.random_range(0..=max)
    };
    let address: [u8; 16] = if family == 2 {
        let (a, b) = match rng.random_range(0..5) {
            // In the /44, in the /36 beside it, in r1 or r2, anywhere.
            0 => (
                0x2001_0db8_1000_0000u64 | rng.random_range(0..1u64 << 20),
                0,
            ),
            1 => (
                0x2001_0db8_1000_0000u64 | rng.random_range(0..1u64 << 28),
                0,
            ),
            2 => (0x2001_0db8_0000_0000u64, rng.random_range(0..0x2_0000u64)),
            _ => (rng.random(), rng.random()),
        };
        let mut v = [0u8; 16];
        v[..8].copy_from_slice(&a.to_be_bytes());
        v[8..].copy_from_slice(&b.to_be_bytes());
        v
    } else {
        let a: u32 = match rng.random_range(0..5) {
            // In the /20, in the /16 beside it, in r1 or r2, anywhere.
            0 => 0xc613_0000 | rng.random_range(0..0x1000),
            1 => 0xc613_0000 | rng.random_range(0..0x1_0000),
            2 => 0xc612_0000 | rng.random_range(0..0x100),
            _ => rng.random(),
        };
        let mut v = [0u8; 16];
        v[..4].copy_from_slice(&a.to_be_bytes());
        v
    };
    let mut bits = u128::from_be_bytes(address);
    if source < 128 {
        bits &= !(u128::MAX >> source);
    }
    let mut address = bits.to_be_bytes().to_vec();
    let mut len = usize::from(source).div_ceil(8).min(16);
    match rng.random_range(0..20) {
        // A bit past the source, inside the address field when the field has room.
        0 => {
            let bit = usize::from(source) + rng.random_range(0..8);
            if bit < 128 {
                address[bit / 8] |= 0x80 >> (bit % 8);
            }
        }
        // One byte more or less than the source needs.
        1 => len += 1,
        2 => len = len.saturating_sub(1),
        _ => {}
    }
    let scope = if rng.random_bool(0.9) {
        0
    } else {
        rng.random()
    };
    let mut data = family.to_be_bytes().to_vec();
    data.extend([source, scope]);
    data.extend_from_slice(&address[..len.min(16)]);
    data
}

/// A query, sometimes mutated: a flipped byte, a truncation, extra bytes, a changed count.
fn query(rng: &mut StdRng, cookie: &CookieMaker) -> Vec<u8> {
    let mut q = random_query(rng, cookie);
    match rng.random_range(0..10) {
        0 => {
            let i = rng.random_range(0..q.len());
            q[i] ^= 1 << rng.random_range(0..8);
        }
        1 => {
            let n = rng.random_range(0..q.len());
            q.truncate(n);
        }
        2 => q.extend((0..rng.random_range(1..6)).map(|_| rng.random::<u8>())),
        3 if q.len() >= 12 => {
            let i = 4 + 2 * rng.random_range(0..4);
            q[i + 1] = rng.random_range(0..3);
        }
        _ => {}
    }
    q
}

/// The server, and a client LDNS in region r1, r2 or none, with a random host part.
fn server_client(rng: &mut StdRng, v6: bool) -> (IpAddr, IpAddr) {
    let region = rng.random_range(0..3u16);
    if v6 {
        (
            IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 2)),
            IpAddr::V6(Ipv6Addr::new(
                0x2001,
                0xdb8,
                0,
                0,
                0,
                0,
                region,
                rng.random(),
            )),
        )
    } else {
        (
            IpAddr::V4(Ipv4Addr::new(198, 18, 0, 2)),
            IpAddr::V4(Ipv4Addr::new(
                198,
                18,
                0,
                64 * region as u8 + rng.random_range(1..64),
            )),
        )
    }
}

/// Checks the frame around an XDP answer and returns its DNS message.
fn unwrap_reply(query: &Udp, out: &[u8]) -> Result<Vec<u8>, String> {
    let l3 = 14 + 4 * query.vlans.len();
    if out[0..6] != query.src_mac || out[6..12] != query.dst_mac {
        return Err("MACs not swapped".into());
    }
    if out[12..l3] != query.to_bytes()[12..l3] {
        return Err("VLAN tags or ethertype changed".into());
    }
    let (src, dst, l4) = match (query.src, query.dst) {
        (IpAddr::V4(s), IpAddr::V4(d)) => {
            let ip = &out[l3..l3 + 20];
            if fold(inet_sum(0, ip)) != 0xffff {
                return Err("bad IPv4 header checksum".into());
            }
            if usize::from(u16::from_be_bytes([ip[2], ip[3]])) != out.len() - l3 {
                return Err("IPv4 total length".into());
            }
            (s.octets().to_vec(), d.octets().to_vec(), l3 + 20)
        }
        (IpAddr::V6(s), IpAddr::V6(d)) => {
            let ip = &out[l3..l3 + 40];
            if usize::from(u16::from_be_bytes([ip[4], ip[5]])) != out.len() - l3 - 40 {
                return Err("IPv6 payload length".into());
            }
            (s.octets().to_vec(), d.octets().to_vec(), l3 + 40)
        }
        _ => unreachable!(),
    };
    let n = src.len();
    let (ip_src, ip_dst) = if n == 4 {
        (l3 + 12, l3 + 16)
    } else {
        (l3 + 8, l3 + 24)
    };
    if out[ip_src..ip_src + n] != dst[..] || out[ip_dst..ip_dst + n] != src[..] {
        return Err("addresses not swapped".into());
    }
    let udp = &out[l4..];
    if u16::from_be_bytes([udp[0], udp[1]]) != query.dport
        || u16::from_be_bytes([udp[2], udp[3]]) != query.sport
    {
        return Err("ports not swapped".into());
    }
    if usize::from(u16::from_be_bytes([udp[4], udp[5]])) != udp.len() {
        return Err("UDP length".into());
    }
    let csum = u16::from_be_bytes([udp[6], udp[7]]);
    if !(query.zero_csum && csum == 0) {
        let mut sum = inet_sum(0, &src);
        sum = inet_sum(sum, &dst);
        sum += 17 + udp.len() as u32;
        if fold(inet_sum(sum, udp)) != 0xffff {
            return Err("bad UDP checksum".into());
        }
    }
    Ok(udp[8..].to_vec())
}

/// The parts of a response both paths must agree on: the header (flags, rcode, counts as
/// decoded), the question as sent, and every section's records, compared as DNS compares
/// them (names without regard to case: the paths may compress a name against the question's
/// spelling or spell it out), and the EDNS fields.
#[derive(Debug, PartialEq)]
struct Essentials {
    header: String,
    question: String,
    answers: Vec<Record>,
    authorities: Vec<Record>,
    additionals: Vec<Record>,
    edns: Option<(u8, bool, u16, u16)>,
    /// The OPT's options as sent (its RDATA, in hex), byte for byte, but a COOKIE's data
    /// as what it is (`cookie_kind`).
    opt_rdata: Option<String>,
}

/// What a response's COOKIE option data is, for a query whose cookie was `asked`, from
/// `client`, checked against `secret`: "echo" (the query's, as sent), "fresh" (the client
/// cookie and a server cookie of version 1 that validates, stamped within `stamped`), or
/// what is wrong with it.
fn cookie_kind(
    data: &[u8],
    asked: Option<&[u8]>,
    client: IpAddr,
    secret: &CookieSecret,
    stamped: std::ops::RangeInclusive<u32>,
) -> String {
    let Some(asked) = asked else {
        return format!("a cookie to a query without one: {data:02x?}");
    };
    if data.len() != 24 || data[..8] != asked[..8] {
        return format!("not the client cookie and one of ours: {data:02x?}");
    }
    if data == asked {
        return "echo".into();
    }
    let stamp = u32::from_be_bytes([data[12], data[13], data[14], data[15]]);
    let client_cookie: [u8; 8] = data[..8].try_into().expect("8 bytes");
    let fresh = secret.server_cookie(&client_cookie, client, stamp);
    if stamped.contains(&stamp) && data[8..] == fresh {
        "fresh".into()
    } else {
        format!("a server cookie that is neither the query's nor fresh: {data:02x?}")
    }
}

/// The OPT options of `rdata` in hex, the COOKIE's data as its `kind`.
fn options_with_cookie(rdata: &[u8], kind: &dyn Fn(&[u8]) -> String) -> String {
    let mut out = Vec::new();
    let mut rest = rdata;
    while let [c0, c1, l0, l1, tail @ ..] = rest {
        let code = u16::from_be_bytes([*c0, *c1]);
        let len = usize::from(u16::from_be_bytes([*l0, *l1]));
        let data = &tail[..len.min(tail.len())];
        out.push(if code == 10 {
            format!("cookie {}", kind(data))
        } else {
            format!("{code} {data:02x?}")
        });
        rest = &tail[data.len()..];
    }
    if !rest.is_empty() {
        out.push(format!("trailing {rest:02x?}"));
    }
    out.join(", ")
}

/// The RDATA of the OPT RR of the DNS message `wire`, as sent; `None` without one.
fn opt_rdata(wire: &[u8]) -> Option<Vec<u8>> {
    let mut d = BinDecoder::new(wire);
    let header = Header::read(&mut d).ok()?;
    for _ in 0..header.counts.queries {
        Query::read(&mut d).ok()?;
    }
    let records = header.counts.answers + header.counts.authorities + header.counts.additionals;
    for _ in 0..records {
        let start = d.index();
        let record = Record::read(&mut d).ok()?;
        if record.record_type() == RecordType::OPT {
            // Owner (the root, one byte), type, class, TTL, RDLENGTH, RDATA.
            let end = d.index();
            return (wire.get(start) == Some(&0)).then(|| wire[start + 11..end].to_vec());
        }
    }
    None
}

fn essentials(m: &Message, wire: &[u8], cookie: &dyn Fn(&[u8]) -> String) -> Essentials {
    Essentials {
        header: format!("{:?}", m.metadata),
        question: format!("{:?}", m.queries),
        answers: m.answers.clone(),
        authorities: m.authorities.clone(),
        additionals: m.additionals.clone(),
        edns: m.edns.as_ref().map(|e| {
            (
                e.version(),
                e.flags().dnssec_ok,
                e.flags().z,
                e.max_payload(),
            )
        }),
        opt_rdata: opt_rdata(wire).map(|b| options_with_cookie(&b, cookie)),
    }
}

/// The data of the COOKIE option of query `q`, when it is well formed.
fn query_cookie(q: &[u8]) -> Option<Vec<u8>> {
    let rdata = opt_rdata(q)?;
    cookies::find(&rdata).ok().flatten().map(<[u8]>::to_vec)
}

/// The corpus's seed (XGSLB_DIFF_SEED's, else a random one, printed on failure) and its
/// generator; the config of every kind of answer, and what both paths serve from it.
fn setup() -> (u64, StdRng, Config, xgslb::daemon::Built) {
    let seed = std::env::var("XGSLB_DIFF_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(rand::random);
    let dir = ConfigDir::new(&model());
    let cfg = Config::load(&dir.path()).expect("config");
    let built = build(&cfg).expect("build");
    (seed, StdRng::seed_from_u64(seed), cfg, built)
}

#[test]
fn xdp_answers_exactly_what_the_slow_path_answers() {
    require_root();
    let (seed, mut rng, cfg, built) = setup();
    let pins = PinDir::new("diff");
    let mut dp = DataPlane::load(pins.path()).expect("load");
    publish_listeners(&mut dp.listeners, &listener_keys(&cfg.listen)).expect("listeners");
    dp.cookies.publish(&built.cookies).expect("cookies");
    let secret = built.cookies.secret().clone();
    dp.tables.set_ecs_policy(&cfg.ecs).expect("ECS policy");
    dp.tables
        .swap(&built.entries, &built.prefixes)
        .expect("selections");

    // XGSLB_DIFF_QUERIES: fewer (or more) queries, for a quick look while developing.
    let queries: usize = std::env::var("XGSLB_DIFF_QUERIES")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(QUERIES);
    let (mut answered, mut passed, mut dropped) = (0usize, 0usize, 0usize);
    for n in 0..queries {
        let v6 = rng.random_bool(0.3);
        let (server, client) = server_client(&mut rng, v6);
        let maker = CookieMaker {
            secret: &secret,
            client,
        };
        let mut q = Udp::query(client, server, query(&mut rng, &maker));
        q.sport = rng.random_range(1024..65535);
        if rng.random_bool(0.1) {
            q.vlans = (0..rng.random_range(1..3))
                .map(|_| rng.random_range(1..4095))
                .collect();
        }
        if !v6 && rng.random_bool(0.1) {
            q.zero_csum = true;
        }
        if rng.random_bool(0.02) {
            q.dport = rng.random();
        }
        let input = q.to_bytes();
        let pick: u32 = rng.random();
        dp.set_pick_counter(pick).expect("pick counter");
        let started = unix_now();
        let (action, out, _) = xdp_run(dp.program(), &input)
            .unwrap_or_else(|e| panic!("seed {seed} query {n}: test_run: {e}"));
        let fail = |why: String| -> ! {
            panic!(
                "seed {seed} (XGSLB_DIFF_SEED={seed} replays it), query {n}: {why}\n  input {:02x?}\n  output {:02x?}",
                input, out
            )
        };
        match action {
            XDP_PASS => {
                passed += 1;
                if out != input {
                    fail("XDP_PASS changed the frame".into());
                }
            }
            XDP_TX => {
                answered += 1;
                let reply = unwrap_reply(&q, &out).unwrap_or_else(|e| fail(e));
                let xdp = Message::from_vec(&reply)
                    .unwrap_or_else(|e| fail(format!("XDP reply does not parse: {e}")));
                let slow = built
                    .catalog
                    .respond(
                        &q.payload,
                        Transport::Udp,
                        client,
                        &FixedPick(&built.snapshot, pick),
                    )
                    .unwrap_or_else(|| {
                        fail("the slow path sends nothing for a query XDP answered".into())
                    });
                let slow_wire = slow;
                let slow = Message::from_vec(&slow_wire)
                    .unwrap_or_else(|e| fail(format!("slow reply does not parse: {e}")));
                let asked = query_cookie(&q.payload);
                let stamped = started..=unix_now();
                let kind = |data: &[u8]| {
                    cookie_kind(data, asked.as_deref(), client, &secret, stamped.clone())
                };
                let (a, b) = (
                    essentials(&xdp, &reply, &kind),
                    essentials(&slow, &slow_wire, &kind),
                );
                if a != b {
                    fail(format!(
                        "XDP and the slow path differ:\nXDP:\n{a:#?}\nslow path:\n{b:#?}"
                    ));
                }
            }
            XDP_DROP => {
                dropped += 1;
                let slow = built.catalog.respond(
                    &q.payload,
                    Transport::Udp,
                    client,
                    &FixedPick(&built.snapshot, pick),
                );
                if slow.is_some() {
                    fail("XDP dropped a query the slow path answers".into());
                }
            }
            other => fail(format!("action {other}")),
        }
    }
    // The corpus must exercise both paths, or the test proves nothing.
    let stats = dp.stats().expect("stats");
    for kind in [
        Counter::AnsweredAddresses,
        Counter::AnsweredRecords,
        Counter::AnsweredNoData,
        Counter::AnsweredNxDomain,
        Counter::PassSlowPath,
        Counter::PassNoSelection,
    ] {
        assert!(
            stats[kind as usize] > (queries / 1000) as u64,
            "seed {seed}: only {} {} of {queries}",
            stats[kind as usize],
            kind.name()
        );
    }
    assert!(
        answered > queries / 10,
        "seed {seed}: only {answered} answered by XDP"
    );
    assert!(passed > queries / 10, "seed {seed}: only {passed} passed");
    assert!(dropped > 0, "seed {seed}: no query met a drop policy");
    // Client subnets answered in both families, with scopes that come from the regions (a
    // /20 in a /16: 17 to 20) and from the persist mask, and from no dependence at all.
    let ecs = dp.ecs_stats().expect("ECS stats");
    let at = |v6: bool, scope: u8| ecs[ecs_stat_index(v6, scope) as usize];
    let v4: u64 = (0..=32).map(|s| at(false, s)).sum();
    let v6: u64 = (0..=128).map(|s| at(true, s)).sum();
    let min = (queries / 1000) as u64;
    assert!(
        v4 > min && v6 > min,
        "seed {seed}: client subnets answered: {v4} IPv4, {v6} IPv6"
    );
    // Cookies answered of every kind.
    let cookies = dp.cookies.stats().expect("cookie stats");
    for seen in [
        CookieSeen::ClientOnly,
        CookieSeen::Valid,
        CookieSeen::Invalid,
    ] {
        assert!(
            cookies[seen as usize] > min,
            "seed {seed}: only {} answers to {} cookies",
            cookies[seen as usize],
            seen.name()
        );
    }
    for (v6, scope) in [
        (false, 0),
        (false, 20),
        (false, 17),
        (false, 22),
        (true, 0),
        (true, 44),
    ] {
        assert!(
            at(v6, scope) > 0,
            "seed {seed}: no answer to an IPv{} client subnet with scope {scope}",
            if v6 { 6 } else { 4 }
        );
    }
}

/// The UDP workers' answers from the plan against the full handler, over the same corpus: a
/// query the plan answers must get the full handler's response for the same pick, compared
/// as the XDP answers are (the plan, like XDP, compresses owner names against the question
/// as the client spelled it); a drop must be the handler's drop. No kernel is involved.
#[test]
fn plan_answers_are_what_the_full_handler_answers() {
    let (seed, mut rng, _, built) = setup();
    let plan = PlanAnswers::new(built.entries.clone(), &built.prefixes)
        .with_cookies(built.cookies.clone());
    let secret = built.cookies.secret().clone();
    let mut out = [0u8; xgslb::udp::answer::MAX_RESPONSE];
    let (mut answered, mut handled, mut dropped) = (0usize, 0usize, 0usize);
    for n in 0..200_000 {
        let v6 = rng.random_bool(0.3);
        let (_, client) = server_client(&mut rng, v6);
        let maker = CookieMaker {
            secret: &secret,
            client,
        };
        let q = query(&mut rng, &maker);
        let start: u32 = rng.random();
        let started = unix_now();
        let mut pick = start;
        let planned = plan.answer(&q, client, &mut pick, &mut out);
        let full = built.catalog.respond(
            &q,
            Transport::Udp,
            client,
            &FixedPick(&built.snapshot, start),
        );
        let fail = |why: &str| -> ! {
            panic!(
                "seed {seed} (XGSLB_DIFF_SEED={seed} replays it), query {n}: {why}\n  query {q:02x?}"
            )
        };
        match planned {
            Planned::Answered(len) => {
                answered += 1;
                let full = full.unwrap_or_else(|| fail("the handler sends nothing"));
                let parse = |b: &[u8]| {
                    Message::from_vec(b).unwrap_or_else(|e| fail(&format!("does not parse: {e}")))
                };
                let asked = query_cookie(&q);
                let stamped = started..=unix_now();
                let kind = |data: &[u8]| {
                    cookie_kind(data, asked.as_deref(), client, &secret, stamped.clone())
                };
                let (a, b) = (
                    essentials(&parse(&out[..len]), &out[..len], &kind),
                    essentials(&parse(&full), &full, &kind),
                );
                if a != b {
                    fail(&format!(
                        "the plan's response differs:\nplan:\n{a:#?}\nhandler:\n{b:#?}"
                    ));
                }
            }
            Planned::Drop => {
                dropped += 1;
                if full.is_some() {
                    fail("the plan dropped a query the handler answers");
                }
            }
            Planned::SlowPath => handled += 1,
        }
    }
    assert!(
        answered > 20_000,
        "seed {seed}: only {answered} from the plan"
    );
    assert!(
        handled > 20_000,
        "seed {seed}: only {handled} left to the handler"
    );
    assert!(dropped > 0, "seed {seed}: no query met a drop policy");
}

/// The response rate limit's slipped reply on both paths, over the same corpus with a rate
/// of 1 and slip 1 (so that, past each bucket's first answer of a second, every answer the
/// program writes goes out slipped): every slipped frame is well formed, and its DNS
/// message is byte for byte what the slow path makes of its own response to that query
/// (`slip_in_place` on the full handler's response, and on the plan's where it answers);
/// every whole answer is the slow path's, as in the test above.
#[test]
fn slipped_replies_are_the_slow_paths_byte_for_byte() {
    require_root();
    let (seed, mut rng, cfg, built) = setup();
    let pins = PinDir::new("diff-rrl");
    let secret = built.cookies.secret().clone();
    let mut dp = DataPlane::load(pins.path()).expect("load");
    publish_listeners(&mut dp.listeners, &listener_keys(&cfg.listen)).expect("listeners");
    dp.tables.set_ecs_policy(&cfg.ecs).expect("ECS policy");
    dp.tables
        .swap(&built.entries, &built.prefixes)
        .expect("selections");
    let limit = RrlPolicy {
        responses_per_second: 1,
        slip: 1,
        ..RrlPolicy::default()
    };
    dp.rrl.publish(&limit).expect("RRL policy");
    let plan = PlanAnswers::new(built.entries.clone(), &built.prefixes);
    let mut plan_out = [0u8; xgslb::udp::answer::MAX_RESPONSE];

    let queries: usize = std::env::var("XGSLB_DIFF_QUERIES")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(QUERIES)
        / 5;
    let (mut whole, mut slipped, mut from_plan) = (0usize, 0usize, 0usize);
    for n in 0..queries {
        let v6 = rng.random_bool(0.3);
        let (server, client) = server_client(&mut rng, v6);
        // Cookies in the corpus too: this data plane has no cookie config published, so XDP
        // passes those queries (the slipped replies compared carry no cookie).
        let maker = CookieMaker {
            secret: &secret,
            client,
        };
        let mut q = Udp::query(client, server, query(&mut rng, &maker));
        q.sport = rng.random_range(1024..65535);
        if !v6 && rng.random_bool(0.1) {
            q.zero_csum = true;
        }
        let input = q.to_bytes();
        let pick: u32 = rng.random();
        dp.set_pick_counter(pick).expect("pick counter");
        let before = dp.stats().expect("stats")[Counter::RrlSlipped as usize];
        let (action, out, _) = xdp_run(dp.program(), &input)
            .unwrap_or_else(|e| panic!("seed {seed} query {n}: test_run: {e}"));
        let fail = |why: String| -> ! {
            panic!(
                "seed {seed} (XGSLB_DIFF_SEED={seed} replays it), query {n}: {why}\n  input {:02x?}\n  output {:02x?}",
                input, out
            )
        };
        if action != XDP_TX {
            continue;
        }
        let reply = unwrap_reply(&q, &out).unwrap_or_else(|e| fail(e));
        let full = built
            .catalog
            .respond(
                &q.payload,
                Transport::Udp,
                client,
                &FixedPick(&built.snapshot, pick),
            )
            .unwrap_or_else(|| fail("the slow path sends nothing for a query XDP answered".into()));
        if dp.stats().expect("stats")[Counter::RrlSlipped as usize] == before {
            whole += 1;
            let bytes = |data: &[u8]| format!("{data:02x?}");
            let (a, b) = (
                essentials(
                    &Message::from_vec(&reply).unwrap_or_else(|e| fail(e.to_string())),
                    &reply,
                    &bytes,
                ),
                essentials(
                    &Message::from_vec(&full).unwrap_or_else(|e| fail(e.to_string())),
                    &full,
                    &bytes,
                ),
            );
            if a != b {
                fail(format!(
                    "whole answers differ:\nXDP:\n{a:#?}\nslow path:\n{b:#?}"
                ));
            }
            continue;
        }
        slipped += 1;
        let mut handler = full;
        let len = slip_in_place(&mut handler)
            .unwrap_or_else(|| fail("the slow path cannot slip its response".into()));
        if reply != handler[..len] {
            fail(format!(
                "slipped replies differ:\n  XDP       {reply:02x?}\n  slow path {:02x?}",
                &handler[..len]
            ));
        }
        let mut p = pick;
        if let Planned::Answered(len) = plan.answer(&q.payload, client, &mut p, &mut plan_out) {
            from_plan += 1;
            let len = slip_in_place(&mut plan_out[..len])
                .unwrap_or_else(|| fail("the plan's response does not slip".into()));
            if reply != plan_out[..len] {
                fail(format!(
                    "slipped replies differ:\n  XDP  {reply:02x?}\n  plan {:02x?}",
                    &plan_out[..len]
                ));
            }
        }
    }
    assert!(
        slipped > queries / 10 && from_plan > queries / 20,
        "seed {seed}: only {slipped} slipped ({from_plan} from the plan) of {queries}"
    );
    assert!(whole > 0, "seed {seed}: no whole answer at all");
}
