//! The agent protocol's datagrams: round trips, clamping, splitting, and every check that
//! refuses one, each with its reason.
use super::*;

pub(crate) fn key(id: u32) -> Key {
    Key {
        id,
        secret: format!("secret-of-key-{id}-0123456789").into_bytes(),
    }
}

pub(crate) fn header(sequence: u64) -> Header {
    Header {
        kind: Kind::Report,
        key_id: 1,
        sequence,
        timestamp_ms: 1_700_000_000_000,
        agent: "tokyo-agent-1".into(),
        site: "tokyo".into(),
    }
}

fn keys(id: u32) -> Option<Key> {
    (id == 1 || id == 2).then(|| key(id))
}

fn sample() -> Vec<Record> {
    vec![
        Record::Health {
            vs: "tokyo-www".into(),
            up: true,
        },
        Record::Health {
            vs: "tokyo-api".into(),
            up: false,
        },
        Record::Load {
            vs: "tokyo-www".into(),
            load: Load {
                connections: Some(120),
                packets_per_second: None,
                kilobits_per_second: Some(5000),
                cpu_percent: Some(40.5),
                capacity: None,
                score: Some(u64::MAX),
            },
        },
        Record::Load {
            vs: "tokyo-api".into(),
            load: Load::default(),
        },
        Record::Path {
            ldns: "198.18.64.0/24".parse().unwrap(),
            rtt_us: 12_500,
            hops: 7,
            completion: 0.99,
        },
        Record::Path {
            ldns: "2001:db8:4000::/48".parse().unwrap(),
            rtt_us: u32::MAX,
            hops: 255,
            completion: 1.0,
        },
    ]
}

/// xorshift64*: deterministic noise for the fuzz-style tests.
struct Noise(u64);

impl Noise {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
}

/// Re-tags `d` (after a change) with key 1, so that the change reaches the parser.
fn retag(mut d: Vec<u8>) -> Vec<u8> {
    let n = d.len() - TAG_LEN;
    d.truncate(n);
    let mut mac = HmacSha256::new_from_slice(&key(1).secret).unwrap();
    mac.update(&d);
    d.extend_from_slice(&mac.finalize().into_bytes());
    d
}

#[test]
fn a_report_round_trips() {
    let out = encode(&header(7), &sample(), &key(1));
    assert_eq!(out.len(), 1);
    let d = decode(&out[0], keys).unwrap();
    assert_eq!(d.header, header(7));
    assert_eq!(d.records, sample());
}

#[test]
fn a_reply_round_trips_with_an_empty_site() {
    let h = Header {
        kind: Kind::Reply,
        site: String::new(),
        ..header(1)
    };
    let recs = vec![Record::ProbeRequest {
        ldns: "2001:db8:4000::/34".parse().unwrap(),
    }];
    let out = encode(&h, &recs, &key(1));
    let d = decode(&out[0], keys).unwrap();
    assert_eq!(d.header, h);
    assert_eq!(d.records, recs);
}

#[test]
fn an_empty_report_is_one_heartbeat() {
    let out = encode(&header(1), &[], &key(1));
    assert_eq!(out.len(), 1);
    assert!(decode(&out[0], keys).unwrap().records.is_empty());
}

#[test]
fn encode_clamps_and_leaves_out_what_would_not_decode() {
    let recs = vec![
        Record::Load {
            vs: "x".into(),
            load: Load {
                cpu_percent: Some(250.0),
                ..Load::default()
            },
        },
        Record::Load {
            vs: "y".into(),
            load: Load {
                cpu_percent: Some(f64::NAN),
                ..Load::default()
            },
        },
        Record::Path {
            ldns: "198.18.64.77/24".parse().unwrap(),
            rtt_us: 1,
            hops: 1,
            completion: -3.0,
        },
        Record::Health {
            vs: "n".repeat(64),
            up: true,
        },
        Record::Health {
            vs: String::new(),
            up: true,
        },
        Record::ProbeRequest {
            ldns: "198.18.64.0/24".parse().unwrap(),
        },
    ];
    let out = encode(&header(1), &recs, &key(1));
    let d = decode(&out[0], keys).unwrap();
    assert_eq!(
        d.records,
        vec![
            Record::Load {
                vs: "x".into(),
                load: Load {
                    cpu_percent: Some(100.0),
                    ..Load::default()
                },
            },
            Record::Load {
                vs: "y".into(),
                load: Load::default(),
            },
            Record::Path {
                ldns: "198.18.64.0/24".parse().unwrap(),
                rtt_us: 1,
                hops: 1,
                completion: 0.0,
            },
        ]
    );
    // A header that cannot be written: no datagram at all.
    let bad = Header {
        agent: String::new(),
        ..header(1)
    };
    assert!(encode(&bad, &recs, &key(1)).is_empty());
    let bad = Header {
        site: String::new(),
        ..header(1)
    };
    assert!(encode(&bad, &recs, &key(1)).is_empty());
}

