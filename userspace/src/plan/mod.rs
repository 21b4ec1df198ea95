//! The plan: the data-plane state user space wants served, computed without a kernel.
//!
//! - `key`: question names in the form the XDP program compares them.
//! - `entries`: the answer table's entries, from the zones' precomputed responses and the
//!   published answer sets.
//!
//! The publisher (`maps::tables`) keys the entries under its seed and writes them; the slow
//! path answers from the same zones and answer sets, so both paths agree.
pub mod entries;
pub mod key;

pub use entries::{plan, static_entries};
