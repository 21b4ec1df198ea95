//! The answer table, the class table and the class tries in service, behind their outer maps (map-in-map).
//!
//! A config change (`swap`) builds new inner maps off line, fills them, and puts each in its
//! outer map's single slot with one update: the XDP program sees the old table or the new one,
//! never a mix of entries. A metric change (`update`) writes only the entries that changed, in
//! the table in service.
//!
//! The name hashes of the keys are seeded with a random seed, chosen when the first table is
//! built and none is in service yet (a restarted xgslbd adopts the one serving), and kept for
//! every later table: a seed change between two tables would leave a moment where a query
//! meets the new seed and the old table and misses (it would be passed, never answered
//! wrongly: entries hold their names). Nobody outside learns the seed, so nobody can aim two
//! names at one key. Client class ids are stable across swaps (the balancer keeps them), so
//! a query that meets the new trie and the old table, or the reverse, in the instant between
//! the slot updates still gets an answer of the old or the new config: an unknown class falls
//! back to the default class's answer, in either table.
use std::{
    collections::HashMap as StdHashMap,
    hash::BuildHasherDefault,
    net::IpAddr,
    time::{Duration, Instant},
};

use aya::maps::{Array, ArrayOfMaps, HashMap, IterableMap, MapData, MapError, lpm_trie::LpmTrie};
use ipnet::IpNet;
use xgslb_common::{
    BPF_F_NO_PREALLOC, ClassId, ClassKey, ClassLengths, EcsConfig, EcsRegion, Entry,
    MAX_CLASS_LENGTHS, MAX_CLASS_PREFIXES, MAX_HASHED_V6_LEN, MIN_TABLE_ENTRIES, Meta,
};

use super::publish::{MapOp, diff};
use crate::plan::ecs::{EcsPolicy, partition};
use crate::plan::key::{WordHasher, key_of, random_seed};

type EntryTable = HashMap<MapData, u64, Entry>;
type ClassTable = HashMap<MapData, ClassKey, ClassId>;
type Trie4 = LpmTrie<MapData, [u8; 4], ClassId>;
type Trie6 = LpmTrie<MapData, [u8; 16], ClassId>;
type EcsTrie4 = LpmTrie<MapData, [u8; 4], EcsRegion>;
type EcsTrie6 = LpmTrie<MapData, [u8; 16], EcsRegion>;

/// The class maps: the outer maps of the tries and the table, and the lengths.
pub struct ClassMaps {
    pub trie4: ArrayOfMaps<MapData, Trie4>,
    pub trie6: ArrayOfMaps<MapData, Trie6>,
    pub table: ArrayOfMaps<MapData, ClassTable>,
    pub lengths: Array<MapData, ClassLengths>,
}

/// The ECS maps: the outer maps of the tries, and the config.
pub struct EcsMaps {
    pub trie4: ArrayOfMaps<MapData, EcsTrie4>,
    pub trie6: ArrayOfMaps<MapData, EcsTrie6>,
    pub config: Array<MapData, EcsConfig>,
}

/// What a publication did, for logs, stats and the bench.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PublishReport {
    /// Map writes made (entries and slot updates).
    pub writes: usize,
    /// Whether the tables were swapped whole.
    pub swapped: bool,
    /// Time until the new content was in service (for a swap: the outer maps updated).
    pub live: Duration,
    /// Time spent in all, bookkeeping included.
    pub elapsed: Duration,
}

