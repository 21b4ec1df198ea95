//! The agent metric protocol, defined once for both ends (xgslb-agent encodes, xgslbd
//! verifies and decodes): versioned binary UDP datagrams carrying typed records of health,
//! load and LDNS path metrics, authenticated with HMAC-SHA256 (RustCrypto `hmac`, `sha2`).
//!
//! # Datagram (all integers big-endian)
//! ```text
//! offset size
//!  0      4   magic "XGSM"
//!  4      1   version (1)
//!  5      1   kind: 1 report (agent -> EDNS), 2 reply (EDNS -> agent), 3 peer (EDNS ->
//!             EDNS; the agent id field carries the sending EDNS's name)
//!  6      2   reserved, zero
//!  8      4   key id
//! 12      8   sequence (per agent and key, strictly increasing)
//! 20      8   timestamp, milliseconds since the Unix epoch
//! 28      1   agent id length N (1..=63), then N bytes of agent id (UTF-8)
//!  .      1   site length M (0..=63), then M bytes of site name
//!  .      2   record count
//!  .          records: type (1), length (2), value (length bytes)
//! end-32 32   HMAC-SHA256 tag over every byte before it
//! ```
//! Records (strings are a length byte then UTF-8; unknown record types are skipped, so a
//! newer agent can talk to an older EDNS):
//! - 1 health: VS name, up (1 byte: 0 down, 1 up)
//! - 2 load: VS name, presence bits (1 byte: bit 0 connections, 1 packets/s, 2 kbit/s, 3 cpu,
//!   4 capacity, 5 score; bits 6 and 7 zero), then each present value in that order: u64,
//!   u64, u64, u16 (cpu in hundredths of a percent, <= 10000), u64, u64
//! - 3 path: family (4 or 6), prefix length, address (4 or 16 bytes), RTT in microseconds
//!   (u32), hops (u8), completion in ten-thousandths (u16, <= 10000)
//! - 4 probe request (replies only): family, prefix length, address: an LDNS prefix the EDNS
//!   wants probed
//! - 5 to 9, peer records (peer datagrams only): see [`peer`]
//!
//! Names (agent id, site, VS) are 1..=63 bytes of UTF-8 without control characters; only a
//! reply's site may be empty. Health, load and path records travel in reports, probe
//! requests in replies. A record's length must be exactly what its fields take, a prefix's
//! host bits must be zero (length <= 32 or 128), and the record count must account for every
//! byte up to the tag. Anything else that verifies is `Malformed`.
//!
//! A datagram is at most [`MAX_DATAGRAM`] bytes; [`encode`] splits larger reports over
//! consecutive sequence numbers (every record fits one datagram: the longest header is 158
//! bytes, the longest record 860, a peer decision). A report with no records is a heartbeat.
use std::net::IpAddr;

use hmac::{Hmac, Mac};
use ipnet::IpNet;
use sha2::Sha256;

pub use crate::secret::Key;

#[path = "wire_peer.rs"]
pub mod peer;
pub use peer::PeerRecord;

/// First bytes of every datagram.
pub const MAGIC: [u8; 4] = *b"XGSM";
/// The protocol version this build speaks.
pub const VERSION: u8 = 1;
/// Largest datagram, tag included: fits a 1500-byte MTU with IPv6 and UDP headers.
pub const MAX_DATAGRAM: usize = 1400;
/// Length of the HMAC-SHA256 tag.
pub const TAG_LEN: usize = 32;

/// What a datagram is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// Metrics from an agent.
    Report = 1,
    /// The EDNS's answer to a report: which LDNS prefixes to probe.
    Reply = 2,
    /// From one EDNS to another (peer records).
    Peer = 3,
}

/// The header fields every datagram carries.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Header {
    pub kind: Kind,
    pub key_id: u32,
    pub sequence: u64,
    pub timestamp_ms: u64,
    pub agent: String,
    pub site: String,
}

/// Load of one virtual server; absent fields are unknown. Also as the state file keeps it.
#[derive(Clone, Copy, Debug, Default, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Load {
    pub connections: Option<u64>,
    pub packets_per_second: Option<u64>,
    pub kilobits_per_second: Option<u64>,
    /// Percent, 0..=100 (carried in hundredths).
    pub cpu_percent: Option<f64>,
    pub capacity: Option<u64>,
    pub score: Option<u64>,
}

/// One typed record.
#[derive(Clone, Debug, PartialEq)]
pub enum Record {
    Health {
        vs: String,
        up: bool,
    },
    Load {
        vs: String,
        load: Load,
    },
    Path {
        ldns: IpNet,
        rtt_us: u32,
        hops: u8,
        /// 0..=1 (carried in ten-thousandths).
        completion: f64,
    },
    ProbeRequest {
        ldns: IpNet,
    },
    /// What EDNSs tell each other.
    Peer(PeerRecord),
}

