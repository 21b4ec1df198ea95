//! Question names in the form the XDP program builds its lookup key: wire form, ASCII
//! lowercased, zero padded to `NAME_KEY_LEN`.
use hickory_proto::rr::Name;
use xgslb_common::{NAME_KEY_LEN, SelectionKey};

/// The selection key of `name`, or `None` when its wire form is longer than the XDP path
/// reads (such names are answered by the slow path alone).
pub fn selection_key(name: &Name, qtype: u16, region: u16) -> Option<SelectionKey> {
    let mut key = SelectionKey {
        name: [0; NAME_KEY_LEN],
        qtype,
        region,
    };
    let mut at = 0usize;
    for label in name.iter() {
        let end = at + 1 + label.len();
        if end >= NAME_KEY_LEN {
            return None;
        }
        key.name[at] = label.len() as u8;
        for (dst, b) in key.name[at + 1..end].iter_mut().zip(label) {
            *dst = b.to_ascii_lowercase();
        }
        at = end;
    }
    // The root label: already zero.
    Some(key)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lowercases_and_ends_with_the_root_label() {
        let name = Name::from_ascii("WwW.Example.TEST.").unwrap();
        let key = selection_key(&name, 1, 0).unwrap();
        assert_eq!(&key.name[..18], b"\x03www\x07example\x04test\x00");
        assert!(key.name[18..].iter().all(|&b| b == 0));
        assert_eq!((key.qtype, key.region), (1, 0));
    }

    #[test]
    fn names_longer_than_the_key_are_refused() {
        // 9 labels of 10 bytes: 99 bytes of wire form with the root.
        let long = "abcdefghij.".repeat(9);
        assert!(selection_key(&Name::from_ascii(&long).unwrap(), 1, 0).is_none());
        // 95 bytes: the longest that fits with its root label.
        let fits = format!("{}abc.", "abcdefghij.".repeat(8));
        assert!(selection_key(&Name::from_ascii(&fits).unwrap(), 1, 0).is_some());
    }
}
