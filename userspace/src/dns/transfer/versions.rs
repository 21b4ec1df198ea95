//! What secondaries receive of each zone, version by version: the zone file's records (a
//! GSLB name carries its static records, never a balancer decision), the serial served, and
//! the differences between consecutive versions that IXFR sends (RFC 1995).
//!
//! A reload that changes what a zone transfers serves a serial newer than the last one
//! served (RFC 1982 arithmetic): the file's when it is newer, else the last plus one. A
//! reload that changes nothing keeps the serial. The balancer owns a [`ZoneVersions`] and
//! builds the catalog from the zones it returns, so every path answers the same serial.
use std::collections::{HashMap, VecDeque};
use std::sync::Arc;

use hickory_proto::rr::{LowerName, Name, RData, Record, SerialNumber};

use crate::dns::zone::Zone;

/// Differences kept per zone for IXFR; a secondary further behind gets the whole zone.
pub const HISTORY_LEN: usize = 16;

/// The serial to serve for a changed zone whose last served serial is `last` and whose file
/// says `file`: the file's when it is newer (RFC 1982), else `last + 1` (wrapping).
pub fn next_serial(last: u32, file: u32) -> u32 {
    if SerialNumber::new(file) > SerialNumber::new(last) {
        file
    } else {
        last.wrapping_add(1)
    }
}

/// One version of a zone as transferred.
#[derive(Debug)]
pub struct ZoneVersion {
    /// The SOA, with the served serial.
    soa: Record,
    /// Every other record (the SOA's RRSIGs included), in canonical order (RFC 4034 6).
    records: Arc<[Record]>,
}

impl ZoneVersion {
    /// The version `zone` holds, serving `serial`; `None` without an apex SOA (which zone
    /// validation refuses).
    fn of(zone: &Zone, serial: u32) -> Option<ZoneVersion> {
        let zone = zone.with_serial(serial);
        let soa = zone.soa()?.clone();
        let mut records: Vec<Record> = zone
            .rrsets()
            .values()
            .flat_map(|rrset| rrset.records_with_rrsigs())
            .filter(|r| **r != soa)
            .cloned()
            .collect();
        records.sort();
        Some(ZoneVersion {
            soa,
            records: records.into(),
        })
    }

    /// The served serial.
    pub fn serial(&self) -> u32 {
        soa_serial(&self.soa)
    }

    /// The SOA, with the served serial.
    pub fn soa(&self) -> &Record {
        &self.soa
    }

    /// Every record but the SOA, in canonical order.
    pub fn records(&self) -> &Arc<[Record]> {
        &self.records
    }

    /// Whether `other` transfers the same data (TTLs included), serial aside.
    fn same_data(&self, other: &ZoneVersion) -> bool {
        let mut soa = other.soa.clone();
        set_serial(&mut soa, self.serial());
        soa.cmp(&self.soa).is_eq()
            && self.records.len() == other.records.len()
            && self
                .records
                .iter()
                .zip(other.records.iter())
                .all(|(a, b)| a.cmp(b).is_eq())
    }
}

fn soa_serial(soa: &Record) -> u32 {
    match &soa.data {
        RData::SOA(soa) => soa.serial,
        _ => 0,
    }
}

fn set_serial(record: &mut Record, serial: u32) {
    if let RData::SOA(soa) = &mut record.data {
        soa.serial = serial;
    }
}

/// From one version to the next: what IXFR sends for it (RFC 1995 2).
#[derive(Debug)]
pub struct Diff {
    /// The old version's SOA.
    pub old_soa: Record,
    /// Records of the old version that the new one does not have.
    pub deleted: Arc<[Record]>,
    /// The new version's SOA.
    pub new_soa: Record,
    /// Records of the new version that the old one did not have.
    pub added: Arc<[Record]>,
}

impl Diff {
    /// The differences from `old` to `new` (a changed TTL is a deletion and an addition).
    fn between(old: &ZoneVersion, new: &ZoneVersion) -> Diff {
        let (mut deleted, mut added) = (Vec::new(), Vec::new());
        let (mut a, mut b) = (old.records.iter().peekable(), new.records.iter().peekable());
        loop {
            match (a.peek(), b.peek()) {
                (Some(x), Some(y)) => match x.cmp(y) {
                    std::cmp::Ordering::Less => deleted.extend(a.next().cloned()),
                    std::cmp::Ordering::Greater => added.extend(b.next().cloned()),
                    std::cmp::Ordering::Equal => {
                        a.next();
                        b.next();
                    }
                },
                (Some(_), None) => deleted.extend(a.next().cloned()),
                (None, Some(_)) => added.extend(b.next().cloned()),
                (None, None) => break,
            }
        }
        Diff {
            old_soa: old.soa.clone(),
            deleted: deleted.into(),
            new_soa: new.soa.clone(),
            added: added.into(),
        }
    }

