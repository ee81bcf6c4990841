//! Element-wise e^x over a slice (one read, one write), with the full-range vector exponential.

use super::row::{map_vectors_to, Lookahead, VecMap};
use crate::element::Element;
use crate::simd::exp::{exp, exp_pair};
use crate::simd::{FloatVec, Isa, Real};

/// With `stream` (an output far larger than the caches, written with non-temporal stores)
/// the pass also hints its input four blocks ahead into the L2: the hardware prefetcher alone
/// left the core waiting on reads, the half-precision types at half the speed of plain stores
/// (docs/performance.md, section 26; in place, where no measurement exists, it does not).
///
/// # Safety
/// `src` valid for reading and `dst` for writing `n` elements; equal or non-overlapping.
#[cfg_attr(not(xent_unoptimized), inline(always))]
pub(crate) unsafe fn exp_slice<S: Isa, E: Element>(
    isa: S,
    src: *const E,
    dst: *mut E,
    n: usize,
    stream: bool,
) {
    let pad = <E::Real as Real>::ZERO;
    // SAFETY: forwarded.
    unsafe {
        if stream {
            let hint = Lookahead::in_row(src, true);
            map_vectors_to(isa, src, dst, n, pad, Exp(isa), true, hint)
        } else {
            map_vectors_to(isa, src, dst, n, pad, Exp(isa), false, Lookahead::NONE)
        }
    }
}

struct Exp<S>(S);

impl<V: FloatVec> VecMap<V> for Exp<V::Isa> {
    #[cfg_attr(not(xent_unoptimized), inline(always))]
    fn apply(&self, v: V) -> V {
        exp(self.0, v)
    }
    #[cfg_attr(not(xent_unoptimized), inline(always))]
    fn apply_pair(&self, a: V, b: V) -> (V, V) {
        exp_pair(self.0, a, b)
    }
}
