//! Which LDNSs agents should probe: the busiest resolvers of each client class, from the XDP
//! program's sampled query counts. Agents probe a bounded set; spreading it over the classes
//! keeps a small region's resolvers from being crowded out by one busy region.
use std::{collections::BTreeMap, net::IpAddr};

use xgslb_common::{ClassId, LdnsKey};

/// The addresses to probe: up to `per_class` of each class's busiest, then the busiest of
/// those, `max` in all, busiest first.
pub fn top_ldns(samples: &[(LdnsKey, u64)], per_class: usize, max: usize) -> Vec<IpAddr> {
    let mut by_class: BTreeMap<ClassId, Vec<(u64, IpAddr)>> = BTreeMap::new();
    for (key, count) in samples {
        let Some(addr) = address(key) else {
            continue;
        };
        by_class.entry(key.class).or_default().push((*count, addr));
    }
    let mut picked: Vec<(u64, IpAddr)> = Vec::new();
    for list in by_class.values_mut() {
        list.sort_by(|a, b| b.0.cmp(&a.0).then(a.1.cmp(&b.1)));
        picked.extend(list.iter().take(per_class));
    }
    picked.sort_by(|a, b| b.0.cmp(&a.0).then(a.1.cmp(&b.1)));
    let mut out: Vec<IpAddr> = Vec::new();
    for (_, addr) in picked {
        if out.len() >= max {
            break;
        }
        if !out.contains(&addr) {
            out.push(addr);
        }
    }
    out
}

/// The address of a sample key, if its family is one the program writes.
fn address(key: &LdnsKey) -> Option<IpAddr> {
    match key.family {
        4 => Some(IpAddr::from([
            key.addr[0],
            key.addr[1],
            key.addr[2],
            key.addr[3],
        ])),
        6 => Some(IpAddr::from(key.addr)),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(addr: &str, class: ClassId) -> LdnsKey {
        let mut k = LdnsKey {
            addr: [0; 16],
            class,
            family: 4,
            _pad: [0; 5],
        };
        match addr.parse::<IpAddr>().unwrap() {
            IpAddr::V4(a) => k.addr[..4].copy_from_slice(&a.octets()),
            IpAddr::V6(a) => {
                k.addr = a.octets();
                k.family = 6;
            }
        }
        k
    }

    #[test]
    fn busiest_per_class_then_overall_bounded() {
        let samples = [
            (key("198.18.0.1", 1), 100),
            (key("198.18.0.2", 1), 90),
            (key("198.18.0.3", 1), 80),
            (key("198.18.9.1", 2), 5),
            (key("2001:db8::1", 3), 50),
            (key("198.18.0.1", 0), 1),
        ];
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        // Two per class: 198.18.0.3 is left out though it is busier than the small regions'.
        assert_eq!(
            top_ldns(&samples, 2, 10),
            vec![
                ip("198.18.0.1"),
                ip("198.18.0.2"),
                ip("2001:db8::1"),
                ip("198.18.9.1")
            ]
        );
        assert_eq!(
            top_ldns(&samples, 2, 2),
            vec![ip("198.18.0.1"), ip("198.18.0.2")]
        );
        // A bad family is skipped, not guessed at.
        let mut bad = key("198.18.0.9", 1);
        bad.family = 9;
        assert!(top_ldns(&[(bad, 1000)], 2, 10).is_empty());
    }
}
