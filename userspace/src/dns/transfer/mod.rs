//! Zone transfers out (AXFR, RFC 5936; IXFR, RFC 1995), their access control (addresses and
//! TSIG, RFC 8945) and NOTIFY (RFC 1996): what a plain secondary needs of xgslbd.
//!
//! A secondary receives each zone as its file has it (a GSLB name carries its static
//! records, never a balancer decision), with the serial xgslbd serves.
//!
//! # Layout
//! - `versions`: each zone's versions as transferred, the served serial, the differences.
//! - `acl`: whether a client (address, key) may transfer a zone.
//! - `tsig`: checking requests' TSIGs, signing responses.
//! - `stream`: a response as messages, signed.
//! - `signed`: other queries signed with TSIG (a secondary's SOA query): answers signed.
//! - `counters`: transfers served, refused, NOTIFYs.
//! - `notify`: sending NOTIFYs with retries.
//!
//! [`Transfers`] puts them together: the balancer makes one per reload and publishes it
//! beside the catalog; the TCP server and the UDP workers ask it first (transfers, then
//! signed queries), and the catalog answers the rest.
pub mod acl;
pub mod counters;
pub mod notify;
mod signed;
pub mod stream;
pub mod tsig;
pub mod versions;

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Arc;

use hickory_proto::op::{Message, ResponseCode};
use hickory_proto::rr::{LowerName, RData, Record, RecordType};

use crate::config::{Config, ZoneTransferConfig};
use crate::dns::handler::Messages;
use counters::{Refusal, TransferCounters, TransferKind};
use notify::{NotifyJob, NotifyTarget};
use stream::{Head, Signing, TransferStream, single};
use tsig::{Keyring, RequestTsig, ResponseSigner};
use versions::{Journal, ZoneHistory, ZoneVersions};

/// A zone's transfer state: its history and who may have it.
#[derive(Debug)]
struct ZoneTransfer {
    history: ZoneHistory,
    policy: ZoneTransferConfig,
}

/// What transfers serve, as of one reload.
#[derive(Debug, Default)]
pub struct Transfers {
    zones: HashMap<LowerName, ZoneTransfer>,
    keys: Keyring,
    counters: Arc<TransferCounters>,
}

/// A transfer request, decoded and allowed.
struct Allowed<'a> {
    head: Head,
    request: Message,
    zone: &'a ZoneTransfer,
    origin: String,
    signing: Signing,
}

impl Transfers {
    /// The transfer state of `config`'s zones, whose versions are `versions`.
    pub fn new(
        versions: &ZoneVersions,
        config: &Config,
        counters: Arc<TransferCounters>,
    ) -> Transfers {
        let zones = config
            .zones
            .iter()
            .filter_map(|z| {
                let origin = LowerName::new(&z.origin);
                let history = versions.get(&origin)?.clone();
                let policy = z.transfer.clone();
                Some((origin, ZoneTransfer { history, policy }))
            })
            .collect();
        Transfers {
            zones,
            keys: Keyring::new(&config.tsig_keys),
            counters,
        }
    }

    /// The counters, shared by every reload's transfers.
    pub fn counters(&self) -> &Arc<TransferCounters> {
        &self.counters
    }

    /// What telling `origin`'s secondaries of its current version takes, if it has any.
    pub fn notify_job(&self, origin: &LowerName) -> Option<NotifyJob> {
        let zone = self.zones.get(origin)?;
        if zone.policy.notify.is_empty() {
            return None;
        }
        let signer = zone
            .policy
            .notify_key
            .as_ref()
            .and_then(|k| self.keys.get(k))
            .cloned();
        Some(NotifyJob {
            soa: zone.history.current().soa().clone(),
            targets: zone
                .policy
                .notify
                .iter()
                .map(|&addr| NotifyTarget {
                    addr,
                    signer: signer.clone(),
                })
                .collect(),
        })
    }

    /// The response to `query` from `client` over TCP when it asks for a transfer (AXFR or
    /// IXFR), else `None`: the catalog answers it.
    pub fn respond_tcp(&self, query: &[u8], client: IpAddr) -> Option<Messages> {
        let qtype = transfer_type(query)?;
        let allowed = match self.allow(query, client, tsig::now()) {
            Ok(allowed) => allowed,
            Err(refusal) => return Some(Box::new(refusal.into_iter())),
        };
        let history = &allowed.zone.history;
        let current = history.current();
        let soa: Arc<[Record]> = Arc::from(vec![current.soa().clone()]);
        let whole = || vec![soa.clone(), current.records().clone(), soa.clone()];
        let (kind, parts) = match qtype {
            RecordType::AXFR => (TransferKind::Axfr, whole()),
            _ => {
                let Some(from) = ixfr_serial(&allowed.request) else {
                    self.counters.refused(Refusal::Malformed);
                    let response = single(
                        &allowed.head,
                        ResponseCode::FormErr,
                        Vec::new(),
                        allowed.signing,
                    );
                    return Some(Box::new(response.into_iter()));
                };
                match history.journal(from) {
                    Journal::UpToDate => (TransferKind::IxfrUpToDate, vec![soa]),
                    Journal::Full => (TransferKind::IxfrFull, whole()),
                    Journal::Incremental(diffs) => {
                        let mut parts = vec![soa.clone()];
                        for d in diffs {
                            parts.push(Arc::from(vec![d.old_soa.clone()]));
                            parts.push(d.deleted.clone());
                            parts.push(Arc::from(vec![d.new_soa.clone()]));
                            parts.push(d.added.clone());
                        }
                        parts.push(soa);
                        (TransferKind::Ixfr, parts)
                    }
                }
            }
        };
        self.counters.served(&allowed.origin, kind);
        tracing::info!(
            %client,
            zone = allowed.origin,
            serial = current.serial(),
            "zone transfer: {}",
            kind.name()
        );
        Some(Box::new(TransferStream::new(
            allowed.head,
            parts,
            allowed.signing,
        )))
    }

