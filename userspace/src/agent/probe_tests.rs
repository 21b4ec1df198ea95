//! Probe target bounding, requests from replies, and a round against a local DNS server.
use std::net::Ipv4Addr;

use super::*;

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

#[test]
fn static_targets_come_first_then_requests_deduplicated_and_bounded() {
    let fixed = [ip("198.18.64.1"), ip("2001:db8:4000::1")];
    let requested = [
        ip("198.18.64.1"),
        ip("198.18.65.1"),
        ip("224.0.0.1"),
        ip("0.0.0.0"),
        ip("198.18.65.1"),
        ip("198.18.66.1"),
    ];
    assert_eq!(
        targets(&fixed, &requested, 64),
        [
            ip("198.18.64.1"),
            ip("2001:db8:4000::1"),
            ip("198.18.65.1"),
            ip("198.18.66.1")
        ]
    );
    assert_eq!(
        targets(&fixed, &requested, 3),
        [ip("198.18.64.1"), ip("2001:db8:4000::1"), ip("198.18.65.1")]
    );
    assert_eq!(targets(&fixed, &requested, 1), [ip("198.18.64.1")]);
    assert!(targets(&fixed, &requested, 0).is_empty());
}

#[test]
fn unprobeable_addresses() {
    assert!(probeable(ip("198.18.64.1")));
    assert!(probeable(ip("127.0.0.1")));
    assert!(!probeable(ip("255.255.255.255")));
    assert!(!probeable(ip("::")));
    assert!(!probeable(ip("ff02::1")));
}

fn nets(v: &[&str]) -> Vec<IpNet> {
    v.iter().map(|s| s.parse().unwrap()).collect()
}

#[test]
fn requests_follow_the_latest_reply_of_each_edns() {
    let t0 = Instant::now();
    let age = Duration::from_secs(10);
    let mut r = Requests::default();
    r.take(0, 1_000, t0, &nets(&["198.18.64.1/32", "198.18.65.0/24"]));
    // The probed address of a prefix is its address as sent.
    assert_eq!(r.current(t0, age), [ip("198.18.64.1"), ip("198.18.65.0")]);
    // A second datagram of the same reply adds.
    r.take(0, 1_000, t0, &nets(&["198.18.66.1/32", "198.18.64.1/32"]));
    assert_eq!(r.current(t0, age).len(), 3);
    // A newer reply replaces; an older one is ignored.
    r.take(0, 2_000, t0, &nets(&["198.18.67.1/32"]));
    r.take(0, 1_500, t0, &nets(&["198.18.68.1/32"]));
    assert_eq!(r.current(t0, age), [ip("198.18.67.1")]);
    // Another EDNS's later reply comes first.
    let t1 = t0 + Duration::from_secs(1);
    r.take(1, 10, t1, &nets(&["2001:db8:4000::1/128"]));
    assert_eq!(
        r.current(t1, age),
        [ip("2001:db8:4000::1"), ip("198.18.67.1")]
    );
    // Old batches expire.
    let later = t0 + Duration::from_secs(10) + Duration::from_millis(500);
    assert_eq!(r.current(later, age), [ip("2001:db8:4000::1")]);
}

#[test]
fn path_records_are_host_prefixes_with_worst_values_for_unknowns() {
    let r = PathResult {
        rtt: Some(Duration::from_micros(1_500)),
        hops: Some(7),
        completion: 0.8,
    };
    assert_eq!(
        path_record(ip("198.18.64.1"), &r),
        Record::Path {
            ldns: "198.18.64.1/32".parse().unwrap(),
            rtt_us: 1_500,
            hops: 7,
            completion: 0.8,
        }
    );
    let none = PathResult {
        rtt: None,
        hops: None,
        completion: 0.0,
    };
    assert_eq!(
        path_record(ip("2001:db8:4000::1"), &none),
        Record::Path {
            ldns: "2001:db8:4000::1/128".parse().unwrap(),
            rtt_us: u32::MAX,
            hops: u8::MAX,
            completion: 0.0,
        }
    );
}

#[test]
fn median_of_durations() {
    let ms = Duration::from_millis;
    assert_eq!(median(vec![]), None);
    assert_eq!(median(vec![ms(5), ms(1), ms(3)]), Some(ms(3)));
    assert_eq!(median(vec![ms(4), ms(1), ms(3), ms(2)]), Some(ms(2)));
}

/// A UDP DNS server on 127.0.0.1 answering REFUSED to every other query (so some are lost).
async fn half_answering_server() -> u16 {
    let s = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let port = s.local_addr().unwrap().port();
    tokio::spawn(async move {
        let mut buf = [0u8; 512];
        let mut n_seen = 0u32;
        while let Ok((n, from)) = s.recv_from(&mut buf).await {
            n_seen += 1;
            let Ok(q) = Message::from_vec(&buf[..n]) else {
                continue;
            };
            if n_seen.is_multiple_of(2) {
                continue;
            }
            let mut r = Message::response(q.metadata.id, OpCode::Query);
            r.metadata.response_code = hickory_proto::op::ResponseCode::Refused;
            r.add_queries(q.queries.clone());
            let _ = s.send_to(&r.to_vec().unwrap(), from).await;
        }
    });
    port
}

#[tokio::test]
async fn a_round_measures_rtt_completion_and_hops() {
    let port = half_answering_server().await;
    let config = ProbeConfig {
        ldns: vec![IpAddr::V4(Ipv4Addr::LOCALHOST)],
        max_targets: 4,
        interval: Duration::from_secs(5),
        count: 4,
        timeout: Duration::from_millis(300),
        port,
    };
    let round = probe_round(&config.ldns, &config).await;
    assert_eq!(round.len(), 1);
    let (target, r) = round[0];
    assert_eq!(target, IpAddr::V4(Ipv4Addr::LOCALHOST));
    assert_eq!(r.completion, 0.5, "{r:?}");
    assert!(
        r.rtt.is_some_and(|d| d < Duration::from_millis(300)),
        "{r:?}"
    );
    assert_eq!(r.hops, Some(1), "{r:?}");
}

#[tokio::test]
async fn a_silent_target_has_no_completion() {
    // Nothing listens on this port once the socket is gone: port unreachable, no answers.
    let port = {
        let s = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        s.local_addr().unwrap().port()
    };
    let rtts = dns_rtts(
        SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), port),
        3,
        Duration::from_millis(200),
    )
    .await
    .unwrap();
    assert!(rtts.is_empty());
}