#[test]
fn large_reports_split_with_consecutive_sequences() {
    let recs: Vec<Record> = (0..500)
        .map(|i| Record::Load {
            vs: format!("vs-{i:04}-{}", "x".repeat(50)),
            load: Load {
                connections: Some(i),
                packets_per_second: Some(i),
                kilobits_per_second: Some(i),
                cpu_percent: Some(1.0),
                capacity: Some(i),
                score: Some(i),
            },
        })
        .collect();
    let out = encode(&header(100), &recs, &key(1));
    assert!(out.len() > 10, "{} datagrams", out.len());
    let mut back = Vec::new();
    for (i, d) in out.iter().enumerate() {
        assert!(d.len() <= MAX_DATAGRAM);
        let d = decode(d, keys).unwrap();
        assert_eq!(d.header.sequence, 100 + i as u64);
        assert!(!d.records.is_empty());
        back.extend(d.records);
    }
    assert_eq!(back, recs);
    // Long names in the header too: still within the limit.
    let h = Header {
        agent: "a".repeat(63),
        site: "s".repeat(63),
        ..header(1)
    };
    for d in encode(&h, &recs, &key(1)) {
        assert!(d.len() <= MAX_DATAGRAM);
        decode(&d, keys).unwrap();
    }
}

#[test]
fn each_check_has_its_reason() {
    let good = encode(&header(1), &sample(), &key(1)).remove(0);
    let with = |f: &dyn Fn(&mut Vec<u8>)| {
        let mut d = good.clone();
        f(&mut d);
        decode(&d, keys)
    };
    assert_eq!(
        with(&|d| d.truncate(MIN_DATAGRAM - 1)),
        Err(Reject::Truncated)
    );
    assert_eq!(with(&|d| d.truncate(40)), Err(Reject::Truncated));
    assert_eq!(
        with(&|d| d.resize(MAX_DATAGRAM + 1, 0)),
        Err(Reject::Oversized)
    );
    assert_eq!(with(&|d| d[0] = b'Y'), Err(Reject::BadMagic));
    assert_eq!(with(&|d| d[4] = 2), Err(Reject::BadVersion));
    assert_eq!(with(&|d| d[11] = 9), Err(Reject::UnknownKey));
    // Key 2 exists but did not sign it.
    assert_eq!(with(&|d| d[11] = 2), Err(Reject::BadTag));
    assert_eq!(with(&|d| d[20] ^= 1), Err(Reject::BadTag));
    assert_eq!(
        with(&|d| {
            let n = d.len();
            d[n - 1] ^= 0x80
        }),
        Err(Reject::BadTag)
    );
    // A truncation past the header: the tag no longer verifies.
    assert_eq!(with(&|d| d.truncate(d.len() - 1)), Err(Reject::BadTag));
    // Signed with another secret under the same id.
    let other = Key {
        id: 1,
        secret: b"not-the-secret-0123456789".to_vec(),
    };
    let forged = encode(&header(1), &sample(), &other).remove(0);
    assert_eq!(decode(&forged, keys), Err(Reject::BadTag));
    // Correctly tagged nonsense is Malformed.
    assert_eq!(
        decode(&retag(with_byte(&good, 5, 3)), keys),
        Err(Reject::Malformed)
    );
    assert_eq!(
        decode(&retag(with_byte(&good, 6, 1)), keys),
        Err(Reject::Malformed)
    );
}

fn with_byte(d: &[u8], at: usize, v: u8) -> Vec<u8> {
    let mut d = d.to_vec();
    d[at] = v;
    d
}

/// A report with one record whose value is `value`, correctly tagged.
fn one_record(t: u8, value: &[u8]) -> Vec<u8> {
    let mut d = encode(&header(1), &[], &key(1)).remove(0);
    let n = d.len() - TAG_LEN;
    d.truncate(n);
    let count = n - 2;
    d[count..].copy_from_slice(&1u16.to_be_bytes());
    d.push(t);
    d.extend_from_slice(&(value.len() as u16).to_be_bytes());
    d.extend_from_slice(value);
    d.extend_from_slice(&[0; TAG_LEN]);
    retag(d)
}

