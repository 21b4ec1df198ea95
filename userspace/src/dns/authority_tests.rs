//! Behaviour tests of the catalog: query bytes in, response bytes out, checked with
//! hickory-proto. One test zone covers every case the handler distinguishes.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::str::FromStr;

use hickory_proto::op::{Edns, Message, MessageType, OpCode, Query, ResponseCode};
use hickory_proto::rr::rdata::opt::{EdnsCode, EdnsOption};
use hickory_proto::rr::rdata::{A, AAAA};
use hickory_proto::rr::{DNSClass, LowerName, Name, RData, Record, RecordType};

use super::{Catalog, CatalogError};
use crate::dns::handler::{Client, Dynamic, DynamicAnswers, Scoped, Transport};
use crate::dns::zone::Zone;

/// The shared zone (tests/fixtures, also served by Knot in slowpath_vs_knot) and the
/// names only these tests ask about.
const ZONE: &str = concat!(
    include_str!("../../../tests/fixtures/example.com.zone"),
    r#"gslb     A 192.0.2.200
gslb     TXT "static beside dynamic"
mx       MX 1 m1
mx       MX 2 m2
mx       MX 3 m3
mx       MX 4 m4
mx       MX 5 m5
mx       MX 6 m6
mx       MX 7 m7
mx       MX 8 m8
mx       MX 9 m9
mx       MX 10 m10
m1       A 192.0.2.101
m1       AAAA 2001:db8::101
m2       A 192.0.2.102
m2       AAAA 2001:db8::102
m3       A 192.0.2.103
m3       AAAA 2001:db8::103
m4       A 192.0.2.104
m4       AAAA 2001:db8::104
m5       A 192.0.2.105
m5       AAAA 2001:db8::105
m6       A 192.0.2.106
m6       AAAA 2001:db8::106
m7       A 192.0.2.107
m7       AAAA 2001:db8::107
m8       A 192.0.2.108
m8       AAAA 2001:db8::108
m9       A 192.0.2.109
m9       AAAA 2001:db8::109
m10       A 192.0.2.110
m10       AAAA 2001:db8::110
"#
);

/// A second zone whose data must never show up in answers from the first.
const OTHER_ZONE: &str = r#"
$TTL 3600
@   SOA ns1 hostmaster 1 7200 3600 1209600 300
@   NS ns1
ns1 A 198.51.100.53
www A 198.51.100.80
"#;

/// A child zone of the first, hosted here too.
const CHILD_ZONE: &str = r#"
$TTL 3600
@   SOA ns.sub.example.com. hostmaster 1 7200 3600 1209600 300
@   NS ns
ns  A 192.0.2.53
host A 192.0.2.54
"#;

/// A name as written: `from_ascii` keeps the letter case (`from_str` lowercases via IDNA).
fn name(text: &str) -> Name {
    Name::from_ascii(text).expect("valid name")
}

fn zone(origin: &str, text: &str) -> Zone {
    Zone::parse(&name(origin), text).expect("valid zone")
}

/// GSLB answers for the test: fixed records per (name, type).
struct TestDynamic(HashMap<(LowerName, RecordType), Vec<Record>>);

impl DynamicAnswers for TestDynamic {
    fn answer(&self, name: &LowerName, rtype: RecordType, _client: &Client) -> Scoped {
        Dynamic::Records(
            self.0
                .get(&(name.clone(), rtype))
                .cloned()
                .unwrap_or_default(),
        )
        .into()
    }
}

/// The LDNS address the tests ask from.
const CLIENT: IpAddr = IpAddr::V4(Ipv4Addr::new(198, 18, 0, 1));

fn a(owner: &str, ttl: u32, addr: [u8; 4]) -> Record {
    Record::from_rdata(name(owner), ttl, RData::A(A(Ipv4Addr::from(addr))))
}

fn dynamic() -> TestDynamic {
    let mut map = HashMap::new();
    map.insert(
        (LowerName::new(&name("gslb.example.com.")), RecordType::A),
        vec![
            a("gslb.example.com.", 30, [198, 51, 100, 2]),
            a("gslb.example.com.", 30, [198, 51, 100, 1]),
        ],
    );
    map.insert(
        (
            LowerName::new(&name("dyn.only.example.com.")),
            RecordType::A,
        ),
        vec![a("dyn.only.example.com.", 30, [198, 51, 100, 7])],
    );
    map.insert(
        (
            LowerName::new(&name("dyn.only.example.com.")),
            RecordType::AAAA,
        ),
        vec![Record::from_rdata(
            name("dyn.only.example.com."),
            30,
            RData::AAAA(AAAA(Ipv6Addr::from_str("2001:db8::7").expect("valid"))),
        )],
    );
    TestDynamic(map)
}

fn dynamic_pairs() -> Vec<(Name, RecordType)> {
    vec![
        (name("gslb.example.com."), RecordType::A),
        (name("dyn.only.example.com."), RecordType::A),
        (name("dyn.only.example.com."), RecordType::AAAA),
        (name("empty.example.com."), RecordType::A),
    ]
}

