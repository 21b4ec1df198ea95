//! One authoritative zone: loaded from an RFC 1035 zone file and checked before it can serve.
//!
//! Parsing is hickory-proto's `serialize::txt::Parser`; this module only adds the checks a
//! zone must pass so that the answer logic can rely on them (one SOA at the apex, NS at the
//! apex, nothing outside the origin, no CNAME beside other data, class IN only).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use hickory_proto::rr::{DNSClass, LowerName, Name, RData, Record, RecordSet, RecordType, RrKey};
use hickory_proto::serialize::txt::{ParseError, Parser};

/// Shown as the file of a zone parsed from a string rather than loaded from disk.
const INLINE_SOURCE: &str = "<inline>";

/// Why a zone file was refused. Every variant names the file; data errors name the owner.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ZoneError {
    /// The zone file could not be read.
    #[error("zone file {}: cannot read: {source}", file.display())]
    Read {
        /// The zone file.
        file: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The zone file is not valid RFC 1035 master-file syntax.
    #[error(
        "zone file {}{}: syntax: {source}",
        file.display(),
        line.map_or(String::new(), |l| format!(":{l}"))
    )]
    Syntax {
        /// The zone file.
        file: PathBuf,
        /// The line the complaint is about, when it could be found.
        line: Option<usize>,
        /// The parser's complaint.
        source: ParseError,
    },
    /// The file's `$ORIGIN` disagrees with the origin the zone was configured with.
    #[error("zone file {}: origin {found} differs from configured origin {expected}", file.display())]
    OriginMismatch {
        /// The zone file.
        file: PathBuf,
        /// The configured origin.
        expected: String,
        /// The origin the parser ended with.
        found: String,
    },
    /// A record lies outside the zone (not at or below the origin).
    #[error("zone file {}: {owner}: record is outside zone {origin}", file.display())]
    OutOfZone {
        /// The zone file.
        file: PathBuf,
        /// The record's owner name.
        owner: String,
        /// The zone origin.
        origin: String,
    },
    /// A record has a class other than IN.
    #[error("zone file {}: {owner}: class {class} is not supported, only IN", file.display())]
    WrongClass {
        /// The zone file.
        file: PathBuf,
        /// The record's owner name.
        owner: String,
        /// The class found.
        class: DNSClass,
    },
    /// An SOA record is somewhere other than the apex.
    #[error("zone file {}: {owner}: SOA is only allowed at the apex", file.display())]
    SoaNotAtApex {
        /// The zone file.
        file: PathBuf,
        /// The SOA's owner name.
        owner: String,
    },
    /// The apex does not hold exactly one SOA record.
    #[error("zone file {}: {owner}: the apex needs exactly one SOA, found {count}", file.display())]
    SoaCount {
        /// The zone file.
        file: PathBuf,
        /// The apex name.
        owner: String,
        /// How many SOA records the apex has.
        count: usize,
    },
    /// The apex has no NS records.
    #[error("zone file {}: {owner}: the apex has no NS records", file.display())]
    NoApexNs {
        /// The zone file.
        file: PathBuf,
        /// The apex name.
        owner: String,
    },
    /// A CNAME shares its owner name with other data (RFC 1034 3.6.2, RFC 2181 10.1).
    #[error("zone file {}: {owner}: CNAME beside other data ({other})", file.display())]
    CnameAndOtherData {
        /// The zone file.
        file: PathBuf,
        /// The owner name.
        owner: String,
        /// One of the other types at that name.
        other: RecordType,
    },
}

/// A validated zone: its origin and its RRsets, keyed by (lowercased owner, type).
#[derive(Debug, Clone)]
pub struct Zone {
    origin: Name,
    rrsets: BTreeMap<RrKey, RecordSet>,
}

impl Zone {
    /// Loads and validates the zone file at `path` for `origin`.
    pub fn load(origin: &Name, path: &Path) -> Result<Zone, ZoneError> {
        let text = std::fs::read_to_string(path).map_err(|source| ZoneError::Read {
            file: path.to_path_buf(),
            source,
        })?;
        Self::parse_from(origin, &text, path, Some(path.to_path_buf()))
    }

    /// Parses and validates zone-file text for `origin` (`$INCLUDE` is not available here).
    pub fn parse(origin: &Name, text: &str) -> Result<Zone, ZoneError> {
        Self::parse_from(origin, text, Path::new(INLINE_SOURCE), None)
    }

    /// The zone's origin (apex name), fully qualified.
    pub fn origin(&self) -> &Name {
        &self.origin
    }

    /// All RRsets of the zone.
    pub(crate) fn rrsets(&self) -> &BTreeMap<RrKey, RecordSet> {
        &self.rrsets
    }

    /// The apex SOA record (validation makes sure there is exactly one).
    pub(crate) fn soa(&self) -> Option<&Record> {
        self.rrsets
            .get(&RrKey::new(LowerName::new(&self.origin), RecordType::SOA))?
            .records_without_rrsigs()
            .next()
    }

