//! The plan: the data-plane state user space wants served, computed without a kernel. A
//! publication is decided (balance/), planned here, and written by maps/ (kernel I/O only).
//!
//! - `answer_sets`: the configured `[[answer]]` names as answer sets.
//! - `deferred`: wide IPs published with a peer EDNS's decisions.
//! - `ecs`: which client subnets are honoured, and the ECS partition (class and scope of a
//!   client subnet) both paths look subnets up in.
//! - `publication`: every wide IP's decision per client class as A and AAAA answer sets, the
//!   class prefixes, and the answer-counter slots.
//! - `part`: one wide IP's part of a publication (answer sets, decisions, counter labels).
//! - `reuse`: each wide IP's part of the last publication, reused while its inputs stand.
//! - `prefix_table`: longest prefix match by hashing per length (class table, ECS partition).
//! - `slots`: weights to a slot table (plain and rendezvous for static persist).
//! - `snapshot`: the published answer sets as the slow path reads them (the same sets, the
//!   same class table, the same pick arithmetic as XDP).
//! - `key`: question names in the form the XDP program compares them.
//! - `entries`: the answer table's entries, from the zones' precomputed responses and the
//!   answer sets.
//!
//! The publisher (`maps::tables`) keys the entries under its seed and writes them; the slow
//! path answers from the same zones and answer sets, so both paths agree.
pub mod answer_sets;
pub mod deferred;
pub mod ecs;
pub mod entries;
pub mod key;
pub mod part;
pub mod prefix_table;
pub mod publication;
pub mod reuse;
pub mod slots;
pub mod snapshot;

pub use entries::{plan, static_entries};

use hickory_proto::rr::{Name, RecordType};

/// The (name, type) pairs a config answers from answer sets, in place of the zones' records:
/// A and AAAA of every wide IP (every class gets both), and the families an `[[answer]]`
/// has addresses of. What the catalog is built with, known before any decision.
pub fn dynamic_names(cfg: &crate::config::Config) -> Vec<(Name, RecordType)> {
    let mut out: Vec<(Name, RecordType)> = cfg
        .model
        .wideips
        .iter()
        .flat_map(|w| [RecordType::A, RecordType::AAAA].map(|t| (w.name.clone(), t)))
        .collect();
    out.extend(
        answer_sets::answer_sets(&cfg.answers)
            .into_iter()
            .map(|(name, t, _)| (name, t)),
    );
    out.sort();
    out.dedup();
    out
}
