//! The responses of the catalog that do not depend on the client, as wire bytes that follow
//! the echoed question: what the XDP program copies into its answers. Each is made by the
//! same handler that answers the slow path's queries (a query for the lowercased name), so
//! both paths give the same response; a response that asks for a dynamic (GSLB) answer on
//! the way, or that the handler would truncate, is marked for the slow path instead.
//!
//! For every name that exists in a zone (empty non-terminals included, each in its deepest
//! zone) there are three kinds of response: its static RRsets by type, any other type
//! (NODATA), and a name below it that does not exist (NXDOMAIN), when nothing (a wildcard,
//! a CNAME, a zone cut) makes them depend on more than the name.
use std::cell::Cell;
use std::net::{IpAddr, Ipv4Addr};

use hickory_proto::op::{Edns, Message, MessageType, OpCode, Query};
use hickory_proto::rr::{LowerName, Name, RData, RecordType};
use hickory_proto::serialize::binary::{BinEncodable, BinEncoder};

use super::authority::Catalog;
use super::handler::{Client, Dynamic, DynamicAnswers, Scoped, Transport};

/// What a (name, kind) is answered with.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Precomputed {
    /// These bytes after the question.
    Wire(WireTail),
    /// Whatever the slow path answers (it depends on the client or the query).
    SlowPath,
}

/// A response after its question.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WireTail {
    /// AA and RCODE bits of the header.
    pub flags: u16,
    pub an: u16,
    pub ns: u16,
    /// Additional records, the OPT not included.
    pub ar: u16,
    pub bytes: Vec<u8>,
    /// A compression pointer at this offset of `bytes` points at the question name's suffix
    /// of this wire length (zero in `bytes`; the writer fills it in).
    pub fix: Option<(usize, usize)>,
}

/// Which responses of a name.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Precompute {
    /// The name and this type.
    Type(u16),
    /// Any type the name has no `Type` entry for.
    OtherType,
    /// A name below it that does not exist.
    Child,
}

/// One precomputed response.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Prepared {
    /// Lowercased.
    pub name: Name,
    pub what: Precompute,
    pub answer: Precomputed,
}

/// A type no zone uses (private use, RFC 6895): the probe for "any other type".
const PROBE_TYPE: u16 = 65280;
const FLAG_AA: u16 = 0x0400;
const FLAG_TC: u16 = 0x0200;
const RCODE_MASK: u16 = 0x000f;
const NXDOMAIN: u16 = 3;
/// The OPT of the probe queries' responses: root owner, type 41, our size, no flags, no data.
const PROBE_OPT: [u8; 11] = [
    0,
    0,
    41,
    (xgslb_common::EDNS_UDP_SIZE >> 8) as u8,
    xgslb_common::EDNS_UDP_SIZE as u8,
    0,
    0,
    0,
    0,
    0,
    0,
];

/// A dynamic-answer source that only notes it was asked: a response that needed it depends
/// on the client.
#[derive(Default)]
struct Tripwire(Cell<bool>);

impl DynamicAnswers for Tripwire {
    fn answer(&self, _: &LowerName, _: RecordType, _: &Client) -> Scoped {
        self.0.set(true);
        Dynamic::ServFail.into()
    }
}

