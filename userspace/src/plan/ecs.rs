//! EDNS Client Subnet (RFC 7871) in the plan: which subnets are honoured and how far, and
//! the ECS partition that gives both paths a client subnet's class and scope.
//!
//! The partition cuts each family's address space into the fewest prefixes that each lie
//! wholly in one class (no prefix of another class inside): the class prefixes themselves
//! where nothing of another class is nested in them, else the halves, recursively. An
//! address's partition prefix is therefore the widest prefix around it over which its class
//! (and so every classed answer) is the same, and its length is the scope of such an
//! answer. A /16 region with a /20 inside it becomes the /20 and the /17, /18, /19 and /20
//! beside it: a client in the /20 gets scope 20, one in the /16's upper half scope 17.
//! The rest of the space (the default class) is cut the same way, so every address has
//! exactly one partition prefix and a longest-prefix match over the partition finds it.
use std::{collections::BTreeMap, net::IpAddr};

use ipnet::IpNet;
use xgslb_common::{ClassId, DEFAULT_CLASS, EcsRegion};

use super::prefix_table::PrefixTable;
pub use crate::config::EcsPolicy;
use crate::dns::ClientSubnet;

/// The subnet that stands for the client of a query from `source` carrying `subnet`: its
/// address masked to the length `policy` honours, and that length. `None` when the query has
/// none, its resolver is not trusted, or nothing of it is honoured (a /0 says nothing about
/// the client): the query's source then stands for the client.
pub fn honoured(
    policy: &EcsPolicy,
    source: IpAddr,
    subnet: Option<&ClientSubnet>,
) -> Option<(IpAddr, u8)> {
    let subnet = subnet?;
    if !policy.trusted.is_empty() && !policy.trusted.iter().any(|n| n.contains(&source)) {
        return None;
    }
    let cap = if subnet.address.is_ipv4() {
        policy.max4
    } else {
        policy.max6
    };
    let len = subnet.source.min(cap);
    if len == 0 {
        return None;
    }
    let net = IpNet::new(subnet.address, len).ok()?;
    Some((net.network(), len))
}

/// The ECS partition of `prefixes` (the class table's prefixes, a later duplicate winning
/// as in the class table): every family's space cut into prefixes of one class each.
pub fn partition(prefixes: &[(IpNet, ClassId)]) -> Vec<(IpNet, EcsRegion)> {
    let mut out = Vec::new();
    for v6 in [false, true] {
        let bits: u8 = if v6 { 128 } else { 32 };
        // By (address, length): a prefix's nested ones follow it, in address order.
        let family: BTreeMap<(u128, u8), ClassId> = prefixes
            .iter()
            .filter(|(p, _)| p.addr().is_ipv6() == v6)
            .map(|&(p, class)| ((aligned(p.trunc().addr()), p.prefix_len()), class))
            .collect();
        let sorted: Vec<((u128, u8), ClassId)> = family.into_iter().collect();
        cut(0, 0, DEFAULT_CLASS, &sorted, bits, &mut out);
    }
    out
}

/// An address as the top bits of a u128 (IPv4 in the top 32).
fn aligned(a: IpAddr) -> u128 {
    match a {
        IpAddr::V4(a) => u128::from(u32::from(a)) << 96,
        IpAddr::V6(a) => u128::from(a),
    }
}

fn unaligned(a: u128, bits: u8) -> IpAddr {
    if bits == 32 {
        IpAddr::V4(((a >> 96) as u32).into())
    } else {
        IpAddr::V6(a.into())
    }
}

/// Cuts the prefix `addr`/`len` (whose class, from the prefixes containing it, is `outer`);
/// `inside` holds every prefix at or inside it, sorted.
fn cut(
    addr: u128,
    len: u8,
    outer: ClassId,
    inside: &[((u128, u8), ClassId)],
    bits: u8,
    out: &mut Vec<(IpNet, EcsRegion)>,
) {
    let (own, nested) = match inside.first() {
        Some(&((a, l), class)) if a == addr && l == len => (class, &inside[1..]),
        _ => (outer, inside),
    };
    if nested.iter().all(|&(_, class)| class == own) {
        if let Ok(net) = IpNet::new(unaligned(addr, bits), len) {
            out.push((
                net,
                EcsRegion {
                    class: own,
                    scope: len,
                    _pad: 0,
                },
            ));
        }
        return;
    }
    // Something of another class is nested, so `len` < the family's bits.
    let upper = addr | (1u128 << (127 - u32::from(len)));
    let split = nested.partition_point(|&((a, _), _)| a < upper);
    cut(addr, len + 1, own, &nested[..split], bits, out);
    cut(upper, len + 1, own, &nested[split..], bits, out);
}

/// The partition as the slow path looks it up: longest prefix match by hashing the address
/// masked to each length in use (a partition has at most one prefix per address).
#[derive(Debug, Default)]
pub struct EcsTable(PrefixTable<EcsRegion>);

impl EcsTable {
    pub fn new(partition: &[(IpNet, EcsRegion)]) -> Self {
        Self(PrefixTable::new(partition))
    }

