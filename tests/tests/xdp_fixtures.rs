//! The XDP program through BPF_PROG_TEST_RUN: a table of {input frame, description, expected
//! action and output}. Every answer is compared byte for byte (checksums included) with a reply
//! built independently; everything else must come out XDP_PASS, unchanged, with the expected
//! pass reason counted. A second table covers EDNS Client Subnet (RFC 7871) over nested
//! regions: the class and scope each subnet gets, and the answers it counts. A third, the
//! response rate limit: which answers go out whole, dropped or slipped, and the slipped
//! reply's bytes. A fourth covers DNS cookies (RFC 7873, RFC 9018): a fresh server cookie is checked against one made by
//! user space's independent SipHash (`dns::cookies`) for the second the program stamped,
//! which must be the second of the run.
use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;

use aya::programs::{TestRun, TestRunOptions};
use hickory_proto::rr::{Name, RecordType};
use ipnet::IpNet;
use xgslb::{
    config::{EcsPolicy, RrlPolicy},
    dns::{CookieSecret, Cookies, cookies::unix_now},
    maps::{DataPlane, publish::publish_listeners, tables::keyed},
    plan::{slots::slot_table, snapshot::SetEntry},
};
use xgslb_common::{
    AnswerSet, ClassId, CookieSeen, Counter, EcsUse, ListenerKey, MAX_ADDRS, PickMode,
    ecs_stat_index, qtype,
};
use xgslb_tests::{
    frame::{
        CLIENT4, CLIENT6, Opt, SERVER4, SERVER6, Udp, XDP_DROP, XDP_PASS, XDP_TX, dns_a_reply,
        dns_aaaa_reply, dns_query, ecs_data, wire_name, with_ecs, with_options,
    },
    pins::PinDir,
    require_root, zone,
};

const ONE: [u8; 4] = [198, 18, 1, 10];
const EIGHT: [[u8; 4]; 8] = [
    [198, 18, 2, 1],
    [198, 18, 2, 2],
    [198, 18, 2, 3],
    [198, 18, 2, 4],
    [198, 18, 2, 5],
    [198, 18, 2, 6],
    [198, 18, 2, 7],
    [198, 18, 2, 8],
];

const V6: [u8; 16] = [
    0x20, 0x01, 0x0d, 0xb8, 0, 0x10, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x10,
];

fn answer_set(addrs: &[[u8; 4]], records: u8, ttl: u32) -> AnswerSet {
    let mut set = AnswerSet {
        ttl,
        count: addrs.len() as u8,
        records,
        pick: PickMode::Counter as u8,
        slots: slot_table(&vec![1; addrs.len()]),
        addrs: [[0; 16]; MAX_ADDRS],
        ..bytemuck::Zeroable::zeroed()
    };
    for (d, a) in set.addrs.iter_mut().zip(addrs) {
        d[..4].copy_from_slice(a);
    }
    set
}

fn name(s: &str) -> Name {
    Name::from_ascii(s).unwrap()
}

fn setup(pins: &PinDir) -> DataPlane {
    setup_with(pins, &zone::entries(&sets()), &[])
}

/// The program answering `entries`, with client classes `prefixes`, on both listeners.
fn setup_with(
    pins: &PinDir,
    entries: &[xgslb_common::Entry],
    prefixes: &[(IpNet, ClassId)],
) -> DataPlane {
    let mut dp = DataPlane::load(pins.path()).expect("load the XDP program");
    let listeners = [
        ListenerKey {
            addr: v4key(SERVER4),
            port: 53,
            family: 4,
            _pad: 0,
        },
        ListenerKey {
            addr: SERVER6.octets(),
            port: 53,
            family: 6,
            _pad: 0,
        },
    ];
    publish_listeners(&mut dp.listeners, &listeners).expect("listeners");
    dp.tables.swap(entries, prefixes).expect("entries");
    dp.cookies
        .publish(&Cookies::new(true, secret(), Arc::default()))
        .expect("cookies");
    dp
}

/// The server secret of the fixtures (RFC 9018's examples').
fn secret() -> CookieSecret {
    CookieSecret::from_hex("e5e973e5a6b2a43f48e7dc849e37bfcf").expect("a secret")
}

/// The answer sets of the fixtures, beside the test zone's static records.
fn sets() -> Vec<SetEntry> {
    let mut v6 = answer_set(&[ONE], 1, 300);
    v6.addrs[0] = V6;
    vec![
        (
            name("www.example.test."),
            RecordType::A,
            0,
            answer_set(&[ONE], 1, 300),
        ),
        (name("www.example.test."), RecordType::AAAA, 0, v6),
        (
            name("multi.example.test."),
            RecordType::A,
            0,
            answer_set(&EIGHT, 8, 60),
        ),
        (
            name("two.example.test."),
            RecordType::A,
            0,
            answer_set(&EIGHT[..2], 1, 30),
        ),
    ]
}

fn v4key(a: Ipv4Addr) -> [u8; 16] {
    let mut k = [0; 16];
    k[..4].copy_from_slice(&a.octets());
    k
}

/// The frame of an answer whose server cookie was stamped at the given second.
type AtSecond = Box<dyn Fn(u32) -> Vec<u8>>;

enum Expect {
    /// This frame, counted as this kind of answer.
    Tx(Vec<u8>, Counter),
    /// An answer ending with a fresh server cookie: the frame for the timestamp the output
    /// carries, which must be the second of the run.
    TxFresh(AtSecond, Counter),
    Pass(Counter),
}

struct Fixture {
    desc: String,
    input: Vec<u8>,
    expect: Expect,
    /// The ECS counter (family of the client subnet is IPv6, scope) the answer counts in.
    ecs: Option<(bool, u8)>,
    /// The cookie counter the answer counts in.
    cookie: Option<CookieSeen>,
}

fn q4(payload: Vec<u8>) -> Udp {
    Udp::query(IpAddr::V4(CLIENT4), IpAddr::V4(SERVER4), payload)
}
fn q6(payload: Vec<u8>) -> Udp {
    Udp::query(IpAddr::V6(CLIENT6), IpAddr::V6(SERVER6), payload)
}

fn hit(
    desc: &str,
    q: Udp,
    name: &str,
    ttl: u32,
    addrs: &[[u8; 4]],
    opt_do: Option<bool>,
) -> Fixture {
    let reply = dns_a_reply(&q.payload, wire_name(name).len(), ttl, addrs, opt_do);
    tx(desc, q, reply, Counter::AnsweredAddresses)
}

fn tx(desc: &str, q: Udp, reply: Vec<u8>, kind: Counter) -> Fixture {
    Fixture {
        desc: desc.into(),
        input: q.to_bytes(),
        expect: Expect::Tx(q.reply(reply).to_bytes(), kind),
        ecs: None,
        cookie: None,
    }
}

/// The answer to `q` (carrying client cookie `client`) whose message is `reply` (its OPT
/// without options) with `options` and then a COOKIE: `client` and a server cookie fresh
/// at the second of the run; counted as `kind`, the cookie as `seen`.
fn fresh(
    desc: &str,
    q: Udp,
    reply: Vec<u8>,
    options: Vec<(u16, Vec<u8>)>,
    client: [u8; 8],
    (kind, seen): (Counter, CookieSeen),
) -> Fixture {
    let input = q.to_bytes();
    let at = move |stamp: u32| {
        let server = secret().server_cookie(&client, q.src, stamp);
        let cookie = [&client[..], &server[..]].concat();
        let mut opts: Vec<(u16, &[u8])> = options.iter().map(|(c, d)| (*c, &d[..])).collect();
        opts.push((10, &cookie));
        q.reply(with_options(reply.clone(), &opts)).to_bytes()
    };
    Fixture {
        desc: desc.into(),
        input,
        expect: Expect::TxFresh(Box::new(at), kind),
        ecs: None,
        cookie: Some(seen),
    }
}

