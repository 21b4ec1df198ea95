//! Per-CPU counters: one map lookup per frame, two increments.
use xgslb_common::Counter;

use crate::maps::STATS;

/// Counts a frame as received and as the outcome whose `Counter` index is `outcome`.
#[inline(always)]
pub fn count(outcome: u32) {
    // The compiler sees every outcome is in range and would drop the check the verifier
    // needs (it cannot see through the stage functions), so the index goes through `opaque`.
    let idx = crate::verifier::opaque(outcome as usize);
    if let Some(stats) = STATS.get_ptr_mut(0) {
        // SAFETY: the pointer is the map value of this CPU; nothing else writes it meanwhile
        // (XDP runs with preemption off). The index check keeps the verifier and Rust happy.
        unsafe {
            (*stats).counters[Counter::Received as usize] += 1;
            if idx < Counter::COUNT {
                (*stats).counters[idx] += 1;
            }
        }
    }
}

/// Counts a frame as received, answered, and answered as the kind whose index is `kind`.
#[inline(always)]
pub fn count_answer(kind: u32) {
    let idx = crate::verifier::opaque(kind as usize);
    if let Some(stats) = STATS.get_ptr_mut(0) {
        // SAFETY: as in `count`.
        unsafe {
            (*stats).counters[Counter::Received as usize] += 1;
            (*stats).counters[Counter::Answered as usize] += 1;
            if idx < Counter::COUNT {
                (*stats).counters[idx] += 1;
            }
        }
    }
}
