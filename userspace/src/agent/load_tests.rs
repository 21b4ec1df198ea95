//! The load parsers over sample kernel files and JSON.
use super::*;

/// /proc/net/tcp: a listener on :80 (0A), two established to :80, one established from an
/// ephemeral port to a remote :80 (not ours), one TIME_WAIT on :80 (06).
const TCP: &str = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 00000000:0050 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 20462 1 0000000000000000 100 0 0 10 0
   1: 0A01A8C6:0050 0100A8C6:D2F0 01 00000000:00000000 02:000A7B2C 00000000     0        0 20999 2 0000000000000000 20 4 30 10 -1
   2: 0A01A8C6:0050 0200A8C6:D2F1 01 00000000:00000000 02:000A7B2C 00000000     0        0 21000 2 0000000000000000 20 4 30 10 -1
   3: 0A01A8C6:C350 0300A8C6:0050 01 00000000:00000000 02:000A7B2C 00000000     0        0 21001 2 0000000000000000 20 4 30 10 -1
   4: 0A01A8C6:0050 0400A8C6:D2F3 06 00000000:00000000 03:00001767 00000000     0        0 0 3 0000000000000000
";

/// /proc/net/tcp6: one established to :443, one listener on :443.
const TCP6: &str = "  sl  local_address                         remote_address                        st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 00000000000000000000000000000000:01BB 00000000000000000000000000000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 30462 1 0000000000000000 100 0 0 10 0
   1: B80D0120000000000000000010000000:01BB B80D0120000000000000000020000000:E3A2 01 00000000:00000000 02:00097B2C 00000000     0        0 31000 2 0000000000000000 20 4 30 10 -1
";

#[test]
fn established_connections_to_the_local_port_count() {
    assert_eq!(established_connections(TCP, 80).unwrap(), 2);
    assert_eq!(established_connections(TCP, 443).unwrap(), 0);
    assert_eq!(established_connections(TCP6, 443).unwrap(), 1);
    assert_eq!(established_connections("header only\n", 80).unwrap(), 0);
    assert!(established_connections("h\n 0: nonsense\n", 80).is_err());
    assert!(established_connections("h\n 0: 0100007F:zz 00000000:0000 01\n", 80).is_err());
}

#[test]
fn counters_parse() {
    assert_eq!(parse_counter("123456789\n").unwrap(), 123_456_789);
    assert!(parse_counter("-1\n").is_err());
    assert!(parse_counter("").is_err());
}

#[test]
fn interface_rates_come_from_two_samples() {
    let before = InterfaceCounters {
        rx_packets: 1_000,
        tx_packets: 2_000,
        rx_bytes: 1_000_000,
        tx_bytes: 500_000,
    };
    let after = InterfaceCounters {
        rx_packets: 3_000,
        tx_packets: 4_000,
        rx_bytes: 1_250_000,
        tx_bytes: 750_000,
    };
    // 4000 packets and 500,000 bytes (4,000 kbit) in 2 s.
    assert_eq!(
        interface_rates(&before, &after, Duration::from_secs(2)),
        Some((2_000, 2_000))
    );
    // A reset counter or no time: no rate.
    assert_eq!(
        interface_rates(&after, &before, Duration::from_secs(2)),
        None
    );
    assert_eq!(interface_rates(&before, &after, Duration::ZERO), None);
}

const STAT_1: &str = "cpu  100 0 50 800 50 0 0 0 0 0
cpu0 50 0 25 400 25 0 0 0 0 0
intr 12345
";
const STAT_2: &str = "cpu  160 0 90 1050 100 0 0 0 0 0
cpu0 80 0 45 525 50 0 0 0 0 0
";

#[test]
fn cpu_busy_comes_from_two_stat_samples() {
    let a = parse_proc_stat(STAT_1).unwrap();
    assert_eq!(
        a,
        CpuTimes {
            idle: 850,
            total: 1_000
        }
    );
    let b = parse_proc_stat(STAT_2).unwrap();
    // 400 ticks passed, 300 of them idle or waiting.
    assert_eq!(cpu_busy_percent(&a, &b), Some(25.0));
    assert_eq!(cpu_busy_percent(&a, &a), None);
    assert_eq!(cpu_busy_percent(&b, &a), None);
    assert!(parse_proc_stat("cpu0 1 2 3 4\n").is_err());
    assert!(parse_proc_stat("cpu  1 2 x 4\n").is_err());
    assert!(parse_proc_stat("cpu  1 2\n").is_err());
}

#[test]
fn load_json_parses() {
    let l = parse_load_json(
        br#"{"connections": 12, "packets_per_second": 3400, "kilobits_per_second": 9000,
            "cpu_percent": 42.5, "capacity": 1000, "score": 7}"#,
    )
    .unwrap();
    assert_eq!(
        l,
        Load {
            connections: Some(12),
            packets_per_second: Some(3400),
            kilobits_per_second: Some(9000),
            cpu_percent: Some(42.5),
            capacity: Some(1000),
            score: Some(7),
        }
    );
    assert_eq!(parse_load_json(b"{}").unwrap(), Load::default());
    for bad in [
        &br#"{"conections": 1}"#[..],
        br#"{"connections": -1}"#,
        br#"{"cpu_percent": 101}"#,
        b"not json",
    ] {
        assert!(
            parse_load_json(bad).is_err(),
            "{}",
            String::from_utf8_lossy(bad)
        );
    }
}

#[test]
fn merge_keeps_the_first_and_fills_from_the_second() {
    let own = Load {
        connections: Some(1),
        ..Load::default()
    };
    let json = Load {
        connections: Some(99),
        score: Some(5),
        ..Load::default()
    };
    let m = merge(own, json);
    assert_eq!((m.connections, m.score), (Some(1), Some(5)));
    assert!(is_empty(&Load::default()));
    assert!(!is_empty(&m));
}