/// The outer maps and what the tables in service hold.
pub struct Tables {
    entries: ArrayOfMaps<MapData, EntryTable>,
    seed_map: Array<MapData, u64>,
    /// The name-hash seed of the table in service.
    seed: u64,
    /// The stamp of the table in service (`EntryHead::table`): the count of swaps made on
    /// these maps, so every swap, by this process or the one before, changes it.
    stamp: u8,
    class_trie4: ArrayOfMaps<MapData, Trie4>,
    class_trie6: ArrayOfMaps<MapData, Trie6>,
    classes: ArrayOfMaps<MapData, ClassTable>,
    class_lengths: Array<MapData, ClassLengths>,
    ecs: EcsMaps,
    /// How client subnets are honoured (written to `ecs.config` with each swap).
    ecs_policy: EcsPolicy,
    meta_map: Array<MapData, Meta>,
    /// The answer table in service, once this process has swapped one in.
    current: Option<EntryTable>,
    /// The class tries, class table and ECS tries in service with it.
    tries: Option<(Trie4, Trie6, ClassTable, EcsTrie4, EcsTrie6)>,
    /// Its entries, by key bytes.
    published: Published,
    /// The prefixes of the tries in service.
    published_prefixes: Vec<(IpNet, ClassId)>,
    meta: Meta,
}

impl Tables {
    /// Wraps the outer maps and the meta map of a loaded object. Until the first `swap`,
    /// whatever a previous xgslbd left in the slots keeps serving.
    pub fn new(
        entries: ArrayOfMaps<MapData, EntryTable>,
        seed_map: Array<MapData, u64>,
        class_maps: ClassMaps,
        ecs: EcsMaps,
        meta_map: Array<MapData, Meta>,
    ) -> Self {
        let ClassMaps {
            trie4: class_trie4,
            trie6: class_trie6,
            table: classes,
            lengths: class_lengths,
        } = class_maps;
        let meta = meta_map.get(&0, 0).unwrap_or_default();
        let seed = seed_map.get(&0, 0).unwrap_or_default();
        Self {
            entries,
            seed_map,
            seed,
            stamp: meta.swaps as u8,
            class_trie4,
            class_trie6,
            classes,
            class_lengths,
            ecs,
            ecs_policy: EcsPolicy::default(),
            meta_map,
            current: None,
            tries: None,
            published: Published::default(),
            published_prefixes: Vec::new(),
            meta,
        }
    }

    /// Honours client subnets as `policy` says from now on: written at once when tables are
    /// in service, else with the first swap.
    pub fn set_ecs_policy(&mut self, policy: &EcsPolicy) -> Result<(), MapError> {
        self.ecs_policy = policy.clone();
        if self.tries.is_some() {
            self.ecs.config.set(0, self.ecs_config(), 0)?;
        }
        Ok(())
    }

    /// The `EcsConfig` of the policy. The program answers client subnets only when every
    /// resolver's are honoured (it does not check the source; the slow path does).
    fn ecs_config(&self) -> EcsConfig {
        EcsConfig {
            answer: self.ecs_policy.trusted.is_empty() as u8,
            max4: self.ecs_policy.max4,
            max6: self.ecs_policy.max6,
            _pad: [0; 5],
        }
    }

    /// Publication facts (generation, sizes).
    pub fn meta(&self) -> Meta {
        self.meta
    }

    /// Entries of the answer table in service, as this process published them.
    pub fn published_len(&self) -> usize {
        self.published.len()
    }

    /// The name-hash seed of the table in service.
    pub fn seed(&self) -> u64 {
        self.seed
    }

    /// Replaces the answer table, the class table and the class tries with new ones holding
    /// exactly `entries` and `prefixes`.
    pub fn swap(
        &mut self,
        entries: &[Entry],
        prefixes: &[(IpNet, ClassId)],
    ) -> Result<PublishReport, MapError> {
        // The seed in service first (no miss window); a new one only if two of these names
        // meet on one key under it.
        let current = (self.seed != 0).then_some(self.seed);
        let seeds = current
            .into_iter()
            .chain(std::iter::repeat_with(random_seed).take(SEED_TRIES));
        let (seed, keyed) = match assign_keys(entries, seeds, key_of) {
            Some(found) => found,
            None => {
                // 64-bit keys of a few million names meet with odds below 1e-7 per seed: this
                // is not expected in a lifetime. Serve what fits rather than nothing.
                let seed = random_seed();
                tracing::error!("every seed tried put two names on one key; serving anyway");
                (seed, keyed(seed, entries))
            }
        };
        if Some(seed) != current && current.is_some() {
            tracing::warn!("two names met on one key; the name hashes have a new seed");
        }
        self.swap_keyed(seed, &keyed, prefixes)
    }

