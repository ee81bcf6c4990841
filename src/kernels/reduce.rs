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
    let (max, _, nan) = range_scan_hinting::<S, E, TRACK_NAN>(isa, x, hint);
    (max, nan)
}

/// [`max_scan_hinting`] with a lower bound of the values: (maximum, bound, NaN seen). The
/// half-precision types' integer scan has their minimum for free (+inf for an empty slice);
/// the others give −inf. With a NaN the bound is unspecified, as the maximum is.
#[cfg_attr(not(xent_unoptimized), inline(always))]
pub(crate) fn range_scan_hinting<S: Isa, E: Element, const TRACK_NAN: bool>(
    isa: S,
    x: &[E],
    hint: Lookahead<E>,
) -> (E::Real, E::Real, bool) {
    if let (true, Some(inf)) = (TRACK_NAN, E::HALF_INF_BITS) {
        debug_assert_eq!(core::mem::size_of::<E>(), 2);
        // SAFETY: a type with HALF_INF_BITS is a 16-bit pattern (half::f16, half::bf16 are
        // `repr(transparent)` over u16), so the slice is as many readable u16 values.
        let bits = unsafe { core::slice::from_raw_parts(x.as_ptr() as *const u16, x.len()) };
        let (max, min, nan) = half_max_scan(isa, bits, inf, hint.cast());
        // SAFETY: as above, `max` and `min` are patterns of E.
        let (max, min) = unsafe {
            (
                core::mem::transmute_copy::<u16, E>(&max),
                core::mem::transmute_copy::<u16, E>(&min),
            )
        };
        return (max.to_real(), min.to_real(), nan);
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
    (
        m,
        <E::Real as Real>::NEG_INFINITY,
        TRACK_NAN && VecOf::<S, E>::mask_bits(nan) != 0,
    )
}

/// [`max_scan`] with NaN tracked, for a 16-bit sign-magnitude type whose +inf is `inf`, on
/// the stored patterns: (the maximum's pattern, whether any NaN was seen). Read as a signed
/// integer, a non-negative value's pattern orders as its value and beats every negative one;
/// when there is none, the maximum is the negative value of smallest magnitude, the smallest
/// pattern as an unsigned integer. NaNs lie beyond ±inf in either order. With a NaN the
/// maximum is unspecified (every caller then ignores it); the maximum of zeros of both signs
/// is +0; empty → −inf. A register of patterns costs three integer operations, where the
/// floating-point scan widens every value and compares half as many per register. The same
/// extremes give the minimum's pattern (the second result): the negative value of largest
/// magnitude, the largest unsigned pattern, when there is one, else the smallest pattern; +inf
/// for an empty slice.
#[cfg_attr(not(xent_unoptimized), inline(always))]
fn half_max_scan<S: Isa>(isa: S, bits: &[u16], inf: u16, hint: Lookahead<u16>) -> (u16, u16, bool) {
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
    let min = if n == 0 {
        inf
    } else if umax >= 0x8000 {
        umax
    } else {
        umin
    };
    (if (smax as i16) >= 0 { smax } else { umin }, min, nan)
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::simd::scalar::Scalar;
    use half::{bf16, f16};

    /// The half scans' minimum (`range_scan_hinting`'s bound) is the least value of every
    /// slice without NaN, empty (+inf) to 300 values, with ±0, ±inf, subnormals and negative
    /// rows, on every path: it decides which rows skip the exponential's zeroing.
    fn check_min<S: Isa, E: Element>(isa: S) {
        let mut seed = 0x9e37_79b9_7f4a_7c15_u64;
        let mut next = || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        let specials = [
            0.0,
            -0.0,
            f64::INFINITY,
            f64::NEG_INFINITY,
            1e-7,
            -1e-7,
            -65504.0,
        ];
        for len in 0..300 {
            for round in 0..4 {
                let x: Vec<E> = (0..len)
                    .map(|_| {
                        let r = next();
                        let v = if r % 13 == 0 {
                            specials[(r >> 8) as usize % specials.len()]
                        } else {
                            let sign = if round == 1 || (round > 1 && r & 16 != 0) {
                                -1.0
                            } else {
                                1.0
                            };
                            sign * ((r >> 20) % 100_000) as f64 / 997.0
                        };
                        E::from_f64(v)
                    })
                    .collect();
                let (max, low, nan) = range_scan_hinting::<S, E, true>(isa, &x, Lookahead::NONE);
                assert!(!nan);
                let want = x.iter().map(|v| v.to_f64()).fold(f64::INFINITY, f64::min);
                let want_max = x
                    .iter()
                    .map(|v| v.to_f64())
                    .fold(f64::NEG_INFINITY, f64::max);
                assert_eq!(low.to_f64(), want, "{} len {len}", E::NAME);
                assert_eq!(max.to_f64(), want_max, "{} len {len}", E::NAME);
            }
        }
    }

    #[test]
    fn half_scans_find_the_minimum() {
        check_min::<_, f16>(Scalar);
        check_min::<_, bf16>(Scalar);
        #[cfg(target_arch = "x86_64")]
        if let Some(isa) = crate::simd::avx2::Avx2::try_new() {
            check_min::<_, f16>(isa);
            check_min::<_, bf16>(isa);
        }
        #[cfg(target_arch = "x86_64")]
        if let Some(isa) = crate::simd::avx512::Avx512::try_new() {
            check_min::<_, f16>(isa);
            check_min::<_, bf16>(isa);
        }
    }
}
