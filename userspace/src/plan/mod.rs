//! The plan: the data-plane state user space wants served, computed without a kernel. A
//! publication is decided (balance/), planned here, and written by maps/ (kernel I/O only).
//!
//! - `answer_sets`: the configured `[[answer]]` names as answer sets.
//! - `publication`: every wide IP's decision per client class as A and AAAA answer sets, the
//!   class prefixes, and the answer-counter slots.
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
pub mod entries;
pub mod key;
pub mod publication;
pub mod slots;
pub mod snapshot;

pub use entries::{plan, static_entries};
