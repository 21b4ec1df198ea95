//! One wide IP's share of a publication: what the publication makes per wide IP, what a
//! later one may reuse (`reuse`) and what the view `explain` and the answer counters read.
use xgslb_common::ClassId;

use crate::{
    balance::{Decision, Outcome},
    metrics::wire::peer::ClassKeys,
    plan::snapshot::SetEntry,
};

/// What one answer-counter slot counts: a wide IP's A answers to a client class, by the
/// virtual server (or fallback address) leading each answer.
#[derive(Clone, Debug, PartialEq)]
pub struct StatLabel {
    pub slot: u32,
    pub wideip: String,
    /// The client class's key ("default" for everyone else).
    pub class: String,
    /// By address index of the set: the VS name, or the address when no VS has it.
    pub leads: Vec<String>,
}

/// One wide IP's outcomes ([A, AAAA]) per client class.
pub type WideIpOutcomes = Vec<(ClassKeys, [Outcome; 2])>;

/// One wide IP's share of a publication (shared, not copied, by the next publication that
/// reuses it and by the view `explain` reads).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct WideIpPart {
    pub sets: Vec<SetEntry>,
    /// By class id: the decision `explain` shows.
    pub decisions: Vec<(ClassId, Decision)>,
    pub stats: Vec<StatLabel>,
    /// [A, AAAA] per client class.
    pub outcomes: WideIpOutcomes,
    /// Made from the model, classes and its pools' metrics alone (see `plan::reuse`).
    pub reusable: bool,
}
