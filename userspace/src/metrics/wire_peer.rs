//! The peer records: what EDNSs tell each other in `Kind::Peer` datagrams (the framing,
//! key, tag and replay rules are the agent protocol's, in the parent module).
//!
//! Records (wide IP names are a length byte and 1..=255 bytes of the lowercase name; VS
//! names are wire names as in reports):
//! - 5 hello: config fingerprint (u64), agent-metrics fingerprint (u64), digest of every
//!   wide IP's decision fingerprint (u64), wide IPs (u32), digest of the receiver's
//!   fingerprints the sender holds (u64: equal to the receiver's own digest, it needs no
//!   resend). Sent every heartbeat.
//! - 6 subscribe: wide IP: "I serve your decisions for it" (renewed every heartbeat).
//! - 7 fingerprint: config fingerprint, agent-metrics fingerprint, wide IP, decision
//!   fingerprint (u64).
//! - 8 decision set: wide IP, generation (u64, see [`GENERATIONS`]), parts (u16): the
//!   decision records of that generation that make the wide IP's whole decision.
//! - 9 decision: wide IP, generation, class key hash (u64), region key hash (u64), family
//!   (4 or 6), then the outcome: 1 answer (ttl u32, records u8, persist u8, count u8, then
//!   count × (VS name, weight u32)), 2 fallback IP (ttl u32, family, address), 3 return to
//!   DNS, 4 SERVFAIL, 5 NODATA, 6 drop.
use std::net::IpAddr;

use super::{Reader, Record, Reject, put_str};
use crate::balance::Outcome;

pub(super) const REC_HELLO: u8 = 5;
pub(super) const REC_SUBSCRIBE: u8 = 6;
pub(super) const REC_FINGERPRINT: u8 = 7;
pub(super) const REC_DECISION_SET: u8 = 8;
pub(super) const REC_DECISION: u8 = 9;

/// Longest wide IP name on the wire.
pub const MAX_WIDEIP: usize = 255;

pub use crate::balance::trace::GENERATIONS;

/// What an EDNS's decisions were made from, as fingerprints: EDNSs with equal inputs should
/// decide alike.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct Inputs {
    /// The model (sites, servers, pools, wide IPs, regions, admin changes), deferrals aside.
    pub config: u64,
    /// The agents' metrics as read against the model.
    pub metrics: u64,
}

/// A client class as peers name it: the hash of its key, and of its key's region part (the
/// fallback when the other EDNS has no class of the same key).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ClassKeys {
    pub class: u64,
    pub region: u64,
}

/// One peer record.
#[derive(Clone, Debug, PartialEq)]
pub enum PeerRecord {
    Hello {
        inputs: Inputs,
        digest: u64,
        wideips: u32,
        /// The digest of the fingerprints the sender holds of the receiver's.
        held: u64,
    },
    Subscribe {
        wideip: String,
    },
    Fingerprint {
        inputs: Inputs,
        wideip: String,
        fingerprint: u64,
    },
    DecisionSet {
        wideip: String,
        generation: u64,
        parts: u16,
    },
    Decision {
        wideip: String,
        generation: u64,
        class: ClassKeys,
        v6: bool,
        outcome: Outcome<String>,
    },
}

/// Whether `s` can be a wide IP on the wire.
pub fn valid_wideip(s: &str) -> bool {
    !s.is_empty() && s.len() <= MAX_WIDEIP && !s.chars().any(char::is_control)
}

/// Whether `r` can be encoded (names in range); anything else is `Malformed`.
pub(super) fn check(r: &PeerRecord) -> bool {
    match r {
        PeerRecord::Hello { .. } => true,
        PeerRecord::Subscribe { wideip }
        | PeerRecord::Fingerprint { wideip, .. }
        | PeerRecord::DecisionSet { wideip, .. } => valid_wideip(wideip),
        PeerRecord::Decision {
            wideip, outcome, ..
        } => {
            valid_wideip(wideip)
                && match outcome {
                    // The sender keeps a family's heaviest MAX_ADDRS (all that is answered),
                    // so that the longest decision record fits a datagram.
                    Outcome::Answer { members, .. } => {
                        members.len() <= xgslb_common::MAX_ADDRS
                            && members.iter().all(|(vs, _)| super::valid_name(vs, false))
                    }
                    _ => true,
                }
        }
    }
}

fn put_u64(v: &mut Vec<u8>, x: u64) {
    v.extend_from_slice(&x.to_be_bytes());
}

fn put_inputs(v: &mut Vec<u8>, i: &Inputs) {
    put_u64(v, i.config);
    put_u64(v, i.metrics);
}

fn put_addr(v: &mut Vec<u8>, a: &IpAddr) {
    match a {
        IpAddr::V4(a) => {
            v.push(4);
            v.extend_from_slice(&a.octets());
        }
        IpAddr::V6(a) => {
            v.push(6);
            v.extend_from_slice(&a.octets());
        }
    }
}