#[test]
fn values_out_of_range_are_malformed() {
    let name = |s: &str| {
        let mut v = vec![s.len() as u8];
        v.extend_from_slice(s.as_bytes());
        v
    };
    let path = |family: u8, len: u8, addr: &[u8], completion: u16| {
        let mut v = vec![family, len];
        v.extend_from_slice(addr);
        v.extend_from_slice(&1000u32.to_be_bytes());
        v.push(3);
        v.extend_from_slice(&completion.to_be_bytes());
        v
    };
    let ok = [
        one_record(REC_HEALTH, &[name("www"), vec![1]].concat()),
        one_record(REC_PATH, &path(4, 24, &[198, 18, 64, 0], 10_000)),
        one_record(REC_PATH, &path(6, 128, &[0x20; 16], 0)),
        one_record(
            REC_LOAD,
            &[
                name("www"),
                vec![LOAD_CPU],
                10_000u16.to_be_bytes().to_vec(),
            ]
            .concat(),
        ),
        // Unknown record types are skipped.
        one_record(99, b"anything at all"),
    ];
    for d in ok {
        decode(&d, keys).unwrap();
    }
    let bad = [
        one_record(REC_HEALTH, &[name("www"), vec![2]].concat()),
        one_record(REC_HEALTH, &[name(""), vec![1]].concat()),
        one_record(REC_HEALTH, &[name(&"w".repeat(64)), vec![1]].concat()),
        one_record(REC_HEALTH, &[vec![2, 0xff, 0xfe], vec![1]].concat()),
        one_record(REC_HEALTH, &[name("w\nw"), vec![1]].concat()),
        // Trailing bytes in a record.
        one_record(REC_HEALTH, &[name("www"), vec![1, 0]].concat()),
        one_record(
            REC_LOAD,
            &[
                name("www"),
                vec![LOAD_CPU],
                10_001u16.to_be_bytes().to_vec(),
            ]
            .concat(),
        ),
        one_record(REC_LOAD, &[name("www"), vec![0x40]].concat()),
        one_record(
            REC_LOAD,
            &[name("www"), vec![LOAD_SCORE], vec![0; 7]].concat(),
        ),
        one_record(REC_PATH, &path(4, 24, &[198, 18, 64, 1], 0)),
        one_record(REC_PATH, &path(4, 33, &[198, 18, 64, 0], 0)),
        one_record(REC_PATH, &path(6, 129, &[0; 16], 0)),
        one_record(REC_PATH, &path(5, 0, &[0; 4], 0)),
        one_record(REC_PATH, &path(4, 24, &[198, 18, 64, 0], 10_001)),
        // A probe request in a report.
        one_record(REC_PROBE, &[4, 24, 198, 18, 64, 0]),
    ];
    for (i, d) in bad.iter().enumerate() {
        assert_eq!(decode(d, keys), Err(Reject::Malformed), "case {i}");
    }
    // A record count larger than the records.
    let mut d = one_record(REC_HEALTH, &[name("www"), vec![1]].concat());
    let at = d.len() - TAG_LEN - 9;
    d[at - 1] = 2;
    assert_eq!(decode(&retag(d), keys), Err(Reject::Malformed));
}

#[test]
fn no_input_panics() {
    let good = encode(&header(1), &sample(), &key(1)).remove(0);
    for n in 0..good.len() {
        assert!(decode(&good[..n], keys).is_err(), "truncation to {n}");
        // Also with the tag made right, so that the parser sees the short records.
        if n > FIXED + TAG_LEN {
            let _ = decode(&retag(good[..n].to_vec()), keys);
        }
    }
    let mut noise = Noise(0x9e37_79b9_7f4a_7c15);
    for _ in 0..20_000 {
        let len = (noise.next() % (MAX_DATAGRAM as u64 + 64)) as usize;
        let mut d: Vec<u8> = (0..len).map(|_| noise.next() as u8).collect();
        assert!(decode(&d, keys).is_err());
        // A valid prefix, then noise, tagged: only the parser stands in the way.
        if d.len() >= MIN_DATAGRAM {
            d[..8].copy_from_slice(&good[..8]);
            d[8..12].copy_from_slice(&1u32.to_be_bytes());
            let _ = decode(&retag(d), keys);
        }
    }
    // Every single-byte change of a valid datagram, tagged again.
    for at in 0..good.len() - TAG_LEN {
        for v in [0u8, 1, 0x3f, 0x40, 0x7f, 0xff] {
            let _ = decode(&retag(with_byte(&good, at, v)), keys);
        }
    }
}