impl Catalog {
    /// Every precomputed response of every zone (names the caller cannot key, too long or
    /// with too many labels, are its to leave out).
    pub fn precompute(&self) -> Vec<Prepared> {
        let mut out = Vec::new();
        for zone in self.zones() {
            for (lname, node) in &zone.nodes {
                // A name in two zones (a cut in the parent, the apex of the child) is
                // answered from the deeper one, as the slow path does.
                if self.zone_origin_for(lname).as_ref() != Some(&zone.origin) {
                    continue;
                }
                let name = Name::from(lname);
                let push = |out: &mut Vec<Prepared>, what, answer| {
                    out.push(Prepared {
                        name: name.clone(),
                        what,
                        answer,
                    })
                };
                if zone.cut_at_or_above(lname).is_some() {
                    // Referrals (and DS at the cut, which the XDP program never answers).
                    push(&mut out, Precompute::OtherType, Precomputed::SlowPath);
                    push(&mut out, Precompute::Child, Precomputed::SlowPath);
                    continue;
                }
                for &t in node.rrsets.keys() {
                    if xgslb_common::qtype::answerable(t) {
                        let answer = self.probe(&name, t);
                        push(&mut out, Precompute::Type(t), answer);
                    }
                }
                let other = if node.rrset(RecordType::CNAME).is_some() {
                    // The chain's end depends on the type asked.
                    Precomputed::SlowPath
                } else {
                    match self.probe(&name, PROBE_TYPE) {
                        Precomputed::Wire(w) if w.an == 0 && w.flags & RCODE_MASK == 0 => {
                            Precomputed::Wire(w)
                        }
                        _ => Precomputed::SlowPath,
                    }
                };
                push(&mut out, Precompute::OtherType, other);
                let wildcard = Name::from(lname)
                    .prepend_label("*")
                    .ok()
                    .is_some_and(|w| zone.nodes.contains_key(&LowerName::new(&w)));
                let child = if wildcard {
                    Precomputed::SlowPath
                } else {
                    nxdomain(&zone.negative_soa, &zone.origin)
                };
                push(&mut out, Precompute::Child, child);
            }
        }
        out
    }

    /// The slow path's response to a query for `name`/`qtype` (with an OPT, so nothing is
    /// left out for size), cut after the question, or `SlowPath`.
    fn probe(&self, name: &Name, qtype: u16) -> Precomputed {
        let mut query = Message::new(0, MessageType::Query, OpCode::Query);
        query.add_query(Query::query(name.clone(), RecordType::from(qtype)));
        let mut edns = Edns::new();
        edns.set_max_payload(xgslb_common::EDNS_UDP_SIZE);
        query.set_edns(edns);
        let Ok(bytes) = query.to_vec() else {
            return Precomputed::SlowPath;
        };
        let trip = Tripwire::default();
        let client = IpAddr::V4(Ipv4Addr::UNSPECIFIED);
        let Some(response) = self.respond(&bytes, Transport::Udp, client, &trip) else {
            return Precomputed::SlowPath;
        };
        if trip.0.get() {
            return Precomputed::SlowPath;
        }
        tail_of(&response).unwrap_or(Precomputed::SlowPath)
    }
}

/// The part of `response` after its question, without its final OPT.
fn tail_of(response: &[u8]) -> Option<Precomputed> {
    let be16 = |i: usize| -> Option<u16> {
        Some(u16::from_be_bytes([
            *response.get(i)?,
            *response.get(i + 1)?,
        ]))
    };
    let flags = be16(2)?;
    if flags & FLAG_TC != 0 {
        return None;
    }
    let (an, ns, ar) = (be16(6)?, be16(8)?, be16(10)?);
    // The question's name as sent: labels up to the root (the probes never compress it).
    let mut at = 12;
    loop {
        let len = *response.get(at)? as usize;
        if len & 0xc0 != 0 {
            return None;
        }
        at += 1 + len;
        if len == 0 {
            break;
        }
    }
    let question_end = at + 4;
    let opt_at = response.len().checked_sub(PROBE_OPT.len())?;
    if ar == 0 || opt_at < question_end || response[opt_at..] != PROBE_OPT {
        return None;
    }
    Some(Precomputed::Wire(WireTail {
        flags: flags & (FLAG_AA | RCODE_MASK),
        an,
        ns,
        ar: ar - 1,
        bytes: response[question_end..opt_at].to_vec(),
        fix: None,
    }))
}

