//! Weights to a slot table: each address gets a share of the `SLOTS` slots in proportion to
//! its weight (at least one), and the slots are interleaved (smooth weighted round robin) so
//! that consecutive picks spread over the addresses instead of repeating one address.
//!
//! Static persist uses another table ([`persist_slot_table`]): a client keeps hashing to the
//! same slot, so the table must change as little as possible when a member comes or goes.
use xgslb_common::{SLOTS, mix64};

/// Slot table for `weights` (1..=8 entries, each >= 1).
pub fn slot_table(weights: &[u32]) -> [u8; SLOTS] {
    let shares = shares(weights);
    // Smooth weighted round robin over the shares: every step each address gains its share,
    // the richest is picked and pays the total.
    let total: i64 = shares.iter().map(|&s| s as i64).sum();
    let mut credit = vec![0i64; shares.len()];
    let mut table = [0u8; SLOTS];
    for slot in table.iter_mut() {
        for (c, &s) in credit.iter_mut().zip(&shares) {
            *c += s as i64;
        }
        let (best, _) = credit
            .iter()
            .enumerate()
            .max_by(|(ia, a), (ib, b)| a.cmp(b).then(ib.cmp(ia)))
            .unwrap_or((0, &0));
        credit[best] -= total;
        *slot = best as u8;
    }
    table
}

/// Slots per address: largest remainder apportionment of SLOTS (each share within one slot
/// of its exact proportion, so within 1/SLOTS of the weight's share of answers), then every
/// address that got none takes one from the address with the most: a weight too small for a
/// slot still answers sometimes, as its weight says it should.
fn shares(weights: &[u32]) -> Vec<u32> {
    let total: u64 = weights.iter().map(|&w| w.max(1) as u64).sum::<u64>().max(1);
    let slots = SLOTS as u64;
    let mut shares: Vec<u32> = Vec::with_capacity(weights.len());
    let mut rema: Vec<(u64, usize)> = Vec::with_capacity(weights.len());
    for (i, &w) in weights.iter().enumerate() {
        let exact = slots * w.max(1) as u64;
        shares.push((exact / total) as u32);
        rema.push((exact % total, i));
    }
    let mut left = SLOTS as u32 - shares.iter().sum::<u32>();
    rema.sort_by(|a, b| b.0.cmp(&a.0).then(a.1.cmp(&b.1)));
    for (_, i) in rema {
        if left == 0 {
            break;
        }
        shares[i] += 1;
        left -= 1;
    }
    for i in 0..shares.len() {
        if shares[i] == 0
            && let Some(richest) = (0..shares.len()).max_by_key(|&j| (shares[j], usize::MAX - j))
        {
            shares[richest] -= 1;
            shares[i] = 1;
        }
    }
    shares
}

pub use crate::model::stable_key;

/// Slot table for static persist: slot `s` goes to the member maximising
/// `weight / -ln(u)`, `u` uniform in (0, 1) from a hash of (`s`, member key) (weighted
/// rendezvous hashing). A member's expected share of slots is its weight over the total (a
/// member may get no slot at all when its share is small: nothing guarantees one), and removing or adding a member only moves the slots it loses or wins: every other
/// slot keeps its member. Values are indices into `members` (keys: e.g. [`stable_key`] of the
/// VS name; weights 0 count as 1). Empty `members`: all zeros.
pub fn persist_slot_table(members: &[(u64, u32)]) -> [u8; SLOTS] {
    let mut table = [0u8; SLOTS];
    for (s, slot) in table.iter_mut().enumerate() {
        *slot = rendezvous(s as u64, members) as u8;
    }
    table
}

/// Index of the member that wins `slot` (0 when there is none).
fn rendezvous(slot: u64, members: &[(u64, u32)]) -> usize {
    let mut best = (0usize, f64::NEG_INFINITY);
    for (i, &(key, w)) in members.iter().enumerate() {
        let h = mix64(key ^ mix64(slot.wrapping_add(0x9e37_79b9_7f4a_7c15)));
        // 53 random bits, centred in their interval: never 0, never 1.
        let u = ((h >> 11) as f64 + 0.5) / (1u64 << 53) as f64;
        let score = w.max(1) as f64 / -u.ln();
        if score > best.1 {
            best = (i, score);
        }
    }
    best.0
}

