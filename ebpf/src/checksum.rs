//! Internet checksum arithmetic (RFC 1071): 16-bit ones' complement sums kept in a u32 and
//! folded at the end.

/// Folds a 32-bit accumulator into 16 bits.
#[inline(always)]
pub fn fold(mut sum: u32) -> u16 {
    sum = (sum & 0xffff) + (sum >> 16);
    sum = (sum & 0xffff) + (sum >> 16);
    sum as u16
}

/// A word written at an odd offset contributes its bytes swapped; ones' complement sums commute
/// with byte swapping (RFC 1071 section 2(B)), so a sum of a stream placed at an odd offset is
/// the byte-swapped sum of the stream.
#[inline(always)]
pub fn at_parity(sum: u32, odd: bool) -> u32 {
    let folded = fold(sum);
    if odd {
        folded.swap_bytes() as u32
    } else {
        folded as u32
    }
}

/// Sum of the 16-bit big-endian words of a 4-byte value.
#[inline(always)]
pub fn sum_u32(v: u32) -> u32 {
    (v >> 16) + (v & 0xffff)
}

/// Sum of the 16-bit big-endian words of an 8-byte value.
#[inline(always)]
pub fn sum_u64(v: u64) -> u32 {
    sum_u32((v >> 32) as u32) + sum_u32(v as u32)
}

/// Final checksum field from a sum: complemented; for UDP a computed zero is sent as 0xffff
/// (RFC 768: zero means "no checksum").
#[inline(always)]
pub fn finish_udp(sum: u32) -> u16 {
    match !fold(sum) {
        0 => 0xffff,
        c => c,
    }
}

/// Sum of the `words` big-endian 16-bit words at `p`.
///
/// # Safety
/// `p..p + 2 * words` must be inside the frame.
#[inline(always)]
pub unsafe fn sum_be16(p: *const u8, words: usize) -> u32 {
    let mut sum = 0u32;
    for i in 0..words {
        sum += unsafe { crate::frame::load_be16(p.add(2 * i)) } as u32;
    }
    sum
}
