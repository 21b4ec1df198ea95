//! Weights to a slot table: each address gets a share of the `SLOTS` slots in proportion to
//! its weight (at least one), and the slots are interleaved (smooth weighted round robin) so
//! that consecutive picks spread over the addresses instead of repeating one address.
use xgslb_common::SLOTS;

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

/// Slots per address: largest remainder apportionment of SLOTS, every address at least one.
fn shares(weights: &[u32]) -> Vec<u32> {
    let n = weights.len().max(1);
    let total: u64 = weights.iter().map(|&w| w.max(1) as u64).sum::<u64>().max(1);
    let free = (SLOTS - n) as u64;
    let mut shares: Vec<u32> = Vec::with_capacity(n);
    let mut rema: Vec<(u64, usize)> = Vec::with_capacity(n);
    for (i, &w) in weights.iter().enumerate() {
        let exact = free * w.max(1) as u64;
        shares.push(1 + (exact / total) as u32);
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
    shares
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
        assert_eq!(counts(&t, 2), vec![32, 32]);
        assert!(t.windows(2).all(|w| w[0] != w[1]));
    }

    #[test]
    fn weights_are_proportional() {
        let t = slot_table(&[3, 1]);
        assert_eq!(counts(&t, 2), vec![48, 16]);
        let t = slot_table(&[1, 1, 1]);
        assert_eq!(counts(&t, 3), vec![22, 21, 21]);
    }

    #[test]
    fn a_tiny_weight_still_gets_a_slot() {
        let t = slot_table(&[1_000_000, 1]);
        assert_eq!(counts(&t, 2), vec![63, 1]);
    }

    #[test]
    fn eight_addresses_fill_every_slot() {
        let t = slot_table(&[1; 8]);
        assert_eq!(counts(&t, 8), vec![8; 8]);
    }
}
