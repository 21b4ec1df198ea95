//! The maps the XDP program reads; user space (xgslbd) is their only writer, except the
//! per-CPU counters, which only this program writes.
use aya_ebpf::{
    macros::map,
    maps::{HashMap, PerCpuArray},
};
use xgslb_common::{
    AnswerSet, ListenerKey, MAX_LISTENERS, MAX_SELECTIONS, Scratch, SelectionKey, Stats,
};

/// BPF_F_NO_PREALLOC: an update frees the old element only after an RCU grace period, so a
/// reader that looked up the old value keeps reading it whole while user space replaces it.
/// (A preallocated hash map recycles elements at once, which could tear a concurrent read.)
const BPF_F_NO_PREALLOC: u32 = 1;

/// (question name, qtype, region) -> the answer set to serve.
#[map(name = "XGSLB_SEL_V1")]
pub static SELECTIONS: HashMap<SelectionKey, AnswerSet> =
    HashMap::pinned(MAX_SELECTIONS, BPF_F_NO_PREALLOC);

/// (destination address, UDP port) -> 1 when this program answers queries sent there.
#[map(name = "XGSLB_LSN_V1")]
pub static LISTENERS: HashMap<ListenerKey, u32> = HashMap::pinned(MAX_LISTENERS, 0);

/// One `Stats` per CPU: counters by outcome and pass reason.
#[map(name = "XGSLB_STAT_V1")]
pub static STATS: PerCpuArray<Stats> = PerCpuArray::pinned(1, 0);

/// One u32 per CPU: the round-robin pick counter that walks answer sets' slot tables.
#[map(name = "XGSLB_PICK_V1")]
pub static PICK: PerCpuArray<u32> = PerCpuArray::pinned(1, 0);

/// One `Scratch` per CPU: the selection key under construction and the launder slot.
#[map(name = "XGSLB_SCRATCH_V1")]
pub static SCRATCH: PerCpuArray<Scratch> = PerCpuArray::with_max_entries(1, 0);