    /// The old version's serial.
    pub fn from_serial(&self) -> u32 {
        soa_serial(&self.old_soa)
    }

    /// Records deleted and added.
    fn len(&self) -> usize {
        self.deleted.len() + self.added.len()
    }
}

/// What an IXFR from a serial gets (RFC 1995 4).
#[derive(Debug)]
pub enum Journal {
    /// The client has the current version (or claims a newer one): the current SOA alone.
    UpToDate,
    /// The differences from the client's version to the current one, oldest first.
    Incremental(Vec<Arc<Diff>>),
    /// The serial is unknown or too old, or the differences outweigh the zone: all of it.
    Full,
}

/// A zone's current version and the differences that led to it, oldest first.
#[derive(Clone, Debug)]
pub struct ZoneHistory {
    current: Arc<ZoneVersion>,
    diffs: VecDeque<Arc<Diff>>,
}

impl ZoneHistory {
    /// A zone's first version: its file's serial, no history.
    fn new(zone: &Zone) -> Option<ZoneHistory> {
        Some(ZoneHistory {
            current: Arc::new(ZoneVersion::of(zone, zone.serial())?),
            diffs: VecDeque::new(),
        })
    }

    /// The history after a reload loaded `zone`, or `None` when it transfers the same data
    /// as now and its file's serial is not newer.
    fn advance(&self, zone: &Zone) -> Option<ZoneHistory> {
        let last = self.current.serial();
        let file = zone.serial();
        let unchanged = ZoneVersion::of(zone, last)?;
        if self.current.same_data(&unchanged) && SerialNumber::new(file) <= SerialNumber::new(last)
        {
            return None;
        }
        let next = Arc::new(ZoneVersion::of(zone, next_serial(last, file))?);
        let mut diffs = self.diffs.clone();
        diffs.push_back(Arc::new(Diff::between(&self.current, &next)));
        while diffs.len() > HISTORY_LEN {
            diffs.pop_front();
        }
        Some(ZoneHistory {
            current: next,
            diffs,
        })
    }

    /// The version served now.
    pub fn current(&self) -> &Arc<ZoneVersion> {
        &self.current
    }

    /// What an IXFR from version `from` gets.
    pub fn journal(&self, from: u32) -> Journal {
        let current = self.current.serial();
        if SerialNumber::new(from) >= SerialNumber::new(current) {
            return Journal::UpToDate;
        }
        let Some(start) = self.diffs.iter().position(|d| d.from_serial() == from) else {
            return Journal::Full;
        };
        let diffs: Vec<Arc<Diff>> = self.diffs.iter().skip(start).cloned().collect();
        if diffs.iter().map(|d| d.len()).sum::<usize>() > self.current.records.len() {
            return Journal::Full;
        }
        Journal::Incremental(diffs)
    }
}

/// Every zone's history, by origin: the balancer's record of what it served.
#[derive(Clone, Debug, Default)]
pub struct ZoneVersions {
    zones: HashMap<LowerName, ZoneHistory>,
}

/// What a reload's zones become: the versions to keep, the zones to serve, what changed.
pub struct Updated {
    pub versions: ZoneVersions,
    /// The loaded zones with the serials to serve.
    pub zones: Vec<Zone>,
    /// The origins whose transferred data changed (every zone that is new).
    pub changed: Vec<Name>,
}

impl ZoneVersions {
    /// The versions after a reload loaded `zones` (zones no longer loaded are forgotten).
    /// Nothing changes in `self`: the caller keeps the result once the reload is served.
    pub fn updated(&self, zones: Vec<Zone>) -> Updated {
        let mut versions = ZoneVersions::default();
        let mut served = Vec::with_capacity(zones.len());
        let mut changed = Vec::new();
        for zone in zones {
            let origin = LowerName::new(zone.origin());
            let (history, is_change) = match self.zones.get(&origin) {
                None => (ZoneHistory::new(&zone), true),
                Some(old) => match old.advance(&zone) {
                    Some(next) => (Some(next), true),
                    None => (Some(old.clone()), false),
                },
            };
            let Some(history) = history else {
                served.push(zone); // no SOA: nothing to transfer (validation refuses these)
                continue;
            };
            if is_change {
                changed.push(zone.origin().clone());
            }
            served.push(zone.with_serial(history.current.serial()));
            versions.zones.insert(origin, history);
        }
        Updated {
            versions,
            zones: served,
            changed,
        }
    }

    /// The history of the zone at `origin`.
    pub fn get(&self, origin: &LowerName) -> Option<&ZoneHistory> {
        self.zones.get(origin)
    }
}

#[cfg(test)]
#[path = "versions_tests.rs"]
mod tests;
