//! Everything the program does only to be accepted by the kernel's verifier, in one place.
//!
//! - **Stage functions.** The DNS parse, the answer and the rate limit are global BPF
//!   functions (exported with bpf-linker's `--export`, see ebpf/.cargo/config.toml). The
//!   verifier checks a global function once, with its arguments unknown; inlined, the answer
//!   stage would be walked once per way of reaching it (name lengths, VLAN counts, families,
//!   option counts) and verification would pass its 1M-instruction limit. Values cross the
//!   boundary as scalars (`parse::L3::pack`) or through the per-CPU scratch map, and are
//!   bounded again on the other side.
//! - **`opaque`.** LLVM removes a bounds check it has proved redundant, or computes a checked
//!   pointer twice; the verifier, which cannot follow the proof, then rejects the access.
//!   A volatile round trip hides the value from the optimiser.
//! - **`launder`.** A loop that ends at one of N exact offsets leaves N verifier states
//!   behind it; a store to and load from map memory turns them into one state with a range.
//! - **One walk for all the ways.** The verifier tells states apart by the values it had to
//!   know exactly; a value worked out two ways (with or without a client subnet) splits
//!   everything after it in two. So the OPT's walk notes where a client subnet lies in the
//!   scratch instead of carrying it; the answer stage reads the subnet's use back from the
//!   scratch (`answer::Use`) whether the query had one or not, and the echo's bytes and sum
//!   live there too. The name's suffixes are hashed before the OPT's walk, whose many ends
//!   would each walk the hashing loop again.
//! - **Scratch in a map, not on the stack.** The verifier tracks every stack byte; a name
//!   written at a variable length splits its states past what it can explore.
//! - **Word stores, no memset/memcpy.** On BPF those are byte loops (`llvm-objdump -r` on the
//!   object must show no memset/memcpy relocations): keys are built with whole-word volatile
//!   stores, and map keys are passed by reference (by value they are copied with `memcpy`).
//! - **Masks on indices.** The verifier cannot bound a modulo, and LLVM drops a mask it can
//!   prove useless: such masks go on `opaque` values.

use xgslb_common::Scratch;

/// `v`, hidden from the optimiser (a volatile stack round trip) so that a bound check the
/// verifier needs is not folded away by a compiler that already proved it.
#[inline(always)]
pub fn opaque(v: usize) -> usize {
    let slot = v;
    // SAFETY: a read of a local.
    unsafe { core::ptr::read_volatile(&slot) }
}

/// `v` as a value the verifier knows only to be at most `max` (`None` if it is larger): a
/// round trip through the caller's scratch.
#[inline(always)]
pub fn launder(scratch: &mut Scratch, v: usize, max: usize) -> Option<usize> {
    // SAFETY: a field of the caller's scratch.
    let v = unsafe {
        let slot = core::ptr::addr_of_mut!(scratch.launder);
        core::ptr::write_volatile(slot, v as u64);
        core::ptr::read_volatile(slot) as usize
    };
    if v > max { None } else { Some(v) }
}