/// NXDOMAIN below a name of the zone at `origin`: the negative SOA in authority, its owner a
/// pointer to the question name's suffix that is the apex (the writer places it).
fn nxdomain(soa: &hickory_proto::rr::Record, origin: &LowerName) -> Precomputed {
    let RData::SOA(data) = &soa.data else {
        return Precomputed::SlowPath;
    };
    let mut rdata = Vec::new();
    let mut encoder = BinEncoder::new(&mut rdata);
    // No compression inside: the rdata must stand alone wherever it lands.
    encoder.set_canonical_form(true);
    if data.emit(&mut encoder).is_err() {
        return Precomputed::SlowPath;
    }
    let Ok(apex) = Name::from(origin).to_bytes() else {
        return Precomputed::SlowPath;
    };
    let Ok(rdlen) = u16::try_from(rdata.len()) else {
        return Precomputed::SlowPath;
    };
    let mut bytes = vec![0, 0]; // the owner pointer
    bytes.extend_from_slice(&u16::from(RecordType::SOA).to_be_bytes());
    bytes.extend_from_slice(&1u16.to_be_bytes()); // IN
    bytes.extend_from_slice(&soa.ttl.to_be_bytes());
    bytes.extend_from_slice(&rdlen.to_be_bytes());
    bytes.extend_from_slice(&rdata);
    Precomputed::Wire(WireTail {
        flags: FLAG_AA | NXDOMAIN,
        an: 0,
        ns: 1,
        ar: 0,
        bytes,
        fix: Some((0, apex.len())),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dns::Zone;

    /// The XDP fixtures' zone (tests/fixtures) and names only these tests ask about.
    const ZONE: &str = concat!(
        include_str!("../../../tests/fixtures/small.example.test.zone"),
        r#"ftp     IN CNAME www
*.shop  IN A   198.18.0.80
lab     IN NS  ns.lab
ns.lab  IN A   198.18.0.53
a.b.c   IN TXT "deep"
"#
    );

    fn catalog(dynamic: &[(Name, RecordType)]) -> Catalog {
        let origin = Name::from_ascii("example.test.").unwrap();
        let zone = Zone::parse(&origin, ZONE).unwrap();
        Catalog::new(vec![zone], dynamic).unwrap()
    }

    fn find<'a>(p: &'a [Prepared], name: &str, what: Precompute) -> &'a Precomputed {
        let name = Name::from_ascii(name).unwrap();
        &p.iter()
            .find(|x| x.name == name && x.what == what)
            .unwrap_or_else(|| panic!("{name} {what:?} not precomputed"))
            .answer
    }

    #[test]
    fn static_rrsets_nodata_and_nxdomain_are_precomputed() {
        let p = catalog(&[]).precompute();
        let Precomputed::Wire(mx) = find(&p, "example.test.", Precompute::Type(15)) else {
            panic!("MX not precomputed");
        };
        // The MX and mail's address in additional.
        assert_eq!((mx.an, mx.ns, mx.ar, mx.flags), (1, 0, 1, FLAG_AA));
        let Precomputed::Wire(nodata) = find(&p, "mail.example.test.", Precompute::OtherType)
        else {
            panic!("NODATA not precomputed");
        };
        assert_eq!((nodata.an, nodata.ns, nodata.flags), (0, 1, FLAG_AA));
        let Precomputed::Wire(nx) = find(&p, "example.test.", Precompute::Child) else {
            panic!("NXDOMAIN not precomputed");
        };
        assert_eq!(nx.flags, FLAG_AA | NXDOMAIN);
        assert_eq!(nx.fix, Some((0, 14)));
        // Empty non-terminals exist: NODATA for them, NXDOMAIN below them.
        assert!(matches!(
            find(&p, "b.c.example.test.", Precompute::OtherType),
            Precomputed::Wire(_)
        ));
    }

    #[test]
    fn what_depends_on_more_than_the_name_goes_to_the_slow_path() {
        let mail = Name::from_ascii("mail.example.test.").unwrap();
        let p = catalog(&[(mail, RecordType::A)]).precompute();
        // MX's additional data would hold a GSLB answer.
        assert_eq!(
            find(&p, "example.test.", Precompute::Type(15)),
            &Precomputed::SlowPath
        );
        // A CNAME's chain depends on the type; a wildcard stands in below shop; lab is cut.
        for (name, what) in [
            ("ftp.example.test.", Precompute::OtherType),
            ("shop.example.test.", Precompute::Child),
            ("lab.example.test.", Precompute::OtherType),
            ("lab.example.test.", Precompute::Child),
            ("ns.lab.example.test.", Precompute::OtherType),
        ] {
            assert_eq!(
                find(&p, name, what),
                &Precomputed::SlowPath,
                "{name} {what:?}"
            );
        }
        // The CNAME itself is static.
        assert!(matches!(
            find(&p, "ftp.example.test.", Precompute::Type(5)),
            Precomputed::Wire(_)
        ));
    }
}
