//! Maximum and argmax of a slice: one read pass with four independent vector accumulators.
//!
//! `maxps` drops a NaN in its first operand, so the accumulator update is `max(x, acc)`: NaN
//! never enters the running maximum, and a separate NaN mask (when asked for) records whether any
//! lane saw one. The first NaN or the first maximal element is then found by a second scan that
//! stops at the hit.

use crate::element::{load_tail, Element, VecOf};
use crate::simd::{FloatVec, Isa, Real};

/// (maximum ignoring NaN, whether any NaN was seen). The maximum is −inf for an empty or all-NaN
/// slice; the NaN flag is only computed when `TRACK_NAN`.
#[cfg_attr(not(xent_unoptimized), inline(always))]
pub(crate) fn max_scan<S: Isa, E: Element, const TRACK_NAN: bool>(
    isa: S,
    x: &[E],
) -> (E::Real, bool) {
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
