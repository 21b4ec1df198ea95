//! Per-CPU counters: one map lookup per frame, two increments (three for an answer); an
//! answer's answer and ECS counters once it goes out.
use xgslb_common::Counter;

use crate::maps::STATS;

/// Counts a frame as received and as the outcome whose `Counter` index is `outcome`; an
/// answered frame (`answered`) also as `Answered`, its outcome being the kind of answer.
#[inline(always)]
pub fn count(outcome: u32, answered: bool) {
    // The compiler sees every outcome is in range and would drop the check the verifier
    // needs (it cannot see through the stage functions), so the index goes through `opaque`.
    let idx = crate::verifier::opaque(outcome as usize);
    if let Some(stats) = STATS.get_ptr_mut(0) {
        // SAFETY: the pointer is the map value of this CPU; nothing else writes it meanwhile
        // (XDP runs with preemption off). The index check keeps the verifier and Rust happy.
        unsafe {
            (*stats).counters[Counter::Received as usize] += 1;
            if answered {
                (*stats).counters[Counter::Answered as usize] += 1;
            }
            if idx < Counter::COUNT {
                (*stats).counters[idx] += 1;
            }
        }
    }
}

/// Counts the answer written in `scratch` in the answer and ECS counters it names, once it
/// goes out whole (an answer the rate limit drops or slips counts in neither).
#[inline(always)]
pub fn count_answer(scratch: &xgslb_common::Scratch) {
    for (map, i) in [
        (&crate::maps::ANSWERS, scratch.answer_stat),
        (&crate::maps::ECS_STATS, scratch.ecs_stat),
    ] {
        // NO_COUNT, like any index past the map, finds nothing.
        if let Some(c) = map.get_ptr_mut(i) {
            // SAFETY: this CPU's counter; XDP runs with preemption off.
            unsafe { *c += 1 };
        }
    }
}