    /// `swap` with the seed and keys given: for tests that place an entry under another's key
    /// (a forced hash collision). The seed is kept for later swaps.
    pub fn swap_keyed(
        &mut self,
        seed: u64,
        selections: &[(u64, Entry)],
        prefixes: &[(IpNet, ClassId)],
    ) -> Result<PublishReport, MapError> {
        let start = Instant::now();
        let stamp = (self.meta.swaps + 1) as u8;
        // Sized to the content (hash tables may differ in size from their template), with
        // room for the single-entry updates that add keys until the next swap.
        let capacity = (selections.len() as u32)
            .saturating_mul(2)
            .max(MIN_TABLE_ENTRIES);
        let table = EntryTable::create(capacity, BPF_F_NO_PREALLOC)?;
        let fd = raw_fd(table.map());
        // The entries go in from several threads (the kernel locks the table's buckets one
        // by one, so writers on other CPUs seldom wait for each other) while this thread
        // builds the class maps: a million-entry swap is bound by the kernel's work per
        // entry, which one core does at a few microseconds each.
        let workers = fill_threads();
        let (built, filled) = std::thread::scope(|s| {
            let fills: Vec<_> = (0..workers)
                .map(|w| s.spawn(move || fill_entries(fd, selections, stamp, w, workers)))
                .collect();
            let built = NewClassMaps::build(prefixes);
            let filled = fills.into_iter().try_for_each(|f| {
                f.join().unwrap_or_else(|_| {
                    Err(std::io::Error::other(
                        "a thread filling the entries panicked",
                    ))
                })
            });
            (built, filled)
        });
        filled.map_err(batch_error)?;
        let NewClassMaps {
            trie4,
            trie6,
            classes,
            lengths,
            ecs4,
            ecs6,
            regions,
        } = built?;
        // Classes first: a class the new table does not know falls back to the default class.
        // While the class table changes, the program tries the old and the new lengths (a
        // length with no prefix is a miss). Should a slot update fail, the slots hold a mix:
        // forget what is in service, so that the next publication swaps everything again
        // instead of diffing against a guess.
        let old_lengths = self.class_lengths.get(&0, 0).unwrap_or_default();
        let ecs_config = self.ecs_config();
        let slots = (|| {
            self.class_trie4.set(0, &trie4, 0)?;
            self.class_trie6.set(0, &trie6, 0)?;
            self.ecs.trie4.set(0, &ecs4, 0)?;
            self.ecs.trie6.set(0, &ecs6, 0)?;
            self.ecs.config.set(0, ecs_config, 0)?;
            self.class_lengths
                .set(0, union_lengths(&old_lengths, &lengths), 0)?;
            self.classes.set(0, &classes, 0)?;
            self.class_lengths.set(0, lengths, 0)?;
            self.seed_map.set(0, seed, 0)?;
            self.entries.set(0, &table, 0)
        })();
        if let Err(e) = slots {
            self.current = None;
            self.tries = None;
            self.published.clear();
            self.published_prefixes.clear();
            return Err(e);
        }
        let live = start.elapsed();
        self.seed = seed;
        self.stamp = stamp;
        self.current = Some(table);
        self.tries = Some((trie4, trie6, classes, ecs4, ecs6));
        self.published = index(selections, stamp);
        self.published_prefixes = prefixes.to_vec();
        self.meta.generation += 1;
        self.meta.swaps += 1;
        self.meta.selections = selections.len() as u64;
        self.meta.prefixes = prefixes.len() as u64;
        // The new tables serve already: a stale meta map is not worth failing for.
        if let Err(e) = self.write_meta() {
            tracing::warn!("cannot write the meta map (xgslbctl shows stale facts): {e}");
        }
        Ok(PublishReport {
            writes: selections.len() + prefixes.len() + regions + 7,
            swapped: true,
            live,
            elapsed: start.elapsed(),
        })
    }

