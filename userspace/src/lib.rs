//! xgslb control plane.
//!
//! # Layout
//! - `config`: the TOML config, validated as a whole.
//! - `dns`: the slow path: zones, authoritative answers, UDP and TCP servers.
//! - `maps`: the XDP program and its maps: load, attach, publish, read counters.
//! - `daemon`: xgslbd put together: config, data plane, slow path, signals.
pub mod config;
pub mod daemon;
pub mod dns;
pub mod maps;