    /// The response to `query` from `client` over UDP when it is an IXFR: the current SOA
    /// alone (RFC 1995 2: a client that is behind goes on over TCP). Anything else (AXFR
    /// over UDP included, which is not defined) is `None`: the catalog answers it.
    pub fn respond_udp(&self, query: &[u8], client: IpAddr) -> Option<Vec<u8>> {
        if transfer_type(query)? != RecordType::IXFR {
            return None;
        }
        let allowed = match self.allow(query, client, tsig::now()) {
            Ok(allowed) => allowed,
            Err(refusal) => return refusal,
        };
        self.counters.served(&allowed.origin, TransferKind::IxfrUdp);
        let soa = allowed.zone.history.current().soa().clone();
        single(
            &allowed.head,
            ResponseCode::NoError,
            vec![soa],
            allowed.signing,
        )
    }

    /// The request decoded and checked (TSIG, zone, address, key), or the refusal to send
    /// (`None`: nothing can be sent), counted.
    fn allow(
        &self,
        query: &[u8],
        client: IpAddr,
        now: u64,
    ) -> Result<Allowed<'_>, Option<Vec<u8>>> {
        let Ok(request) = Message::from_vec(query) else {
            self.counters.refused(Refusal::Malformed);
            return Err(formerr(query));
        };
        let Some(question) = request.queries.first().cloned() else {
            self.counters.refused(Refusal::Malformed);
            return Err(formerr(query));
        };
        let head = Head {
            id: request.metadata.id,
            recursion_desired: request.metadata.recursion_desired,
            question,
            edns: request.edns.clone(),
        };
        let refuse = |why: Refusal, rcode: ResponseCode, signing: Signing| {
            self.counters.refused(why);
            tracing::debug!(%client, "zone transfer refused: {}", why.name());
            Err(single(&head, rcode, Vec::new(), signing))
        };
        let (key, signing) = match tsig::check_request(query, &request, &self.keys, now) {
            RequestTsig::Unsigned => (None, Signing::None),
            RequestTsig::Invalid { why, reply } => {
                return refuse(why, ResponseCode::NotAuth, Signing::Error(reply));
            }
            RequestTsig::Valid { signer, mac } => (
                Some(signer.signer_name().clone()),
                Signing::Chain(ResponseSigner::new(signer, head.id, mac, now)),
            ),
        };
        let origin = LowerName::new(head.question.name());
        let Some(zone) = self.zones.get(&origin) else {
            // RFC 5936 2.2.1: not authoritative for that zone.
            return refuse(Refusal::NotAuthoritative, ResponseCode::NotAuth, signing);
        };
        if let Err(why) = acl::decide(&zone.policy, client, key.as_ref()) {
            return refuse(why, ResponseCode::Refused, signing);
        }
        Ok(Allowed {
            origin: origin.to_string(),
            head,
            request,
            zone,
            signing,
        })
    }
}

/// The question's type, when `query` is a standard query (QR 0, opcode 0) with one
/// question of type AXFR or IXFR and class IN: a look at the bytes, so that every other
/// query reaches the catalog without being decoded twice.
fn transfer_type(query: &[u8]) -> Option<RecordType> {
    let header = query.get(..12)?;
    if header[2] & 0xf8 != 0 || header[4..6] != [0, 1] {
        return None;
    }
    let mut at = 12;
    loop {
        let len = usize::from(*query.get(at)?);
        at += 1;
        if len == 0 {
            break;
        }
        if len > 63 {
            return None; // compression or an extended label type: not in a question
        }
        at += len;
    }
    if query.get(at + 2..at + 4)? != [0, 1] {
        return None;
    }
    match u16::from_be_bytes([query[at], query[at + 1]]) {
        252 => Some(RecordType::AXFR),
        251 => Some(RecordType::IXFR),
        _ => None,
    }
}

/// The serial an IXFR asks from: its authority section's SOA for the zone (RFC 1995 3).
fn ixfr_serial(request: &Message) -> Option<u32> {
    let zone = request.queries.first()?.name();
    request.authorities.iter().find_map(|r| match &r.data {
        RData::SOA(soa) if r.name == *zone => Some(soa.serial),
        _ => None,
    })
}

/// FORMERR for a request that does not decode: its ID and opcode, nothing else.
fn formerr(query: &[u8]) -> Option<Vec<u8>> {
    let id = u16::from_be_bytes([*query.first()?, *query.get(1)?]);
    let mut m = Message::new(
        id,
        hickory_proto::op::MessageType::Response,
        hickory_proto::op::OpCode::Query,
    );
    m.metadata.response_code = ResponseCode::FormErr;
    m.to_vec().ok()
}

#[cfg(test)]
#[path = "transfer_tests.rs"]
mod tests;
