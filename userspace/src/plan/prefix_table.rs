//! Longest prefix match in user space, the way the slow path classifies addresses: the
//! prefixes hashed by length, and an address masked to each length in use, longest first,
//! until one hits (what the XDP class table does; an LPM trie per lookup would cost more).
use std::{collections::HashMap, net::IpAddr};

use ipnet::IpNet;

/// A value per prefix, found by longest prefix match.
#[derive(Debug)]
pub struct PrefixTable<V> {
    /// Prefixes by length, longest first; each a map from the masked network to its value.
    by_len: Vec<(u8, HashMap<IpNet, V>)>,
}

impl<V> Default for PrefixTable<V> {
    fn default() -> Self {
        Self { by_len: Vec::new() }
    }
}

impl<V: Copy> PrefixTable<V> {
    /// The table of `prefixes` (host bits ignored); of two equal prefixes, the later wins.
    pub fn new(prefixes: &[(IpNet, V)]) -> Self {
        let mut lens: HashMap<(u8, bool), HashMap<IpNet, V>> = HashMap::new();
        for &(p, value) in prefixes {
            let p = p.trunc();
            lens.entry((p.prefix_len(), p.addr().is_ipv6()))
                .or_default()
                .insert(p, value);
        }
        let mut by_len: Vec<_> = lens.into_iter().map(|((l, _), m)| (l, m)).collect();
        by_len.sort_by_key(|e| std::cmp::Reverse(e.0));
        Self { by_len }
    }

    /// The value of the longest prefix containing `addr`, if any.
    pub fn get(&self, addr: IpAddr) -> Option<V> {
        self.by_len.iter().find_map(|(len, nets)| {
            // A length of the other family does not make a network of this one.
            let net = IpNet::new(addr, *len).ok()?;
            nets.get(&net.trunc()).copied()
        })
    }
}
