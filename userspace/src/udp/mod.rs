//! The slow path's UDP service: one worker thread per core, each with its own SO_REUSEPORT
//! socket per listen address, fed by the kernel with the datagrams its CPU received, reading
//! and writing in batches, answering from the plan where it can and from the full handler
//! otherwise.
//!
//! - `answer`: answers from the plan's answer table, the XDP program's way, without
//!   allocating.
//! - `socket`: the reuseport socket group and its CPU-steering program.
//! - `batch`: recvmmsg and sendmmsg over preallocated buffers.
//! - `limit`: the response rate limit (RRL): its rules, the buckets, the slipped reply.
//! - `worker`: the worker loop, its counters, start and stop.
pub mod answer;
pub mod batch;
pub mod limit;
pub mod socket;
pub mod worker;

pub use answer::{PlanAnswers, Planned};
pub use limit::{ResponseLimiter, RrlRules};

pub use worker::{Publication, Source, Totals, WorkerCounters, Workers, totals};
