//! The maps the XDP program reads; user space (xgslbd) is their only writer, except the
//! per-CPU counters, which only this program writes.
use aya_ebpf::{
    btf_maps::{ArrayOfMaps, HashMap as BtfHashMap, LpmTrie},
    macros::{btf_map, map},
    maps::{Array, LpmTrie as LegacyLpmTrie, LruHashMap, LruPerCpuHashMap, PerCpuArray},
};
use xgslb_common::{
    BPF_F_NO_PREALLOC, COOKIE_STATS_LEN, ClassId, ClassKey, ClassLengths, CookieConfig,
    ECS_STATS_LEN, EcsConfig, EcsRegion, Entry, LdnsKey, ListenerSet, MAX_ADDRS, MAX_ANSWER_STATS,
    MAX_CLASS_PREFIXES, MAX_LDNS_TRACKED, MAX_RRL_EXEMPT, MIN_TABLE_ENTRIES, Meta,
    RRL_TABLE_ENTRIES, RrlBucket, RrlConfig, RrlKey, Scratch, Stats, map_names,
};

/// An answer table: `entry_key` -> `Entry`. Only the template of the tables user space
/// creates; the program reads them through `ENTRIES`. (A hash table's size is not part of
/// the template the kernel compares, so user space sizes each table to what it holds.)
pub type EntryTable =
    BtfHashMap<u64, Entry, { MIN_TABLE_ENTRIES as usize }, { BPF_F_NO_PREALLOC as usize }>;
/// An IPv4 class trie: LDNS prefix -> client class; a template like `EntryTable`. Its flags
/// are the ABI's, which user space creates the tries with, rather than aya's default.
pub type ClassTrie4 =
    LpmTrie<[u8; 4], ClassId, { MAX_CLASS_PREFIXES as usize }, { BPF_F_NO_PREALLOC as usize }>;
/// An IPv6 class trie: LDNS prefix -> client class.
pub type ClassTrie6 =
    LpmTrie<[u8; 16], ClassId, { MAX_CLASS_PREFIXES as usize }, { BPF_F_NO_PREALLOC as usize }>;

// The names in the attributes are the literals of `xgslb_common::map_names`: aya-ebpf's
// `#[map(name = ..)]` and `#[btf_map(name = ..)]` take only a string literal (they expand to
// `export_name`). The const block at the end checks each against the ABI's constant, and
// userspace's `maps::object_tests` checks the built object's maps, names and sizes.

/// Slot 0: the answer table in service. User space swaps in a whole new table at once.
#[btf_map(name = "XGSLB_ENT_V5")]
pub static ENTRIES: ArrayOfMaps<EntryTable, 1> = ArrayOfMaps::new();

/// The seed of the name hashes of the table in service (`xgslb_common::name_hash`).
#[map(name = "XGSLB_SEED_V4")]
pub static SEED: Array<u64> = Array::pinned(1, 0);

/// A class table: masked prefix -> client class (see `xgslb_common::ClassKey`); a template
/// like `EntryTable`.
pub type ClassTable =
    BtfHashMap<ClassKey, ClassId, { MAX_CLASS_PREFIXES as usize }, { BPF_F_NO_PREALLOC as usize }>;

/// Slot 0: the class table in service.
#[btf_map(name = "XGSLB_CLS_V2")]
pub static CLASSES: ArrayOfMaps<ClassTable, 1> = ArrayOfMaps::new();

/// The prefix lengths the class table in service holds.
#[map(name = "XGSLB_CLSLEN_V1")]
pub static CLASS_LENGTHS: Array<ClassLengths> = Array::pinned(1, 0);

/// Slot 0: the IPv4 class trie in service (used when the class table cannot hold IPv4).
#[btf_map(name = "XGSLB_CTRIE4_V1")]
pub static CLASS_TRIE4: ArrayOfMaps<ClassTrie4, 1> = ArrayOfMaps::new();

/// Slot 0: the IPv6 class trie in service (used when the class table cannot hold IPv6).
#[btf_map(name = "XGSLB_CTRIE6_V1")]
pub static CLASS_TRIE6: ArrayOfMaps<ClassTrie6, 1> = ArrayOfMaps::new();

