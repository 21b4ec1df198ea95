//! Transfers end to end without sockets: request bytes in, response messages out, checked
//! with hickory-proto (TSIG chains verified by its client-side verifier).
use std::net::IpAddr;
use std::os::unix::fs::PermissionsExt;

use hickory_proto::op::{Edns, MessageType, OpCode, Query};
use hickory_proto::rr::rdata::tsig::{TsigAlgorithm, TsigError};
use hickory_proto::rr::{DNSClass, Name, TSigner};

use super::*;
use crate::dns::Zone;

/// 32 bytes, base64; the key file's content.
const SECRET: &str = "c2VjcmV0LXNlY3JldC1zZWNyZXQtc2VjcmV0LTMyYiE=";

fn name(s: &str) -> Name {
    Name::from_ascii(s).unwrap()
}

fn zone(serial: u32, body: &str) -> Zone {
    let text = format!(
        "$TTL 300\n@ SOA ns1 host {serial} 7200 3600 86400 60\n@ NS ns1\nns1 A 198.18.0.2\n\
         app A 198.18.1.1\n{body}"
    );
    Zone::parse(&name("example.test."), &text).unwrap()
}

/// The config with the key `xfr.` and `zone_keys` in the zone example.test.
fn config(zone_keys: &str) -> (tempfile::TempDir, Config) {
    let dir = tempfile::tempdir().unwrap();
    let key = dir.path().join("xfr.key");
    std::fs::write(&key, SECRET).unwrap();
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600)).unwrap();
    let text = format!(
        "[server]\nlisten = [\"198.18.0.2:53\"]\n\
         [[tsig_key]]\nname = \"xfr.\"\nalgorithm = \"hmac-sha256\"\nsecret_file = \"xfr.key\"\n\
         [[zone]]\norigin = \"example.test.\"\nfile = \"example.test.zone\"\n{zone_keys}\n"
    );
    let cfg = Config::parse(&dir.path().join("xgslb.toml"), &text).unwrap();
    (dir, cfg)
}

/// Transfers after loading each of `zones` in turn, with `zone_keys`.
fn transfers(zone_keys: &str, zones: &[Zone]) -> Transfers {
    let (_dir, cfg) = config(zone_keys);
    let mut versions = ZoneVersions::default();
    for z in zones {
        versions = versions.updated(vec![z.clone()]).versions;
    }
    Transfers::new(&versions, &cfg, Arc::default())
}

fn signer(key: &str, secret: &[u8]) -> TSigner {
    TSigner::new(secret.to_vec(), TsigAlgorithm::HmacSha256, name(key), 300).unwrap()
}

fn good_signer() -> TSigner {
    signer("xfr.", b"secret-secret-secret-secret-32b!")
}

fn request(qtype: RecordType, zone: &str) -> Message {
    let mut m = Message::new(4242, MessageType::Query, OpCode::Query);
    m.add_query(Query::query(name(zone), qtype));
    m
}

fn ixfr(from: u32) -> Message {
    let mut m = request(RecordType::IXFR, "example.test.");
    let z = zone(from, "");
    m.add_authority(z.soa().unwrap().clone());
    m
}

fn ip(a: &str) -> IpAddr {
    a.parse().unwrap()
}

/// The TCP response's messages.
fn tcp(t: &Transfers, m: &Message, client: &str) -> Vec<Message> {
    let bytes = m.to_vec().unwrap();
    t.respond_tcp(&bytes, ip(client))
        .expect("a transfer request")
        .map(|b| Message::from_vec(&b).unwrap())
        .collect()
}

/// The records of every message, one line each.
fn lines(messages: &[Message]) -> Vec<String> {
    messages
        .iter()
        .flat_map(|m| &m.answers)
        .map(|r| match &r.data {
            RData::SOA(soa) => format!("SOA {}", soa.serial),
            data => format!("{} {} {}", r.name, r.record_type(), data),
        })
        .collect()
}

fn refused(t: &Transfers) -> Vec<(Refusal, u64)> {
    t.counters()
        .refusals()
        .into_iter()
        .filter(|r| r.1 > 0)
        .collect()
}

#[test]
fn nobody_may_transfer_a_zone_by_default() {
    let t = transfers("", &[zone(1, "")]);
    let r = tcp(
        &t,
        &request(RecordType::AXFR, "example.test."),
        "198.18.0.1",
    );
    assert_eq!(r.len(), 1);
    assert_eq!(r[0].metadata.response_code, ResponseCode::Refused);
    assert!(r[0].answers.is_empty() && !r[0].metadata.authoritative);
    assert_eq!(refused(&t), [(Refusal::NotAllowed, 1)]);
}