#[cfg(test)]
mod tests {
    use super::*;

    fn counts(table: &[u8; SLOTS], n: usize) -> Vec<usize> {
        (0..n)
            .map(|i| table.iter().filter(|&&s| s as usize == i).count())
            .collect()
    }

    #[test]
    fn equal_weights_share_equally_and_alternate() {
        let t = slot_table(&[1, 1]);
        assert_eq!(counts(&t, 2), vec![64, 64]);
        assert!(t.windows(2).all(|w| w[0] != w[1]));
    }

    #[test]
    fn weights_are_proportional() {
        let t = slot_table(&[3, 1]);
        assert_eq!(counts(&t, 2), vec![96, 32]);
        let t = slot_table(&[1, 1, 1]);
        assert_eq!(counts(&t, 3), vec![43, 43, 42]);
        let t = slot_table(&[5, 3]);
        assert_eq!(counts(&t, 2), vec![80, 48]);
    }

    #[test]
    fn a_tiny_weight_still_gets_a_slot() {
        let t = slot_table(&[1_000_000, 1]);
        assert_eq!(counts(&t, 2), vec![127, 1]);
    }

    #[test]
    fn eight_addresses_fill_every_slot() {
        let t = slot_table(&[1; 8]);
        assert_eq!(counts(&t, 8), vec![16; 8]);
    }

    #[test]
    fn stable_key_is_fnv1a() {
        // FNV-1a 64 test vectors.
        assert_eq!(stable_key(""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(stable_key("a"), 0xaf63_dc4c_8601_ec8c);
        assert_eq!(stable_key("foobar"), 0x8594_4171_f739_67e8);
    }

    #[test]
    fn persist_table_is_stable_when_a_member_leaves() {
        let names = ["tokyo-www", "newyork-www", "london-www", "sydney-www"];
        let all: Vec<(u64, u32)> = names.iter().map(|n| (stable_key(n), 1)).collect();
        let before = persist_slot_table(&all);
        assert_eq!(persist_slot_table(&all), before, "deterministic");
        // Without london (index 2): its slots move, no other slot does.
        let rest: Vec<(u64, u32)> = [0, 1, 3].iter().map(|&i| all[i]).collect();
        let after = persist_slot_table(&rest);
        let moved = before.iter().filter(|&&b| b == 2).count();
        assert!(moved > 0);
        for (b, a) in before.iter().zip(&after) {
            let b_name = names[*b as usize];
            let a_name = names[[0, 1, 3][*a as usize]];
            if *b != 2 {
                assert_eq!(a_name, b_name);
            } else {
                assert_ne!(a_name, "london-www");
            }
        }
        // And back: london wins exactly its old slots again.
        assert_eq!(persist_slot_table(&all), before);
    }

    #[test]
    fn persist_shares_follow_weights() {
        // Over many slots (the table has only SLOTS), shares are close to weight / total.
        let members = [
            (stable_key("a"), 1),
            (stable_key("b"), 3),
            (stable_key("c"), 4),
        ];
        let n = 80_000u64;
        let mut count = [0u64; 3];
        for s in 0..n {
            count[rendezvous(s, &members)] += 1;
        }
        for (c, w) in count.iter().zip([1.0, 3.0, 4.0]) {
            let share = *c as f64 / n as f64;
            assert!((share - w / 8.0).abs() < 0.01, "{count:?}");
        }
        // Equal weights over the real table: SLOTS slots over 2 members, neither starved.
        let t = persist_slot_table(&[(stable_key("x"), 1), (stable_key("y"), 1)]);
        let zeros = counts(&t, 2)[0];
        assert!((SLOTS / 4..=3 * SLOTS / 4).contains(&zeros), "{zeros}");
        assert_eq!(persist_slot_table(&[]), [0; SLOTS]);
    }
}