/// A decoded, verified datagram.
#[derive(Clone, Debug, PartialEq)]
pub struct Datagram {
    pub header: Header,
    pub records: Vec<Record>,
}

/// Why a datagram was refused. Each reason is counted separately by the ingest.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Reject {
    /// Shorter than a header and a tag.
    Truncated,
    /// Longer than `MAX_DATAGRAM`.
    Oversized,
    /// Not our magic.
    BadMagic,
    /// A version this build does not speak.
    BadVersion,
    /// A key id no key is configured for.
    UnknownKey,
    /// The tag does not verify (forged, corrupted, or the wrong secret).
    BadTag,
    /// Fields or records whose lengths do not add up, or values out of range.
    Malformed,
    /// A sequence number already seen (or older than the replay window).
    Replayed,
    /// A timestamp too far from the receiver's clock.
    Stale,
    /// The agent's key is bound to another site than the one it reports for.
    WrongSite,
    /// A report names a virtual server the EDNS does not know, or one at another site than
    /// the report's (so a report for a site the EDNS does not know is refused too).
    UnknownVs,
}

impl Reject {
    /// Every reason, in counter order.
    pub const ALL: [Reject; 11] = [
        Reject::Truncated,
        Reject::Oversized,
        Reject::BadMagic,
        Reject::BadVersion,
        Reject::UnknownKey,
        Reject::BadTag,
        Reject::Malformed,
        Reject::Replayed,
        Reject::Stale,
        Reject::WrongSite,
        Reject::UnknownVs,
    ];

    /// Its position in [`Reject::ALL`] (a counter index).
    pub const fn index(self) -> usize {
        self as usize
    }

    /// Stable snake_case name for stats.
    pub const fn name(self) -> &'static str {
        match self {
            Reject::Truncated => "truncated",
            Reject::Oversized => "oversized",
            Reject::BadMagic => "bad_magic",
            Reject::BadVersion => "bad_version",
            Reject::UnknownKey => "unknown_key",
            Reject::BadTag => "bad_tag",
            Reject::Malformed => "malformed",
            Reject::Replayed => "replayed",
            Reject::Stale => "stale",
            Reject::WrongSite => "wrong_site",
            Reject::UnknownVs => "unknown_vs",
        }
    }
}

/// Longest name on the wire (agent id, site, virtual server), in bytes.
pub const MAX_NAME: usize = 63;
/// The fixed part of the header: magic to timestamp.
const FIXED: usize = 28;
/// The shortest datagram: the fixed header, a 1-byte agent id, an empty site, a record
/// count and a tag.
pub const MIN_DATAGRAM: usize = FIXED + 2 + 1 + 2 + TAG_LEN;

const REC_HEALTH: u8 = 1;
const REC_LOAD: u8 = 2;
const REC_PATH: u8 = 3;
const REC_PROBE: u8 = 4;

// Presence bits of a load record, in value order.
const LOAD_CONNECTIONS: u8 = 1 << 0;
const LOAD_PPS: u8 = 1 << 1;
const LOAD_KBPS: u8 = 1 << 2;
const LOAD_CPU: u8 = 1 << 3;
const LOAD_CAPACITY: u8 = 1 << 4;
const LOAD_SCORE: u8 = 1 << 5;
const LOAD_ALL: u8 = (1 << 6) - 1;

type HmacSha256 = Hmac<Sha256>;

/// Whether `s` can be a name on the wire: 1..=63 bytes of UTF-8 without control characters
/// (`allow_empty` admits the empty string, for the site of a reply).
pub fn valid_name(s: &str, allow_empty: bool) -> bool {
    (s.len() <= MAX_NAME) && (allow_empty || !s.is_empty()) && !s.chars().any(char::is_control)
}

/// Whether `encode` can write `header`: agent id 1..=63 bytes, site 1..=63 bytes in a
/// report or a peer datagram (0..=63 in a reply). Anything else is `Malformed`.
pub fn check_header(header: &Header) -> Result<(), Reject> {
    if valid_name(&header.agent, false) && valid_name(&header.site, header.kind == Kind::Reply) {
        Ok(())
    } else {
        Err(Reject::Malformed)
    }
}