fn catalog() -> Catalog {
    let zones = vec![
        zone("example.com.", ZONE),
        zone("example.net.", OTHER_ZONE),
        zone("sub.example.com.", CHILD_ZONE),
    ];
    Catalog::new(zones, &dynamic_pairs()).expect("valid catalog")
}

fn query(qname: &str, qtype: RecordType) -> Message {
    let mut message = Message::new(0x1234, MessageType::Query, OpCode::Query);
    message.metadata.recursion_desired = true;
    message.add_query(Query::query(name(qname), qtype));
    message
}

fn with_edns(mut message: Message, payload: u16) -> Message {
    let mut edns = Edns::new();
    edns.set_max_payload(payload);
    message.set_edns(edns);
    message
}

fn respond_bytes(bytes: &[u8], transport: Transport) -> Option<Message> {
    let response = catalog().respond(bytes, transport, CLIENT, &dynamic())?;
    Some(Message::from_vec(&response).expect("response decodes"))
}

fn ask_over(message: &Message, transport: Transport) -> Message {
    let bytes = message.to_vec().expect("query encodes");
    respond_bytes(&bytes, transport).expect("a response")
}

fn ask(message: &Message) -> Message {
    ask_over(message, Transport::Udp)
}

fn ask_q(qname: &str, qtype: RecordType) -> Message {
    ask(&query(qname, qtype))
}

/// The section as sorted "owner type rdata ttl" strings, for order-free comparison.
fn rendered(records: &[Record]) -> Vec<String> {
    let mut out: Vec<String> = records
        .iter()
        .map(|r| {
            format!(
                "{} {} {} {}",
                r.name.to_lowercase(),
                r.record_type(),
                r.data,
                r.ttl
            )
        })
        .collect();
    out.sort();
    out
}

fn types(records: &[Record]) -> Vec<RecordType> {
    records.iter().map(Record::record_type).collect()
}

fn assert_soa_authority(response: &Message) {
    assert_eq!(response.authorities.len(), 1, "{response}");
    let soa = &response.authorities[0];
    assert_eq!(soa.record_type(), RecordType::SOA);
    assert_eq!(soa.name, name("example.com."));
    // RFC 2308: min(SOA TTL 3600, MINIMUM 300).
    assert_eq!(soa.ttl, 300);
}

// ---- header and malformed queries ----

#[test]
fn header_copies_id_opcode_rd_cd_and_question_case() {
    let mut q = query("WwW.ExAmPlE.cOm.", RecordType::A);
    q.metadata.checking_disabled = true;
    q.metadata.authentic_data = true;
    let r = ask(&q);
    assert_eq!(r.id, 0x1234);
    assert_eq!(r.message_type, MessageType::Response);
    assert_eq!(r.op_code, OpCode::Query);
    assert!(r.recursion_desired && r.checking_disabled);
    assert!(!r.recursion_available && !r.authentic_data && !r.truncation);
    assert!(r.authoritative);
    assert_eq!(r.queries.len(), 1);
    assert_eq!(r.queries[0].name().to_string(), "WwW.ExAmPlE.cOm.");
    assert_eq!(rendered(&r.answers), ["www.example.com. A 192.0.2.80 3600"]);

    let mut q = query("www.example.com.", RecordType::A);
    q.metadata.recursion_desired = false;
    let r = ask(&q);
    assert!(!r.recursion_desired && !r.checking_disabled);
}

#[test]
fn z_bit_is_zero_in_response() {
    let mut bytes = query("www.example.com.", RecordType::A)
        .to_vec()
        .expect("encodes");
    bytes[3] |= 0x40; // Z
    let response = catalog()
        .respond(&bytes, Transport::Udp, CLIENT, &dynamic())
        .expect("a response");
    assert_eq!(response[3] & 0x40, 0);
}

#[test]
fn drops_short_messages_and_responses() {
    assert!(
        catalog()
            .respond(&[0u8; 11], Transport::Udp, CLIENT, &dynamic())
            .is_none()
    );
    let mut q = query("www.example.com.", RecordType::A);
    q.metadata.message_type = MessageType::Response;
    let bytes = q.to_vec().expect("encodes");
    assert!(
        catalog()
            .respond(&bytes, Transport::Udp, CLIENT, &dynamic())
            .is_none()
    );
}

#[test]
fn formerr_for_trailing_garbage_with_question_echoed() {
    let mut bytes = query("www.example.com.", RecordType::A)
        .to_vec()
        .expect("encodes");
    bytes.extend_from_slice(&[0xde, 0xad]);
    let r = respond_bytes(&bytes, Transport::Udp).expect("a response");
    assert_eq!(r.response_code, ResponseCode::FormErr);
    assert_eq!(r.queries.len(), 1);
    assert!(r.answers.is_empty() && !r.authoritative);
}

