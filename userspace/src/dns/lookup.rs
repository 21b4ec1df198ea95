//! The authoritative lookup inside one zone (RFC 1034 4.3.2 step 3, with RFC 4592 wildcards,
//! RFC 2308 negative answers, RFC 6604 CNAME-chain rcodes and RFC 8482 ANY).
//!
//! Input is a zone, a question and the dynamic-answer source; output is the three sections
//! plus rcode and AA. Wire concerns (header, EDNS, size) are elsewhere.

use std::collections::HashSet;

use hickory_proto::op::ResponseCode;
use hickory_proto::rr::{LowerName, Name, RData, Record, RecordType};

use super::handler::{Client, Dynamic, DynamicAnswers, Transport};
use super::index::{Node, ZoneIndex};
use super::response::Draft;

/// CNAME steps followed before giving up; a chain longer than this is a misconfiguration,
/// and the bound keeps a response from growing without limit.
const MAX_CNAME_CHAIN: usize = 16;

/// One lookup: the zone, the dynamic source and the transport (ANY depends on it).
pub(crate) struct Lookup<'a> {
    pub(crate) zone: &'a ZoneIndex,
    pub(crate) dynamic: &'a dyn DynamicAnswers,
    pub(crate) transport: Transport,
    /// The LDNS that asked and the subnet it sent: GSLB answers depend on them.
    pub(crate) client: Client,
    /// The widest ECS scope of the dynamic answers used so far (the response's).
    pub(crate) scope: std::cell::Cell<u8>,
}

