//! Question names in the form the XDP program compares them: wire form, ASCII lowercased,
//! zero padded to `NAME_KEY_LEN`.
use std::hash::Hasher;

use hickory_proto::rr::Name;
use xgslb_common::{Entry, EntryKind, MAX_NAME_LABELS, NAME_KEY_LEN, entry_key, name_hash};

/// The wire name of `name` as the answer table holds it, or `None` when it is longer than
/// the XDP path reads or has more labels than it hashes (the slow path alone answers those).
pub fn wire_name(name: &Name) -> Option<[u8; NAME_KEY_LEN]> {
    if name.num_labels() as usize > MAX_NAME_LABELS {
        return None;
    }
    let mut key = [0; NAME_KEY_LEN];
    let mut at = 0usize;
    for label in name.iter() {
        let end = at + 1 + label.len();
        if end >= NAME_KEY_LEN {
            return None;
        }
        key[at] = label.len() as u8;
        for (dst, b) in key[at + 1..end].iter_mut().zip(label) {
            *dst = b.to_ascii_lowercase();
        }
        at = end;
    }
    // The root label: already zero.
    Some(key)
}

/// A multiply-rotate hash over 8-byte words (the FxHash step): a few cycles per word.
/// The table key of `entry` under `seed`; `None` for a name the program cannot hash (the
/// planner never makes one).
pub fn key_of(seed: u64, entry: &Entry) -> Option<u64> {
    let h = &entry.head;
    let kind = EntryKind::from_u8(h.kind)?;
    Some(entry_key(name_hash(seed, &h.name)?, h.qtype, h.class, kind))
}

/// A seed nobody outside can guess: std's per-process random SipHash keys (from the OS),
/// which differ for every `RandomState`.
pub fn random_seed() -> u64 {
    use std::hash::BuildHasher;
    let state = std::collections::hash_map::RandomState::new();
    // Zero means "none chosen yet".
    state.hash_one(std::time::Instant::now()).max(1)
}

/// Keys that are already seeded hashes need no more than this.
#[derive(Default)]
pub struct WordHasher(u64);

impl Hasher for WordHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        let mut words = bytes.chunks_exact(8);
        for w in &mut words {
            let mut b = [0u8; 8];
            b.copy_from_slice(w);
            self.add(u64::from_le_bytes(b));
        }
        for &b in words.remainder() {
            self.add(b as u64);
        }
    }
}

impl WordHasher {
    fn add(&mut self, word: u64) {
        self.0 = (self.0.rotate_left(5) ^ word).wrapping_mul(0x51_7c_c1_b7_27_22_0a_95);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lowercases_and_ends_with_the_root_label() {
        let name = Name::from_ascii("WwW.Example.TEST.").unwrap();
        let key = wire_name(&name).unwrap();
        assert_eq!(&key[..18], b"\x03www\x07example\x04test\x00");
        assert!(key[18..].iter().all(|&b| b == 0));
    }

    #[test]
    fn names_longer_than_the_key_or_with_too_many_labels_are_refused() {
        // 9 labels of 10 bytes: 99 bytes of wire form with the root.
        let long = "abcdefghij.".repeat(9);
        assert!(wire_name(&Name::from_ascii(&long).unwrap()).is_none());
        // 95 bytes: the longest that fits with its root label.
        let fits = format!("{}abc.", "abcdefghij.".repeat(8));
        assert!(wire_name(&Name::from_ascii(&fits).unwrap()).is_some());
        let many = "a.".repeat(MAX_NAME_LABELS + 1);
        assert!(wire_name(&Name::from_ascii(&many).unwrap()).is_none());
        let most = "a.".repeat(MAX_NAME_LABELS);
        assert!(wire_name(&Name::from_ascii(&most).unwrap()).is_some());
    }
}