/// The (destination address, UDP port) pairs this program answers queries sent to. Written
/// whole by xgslbd when it starts, before the program is attached or adopted.
#[map(name = "XGSLB_LSN_V3")]
pub static LISTENERS: Array<ListenerSet> = Array::pinned(1, 0);

/// One `Stats` per CPU: counters by outcome and pass reason.
#[map(name = "XGSLB_STAT_V5")]
pub static STATS: PerCpuArray<Stats> = PerCpuArray::pinned(1, 0);

/// One u32 per CPU: the round-robin pick counter that walks answer sets' slot tables.
#[map(name = "XGSLB_PICK_V2")]
pub static PICK: PerCpuArray<u32> = PerCpuArray::pinned(1, 0);

/// One `Scratch` per CPU: the selection key under construction and the launder slot.
#[map(name = "XGSLB_SCRATCH_V7")]
pub static SCRATCH: PerCpuArray<Scratch> = PerCpuArray::with_max_entries(1, 0);

/// Publication facts for `xgslbctl` (generation, sizes). Never read here: declared in the
/// object so that it is created and pinned with the other maps.
#[map(name = "XGSLB_META_V2")]
pub static META: Array<Meta> = Array::pinned(1, 0);

/// (LDNS address, class) -> sampled queries, per CPU; the least recently seen are evicted.
/// Only this program writes it; xgslbd reads and clears it.
#[map(name = "XGSLB_LDNS_V2")]
pub static LDNS: LruPerCpuHashMap<LdnsKey, u64> = LruPerCpuHashMap::pinned(MAX_LDNS_TRACKED, 0);

/// Answers by (answer set's stat slot, leading address), per CPU: what xgslbd exports as
/// answers per wide IP by virtual server and region.
#[map(name = "XGSLB_ANS_V3")]
pub static ANSWERS: PerCpuArray<u64> = PerCpuArray::pinned(MAX_ANSWER_STATS * MAX_ADDRS as u32, 0);

/// An IPv4 ECS trie: partition prefix -> class and scope (`xgslb_common::EcsRegion`); a
/// template like `EntryTable`.
pub type EcsTrie4 =
    LpmTrie<[u8; 4], EcsRegion, { MAX_CLASS_PREFIXES as usize }, { BPF_F_NO_PREALLOC as usize }>;
/// An IPv6 ECS trie.
pub type EcsTrie6 =
    LpmTrie<[u8; 16], EcsRegion, { MAX_CLASS_PREFIXES as usize }, { BPF_F_NO_PREALLOC as usize }>;

/// Slot 0: the IPv4 ECS trie in service (client subnets' classes and scopes).
#[btf_map(name = "XGSLB_ETRIE4_V1")]
pub static ECS_TRIE4: ArrayOfMaps<EcsTrie4, 1> = ArrayOfMaps::new();

/// Slot 0: the IPv6 ECS trie in service.
#[btf_map(name = "XGSLB_ETRIE6_V1")]
pub static ECS_TRIE6: ArrayOfMaps<EcsTrie6, 1> = ArrayOfMaps::new();

/// How client subnets are treated (`EcsConfig`); all zero (pass them up) until xgslbd
/// publishes.
#[map(name = "XGSLB_ECS_V1")]
pub static ECS_CONFIG: Array<EcsConfig> = Array::pinned(1, 0);

/// ECS queries answered, by family and scope (`xgslb_common::ecs_stat_index`), per CPU.
#[map(name = "XGSLB_ECSST_V1")]
pub static ECS_STATS: PerCpuArray<u64> = PerCpuArray::pinned(ECS_STATS_LEN, 0);

/// How responses are rate limited (`RrlConfig`); all zero (off) until xgslbd publishes.
#[map(name = "XGSLB_RRLCFG_V1")]
pub static RRL_CONFIG: Array<RrlConfig> = Array::pinned(1, 0);

/// IPv4 prefixes whose clients are never rate limited (the value is unused).
#[map(name = "XGSLB_RRLEX4_V1")]
pub static RRL_EXEMPT4: LegacyLpmTrie<[u8; 4], u8> =
    LegacyLpmTrie::pinned(MAX_RRL_EXEMPT, BPF_F_NO_PREALLOC);

