//! The agent metric protocol, defined once for both ends (xgslb-agent encodes, xgslbd
//! verifies and decodes): versioned binary UDP datagrams carrying typed records of health,
//! load and LDNS path metrics, authenticated with HMAC-SHA256 (RustCrypto `hmac`, `sha2`).
//!
//! # Datagram (all integers big-endian)
//! ```text
//! offset size
//!  0      4   magic "XGSM"
//!  4      1   version (1)
//!  5      1   kind: 1 report (agent -> EDNS), 2 reply (EDNS -> agent)
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
//! - 2 load: VS name, presence bits (1 byte: connections, packets/s, kbit/s, cpu, capacity,
//!   score), then each present value: u64, u64, u64, u16 (cpu in hundredths of a percent),
//!   u64, u64
//! - 3 path: family (4 or 6), prefix length, address (4 or 16 bytes), RTT in microseconds
//!   (u32), hops (u8), completion in ten-thousandths (u16)
//! - 4 probe request (replies only): family, prefix length, address: an LDNS prefix the EDNS
//!   wants probed
//!
//! A datagram is at most [`MAX_DATAGRAM`] bytes; agents split larger reports.
use std::net::IpAddr;

use ipnet::IpNet;

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

/// Load of one virtual server; absent fields are unknown.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
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
    /// A report names a virtual server the EDNS does not know, or one at another site.
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

/// A shared secret, by key id.
#[derive(Clone)]
pub struct Key {
    pub id: u32,
    pub secret: Vec<u8>,
}

impl std::fmt::Debug for Key {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "Key {{ id: {}, secret: <{} bytes> }}",
            self.id,
            self.secret.len()
        )
    }
}

/// Splits `records` into datagrams of at most `MAX_DATAGRAM` bytes, each with `header`
/// (sequence numbers `header.sequence`, +1, +2, ...), tagged with `key`. Returns the
/// datagrams; the caller advances its sequence by their count.
pub fn encode(header: &Header, records: &[Record], key: &Key) -> Vec<Vec<u8>> {
    let _ = (header, records, key);
    unimplemented!("helper: implement")
}

/// Checks and decodes one datagram: size, magic, version, key, tag (constant time), then the
/// fields and records. Freshness and replay are the caller's (`replay::Window`), since they
/// need state.
pub fn decode(bytes: &[u8], key_for: impl Fn(u32) -> Option<Key>) -> Result<Datagram, Reject> {
    let _ = (bytes, key_for);
    unimplemented!("helper: implement")
}

/// The address family and bytes of a prefix as the wire carries them.
pub fn prefix_parts(p: &IpNet) -> (u8, u8, IpAddr) {
    (
        if p.addr().is_ipv4() { 4 } else { 6 },
        p.prefix_len(),
        p.addr(),
    )
}