    /// The SOA's serial (0 for a zone without one, which validation refuses).
    pub fn serial(&self) -> u32 {
        match self.soa().map(|r| &r.data) {
            Some(RData::SOA(soa)) => soa.serial,
            _ => 0,
        }
    }

    /// The same zone with the SOA's serial set to `serial`: what is served when a reload
    /// changed the zone but not (or not enough) its file's serial.
    pub fn with_serial(&self, serial: u32) -> Zone {
        let mut zone = self.clone();
        let key = RrKey::new(LowerName::new(&self.origin), RecordType::SOA);
        if let Some(rrset) = zone.rrsets.get_mut(&key) {
            let records = rrset
                .records_without_rrsigs()
                .cloned()
                .map(|mut record| {
                    if let RData::SOA(soa) = &mut record.data {
                        soa.serial = serial;
                    }
                    record
                })
                .collect();
            rrset.set_records(records);
        }
        zone
    }

    fn parse_from(
        origin: &Name,
        text: &str,
        file: &Path,
        include_base: Option<PathBuf>,
    ) -> Result<Zone, ZoneError> {
        let mut origin = origin.clone();
        origin.set_fqdn(true);
        let (found, rrsets) = Parser::new(text, include_base.clone(), Some(origin.clone()))
            .parse()
            .map_err(|source| ZoneError::Syntax {
                file: file.to_path_buf(),
                line: failing_line(text, include_base.as_deref(), &origin, &source),
                source,
            })?;
        if found != origin {
            return Err(ZoneError::OriginMismatch {
                file: file.to_path_buf(),
                expected: origin.to_string(),
                found: found.to_string(),
            });
        }
        validate(&origin, &rrsets, file)?;
        Ok(Zone { origin, rrsets })
    }
}

/// The line of `text` the parser's complaint `error` is about: the fewest leading lines
/// that fail with the same complaint (hickory's errors carry no position). Each prefix
/// shorter than the bad record parses or fails otherwise (an open parenthesis), each longer
/// one fails the same way, so a binary search finds it; only ever run on a refused file.
fn failing_line(
    text: &str,
    include_base: Option<&Path>,
    origin: &Name,
    error: &ParseError,
) -> Option<usize> {
    let ends: Vec<usize> = text
        .match_indices('\n')
        .map(|(i, _)| i + 1)
        .chain((!text.ends_with('\n')).then_some(text.len()))
        .collect();
    let want = error.to_string();
    let fails_same = |lines: usize| {
        let prefix = &text[..ends[lines - 1]];
        Parser::new(
            prefix,
            include_base.map(Path::to_path_buf),
            Some(origin.clone()),
        )
        .parse()
        .is_err_and(|e| e.to_string() == want)
    };
    let (mut lo, mut hi) = (1, ends.len());
    if hi == 0 || !fails_same(hi) {
        return None;
    }
    while lo < hi {
        let mid = lo + (hi - lo) / 2;
        if fails_same(mid) {
            hi = mid;
        } else {
            lo = mid + 1;
        }
    }
    Some(lo)
}

