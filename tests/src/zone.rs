//! A small zone for the XDP fixtures and the in-kernel bench, its plan (precomputed answers
//! and answer sets, made by the real planner), and the responses XDP must give for it, written
//! out by hand: independent of the code that precomputes them.
use hickory_proto::rr::{Name, RecordType};
use xgslb::{
    dns::{Catalog, Zone},
    plan::{plan, snapshot::SetEntry, static_entries},
};
use xgslb_common::Entry;

use crate::frame::{dns_reply, rr_at_question, wire_name};

/// The zone (tests/fixtures, which the precompute unit tests extend). The expected bytes
/// below depend on every line.
pub const ZONE: &str = include_str!("../fixtures/small.example.test.zone");
/// The apex's wire length.
const APEX_LEN: usize = 14;
/// The negative TTL: min(SOA TTL, MINIMUM).
const NEGATIVE_TTL: u32 = 300;

/// The entries of ZONE with `sets` (answer sets whose names are in it) as the planner makes
/// them.
pub fn entries(sets: &[SetEntry]) -> Vec<Entry> {
    let dynamic: Vec<(Name, RecordType)> = sets.iter().map(|s| (s.0.clone(), s.1)).collect();
    let origin = Name::from_ascii("example.test.").expect("origin");
    let zone = Zone::parse(&origin, ZONE).expect("the test zone parses");
    let catalog = Catalog::new(vec![zone], &dynamic).expect("catalog");
    plan(&static_entries(&catalog.precompute()), sets)
}

/// SOA rdata with both names compressed to the apex at message offset `apex`.
fn soa_rdata_compressed(apex: u8) -> Vec<u8> {
    let mut r = vec![3, b'n', b's', b'1', 0xc0, apex];
    r.extend_from_slice(b"\x0ahostmaster");
    r.extend_from_slice(&[0xc0, apex]);
    r.extend_from_slice(&soa_numbers());
    r
}

/// SOA rdata with both names in full (the NXDOMAIN tail stands alone).
fn soa_rdata_full() -> Vec<u8> {
    let mut r = b"\x03ns1\x07example\x04test\x00".to_vec();
    r.extend_from_slice(b"\x0ahostmaster\x07example\x04test\x00");
    r.extend_from_slice(&soa_numbers());
    r
}

fn soa_numbers() -> Vec<u8> {
    [1u32, 7200, 900, 1_209_600, 300]
        .iter()
        .flat_map(|v| v.to_be_bytes())
        .collect()
}

/// A record owned by a compression pointer to message offset `at`.
fn rr_at(at: u8, rtype: u16, ttl: u32, rdata: &[u8]) -> Vec<u8> {
    let mut r = vec![0xc0, at];
    r.extend_from_slice(&rtype.to_be_bytes());
    r.extend_from_slice(&[0, 1]);
    r.extend_from_slice(&ttl.to_be_bytes());
    r.extend_from_slice(&(rdata.len() as u16).to_be_bytes());
    r.extend_from_slice(rdata);
    r
}

/// Offset of the apex inside the question `name` (spelt as in the query).
fn apex_at(name: &str) -> u8 {
    (12 + wire_name(name).len() - APEX_LEN) as u8
}

/// NODATA for `name` (a name of ZONE, as the query spells it) to the DNS `query`.
pub fn nodata(query: &[u8], name: &str, opt_do: Option<bool>) -> Vec<u8> {
    let apex = apex_at(name);
    let soa = rr_at(apex, 6, NEGATIVE_TTL, &soa_rdata_compressed(apex));
    dns_reply(
        query,
        wire_name(name).len(),
        0x0400,
        [0, 1, 0],
        &soa,
        opt_do,
    )
}

/// NXDOMAIN for `name` (below ZONE's apex, as the query spells it) to the DNS `query`.
pub fn nxdomain(query: &[u8], name: &str, opt_do: Option<bool>) -> Vec<u8> {
    let apex = apex_at(name);
    let soa = rr_at(apex, 6, NEGATIVE_TTL, &soa_rdata_full());
    dns_reply(
        query,
        wire_name(name).len(),
        0x0400 | 3,
        [0, 1, 0],
        &soa,
        opt_do,
    )
}

/// The apex's MX to the DNS `query`, with mail's address in additional (its owner points
/// into the MX rdata).
pub fn apex_mx(query: &[u8], opt_do: Option<bool>) -> Vec<u8> {
    let len = wire_name("example.test").len();
    let mut records = rr_at_question(15, 3600, b"\x00\x0a\x04mail\xc0\x0c");
    let mail_at = (12 + len + 4 + 12 + 2) as u8;
    records.extend(rr_at(mail_at, 1, 3600, &[198, 18, 0, 25]));
    dns_reply(query, len, 0x0400, [1, 0, 1], &records, opt_do)
}