/// NODATA for `name` (a name of the test zone).
fn nodata(desc: &str, q: Udp, name: &str, opt_do: Option<bool>) -> Fixture {
    let reply = zone::nodata(&q.payload, name, opt_do);
    tx(desc, q, reply, Counter::AnsweredNoData)
}

/// NXDOMAIN for `name` under the test zone's apex.
fn nxdomain(desc: &str, q: Udp, name: &str, opt_do: Option<bool>) -> Fixture {
    let reply = zone::nxdomain(&q.payload, name, opt_do);
    tx(desc, q, reply, Counter::AnsweredNxDomain)
}

/// The apex's MX, with mail's address in additional.
fn mx(desc: &str, q: Udp, opt_do: Option<bool>) -> Fixture {
    let reply = zone::apex_mx(&q.payload, opt_do);
    tx(desc, q, reply, Counter::AnsweredRecords)
}

fn pass(desc: &str, input: Vec<u8>, reason: Counter) -> Fixture {
    Fixture {
        desc: desc.into(),
        input,
        expect: Expect::Pass(reason),
        ecs: None,
        cookie: None,
    }
}

const RD: u16 = 0x0100;

fn a_query(name: &str) -> Vec<u8> {
    dns_query(0xbeef, RD, &wire_name(name), qtype::A, 1, None)
}

