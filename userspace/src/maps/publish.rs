//! Publication: the selections user space wants served, diffed against what the maps hold,
//! applied as single-entry operations. The diff is pure so it is tested without a kernel.
use std::collections::{BTreeMap, HashMap as StdHashMap};

use aya::maps::{Array, HashMap, MapData, MapError};
use bytemuck::Zeroable;
use xgslb_common::{Listener, ListenerKey, ListenerSet};

/// One map write.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum MapOp<K, V> {
    /// Insert or replace.
    Put(K, V),
    /// Remove.
    Delete(K),
}

/// Operations that turn `published` into `desired`: changed and new entries first, then
/// deletions, so a name present in both is never missing in between.
pub fn diff<K: Ord + Clone, V: PartialEq + Clone>(
    desired: &BTreeMap<K, V>,
    published: &BTreeMap<K, V>,
) -> Vec<MapOp<K, V>> {
    let mut ops: Vec<MapOp<K, V>> = desired
        .iter()
        .filter(|(k, v)| published.get(k) != Some(v))
        .map(|(k, v)| MapOp::Put(k.clone(), v.clone()))
        .collect();
    ops.extend(
        published
            .keys()
            .filter(|k| !desired.contains_key(k))
            .map(|k| MapOp::Delete(k.clone())),
    );
    ops
}

/// The same as `diff`, for hash maps (no order between the puts, deletes still last): what
/// the selection table keeps, where a million ordered keys cost more than the map writes.
pub fn diff_unordered<K, V, S>(
    desired: &StdHashMap<K, V, S>,
    published: &StdHashMap<K, V, S>,
) -> Vec<MapOp<K, V>>
where
    K: Eq + std::hash::Hash + Clone,
    V: PartialEq + Clone,
    S: std::hash::BuildHasher,
{
    let mut ops: Vec<MapOp<K, V>> = desired
        .iter()
        .filter(|(k, v)| published.get(k) != Some(v))
        .map(|(k, v)| MapOp::Put(k.clone(), v.clone()))
        .collect();
    ops.extend(
        published
            .keys()
            .filter(|k| !desired.contains_key(k))
            .map(|k| MapOp::Delete(k.clone())),
    );
    ops
}

/// A Pod map key compared, ordered and hashed by its bytes, so that any key type can sit in
/// a BTreeMap or a HashMap.
#[derive(Clone, Copy, Debug)]
pub(crate) struct ByBytes<K>(pub(crate) K);

impl<K: bytemuck::Pod> PartialEq for ByBytes<K> {
    fn eq(&self, other: &Self) -> bool {
        bytemuck::bytes_of(&self.0) == bytemuck::bytes_of(&other.0)
    }
}
impl<K: bytemuck::Pod> Eq for ByBytes<K> {}
impl<K: bytemuck::Pod> PartialOrd for ByBytes<K> {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}
impl<K: bytemuck::Pod> std::hash::Hash for ByBytes<K> {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        bytemuck::bytes_of(&self.0).hash(state);
    }
}
impl<K: bytemuck::Pod> Ord for ByBytes<K> {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        bytemuck::bytes_of(&self.0).cmp(bytemuck::bytes_of(&other.0))
    }
}

/// Brings a hash map to `desired` and returns the number of operations applied.
pub fn sync_map<K, V>(
    map: &mut HashMap<MapData, K, V>,
    desired: &[(K, V)],
) -> Result<usize, MapError>
where
    K: aya::Pod + bytemuck::Pod,
    V: aya::Pod + PartialEq,
{
    let mut published = BTreeMap::new();
    for entry in map.iter() {
        let (k, v) = entry?;
        published.insert(ByBytes(k), v);
    }
    let desired: BTreeMap<_, _> = desired.iter().map(|&(k, v)| (ByBytes(k), v)).collect();
    let ops = diff(&desired, &published);
    for op in &ops {
        match op {
            MapOp::Put(k, v) => map.insert(k.0, v, 0)?,
            MapOp::Delete(k) => map.remove(&k.0)?,
        }
    }
    Ok(ops.len())
}

/// The listener set of `listeners` (at most `MAX_LISTENERS`; config validation says so).
pub fn listener_set(listeners: &[ListenerKey]) -> ListenerSet {
    let mut set = ListenerSet::zeroed();
    let n = listeners.len().min(set.slots.len());
    for (slot, key) in set.slots.iter_mut().zip(&listeners[..n]) {
        *slot = Listener::from_key(key);
    }
    set.count = n as u64;
    set
}

/// Publishes the listeners; returns how many.
pub fn publish_listeners(
    map: &mut Array<MapData, ListenerSet>,
    listeners: &[ListenerKey],
) -> Result<usize, MapError> {
    let set = listener_set(listeners);
    map.set(0, set, 0)?;
    Ok(set.count as usize)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn listeners_become_words_and_wildcards_match_any_address() {
        let v4 = ListenerKey {
            addr: [198, 18, 0, 2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0],
            port: 53,
            family: 4,
            _pad: 0,
        };
        let any6 = ListenerKey {
            addr: [0; 16],
            port: 5353,
            family: 6,
            _pad: 0,
        };
        let set = listener_set(&[v4, any6]);
        assert_eq!(set.count, 2);
        assert_eq!(
            set.slots[0],
            Listener {
                hi: 0xc612_0002,
                lo: 0,
                tag: Listener::tag(53, 4),
            }
        );
        assert_eq!((set.slots[1].hi, set.slots[1].lo), (0, 0));
        assert_ne!(set.slots[1].tag, Listener::tag(5353, 4));
        assert_eq!(set.slots[2], Listener::default());
    }

    #[test]
    fn diff_puts_changes_before_deletes_and_skips_equal_entries() {
        let published: BTreeMap<u8, u8> = [(1, 1), (2, 2), (3, 3)].into();
        let desired: BTreeMap<u8, u8> = [(1, 1), (2, 20), (4, 4)].into();
        assert_eq!(
            diff(&desired, &published),
            vec![MapOp::Put(2, 20), MapOp::Put(4, 4), MapOp::Delete(3)]
        );
        assert!(diff(&desired, &desired).is_empty());
    }

    #[test]
    fn unordered_diff_puts_before_deletes_and_skips_equal_entries() {
        let published: StdHashMap<u8, u8> = [(1, 1), (2, 2), (3, 3)].into();
        let desired: StdHashMap<u8, u8> = [(1, 1), (2, 20), (4, 4)].into();
        let mut ops = diff_unordered(&desired, &published);
        assert_eq!(ops.pop(), Some(MapOp::Delete(3)));
        ops.sort_by_key(|op| match op {
            MapOp::Put(k, _) | MapOp::Delete(k) => *k,
        });
        assert_eq!(ops, vec![MapOp::Put(2, 20), MapOp::Put(4, 4)]);
        assert!(diff_unordered(&desired, &desired).is_empty());
    }
}