#[test]
fn formerr_for_bad_question_counts_and_truncated_question() {
    let mut none = Message::new(7, MessageType::Query, OpCode::Query);
    none.metadata.recursion_desired = true;
    let r = ask(&none);
    assert_eq!(r.response_code, ResponseCode::FormErr);
    assert!(r.queries.is_empty());

    let mut two = query("www.example.com.", RecordType::A);
    two.add_query(Query::query(name("mail.example.com."), RecordType::A));
    assert_eq!(ask(&two).response_code, ResponseCode::FormErr);

    let bytes = query("www.example.com.", RecordType::A)
        .to_vec()
        .expect("encodes");
    let r = respond_bytes(&bytes[..bytes.len() - 3], Transport::Udp).expect("a response");
    assert_eq!(r.response_code, ResponseCode::FormErr);
    assert!(r.queries.is_empty());
}

#[test]
fn formerr_for_answer_or_authority_records_in_query() {
    let mut q = query("www.example.com.", RecordType::A);
    q.add_answer(a("www.example.com.", 1, [1, 2, 3, 4]));
    assert_eq!(ask(&q).response_code, ResponseCode::FormErr);
    let mut q = query("www.example.com.", RecordType::A);
    q.add_authority(a("www.example.com.", 1, [1, 2, 3, 4]));
    assert_eq!(ask(&q).response_code, ResponseCode::FormErr);
}

#[test]
fn notimp_for_other_opcodes() {
    for opcode in [OpCode::Status, OpCode::Notify, OpCode::Update] {
        let mut q = query("www.example.com.", RecordType::SOA);
        q.metadata.op_code = opcode;
        let r = ask(&q);
        assert_eq!(r.response_code, ResponseCode::NotImp, "{opcode}");
        assert_eq!(r.op_code, opcode);
        assert!(!r.authoritative && r.answers.is_empty());
    }
}

#[test]
fn refused_for_other_class_other_zone_and_transfers() {
    let mut q = query("www.example.com.", RecordType::A);
    q.queries[0].set_query_class(DNSClass::CH);
    let r = ask(&q);
    assert_eq!(r.response_code, ResponseCode::Refused);
    assert!(!r.authoritative);

    let r = ask_q("www.example.org.", RecordType::A);
    assert_eq!(r.response_code, ResponseCode::Refused);
    assert!(!r.authoritative && r.answers.is_empty() && r.authorities.is_empty());

    for qtype in [RecordType::AXFR, RecordType::IXFR] {
        let r = ask_over(&query("example.com.", qtype), Transport::Tcp);
        assert_eq!(r.response_code, ResponseCode::Refused, "{qtype}");
    }
}

// ---- positive answers, CNAME ----

#[test]
fn exact_match_is_authoritative() {
    let r = ask_q("example.com.", RecordType::TXT);
    assert_eq!(r.response_code, ResponseCode::NoError);
    assert!(r.authoritative);
    assert_eq!(rendered(&r.answers), ["example.com. TXT v=spf1 -all 3600"]);
    assert!(r.authorities.is_empty() && r.additionals.is_empty());
}

#[test]
fn cname_chain_is_followed_inside_the_zone() {
    let r = ask_q("chain.example.com.", RecordType::A);
    assert_eq!(r.response_code, ResponseCode::NoError);
    assert!(r.authoritative);
    assert_eq!(
        types(&r.answers),
        [RecordType::CNAME, RecordType::CNAME, RecordType::A]
    );
    assert_eq!(r.answers[2].name, name("www.example.com."));
}

#[test]
fn cname_query_gets_only_the_cname() {
    let r = ask_q("alias.example.com.", RecordType::CNAME);
    assert_eq!(types(&r.answers), [RecordType::CNAME]);
}

#[test]
fn cname_out_of_zone_stops_without_leaking_the_other_zone() {
    let r = ask_q("outside.example.com.", RecordType::A);
    assert_eq!(r.response_code, ResponseCode::NoError);
    assert_eq!(
        rendered(&r.answers),
        ["outside.example.com. CNAME www.example.net. 3600"]
    );
    assert!(r.authorities.is_empty() && r.additionals.is_empty());
}

#[test]
fn dangling_cname_is_nxdomain_with_the_cname() {
    let r = ask_q("dangling.example.com.", RecordType::A);
    assert_eq!(r.response_code, ResponseCode::NXDomain);
    assert!(r.authoritative);
    assert_eq!(types(&r.answers), [RecordType::CNAME]);
    assert_soa_authority(&r);
}

#[test]
fn cname_loop_ends() {
    let r = ask_q("loop1.example.com.", RecordType::A);
    assert_eq!(r.response_code, ResponseCode::NoError);
    assert_eq!(rendered(&r.answers).len(), 2);
}

// ---- wildcards, ENT, negative answers ----