    /// The class and scope of `addr`.
    pub fn region_of(&self, addr: IpAddr) -> EcsRegion {
        self.0.get(addr).unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::snapshot::ClassTable;

    fn p(s: &str) -> IpNet {
        s.parse().unwrap()
    }

    #[test]
    fn a_region_with_a_nested_one_is_cut_around_it() {
        let prefixes = [(p("198.18.0.0/16"), 1), (p("198.18.0.0/20"), 2)];
        let t = EcsTable::new(&partition(&prefixes));
        let r = |a: &str| {
            let r = t.region_of(a.parse().unwrap());
            (r.class, r.scope)
        };
        assert_eq!(r("198.18.3.1"), (2, 20));
        assert_eq!(r("198.18.200.1"), (1, 17));
        assert_eq!(r("198.18.64.1"), (1, 18));
        assert_eq!(r("198.18.32.1"), (1, 19));
        assert_eq!(r("198.18.16.1"), (1, 20));
        // Outside: the default class, as wide as stays clear of 198.18/16.
        assert_eq!(r("198.19.0.1"), (0, 16));
        assert_eq!(r("10.0.0.1"), (0, 1));
        // No IPv6 prefix: one region.
        assert_eq!(r("2001:db8::1"), (0, 0));
    }

    #[test]
    fn nested_prefixes_of_the_same_class_do_not_cut() {
        let prefixes = [(p("198.18.0.0/16"), 1), (p("198.18.0.0/20"), 1)];
        let part = partition(&prefixes);
        let v4: Vec<_> = part.iter().filter(|(n, _)| n.addr().is_ipv4()).collect();
        assert!(
            v4.iter()
                .any(|(n, r)| *n == p("198.18.0.0/16") && r.scope == 16)
        );
        assert!(!v4.iter().any(|(n, _)| n.prefix_len() > 16));
    }

    #[test]
    fn the_partition_agrees_with_the_class_table_everywhere_sampled() {
        let prefixes = [
            (p("198.18.0.0/15"), 1),
            (p("198.18.64.0/24"), 2),
            (p("198.18.64.128/25"), 1),
            (p("198.19.0.0/16"), 3),
            (p("198.19.0.0/16"), 4), // a later duplicate wins
            (p("2001:db8::/32"), 5),
            (p("2001:db8:ab::/48"), 6),
        ];
        let classes = ClassTable::new(&prefixes);
        let part = partition(&prefixes);
        let t = EcsTable::new(&part);
        let mut x = 0x9e37_79b9_7f4a_7c15u64;
        for i in 0..20_000u32 {
            x = xgslb_common::mix64(x);
            let a: IpAddr = match i % 4 {
                0 => IpAddr::V4((x as u32).into()),
                1 => IpAddr::V4(((198u32 << 24) | (18 << 16) | (x as u32 & 0x1_ffff)).into()),
                2 => IpAddr::V6((u128::from(x) << 64 | u128::from(x.rotate_left(7))).into()),
                _ => IpAddr::V6(((0x2001_0db8u128 << 96) | u128::from(x) << 32).into()),
            };
            let r = t.region_of(a);
            assert_eq!(r.class, classes.class_of(a), "{a}");
            // Every address of the region has the class: its ends at least.
            let net = IpNet::new(a, r.scope).unwrap();
            assert_eq!(classes.class_of(net.network()), r.class, "{net}");
            assert_eq!(classes.class_of(net.broadcast()), r.class, "{net}");
        }
        // The regions tile each family: their sizes add up to the whole space.
        let v4: u128 = part
            .iter()
            .filter(|(n, _)| n.addr().is_ipv4())
            .map(|(n, _)| 1u128 << (32 - n.prefix_len()))
            .sum();
        assert_eq!(v4, 1u128 << 32);
    }

    #[test]
    fn honoured_subnets_are_cut_to_the_cap_and_trusted_resolvers_only() {
        let subnet = |a: &str, source| ClientSubnet {
            address: a.parse().unwrap(),
            source,
            scope: 0,
        };
        let policy = EcsPolicy::default();
        let src: IpAddr = "198.18.0.53".parse().unwrap();
        assert_eq!(
            honoured(&policy, src, Some(&subnet("198.19.7.9", 32))),
            Some(("198.19.7.0".parse().unwrap(), 24))
        );
        assert_eq!(
            honoured(&policy, src, Some(&subnet("198.19.0.0", 16))),
            Some(("198.19.0.0".parse().unwrap(), 16))
        );
        assert_eq!(
            honoured(&policy, src, Some(&subnet("2001:db8:1:abcd::", 64))),
            Some(("2001:db8:1:ab00::".parse().unwrap(), 56))
        );
        assert_eq!(honoured(&policy, src, Some(&subnet("0.0.0.0", 0))), None);
        assert_eq!(honoured(&policy, src, None), None);
        let trusting = EcsPolicy {
            trusted: vec![p("198.18.1.0/24")],
            ..EcsPolicy::default()
        };
        assert_eq!(
            honoured(&trusting, src, Some(&subnet("198.19.7.0", 24))),
            None
        );
        let trusted_source = "198.18.1.9".parse().unwrap();
        assert!(honoured(&trusting, trusted_source, Some(&subnet("198.19.7.0", 24))).is_some());
    }
}