#[test]
fn an_allowed_client_gets_the_zone_file_with_the_soa_first_and_last() {
    let t = transfers(
        "allow_transfer = [\"198.18.0.0/24\"]",
        &[zone(7, "www TXT \"hi\"\n")],
    );
    let mut q = request(RecordType::AXFR, "example.test.");
    q.set_edns(Edns::new());
    let r = tcp(&t, &q, "198.18.0.1");
    assert_eq!(r[0].metadata.response_code, ResponseCode::NoError);
    assert!(r[0].metadata.authoritative);
    assert_eq!(r[0].queries.len(), 1);
    assert!(r[0].edns.is_some(), "an OPT for an OPT");
    let l = lines(&r);
    assert_eq!(l.first().map(String::as_str), Some("SOA 7"));
    assert_eq!(l.last().map(String::as_str), Some("SOA 7"));
    let mut middle = l[1..l.len() - 1].to_vec();
    middle.sort();
    assert_eq!(
        middle,
        [
            "app.example.test. A 198.18.1.1",
            "example.test. NS ns1.example.test.",
            "ns1.example.test. A 198.18.0.2",
            "www.example.test. TXT hi",
        ]
    );
    let served = t.counters().transfers();
    assert_eq!(
        served,
        [("example.test.".to_owned(), TransferKind::Axfr, 1)]
    );
    // Another address, another zone, and a name below the apex are refused.
    let r = tcp(
        &t,
        &request(RecordType::AXFR, "example.test."),
        "198.18.1.1",
    );
    assert_eq!(r[0].metadata.response_code, ResponseCode::Refused);
    let r = tcp(&t, &request(RecordType::AXFR, "example.org."), "198.18.0.1");
    assert_eq!(r[0].metadata.response_code, ResponseCode::NotAuth);
    let r = tcp(
        &t,
        &request(RecordType::AXFR, "app.example.test."),
        "198.18.0.1",
    );
    assert_eq!(r[0].metadata.response_code, ResponseCode::NotAuth);
    assert_eq!(
        refused(&t),
        [(Refusal::NotAllowed, 1), (Refusal::NotAuthoritative, 2)]
    );
}

#[test]
fn a_large_zone_comes_in_several_messages_each_signed_in_one_chain() {
    let body: String = (0..400)
        .map(|i| format!("h{i} TXT \"{}\"\n", "x".repeat(100)))
        .collect();
    let t = transfers(
        "allow_transfer = [\"198.18.0.1\"]\ntransfer_keys = [\"xfr.\"]",
        &[zone(3, &body)],
    );
    let mut q = request(RecordType::AXFR, "example.test.");
    let mut verifier = q.finalize(&good_signer(), tsig::now()).unwrap().unwrap();
    let bytes = q.to_vec().unwrap();
    let messages: Vec<Vec<u8>> = t.respond_tcp(&bytes, ip("198.18.0.1")).unwrap().collect();
    assert!(messages.len() > 2, "{} messages", messages.len());
    let mut records = 0;
    for (i, m) in messages.iter().enumerate() {
        let verified = verifier
            .verify(m)
            .unwrap_or_else(|e| panic!("message {i} of {}: {e}", messages.len()));
        records += verified.answers.len();
    }
    assert_eq!(records, 400 + 3 + 2, "the records, and the SOA twice");
}

#[test]
fn a_zone_with_keys_refuses_unsigned_and_wrongly_signed_requests() {
    let t = transfers(
        "allow_transfer = [\"198.18.0.0/15\"]\ntransfer_keys = [\"xfr.\"]",
        &[zone(1, "")],
    );
    let axfr = || request(RecordType::AXFR, "example.test.");
    let r = tcp(&t, &axfr(), "198.18.0.1");
    assert_eq!(r[0].metadata.response_code, ResponseCode::Refused);
    assert!(r[0].signature().is_none());

    let tsig_error = |m: &Message| m.signature().and_then(|s| s.data.error);
    let mut unknown = axfr();
    unknown
        .finalize(
            &signer("other.", b"secret-secret-secret-secret-32b!"),
            tsig::now(),
        )
        .unwrap();
    let r = tcp(&t, &unknown, "198.18.0.1");
    assert_eq!(r[0].metadata.response_code, ResponseCode::NotAuth);
    assert_eq!(tsig_error(&r[0]), Some(TsigError::BadKey));

    let mut forged = axfr();
    forged
        .finalize(
            &signer("xfr.", b"not-the-secret-not-the-secret!!!"),
            tsig::now(),
        )
        .unwrap();
    let r = tcp(&t, &forged, "198.18.0.1");
    assert_eq!(r[0].metadata.response_code, ResponseCode::NotAuth);
    assert_eq!(tsig_error(&r[0]), Some(TsigError::BadSig));

    let mut stale = axfr();
    stale.finalize(&good_signer(), tsig::now() - 1000).unwrap();
    let r = tcp(&t, &stale, "198.18.0.1");
    assert_eq!(r[0].metadata.response_code, ResponseCode::NotAuth);
    assert_eq!(tsig_error(&r[0]), Some(TsigError::BadTime));

    // The right key from an address not allowed: REFUSED, signed.
    let mut elsewhere = axfr();
    let mut verifier = elsewhere
        .finalize(&good_signer(), tsig::now())
        .unwrap()
        .unwrap();
    let bytes = elsewhere.to_vec().unwrap();
    let r: Vec<Vec<u8>> = t.respond_tcp(&bytes, ip("192.0.2.1")).unwrap().collect();
    let m = verifier.verify(&r[0]).expect("a signed refusal");
    assert_eq!(m.metadata.response_code, ResponseCode::Refused);

    let mut good = axfr();
    good.finalize(&good_signer(), tsig::now()).unwrap();
    let r = tcp(&t, &good, "198.18.0.1");
    assert_eq!(r[0].metadata.response_code, ResponseCode::NoError);
    assert_eq!(
        refused(&t),
        [
            (Refusal::NotAllowed, 1),
            (Refusal::KeyRequired, 1),
            (Refusal::BadKey, 1),
            (Refusal::BadSig, 1),
            (Refusal::BadTime, 1),
        ]
    );
}

