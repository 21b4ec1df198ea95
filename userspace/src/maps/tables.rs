//! The selection table and the region tries in service, behind their outer maps (map-in-map).
//!
//! A config change (`swap`) builds new inner maps off line, fills them, and puts each in its
//! outer map's single slot with one update: the XDP program sees the old table or the new one,
//! never a mix of entries. A metric change (`update`) writes only the entries that changed, in
//! the table in service. Region class ids are stable across swaps (the balancer keeps them), so
//! a query that meets the new trie and the old table, or the reverse, in the instant between
//! the slot updates still gets an answer of the old or the new config: an unknown class falls
//! back to the default class's answer, in either table.
use std::{
    collections::BTreeMap,
    net::IpAddr,
    time::{Duration, Instant},
};

use aya::maps::{
    Array, ArrayOfMaps, HashMap, MapData, MapError,
    lpm_trie::{Key, LpmTrie},
};
use ipnet::IpNet;
use xgslb_common::{AnswerSet, ClassId, MAX_REGION_PREFIXES, MAX_SELECTIONS, Meta, SelectionKey};

use super::publish::{ByBytes, MapOp, diff};

/// BPF_F_NO_PREALLOC: as the templates in ebpf/src/maps.rs (the kernel requires the flags
/// of an inner map to equal its template's).
const BPF_F_NO_PREALLOC: u32 = 1;

type SelectionTable = HashMap<MapData, SelectionKey, AnswerSet>;
type Trie4 = LpmTrie<MapData, [u8; 4], ClassId>;
type Trie6 = LpmTrie<MapData, [u8; 16], ClassId>;

/// What a publication did, for logs, stats and the bench.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PublishReport {
    /// Map writes made (entries and slot updates).
    pub writes: usize,
    /// Whether the tables were swapped whole.
    pub swapped: bool,
    /// Time spent writing.
    pub elapsed: Duration,
}

/// The outer maps and what the tables in service hold.
pub struct Tables {
    selections: ArrayOfMaps<MapData, SelectionTable>,
    regions4: ArrayOfMaps<MapData, Trie4>,
    regions6: ArrayOfMaps<MapData, Trie6>,
    meta_map: Array<MapData, Meta>,
    /// The selection table in service, once this process has swapped one in.
    current: Option<SelectionTable>,
    /// Its entries, ordered by key bytes.
    published: BTreeMap<ByBytes<SelectionKey>, AnswerSet>,
    /// The prefixes of the tries in service.
    published_prefixes: Vec<(IpNet, ClassId)>,
    meta: Meta,
}

impl Tables {
    /// Wraps the outer maps and the meta map of a loaded object. Until the first `swap`,
    /// whatever a previous xgslbd left in the slots keeps serving.
    pub fn new(
        selections: ArrayOfMaps<MapData, SelectionTable>,
        regions4: ArrayOfMaps<MapData, Trie4>,
        regions6: ArrayOfMaps<MapData, Trie6>,
        meta_map: Array<MapData, Meta>,
    ) -> Self {
        let meta = meta_map.get(&0, 0).unwrap_or_default();
        Self {
            selections,
            regions4,
            regions6,
            meta_map,
            current: None,
            published: BTreeMap::new(),
            published_prefixes: Vec::new(),
            meta,
        }
    }

    /// Publication facts (generation, sizes).
    pub fn meta(&self) -> Meta {
        self.meta
    }

    /// Entries of the selection table in service, as this process published them.
    pub fn published_len(&self) -> usize {
        self.published.len()
    }

    /// Replaces the selection table and the region tries with new ones holding exactly
    /// `selections` and `prefixes`.
    pub fn swap(
        &mut self,
        selections: &[(SelectionKey, AnswerSet)],
        prefixes: &[(IpNet, ClassId)],
    ) -> Result<PublishReport, MapError> {
        let start = Instant::now();
        let (v4, v6): (Vec<_>, Vec<_>) = prefixes.iter().partition(|(p, _)| p.addr().is_ipv4());
        // Sized to the content (hash tables may differ in size from their template), with
        // room for the single-entry updates that add keys until the next swap.
        let capacity = (selections.len() as u32)
            .saturating_mul(2)
            .max(MAX_SELECTIONS);
        let mut table = SelectionTable::create(capacity, BPF_F_NO_PREALLOC)?;
        for (k, v) in selections {
            table.insert(k, v, 0)?;
        }
        let trie4 = Trie4::create(trie_capacity(v4.len()), BPF_F_NO_PREALLOC)?;
        let mut trie4 = trie4;
        for (p, class) in &v4 {
            if let IpAddr::V4(a) = p.addr() {
                trie4.insert(&Key::new(p.prefix_len() as u32, a.octets()), class, 0)?;
            }
        }
        let mut trie6 = Trie6::create(trie_capacity(v6.len()), BPF_F_NO_PREALLOC)?;
        for (p, class) in &v6 {
            if let IpAddr::V6(a) = p.addr() {
                trie6.insert(&Key::new(p.prefix_len() as u32, a.octets()), class, 0)?;
            }
        }
        // Tries first: a class the new table does not know falls back to the default class.
        self.regions4.set(0, &trie4, 0)?;
        self.regions6.set(0, &trie6, 0)?;
        self.selections.set(0, &table, 0)?;
        self.current = Some(table);
        self.published = selections.iter().map(|&(k, v)| (ByBytes(k), v)).collect();
        self.published_prefixes = prefixes.to_vec();
        self.meta.generation += 1;
        self.meta.swaps += 1;
        self.meta.selections = selections.len() as u64;
        self.meta.prefixes = prefixes.len() as u64;
        self.write_meta()?;
        Ok(PublishReport {
            writes: selections.len() + prefixes.len() + 3,
            swapped: true,
            elapsed: start.elapsed(),
        })
    }

    /// Brings the table in service to `selections` with single-entry writes (puts before
    /// deletes, so no key present in both is ever missing). Swaps instead when this process
    /// has not swapped in a table yet (it does not know what an adopted one holds), or when
    /// the prefixes changed (the classes and their entries must change together).
    pub fn update(
        &mut self,
        selections: &[(SelectionKey, AnswerSet)],
        prefixes: &[(IpNet, ClassId)],
    ) -> Result<PublishReport, MapError> {
        if self.published_prefixes != prefixes {
            return self.swap(selections, prefixes);
        }
        let Some(table) = self.current.as_mut() else {
            return self.swap(selections, prefixes);
        };
        let start = Instant::now();
        let desired: BTreeMap<_, _> = selections.iter().map(|&(k, v)| (ByBytes(k), v)).collect();
        let ops = diff(&desired, &self.published);
        for op in &ops {
            match op {
                MapOp::Put(k, v) => table.insert(k.0, v, 0)?,
                MapOp::Delete(k) => table.remove(&k.0)?,
            }
        }
        self.published = desired;
        if !ops.is_empty() {
            self.meta.generation += 1;
            self.meta.selections = selections.len() as u64;
            self.write_meta()?;
        }
        Ok(PublishReport {
            writes: ops.len(),
            swapped: false,
            elapsed: start.elapsed(),
        })
    }

    fn write_meta(&mut self) -> Result<(), MapError> {
        self.meta_map.set(0, self.meta, 0)
    }
}

/// Entries of a new trie: its content and headroom; never below the template's.
fn trie_capacity(n: usize) -> u32 {
    (n as u32).saturating_mul(2).max(MAX_REGION_PREFIXES)
}