/// Type and value of a record that passed [`check`].
pub(super) fn encode(r: &PeerRecord, v: &mut Vec<u8>) -> u8 {
    match r {
        PeerRecord::Hello {
            inputs,
            digest,
            wideips,
            held,
        } => {
            put_inputs(v, inputs);
            put_u64(v, *digest);
            v.extend_from_slice(&wideips.to_be_bytes());
            put_u64(v, *held);
            REC_HELLO
        }
        PeerRecord::Subscribe { wideip } => {
            put_str(v, wideip);
            REC_SUBSCRIBE
        }
        PeerRecord::Fingerprint {
            inputs,
            wideip,
            fingerprint,
        } => {
            put_inputs(v, inputs);
            put_str(v, wideip);
            put_u64(v, *fingerprint);
            REC_FINGERPRINT
        }
        PeerRecord::DecisionSet {
            wideip,
            generation,
            parts,
        } => {
            put_str(v, wideip);
            put_u64(v, *generation);
            v.extend_from_slice(&parts.to_be_bytes());
            REC_DECISION_SET
        }
        PeerRecord::Decision {
            wideip,
            generation,
            class,
            v6,
            outcome,
        } => {
            put_str(v, wideip);
            put_u64(v, *generation);
            put_u64(v, class.class);
            put_u64(v, class.region);
            v.push(if *v6 { 6 } else { 4 });
            match outcome {
                Outcome::Answer {
                    members,
                    ttl,
                    records,
                    persist,
                } => {
                    v.push(1);
                    v.extend_from_slice(&ttl.to_be_bytes());
                    v.push(*records);
                    v.push(u8::from(*persist));
                    v.push(members.len() as u8);
                    for (vs, w) in members {
                        put_str(v, vs);
                        v.extend_from_slice(&w.to_be_bytes());
                    }
                }
                Outcome::FallbackIp { addr, ttl } => {
                    v.push(2);
                    v.extend_from_slice(&ttl.to_be_bytes());
                    put_addr(v, addr);
                }
                Outcome::ReturnToDns => v.push(3),
                Outcome::ServFail => v.push(4),
                Outcome::NoData => v.push(5),
                Outcome::Drop => v.push(6),
            }
            REC_DECISION
        }
    }
}

impl Reader<'_> {
    fn wideip(&mut self) -> Result<String, Reject> {
        let len = usize::from(self.u8()?);
        let s = std::str::from_utf8(self.take(len)?).map_err(|_| Reject::Malformed)?;
        if !valid_wideip(s) {
            return Err(Reject::Malformed);
        }
        Ok(s.to_owned())
    }

    fn inputs(&mut self) -> Result<Inputs, Reject> {
        Ok(Inputs {
            config: self.u64()?,
            metrics: self.u64()?,
        })
    }

    fn family(&mut self) -> Result<bool, Reject> {
        match self.u8()? {
            4 => Ok(false),
            6 => Ok(true),
            _ => Err(Reject::Malformed),
        }
    }

    fn outcome(&mut self) -> Result<Outcome<String>, Reject> {
        Ok(match self.u8()? {
            1 => {
                let ttl = self.u32()?;
                let records = self.u8()?;
                let persist = match self.u8()? {
                    0 => false,
                    1 => true,
                    _ => return Err(Reject::Malformed),
                };
                let count = self.u8()?;
                if usize::from(count) > xgslb_common::MAX_ADDRS {
                    return Err(Reject::Malformed);
                }
                let members = (0..count)
                    .map(|_| Ok((self.name(false)?, self.u32()?)))
                    .collect::<Result<_, Reject>>()?;
                Outcome::Answer {
                    members,
                    ttl,
                    records,
                    persist,
                }
            }
            2 => {
                let ttl = self.u32()?;
                let addr = if self.family()? {
                    IpAddr::from(self.array::<16>()?)
                } else {
                    IpAddr::from(self.array::<4>()?)
                };
                Outcome::FallbackIp { addr, ttl }
            }
            3 => Outcome::ReturnToDns,
            4 => Outcome::ServFail,
            5 => Outcome::NoData,
            6 => Outcome::Drop,
            _ => return Err(Reject::Malformed),
        })
    }
}

/// The peer record of type `t` in `v`, or `None` for a type that is not a peer record.
pub(super) fn decode(t: u8, v: &mut Reader) -> Option<Result<Record, Reject>> {
    let r = match t {
        REC_HELLO => (|| {
            Ok(PeerRecord::Hello {
                inputs: v.inputs()?,
                digest: v.u64()?,
                wideips: v.u32()?,
                held: v.u64()?,
            })
        })(),
        REC_SUBSCRIBE => v.wideip().map(|wideip| PeerRecord::Subscribe { wideip }),
        REC_FINGERPRINT => (|| {
            Ok(PeerRecord::Fingerprint {
                inputs: v.inputs()?,
                wideip: v.wideip()?,
                fingerprint: v.u64()?,
            })
        })(),
        REC_DECISION_SET => (|| {
            Ok(PeerRecord::DecisionSet {
                wideip: v.wideip()?,
                generation: v.u64()?,
                parts: v.u16()?,
            })
        })(),
        REC_DECISION => (|| {
            Ok(PeerRecord::Decision {
                wideip: v.wideip()?,
                generation: v.u64()?,
                class: ClassKeys {
                    class: v.u64()?,
                    region: v.u64()?,
                },
                v6: v.family()?,
                outcome: v.outcome()?,
            })
        })(),
        _ => return None,
    };
    Some(r.map(Record::Peer))
}