#[test]
fn ixfr_sends_the_differences_from_a_known_serial_else_the_zone_or_the_soa() {
    let t = transfers(
        "allow_transfer = [\"198.18.0.1\"]",
        &[
            zone(1, "www A 198.18.1.10\n"),
            zone(1, "www A 198.18.1.11\n"),
            zone(1, "www A 198.18.1.11\nnew TXT \"n\"\n"),
        ],
    );
    let r = tcp(&t, &ixfr(1), "198.18.0.1");
    assert_eq!(
        lines(&r),
        [
            "SOA 3",
            "SOA 1",
            "www.example.test. A 198.18.1.10",
            "SOA 2",
            "www.example.test. A 198.18.1.11",
            "SOA 2",
            "SOA 3",
            "new.example.test. TXT n",
            "SOA 3",
        ]
    );
    assert_eq!(lines(&tcp(&t, &ixfr(3), "198.18.0.1")), ["SOA 3"]);
    let full = lines(&tcp(&t, &ixfr(0), "198.18.0.1"));
    assert_eq!(full.len(), 7, "{full:?}");
    assert_eq!((full[0].as_str(), full[6].as_str()), ("SOA 3", "SOA 3"));
    // No SOA in the authority section: FORMERR.
    let r = tcp(
        &t,
        &request(RecordType::IXFR, "example.test."),
        "198.18.0.1",
    );
    assert_eq!(r[0].metadata.response_code, ResponseCode::FormErr);
    let kinds: Vec<TransferKind> = t.counters().transfers().iter().map(|t| t.1).collect();
    assert_eq!(
        kinds,
        [
            TransferKind::Ixfr,
            TransferKind::IxfrFull,
            TransferKind::IxfrUpToDate
        ]
    );
}

#[test]
fn over_udp_an_ixfr_gets_the_soa_and_anything_else_goes_to_the_catalog() {
    let t = transfers(
        "allow_transfer = [\"198.18.0.1\"]",
        &[zone(1, ""), zone(1, "x A 198.18.1.2\n")],
    );
    let bytes = ixfr(1).to_vec().unwrap();
    let r = Message::from_vec(&t.respond_udp(&bytes, ip("198.18.0.1")).unwrap()).unwrap();
    assert_eq!(r.metadata.response_code, ResponseCode::NoError);
    assert_eq!(lines(&[r]), ["SOA 2"]);
    let r = Message::from_vec(&t.respond_udp(&bytes, ip("198.18.0.9")).unwrap()).unwrap();
    assert_eq!(r.metadata.response_code, ResponseCode::Refused);
    for q in [
        request(RecordType::AXFR, "example.test."),
        request(RecordType::SOA, "example.test."),
    ] {
        let bytes = q.to_vec().unwrap();
        assert!(t.respond_udp(&bytes, ip("198.18.0.1")).is_none());
        if q.queries[0].query_type() == RecordType::SOA {
            assert!(t.respond_tcp(&bytes, ip("198.18.0.1")).is_none());
        }
    }
}

#[test]
fn transfer_type_looks_only_at_standard_queries_with_one_question() {
    let bytes = |m: &Message| m.to_vec().unwrap();
    assert_eq!(
        transfer_type(&bytes(&request(RecordType::AXFR, "a.b."))),
        Some(RecordType::AXFR)
    );
    assert_eq!(transfer_type(&bytes(&ixfr(1))), Some(RecordType::IXFR));
    assert_eq!(transfer_type(&bytes(&request(RecordType::A, "a.b."))), None);
    let mut notify = request(RecordType::AXFR, "a.b.");
    notify.metadata.op_code = OpCode::Notify;
    assert_eq!(transfer_type(&bytes(&notify)), None);
    let mut response = request(RecordType::AXFR, "a.b.");
    response.metadata.message_type = MessageType::Response;
    assert_eq!(transfer_type(&bytes(&response)), None);
    let mut two = request(RecordType::AXFR, "a.b.");
    two.add_query(Query::query(name("c.d."), RecordType::AXFR));
    assert_eq!(transfer_type(&bytes(&two)), None);
    let full = bytes(&request(RecordType::AXFR, "a.b."));
    for cut in 0..full.len() {
        assert_eq!(transfer_type(&full[..cut]), None, "cut at {cut}");
    }
    let mut chaos = request(RecordType::AXFR, "a.b.");
    chaos.queries[0].set_query_class(DNSClass::CH);
    assert_eq!(
        transfer_type(&bytes(&chaos)),
        None,
        "the catalog refuses other classes"
    );
}