impl Lookup<'_> {
    /// Answers `qname`/`qtype` from the zone; `qname` must be at or below its origin.
    pub(crate) fn resolve(&self, qname: &Name, qtype: RecordType) -> Draft {
        let mut res = Draft::rcode(ResponseCode::NoError);
        res.authoritative = true;
        let mut name = qname.clone();
        let mut visited = HashSet::new();
        for _ in 0..MAX_CNAME_CHAIN {
            let lname = LowerName::new(&name);
            if !visited.insert(lname.clone()) {
                // A CNAME loop: the chain so far is the answer, like Knot's.
                return res;
            }
            match self.step(&mut res, &name, &lname, qtype) {
                Some(next) => name = next,
                None => return res,
            }
        }
        res
    }

    /// Answers one name of the chain; returns the next name when a CNAME is to be followed.
    fn step(
        &self,
        res: &mut Draft,
        name: &Name,
        lname: &LowerName,
        qtype: RecordType,
    ) -> Option<Name> {
        let zone = self.zone;
        if let Some(cut) = zone.cut_at_or_above(lname) {
            // DS belongs to the parent side of the cut (RFC 4035 3.1.4.1), so it is answered
            // here; everything else at or below a cut is the child's and gets a referral.
            let ds_at_cut = qtype == RecordType::DS && cut == lname;
            if !ds_at_cut {
                self.referral(res, cut);
                return None;
            }
            let node = zone.nodes.get(lname)?;
            return self.answer_node(res, node, lname, name, qtype);
        }
        if let Some(node) = zone.nodes.get(lname) {
            return self.answer_node(res, node, lname, name, qtype);
        }
        // The name does not exist: a wildcard child of the closest encloser may stand in for
        // it (RFC 4592 3.3.1); the synthesized records carry the query name as owner.
        let encloser = zone.closest_encloser(lname);
        let wildcard = LowerName::new(&Name::from(&encloser).prepend_label("*").ok()?);
        match zone.nodes.get(&wildcard) {
            Some(node) => self.answer_node(res, node, &wildcard, name, qtype),
            None => {
                res.rcode = ResponseCode::NXDomain;
                res.authorities.push(zone.negative_soa.clone());
                None
            }
        }
    }

    /// Answers from an existing node (or a wildcard node standing in for `owner`).
    fn answer_node(
        &self,
        res: &mut Draft,
        node: &Node,
        node_name: &LowerName,
        owner: &Name,
        qtype: RecordType,
    ) -> Option<Name> {
        // Each step sets the rcode; the last step's is the response's (RFC 6604 3).
        res.rcode = ResponseCode::NoError;
        if qtype == RecordType::ANY {
            let records = self.any_records(node, node_name, owner);
            self.no_data_if_empty(res, &records);
            self.add_extra(res, &records);
            res.answers.extend(records);
            return None;
        }
        if qtype != RecordType::CNAME
            && let Some(cname) = node.rrset(RecordType::CNAME)
        {
            let target = cname.iter().find_map(|r| match &r.data {
                RData::CNAME(target) => Some(target.0.clone()),
                _ => None,
            });
            res.answers.extend(with_owner(cname, owner));
            // Only follow inside this zone: other zones' data must not leak into the answer.
            return target.filter(|t| self.zone.origin.zone_of(&LowerName::new(t)));
        }
        let records = if node.is_dynamic(qtype) {
            // The policy may answer for the whole response.
            match self.dynamic_answer(node_name, qtype) {
                Dynamic::ServFail => {
                    *res = Draft::rcode(ResponseCode::ServFail);
                    return None;
                }
                Dynamic::Drop => {
                    res.drop = true;
                    return None;
                }
                answer => self.dynamic_records(node, node_name, owner, qtype, answer),
            }
        } else {
            self.rrset(node, node_name, owner, qtype)
        };
        self.no_data_if_empty(res, &records);
        self.add_extra(res, &records);
        res.answers.extend(records);
        None
    }

    /// The dynamic answer for the client; its scope widens the response's.
    fn dynamic_answer(&self, node_name: &LowerName, rtype: RecordType) -> Dynamic {
        let scoped = self.dynamic.answer(node_name, rtype, &self.client);
        self.scope.set(self.scope.get().max(scoped.scope));
        scoped.answer
    }

    fn no_data_if_empty(&self, res: &mut Draft, records: &[Record]) {
        if records.is_empty() {
            res.authorities.push(self.zone.negative_soa.clone());
        }
    }

    /// The node's records of `rtype` with `owner` as owner: the dynamic ones when the type is
    /// dynamic at this node (they replace static ones), else the static ones.
    fn rrset(
        &self,
        node: &Node,
        node_name: &LowerName,
        owner: &Name,
        rtype: RecordType,
    ) -> Vec<Record> {
        if node.is_dynamic(rtype) {
            let answer = self.dynamic_answer(node_name, rtype);
            return self.dynamic_records(node, node_name, owner, rtype, answer);
        }
        node.rrset(rtype)
            .map(|r| with_owner(r, owner))
            .unwrap_or_default()
    }

    /// The records a dynamic answer stands for, with `owner` as owner name. Outside the
    /// question's own RRset (ANY, additional data) SERVFAIL and drop add nothing.
    fn dynamic_records(
        &self,
        node: &Node,
        node_name: &LowerName,
        owner: &Name,
        rtype: RecordType,
        answer: Dynamic,
    ) -> Vec<Record> {
        let mut records = match answer {
            Dynamic::Records(records) => records,
            Dynamic::ReturnToDns => match node.shadowed.get(&u16::from(rtype)) {
                Some(records) => records.clone(),
                None => self.wildcard_records(node_name, rtype),
            },
            Dynamic::ServFail | Dynamic::Drop => Vec::new(),
        };
        records.retain(|r| r.record_type() == rtype);
        for record in &mut records {
            record.name = owner.clone();
        }
        records
    }

    /// Return to DNS for a wide IP the zone file does not name: the records a wildcard would
    /// have given it (RFC 4592), from the nearest ancestor with a `*` child, up to the first
    /// ancestor the zone file itself names.
    fn wildcard_records(&self, name: &LowerName, rtype: RecordType) -> Vec<Record> {
        let mut ancestor = name.base_name();
        while self.zone.origin.zone_of(&ancestor) {
            let Ok(star) = Name::from(&ancestor).prepend_label("*") else {
                return Vec::new();
            };
            if let Some(node) = self.zone.nodes.get(&LowerName::new(&star)) {
                return node
                    .rrset(rtype)
                    .map(<[Record]>::to_vec)
                    .unwrap_or_default();
            }
            let named = self
                .zone
                .nodes
                .get(&ancestor)
                .is_some_and(|n| !n.rrsets.is_empty());
            if named || ancestor == self.zone.origin {
                break;
            }
            ancestor = ancestor.base_name();
        }
        Vec::new()
    }

    /// ANY (RFC 8482): over UDP one RRset, the lowest type number present, so the answer is
    /// deterministic and small; over TCP every RRset of the node.
    fn any_records(&self, node: &Node, node_name: &LowerName, owner: &Name) -> Vec<Record> {
        let mut types: Vec<u16> = node.rrsets.keys().copied().collect();
        types.extend(node.dynamic.iter().map(|t| u16::from(*t)));
        types.sort_unstable();
        types.dedup();
        let mut all = Vec::new();
        for rtype in types {
            let records = self.rrset(node, node_name, owner, RecordType::from(rtype));
            if records.is_empty() {
                continue;
            }
            all.extend(records);
            if self.transport == Transport::Udp {
                break;
            }
        }
        all
    }

    /// A referral to the child zone at `cut`: its NS RRset and the addresses of in-zone name
    /// servers (glue below the cut, other in-zone names too, as Knot does).
    fn referral(&self, res: &mut Draft, cut: &LowerName) {
        // A referral is not authoritative, but one reached through an in-zone CNAME keeps AA
        // for the CNAME part (Knot does the same).
        res.authoritative = !res.answers.is_empty();
        let Some(node) = self.zone.nodes.get(cut) else {
            return;
        };
        let ns = node.rrset(RecordType::NS).unwrap_or_default();
        let glue = self.addresses_of_targets(ns, &res.glue);
        res.glue.extend(glue);
        res.authorities.extend(ns.iter().cloned());
    }

    /// Additional-section processing (RFC 1034 4.3.2 step 6): A/AAAA of in-zone targets of
    /// MX, SRV and NS records in the answer.
    fn add_extra(&self, res: &mut Draft, records: &[Record]) {
        let known: Vec<Record> = res.extra.clone();
        let extra = self.addresses_of_targets(records, &known);
        res.extra.extend(extra);
    }

    /// A and AAAA records of the in-zone names that `records` point to, skipping those in
    /// `already`.
    fn addresses_of_targets(&self, records: &[Record], already: &[Record]) -> Vec<Record> {
        let mut out: Vec<Record> = Vec::new();
        for record in records {
            let target = match &record.data {
                RData::MX(mx) => mx.exchange.clone(),
                RData::SRV(srv) => srv.target.clone(),
                RData::NS(ns) => ns.0.clone(),
                _ => continue,
            };
            let ltarget = LowerName::new(&target);
            if !self.zone.origin.zone_of(&ltarget) {
                continue;
            }
            let Some(node) = self.zone.nodes.get(&ltarget) else {
                continue;
            };
            for rtype in [RecordType::A, RecordType::AAAA] {
                for address in self.rrset(node, &ltarget, &target, rtype) {
                    if !already.contains(&address) && !out.contains(&address) {
                        out.push(address);
                    }
                }
            }
        }
        out
    }
}

/// Copies of `records` with `owner` as owner name (keeps the query's letter case, and gives
/// wildcard-synthesized records the query name, RFC 4592 3.3.1).
fn with_owner(records: &[Record], owner: &Name) -> Vec<Record> {
    records
        .iter()
        .map(|r| {
            let mut r = r.clone();
            r.name = owner.clone();
            r
        })
        .collect()
}
