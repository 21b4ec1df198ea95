//! Serials, differences and the IXFR journal, on zones parsed from text.
use super::*;

fn origin() -> Name {
    Name::from_ascii("example.com.").expect("name")
}

/// The zone with SOA serial `serial` and `body` below the apex NS.
fn zone(serial: u32, body: &str) -> Zone {
    let text = format!(
        "$TTL 300\n@ SOA ns1 host {serial} 7200 3600 86400 60\n@ NS ns1\nns1 A 192.0.2.1\n{body}"
    );
    Zone::parse(&origin(), &text).expect("valid zone")
}

fn rendered(records: &[Record]) -> Vec<String> {
    records
        .iter()
        .map(|r| format!("{} {} {} {}", r.name, r.ttl, r.record_type(), r.data))
        .collect()
}

/// The versions after loading each of `zones` in turn, with the served serial of each step.
fn reloads(zones: &[Zone]) -> (ZoneVersions, Vec<u32>) {
    let mut versions = ZoneVersions::default();
    let mut serials = Vec::new();
    for z in zones {
        let u = versions.updated(vec![z.clone()]);
        serials.push(u.zones[0].serial());
        versions = u.versions;
    }
    (versions, serials)
}

fn history(v: &ZoneVersions) -> &ZoneHistory {
    v.get(&LowerName::new(&origin()))
        .expect("the zone's history")
}

#[test]
fn next_serial_takes_a_newer_file_serial_else_adds_one_with_rfc_1982_wrap() {
    assert_eq!(next_serial(5, 9), 9);
    assert_eq!(next_serial(5, 5), 6);
    assert_eq!(next_serial(5, 3), 6, "an older file serial is not served");
    assert_eq!(next_serial(u32::MAX, 0), 0, "0 is newer than 2^32-1");
    assert_eq!(next_serial(u32::MAX, 3), 3);
    assert_eq!(next_serial(u32::MAX - 1, u32::MAX), u32::MAX);
    assert_eq!(next_serial(u32::MAX, u32::MAX), 0, "last + 1 wraps");
    // 2^31 apart is undefined in RFC 1982: not newer, so last + 1.
    assert_eq!(next_serial(10, 10 + (1 << 31)), 11);
    // Just under 2^31 ahead is newer; just over is behind.
    assert_eq!(next_serial(10, 10 + (1 << 31) - 1), 10 + (1 << 31) - 1);
    assert_eq!(next_serial(10, 10u32.wrapping_sub(1)), 11);
}

#[test]
fn a_change_without_a_serial_bump_serves_last_plus_one_and_no_change_keeps_the_serial() {
    let (v, serials) = reloads(&[
        zone(10, "www A 192.0.2.10\n"),
        zone(10, "www A 192.0.2.10\n"), // unchanged
        zone(10, "www A 192.0.2.11\n"), // changed, same file serial
        zone(10, "www A 192.0.2.11\n"), // unchanged again: the bumped serial stays
        zone(9, "www A 192.0.2.11\n"),  // an older file serial, unchanged data
        zone(50, "www A 192.0.2.11\n"), // a newer file serial alone is a new version
        zone(20, "www A 192.0.2.12\n"), // changed, file behind: last + 1
    ]);
    assert_eq!(serials, [10, 10, 11, 11, 11, 50, 51]);
    assert_eq!(history(&v).current().serial(), 51);
    assert_eq!(history(&v).diffs.len(), 3);
}

#[test]
fn the_served_zone_carries_the_served_serial() {
    let (v, _) = reloads(&[zone(3, "www A 192.0.2.10\n")]);
    let u = v.updated(vec![zone(3, "www A 192.0.2.20\n")]);
    assert_eq!(u.zones[0].serial(), 4);
    assert_eq!(u.changed, [origin()]);
    let soa = u.zones[0].soa().expect("soa");
    assert_eq!(
        soa,
        u.versions
            .get(&LowerName::new(&origin()))
            .unwrap()
            .current()
            .soa()
    );
    // Nothing changed: nothing to notify, the same serial.
    let again = u.versions.updated(vec![zone(3, "www A 192.0.2.20\n")]);
    assert!(again.changed.is_empty());
    assert_eq!(again.zones[0].serial(), 4);
}

#[test]
fn a_new_zone_is_a_change_and_a_removed_one_is_forgotten() {
    let first = ZoneVersions::default().updated(vec![zone(1, "")]);
    assert_eq!(first.changed, [origin()]);
    let gone = first.versions.updated(Vec::new());
    assert!(gone.versions.get(&LowerName::new(&origin())).is_none());
}

