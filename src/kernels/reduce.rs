//! Maximum and argmax of a slice: one read pass with four independent vector accumulators.
//!
//! `maxps` drops a NaN in its first operand, so the accumulator update is `max(x, acc)`: NaN
//! never enters the running maximum, and a separate NaN mask (when asked for) records whether any
//! lane saw one. The first NaN or the first maximal element is then found by a second scan that
//! stops at the hit.

use super::row::Lookahead;
use crate::element::{load_tail, Element, VecOf};
use crate::simd::{merge_extremes16, FloatVec, Isa, Real};

/// (maximum ignoring NaN, whether any NaN was seen). The maximum is −inf for an empty or all-NaN
/// slice; the NaN flag is only computed when `TRACK_NAN`, and then the maximum of a slice with a
/// NaN is unspecified (the half-precision types' integer scan, [`half_max_scan`], does not
/// ignore NaN).
#[cfg_attr(not(xent_unoptimized), inline(always))]
pub(crate) fn max_scan<S: Isa, E: Element, const TRACK_NAN: bool>(
    isa: S,
    x: &[E],
) -> (E::Real, bool) {
    max_scan_hinting::<S, E, TRACK_NAN>(isa, x, Lookahead::NONE)
}

/// [`max_scan`], hinting lines ahead of itself as `hint` says.
#[cfg_attr(not(xent_unoptimized), inline(always))]
pub(crate) fn max_scan_hinting<S: Isa, E: Element, const TRACK_NAN: bool>(
    isa: S,
    x: &[E],
    hint: Lookahead<E>,
) -> (E::Real, bool) {
    if let (true, Some(inf)) = (TRACK_NAN, E::HALF_INF_BITS) {
        debug_assert_eq!(core::mem::size_of::<E>(), 2);
        // SAFETY: a type with HALF_INF_BITS is a 16-bit pattern (half::f16, half::bf16 are
        // `repr(transparent)` over u16), so the slice is as many readable u16 values.
        let bits = unsafe { core::slice::from_raw_parts(x.as_ptr() as *const u16, x.len()) };
        let (max, nan) = half_max_scan(isa, bits, inf, hint.cast());
        // SAFETY: as above, `max` is a pattern of E.
        let max = unsafe { core::mem::transmute_copy::<u16, E>(&max) };
        return (max.to_real(), nan);
    }
    let lanes = VecOf::<S, E>::LANES;
    let ninf = <E::Real as Real>::NEG_INFINITY;
    let init = <VecOf<S, E> as FloatVec>::splat(isa, ninf);
    // `v.max(acc)` returns acc when v is NaN: NaN never enters an accumulator.
    let (mut acc, mut acc2) = (init, init);
    let mut nan = init.is_nan();
    let n = x.len();
    let p = x.as_ptr();
    let mut i = 0;
    while i + 4 * lanes <= n {
        hint.at(isa, i, 4 * lanes);
        // SAFETY: i + 4 * lanes <= n. (Four loads spelled out: `[_; 4].map` with a closure is
        // not always inlined into the dispatched code, and then each load is a call.)
        let v = unsafe {
            [
                E::load(isa, p.add(i)),
                E::load(isa, p.add(i + lanes)),
                E::load(isa, p.add(i + 2 * lanes)),
                E::load(isa, p.add(i + 3 * lanes)),
            ]
        };
        acc = v[1].max(v[0].max(acc));
        acc2 = v[3].max(v[2].max(acc2));
        if TRACK_NAN {
            let any = VecOf::<S, E>::mask_or(v[0].either_nan(v[1]), v[2].either_nan(v[3]));
            nan = VecOf::<S, E>::mask_or(nan, any);
        }
        i += 4 * lanes;
    }
    while i + lanes <= n {
        // SAFETY: i + lanes <= n.
        let v = unsafe { E::load(isa, p.add(i)) };
        acc = v.max(acc);
        if TRACK_NAN {
            nan = VecOf::<S, E>::mask_or(nan, v.is_nan());
        }
        i += lanes;
    }
    if i < n {
        let v = load_tail(isa, &x[i..], ninf);
        acc = v.max(acc);
        if TRACK_NAN {
            nan = VecOf::<S, E>::mask_or(nan, v.is_nan());
        }
    }
    let m = acc2.max(acc).reduce_max();
    (m, TRACK_NAN && VecOf::<S, E>::mask_bits(nan) != 0)
}

