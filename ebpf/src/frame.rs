//! Bounds-checked access to the frame: the pointer to a span the verifier accepts, and the
//! big-endian loads every header reader uses (parse, checksum, answer, client, reflector).
use aya_ebpf::programs::XdpContext;

use crate::verifier::opaque;

/// Largest packet offset the program touches. The verifier only trusts a bounds check on a
/// pointer whose variable offset it can bound well below 64 KiB.
pub const MAX_PKT_OFF: usize = 1023;

/// Pointer to `len` bytes at `off`, or `None` when the frame is shorter.
#[inline(always)]
pub fn ptr_at(ctx: &XdpContext, off: usize, len: usize) -> Option<*mut u8> {
    let off = opaque(off);
    if off > MAX_PKT_OFF {
        return None;
    }
    let start = ctx.data();
    let end = ctx.data_end();
    // `opaque(len)`: for len 1 the compiler would turn `p + 1 > end` into `p >= end`, from
    // which the verifier learns no range for a pointer with a variable offset.
    if start + off + opaque(len) > end {
        return None;
    }
    Some((start + off) as *mut u8)
}

/// Big-endian u16 at `p`.
///
/// # Safety
/// `p..p+2` must be inside the frame.
#[inline(always)]
pub unsafe fn load_be16(p: *const u8) -> u16 {
    unsafe { u16::from_be(p.cast::<u16>().read_unaligned()) }
}
