//! The local control socket that `xgslbctl` drives xgslbd through (ARCHITECTURE.md
//! "Control"): a Unix stream socket, mode 0600, root peers only, one JSON request per line
//! and one JSON response per line, each with the protocol version.
//!
//! - [`protocol`]: requests and responses, and how a line is read into a request.
//! - [`server`]: the listener in xgslbd.
//! - [`client`]: what `xgslbctl` (and tests) call.
//!
//! This first version answers `status`; the other commands of the next issue join it here.
pub mod client;
pub mod protocol;
pub mod server;
