//! `[ecs]`: how far client subnets (RFC 7871) are honoured, and whose.
use ipnet::IpNet;
use xgslb_common::{ECS_MAX_V4, ECS_MAX_V6};

/// Which client subnets are honoured, and to how many bits.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EcsPolicy {
    /// Longest source prefix honoured, per family; longer ones are cut (RFC 7871 7.1.2).
    pub max4: u8,
    pub max6: u8,
    /// Resolvers whose subnets are honoured; empty: every resolver's.
    pub trusted: Vec<IpNet>,
}

impl Default for EcsPolicy {
    fn default() -> Self {
        Self {
            max4: ECS_MAX_V4,
            max6: ECS_MAX_V6,
            trusted: Vec::new(),
        }
    }
}