#[test]
fn wildcard_synthesizes_with_the_query_name() {
    let r = ask_q("Host.wild.example.com.", RecordType::A);
    assert!(r.authoritative);
    assert_eq!(r.response_code, ResponseCode::NoError);
    assert_eq!(
        rendered(&r.answers),
        ["host.wild.example.com. A 192.0.2.99 3600"]
    );
    let r = ask_q("a.b.wild.example.com.", RecordType::TXT);
    assert_eq!(
        rendered(&r.answers),
        ["a.b.wild.example.com. TXT wild 3600"]
    );
}

#[test]
fn wildcard_without_the_type_is_nodata() {
    let r = ask_q("host.wild.example.com.", RecordType::MX);
    assert_eq!(r.response_code, ResponseCode::NoError);
    assert!(r.answers.is_empty());
    assert_soa_authority(&r);
}

#[test]
fn wildcard_cname_is_followed() {
    let r = ask_q("x.wc.example.com.", RecordType::A);
    assert_eq!(
        rendered(&r.answers),
        [
            "www.example.com. A 192.0.2.80 3600",
            "x.wc.example.com. CNAME www.example.com. 3600",
        ]
    );
}

#[test]
fn empty_non_terminal_is_nodata_and_blocks_the_wildcard() {
    // b.c exists (it has a child) so *.c does not apply to it.
    let r = ask_q("b.c.example.com.", RecordType::A);
    assert_eq!(r.response_code, ResponseCode::NoError);
    assert!(r.answers.is_empty());
    assert_soa_authority(&r);
    // Below the ENT, the closest encloser is b.c, which has no wildcard child.
    let r = ask_q("x.b.c.example.com.", RecordType::A);
    assert_eq!(r.response_code, ResponseCode::NXDomain);
    // A sibling of the ENT gets the wildcard of c.
    let r = ask_q("y.c.example.com.", RecordType::A);
    assert_eq!(rendered(&r.answers), ["y.c.example.com. A 192.0.2.9 3600"]);
}

#[test]
fn nxdomain_and_nodata_carry_the_soa() {
    let r = ask_q("nothere.example.com.", RecordType::A);
    assert_eq!(r.response_code, ResponseCode::NXDomain);
    assert!(r.authoritative && r.answers.is_empty());
    assert_soa_authority(&r);
    let r = ask_q("www.example.com.", RecordType::AAAA);
    assert_eq!(r.response_code, ResponseCode::NoError);
    assert!(r.authoritative && r.answers.is_empty());
    assert_soa_authority(&r);
}

// ---- delegations ----

#[test]
fn referral_at_and_below_a_cut() {
    // sub.example.com. is also hosted in catalog(); a referral needs the parent alone.
    let catalog = Catalog::new(vec![zone("example.com.", ZONE)], &[]).expect("catalog");
    for qname in ["sub.example.com.", "deep.host.sub.example.com."] {
        let bytes = query(qname, RecordType::A).to_vec().expect("encodes");
        let r = Message::from_vec(
            &catalog
                .respond(&bytes, Transport::Udp, CLIENT, &dynamic())
                .expect("a response"),
        )
        .expect("decodes");
        assert_eq!(r.response_code, ResponseCode::NoError, "{qname}");
        assert!(!r.authoritative, "{qname}");
        assert!(r.answers.is_empty());
        assert_eq!(
            rendered(&r.authorities),
            [
                "sub.example.com. NS ns.sub.example.com. 3600",
                "sub.example.com. NS ns1.example.com. 3600",
            ]
        );
        assert_eq!(
            rendered(&r.additionals),
            [
                "ns.sub.example.com. A 192.0.2.53 3600",
                "ns1.example.com. A 192.0.2.1 3600",
                "ns1.example.com. AAAA 2001:db8::1 3600",
            ]
        );
    }
}

#[test]
fn ds_at_the_cut_is_answered_by_the_parent() {
    // Also when the child zone is hosted here: DS lives in the parent.
    let r = ask_q("sub.example.com.", RecordType::DS);
    assert!(r.authoritative);
    assert_eq!(types(&r.answers), [RecordType::DS]);
    // The child zone answers everything else at its apex.
    let r = ask_q("sub.example.com.", RecordType::SOA);
    assert!(r.authoritative);
    assert_eq!(r.answers[0].name, name("sub.example.com."));
    // DS below the cut is the child's business: referral (without the child hosted).
    let catalog = Catalog::new(vec![zone("example.com.", ZONE)], &[]).expect("catalog");
    let bytes = query("x.sub.example.com.", RecordType::DS)
        .to_vec()
        .expect("encodes");
    let r = Message::from_vec(
        &catalog
            .respond(&bytes, Transport::Udp, CLIENT, &dynamic())
            .expect("a response"),
    )
    .expect("decodes");
    assert!(!r.authoritative);
    assert_eq!(types(&r.authorities), [RecordType::NS, RecordType::NS]);
}

