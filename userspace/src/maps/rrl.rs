//! The response rate limit's maps: its config, and the tries of the prefixes it exempts.
//! (Its buckets are the program's own: xgslbd never reads or writes them.)
use std::collections::HashSet;
use std::net::IpAddr;

use aya::maps::{
    Array, MapData, MapError,
    lpm_trie::{Key, LpmTrie},
};
use ipnet::IpNet;
use xgslb_common::RrlConfig;

use crate::config::RrlPolicy;

type Exempt4 = LpmTrie<MapData, [u8; 4], u8>;
type Exempt6 = LpmTrie<MapData, [u8; 16], u8>;

/// The maps xgslbd writes the `[rrl]` policy into.
pub struct RrlMaps {
    pub config: Array<MapData, RrlConfig>,
    pub exempt4: Exempt4,
    pub exempt6: Exempt6,
}

impl RrlMaps {
    /// Limits as `policy` says from now on: the exempt prefixes it adds first, then the
    /// config, then the prefixes it no longer has out (a client is never limited for a
    /// moment only because its prefix moved from one list entry to another).
    pub fn publish(&mut self, policy: &RrlPolicy) -> Result<(), MapError> {
        let want: HashSet<IpNet> = policy.exempt.iter().copied().collect();
        let have = self.exempt()?;
        for net in want.difference(&have) {
            match net.addr() {
                IpAddr::V4(a) => {
                    self.exempt4
                        .insert(&Key::new(net.prefix_len().into(), a.octets()), 1, 0)?
                }
                IpAddr::V6(a) => {
                    self.exempt6
                        .insert(&Key::new(net.prefix_len().into(), a.octets()), 1, 0)?
                }
            }
        }
        self.config.set(0, policy.config(), 0)?;
        for net in have.difference(&want) {
            match net.addr() {
                IpAddr::V4(a) => self
                    .exempt4
                    .remove(&Key::new(net.prefix_len().into(), a.octets()))?,
                IpAddr::V6(a) => self
                    .exempt6
                    .remove(&Key::new(net.prefix_len().into(), a.octets()))?,
            }
        }
        Ok(())
    }

    /// The config in service.
    pub fn config(&self) -> Result<RrlConfig, MapError> {
        self.config.get(&0, 0)
    }

    /// The exempt prefixes in service.
    pub fn exempt(&self) -> Result<HashSet<IpNet>, MapError> {
        let mut nets = HashSet::new();
        for k in self.exempt4.keys() {
            let k = k?;
            if let Ok(n) = IpNet::new(IpAddr::from(k.data()), k.prefix_len() as u8) {
                nets.insert(n);
            }
        }
        for k in self.exempt6.keys() {
            let k = k?;
            if let Ok(n) = IpNet::new(IpAddr::from(k.data()), k.prefix_len() as u8) {
                nets.insert(n);
            }
        }
        Ok(nets)
    }
}