fn fixtures() -> Vec<Fixture> {
    let www = "www.example.test";
    let mut f = vec![
        hit("A hit over IPv4", q4(a_query(www)), www, 300, &[ONE], None),
        hit("A hit over IPv6", q6(a_query(www)), www, 300, &[ONE], None),
        hit(
            "A hit with OPT",
            q4(dns_query(7, RD, &wire_name(www), 1, 1, Some(&Opt::plain()))),
            www,
            300,
            &[ONE],
            Some(false),
        ),
        {
            let q = q6(dns_query(
                7,
                0,
                &wire_name(www),
                1,
                1,
                Some(&Opt {
                    dnssec_ok: true,
                    options: vec![(10, vec![1; 8])],
                    ..Opt::plain()
                }),
            ));
            let reply = dns_a_reply(&q.payload, wire_name(www).len(), 300, &[ONE], Some(true));
            fresh(
                "A hit with OPT, DO bit and a cookie, over IPv6",
                q,
                reply,
                vec![],
                [1; 8],
                (Counter::AnsweredAddresses, CookieSeen::ClientOnly),
            )
        },
        hit(
            "mixed-case name keeps its case",
            q4(a_query("wWw.ExAmPlE.TeSt")),
            "wWw.ExAmPlE.TeSt",
            300,
            &[ONE],
            None,
        ),
        hit(
            "8 records",
            q4(a_query("multi.example.test")),
            "multi.example.test",
            60,
            &EIGHT,
            None,
        ),
        hit(
            "1 record of 2 (pick 0)",
            q4(a_query("two.example.test")),
            "two.example.test",
            30,
            &EIGHT[..1],
            None,
        ),
        hit(
            "CD flag copied",
            q4(dns_query(1, 0x0010, &wire_name(www), 1, 1, None)),
            www,
            300,
            &[ONE],
            None,
        ),
        {
            let mut q = q4(a_query(www));
            q.zero_csum = true;
            hit("UDP checksum zero stays zero", q, www, 300, &[ONE], None)
        },
        {
            let mut q = q4(a_query(www));
            q.vlans = vec![100, 200];
            hit("two VLAN tags", q, www, 300, &[ONE], None)
        },
        {
            let mut q = q6(a_query(www));
            q.vlans = vec![7];
            hit("one VLAN tag, IPv6", q, www, 300, &[ONE], None)
        },
        pass(
            "name in no zone",
            q4(a_query("www.example.org")).to_bytes(),
            Counter::PassNoSelection,
        ),
        pass(
            "DS (answered from the parent side)",
            q4(dns_query(1, RD, &wire_name(www), qtype::DS, 1, None)).to_bytes(),
            Counter::PassQtype,
        ),
        pass(
            "ANY",
            q4(dns_query(1, RD, &wire_name(www), 255, 1, None)).to_bytes(),
            Counter::PassQtype,
        ),
        pass(
            "class CH",
            q4(dns_query(1, RD, &wire_name(www), 1, 3, None)).to_bytes(),
            Counter::PassQclass,
        ),
        pass(
            "OPT version 1",
            q4(dns_query(
                1,
                RD,
                &wire_name(www),
                1,
                1,
                Some(&Opt {
                    version: 1,
                    ..Opt::plain()
                }),
            ))
            .to_bytes(),
            Counter::PassEdns,
        ),
        pass(
            "malformed cookie",
            q4(dns_query(
                1,
                RD,
                &wire_name(www),
                1,
                1,
                Some(&Opt {
                    options: vec![(10, vec![1; 5])],
                    ..Opt::plain()
                }),
            ))
            .to_bytes(),
            Counter::PassEdns,
        ),
        {
            let mut m = dns_query(1, RD, &wire_name(www), 1, 1, Some(&Opt::plain()));
            m.extend_from_slice(&Opt::plain().to_bytes());
            m[11] = 2;
            pass("two OPT RRs", q4(m).to_bytes(), Counter::PassSectionCounts)
        },
        {
            let mut m = a_query(www);
            m[5] = 2;
            m.extend_from_slice(&wire_name(www));
            m.extend_from_slice(&[0, 1, 0, 1]);
            pass("QDCOUNT 2", q4(m).to_bytes(), Counter::PassSectionCounts)
        },
        {
            let mut m = a_query(www);
            m[7] = 1;
            pass("ANCOUNT 1", q4(m).to_bytes(), Counter::PassSectionCounts)
        },
        {
            let mut m = dns_query(1, RD, &[0xc0, 0x0c], 1, 1, None);
            m.truncate(12);
            m.extend_from_slice(&[3, b'w', b'w', b'w', 0xc0, 12, 0, 1, 0, 1]);
            pass(
                "compression pointer in the question",
                q4(m).to_bytes(),
                Counter::PassBadLabel,
            )
        },
        {
            let mut name = vec![64];
            name.extend_from_slice(&[b'a'; 64]);
            name.push(0);
            pass(
                "label over 63",
                q4(dns_query(1, RD, &name, 1, 1, None)).to_bytes(),
                Counter::PassBadLabel,
            )
        },
        {
            let long = format!("{}example.test", "abcdefghijklmnopq.".repeat(5));
            pass(
                "name over the key size",
                q4(a_query(&long)).to_bytes(),
                Counter::PassNameTooLong,
            )
        },
        pass(
            "response (QR=1)",
            q4(dns_query(1, 0x8000, &wire_name(www), 1, 1, None)).to_bytes(),
            Counter::PassNotQuery,
        ),
        pass(
            "opcode NOTIFY",
            q4(dns_query(1, 0x2000, &wire_name(www), 1, 1, None)).to_bytes(),
            Counter::PassNotQuery,
        ),
        pass(
            "TC set",
            q4(dns_query(1, 0x0200, &wire_name(www), 1, 1, None)).to_bytes(),
            Counter::PassNotQuery,
        ),
        {
            let mut m = a_query(www);
            m.push(0);
            pass("a trailing byte", q4(m).to_bytes(), Counter::PassTrailing)
        },
        {
            let mut q = q4(a_query(www));
            q.dport = 5353;
            pass("wrong port", q.to_bytes(), Counter::PassNotListener)
        },
        pass(
            "another destination address",
            Udp::query(
                IpAddr::V4(CLIENT4),
                IpAddr::V4(Ipv4Addr::new(198, 18, 0, 3)),
                a_query(www),
            )
            .to_bytes(),
            Counter::PassNotListener,
        ),
        {
            let mut b = q4(a_query(www)).to_bytes();
            b[14 + 6] = 0x20; // MF set
            fix_ipv4_csum(&mut b, 14);
            pass("IPv4 fragment", b, Counter::PassIpv4Header)
        },
        {
            let mut b = q4(a_query(www)).to_bytes();
            // Insert a 4-byte NOP option: IHL 6, total length + 4.
            b.splice(34..34, [1, 1, 1, 0]);
            b[14] = 0x46;
            let tl = u16::from_be_bytes([b[16], b[17]]) + 4;
            b[16..18].copy_from_slice(&tl.to_be_bytes());
            fix_ipv4_csum(&mut b, 14);
            pass("IPv4 options", b, Counter::PassIpv4Header)
        },
        {
            let mut b = q4(a_query(www)).to_bytes();
            b[14 + 10] ^= 0xff;
            pass("bad IPv4 header checksum", b, Counter::PassIpv4Header)
        },
        {
            let mut b = q6(a_query(www)).to_bytes();
            // Hop-by-hop header (8 bytes of PadN) before UDP.
            b[14 + 6] = 0;
            b.splice(54..54, [17, 0, 1, 4, 0, 0, 0, 0]);
            let pl = u16::from_be_bytes([b[18], b[19]]) + 8;
            b[18..20].copy_from_slice(&pl.to_be_bytes());
            pass("IPv6 extension header", b, Counter::PassIpv6ExtHeader)
        },
        {
            let mut q = q6(a_query(www));
            q.zero_csum = true;
            pass(
                "IPv6 UDP checksum zero",
                q.to_bytes(),
                Counter::PassUdpChecksum,
            )
        },
        {
            let mut b = q4(a_query(www)).to_bytes();
            b[14 + 20 + 6] ^= 0x01;
            pass("bad UDP checksum, IPv4", b, Counter::PassUdpChecksum)
        },
        {
            let mut b = q6(a_query(www)).to_bytes();
            b[14 + 40 + 6] ^= 0x80;
            pass("bad UDP checksum, IPv6", b, Counter::PassUdpChecksum)
        },
        {
            // The payload changed after the checksum was made: a flipped bit in the name.
            let mut b = q4(a_query(www)).to_bytes();
            b[14 + 20 + 8 + 13] ^= 0x20;
            pass(
                "payload changed under its UDP checksum, IPv4",
                b,
                Counter::PassUdpChecksum,
            )
        },
        {
            // An odd-length datagram whose last byte (the class's low byte) changed.
            let mut b = q6(a_query("ab.example.test")).to_bytes();
            let last = b.len() - 1;
            b[last] ^= 0x02;
            pass(
                "last byte of an odd-length datagram changed, IPv6",
                b,
                Counter::PassUdpChecksum,
            )
        },
        {
            let mut q = q4(a_query(www));
            q.vlans = vec![1, 2, 3];
            pass("three VLAN tags", q.to_bytes(), Counter::PassNotIp)
        },
        {
            let mut b = q4(a_query(www)).to_bytes();
            b[23] = 6;
            fix_ipv4_csum(&mut b, 14);
            pass("TCP", b, Counter::PassNotUdp)
        },
    ];
    let aaaa = |id| dns_query(id, RD, &wire_name(www), qtype::AAAA, 1, None);
    let aaaa_opt = |id, d| {
        dns_query(
            id,
            RD,
            &wire_name(www),
            qtype::AAAA,
            1,
            Some(&Opt {
                dnssec_ok: d,
                ..Opt::plain()
            }),
        )
    };
    for (desc, q, opt) in [
        ("AAAA hit over IPv4", q4(aaaa(3)), None),
        ("AAAA hit over IPv6", q6(aaaa(3)), None),
        (
            "AAAA hit with OPT and DO over IPv6",
            q6(aaaa_opt(3, true)),
            Some(true),
        ),
    ] {
        let len = wire_name(www).len();
        let reply = dns_aaaa_reply(&q.payload, len, 300, &[V6], opt);
        f.push(tx(desc, q, reply, Counter::AnsweredAddresses));
    }
    // Every new kind of answer over both families, with and without OPT (DO set or not).
    let opts = [None, Some(false), Some(true)];
    for (v6, opt) in [false, true]
        .into_iter()
        .flat_map(|v6| opts.map(|o| (v6, o)))
    {
        let fam = if v6 { "IPv6" } else { "IPv4" };
        let with = match opt {
            None => "no OPT",
            Some(false) => "OPT",
            Some(true) => "OPT with DO",
        };
        let edns = opt.map(|d| Opt {
            dnssec_ok: d,
            ..Opt::plain()
        });
        let ask = |name: &str, t: u16| {
            let m = dns_query(11, RD, &wire_name(name), t, 1, edns.as_ref());
            if v6 { q6(m) } else { q4(m) }
        };
        let q = ask(www, qtype::AAAA);
        let reply = dns_aaaa_reply(&q.payload, wire_name(www).len(), 300, &[V6], opt);
        f.push(tx(
            &format!("matrix: AAAA, {fam}, {with}"),
            q,
            reply,
            Counter::AnsweredAddresses,
        ));
        f.push(nodata(
            &format!("matrix: NODATA (HTTPS), {fam}, {with}"),
            ask(www, qtype::HTTPS),
            www,
            opt,
        ));
        f.push(mx(
            &format!("matrix: MX with additional, {fam}, {with}"),
            ask("example.test", qtype::MX),
            opt,
        ));
        f.push(nxdomain(
            &format!("matrix: NXDOMAIN, {fam}, {with}"),
            ask("no.such.example.test", qtype::A),
            "no.such.example.test",
            opt,
        ));
    }
    let https = |id, opt: Option<&Opt>| dns_query(id, RD, &wire_name(www), qtype::HTTPS, 1, opt);
    f.push(nodata(
        "HTTPS NODATA over IPv4",
        q4(https(4, None)),
        www,
        None,
    ));
    f.push(nodata(
        "HTTPS NODATA over IPv6 with OPT",
        q6(https(4, Some(&Opt::plain()))),
        www,
        Some(false),
    ));
    f.push(nodata(
        "TXT NODATA, mixed case",
        q4(dns_query(
            4,
            0,
            &wire_name("MaIl.example.TEST"),
            qtype::TXT,
            1,
            None,
        )),
        "MaIl.example.TEST",
        None,
    ));
    let apex = "example.test";
    f.push(mx(
        "MX with additional over IPv4",
        q4(dns_query(5, RD, &wire_name(apex), qtype::MX, 1, None)),
        None,
    ));
    f.push(mx(
        "MX with additional over IPv6 with OPT",
        q6(dns_query(
            5,
            RD,
            &wire_name(apex),
            qtype::MX,
            1,
            Some(&Opt::plain()),
        )),
        Some(false),
    ));
    for (desc, name, q, opt) in [
        (
            "NXDOMAIN over IPv4",
            "nope.example.test",
            q4(a_query("nope.example.test")),
            None,
        ),
        (
            "NXDOMAIN over IPv6 with OPT, two labels deep, odd length",
            "ab.cde.example.test",
            q6(dns_query(
                6,
                RD,
                &wire_name("ab.cde.example.test"),
                qtype::MX,
                1,
                Some(&Opt::plain()),
            )),
            Some(false),
        ),
        (
            "NXDOMAIN below an existing name, mixed case",
            "X.Www.Example.Test",
            q4(dns_query(
                6,
                0,
                &wire_name("X.Www.Example.Test"),
                qtype::HTTPS,
                1,
                None,
            )),
            None,
        ),
    ] {
        f.push(nxdomain(desc, q, name, opt));
    }
    // Every truncation of an A hit must pass. BPF_PROG_TEST_RUN refuses frames shorter than an
    // Ethernet header (EINVAL), as no driver hands XDP such a frame either.
    let full = q4(dns_query(9, RD, &wire_name(www), 1, 1, Some(&Opt::plain()))).to_bytes();
    for len in 14..full.len() {
        f.push(Fixture {
            desc: format!("A hit truncated to {len} bytes"),
            input: full[..len].to_vec(),
            expect: Expect::Pass(Counter::Received),
            ecs: None,
            cookie: None,
        });
    }
    f
}