/// Whether `record` may travel in a datagram of `kind`: health, load and path records in
/// reports, probe requests in replies, peer records in peer datagrams, VS names 1..=63
/// bytes. Anything else is `Malformed`.
pub fn check_record(kind: Kind, record: &Record) -> Result<(), Reject> {
    let ok = match (kind, record) {
        (Kind::Report, Record::Health { vs, .. } | Record::Load { vs, .. }) => {
            valid_name(vs, false)
        }
        (Kind::Report, Record::Path { .. }) | (Kind::Reply, Record::ProbeRequest { .. }) => true,
        (Kind::Peer, Record::Peer(r)) => peer::check(r),
        _ => false,
    };
    if ok { Ok(()) } else { Err(Reject::Malformed) }
}

/// Splits `records` into datagrams of at most `MAX_DATAGRAM` bytes, each with `header`
/// (sequence numbers `header.sequence`, +1, +2, ...), tagged with `key`. Returns the
/// datagrams; the caller advances its sequence by their count.
///
/// Always at least one datagram (an empty report is a heartbeat), unless the header fails
/// [`check_header`]: then none. Records that fail [`check_record`] are left out; values out
/// of range are clamped (cpu to 0..=100, completion to 0..=1; NaN cpu is left out, NaN
/// completion is 0) and prefixes are truncated to their network, so that whatever is sent
/// decodes.
pub fn encode(header: &Header, records: &[Record], key: &Key) -> Vec<Vec<u8>> {
    if check_header(header).is_err() {
        return Vec::new();
    }
    let Ok(mac) = HmacSha256::new_from_slice(&key.secret) else {
        return Vec::new();
    };
    let head_len = FIXED + 1 + header.agent.len() + 1 + header.site.len() + 2;
    let room = MAX_DATAGRAM - TAG_LEN - head_len;
    let encoded: Vec<Vec<u8>> = records
        .iter()
        .filter(|r| check_record(header.kind, r).is_ok())
        .map(encode_record)
        .collect();

    // Group records greedily; every record fits an empty datagram (at most 110 bytes
    // against at least 1210 of room), so each group is non-empty or the only one.
    let mut groups: Vec<Vec<&[u8]>> = vec![Vec::new()];
    let mut used = 0;
    for rec in &encoded {
        let full = groups.last().is_some_and(|g| !g.is_empty()) && used + rec.len() > room;
        if full {
            groups.push(Vec::new());
            used = 0;
        }
        used += rec.len();
        if let Some(g) = groups.last_mut() {
            g.push(rec);
        }
    }

    let mut out = Vec::with_capacity(groups.len());
    for (i, group) in groups.iter().enumerate() {
        let mut d = Vec::with_capacity(MAX_DATAGRAM);
        d.extend_from_slice(&MAGIC);
        d.push(VERSION);
        d.push(header.kind as u8);
        d.extend_from_slice(&[0, 0]);
        d.extend_from_slice(&header.key_id.to_be_bytes());
        d.extend_from_slice(&header.sequence.wrapping_add(i as u64).to_be_bytes());
        d.extend_from_slice(&header.timestamp_ms.to_be_bytes());
        put_str(&mut d, &header.agent);
        put_str(&mut d, &header.site);
        d.extend_from_slice(&(group.len() as u16).to_be_bytes());
        for rec in group {
            d.extend_from_slice(rec);
        }
        let mut mac = mac.clone();
        mac.update(&d);
        d.extend_from_slice(&mac.finalize().into_bytes());
        debug_assert!(d.len() <= MAX_DATAGRAM);
        out.push(d);
    }
    out
}

/// A length byte, then the bytes (the caller has checked the length).
fn put_str(d: &mut Vec<u8>, s: &str) {
    d.push(s.len() as u8);
    d.extend_from_slice(s.as_bytes());
}

fn put_prefix(d: &mut Vec<u8>, p: &IpNet) {
    let (family, len, addr) = prefix_parts(&p.trunc());
    d.push(family);
    d.push(len);
    match addr {
        IpAddr::V4(a) => d.extend_from_slice(&a.octets()),
        IpAddr::V6(a) => d.extend_from_slice(&a.octets()),
    }
}