    /// Brings the table in service to `selections` with single-entry writes (puts before
    /// deletes, so no key present in both is ever missing). Swaps instead when this process
    /// has not swapped in a table yet (it does not know what an adopted one holds), or when
    /// the prefixes changed (the classes and their entries must change together).
    pub fn update(
        &mut self,
        selections: &[Entry],
        prefixes: &[(IpNet, ClassId)],
    ) -> Result<PublishReport, MapError> {
        if self.published_prefixes != prefixes || self.current.is_none() {
            return self.swap(selections, prefixes);
        }
        let start = Instant::now();
        let Some(desired) =
            keyed_unique(self.seed, selections, key_of).map(|k| index(&k, self.stamp))
        else {
            // Two names on one key under this seed: a swap finds another.
            return self.swap(selections, prefixes);
        };
        let Some(table) = self.current.as_mut() else {
            return self.swap(selections, prefixes);
        };
        let ops = diff(&desired, &self.published);
        let written = ops.iter().try_for_each(|op| match op {
            MapOp::Put(k, v) => table.insert(k, v, 0),
            MapOp::Delete(k) => table.remove(k),
        });
        if let Err(e) = written {
            // A full table (more classes differ from the default than it was sized for) or
            // any other failure: a swap builds a table sized for what is wanted now.
            tracing::warn!("single-entry update failed ({e}); swapping the tables whole");
            return self.swap(selections, prefixes);
        }
        self.published = desired;
        if !ops.is_empty() {
            self.meta.generation += 1;
            self.meta.selections = selections.len() as u64;
            if let Err(e) = self.write_meta() {
                tracing::warn!("cannot write the meta map (xgslbctl shows stale facts): {e}");
            }
        }
        Ok(PublishReport {
            writes: ops.len(),
            swapped: false,
            live: start.elapsed(),
            elapsed: start.elapsed(),
        })
    }

    /// Writes one entry of the table in service (a metric change the caller already
    /// computed); `false` when no table has been swapped in by this process yet, or the
    /// entry's name cannot be hashed.
    pub fn put(&mut self, entry: Entry) -> Result<bool, MapError> {
        let entry = stamped(entry, self.stamp);
        let Some(key) = key_of(self.seed, &entry) else {
            return Ok(false);
        };
        let Some(table) = self.current.as_mut() else {
            return Ok(false);
        };
        table.insert(key, entry, 0)?;
        self.published.insert(key, entry);
        self.meta.generation += 1;
        self.meta.selections = self.published.len() as u64;
        self.write_meta()?;
        Ok(true)
    }

    /// Kernel memory held by the table and tries in service, bytes (the maps' `memlock` as
    /// /proc reports it: for these no-prealloc maps, what their elements take now).
    pub fn memory_bytes(&self) -> std::io::Result<u64> {
        let mut fds = Vec::new();
        if let Some(t) = &self.current {
            fds.push(raw_fd(t.map()));
        }
        if let Some((t4, t6, classes, e4, e6)) = &self.tries {
            fds.extend([t4.map(), t6.map(), classes.map(), e4.map(), e6.map()].map(raw_fd));
        }
        let mut total = 0;
        for fd in fds {
            let info = std::fs::read_to_string(format!("/proc/self/fdinfo/{fd}"))?;
            total += info
                .lines()
                .find_map(|l| l.strip_prefix("memlock:"))
                .and_then(|v| v.trim().parse::<u64>().ok())
                .unwrap_or(0);
        }
        Ok(total)
    }

    fn write_meta(&mut self) -> Result<(), MapError> {
        self.meta_map.set(0, self.meta, 0)
    }
}

/// What this process published, by key. Hashed with `WordHasher`: the keys are already
/// seeded hashes, and a million entries must index fast.
type Published = StdHashMap<u64, Entry, BuildHasherDefault<WordHasher>>;

/// `entry` as the table with stamp `stamp` holds it.
fn stamped(mut entry: Entry, stamp: u8) -> Entry {
    entry.head.table = stamp;
    entry
}

