//! Any text as a zone file: parsing and validation never panic, and a zone that loads
//! builds a catalog whose precomputed responses (what XDP is given) never panic either.
#![no_main]

use std::str::FromStr;

use hickory_proto::rr::Name;
use libfuzzer_sys::fuzz_target;
use xgslb::dns::{Catalog, Zone};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let origin = Name::from_str("example.test.").expect("origin");
    if let Ok(zone) = Zone::parse(&origin, text)
        && let Ok(catalog) = Catalog::new(vec![zone], &[])
    {
        let _ = catalog.precompute();
    }
});