/// Type, length, value of one record that passed `check_record`.
fn encode_record(record: &Record) -> Vec<u8> {
    let mut v = Vec::new();
    let t = match record {
        Record::Health { vs, up } => {
            put_str(&mut v, vs);
            v.push(u8::from(*up));
            REC_HEALTH
        }
        Record::Load { vs, load } => {
            put_str(&mut v, vs);
            let cpu = load.cpu_percent.filter(|c| !c.is_nan());
            let fields = [
                (LOAD_CONNECTIONS, load.connections.is_some()),
                (LOAD_PPS, load.packets_per_second.is_some()),
                (LOAD_KBPS, load.kilobits_per_second.is_some()),
                (LOAD_CPU, cpu.is_some()),
                (LOAD_CAPACITY, load.capacity.is_some()),
                (LOAD_SCORE, load.score.is_some()),
            ];
            v.push(fields.iter().filter(|f| f.1).fold(0, |b, f| b | f.0));
            for x in [
                load.connections,
                load.packets_per_second,
                load.kilobits_per_second,
            ]
            .into_iter()
            .flatten()
            {
                v.extend_from_slice(&x.to_be_bytes());
            }
            if let Some(c) = cpu {
                v.extend_from_slice(&((c.clamp(0.0, 100.0) * 100.0).round() as u16).to_be_bytes());
            }
            for x in [load.capacity, load.score].into_iter().flatten() {
                v.extend_from_slice(&x.to_be_bytes());
            }
            REC_LOAD
        }
        Record::Path {
            ldns,
            rtt_us,
            hops,
            completion,
        } => {
            put_prefix(&mut v, ldns);
            v.extend_from_slice(&rtt_us.to_be_bytes());
            v.push(*hops);
            let c = if completion.is_nan() {
                0.0
            } else {
                completion.clamp(0.0, 1.0)
            };
            v.extend_from_slice(&((c * 10_000.0).round() as u16).to_be_bytes());
            REC_PATH
        }
        Record::ProbeRequest { ldns } => {
            put_prefix(&mut v, ldns);
            REC_PROBE
        }
        Record::Peer(r) => peer::encode(r, &mut v),
    };
    let mut rec = Vec::with_capacity(3 + v.len());
    rec.push(t);
    rec.extend_from_slice(&(v.len() as u16).to_be_bytes());
    rec.extend_from_slice(&v);
    rec
}

/// Checks and decodes one datagram: size, magic, version, key, tag (constant time), then the
/// fields and records. Freshness and replay are the caller's ([`super::replay::ReplayGuard`]),
/// since they need state.
///
/// In order: longer than [`MAX_DATAGRAM`] is `Oversized`; shorter than its own header and a
/// tag is `Truncated`; then `BadMagic`, `BadVersion`, `UnknownKey` (`key_for` has no key for
/// the id), `BadTag`; and only then, on authenticated bytes, `Malformed` for a bad kind,
/// non-zero reserved bits, names out of range, lengths that do not add up, values out of
/// range, or a record of the wrong kind of datagram. Never panics.
pub fn decode(bytes: &[u8], key_for: impl Fn(u32) -> Option<Key>) -> Result<Datagram, Reject> {
    if bytes.len() > MAX_DATAGRAM {
        return Err(Reject::Oversized);
    }
    if bytes.len() < MIN_DATAGRAM {
        return Err(Reject::Truncated);
    }
    if bytes[..4] != MAGIC {
        return Err(Reject::BadMagic);
    }
    if bytes[4] != VERSION {
        return Err(Reject::BadVersion);
    }
    // The header's length, from its (not yet authenticated) length bytes: only to tell a
    // truncated datagram from a forged one.
    let agent_len = usize::from(bytes[FIXED]);
    let site_len = bytes
        .get(FIXED + 1 + agent_len)
        .map_or(usize::MAX / 2, |&b| usize::from(b));
    if bytes.len() < FIXED + 1 + agent_len + 1 + site_len + 2 + TAG_LEN {
        return Err(Reject::Truncated);
    }

    let mut r = Reader(&bytes[8..12]);
    let key_id = r.u32()?;
    let key = key_for(key_id).ok_or(Reject::UnknownKey)?;
    let (body, tag) = bytes.split_at(bytes.len() - TAG_LEN);
    let mut mac = HmacSha256::new_from_slice(&key.secret).map_err(|_| Reject::UnknownKey)?;
    mac.update(body);
    mac.verify_slice(tag).map_err(|_| Reject::BadTag)?;

    let mut r = Reader(&body[5..]);
    let kind = match r.u8()? {
        1 => Kind::Report,
        2 => Kind::Reply,
        3 => Kind::Peer,
        _ => return Err(Reject::Malformed),
    };
    if r.u16()? != 0 {
        return Err(Reject::Malformed);
    }
    let _key_id = r.u32()?;
    let sequence = r.u64()?;
    let timestamp_ms = r.u64()?;
    let agent = r.name(false)?;
    let site = r.name(kind == Kind::Reply)?;
    let header = Header {
        kind,
        key_id,
        sequence,
        timestamp_ms,
        agent,
        site,
    };
    let count = r.u16()?;
    let mut records = Vec::with_capacity(usize::from(count).min(MAX_DATAGRAM / 3));
    for _ in 0..count {
        let t = r.u8()?;
        let len = r.u16()?;
        let mut v = Reader(r.take(usize::from(len))?);
        let record = match t {
            REC_HEALTH => {
                let vs = v.name(false)?;
                let up = match v.u8()? {
                    0 => false,
                    1 => true,
                    _ => return Err(Reject::Malformed),
                };
                Record::Health { vs, up }
            }
            REC_LOAD => {
                let vs = v.name(false)?;
                let bits = v.u8()?;
                if bits & !LOAD_ALL != 0 {
                    return Err(Reject::Malformed);
                }
                let mut load = Load::default();
                let u64_if = |bit: u8, v: &mut Reader| -> Result<Option<u64>, Reject> {
                    if bits & bit != 0 {
                        v.u64().map(Some)
                    } else {
                        Ok(None)
                    }
                };
                load.connections = u64_if(LOAD_CONNECTIONS, &mut v)?;
                load.packets_per_second = u64_if(LOAD_PPS, &mut v)?;
                load.kilobits_per_second = u64_if(LOAD_KBPS, &mut v)?;
                if bits & LOAD_CPU != 0 {
                    let c = v.u16()?;
                    if c > 10_000 {
                        return Err(Reject::Malformed);
                    }
                    load.cpu_percent = Some(f64::from(c) / 100.0);
                }
                load.capacity = u64_if(LOAD_CAPACITY, &mut v)?;
                load.score = u64_if(LOAD_SCORE, &mut v)?;
                Record::Load { vs, load }
            }
            REC_PATH => {
                let ldns = v.prefix()?;
                let rtt_us = v.u32()?;
                let hops = v.u8()?;
                let c = v.u16()?;
                if c > 10_000 {
                    return Err(Reject::Malformed);
                }
                Record::Path {
                    ldns,
                    rtt_us,
                    hops,
                    completion: f64::from(c) / 10_000.0,
                }
            }
            REC_PROBE => Record::ProbeRequest { ldns: v.prefix()? },
            t => match peer::decode(t, &mut v) {
                Some(r) => r?,
                // A newer agent's record: skipped.
                None => continue,
            },
        };
        if !v.0.is_empty() {
            return Err(Reject::Malformed);
        }
        check_record(kind, &record)?;
        records.push(record);
    }
    if !r.0.is_empty() {
        return Err(Reject::Malformed);
    }
    Ok(Datagram { header, records })
}