/// `entries` as the table with stamp `stamp` holds them, by key.
fn index(entries: &[(u64, Entry)], stamp: u8) -> Published {
    let mut map = Published::with_capacity_and_hasher(entries.len(), Default::default());
    map.extend(entries.iter().map(|&(k, e)| (k, stamped(e, stamp))));
    map
}

/// The class table of `prefixes` and its lengths: each prefix masked, under its length. A
/// family with more than `MAX_CLASS_LENGTHS` lengths (or, for IPv6, a prefix longer than
/// `MAX_HASHED_V6_LEN`) stays out of the table and is looked up in its trie.
pub fn class_table(prefixes: &[(IpNet, ClassId)]) -> (Vec<(ClassKey, ClassId)>, ClassLengths) {
    let lengths_of = |v6: bool| {
        let mut l: Vec<u8> = prefixes
            .iter()
            .filter(|(p, _)| p.addr().is_ipv6() == v6)
            .map(|(p, _)| p.prefix_len())
            .collect();
        l.sort_unstable_by(|a, b| b.cmp(a));
        l.dedup();
        l
    };
    let (l4, l6) = (lengths_of(false), lengths_of(true));
    let v6_too_long = l6.first().is_some_and(|&l| l > MAX_HASHED_V6_LEN);
    let out = pack_lengths(&l4, &l6, false, v6_too_long);
    let (trie4, trie6) = (out.trie4 != 0, out.trie6 != 0);
    let entries = prefixes
        .iter()
        .filter_map(|&(p, class)| match p.trunc() {
            IpNet::V4(n) if !trie4 => {
                Some((ClassKey::v4(u32::from(n.addr()), n.prefix_len()), class))
            }
            IpNet::V6(n) if !trie6 => {
                let a = u128::from(n.addr());
                Some((
                    ClassKey::v6((a >> 64) as u64, a as u64, n.prefix_len()),
                    class,
                ))
            }
            _ => None,
        })
        .collect();
    (entries, out)
}

/// The lengths of `a` and `b` together (a family whose lengths do not fit goes to its trie).
fn union_lengths(a: &ClassLengths, b: &ClassLengths) -> ClassLengths {
    let merge = |x: &[u8], y: &[u8]| {
        let mut l: Vec<u8> = x.iter().chain(y).copied().collect();
        l.sort_unstable_by(|p, q| q.cmp(p));
        l.dedup();
        l
    };
    let l4 = merge(&a.v4[..a.n4 as usize], &b.v4[..b.n4 as usize]);
    let l6 = merge(&a.v6[..a.n6 as usize], &b.v6[..b.n6 as usize]);
    pack_lengths(
        &l4,
        &l6,
        a.trie4 != 0 || b.trie4 != 0,
        a.trie6 != 0 || b.trie6 != 0,
    )
}

/// `ClassLengths` of the lengths `l4` and `l6` (longest first); a family goes to its trie
/// when told to or when its lengths do not fit.
fn pack_lengths(l4: &[u8], l6: &[u8], trie4: bool, trie6: bool) -> ClassLengths {
    let trie4 = trie4 || l4.len() > MAX_CLASS_LENGTHS;
    let trie6 = trie6 || l6.len() > MAX_CLASS_LENGTHS;
    let mut out = ClassLengths {
        trie4: trie4 as u8,
        trie6: trie6 as u8,
        ..ClassLengths::default()
    };
    if !trie4 {
        out.n4 = l4.len() as u8;
        out.v4[..l4.len()].copy_from_slice(l4);
    }
    if !trie6 {
        out.n6 = l6.len() as u8;
        out.v6[..l6.len()].copy_from_slice(l6);
    }
    out
}

/// Seeds tried after the one in service before giving up on a table without a shared key.
const SEED_TRIES: usize = 8;

