//! The catalog of authoritative zones and the request handler: raw query in, raw response out.
//!
//! The handler picks the zone, asks `lookup` for the sections and `response` for the bytes.
//! GSLB answers come in through [`DynamicAnswers`] for the (name, type) pairs declared when
//! the catalog is built; those replace the zone file's records of that type at that name.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Arc;

use hickory_proto::op::{OpCode, ResponseCode};
use hickory_proto::rr::{DNSClass, LowerName, Name, RecordType};

use super::cookies::{Cookies, unix_now};
use super::ecs::EcsCounters;
use super::handler::{Client, DynamicAnswers, Responder, Transport};
use super::index::ZoneIndex;
use super::lookup::Lookup;
use super::request::{self, CheckedQuery, Request};
use super::response::{self, Draft};
use super::zone::Zone;

/// Why a catalog could not be built.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CatalogError {
    /// Two zones have the same origin.
    #[error("zone {origin} is given twice")]
    DuplicateZone {
        /// The origin given twice.
        origin: String,
    },
    /// A zone has no apex SOA (only possible for a zone that skipped validation).
    #[error("zone {origin} has no SOA at its apex")]
    NoSoa {
        /// The zone origin.
        origin: String,
    },
    /// A dynamic name is not inside any zone of the catalog.
    #[error("dynamic name {name} is in no zone")]
    DynamicOutsideZones {
        /// The dynamic name.
        name: String,
    },
    /// A dynamic name is at or below a delegation, where the zone is not authoritative.
    #[error("dynamic name {name} is at or below the zone cut {cut}")]
    DynamicBelowCut {
        /// The dynamic name.
        name: String,
        /// The delegation point.
        cut: String,
    },
    /// A dynamic name owns a CNAME, which allows no other data beside it.
    #[error("dynamic name {name} has a CNAME in the zone file")]
    DynamicAtCname {
        /// The dynamic name.
        name: String,
    },
    /// Only A and AAAA can be dynamic for now.
    #[error("dynamic name {name}: type {rtype} cannot be dynamic, only A and AAAA")]
    DynamicType {
        /// The dynamic name.
        name: String,
        /// The refused type.
        rtype: RecordType,
    },
}

/// The zones this server is authoritative for.
#[derive(Debug)]
pub struct Catalog {
    zones: HashMap<LowerName, ZoneIndex>,
    /// Responses to queries with a client subnet, by family and scope.
    ecs_counters: Arc<EcsCounters>,
    /// DNS cookies: on or off, the secret, their counters.
    cookies: Arc<Cookies>,
}

impl Catalog {
    /// Builds the catalog; `dynamic` lists the RRsets answered by [`DynamicAnswers`].
    pub fn new(zones: Vec<Zone>, dynamic: &[(Name, RecordType)]) -> Result<Catalog, CatalogError> {
        let mut catalog = Catalog {
            zones: HashMap::new(),
            ecs_counters: Arc::default(),
            cookies: Arc::new(Cookies::off()),
        };
        for zone in zones {
            let origin = zone.origin().clone();
            let key = LowerName::new(&origin);
            if catalog.zones.contains_key(&key) {
                return Err(CatalogError::DuplicateZone {
                    origin: origin.to_string(),
                });
            }
            let index = ZoneIndex::new(zone).ok_or(CatalogError::NoSoa {
                origin: origin.to_string(),
            })?;
            catalog.zones.insert(key, index);
        }
        for (name, rtype) in dynamic {
            catalog.add_dynamic(name, *rtype)?;
        }
        Ok(catalog)
    }

    fn add_dynamic(&mut self, name: &Name, rtype: RecordType) -> Result<(), CatalogError> {
        if !matches!(rtype, RecordType::A | RecordType::AAAA) {
            return Err(CatalogError::DynamicType {
                name: name.to_string(),
                rtype,
            });
        }
        let lname = LowerName::new(name);
        let origin =
            self.zone_origin_for(&lname)
                .ok_or_else(|| CatalogError::DynamicOutsideZones {
                    name: name.to_string(),
                })?;
        let Some(zone) = self.zones.get_mut(&origin) else {
            return Err(CatalogError::DynamicOutsideZones {
                name: name.to_string(),
            });
        };
        if let Some(cut) = zone.cut_at_or_above(&lname) {
            return Err(CatalogError::DynamicBelowCut {
                name: name.to_string(),
                cut: cut.to_string(),
            });
        }
        let node = zone.insert_node(&lname);
        if node.rrset(RecordType::CNAME).is_some() {
            return Err(CatalogError::DynamicAtCname {
                name: name.to_string(),
            });
        }
        // The dynamic RRset takes the place of the static one, which stays aside for
        // Return to DNS.
        if let Some(records) = node.rrsets.remove(&u16::from(rtype)) {
            node.shadowed.insert(u16::from(rtype), records);
        }
        if !node.dynamic.contains(&rtype) {
            node.dynamic.push(rtype);
        }
        Ok(())
    }

    /// This catalog counting its responses to client subnets in `counters` (kept by the
    /// daemon across catalogs).
    pub fn with_ecs_counters(mut self, counters: Arc<EcsCounters>) -> Self {
        self.ecs_counters = counters;
        self
    }