#[test]
fn diffs_hold_deletions_and_additions_and_a_ttl_change_is_both() {
    let (v, _) = reloads(&[
        zone(1, "www A 192.0.2.10\nold TXT \"x\"\nttl 300 A 192.0.2.7\n"),
        zone(1, "www A 192.0.2.10\nnew TXT \"y\"\nttl 60 A 192.0.2.7\n"),
    ]);
    let d = &history(&v).diffs[0];
    assert_eq!(d.from_serial(), 1);
    assert_eq!(soa_serial(&d.new_soa), 2);
    assert_eq!(
        rendered(&d.deleted),
        [
            "old.example.com. 300 TXT x",
            "ttl.example.com. 300 A 192.0.2.7"
        ]
    );
    assert_eq!(
        rendered(&d.added),
        [
            "new.example.com. 300 TXT y",
            "ttl.example.com. 60 A 192.0.2.7"
        ]
    );
}

#[test]
fn the_journal_is_incremental_from_a_known_serial_else_full_or_up_to_date() {
    let big: String = (0..20).map(|i| format!("h{i} A 192.0.2.{i}\n")).collect();
    let (v, serials) = reloads(&[
        zone(1, &big),
        zone(1, &format!("{big}a A 192.0.2.100\n")),
        zone(1, &format!("{big}a A 192.0.2.101\n")),
    ]);
    assert_eq!(serials, [1, 2, 3]);
    let h = history(&v);
    match h.journal(1) {
        Journal::Incremental(d) => {
            assert_eq!(d.len(), 2);
            assert_eq!(d[0].from_serial(), 1);
            assert_eq!(d[1].from_serial(), 2);
        }
        other => panic!("{other:?}"),
    }
    match h.journal(2) {
        Journal::Incremental(d) => {
            assert_eq!(rendered(&d[0].added), ["a.example.com. 300 A 192.0.2.101"])
        }
        other => panic!("{other:?}"),
    }
    assert!(matches!(h.journal(3), Journal::UpToDate));
    assert!(matches!(h.journal(4), Journal::UpToDate), "a newer serial");
    assert!(matches!(h.journal(0), Journal::Full), "an unknown serial");
}

#[test]
fn differences_bigger_than_the_zone_send_the_zone() {
    let (v, _) = reloads(&[zone(1, "a A 192.0.2.1\n"), zone(1, "b A 192.0.2.2\n")]);
    // 2 records changed in a zone of 3 besides the SOA (NS, ns1, b): still incremental.
    assert!(matches!(history(&v).journal(1), Journal::Incremental(_)));
    let (v, _) = reloads(&[
        zone(1, "a A 192.0.2.1\nb A 192.0.2.2\n"),
        zone(1, "c A 192.0.2.3\nd A 192.0.2.4\n"),
    ]);
    // 4 changes, 4 records: still not more.
    assert!(matches!(history(&v).journal(1), Journal::Incremental(_)));
    let (v, _) = reloads(&[
        zone(1, "a A 192.0.2.1\nb A 192.0.2.2\nc A 192.0.2.3\n"),
        zone(1, "d A 192.0.2.4\n"),
    ]);
    // 4 changes against 3 records: the zone is smaller.
    assert!(matches!(history(&v).journal(1), Journal::Full));
}

#[test]
fn the_history_keeps_the_last_sixteen_differences() {
    // Enough records that sixteen differences are still less than the zone.
    let filler: String = (0..40).map(|i| format!("f{i} A 192.0.2.{i}\n")).collect();
    let zones: Vec<Zone> = (0..=HISTORY_LEN + 2)
        .map(|i| zone(1, &format!("{filler}www A 192.0.2.{i}\n")))
        .collect();
    let (v, serials) = reloads(&zones);
    let last = *serials.last().unwrap();
    assert_eq!(last, 1 + HISTORY_LEN as u32 + 2);
    let h = history(&v);
    assert_eq!(h.diffs.len(), HISTORY_LEN);
    assert!(
        matches!(h.journal(last - HISTORY_LEN as u32), Journal::Incremental(d) if d.len() == HISTORY_LEN)
    );
    assert!(matches!(
        h.journal(last - HISTORY_LEN as u32 - 1),
        Journal::Full
    ));
}