#[test]
fn ds_nodata_at_a_cut_without_ds() {
    let text = format!("{ZONE}\nnods NS ns1\n");
    let catalog = Catalog::new(vec![zone("example.com.", &text)], &[]).expect("catalog");
    let bytes = query("nods.example.com.", RecordType::DS)
        .to_vec()
        .expect("encodes");
    let r = Message::from_vec(
        &catalog
            .respond(&bytes, Transport::Udp, CLIENT, &dynamic())
            .expect("a response"),
    )
    .expect("decodes");
    assert!(r.authoritative);
    assert!(r.answers.is_empty());
    assert_soa_authority(&r);
}

#[test]
fn cname_into_a_delegation_gives_cname_and_referral() {
    let catalog = Catalog::new(vec![zone("example.com.", ZONE)], &[]).expect("catalog");
    let bytes = query("tosub.example.com.", RecordType::A)
        .to_vec()
        .expect("encodes");
    let r = Message::from_vec(
        &catalog
            .respond(&bytes, Transport::Udp, CLIENT, &dynamic())
            .expect("a response"),
    )
    .expect("decodes");
    assert!(r.authoritative); // as Knot: the CNAME is authoritative data
    assert_eq!(types(&r.answers), [RecordType::CNAME]);
    assert_eq!(types(&r.authorities), [RecordType::NS, RecordType::NS]);
    assert_eq!(r.additionals.len(), 3);
}

// ---- additional section ----

#[test]
fn additional_addresses_for_mx_srv_ns() {
    let r = ask_q("example.com.", RecordType::MX);
    assert_eq!(
        rendered(&r.additionals),
        ["mail.example.com. A 192.0.2.25 3600"]
    );
    let r = ask_q("_sip._tcp.example.com.", RecordType::SRV);
    assert_eq!(
        rendered(&r.additionals),
        ["www.example.com. A 192.0.2.80 3600"]
    );
    let r = ask_q("example.com.", RecordType::NS);
    // ns2.example.net. is in another zone: never added.
    assert_eq!(
        rendered(&r.additionals),
        [
            "ns1.example.com. A 192.0.2.1 3600",
            "ns1.example.com. AAAA 2001:db8::1 3600",
        ]
    );
}

// ---- ANY ----

#[test]
fn any_over_udp_is_one_rrset_of_the_lowest_type() {
    let r = ask_q("example.com.", RecordType::ANY);
    assert!(r.authoritative);
    assert_eq!(types(&r.answers), [RecordType::NS, RecordType::NS]);
    let r = ask_q("dyn.only.example.com.", RecordType::ANY);
    assert_eq!(
        rendered(&r.answers),
        ["dyn.only.example.com. A 198.51.100.7 30"]
    );
}

#[test]
fn any_over_tcp_is_the_whole_node() {
    let r = ask_over(&query("example.com.", RecordType::ANY), Transport::Tcp);
    let mut got = types(&r.answers);
    got.dedup();
    assert_eq!(
        got,
        [
            RecordType::NS,
            RecordType::SOA,
            RecordType::MX,
            RecordType::TXT
        ]
    );
    let r = ask_over(&query("gslb.example.com.", RecordType::ANY), Transport::Tcp);
    assert_eq!(
        rendered(&r.answers),
        [
            "gslb.example.com. A 198.51.100.1 30",
            "gslb.example.com. A 198.51.100.2 30",
            "gslb.example.com. TXT static beside dynamic 3600",
        ]
    );
}

#[test]
fn any_without_data_is_nodata() {
    let r = ask_q("b.c.example.com.", RecordType::ANY);
    assert_eq!(r.response_code, ResponseCode::NoError);
    assert!(r.answers.is_empty());
    assert_soa_authority(&r);
}

// ---- EDNS ----

#[test]
fn edns_reply_is_version_0_our_size_do_copied_no_options() {
    let mut q = with_edns(query("www.example.com.", RecordType::A), 4096);
    let edns = q.edns.as_mut().expect("edns");
    edns.set_dnssec_ok(true);
    edns.options_mut()
        .insert(EdnsOption::Unknown(u16::from(EdnsCode::Cookie), vec![1; 8]));
    edns.options_mut()
        .insert(EdnsOption::Unknown(65001, vec![9, 9]));
    let r = ask(&q);
    let edns = r.edns.as_ref().expect("OPT in response");
    assert_eq!(edns.version(), 0);
    assert_eq!(edns.max_payload(), xgslb_common::EDNS_UDP_SIZE);
    assert!(edns.flags().dnssec_ok);
    assert!(edns.options().as_ref().is_empty());
    assert_eq!(r.additionals.len(), 0);

    let r = ask(&with_edns(query("www.example.com.", RecordType::A), 1232));
    assert!(!r.edns.as_ref().expect("OPT").flags().dnssec_ok);
    assert!(ask_q("www.example.com.", RecordType::A).edns.is_none());
}