/// One of each peer record, with the longest decision a datagram must carry.
fn peer_sample() -> Vec<Record> {
    let inputs = peer::Inputs {
        config: 1,
        metrics: u64::MAX,
    };
    let wideip = "w".repeat(peer::MAX_WIDEIP);
    let members: Vec<(String, u32)> = (0..xgslb_common::MAX_ADDRS)
        .map(|i| (format!("{i}{}", "v".repeat(MAX_NAME - 1)), i as u32 + 1))
        .collect();
    let decision = |v6, outcome| {
        Record::Peer(PeerRecord::Decision {
            wideip: wideip.clone(),
            generation: 9,
            class: peer::ClassKeys {
                class: 3,
                region: 4,
            },
            v6,
            outcome,
        })
    };
    vec![
        Record::Peer(PeerRecord::Hello {
            inputs,
            digest: 5,
            wideips: 10_000,
            held: 7,
        }),
        Record::Peer(PeerRecord::Subscribe {
            wideip: "www.example.test.".into(),
        }),
        Record::Peer(PeerRecord::Fingerprint {
            inputs,
            wideip: "www.example.test.".into(),
            fingerprint: 77,
        }),
        Record::Peer(PeerRecord::DecisionSet {
            wideip: wideip.clone(),
            generation: 9,
            parts: 12,
        }),
        decision(
            false,
            crate::balance::Outcome::Answer {
                members,
                ttl: 30,
                records: 2,
                persist: true,
            },
        ),
        decision(
            true,
            crate::balance::Outcome::FallbackIp {
                addr: "2001:db8::1".parse().unwrap(),
                ttl: 60,
            },
        ),
        decision(false, crate::balance::Outcome::ReturnToDns),
        decision(false, crate::balance::Outcome::ServFail),
        decision(true, crate::balance::Outcome::NoData),
        decision(true, crate::balance::Outcome::Drop),
    ]
}

fn peer_header() -> Header {
    Header {
        kind: Kind::Peer,
        agent: "edns-tokyo".into(),
        ..header(3)
    }
}

#[test]
fn peer_records_round_trip_and_the_longest_decision_fits_a_datagram() {
    let records = peer_sample();
    let out = encode(&peer_header(), &records, &key(1));
    assert!(out.iter().all(|d| d.len() <= MAX_DATAGRAM));
    let mut back = Vec::new();
    for (i, d) in out.iter().enumerate() {
        let d = decode(d, keys).unwrap();
        assert_eq!(d.header.sequence, 3 + i as u64);
        assert_eq!(d.header.kind, Kind::Peer);
        back.extend(d.records);
    }
    assert_eq!(back, records);
}

#[test]
fn peer_records_travel_only_in_peer_datagrams() {
    // Left out by encode, refused by decode.
    assert!(
        decode(&encode(&header(1), &peer_sample(), &key(1))[0], keys)
            .unwrap()
            .records
            .is_empty()
    );
    let hello = {
        let mut v = Vec::new();
        peer::encode(&peer_sample()[0].clone().into_peer(), &mut v);
        v
    };
    assert_eq!(decode(&one_record(5, &hello), keys), Err(Reject::Malformed));
    // A health record in a peer datagram.
    let out = encode(
        &peer_header(),
        &[Record::Health {
            vs: "x".into(),
            up: true,
        }],
        &key(1),
    );
    assert!(decode(&out[0], keys).unwrap().records.is_empty());
}

#[test]
fn peer_decisions_out_of_range_are_malformed() {
    let decision_head = |outcome: &[u8]| {
        let mut v = vec![1, b'w'];
        v.extend_from_slice(&9u64.to_be_bytes());
        v.extend_from_slice(&[0; 16]);
        v.push(4);
        v.extend_from_slice(outcome);
        v
    };
    let mut nine = vec![1, 0, 0, 0, 30, 1, 0, 9];
    for _ in 0..9 {
        nine.extend_from_slice(&[1, b'v', 0, 0, 0, 1]);
    }
    for bad in [
        decision_head(&[7]),                             // no such outcome
        decision_head(&[1, 0, 0, 0, 30, 1, 2, 0]),       // persist neither 0 nor 1
        decision_head(&nine),                            // more members than answered
        decision_head(&[2, 0, 0, 0, 30, 5, 1, 2, 3, 4]), // family 5
        {
            let mut v = decision_head(&[3]);
            v[0] = 0; // empty wide IP
            v.remove(1);
            v
        },
    ] {
        let d = peer_datagram(9, &bad);
        assert_eq!(decode(&d, keys), Err(Reject::Malformed), "{bad:?}");
    }
    assert!(decode(&peer_datagram(9, &decision_head(&[3])), keys).is_ok());
}

/// A peer datagram with one record of type `t` and value `value`, correctly tagged.
fn peer_datagram(t: u8, value: &[u8]) -> Vec<u8> {
    let mut d = one_record(t, value);
    d[5] = Kind::Peer as u8;
    retag(d)
}

impl Record {
    fn into_peer(self) -> PeerRecord {
        match self {
            Record::Peer(r) => r,
            other => panic!("not a peer record: {other:?}"),
        }
    }
}