    /// Its responses to client subnets, by family and scope.
    pub fn ecs_counters(&self) -> &Arc<EcsCounters> {
        &self.ecs_counters
    }

    /// This catalog checking and issuing DNS cookies as `cookies` says (off by default).
    pub fn with_cookies(mut self, cookies: Arc<Cookies>) -> Self {
        self.cookies = cookies;
        self
    }

    /// Its DNS cookies: on or off, the secret, the counters.
    pub fn cookies(&self) -> &Arc<Cookies> {
        &self.cookies
    }

    /// The zones, in no order.
    pub(crate) fn zones(&self) -> impl Iterator<Item = &ZoneIndex> {
        self.zones.values()
    }

    /// The origin of the closest enclosing zone of `name`, if any.
    pub(crate) fn zone_origin_for(&self, name: &LowerName) -> Option<LowerName> {
        let mut current = name.clone();
        loop {
            if self.zones.contains_key(&current) {
                return Some(current);
            }
            if current.is_root() {
                return None;
            }
            current = current.base_name();
        }
    }

    /// The zone to answer `qname`/`qtype` from: the closest enclosing one, except that DS at a
    /// zone apex belongs to the parent zone (RFC 4035 3.1.4.1) when we have it.
    fn zone_for(&self, qname: &LowerName, qtype: RecordType) -> Option<&ZoneIndex> {
        let origin = self.zone_origin_for(qname)?;
        if qtype == RecordType::DS
            && origin == *qname
            && !qname.is_root()
            && let Some(parent) = self.zone_origin_for(&qname.base_name())
        {
            return self.zones.get(&parent);
        }
        self.zones.get(&origin)
    }

    /// Answers one query message from `client`. `None` means send nothing.
    pub fn respond(
        &self,
        query: &[u8],
        transport: Transport,
        client: IpAddr,
        dynamic: &dyn DynamicAnswers,
    ) -> Option<Vec<u8>> {
        match request::decode(query) {
            Request::Drop => None,
            Request::Error(reject) => Some(response::encode(
                &reject.header,
                reject.question.as_ref(),
                reject.edns.as_ref(),
                None,
                None,
                Draft::rcode(reject.rcode),
                transport,
            )),
            Request::Query(mut query) => {
                let cookie = query
                    .cookie
                    .and_then(|c| self.cookies.answer(c.data(), client, unix_now()));
                if let Some(c) = &cookie {
                    query.cookie_seen = c.seen;
                }
                let draft = self.answer(&query, transport, client, dynamic);
                if draft.drop {
                    return None;
                }
                if let Some(subnet) = &query.subnet {
                    self.ecs_counters.count(subnet, draft.scope);
                }
                if query.cookie_seen != xgslb_common::CookieSeen::None {
                    self.cookies.counters().count(query.cookie_seen);
                }
                Some(response::encode(
                    &query.header,
                    Some(&query.question),
                    query.edns.as_ref(),
                    query.subnet.as_ref(),
                    cookie.as_ref().map(|c| &c.data),
                    draft,
                    transport,
                ))
            }
        }
    }

    /// The response content for a checked query.
    fn answer(
        &self,
        query: &CheckedQuery,
        transport: Transport,
        client: IpAddr,
        dynamic: &dyn DynamicAnswers,
    ) -> Draft {
        debug_assert_eq!(query.header.op_code, OpCode::Query);
        let question = &query.question;
        if question.query_class() != DNSClass::IN {
            return Draft::rcode(ResponseCode::Refused);
        }
        let qtype = question.query_type();
        // Transfers are `transfer::Transfers`' (asked first); what reaches the catalog (AXFR
        // over UDP, which is not defined, or a catalog served alone) is refused.
        if matches!(qtype, RecordType::AXFR | RecordType::IXFR) {
            return Draft::rcode(ResponseCode::Refused);
        }
        let qname = LowerName::new(question.name());
        let Some(zone) = self.zone_for(&qname, qtype) else {
            return Draft::rcode(ResponseCode::Refused);
        };
        let lookup = Lookup {
            zone,
            dynamic,
            transport,
            client: Client {
                source: client,
                subnet: query.subnet,
            },
            scope: Default::default(),
        };
        let mut draft = lookup.resolve(question.name(), qtype);
        draft.scope = lookup.scope.get();
        draft
    }
}

/// A [`Responder`] that answers from a catalog with a fixed dynamic-answer source.
pub struct CatalogResponder {
    catalog: Catalog,
    dynamic: Arc<dyn DynamicAnswers + Send + Sync>,
}

impl CatalogResponder {
    /// Answers from `catalog`, asking `dynamic` for the dynamic RRsets.
    pub fn new(catalog: Catalog, dynamic: Arc<dyn DynamicAnswers + Send + Sync>) -> Self {
        CatalogResponder { catalog, dynamic }
    }
}

impl Responder for CatalogResponder {
    fn respond(&self, query: &[u8], transport: Transport, client: IpAddr) -> Option<Vec<u8>> {
        self.catalog
            .respond(query, transport, client, self.dynamic.as_ref())
    }
}

#[cfg(test)]
#[path = "authority_tests.rs"]
mod tests;