/// An A query for www whose OPT carries a COOKIE of `data`.
fn with_cookie(data: &[u8]) -> Vec<u8> {
    let mut q = with_edns(query("www.example.com.", RecordType::A), 1232);
    q.edns
        .as_mut()
        .expect("edns")
        .options_mut()
        .insert(EdnsOption::Unknown(10, data.to_vec()));
    q.to_vec().expect("query encodes")
}

/// The data of the COOKIE option of `response`.
fn cookie_of(response: &Message) -> Option<Vec<u8>> {
    response
        .edns
        .as_ref()?
        .options()
        .as_ref()
        .iter()
        .find_map(|(code, o)| match o {
            EdnsOption::Unknown(10, d) if u16::from(*code) == 10 => Some(d.clone()),
            _ => None,
        })
}

#[test]
fn cookies_are_answered_with_a_server_cookie_and_a_valid_young_one_is_echoed() {
    use std::sync::Arc;

    use crate::dns::cookies::{CookieSecret, Cookies, unix_now};
    let secret = CookieSecret::from_hex("e5e973e5a6b2a43f48e7dc849e37bfcf").unwrap();
    let cookies = Arc::new(Cookies::new(true, secret.clone(), Arc::default()));
    let catalog = catalog().with_cookies(cookies.clone());
    let ask = |q: &[u8]| {
        let r = catalog
            .respond(q, Transport::Udp, CLIENT, &dynamic())
            .unwrap();
        Message::from_vec(&r).unwrap()
    };
    let client = [9u8; 8];
    let before = unix_now();
    let r = ask(&with_cookie(&client));
    assert_eq!(r.response_code, ResponseCode::NoError);
    let got = cookie_of(&r).expect("a cookie in the response");
    assert_eq!(got[..8], client);
    let stamp = u32::from_be_bytes(got[12..16].try_into().unwrap());
    assert!((before..=unix_now()).contains(&stamp));
    assert_eq!(got[8..], secret.server_cookie(&client, CLIENT, stamp));
    // Sent back: echoed as received.
    assert_eq!(cookie_of(&ask(&with_cookie(&got))), Some(got.clone()));
    assert_eq!(cookies.counters().read(), [0, 1, 1, 0]);
    // RFC 7873 5.2.2: too short or too long is FORMERR, with no cookie.
    for len in [0, 7, 9, 15, 41] {
        let r = ask(&with_cookie(&vec![1; len]));
        assert_eq!(r.response_code, ResponseCode::FormErr, "{len} bytes");
        assert_eq!(cookie_of(&r), None);
    }
}

/// An A query for www with a client subnet option of `data` (raw: family, source, scope,
/// address).
fn with_subnet(data: &[u8]) -> Message {
    let mut q = with_edns(query("www.example.com.", RecordType::A), 1232);
    q.edns
        .as_mut()
        .expect("edns")
        .options_mut()
        .insert(EdnsOption::Unknown(8, data.to_vec()));
    q
}

#[test]
fn a_malformed_client_subnet_is_formerr_and_a_well_formed_one_is_answered() {
    // RFC 7871 7.1.1: address bits past the source prefix (198.18.1.0/23 has bit 24 set),
    // an address longer than the prefix needs, a prefix longer than the address, an
    // unknown family.
    for data in [
        &[0, 1, 23, 0, 198, 18, 1][..],
        &[0, 1, 16, 0, 198, 18, 0],
        &[0, 1, 33, 0, 198, 18, 0, 1, 0],
        &[0, 3, 0, 0],
    ] {
        let r = ask(&with_subnet(data));
        assert_eq!(r.response_code, ResponseCode::FormErr, "{data:?}");
        assert_eq!(r.queries.len(), 1, "the question echoed: {data:?}");
        assert!(r.answers.is_empty() && !r.authoritative);
    }
    // Well formed (IPv4 /24, IPv6 /56, /0): answered as without it.
    for data in [
        &[0, 1, 24, 0, 198, 18, 1][..],
        &[0, 2, 56, 0, 0x20, 0x01, 0x0d, 0xb8, 0, 0, 0],
        &[0, 1, 0, 0],
    ] {
        let r = ask(&with_subnet(data));
        assert_eq!(r.response_code, ResponseCode::NoError, "{data:?}");
        assert_eq!(
            rendered(&r.answers),
            rendered(&ask_q("www.example.com.", RecordType::A).answers)
        );
    }
}

#[test]
fn edns_version_above_0_is_badvers() {
    let mut q = with_edns(query("www.example.com.", RecordType::A), 1232);
    q.edns.as_mut().expect("edns").set_version(1);
    let r = ask(&q);
    // BADVERS and BADSIG share the value 16; the decoder names it BADSIG.
    assert_eq!(u16::from(r.response_code), 16);
    assert!(r.answers.is_empty() && !r.authoritative);
    assert_eq!(r.edns.as_ref().expect("OPT").version(), 0);
    assert_eq!(r.queries.len(), 1);
}