/// [`max_scan`] with NaN tracked, for a 16-bit sign-magnitude type whose +inf is `inf`, on
/// the stored patterns: (the maximum's pattern, whether any NaN was seen). Read as a signed
/// integer, a non-negative value's pattern orders as its value and beats every negative one;
/// when there is none, the maximum is the negative value of smallest magnitude, the smallest
/// pattern as an unsigned integer. NaNs lie beyond ±inf in either order. With a NaN the
/// maximum is unspecified (every caller then ignores it); the maximum of zeros of both signs
/// is +0; empty → −inf. A register of patterns costs three integer operations, where the
/// floating-point scan widens every value and compares half as many per register.
#[cfg_attr(not(xent_unoptimized), inline(always))]
fn half_max_scan<S: Isa>(isa: S, bits: &[u16], inf: u16, hint: Lookahead<u16>) -> (u16, bool) {
    let neg_inf = inf | 0x8000;
    let lanes = S::BITS16_LANES;
    let n = bits.len();
    let p = bits.as_ptr();
    // Starts that every value replaces: i16::MIN (the pattern of −0, whose place the unsigned
    // minimum decides), −inf, and 0.
    let mut acc = isa.splat_extremes16([0x8000, neg_inf, 0]);
    let mut i = 0;
    while i + 4 * lanes <= n {
        hint.at(isa, i, 4 * lanes);
        // SAFETY: i + 4·lanes <= n.
        unsafe {
            acc = isa.fold_extremes16(acc, p.add(i));
            acc = isa.fold_extremes16(acc, p.add(i + lanes));
            acc = isa.fold_extremes16(acc, p.add(i + 2 * lanes));
            acc = isa.fold_extremes16(acc, p.add(i + 3 * lanes));
        }
        i += 4 * lanes;
    }
    while i + lanes <= n {
        // SAFETY: i + lanes <= n.
        acc = unsafe { isa.fold_extremes16(acc, p.add(i)) };
        i += lanes;
    }
    let [smax, umin, umax] = bits[i..].iter().fold(S::reduce_extremes16(acc), |acc, &b| {
        merge_extremes16(acc, [b; 3])
    });
    let nan = smax as i16 > inf as i16 || umax > neg_inf;
    (if (smax as i16) >= 0 { smax } else { umin }, nan)
}

/// Index of the first element equal to `target`, or of the first NaN when `target` is NaN.
#[cfg_attr(not(xent_unoptimized), inline(always))]
pub(crate) fn first_index_of<S: Isa, E: Element>(
    isa: S,
    x: &[E],
    target: E::Real,
) -> Option<usize> {
    let lanes = VecOf::<S, E>::LANES;
    let want_nan = target.is_nan();
    let t = <VecOf<S, E> as FloatVec>::splat(isa, target);
    let n = x.len();
    let mut i = 0;
    while i + lanes <= n {
        // SAFETY: i + lanes <= n.
        let bits = hit_bits::<S, E>(unsafe { E::load(isa, x.as_ptr().add(i)) }, t, want_nan);
        if bits != 0 {
            return Some(i + bits.trailing_zeros() as usize);
        }
        i += lanes;
    }
    if i < n {
        // Padding lanes hold zeros, so mask them off.
        let pad = <E::Real as Real>::ZERO;
        let bits =
            hit_bits::<S, E>(load_tail(isa, &x[i..], pad), t, want_nan) & ((1u32 << (n - i)) - 1);
        if bits != 0 {
            return Some(i + bits.trailing_zeros() as usize);
        }
    }
    None
}

#[cfg_attr(not(xent_unoptimized), inline(always))]
fn hit_bits<S: Isa, E: Element>(v: VecOf<S, E>, t: VecOf<S, E>, want_nan: bool) -> u32 {
    let m = if want_nan { v.is_nan() } else { v.eq(t) };
    VecOf::<S, E>::mask_bits(m)
}
