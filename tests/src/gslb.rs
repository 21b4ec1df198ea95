//! The GSLB model the integration tests share: three sites, a controller at each, and one
//! IPv4 virtual server per site (198.18.1.1 tokyo, 198.18.2.1 frankfurt, 198.18.3.1 newyork).
//! Tests add their pools, wide IPs, regions and topology records.

/// Config sections to append to `daemon::test_config`'s.
pub const THREE_SITES: &str = r#"
[[site]]
name = "tokyo"
[[site]]
name = "frankfurt"
[[site]]
name = "newyork"

[[site_server]]
name = "tokyo-lb"
site = "tokyo"
[[site_server]]
name = "frankfurt-lb"
site = "frankfurt"
[[site_server]]
name = "newyork-lb"
site = "newyork"

[[virtual_server]]
name = "tokyo-a"
server = "tokyo-lb"
address = "198.18.1.1"
port = 80
[[virtual_server]]
name = "frankfurt-a"
server = "frankfurt-lb"
address = "198.18.2.1"
port = 80
[[virtual_server]]
name = "newyork-a"
server = "newyork-lb"
address = "198.18.3.1"
port = 80
"#;
