//! Any bytes as an agent or peer datagram: decoding never panics; whatever decodes under a
//! key is encoded again into datagrams that decode to the same header and records; and a
//! verified peer datagram's records never panic the peer table.
#![no_main]

use hmac::{Hmac, Mac};
use libfuzzer_sys::fuzz_target;
use sha2::Sha256;
use xgslb::{
    config::{PeerConfig, PeeringConfig},
    metrics::wire::{self, Key, Kind},
    peers::PeerTable,
};

fn key() -> Key {
    Key {
        id: 7,
        secret: b"fuzz-secret-0123456789abcdef".to_vec(),
    }
}

fuzz_target!(|data: &[u8]| {
    // Most inputs fail the tag; re-tagging them with the key reaches the parser too.
    let mut tagged = data.to_vec();
    if tagged.len() >= wire::TAG_LEN {
        let n = tagged.len() - wire::TAG_LEN;
        tagged.truncate(n);
        let mut mac = Hmac::<Sha256>::new_from_slice(&key().secret).expect("any key length");
        mac.update(&tagged);
        tagged.extend_from_slice(&mac.finalize().into_bytes());
    }
    for bytes in [data, &tagged[..]] {
        let Ok(d) = wire::decode(bytes, |id| (id == 7).then(key)) else {
            continue;
        };
        let again = wire::encode(&d.header, &d.records, &key());
        let mut records = Vec::new();
        for (i, a) in again.iter().enumerate() {
            let back = wire::decode(a, |_| Some(key())).expect("what encode writes decodes");
            assert_eq!(
                back.header.sequence,
                d.header.sequence.wrapping_add(i as u64)
            );
            records.extend(back.records);
        }
        assert_eq!(records, d.records);
        if d.header.kind == Kind::Peer {
            let config = PeeringConfig {
                name: "edns-a".into(),
                site: "a".into(),
                listen: "198.18.0.2:5301".parse().expect("address"),
                heartbeat_ms: 1000,
                silent_after_ms: 3000,
                max_skew_ms: 30_000,
                peers: vec![PeerConfig {
                    name: d.header.agent.clone(),
                    site: "b".into(),
                    address: "198.18.0.3:5301".parse().expect("address"),
                    key: key(),
                    secret_file: "k".into(),
                    relay: true,
                }],
            };
            let mut table = PeerTable::new(&config);
            table.receive(0, &d.records, 1_700_000_000_000);
            let _ = table.divergent();
        }
    }
});
