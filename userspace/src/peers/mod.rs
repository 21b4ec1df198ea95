//! Several EDNSs as one system (claims 13, 45-48, 57, 58): the peer protocol's state.
//!
//! - `fingerprint`: stable fingerprints of what decisions are made from ([`Inputs`]) and of
//!   each wide IP's decision, so EDNSs can tell whether they agree.
//! - `table`: the balancer's side: each peer's contact, fingerprints and decisions, what we
//!   send each, which wide IPs diverge, and how each deferred wide IP is published.
//!
//! The wire format is the agent protocol's (`metrics::wire`, kind 3, records 5 to 9); the
//! daemon verifies peer datagrams and relays agent reports (`daemon::peer_socket`).
//!
//! [`Inputs`]: crate::metrics::wire::peer::Inputs
pub mod fingerprint;
pub mod table;

pub use table::{PeerEvents, PeerState, PeerTable};