/// Appends a raw OPT record (owner `owner_root` ? root : "x.") and bumps ARCOUNT.
fn push_opt(bytes: &mut Vec<u8>, owner_root: bool) {
    if owner_root {
        bytes.push(0);
    } else {
        bytes.extend_from_slice(&[1, b'x', 0]);
    }
    bytes.extend_from_slice(&[0, 41, 0x04, 0xd0, 0, 0, 0, 0, 0, 0]);
    let arcount = u16::from_be_bytes([bytes[10], bytes[11]]) + 1;
    bytes[10..12].copy_from_slice(&arcount.to_be_bytes());
}

#[test]
fn two_opts_or_non_root_opt_is_formerr() {
    let mut bytes = query("www.example.com.", RecordType::A)
        .to_vec()
        .expect("encodes");
    push_opt(&mut bytes, true);
    let r = respond_bytes(&bytes, Transport::Udp).expect("a response");
    assert_eq!(r.response_code, ResponseCode::NoError); // one OPT is fine
    push_opt(&mut bytes, true);
    let r = respond_bytes(&bytes, Transport::Udp).expect("a response");
    assert_eq!(r.response_code, ResponseCode::FormErr);

    let mut bytes = query("www.example.com.", RecordType::A)
        .to_vec()
        .expect("encodes");
    push_opt(&mut bytes, false);
    let r = respond_bytes(&bytes, Transport::Udp).expect("a response");
    assert_eq!(r.response_code, ResponseCode::FormErr);
}

// ---- size limits ----

/// A zone with a TXT RRset of about `size` bytes at big.example.com.
fn big_catalog(size: usize) -> Catalog {
    let mut text = String::from(ZONE);
    for i in 0..size / 110 {
        text.push_str(&format!("big TXT \"{i:03}{}\"\n", "x".repeat(90)));
    }
    Catalog::new(vec![zone("example.com.", &text)], &[]).expect("catalog")
}

fn ask_catalog(catalog: &Catalog, message: &Message, transport: Transport) -> (usize, Message) {
    let bytes = message.to_vec().expect("encodes");
    let response = catalog
        .respond(&bytes, transport, CLIENT, &dynamic())
        .expect("a response");
    let len = response.len();
    (len, Message::from_vec(&response).expect("decodes"))
}

#[test]
fn udp_without_edns_truncates_at_512() {
    let catalog = big_catalog(800);
    let (len, r) = ask_catalog(
        &catalog,
        &query("big.example.com.", RecordType::TXT),
        Transport::Udp,
    );
    assert!(len <= 512);
    assert!(r.truncation);
    assert!(r.answers.is_empty() && r.authorities.is_empty() && r.additionals.is_empty());
    assert_eq!(r.queries.len(), 1);
    // With EDNS the same answer fits.
    let q = with_edns(query("big.example.com.", RecordType::TXT), 4096);
    let (_, r) = ask_catalog(&catalog, &q, Transport::Udp);
    assert!(!r.truncation);
    assert_eq!(r.answers.len(), 7);
}

#[test]
fn udp_with_edns_truncates_at_the_smaller_of_client_and_our_size() {
    let catalog = big_catalog(800);
    let q = with_edns(query("big.example.com.", RecordType::TXT), 600);
    let (len, r) = ask_catalog(&catalog, &q, Transport::Udp);
    assert!(len <= 600 && r.truncation && r.answers.is_empty());
    assert!(r.edns.is_some(), "the OPT stays in a truncated response");
    // A client size below 512 counts as 512.
    let q = with_edns(query("www.example.com.", RecordType::A), 100);
    let (_, r) = ask_catalog(&catalog, &q, Transport::Udp);
    assert!(!r.truncation);

    let catalog = big_catalog(2000);
    let q = with_edns(query("big.example.com.", RecordType::TXT), 4096);
    let (len, r) = ask_catalog(&catalog, &q, Transport::Udp);
    assert!(len <= 1232 && r.truncation);
    let (_, r) = ask_catalog(&catalog, &q, Transport::Tcp);
    assert!(!r.truncation);
    assert_eq!(r.answers.len(), 18);
}

#[test]
fn helpful_additional_records_are_dropped_before_truncating() {
    let r = ask_q("mx.example.com.", RecordType::MX);
    assert!(!r.truncation);
    assert_eq!(r.answers.len(), 10);
    assert!(r.additionals.is_empty(), "{r}");
    let r = ask(&with_edns(query("mx.example.com.", RecordType::MX), 1232));
    assert_eq!(r.additionals.len(), 20);
}

// ---- dynamic RRsets ----

#[test]
fn dynamic_records_replace_static_ones_in_order() {
    let r = ask_q("GSLB.example.com.", RecordType::A);
    assert!(r.authoritative);
    let got: Vec<String> = r.answers.iter().map(|r| r.data.to_string()).collect();
    assert_eq!(got, ["198.51.100.2", "198.51.100.1"]);
    assert_eq!(r.answers[0].ttl, 30);
    assert_eq!(r.answers[0].name.to_string(), "GSLB.example.com.");
    // Other static types at the name stay.
    let r = ask_q("gslb.example.com.", RecordType::TXT);
    assert_eq!(r.answers.len(), 1);
}