/// Checks the rules the answer logic relies on; the first violation found is returned.
fn validate(
    origin: &Name,
    rrsets: &BTreeMap<RrKey, RecordSet>,
    file: &Path,
) -> Result<(), ZoneError> {
    let file = || file.to_path_buf();
    let apex = LowerName::new(origin);
    for (key, rrset) in rrsets {
        let owner = rrset.name().to_string();
        if !apex.zone_of(key.name()) {
            return Err(ZoneError::OutOfZone {
                file: file(),
                owner,
                origin: origin.to_string(),
            });
        }
        if let Some(record) = rrset
            .records_without_rrsigs()
            .find(|r| r.dns_class != DNSClass::IN)
        {
            return Err(ZoneError::WrongClass {
                file: file(),
                owner,
                class: record.dns_class,
            });
        }
        if key.record_type == RecordType::SOA && *key.name() != apex {
            return Err(ZoneError::SoaNotAtApex {
                file: file(),
                owner,
            });
        }
        if key.record_type == RecordType::CNAME {
            // DNSSEC records may sit beside a CNAME (RFC 4035 2.5); nothing else may.
            let other = rrsets.keys().find(|k| {
                k.name() == key.name()
                    && !matches!(
                        k.record_type,
                        RecordType::CNAME | RecordType::RRSIG | RecordType::NSEC
                    )
            });
            if let Some(other) = other {
                return Err(ZoneError::CnameAndOtherData {
                    file: file(),
                    owner,
                    other: other.record_type,
                });
            }
        }
    }
    let soa_count = rrsets
        .get(&RrKey::new(apex.clone(), RecordType::SOA))
        .map_or(0, |s| s.records_without_rrsigs().count());
    if soa_count != 1 {
        return Err(ZoneError::SoaCount {
            file: file(),
            owner: origin.to_string(),
            count: soa_count,
        });
    }
    let has_ns = rrsets
        .get(&RrKey::new(apex, RecordType::NS))
        .is_some_and(|s| !s.is_empty());
    if !has_ns {
        return Err(ZoneError::NoApexNs {
            file: file(),
            owner: origin.to_string(),
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::str::FromStr;

    fn origin() -> Name {
        Name::from_str("example.com.").expect("valid name")
    }

    const HEAD: &str = "$TTL 300\n@ SOA ns1 host 1 7200 3600 86400 60\n";

    #[test]
    fn parses_a_valid_zone() {
        let text = format!("{HEAD}@ NS ns1\nns1 A 192.0.2.1\nwww CNAME ns1\n");
        let zone = Zone::parse(&origin(), &text).expect("valid zone");
        assert_eq!(zone.origin(), &origin());
        assert_eq!(zone.rrsets().len(), 4);
    }

    #[test]
    fn with_serial_changes_only_the_soa_serial() {
        let text = format!("{HEAD}@ NS ns1\nns1 A 192.0.2.1\n");
        let zone = Zone::parse(&origin(), &text).expect("valid zone");
        assert_eq!(zone.serial(), 1);
        let bumped = zone.with_serial(7);
        assert_eq!(bumped.serial(), 7);
        assert_eq!(zone.serial(), 1, "the original is left alone");
        let soa = |z: &Zone| match &z.soa().expect("soa").data {
            RData::SOA(soa) => (soa.mname.clone(), soa.refresh, soa.minimum),
            _ => unreachable!(),
        };
        assert_eq!(soa(&zone), soa(&bumped));
        assert_eq!(zone.rrsets().len(), bumped.rrsets().len());
    }

    #[test]
    fn a_syntax_error_names_its_line_even_after_a_multi_line_record() {
        let soa = "$TTL 300\n@ SOA ns1 host (\n  1 7200\n  3600 86400 60 )\n";
        let cases = [
            (format!("{HEAD}@ NS ns1\nwww IS 192.0.2.1\n"), 4),
            (format!("{soa}@ NS ns1\nwww IN A 192.0.2.1\nbad IS x\n"), 7),
            (format!("{soa}www A 192.0.2.1\nbad IS x"), 6),
        ];
        for (text, line) in cases {
            let err = Zone::parse(&origin(), &text).unwrap_err();
            assert!(
                matches!(err, ZoneError::Syntax { line: Some(l), .. } if l == line),
                "{err:?}"
            );
            assert!(
                err.to_string()
                    .starts_with(&format!("zone file <inline>:{line}: syntax:")),
                "{err}"
            );
        }
    }

    #[test]
    fn refuses_missing_soa() {
        let err = Zone::parse(&origin(), "$TTL 300\n@ NS ns1\n").unwrap_err();
        assert!(matches!(err, ZoneError::SoaCount { count: 0, .. }), "{err}");
        assert!(err.to_string().contains("<inline>"), "{err}");
    }

    #[test]
    fn refuses_soa_below_apex() {
        let text = format!("{HEAD}@ NS ns1\nsub SOA ns1 host 1 2 3 4 5\n");
        let err = Zone::parse(&origin(), &text).unwrap_err();
        assert!(matches!(err, ZoneError::SoaNotAtApex { .. }), "{err}");
        assert!(err.to_string().contains("sub.example.com."), "{err}");
    }

    #[test]
    fn refuses_missing_apex_ns() {
        let err = Zone::parse(&origin(), &format!("{HEAD}www A 192.0.2.1\n")).unwrap_err();
        assert!(matches!(err, ZoneError::NoApexNs { .. }), "{err}");
    }

    #[test]
    fn refuses_record_outside_origin() {
        let text = format!("{HEAD}@ NS ns1\nwww.example.net. A 192.0.2.1\n");
        let err = Zone::parse(&origin(), &text).unwrap_err();
        assert!(matches!(err, ZoneError::OutOfZone { .. }), "{err}");
        assert!(err.to_string().contains("www.example.net."), "{err}");
    }

    #[test]
    fn refuses_cname_beside_other_data() {
        let text = format!("{HEAD}@ NS ns1\nwww CNAME ns1\nwww TXT \"x\"\n");
        let err = Zone::parse(&origin(), &text).unwrap_err();
        assert!(matches!(err, ZoneError::CnameAndOtherData { .. }), "{err}");
    }

    #[test]
    fn refuses_syntax_errors_and_names_the_file() {
        let dir = std::env::temp_dir().join(format!("xgslb-zone-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        let path = dir.join("bad.zone");
        std::fs::write(&path, format!("{HEAD}@ NS ns1\nwww A not-an-address\n")).expect("write");
        let err = Zone::load(&origin(), &path).unwrap_err();
        assert!(matches!(err, ZoneError::Syntax { .. }), "{err}");
        assert!(err.to_string().contains("bad.zone"), "{err}");
        let missing = Zone::load(&origin(), &dir.join("missing.zone")).unwrap_err();
        assert!(matches!(missing, ZoneError::Read { .. }), "{missing}");
        std::fs::remove_dir_all(&dir).ok();
    }
}
