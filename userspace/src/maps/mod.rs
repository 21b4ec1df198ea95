//! The BPF side of the control plane, kernel I/O only: loading and attaching the XDP program,
//! and writing what the plan says it answers (listeners, the answer table, the class tries)
//! into its maps.
//!
//! - `dataplane`: load the embedded object, pin maps and link, attach and detach.
//! - `foreign`: an XDP program on our interface from another pin directory (a crashed
//!   xgslbd's, frozen, is detached).
//! - `cookies`: the DNS cookie secret and clock the program uses, and its cookie counters.
//! - `link_state`: what the kernel says an interface runs (XDP program and mode).
//! - `publish`: desired vs published map entries, the diff, and applying it.
//! - `rrl`: the response rate limit's config and exempt prefixes.
//! - `tables`: the answer table and class tries behind their outer maps: key under the
//!   seed, swap, update.
pub mod cookies;
pub mod dataplane;
pub mod foreign;
pub mod link_state;
pub mod publish;
pub mod rrl;
pub mod tables;

#[cfg(test)]
mod object_tests;

pub use dataplane::{AttachMode, DataPlane, DataPlaneError, XDP_OBJECT};
