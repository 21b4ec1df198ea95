//! Publication: the entries user space wants served, diffed against what the maps hold,
//! applied as single-entry operations; and the listener set. The diff is pure so it is tested
//! without a kernel.
use std::collections::HashMap as StdHashMap;

use aya::maps::{Array, MapData, MapError};
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

/// Operations that turn `published` into `desired`: changed and new entries first (in no
/// order: a million ordered keys would cost more than the map writes), then deletions, so a
/// key present in both is never missing in between.
pub fn diff<K, V, S>(
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
        let published: StdHashMap<u8, u8> = [(1, 1), (2, 2), (3, 3)].into();
        let desired: StdHashMap<u8, u8> = [(1, 1), (2, 20), (4, 4)].into();
        let mut ops = diff(&desired, &published);
        assert_eq!(ops.pop(), Some(MapOp::Delete(3)));
        ops.sort_by_key(|op| match op {
            MapOp::Put(k, _) | MapOp::Delete(k) => *k,
        });
        assert_eq!(ops, vec![MapOp::Put(2, 20), MapOp::Put(4, 4)]);
        assert!(diff(&desired, &desired).is_empty());
    }
}
