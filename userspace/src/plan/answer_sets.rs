//! From the configured answer sets to what is published: `AnswerSet`s per (name, type) for
//! the slow path's snapshot and the plan.
use hickory_proto::rr::{Name, RecordType};
use xgslb_common::{Action, AnswerSet, MAX_ADDRS, PickMode};

use super::slots::slot_table;
use crate::config::AnswerConfig;

/// The A and AAAA answer sets of the configured answers (a family with no address has none).
pub fn answer_sets(answers: &[AnswerConfig]) -> Vec<(Name, RecordType, AnswerSet)> {
    let mut out = Vec::new();
    for a in answers {
        for (rtype, v6) in [(RecordType::A, false), (RecordType::AAAA, true)] {
            let family: Vec<_> = a
                .addresses
                .iter()
                .filter(|(ip, _)| ip.is_ipv6() == v6)
                .collect();
            if family.is_empty() {
                continue;
            }
            let weights: Vec<u32> = family.iter().map(|(_, w)| *w).collect();
            let mut set = AnswerSet {
                ttl: a.ttl,
                count: family.len().min(MAX_ADDRS) as u8,
                records: (a.records as usize).min(family.len()) as u8,
                pick: PickMode::Counter as u8,
                action: Action::Answer as u8,
                persist_v4: 0,
                persist_v6: 0,
                slow: 0,
                ecs: xgslb_common::EcsUse::Honor as u8,
                // The [[answer]] sets are not wide IPs: not counted by name.
                stat: xgslb_common::NO_STAT,
                slots: slot_table(&weights),
                addrs: [[0; 16]; MAX_ADDRS],
            };
            for (dst, (ip, _)) in set.addrs.iter_mut().zip(&family) {
                match ip {
                    std::net::IpAddr::V4(v4) => dst[..4].copy_from_slice(&v4.octets()),
                    std::net::IpAddr::V6(v6) => *dst = v6.octets(),
                }
            }
            out.push((a.name.clone(), rtype, set));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn families_split_and_records_cap_at_the_family_size() {
        let a = AnswerConfig {
            name: Name::from_ascii("www.example.test.").unwrap(),
            ttl: 30,
            records: 3,
            addresses: vec![
                ("198.18.0.1".parse().unwrap(), 1),
                ("2001:db8::1".parse().unwrap(), 1),
                ("198.18.0.2".parse().unwrap(), 2),
            ],
        };
        let sets = answer_sets(&[a]);
        assert_eq!(sets.len(), 2);
        let (_, t, v4) = &sets[0];
        assert_eq!((*t, v4.count, v4.records), (RecordType::A, 2, 2));
        assert_eq!(&v4.addrs[1][..4], &[198, 18, 0, 2]);
        assert!(v4.is_valid());
        let (_, t, v6) = &sets[1];
        assert_eq!((*t, v6.count, v6.records), (RecordType::AAAA, 1, 1));
    }
}