/// Reads big-endian fields off the front of a slice; running short is `Malformed`.
struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], Reject> {
        if n > self.0.len() {
            return Err(Reject::Malformed);
        }
        let (head, rest) = self.0.split_at(n);
        self.0 = rest;
        Ok(head)
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N], Reject> {
        self.take(N)?.try_into().map_err(|_| Reject::Malformed)
    }

    fn u8(&mut self) -> Result<u8, Reject> {
        Ok(self.array::<1>()?[0])
    }

    fn u16(&mut self) -> Result<u16, Reject> {
        self.array().map(u16::from_be_bytes)
    }

    fn u32(&mut self) -> Result<u32, Reject> {
        self.array().map(u32::from_be_bytes)
    }

    fn u64(&mut self) -> Result<u64, Reject> {
        self.array().map(u64::from_be_bytes)
    }

    /// A length byte, then that many bytes of UTF-8 that [`valid_name`] accepts.
    fn name(&mut self, allow_empty: bool) -> Result<String, Reject> {
        let len = usize::from(self.u8()?);
        let s = std::str::from_utf8(self.take(len)?).map_err(|_| Reject::Malformed)?;
        if !valid_name(s, allow_empty) {
            return Err(Reject::Malformed);
        }
        Ok(s.to_owned())
    }

    /// Family, prefix length, address; the host bits must be zero.
    fn prefix(&mut self) -> Result<IpNet, Reject> {
        let family = self.u8()?;
        let len = self.u8()?;
        let addr = match family {
            4 => IpAddr::from(self.array::<4>()?),
            6 => IpAddr::from(self.array::<16>()?),
            _ => return Err(Reject::Malformed),
        };
        let net = IpNet::new(addr, len).map_err(|_| Reject::Malformed)?;
        if net.trunc() != net {
            return Err(Reject::Malformed);
        }
        Ok(net)
    }
}

/// The address family and bytes of a prefix as the wire carries them.
pub fn prefix_parts(p: &IpNet) -> (u8, u8, IpAddr) {
    (
        if p.addr().is_ipv4() { 4 } else { 6 },
        p.prefix_len(),
        p.addr(),
    )
}

#[cfg(test)]
#[path = "wire_tests.rs"]
mod tests;