fn fix_ipv4_csum(b: &mut [u8], l3: usize) {
    b[l3 + 10] = 0;
    b[l3 + 11] = 0;
    let c = !xgslb_tests::frame::fold(xgslb_tests::frame::inet_sum(0, &b[l3..l3 + 20]));
    b[l3 + 10..l3 + 12].copy_from_slice(&c.to_be_bytes());
}

/// Runs every fixture on `dp`; returns the failures.
fn run(dp: &mut DataPlane, fixtures: Vec<Fixture>) -> Vec<String> {
    let mut failures = Vec::new();
    for fx in fixtures {
        dp.set_pick_counter(0).expect("reset pick counter");
        let before = dp.stats().expect("stats");
        let ecs_before = dp.ecs_stats().expect("ECS stats");
        let cookies_before = dp.cookies.stats().expect("cookie stats");
        let started = unix_now();
        let mut out = vec![0u8; 2048];
        let res = dp
            .program()
            .test_run(TestRunOptions {
                data_in: Some(&fx.input),
                data_out: Some(&mut out),
                ..Default::default()
            })
            .unwrap_or_else(|e| panic!("{}: test_run: {e}", fx.desc));
        out.truncate(res.data_size_out as usize);
        let ended = unix_now();
        let after = dp.stats().expect("stats");
        let cookies_after = dp.cookies.stats().expect("cookie stats");
        let cookie_grew: Vec<CookieSeen> = CookieSeen::ALL
            .into_iter()
            .filter(|&c| cookies_after[c as usize] != cookies_before[c as usize])
            .collect();
        if cookie_grew != fx.cookie.into_iter().collect::<Vec<_>>() {
            failures.push(format!(
                "{}: cookie counters {cookie_grew:?} grew, want {:?}",
                fx.desc, fx.cookie
            ));
        }
        let grew: Vec<&str> = xgslb_common::Counter::ALL
            .iter()
            .filter(|c| **c != Counter::Received && after[**c as usize] != before[**c as usize])
            .map(|c| c.name())
            .collect();
        let ecs_after = dp.ecs_stats().expect("ECS stats");
        let ecs_grew: Vec<usize> = (0..ecs_after.len())
            .filter(|&i| ecs_after[i] != ecs_before[i])
            .collect();
        let ecs_want: Vec<usize> = fx
            .ecs
            .iter()
            .map(|&(v6, scope)| ecs_stat_index(v6, scope) as usize)
            .collect();
        if ecs_grew != ecs_want {
            failures.push(format!(
                "{}: ECS counters {ecs_grew:?} grew, want {ecs_want:?}",
                fx.desc
            ));
        }
        match &fx.expect {
            Expect::TxFresh(at, kind) => {
                // The server cookie's timestamp: the frame's last 16 bytes are the cookie.
                let stamp = out
                    .len()
                    .checked_sub(12)
                    .map(|i| u32::from_be_bytes([out[i], out[i + 1], out[i + 2], out[i + 3]]))
                    .unwrap_or_default();
                let want = at(stamp);
                if res.return_value != XDP_TX
                    || !(started..=ended).contains(&stamp)
                    || out != want
                    || grew != ["answered", kind.name()]
                {
                    failures.push(format!(
                        "{}: action {} counters {:?} stamp {stamp} (run {started}..={ended})\n  \
                         got  {:02x?}\n  want {:02x?}",
                        fx.desc, res.return_value, grew, out, want
                    ));
                }
            }
            Expect::Tx(want, kind) => {
                if res.return_value != XDP_TX || &out != want || grew != ["answered", kind.name()] {
                    failures.push(format!(
                        "{}: action {} counters {:?}\n  got  {:02x?}\n  want {:02x?}",
                        fx.desc, res.return_value, grew, out, want
                    ));
                }
            }
            Expect::Pass(reason) => {
                let reason_ok = *reason == Counter::Received || grew == [reason.name()];
                if res.return_value != XDP_PASS || out != fx.input || !reason_ok {
                    failures.push(format!(
                        "{}: action {} (want PASS) counters {:?} (want {}) output changed: {}",
                        fx.desc,
                        res.return_value,
                        grew,
                        reason.name(),
                        out != fx.input
                    ));
                }
            }
        }
    }
    failures
}