/// Every entry keyed under `seed` by `key_of`, or `None` when two entries for different
/// questions share a key: the table could hold only one, and the other's question would get
/// its fallback's answer (NODATA, NXDOMAIN) instead of its own.
pub fn keyed_unique(
    seed: u64,
    entries: &[Entry],
    key_of: impl Fn(u64, &Entry) -> Option<u64>,
) -> Option<Vec<(u64, Entry)>> {
    let mut heads: StdHashMap<u64, &xgslb_common::EntryHead, BuildHasherDefault<WordHasher>> =
        StdHashMap::with_capacity_and_hasher(entries.len(), Default::default());
    let mut out = Vec::with_capacity(entries.len());
    for e in entries {
        let Some(k) = key_of(seed, e) else {
            continue;
        };
        if let Some(other) = heads.insert(k, &e.head)
            && *other != e.head
        {
            return None;
        }
        out.push((k, *e));
    }
    Some(out)
}

/// The first of `seeds` under which no two entries share a key, with the keyed entries.
pub fn assign_keys(
    entries: &[Entry],
    seeds: impl IntoIterator<Item = u64>,
    key_of: impl Fn(u64, &Entry) -> Option<u64>,
) -> Option<(u64, Vec<(u64, Entry)>)> {
    seeds
        .into_iter()
        .find_map(|seed| keyed_unique(seed, entries, &key_of).map(|k| (seed, k)))
}

/// Every entry with its key under `seed` (entries whose name cannot be hashed left out).
pub fn keyed(seed: u64, entries: &[Entry]) -> Vec<(u64, Entry)> {
    entries
        .iter()
        .filter_map(|e| key_of(seed, e).map(|k| (k, *e)))
        .collect()
}

/// Entries written per BPF_MAP_UPDATE_BATCH call when a table is built.
const BATCH: usize = 8192;

/// `bpf(BPF_MAP_UPDATE_BATCH)`: writes `keys[i]` -> `values[i]` into the map `fd` in one
/// system call. aya has no batch operations; filling a million-entry table one syscall per
/// entry spends most of its time crossing into the kernel.
fn update_batch<K: bytemuck::Pod, V: bytemuck::Pod>(
    fd: std::os::fd::RawFd,
    keys: &[K],
    values: &[V],
) -> std::io::Result<()> {
    /// The `batch` member of `union bpf_attr` (include/uapi/linux/bpf.h).
    #[repr(C)]
    struct BatchAttr {
        in_batch: u64,
        out_batch: u64,
        keys: u64,
        values: u64,
        count: u32,
        map_fd: u32,
        elem_flags: u64,
        flags: u64,
    }
    const BPF_MAP_UPDATE_BATCH: libc::c_long = 26;
    assert_eq!(keys.len(), values.len());
    let mut done = 0usize;
    while done < keys.len() {
        let mut attr = BatchAttr {
            in_batch: 0,
            out_batch: 0,
            keys: keys[done..].as_ptr() as u64,
            values: values[done..].as_ptr() as u64,
            count: (keys.len() - done) as u32,
            map_fd: fd as u32,
            elem_flags: 0,
            flags: 0,
        };
        // SAFETY: the attr points at `count` keys and values that outlive the call; the
        // kernel writes back only `count` (how many it processed).
        let rc = unsafe {
            libc::syscall(
                libc::SYS_bpf,
                BPF_MAP_UPDATE_BATCH,
                &mut attr as *mut BatchAttr,
                size_of::<BatchAttr>() as u32,
            )
        };
        if rc < 0 {
            return Err(std::io::Error::last_os_error());
        }
        if attr.count == 0 {
            return Err(std::io::Error::other(
                "the kernel took no element of a batch",
            ));
        }
        done += attr.count as usize;
    }
    Ok(())
}

/// The class maps of a swap, built and filled, not yet in service.
struct NewClassMaps {
    trie4: Trie4,
    trie6: Trie6,
    classes: ClassTable,
    lengths: ClassLengths,
    ecs4: EcsTrie4,
    ecs6: EcsTrie6,
    /// How many prefixes the ECS partition has.
    regions: usize,
}

