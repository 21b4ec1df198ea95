//! xgslb control plane: the library behind xgslbd, xgslbctl and xgslb-agent.
//!
//! # Module map
//! Bottom up: each module uses only modules listed above it (`tests/tests/module_cycles.rs`
//! fails on any cycle), so the crate reads in this order.
//! - `model`: the GSLB model (sites, servers, virtual servers, pools, wide IPs, regions) and
//!   the metrics it is weighed by.
//! - `secret`: the agent protocol's shared keys and the HTTP endpoint's token.
//! - `backoff`: the log limiter and accept backoff of every server loop.
//! - `signals`: SIGINT/SIGTERM to a cancellation token, for the binaries.
//! - `privileges`: the capabilities xgslbd needs, which this process lacks, and the hint a
//!   refusal for want of one gets.
//! - `config`: the TOML config, validated as a whole into a `Model` and the server settings.
//! - `balance`: the balancing methods, pure functions of model, metrics and client, with
//!   each decision's trace and each virtual server's availability (`Unavailable`).
//! - `metrics`: what the balancer weighs: the metrics file, and the agent protocol (wire
//!   format, replay guard, ingest into metrics).
//! - `dns`: the slow path's answers: zones, the catalog, responses as wire bytes, the TCP
//!   server, zone transfers out (AXFR, IXFR, TSIG, NOTIFY).
//! - `plan`: the desired data-plane state: answer sets, the answer table's entries, client
//!   classes, the slow path's snapshot.
//! - `peers`: several EDNSs as one system: fingerprints of inputs and decisions, each
//!   peer's state, what we send each, divergence, and the deferred wide IPs.
//! - `maps`: the XDP program and its maps: load, attach, publish, read counters, the
//!   pin-directory lock.
//! - `udp`: the slow path's UDP workers, one per core, answering from the plan where they
//!   can.
//! - `view`: the published, immutable view of the live model (config, metrics,
//!   availability, agents, what is served and the decisions behind it).
//! - `control`: the control socket: protocol, dispatch, one renderer per read-only command
//!   (from the view), the server in xgslbd and the client for xgslbctl.
//! - `daemon`: xgslbd put together: the balancer thread (decides and publishes), its events,
//!   the agent ingest socket, the metrics endpoint, start-up and shutdown.
//! - `agent`: xgslb-agent: health checks, load, LDNS path probes, reports to the EDNSs.
//! - `test_model`: (hidden) the TOML test model's builder, shared by every test.
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
pub mod peers;
pub mod plan;
pub mod privileges;
pub mod secret;
pub mod signals;
#[doc(hidden)]
pub mod test_model;
pub mod udp;
pub mod view;
