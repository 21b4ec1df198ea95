//! Any text as xgslbd's config: validation never panics (it may refuse, naming a key).
#![no_main]

use std::path::Path;

use libfuzzer_sys::fuzz_target;
use xgslb::config::Config;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let _ = Config::parse(Path::new("/nonexistent/xgslb.toml"), text);
});