#[test]
fn xdp_fixtures() {
    require_root();
    let pins = PinDir::new("fixtures");
    let mut dp = setup(&pins);
    let failures = run(&mut dp, fixtures());
    assert!(
        failures.is_empty(),
        "{} fixtures failed:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

/// A name whose answer differs by client class.
const GEO: &str = "geo.example.test";
/// A name that persists per client prefix (/20 of IPv4, /48 of IPv6).
const STICKY: &str = "sticky.example.test";
/// Like GEO, but it ignores client subnets.
const LOCAL: &str = "local.example.test";

/// Client classes of the ECS fixtures: a /20 inside a /16 (classes 2 and 1), an IPv6 /44
/// inside a /36 (4 and 3). Their ECS partition cuts the /16 into the /20 and the /20, /19,
/// /18 and /17 beside it; the rest of IPv4 into the widest prefixes clear of the /16.
fn ecs_prefixes() -> Vec<(IpNet, ClassId)> {
    [
        ("198.18.0.0/16", 1),
        ("198.18.0.0/20", 2),
        ("2001:db8:1000::/36", 3),
        ("2001:db8:1000::/44", 4),
    ]
    .iter()
    .map(|(p, c)| (p.parse().expect("a prefix"), *c))
    .collect()
}

/// What GEO and LOCAL answer class `class`.
fn class_addr(class: ClassId) -> [u8; 4] {
    [198, 18, 10, class as u8]
}

fn ecs_sets() -> Vec<SetEntry> {
    let mut v = sets();
    for class in 0..=4 {
        v.push((
            name("geo.example.test."),
            RecordType::A,
            class,
            answer_set(&[class_addr(class)], 1, 60),
        ));
        let mut local = answer_set(&[class_addr(class)], 1, 60);
        local.ecs = EcsUse::Ignore as u8;
        v.push((name("local.example.test."), RecordType::A, class, local));
    }
    v.push((name("sticky.example.test."), RecordType::A, 0, sticky()));
    v
}

fn sticky() -> AnswerSet {
    let mut set = answer_set(&EIGHT, 1, 30);
    set.pick = PickMode::Persist as u8;
    set.persist_v4 = 20;
    set.persist_v6 = 48;
    set
}

/// A query for `name` (type `qtype`) carrying the client subnet option of data `ecs` (and
/// `before` ahead of it), from CLIENT4 (`v6` false) or CLIENT6.
fn ecs_query(v6: bool, name: &str, qtype: u16, before: &[(u16, Vec<u8>)], ecs: &[u8]) -> Udp {
    let mut options = before.to_vec();
    options.push((8, ecs.to_vec()));
    let m = dns_query(
        0x5ec5,
        RD,
        &wire_name(name),
        qtype,
        1,
        Some(&Opt {
            options,
            ..Opt::plain()
        }),
    );
    if v6 { q6(m) } else { q4(m) }
}

/// The client subnet a response echoes: the query's `ecs` data with our scope.
fn echoed(ecs: &[u8], scope: u8) -> Vec<u8> {
    let mut e = ecs.to_vec();
    e[3] = scope;
    e
}

/// An answer of address `addr` (TTL `ttl`) to the A query `q` for `name`, echoing client
/// subnet data `ecs` with `scope` (family IPv6 if `ecs_v6`).
fn ecs_hit(
    desc: &str,
    q: Udp,
    name: &str,
    ttl: u32,
    addr: [u8; 4],
    ecs: &[u8],
    scope: u8,
) -> Fixture {
    let reply = dns_a_reply(&q.payload, wire_name(name).len(), ttl, &[addr], Some(false));
    ecs_tx(
        desc,
        q,
        with_ecs(reply, &echoed(ecs, scope)),
        Counter::AnsweredAddresses,
        ecs,
        scope,
    )
}

fn ecs_tx(desc: &str, q: Udp, reply: Vec<u8>, kind: Counter, ecs: &[u8], scope: u8) -> Fixture {
    Fixture {
        ecs: Some((ecs[1] == 2, scope)),
        ..tx(desc, q, reply, kind)
    }
}

/// The address STICKY answers a client subnet masked to `hi`:`lo` (IPv6 if `v6`).
fn sticky_addr(hi: u64, lo: u64, v6: bool) -> [u8; 4] {
    let set = sticky();
    let pick = set.persist_pick(hi, lo, v6);
    EIGHT[set.answer_index(pick, 0).expect("an index") as usize]
}

fn ecs_fixtures() -> Vec<Fixture> {
    let v4 = |a: [u8; 4], source: u8| ecs_data(1, source, 0, &a[..usize::from(source).div_ceil(8)]);
    // 198.18.3.0/24 is in the /20 (class 2), 198.18.200.0/24 in the /17 of the /16's upper
    // half (class 1), 192.0.2.0/24 outside both (the default class; its partition prefix is
    // 192.0.0.0/6, the widest clear of 198.18.0.0/16).
    let in20 = v4([198, 18, 3, 0], 24);
    let in17 = v4([198, 18, 200, 0], 24);
    let out = v4([192, 0, 2, 0], 24);
    // 2001:db8:1000:ab00::/56, in the /44 (class 4); 2001:db8:1800::/40, in the /36 only
    // (class 3; its partition prefix is the /37 of the /36's upper half).
    let in44 = ecs_data(2, 56, 0, &[0x20, 0x01, 0x0d, 0xb8, 0x10, 0x00, 0xab]);
    let in37 = ecs_data(2, 40, 0, &[0x20, 0x01, 0x0d, 0xb8, 0x18]);
    let mut f = vec![
        ecs_hit(
            "GEO, /24 in the nested /20: its class, scope 20",
            ecs_query(false, GEO, 1, &[], &in20),
            GEO,
            60,
            class_addr(2),
            &in20,
            20,
        ),
        ecs_hit(
            "GEO, /24 in the /16 beside the /20: scope of its /17",
            ecs_query(false, GEO, 1, &[], &in17),
            GEO,
            60,
            class_addr(1),
            &in17,
            17,
        ),
        ecs_hit(
            "GEO, /24 outside every region: the default class, scope 6",
            ecs_query(false, GEO, 1, &[], &out),
            GEO,
            60,
            class_addr(0),
            &out,
            6,
        ),
        {
            // A /32 is cut to the /24 honoured; the echo keeps the query's /32.
            let e = v4([198, 18, 3, 7], 32);
            ecs_hit(
                "GEO, /32 cut to /24: scope 20, the /32 echoed",
                ecs_query(false, GEO, 1, &[], &e),
                GEO,
                60,
                class_addr(2),
                &e,
                20,
            )
        },
        {
            // A /16 covering the /20: the answer of its first address, for the /16 only.
            let e = v4([198, 18, 0, 0], 16);
            ecs_hit(
                "GEO, /16 covering the /20: scope 16",
                ecs_query(false, GEO, 1, &[], &e),
                GEO,
                60,
                class_addr(2),
                &e,
                16,
            )
        },
        {
            // An odd prefix: 3 address bytes, the option an odd number of bytes long.
            let e = v4([198, 18, 200, 0], 21);
            ecs_hit(
                "GEO, /21 (odd option length): scope 17",
                ecs_query(false, GEO, 1, &[], &e),
                GEO,
                60,
                class_addr(1),
                &e,
                17,
            )
        },
        ecs_hit(
            "GEO over IPv4, IPv6 /56 in the /44: class 4, scope 44",
            ecs_query(false, GEO, 1, &[], &in44),
            GEO,
            60,
            class_addr(4),
            &in44,
            44,
        ),
        ecs_hit(
            "GEO over IPv6, IPv6 /40 in the /36: class 3, scope 37",
            ecs_query(true, GEO, 1, &[], &in37),
            GEO,
            60,
            class_addr(3),
            &in37,
            37,
        ),
        ecs_hit(
            "GEO over IPv6, IPv4 /24 in the /20: class 2, scope 20",
            ecs_query(true, GEO, 1, &[], &in20),
            GEO,
            60,
            class_addr(2),
            &in20,
            20,
        ),
        {
            // /0 says nothing of the client: the source (198.18.0.1, in the /20) stands for it.
            let e = ecs_data(1, 0, 0, &[]);
            ecs_hit(
                "GEO, /0: the source's class, scope 0",
                ecs_query(false, GEO, 1, &[], &e),
                GEO,
                60,
                class_addr(2),
                &e,
                0,
            )
        },
        {
            let e = ecs_data(2, 0, 0, &[]);
            ecs_hit(
                "GEO over IPv6, IPv6 /0: the source's class (none), scope 0",
                ecs_query(true, GEO, 1, &[], &e),
                GEO,
                60,
                class_addr(0),
                &e,
                0,
            )
        },
        {
            let q = ecs_query(false, GEO, 1, &[(10, vec![7; 8])], &in17);
            let reply = dns_a_reply(
                &q.payload,
                wire_name(GEO).len(),
                60,
                &[class_addr(1)],
                Some(false),
            );
            Fixture {
                ecs: Some((false, 17)),
                ..fresh(
                    "GEO, a cookie before the subnet: the subnet echoed, then the cookie",
                    q,
                    reply,
                    vec![(8, echoed(&in17, 17))],
                    [7; 8],
                    (Counter::AnsweredAddresses, CookieSeen::ClientOnly),
                )
            }
        },
        ecs_hit(
            "LOCAL ignores client subnets: the source's class, scope 0",
            ecs_query(false, LOCAL, 1, &[], &in17),
            LOCAL,
            60,
            class_addr(2),
            &in17,
            0,
        ),
        ecs_hit(
            "STICKY, /24: the subnet's persist hash, scope 20 (the persist mask)",
            ecs_query(false, STICKY, 1, &[], &in20),
            STICKY,
            30,
            sticky_addr(0xc612_0300 << 32, 0, false),
            &in20,
            20,
        ),
        {
            let e = v4([198, 18, 0, 0], 16);
            ecs_hit(
                "STICKY, /16: scope 16 (what was honoured)",
                ecs_query(false, STICKY, 1, &[], &e),
                STICKY,
                30,
                sticky_addr(0xc612_0000 << 32, 0, false),
                &e,
                16,
            )
        },
        ecs_hit(
            "STICKY over IPv4, IPv6 /56: hashed as IPv6, scope 48",
            ecs_query(false, STICKY, 1, &[], &in44),
            STICKY,
            30,
            sticky_addr(0x2001_0db8_1000_ab00, 0, true),
            &in44,
            48,
        ),
        ecs_hit(
            "an answer set without classes, /24: scope 0",
            ecs_query(false, "www.example.test", 1, &[], &in20),
            "www.example.test",
            300,
            ONE,
            &in20,
            0,
        ),
        {
            let q = ecs_query(true, "example.test", qtype::MX, &[], &in44);
            let reply = with_ecs(zone::apex_mx(&q.payload, Some(false)), &echoed(&in44, 0));
            ecs_tx(
                "static MX with additional, IPv6 /56: scope 0",
                q,
                reply,
                Counter::AnsweredRecords,
                &in44,
                0,
            )
        },
        {
            let q = ecs_query(false, "www.example.test", qtype::HTTPS, &[], &in20);
            let reply = with_ecs(
                zone::nodata(&q.payload, "www.example.test", Some(false)),
                &echoed(&in20, 0),
            );
            ecs_tx(
                "NODATA, /24: scope 0",
                q,
                reply,
                Counter::AnsweredNoData,
                &in20,
                0,
            )
        },
        {
            let e = v4([198, 18, 200, 0], 21);
            let n = "ab.cde.example.test";
            let q = ecs_query(false, n, qtype::A, &[], &e);
            let reply = with_ecs(zone::nxdomain(&q.payload, n, Some(false)), &echoed(&e, 0));
            ecs_tx(
                "NXDOMAIN, odd name and option lengths: scope 0",
                q,
                reply,
                Counter::AnsweredNxDomain,
                &e,
                0,
            )
        },
    ];
    // Malformed (RFC 7871 7.1.1) or not for this path: the slow path answers them.
    for (desc, options) in [
        ("family 3", vec![(8, ecs_data(3, 0, 0, &[]))]),
        (
            "IPv4 source /33",
            vec![(8, ecs_data(1, 33, 0, &[198, 18, 3, 0, 0]))],
        ),
        ("IPv6 source /129", vec![(8, ecs_data(2, 129, 0, &[0; 17]))]),
        (
            "/24 with 4 address bytes",
            vec![(8, ecs_data(1, 24, 0, &[198, 18, 3, 0]))],
        ),
        (
            "/24 with 2 address bytes",
            vec![(8, ecs_data(1, 24, 0, &[198, 18]))],
        ),
        (
            "/23 with bit 24 set",
            vec![(8, ecs_data(1, 23, 0, &[198, 18, 1]))],
        ),
        (
            "/0 with an address byte",
            vec![(8, ecs_data(1, 0, 0, &[0]))],
        ),
        ("shorter than its fixed part", vec![(8, vec![0, 1, 24])]),
        (
            "two client subnets",
            vec![(8, in20.clone()), (8, in17.clone())],
        ),
    ] {
        let m = dns_query(
            1,
            RD,
            &wire_name(GEO),
            1,
            1,
            Some(&Opt {
                options,
                ..Opt::plain()
            }),
        );
        f.push(pass(
            &format!("client subnet: {desc}"),
            q4(m).to_bytes(),
            Counter::PassEdns,
        ));
    }
    f
}

#[test]
fn xdp_answers_client_subnets_with_their_class_and_scope() {
    require_root();
    let pins = PinDir::new("fixtures-ecs");
    let mut dp = setup_with(&pins, &zone::entries(&ecs_sets()), &ecs_prefixes());
    let mut failures = run(&mut dp, ecs_fixtures());
    // Only some resolvers trusted: the slow path checks the source, XDP answers no subnet.
    let trusted = EcsPolicy {
        trusted: vec!["192.0.2.0/24".parse().expect("a prefix")],
        ..EcsPolicy::default()
    };
    dp.tables.set_ecs_policy(&trusted).expect("ECS policy");
    let q = ecs_query(false, GEO, 1, &[], &ecs_data(1, 24, 0, &[198, 18, 3]));
    failures.extend(run(
        &mut dp,
        vec![pass(
            "client subnet, some resolvers trusted",
            q.to_bytes(),
            Counter::PassEdns,
        )],
    ));
    // Without one, the query is still answered.
    failures.extend(run(
        &mut dp,
        vec![{
            let q = q4(a_query(GEO));
            let reply = dns_a_reply(&q.payload, wire_name(GEO).len(), 60, &[class_addr(2)], None);
            tx(
                "GEO without a subnet, some resolvers trusted",
                q,
                reply,
                Counter::AnsweredAddresses,
            )
        }],
    ));
    assert!(
        failures.is_empty(),
        "{} fixtures failed:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

/// A 64-bit collision, forced: each of two names' A entries placed under the other's key.
/// The program compares the name an entry holds, so neither is answered with the other's
/// records (each falls back to what its name has without that entry).
#[test]
fn a_name_on_another_names_key_is_never_answered_with_its_records() {
    require_root();
    let pins = PinDir::new("collide");
    let mut dp = setup(&pins);
    let seed = dp.tables.seed();
    let mut keyed = keyed(seed, &zone::entries(&sets()));
    let at = |keyed: &[(u64, xgslb_common::Entry)], n: &str| {
        let wire = xgslb::plan::key::wire_name(&name(n)).expect("a name that fits");
        keyed
            .iter()
            .position(|(_, e)| e.head.name == wire && e.head.qtype == qtype::A && e.head.kind == 0)
            .expect("an A entry")
    };
    let (www, mail) = (
        at(&keyed, "www.example.test."),
        at(&keyed, "mail.example.test."),
    );
    let (kw, km) = (keyed[www].0, keyed[mail].0);
    keyed[www].0 = km;
    keyed[mail].0 = kw;
    dp.tables
        .swap_keyed(seed, &keyed, &[])
        .expect("the colliding table");
    for (asked, theirs) in [
        ("www.example.test", [198, 18, 0, 25]),
        ("mail.example.test", ONE),
    ] {
        let q = q4(a_query(asked));
        let (action, out, _) = xgslb_tests::xdp_run(dp.program(), &q.to_bytes()).expect("run");
        if action == XDP_TX {
            let msg = hickory_proto::op::Message::from_vec(&out[14 + 20 + 8..]).expect("parses");
            for r in &msg.answers {
                assert_ne!(
                    r.data,
                    hickory_proto::rr::RData::A(hickory_proto::rr::rdata::A(theirs.into())),
                    "{asked} answered with the other name's record"
                );
            }
            assert!(msg.answers.is_empty(), "{asked}: {:?}", msg.answers);
        } else {
            assert_eq!(action, XDP_PASS, "{asked}");
        }
    }
}

/// The slipped reply of the DNS message `full` (a response to a question of `name_len`
/// bytes whose last `opt_len` bytes are its OPT, 0 without one), built here as the rate
/// limit defines it: the header with TC set and only the OPT counted, the question, the OPT.
fn slipped(full: &[u8], name_len: usize, opt_len: usize) -> Vec<u8> {
    let flags = u16::from_be_bytes([full[2], full[3]]) | 0x0200;
    let mut m = full[..2].to_vec();
    m.extend_from_slice(&flags.to_be_bytes());
    m.extend_from_slice(&[0, 1, 0, 0, 0, 0, 0, u8::from(opt_len != 0)]);
    m.extend_from_slice(&full[12..12 + name_len + 4]);
    m.extend_from_slice(&full[full.len() - opt_len..]);
    m
}

/// One run of `input`: the action, the output frame, the counters that grew and whether
/// the ECS counters grew.
fn run_once(dp: &mut DataPlane, input: &[u8]) -> (u32, Vec<u8>, Vec<&'static str>, bool) {
    let before = dp.stats().expect("stats");
    let ecs_before = dp.ecs_stats().expect("ECS stats");
    let (action, out, _) = xgslb_tests::xdp_run(dp.program(), input).expect("test_run");
    let after = dp.stats().expect("stats");
    let grew = Counter::ALL
        .iter()
        .filter(|c| **c != Counter::Received && after[**c as usize] != before[**c as usize])
        .map(|c| c.name())
        .collect();
    (
        action,
        out,
        grew,
        dp.ecs_stats().expect("ECS stats") != ecs_before,
    )
}

/// A query of the rate-limit fixtures, with what is needed to build its slipped reply.
struct Limited {
    desc: &'static str,
    q: Udp,
    /// Wire length of the question name, and of the response's OPT (0: none).
    name_len: usize,
    opt_len: usize,
    /// The answered kind, and whether its answer counts in the ECS counters.
    kind: Counter,
    ecs: bool,
}

/// What the rate limit must do with one run of a query.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Fate {
    Whole,
    Dropped,
    Slipped,
}

/// Runs `steps` (an index into `queries` and its expected fate), each query's source moved
/// into prefix 198.18.`net`.0/24 (or 2001:db8:`net`::/56) so that every attempt starts
/// with fresh buckets, and checks every output; attempts again, in a new prefix, when a
/// second boundary fell inside (the limit counts per second). Returns the failures.
fn limited_run(dp: &mut DataPlane, queries: &[Limited], steps: &[(usize, Fate)]) -> Vec<String> {
    use std::sync::atomic::{AtomicU8, Ordering};
    static NET: AtomicU8 = AtomicU8::new(10);
    for _ in 0..5 {
        let net = NET.fetch_add(1, Ordering::Relaxed);
        let start = xgslb::udp::limit::monotonic_second();
        let mut failures = Vec::new();
        let mut whole: Vec<Option<Vec<u8>>> = vec![None; queries.len()];
        for &(i, fate) in steps {
            let l = &queries[i];
            let mut q = l.q.clone();
            q.src = match q.src {
                IpAddr::V4(a) => IpAddr::from([198, 18, net, a.octets()[3]]),
                IpAddr::V6(a) => {
                    let mut o = a.octets();
                    o[5] = net;
                    IpAddr::from(o)
                }
            };
            let (action, out, grew, ecs) = run_once(dp, &q.to_bytes());
            let fail = |why: String| format!("{} ({fate:?}): {why}", l.desc);
            match fate {
                Fate::Whole => {
                    if action != XDP_TX || grew != ["answered", l.kind.name()] || ecs != l.ecs {
                        failures.push(fail(format!("action {action} counters {grew:?} ECS {ecs}")));
                    }
                    let l4 = if q.src.is_ipv4() {
                        14 + 20 + 8
                    } else {
                        14 + 40 + 8
                    };
                    whole[i] = out.get(l4..).map(<[u8]>::to_vec);
                }
                Fate::Dropped => {
                    if action != XDP_DROP || grew != ["rrl_dropped"] || ecs {
                        failures.push(fail(format!("action {action} counters {grew:?} ECS {ecs}")));
                    }
                }
                Fate::Slipped => {
                    let Some(full) = &whole[i] else {
                        failures.push(fail("no whole answer to slip".into()));
                        continue;
                    };
                    let want = q.reply(slipped(full, l.name_len, l.opt_len)).to_bytes();
                    if action != XDP_TX || grew != ["rrl_slipped"] || ecs || out != want {
                        failures.push(fail(format!(
                            "action {action} counters {grew:?} ECS {ecs}\n  got  {out:02x?}\n  want {want:02x?}"
                        )));
                    }
                }
            }
        }
        if xgslb::udp::limit::monotonic_second() == start {
            return failures;
        }
    }
    vec!["every attempt met a second boundary".into()]
}

#[test]
fn xdp_limits_response_rates_per_prefix_and_class_with_slip() {
    require_root();
    let pins = PinDir::new("fixtures-rrl");
    let mut dp = setup(&pins);
    let policy = |rate, slip| RrlPolicy {
        responses_per_second: rate,
        slip,
        exempt: vec!["198.18.200.0/24".parse().expect("a prefix")],
        ..RrlPolicy::default()
    };
    dp.rrl.publish(&policy(1, 2)).expect("RRL policy");
    let www = "www.example.test";
    let opt = || Some(Opt::plain());
    let ecs6 = ecs_data(2, 48, 0, &[0x20, 0x01, 0x0d, 0xb8, 0, 0x77]);
    let queries = [
        Limited {
            desc: "A with OPT over IPv4",
            q: q4(dns_query(7, RD, &wire_name(www), 1, 1, opt().as_ref())),
            name_len: wire_name(www).len(),
            opt_len: 11,
            kind: Counter::AnsweredAddresses,
            ecs: false,
        },
        Limited {
            desc: "NXDOMAIN (odd length) over IPv4 from the same prefix",
            q: q4(a_query("ab.cde.example.test")),
            name_len: wire_name("ab.cde.example.test").len(),
            opt_len: 0,
            kind: Counter::AnsweredNxDomain,
            ecs: false,
        },
        Limited {
            desc: "AAAA with a client subnet and DO over IPv6",
            q: q6(dns_query(
                8,
                0,
                &wire_name(www),
                qtype::AAAA,
                1,
                Some(&Opt {
                    dnssec_ok: true,
                    options: vec![(8, ecs6.clone())],
                    ..Opt::plain()
                }),
            )),
            name_len: wire_name(www).len(),
            opt_len: 11 + 4 + ecs6.len(),
            kind: Counter::AnsweredAddresses,
            ecs: true,
        },
        Limited {
            desc: "MX with additional data, zero UDP checksum",
            q: {
                let mut q = q4(dns_query(
                    5,
                    RD,
                    &wire_name("example.test"),
                    qtype::MX,
                    1,
                    opt().as_ref(),
                ));
                q.zero_csum = true;
                q
            },
            name_len: wire_name("example.test").len(),
            opt_len: 11,
            kind: Counter::AnsweredRecords,
            ecs: false,
        },
    ];
    use Fate::*;
    // Rate 1, slip 2: the first answer of a second whole, then every second limited one
    // slipped; each class counts on its own.
    let mut failures = limited_run(
        &mut dp,
        &queries,
        &[
            (0, Whole),
            (0, Dropped),
            (1, Whole),
            (0, Slipped),
            (1, Dropped),
            (0, Dropped),
            (1, Slipped),
            (0, Slipped),
        ],
    );
    for i in 2..queries.len() {
        failures.extend(limited_run(
            &mut dp,
            &queries,
            &[
                (i, Whole),
                (i, Dropped),
                (i, Slipped),
                (i, Dropped),
                (i, Slipped),
            ],
        ));
    }
    // An exempt client is never limited.
    let mut exempt = q4(a_query(www));
    exempt.src = IpAddr::from([198, 18, 200, 7]);
    for n in 0..5 {
        let (action, _, grew, _) = run_once(&mut dp, &exempt.to_bytes());
        if action != XDP_TX || grew != ["answered", "answered_addresses"] {
            failures.push(format!(
                "exempt client, query {n}: action {action} counters {grew:?}"
            ));
        }
    }
    // Slip 1: every limited response slips; slip 0: none does.
    dp.rrl.publish(&policy(1, 1)).expect("RRL policy");
    failures.extend(limited_run(
        &mut dp,
        &queries,
        &[(0, Whole), (0, Slipped), (0, Slipped), (0, Slipped)],
    ));
    dp.rrl.publish(&policy(1, 0)).expect("RRL policy");
    failures.extend(limited_run(
        &mut dp,
        &queries,
        &[(2, Whole), (2, Dropped), (2, Dropped), (2, Dropped)],
    ));
    // Off again: everything answered.
    dp.rrl.publish(&RrlPolicy::default()).expect("RRL policy");
    failures.extend(limited_run(&mut dp, &queries, &[(0, Whole); 4]));
    assert_eq!(dp.rrl.config().expect("config").rate, 0);
    assert!(dp.rrl.exempt().expect("exempt").is_empty());
    assert!(
        failures.is_empty(),
        "{} rate-limit fixtures failed:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

/// A query for `name` (type `qtype`) from CLIENT4 (or CLIENT6 if `v6`) with `options` in its
/// OPT.
fn with_opt(v6: bool, name: &str, qtype: u16, options: Vec<(u16, Vec<u8>)>) -> Udp {
    let m = dns_query(
        0xc00c,
        RD,
        &wire_name(name),
        qtype,
        1,
        Some(&Opt {
            options,
            ..Opt::plain()
        }),
    );
    if v6 { q6(m) } else { q4(m) }
}

/// The client cookie of the cookie fixtures.
const CLIENT: [u8; 8] = [0x24, 0x64, 0xc4, 0xab, 0xcf, 0x10, 0xc9, 0x57];

/// CLIENT and a server cookie of ours for `ip`, stamped `age` seconds ago.
fn ours(ip: IpAddr, age: i64) -> Vec<u8> {
    let stamp = (unix_now() as i64 - age) as u32;
    [&CLIENT[..], &secret().server_cookie(&CLIENT, ip, stamp)[..]].concat()
}

fn cookie_fixtures() -> Vec<Fixture> {
    let www = "www.example.test";
    let (c4, c6) = (IpAddr::V4(CLIENT4), IpAddr::V6(CLIENT6));
    let a_reply = |q: &Udp| dns_a_reply(&q.payload, wire_name(www).len(), 300, &[ONE], Some(false));
    let hit = (Counter::AnsweredAddresses, CookieSeen::ClientOnly);
    let mut f = Vec::new();
    for (v6, ip) in [(false, c4), (true, c6)] {
        let fam = if v6 { "IPv6" } else { "IPv4" };
        let q = with_opt(v6, www, 1, vec![(10, CLIENT.to_vec())]);
        f.push(fresh(
            &format!("client cookie alone, {fam}"),
            q.clone(),
            a_reply(&q),
            vec![],
            CLIENT,
            hit,
        ));
        // Ours, ten minutes old: echoed as received.
        let cookie = ours(ip, 600);
        let q = with_opt(v6, www, 1, vec![(10, cookie.clone())]);
        let reply = with_options(a_reply(&q), &[(10, &cookie)]);
        f.push(Fixture {
            cookie: Some(CookieSeen::Valid),
            ..tx(
                &format!("valid server cookie, 10 minutes old: echoed, {fam}"),
                q,
                reply,
                Counter::AnsweredAddresses,
            )
        });
        // Ours, 40 minutes old: valid, renewed.
        let q = with_opt(v6, www, 1, vec![(10, ours(ip, 2400))]);
        f.push(fresh(
            &format!("valid server cookie, 40 minutes old: renewed, {fam}"),
            q.clone(),
            a_reply(&q),
            vec![],
            CLIENT,
            (Counter::AnsweredAddresses, CookieSeen::Valid),
        ));
    }
    let invalid = (Counter::AnsweredAddresses, CookieSeen::Invalid);
    let mut bad_hash = ours(c4, 10);
    bad_hash[23] ^= 1;
    let mut bad_version = ours(c4, 10);
    bad_version[8] = 2;
    let mut bad_client = ours(c4, 10);
    bad_client[0] ^= 1;
    for (desc, cookie) in [
        ("stale (two hours old)", ours(c4, 7200)),
        ("from the future (ten minutes ahead)", ours(c4, -600)),
        ("bad hash", bad_hash),
        ("bad version", bad_version),
        ("another client cookie", bad_client),
        ("made for another address", ours(c6, 10)),
        ("8 bytes: not one of ours", [&CLIENT[..], &[1; 8]].concat()),
        (
            "32 bytes: not one of ours",
            [&CLIENT[..], &[1; 32]].concat(),
        ),
    ] {
        let client: [u8; 8] = cookie[..8].try_into().expect("8 bytes");
        let q = with_opt(false, www, 1, vec![(10, cookie)]);
        f.push(fresh(
            &format!("server cookie {desc}: invalid, a fresh one"),
            q.clone(),
            a_reply(&q),
            vec![],
            client,
            invalid,
        ));
    }
    // Every kind of answer, with odd lengths before the cookie (the name, the option before
    // it), so that it lands at either parity of the UDP checksum.
    let odd = ecs_data(1, 21, 0, &[198, 18, 200]);
    for (desc, q, reply, kind) in [
        {
            let q = with_opt(true, "example.test", qtype::MX, vec![(10, CLIENT.to_vec())]);
            let r = zone::apex_mx(&q.payload, Some(false));
            ("static MX with additional", q, r, Counter::AnsweredRecords)
        },
        {
            let q = with_opt(false, www, qtype::HTTPS, vec![(10, CLIENT.to_vec())]);
            let r = zone::nodata(&q.payload, www, Some(false));
            ("NODATA", q, r, Counter::AnsweredNoData)
        },
        {
            let n = "ab.cde.example.test";
            let q = with_opt(false, n, qtype::A, vec![(10, CLIENT.to_vec())]);
            let r = zone::nxdomain(&q.payload, n, Some(false));
            ("NXDOMAIN, odd name length", q, r, Counter::AnsweredNxDomain)
        },
    ] {
        f.push(fresh(
            desc,
            q,
            reply,
            vec![],
            CLIENT,
            (kind, CookieSeen::ClientOnly),
        ));
    }
    {
        let n = "ab.cde.example.test";
        let q = with_opt(
            false,
            n,
            qtype::A,
            vec![(8, odd.clone()), (10, CLIENT.to_vec())],
        );
        let r = zone::nxdomain(&q.payload, n, Some(false));
        f.push(Fixture {
            ecs: Some((false, 0)),
            ..fresh(
                "NXDOMAIN, odd name and subnet lengths, then the cookie",
                q,
                r,
                vec![(8, echoed(&odd, 0))],
                CLIENT,
                (Counter::AnsweredNxDomain, CookieSeen::ClientOnly),
            )
        });
    }
    // Left to the slow path: two cookies, and malformed ones (FORMERR there).
    f.push(pass(
        "two cookies",
        with_opt(
            false,
            www,
            1,
            vec![(10, CLIENT.to_vec()), (10, CLIENT.to_vec())],
        )
        .to_bytes(),
        Counter::PassEdns,
    ));
    for len in [0, 7, 9, 15, 41] {
        f.push(pass(
            &format!("a cookie of {len} bytes"),
            with_opt(false, www, 1, vec![(10, vec![1; len])]).to_bytes(),
            Counter::PassEdns,
        ));
    }
    f
}

#[test]
fn xdp_checks_and_issues_dns_cookies() {
    require_root();
    let pins = PinDir::new("fixtures-cookies");
    let mut dp = setup_with(&pins, &zone::entries(&ecs_sets()), &ecs_prefixes());
    let verified = dp
        .program()
        .info()
        .expect("program info")
        .verified_instruction_count();
    eprintln!("the XDP program: {verified:?} verified instructions");
    let mut failures = run(&mut dp, cookie_fixtures());
    // Cookies off: the option is ignored (as by a server without cookies).
    dp.cookies
        .publish(&Cookies::new(false, secret(), Arc::default()))
        .expect("cookies off");
    let q = with_opt(false, "www.example.test", 1, vec![(10, CLIENT.to_vec())]);
    let reply = dns_a_reply(
        &q.payload,
        wire_name("www.example.test").len(),
        300,
        &[ONE],
        Some(false),
    );
    failures.extend(run(
        &mut dp,
        vec![tx(
            "cookies off: none in the answer",
            q,
            reply,
            Counter::AnsweredAddresses,
        )],
    ));
    assert!(
        failures.is_empty(),
        "{} fixtures failed:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

/// Before xgslbd publishes its cookie config, a query with a cookie is the slow path's.
#[test]
fn queries_with_a_cookie_are_passed_until_cookies_are_published() {
    require_root();
    let pins = PinDir::new("fixtures-nocookies");
    let mut dp = DataPlane::load(pins.path()).expect("load the XDP program");
    let listeners = [ListenerKey {
        addr: v4key(SERVER4),
        port: 53,
        family: 4,
        _pad: 0,
    }];
    publish_listeners(&mut dp.listeners, &listeners).expect("listeners");
    dp.tables
        .swap(&zone::entries(&sets()), &[])
        .expect("entries");
    let q = with_opt(false, "www.example.test", 1, vec![(10, CLIENT.to_vec())]);
    let failures = run(
        &mut dp,
        vec![pass(
            "cookie, nothing published",
            q.to_bytes(),
            Counter::PassEdns,
        )],
    );
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
