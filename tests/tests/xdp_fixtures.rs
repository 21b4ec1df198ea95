//! The XDP program through BPF_PROG_TEST_RUN: a table of {input frame, description, expected
//! action and output}. Every answer is compared byte for byte (checksums included) with a reply
//! built independently; everything else must come out XDP_PASS, unchanged, with the expected
//! pass reason counted.
use std::net::{IpAddr, Ipv4Addr};

use aya::programs::{TestRun, TestRunOptions};
use hickory_proto::rr::{Name, RecordType};
use xgslb::{
    maps::{DataPlane, publish::publish_listeners, tables::keyed},
    plan::{slots::slot_table, snapshot::SetEntry},
};
use xgslb_common::{AnswerSet, Counter, ListenerKey, MAX_ADDRS, PickMode, qtype};
use xgslb_tests::{
    frame::{
        CLIENT4, CLIENT6, Opt, SERVER4, SERVER6, Udp, XDP_PASS, XDP_TX, dns_a_reply,
        dns_aaaa_reply, dns_query, wire_name,
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
    dp.tables
        .swap(&zone::entries(&sets()), &[])
        .expect("entries");
    dp
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

enum Expect {
    /// This frame, counted as this kind of answer.
    Tx(Vec<u8>, Counter),
    Pass(Counter),
}

struct Fixture {
    desc: String,
    input: Vec<u8>,
    expect: Expect,
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
        hit(
            "A hit with OPT, DO bit and a cookie, over IPv6",
            q6(dns_query(
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
            )),
            www,
            300,
            &[ONE],
            Some(true),
        ),
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
        pass(
            "client subnet option",
            q4(dns_query(
                1,
                RD,
                &wire_name(www),
                1,
                1,
                Some(&Opt {
                    options: vec![(8, vec![0, 1, 24, 0, 198, 18, 0])],
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

#[test]
fn xdp_fixtures() {
    require_root();
    let pins = PinDir::new("fixtures");
    let mut dp = setup(&pins);
    let mut failures = Vec::new();
    for fx in fixtures() {
        dp.set_pick_counter(0).expect("reset pick counter");
        let before = dp.stats().expect("stats");
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
        let after = dp.stats().expect("stats");
        let grew: Vec<&str> = xgslb_common::Counter::ALL
            .iter()
            .filter(|c| **c != Counter::Received && after[**c as usize] != before[**c as usize])
            .map(|c| c.name())
            .collect();
        match &fx.expect {
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