impl NewClassMaps {
    /// The class tries, the class table and the ECS tries of `prefixes`.
    fn build(prefixes: &[(IpNet, ClassId)]) -> Result<Self, MapError> {
        let (v4, v6): (Vec<_>, Vec<_>) = prefixes.iter().partition(|(p, _)| p.addr().is_ipv4());
        let trie4 = Trie4::create(trie_capacity(v4.len()), BPF_F_NO_PREALLOC)?;
        fill_trie(trie4.map(), &v4, lpm_key4)?;
        let trie6 = Trie6::create(trie_capacity(v6.len()), BPF_F_NO_PREALLOC)?;
        fill_trie(trie6.map(), &v6, lpm_key6)?;
        let regions = partition(prefixes);
        let (r4, r6): (Vec<_>, Vec<_>) = regions.iter().partition(|(p, _)| p.addr().is_ipv4());
        let ecs4 = EcsTrie4::create(trie_capacity(r4.len()), BPF_F_NO_PREALLOC)?;
        fill_trie(ecs4.map(), &r4, lpm_key4)?;
        let ecs6 = EcsTrie6::create(trie_capacity(r6.len()), BPF_F_NO_PREALLOC)?;
        fill_trie(ecs6.map(), &r6, lpm_key6)?;
        let (class_entries, lengths) = class_table(prefixes);
        let classes =
            ClassTable::create((class_entries.len() as u32).max(1024), BPF_F_NO_PREALLOC)?;
        let fd = raw_fd(classes.map());
        for chunk in class_entries.chunks(BATCH) {
            let keys: Vec<ClassKey> = chunk.iter().map(|e| e.0).collect();
            let values: Vec<ClassId> = chunk.iter().map(|e| e.1).collect();
            update_batch(fd, &keys, &values).map_err(batch_error)?;
        }
        Ok(Self {
            trie4,
            trie6,
            classes,
            lengths,
            ecs4,
            ecs6,
            regions: regions.len(),
        })
    }
}

/// The `MapError` of a failed `update_batch`.
fn batch_error(io_error: std::io::Error) -> MapError {
    MapError::SyscallError(aya::sys::SyscallError {
        call: "bpf_map_update_batch",
        io_error,
    })
}

/// The descriptor of `map`, for the batch calls aya does not have.
fn raw_fd(map: &MapData) -> std::os::fd::RawFd {
    use std::os::fd::{AsFd, AsRawFd};
    map.fd().as_fd().as_raw_fd()
}

/// Threads that fill a swap's entries: one per CPU, at most 4 (past that the table's bucket
/// locks and the memory allocator, not the CPUs, bound it).
fn fill_threads() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get().min(4))
}

/// Worker `w` of `workers`: writes every `workers`th batch of `selections` (stamped) into
/// the table `fd`.
fn fill_entries(
    fd: std::os::fd::RawFd,
    selections: &[(u64, Entry)],
    stamp: u8,
    w: usize,
    workers: usize,
) -> std::io::Result<()> {
    for chunk in selections.chunks(BATCH).skip(w).step_by(workers) {
        let keys: Vec<u64> = chunk.iter().map(|e| e.0).collect();
        let values: Vec<Entry> = chunk.iter().map(|e| stamped(e.1, stamp)).collect();
        update_batch(fd, &keys, &values)?;
    }
    Ok(())
}

/// Fills the LPM trie `map` with `prefixes` (all of its family) in batches: one system call
/// per prefix made the 100,000 class prefixes and their ECS partition (seven times as many
/// for scattered /24s) most of a large swap's time.
fn fill_trie<K: bytemuck::Pod, V: bytemuck::Pod>(
    map: &MapData,
    prefixes: &[&(IpNet, V)],
    key_of: fn(&IpNet) -> Option<K>,
) -> Result<(), MapError> {
    let fd = raw_fd(map);
    for chunk in prefixes.chunks(BATCH) {
        let (keys, values): (Vec<K>, Vec<V>) = chunk
            .iter()
            .filter_map(|(p, v)| Some((key_of(p)?, *v)))
            .unzip();
        update_batch(fd, &keys, &values).map_err(batch_error)?;
    }
    Ok(())
}