/// IPv6 prefixes whose clients are never rate limited.
#[map(name = "XGSLB_RRLEX6_V1")]
pub static RRL_EXEMPT6: LegacyLpmTrie<[u8; 16], u8> =
    LegacyLpmTrie::pinned(MAX_RRL_EXEMPT, BPF_F_NO_PREALLOC);

/// The rate limit's buckets: (client prefix, response class) -> this second's counts. One
/// map for every CPU (not per-CPU), so that a prefix's limit holds across CPUs; the least
/// recently used bucket goes first when it is full. Only this program reads or writes it
/// (not pinned: a program's counts die with it).
#[map(name = "XGSLB_RRL_V1")]
pub static RRL: LruHashMap<RrlKey, RrlBucket> = LruHashMap::with_max_entries(RRL_TABLE_ENTRIES, 0);
/// Whether DNS cookies are on, the server secret and the clock (`CookieConfig`); all zero
/// (queries with a cookie are passed) until xgslbd publishes. Written whole: a reader racing
/// a rewrite of the secret (a restart with another one) could mix halves of two keys, which
/// costs one client a fresh cookie, as any invalid one does.
#[map(name = "XGSLB_COOKIE_V1")]
pub static COOKIE: Array<CookieConfig> = Array::pinned(1, 0);

/// Answers to queries with a COOKIE option, by `CookieSeen`, per CPU.
#[map(name = "XGSLB_COOKIEST_V1")]
pub static COOKIE_STATS: PerCpuArray<u64> = PerCpuArray::pinned(COOKIE_STATS_LEN, 0);

/// The literal names above, as the ABI defines them (checked at compile time).
const _: () = {
    const fn eq(a: &str, b: &str) -> bool {
        let (a, b) = (a.as_bytes(), b.as_bytes());
        if a.len() != b.len() {
            return false;
        }
        let mut i = 0;
        while i < a.len() {
            if a[i] != b[i] {
                return false;
            }
            i += 1;
        }
        true
    }
    assert!(eq(map_names::ENTRIES, "XGSLB_ENT_V5"));
    assert!(eq(map_names::SEED, "XGSLB_SEED_V4"));
    assert!(eq(map_names::CLASSES, "XGSLB_CLS_V2"));
    assert!(eq(map_names::CLASS_LENGTHS, "XGSLB_CLSLEN_V1"));
    assert!(eq(map_names::CLASS_TRIE4, "XGSLB_CTRIE4_V1"));
    assert!(eq(map_names::CLASS_TRIE6, "XGSLB_CTRIE6_V1"));
    assert!(eq(map_names::LISTENERS, "XGSLB_LSN_V3"));
    assert!(eq(map_names::STATS, "XGSLB_STAT_V5"));
    assert!(eq(map_names::PICK, "XGSLB_PICK_V2"));
    assert!(eq(map_names::SCRATCH, "XGSLB_SCRATCH_V7"));
    assert!(eq(map_names::META, "XGSLB_META_V2"));
    assert!(eq(map_names::LDNS, "XGSLB_LDNS_V2"));
    assert!(eq(map_names::ANSWERS, "XGSLB_ANS_V3"));
    assert!(eq(map_names::ECS_TRIE4, "XGSLB_ETRIE4_V1"));
    assert!(eq(map_names::ECS_TRIE6, "XGSLB_ETRIE6_V1"));
    assert!(eq(map_names::ECS_CONFIG, "XGSLB_ECS_V1"));
    assert!(eq(map_names::ECS_STATS, "XGSLB_ECSST_V1"));
    assert!(eq(map_names::RRL_CONFIG, "XGSLB_RRLCFG_V1"));
    assert!(eq(map_names::RRL_EXEMPT4, "XGSLB_RRLEX4_V1"));
    assert!(eq(map_names::RRL_EXEMPT6, "XGSLB_RRLEX6_V1"));
    assert!(eq(map_names::RRL, "XGSLB_RRL_V1"));
    assert!(eq(map_names::COOKIE, "XGSLB_COOKIE_V1"));
    assert!(eq(map_names::COOKIE_STATS, "XGSLB_COOKIEST_V1"));
};
