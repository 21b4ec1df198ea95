//! The embedded XDP object checked against the ABI of `xgslb_common`, with no kernel and no
//! root: every map `map_names` names is in it, with the type, key and value sizes, entries
//! and flags the ABI's types and limits say (an outer map's inner template too), and it
//! holds no other map; and the program calls no byte-loop memory function. A name, size,
//! limit or flag that drifts on one side fails here, before any load.
use std::{collections::BTreeSet, mem::size_of};

use aya::maps::lpm_trie::Key;
use aya_obj::{
    EbpfSectionKind, Map, Object,
    generated::bpf_map_type::{self, *},
};
use object::{ObjectSection, ObjectSymbol, RelocationTarget};
use xgslb_common::{
    BPF_F_NO_PREALLOC, COOKIE_STATS_LEN, ClassId, ClassKey, ClassLengths, CookieConfig,
    ECS_STATS_LEN, EcsConfig, EcsRegion, Entry, LdnsKey, ListenerSet, MAX_ADDRS, MAX_ANSWER_STATS,
    MAX_CLASS_PREFIXES, MAX_LDNS_TRACKED, MAX_RRL_EXEMPT, MIN_TABLE_ENTRIES, Meta,
    RRL_TABLE_ENTRIES, RrlBucket, RrlConfig, RrlKey, Scratch, Stats, map_names,
};

/// A map definition as the kernel is asked to create it.
#[derive(Debug, PartialEq, Eq)]
struct Def {
    map_type: u32,
    key_size: u32,
    value_size: u32,
    max_entries: u32,
    flags: u32,
}

impl Def {
    fn new(map_type: bpf_map_type, key: usize, value: usize, max_entries: u32, flags: u32) -> Self {
        let size = |n: usize| u32::try_from(n).expect("a map's key or value fits a u32");
        Self {
            map_type: map_type as u32,
            key_size: size(key),
            value_size: size(value),
            max_entries,
            flags,
        }
    }

    fn of(m: &Map) -> Self {
        Self {
            map_type: m.map_type(),
            key_size: m.key_size(),
            value_size: m.value_size(),
            max_entries: m.max_entries(),
            flags: m.map_flags(),
        }
    }
}

/// A one-entry array of `value`.
fn one<T>(map_type: bpf_map_type) -> Def {
    Def::new(map_type, size_of::<u32>(), size_of::<T>(), 1, 0)
}

/// A one-slot array of maps (the slot holds a map id) with its inner template.
fn outer(inner: Def) -> (Def, Option<Def>) {
    (one::<u32>(BPF_MAP_TYPE_ARRAY_OF_MAPS), Some(inner))
}

