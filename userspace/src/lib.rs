//! xgslb control plane.
//!
//! # Layout
//! - `config`: the TOML config, validated as a whole.
//! - `model`: the GSLB model (sites, servers, virtual servers, pools, wide IPs, regions).
//! - `balance`: the balancing methods, pure functions of model, metrics and client.
//! - `metrics`: the metrics the balancer weighs (the metrics file for now).
//! - `dns`: the slow path: zones, authoritative answers, UDP and TCP servers.
//! - `plan`: the desired data-plane state: the answer table's entries, from the zones'
//!   precomputed responses and the published answer sets.
//! - `udp`: the slow path's UDP workers, one per core, answering from the plan where they
//!   can.
//! - `maps`: the XDP program and its maps: load, attach, publish, read counters.
//! - `control`: the control socket (protocol, server in xgslbd, client for xgslbctl).
//! - `backoff`: the log limiter and accept backoff of every server loop.
//! - `signals`: SIGINT/SIGTERM to a cancellation token, for the binaries.
//! - `daemon`: xgslbd put together: config, data plane, slow path, signals.
//! - `agent`: xgslb-agent: health checks, load, LDNS path probes, reports to the EDNSs.
//! - `test_model`: the builder of test configs the unit and integration tests share.
pub mod agent;
pub mod backoff;
pub mod balance;
pub mod config;
pub mod control;
pub mod daemon;
pub mod dns;
pub mod maps;
pub mod metrics;
pub mod model;
pub mod plan;
pub mod secret;
pub mod signals;
#[doc(hidden)]
pub mod test_model;
pub mod udp;
pub mod view;
