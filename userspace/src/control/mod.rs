//! The local control socket that `xgslbctl` drives xgslbd through (ARCHITECTURE.md
//! "Control"): a Unix stream socket, mode 0600, root peers only, one JSON request per line
//! and one JSON response per line, each with the protocol version.
//!
//! - [`protocol`]: requests and responses, and how a line is read into a request.
//! - [`dispatch`]: a command answered, against anything that is a [`dispatch::Daemon`].
//! - One renderer per read-only command, each from the published view ([`crate::view`]):
//!   [`status`], [`show`], [`explain`], [`peers`], [`check`] (`reload --check`); [`shares`]
//!   says a decision's shares for `explain` and `check`.
//! - [`recent`]: the recent events the web console lists.
//! - [`text`]: responses as `xgslbctl` prints them for a person.
//! - [`server`]: the listener in xgslbd.
//! - [`client`]: what `xgslbctl` (and tests) call.
pub mod check;
pub mod client;
pub mod dispatch;
pub mod explain;
pub mod peers;
pub mod protocol;
pub mod recent;
pub mod server;
pub mod shares;
pub mod show;
pub mod status;
pub mod text;
