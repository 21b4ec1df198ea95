//! The BPF side of the control plane: loading and attaching the XDP program, and publishing
//! what it answers (listeners, the answer table) into its maps.
//!
//! - `dataplane`: load the embedded object, pin maps and link, attach and detach.
//! - `slots`: weights to a slot table.
//! - `publish`: desired vs published selections, the diff, and applying it.
//! - `snapshot`: the published answer sets as the slow path reads them.
//! - `tables`: the selection table and region tries behind their outer maps: swap, update.
pub mod dataplane;
pub mod publish;
pub mod slots;
pub mod snapshot;
pub mod tables;

pub use dataplane::{AttachMode, DataPlane, DataPlaneError, XDP_OBJECT};
