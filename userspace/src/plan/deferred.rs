//! Decisions made elsewhere: a wide IP with `decided_by` is published with its peer EDNS's
//! outcomes instead of this EDNS's, per client class and address family (claims 48, 58), or,
//! while the peer is silent, by the wide IP's `when_peer_silent` policy.
use std::collections::HashMap;

use crate::{
    balance::{Outcome, trace::Step},
    metrics::wire::peer::ClassKeys,
};

/// A peer's whole decision for one wide IP, by this EDNS's virtual-server indices.
#[derive(Clone, Debug, PartialEq)]
pub struct PeerOutcomes {
    /// Said in the trace of every class.
    pub step: Step,
    /// [A, AAAA] by class key hash.
    by_class: HashMap<u64, [Outcome; 2]>,
    /// [A, AAAA] by region key hash: the peer's first class of each region.
    by_region: HashMap<u64, [Outcome; 2]>,
}

impl PeerOutcomes {
    /// The peer's outcomes of each of its classes (in its order).
    pub fn new(step: Step, classes: impl IntoIterator<Item = (ClassKeys, [Outcome; 2])>) -> Self {
        let mut by_class = HashMap::new();
        let mut by_region = HashMap::new();
        for (keys, outcomes) in classes {
            by_region
                .entry(keys.region)
                .or_insert_with(|| outcomes.clone());
            by_class.insert(keys.class, outcomes);
        }
        Self {
            step,
            by_class,
            by_region,
        }
    }

    /// What the peer answers this EDNS's class `keys`: the peer's class of the same key,
    /// else its first class of the same region (the paths differ: the peer has probed
    /// other LDNSs), else its default class. `None` only if the peer sent no default class.
    pub fn outcomes(&self, keys: ClassKeys) -> Option<&[Outcome; 2]> {
        let default = crate::model::stable_key(crate::balance::classes::DEFAULT_KEY);
        self.by_class
            .get(&keys.class)
            .or_else(|| self.by_region.get(&keys.region))
            .or_else(|| self.by_class.get(&default))
    }
}

/// How a deferred wide IP is published this time.
#[derive(Clone, Debug, PartialEq)]
pub enum Deferred {
    /// The peer's decision (fresh, or the last one kept while it is silent).
    Peer(PeerOutcomes),
    /// Decided here, with this step first in each trace (the peer is silent).
    Local(Step),
    /// The all-down behaviour, with this step (the peer is silent).
    AllDown(Step),
}

/// Deferred wide IPs by model index; the others are decided here.
pub type DeferredWideIps = HashMap<usize, Deferred>;