/// Every map of the ABI: its definition and, for an array of maps, its inner template.
fn abi() -> Vec<(&'static str, (Def, Option<Def>))> {
    let no_prealloc = BPF_F_NO_PREALLOC;
    let prefixes = MAX_CLASS_PREFIXES;
    vec![
        (
            map_names::ENTRIES,
            outer(Def::new(
                BPF_MAP_TYPE_HASH,
                size_of::<u64>(),
                size_of::<Entry>(),
                MIN_TABLE_ENTRIES,
                no_prealloc,
            )),
        ),
        (map_names::SEED, (one::<u64>(BPF_MAP_TYPE_ARRAY), None)),
        (
            map_names::CLASS_TRIE4,
            outer(Def::new(
                BPF_MAP_TYPE_LPM_TRIE,
                size_of::<Key<[u8; 4]>>(),
                size_of::<ClassId>(),
                prefixes,
                no_prealloc,
            )),
        ),
        (
            map_names::CLASS_TRIE6,
            outer(Def::new(
                BPF_MAP_TYPE_LPM_TRIE,
                size_of::<Key<[u8; 16]>>(),
                size_of::<ClassId>(),
                prefixes,
                no_prealloc,
            )),
        ),
        (
            map_names::CLASSES,
            outer(Def::new(
                BPF_MAP_TYPE_HASH,
                size_of::<ClassKey>(),
                size_of::<ClassId>(),
                prefixes,
                no_prealloc,
            )),
        ),
        (
            map_names::CLASS_LENGTHS,
            (one::<ClassLengths>(BPF_MAP_TYPE_ARRAY), None),
        ),
        (
            map_names::LISTENERS,
            (one::<ListenerSet>(BPF_MAP_TYPE_ARRAY), None),
        ),
        (
            map_names::STATS,
            (one::<Stats>(BPF_MAP_TYPE_PERCPU_ARRAY), None),
        ),
        (
            map_names::PICK,
            (one::<u32>(BPF_MAP_TYPE_PERCPU_ARRAY), None),
        ),
        (
            map_names::SCRATCH,
            (one::<Scratch>(BPF_MAP_TYPE_PERCPU_ARRAY), None),
        ),
        (map_names::META, (one::<Meta>(BPF_MAP_TYPE_ARRAY), None)),
        (
            map_names::ANSWERS,
            (
                Def::new(
                    BPF_MAP_TYPE_PERCPU_ARRAY,
                    size_of::<u32>(),
                    size_of::<u64>(),
                    MAX_ANSWER_STATS * MAX_ADDRS as u32,
                    0,
                ),
                None,
            ),
        ),
        (
            map_names::LDNS,
            (
                Def::new(
                    BPF_MAP_TYPE_LRU_PERCPU_HASH,
                    size_of::<LdnsKey>(),
                    size_of::<u64>(),
                    MAX_LDNS_TRACKED,
                    0,
                ),
                None,
            ),
        ),
        (
            map_names::ECS_TRIE4,
            outer(Def::new(
                BPF_MAP_TYPE_LPM_TRIE,
                size_of::<Key<[u8; 4]>>(),
                size_of::<EcsRegion>(),
                prefixes,
                no_prealloc,
            )),
        ),
        (
            map_names::ECS_TRIE6,
            outer(Def::new(
                BPF_MAP_TYPE_LPM_TRIE,
                size_of::<Key<[u8; 16]>>(),
                size_of::<EcsRegion>(),
                prefixes,
                no_prealloc,
            )),
        ),
        (
            map_names::ECS_CONFIG,
            (one::<EcsConfig>(BPF_MAP_TYPE_ARRAY), None),
        ),
        (
            map_names::ECS_STATS,
            (
                Def::new(
                    BPF_MAP_TYPE_PERCPU_ARRAY,
                    size_of::<u32>(),
                    size_of::<u64>(),
                    ECS_STATS_LEN,
                    0,
                ),
                None,
            ),
        ),
        (
            map_names::RRL_CONFIG,
            (one::<RrlConfig>(BPF_MAP_TYPE_ARRAY), None),
        ),
        (
            map_names::RRL_EXEMPT4,
            (
                Def::new(
                    BPF_MAP_TYPE_LPM_TRIE,
                    size_of::<Key<[u8; 4]>>(),
                    size_of::<u8>(),
                    MAX_RRL_EXEMPT,
                    no_prealloc,
                ),
                None,
            ),
        ),
        (
            map_names::RRL_EXEMPT6,
            (
                Def::new(
                    BPF_MAP_TYPE_LPM_TRIE,
                    size_of::<Key<[u8; 16]>>(),
                    size_of::<u8>(),
                    MAX_RRL_EXEMPT,
                    no_prealloc,
                ),
                None,
            ),
        ),
        (
            map_names::RRL,
            (
                Def::new(
                    BPF_MAP_TYPE_LRU_HASH,
                    size_of::<RrlKey>(),
                    size_of::<RrlBucket>(),
                    RRL_TABLE_ENTRIES,
                    0,
                ),
                None,
            ),
        ),
        (
            map_names::COOKIE,
            (one::<CookieConfig>(BPF_MAP_TYPE_ARRAY), None),
        ),
        (
            map_names::COOKIE_STATS,
            (
                Def::new(
                    BPF_MAP_TYPE_PERCPU_ARRAY,
                    size_of::<u32>(),
                    size_of::<u64>(),
                    COOKIE_STATS_LEN,
                    0,
                ),
                None,
            ),
        ),
    ]
}

#[test]
fn the_object_holds_every_map_of_the_abi_as_the_abi_defines_it() {
    let obj = Object::parse(super::XDP_OBJECT).expect("the embedded object parses");
    let abi = abi();
    // The table above covers the ABI's list, so a map added to `map_names` needs a row.
    let listed: BTreeSet<&str> = map_names::ALL.into_iter().collect();
    let described: BTreeSet<&str> = abi.iter().map(|(name, _)| *name).collect();
    assert_eq!(listed, described, "map_names::ALL and this table");
    assert_eq!(
        listed.len(),
        map_names::ALL.len(),
        "map_names::ALL repeats a name"
    );
    // The object's own maps (not its .rodata, .data or .bss) are exactly the ABI's.
    let in_object: BTreeSet<&str> = obj
        .maps
        .iter()
        .filter(|(_, m)| {
            matches!(
                m.section_kind(),
                EbpfSectionKind::Maps | EbpfSectionKind::BtfMaps
            )
        })
        .map(|(name, _)| name.as_str())
        .collect();
    assert_eq!(in_object, listed, "maps in the object vs map_names::ALL");
    for (name, (def, inner)) in abi {
        let map = &obj.maps[name];
        assert_eq!(Def::of(map), def, "map {name}");
        assert_eq!(
            map.inner().as_ref().map(Def::of),
            inner,
            "inner template of map {name}"
        );
    }
}

/// On BPF, `memset`, `memcpy` and `memmove` are byte-at-a-time loops: the program builds
/// keys and copies with word stores instead (ebpf/src/verifier.rs). A call to one of them
/// is a relocation against its symbol.
#[test]
fn the_xdp_program_calls_no_byte_loop_memory_function() {
    use object::Object as _;
    let obj = object::File::parse(super::XDP_OBJECT).expect("the embedded object parses");
    let mut calls = Vec::new();
    for section in obj.sections() {
        for (_, reloc) in section.relocations() {
            if let RelocationTarget::Symbol(i) = reloc.target()
                && let Ok(sym) = obj.symbol_by_index(i)
                && let Ok(name) = sym.name()
                && ["memset", "memcpy", "memmove"].contains(&name)
            {
                calls.push(format!("{} in {}", name, section.name().unwrap_or("?")));
            }
        }
    }
    assert!(calls.is_empty(), "byte-loop calls: {calls:?}");
}
