//! The in-memory form of one zone that the answer logic walks: a node per existing name.
//!
//! A name exists (RFC 4592 2.2.2) when it owns data, owns a dynamic RRset, or is an ancestor
//! of such a name inside the zone (an empty non-terminal). Keeping empty non-terminals as
//! nodes without data makes "does this name exist" a single map lookup, which is what the
//! NXDOMAIN/NODATA and wildcard decisions need.

use std::collections::{BTreeMap, HashMap};

use hickory_proto::rr::{LowerName, RData, Record, RecordType, RrKey};

use super::zone::Zone;

/// One existing name of a zone.
#[derive(Debug, Default)]
pub(crate) struct Node {
    /// Static RRsets by type number, so iteration is in type order (ANY over UDP needs the
    /// lowest type present).
    pub(crate) rrsets: BTreeMap<u16, Vec<Record>>,
    /// Types whose records the caller produces at answer time (GSLB answers).
    pub(crate) dynamic: Vec<RecordType>,
    /// The zone file's RRsets of the dynamic types, answered only for Return to DNS.
    pub(crate) shadowed: BTreeMap<u16, Vec<Record>>,
    /// True when this non-apex name holds NS records: a zone cut.
    pub(crate) is_cut: bool,
}

impl Node {
    /// The static RRset of `rtype`, if any.
    pub(crate) fn rrset(&self, rtype: RecordType) -> Option<&[Record]> {
        self.rrsets
            .get(&u16::from(rtype))
            .map(Vec::as_slice)
            .filter(|r| !r.is_empty())
    }

    pub(crate) fn is_dynamic(&self, rtype: RecordType) -> bool {
        self.dynamic.contains(&rtype)
    }
}

/// A zone ready to answer from.
#[derive(Debug)]
pub(crate) struct ZoneIndex {
    pub(crate) origin: LowerName,
    /// The apex SOA, already with the negative-caching TTL (RFC 2308 3: min(TTL, MINIMUM)).
    pub(crate) negative_soa: Record,
    pub(crate) nodes: HashMap<LowerName, Node>,
}

impl ZoneIndex {
    /// Builds the node map; `validate` already guaranteed an apex SOA.
    pub(crate) fn new(zone: Zone) -> Option<ZoneIndex> {
        let origin = LowerName::new(zone.origin());
        let mut negative_soa = zone
            .rrsets()
            .get(&RrKey::new(origin.clone(), RecordType::SOA))?
            .records_without_rrsigs()
            .next()?
            .clone();
        if let RData::SOA(data) = &negative_soa.data {
            negative_soa.ttl = negative_soa.ttl.min(data.minimum);
        }
        let mut index = ZoneIndex {
            origin: origin.clone(),
            negative_soa,
            nodes: HashMap::new(),
        };
        for (key, rrset) in zone.rrsets() {
            let records: Vec<Record> = rrset.records_without_rrsigs().cloned().collect();
            let node = index.insert_node(key.name());
            if key.record_type == RecordType::NS && *key.name() != origin {
                node.is_cut = true;
            }
            node.rrsets.insert(u16::from(key.record_type), records);
        }
        Some(index)
    }

    /// Returns the node for `name`, creating it and its missing ancestors (empty non-terminals)
    /// up to the origin. `name` must be at or below the origin.
    pub(crate) fn insert_node(&mut self, name: &LowerName) -> &mut Node {
        let mut ancestor = name.base_name();
        while self.origin.zone_of(&ancestor) && ancestor != self.origin {
            self.nodes.entry(ancestor.clone()).or_default();
            ancestor = ancestor.base_name();
        }
        self.nodes.entry(self.origin.clone()).or_default();
        self.nodes.entry(name.clone()).or_default()
    }

    /// The topmost zone cut at or above `name` (and below the apex), if any. Everything at
    /// or below it is the child's data; only referrals (and DS at the cut) are answered.
    pub(crate) fn cut_at_or_above(&self, name: &LowerName) -> Option<&LowerName> {
        let mut found = None;
        let mut current = name.clone();
        while current != self.origin && self.origin.zone_of(&current) {
            if let Some((key, node)) = self.nodes.get_key_value(&current)
                && node.is_cut
            {
                found = Some(key);
            }
            current = current.base_name();
        }
        found
    }

    /// The closest existing ancestor of a name that does not exist (RFC 4592 closest encloser).
    pub(crate) fn closest_encloser(&self, name: &LowerName) -> LowerName {
        let mut current = name.base_name();
        while current != self.origin && !self.nodes.contains_key(&current) {
            current = current.base_name();
        }
        current
    }
}