#[test]
fn dynamic_name_exists_without_static_records() {
    let r = ask_q("dyn.only.example.com.", RecordType::AAAA);
    assert_eq!(
        rendered(&r.answers),
        ["dyn.only.example.com. AAAA 2001:db8::7 30"]
    );
    let r = ask_q("dyn.only.example.com.", RecordType::TXT);
    assert_eq!(r.response_code, ResponseCode::NoError);
    assert_soa_authority(&r);
    // Its parent became an empty non-terminal.
    let r = ask_q("only.example.com.", RecordType::A);
    assert_eq!(r.response_code, ResponseCode::NoError);
    assert!(r.answers.is_empty());
    let r = ask_q("x.dyn.only.example.com.", RecordType::A);
    assert_eq!(r.response_code, ResponseCode::NXDomain);
}

#[test]
fn dynamic_rrset_with_no_records_is_nodata() {
    let r = ask_q("empty.example.com.", RecordType::A);
    assert_eq!(r.response_code, ResponseCode::NoError);
    assert!(r.answers.is_empty());
    assert_soa_authority(&r);
}

#[test]
fn catalog_refuses_bad_dynamic_names_and_duplicate_zones() {
    let build = |n: &str, t: RecordType| {
        Catalog::new(vec![zone("example.com.", ZONE)], &[(name(n), t)]).map(|_| ())
    };
    assert!(matches!(
        build("www.example.org.", RecordType::A),
        Err(CatalogError::DynamicOutsideZones { .. })
    ));
    assert!(matches!(
        build("sub.example.com.", RecordType::A),
        Err(CatalogError::DynamicBelowCut { .. })
    ));
    assert!(matches!(
        build("x.sub.example.com.", RecordType::AAAA),
        Err(CatalogError::DynamicBelowCut { .. })
    ));
    assert!(matches!(
        build("alias.example.com.", RecordType::A),
        Err(CatalogError::DynamicAtCname { .. })
    ));
    assert!(matches!(
        build("www.example.com.", RecordType::TXT),
        Err(CatalogError::DynamicType { .. })
    ));
    assert!(build("example.com.", RecordType::A).is_ok());
    let twice = Catalog::new(
        vec![zone("example.com.", ZONE), zone("EXAMPLE.com.", ZONE)],
        &[],
    );
    assert!(matches!(twice, Err(CatalogError::DuplicateZone { .. })));
}

#[test]
fn other_zone_answers_its_own_names_only() {
    let r = ask_q("www.example.net.", RecordType::A);
    assert!(r.authoritative);
    assert_eq!(
        rendered(&r.answers),
        ["www.example.net. A 198.51.100.80 3600"]
    );
    let r = ask_q("nothere.example.net.", RecordType::A);
    assert_eq!(r.authorities[0].name, name("example.net."));
    // A query for example.com's data shows no example.net records and vice versa.
    let r = ask_q("example.com.", RecordType::NS);
    assert!(
        r.additionals
            .iter()
            .all(|r| !r.name.to_string().ends_with("example.net."))
    );
}

/// Every dynamic RRset returns to DNS (the wide IPs' all-down behaviour).
struct AllReturnToDns;

impl DynamicAnswers for AllReturnToDns {
    fn answer(&self, _: &LowerName, _: RecordType, _: &Client) -> Scoped {
        Dynamic::ReturnToDns.into()
    }
}

#[test]
fn return_to_dns_answers_the_zone_records_or_the_wildcard_covering_the_name() {
    let dynamic = [
        (name("www.example.com."), RecordType::A),
        (name("gslb.wild.example.com."), RecordType::A),
        (name("other.example.com."), RecordType::A),
    ];
    let catalog = Catalog::new(vec![zone("example.com.", ZONE)], &dynamic).expect("catalog");
    let ask = |qname: &str| {
        let bytes = query(qname, RecordType::A).to_vec().unwrap();
        let r = catalog
            .respond(&bytes, Transport::Udp, CLIENT, &AllReturnToDns)
            .expect("a response");
        let m = Message::from_vec(&r).unwrap();
        let answers: Vec<String> = m.answers.iter().map(|r| r.data.to_string()).collect();
        (m.metadata.response_code, answers)
    };
    // The zone file's own record of the name.
    assert_eq!(
        ask("www.example.com."),
        (ResponseCode::NoError, vec!["192.0.2.80".into()])
    );
    // No record of its own, but *.wild covers it: the wildcard's.
    assert_eq!(
        ask("gslb.wild.example.com."),
        (ResponseCode::NoError, vec!["192.0.2.99".into()])
    );
    // Neither: NODATA (the name exists, as a wide IP).
    assert_eq!(ask("other.example.com."), (ResponseCode::NoError, vec![]));
}
