//! The GSLB model the integration tests share: three sites, a controller at each, and one
//! IPv4 virtual server per site (198.18.1.1 tokyo, 198.18.2.1 frankfurt, 198.18.3.1 newyork).
//! Tests add their pools, wide IPs, regions and topology records.
use xgslb::test_model::TestModel;

use crate::daemon::test_model;

/// `daemon::test_model` with the three sites.
pub fn three_sites() -> TestModel {
    test_model()
        .site("tokyo", "tokyo-lb", &[("tokyo-a", "198.18.1.1")])
        .site(
            "frankfurt",
            "frankfurt-lb",
            &[("frankfurt-a", "198.18.2.1")],
        )
        .site("newyork", "newyork-lb", &[("newyork-a", "198.18.3.1")])
}
