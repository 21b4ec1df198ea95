//! xgslb control plane.
//!
//! # Layout
//! - `config`: the TOML config, validated as a whole.
//! - `dns`: the slow path: zones, authoritative answers, UDP and TCP servers.
pub mod dns;