/// The kernel's LPM key (`struct bpf_lpm_trie_key_u8`) of an IPv4 prefix: the length in bits
/// in host order, then the address in network order. aya's `Key` is not `Pod`, which the
/// batch call needs.
fn lpm_key4(p: &IpNet) -> Option<[u8; 8]> {
    let IpAddr::V4(a) = p.addr() else { return None };
    let mut key = [0; 8];
    key[..4].copy_from_slice(&u32::from(p.prefix_len()).to_ne_bytes());
    key[4..].copy_from_slice(&a.octets());
    Some(key)
}

/// `lpm_key4` of an IPv6 prefix.
fn lpm_key6(p: &IpNet) -> Option<[u8; 20]> {
    let IpAddr::V6(a) = p.addr() else { return None };
    let mut key = [0; 20];
    key[..4].copy_from_slice(&u32::from(p.prefix_len()).to_ne_bytes());
    key[4..].copy_from_slice(&a.octets());
    Some(key)
}

/// Entries of a new trie: its content and headroom; never below the template's.
fn trie_capacity(n: usize) -> u32 {
    (n as u32).saturating_mul(2).max(MAX_CLASS_PREFIXES)
}

#[cfg(test)]
mod tests {
    use super::*;
    use xgslb_common::{Body, EntryHead, EntryKind};

    fn entry(name: &[u8], qtype: u16) -> Entry {
        let mut head = EntryHead {
            name: [0; xgslb_common::NAME_KEY_LEN],
            qtype,
            class: 0,
            kind: EntryKind::Exact as u8,
            body: Body::Pass as u8,
            flags: 0,
            table: 0,
        };
        head.name[..name.len()].copy_from_slice(name);
        Entry::new(head, &[])
    }

    #[test]
    fn the_class_table_holds_each_prefix_under_its_length_longest_first() {
        let p = |s: &str, c| (s.parse::<IpNet>().unwrap(), c);
        let (entries, lengths) = class_table(&[
            p("198.18.0.0/15", 1),
            p("198.18.64.9/24", 2),
            p("2001:db8::/32", 3),
        ]);
        assert_eq!((lengths.n4, &lengths.v4[..2]), (2, &[24, 15][..]));
        assert_eq!((lengths.n6, lengths.v6[0], lengths.trie6), (1, 32, 0));
        assert!(entries.contains(&(ClassKey::v4(u32::from_be_bytes([198, 18, 64, 0]), 24), 2)));
        // Too many IPv4 lengths, or an IPv6 /128: that family goes to its trie.
        let many: Vec<_> = (16..=25).map(|l| p(&format!("10.0.0.0/{l}"), 1)).collect();
        let (entries, lengths) = class_table(&[&many[..], &[p("2001:db8::1/128", 2)]].concat());
        assert_eq!((lengths.trie4, lengths.n4, lengths.trie6), (1, 0, 1));
        assert!(entries.is_empty());
        let u = union_lengths(
            &class_table(&[p("10.0.0.0/8", 1)]).1,
            &class_table(&[p("10.0.0.0/16", 1)]).1,
        );
        assert_eq!((u.n4, &u.v4[..2]), (2, &[16, 8][..]));
    }

    #[test]
    fn two_names_on_one_key_take_another_seed() {
        let a = entry(b"\x01a\x00", 1);
        let b = entry(b"\x01b\x00", 1);
        // Under seed 7 every entry gets key 1: a collision. Under 8 keys are distinct.
        let key = |seed: u64, e: &Entry| {
            Some(if seed == 7 {
                1
            } else {
                key_of(seed, e).unwrap_or(0)
            })
        };
        assert!(keyed_unique(7, &[a, b], key).is_none());
        // The same question twice is no collision.
        assert!(keyed_unique(7, &[a, a], key).is_some());
        let (seed, keyed) = assign_keys(&[a, b], [7, 8], key).expect("a seed without collision");
        assert_eq!(seed, 8);
        assert_eq!(keyed.len(), 2);
        assert_ne!(keyed[0].0, keyed[1].0);
        assert!(assign_keys(&[a, b], [7], key).is_none());
    }
}
