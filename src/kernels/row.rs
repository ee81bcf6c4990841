//! Row statistics and the softmax / log-softmax output passes.
//!
//! # Passes over memory
//!
//! A row is cut into blocks of [`BLOCK`] elements (8 KiB of f32: they stay in L1). For each block
//! the kernel takes the block maximum m_b (first touch of the block: the DRAM read), then sums
//! e^((x − m_b)/τ) over the block from L1. The (m_b, s_b) pairs are merged into the row's
//! (M, S) in f64 by the usual online rule S = S·e^((M_old − M)/τ) + s_b·e^((m_b − M)/τ), once per
//! block, so the row is read from memory **once** for its statistics, and the exponential is
//! evaluated once per element.
//!
//! The output pass then has two strategies:
//!
//! * **store-and-rescale** (softmax, rows up to [`store_limit`] bytes, which stay in L2): the
//!   statistics pass also writes y = e^((x − m_b)/τ) to the output, and a second, cheap pass
//!   multiplies each block by e^((m_b − M)/τ)/S while the row is still in cache. One exponential
//!   per element, one DRAM read and one DRAM write.
//! * **recompute** (longer rows, and log-softmax): a second read of the row computes
//!   e^((x − M)/τ)/S, or (x − M)/τ − ln S. Two DRAM reads and one write; never more.
//!
//! # Accuracy
//!
//! The statistics pass evaluates e^(x − m_b) from the rounded difference: its error only affects
//! S, relatively by at most ~|x − m_b| · 2^-24 weighted by that term's share, well inside the
//! 2^-20 bound of the log-sum-exp. Outputs are held to a few ULP, so the output passes carry the
//! rounding error of x − m (an exact TwoSum) and of 1/τ into the exponential's reduced argument;
//! otherwise a probability e^-80 would be off by 32 ULP, as it is in frameworks that skip this.
//!
//! # Special values (docs/semantics.md)
//!
//! A block whose maximum is ±inf is handled exactly by scalar code (these are rare): the
//! statistics then follow the limits (+inf entries share the mass equally; all −inf gives S = 0),
//! and a NaN anywhere makes S NaN, which the caller turns into a NaN row.

use super::reduce::max_scan;
use crate::element::{load_tail, store_tail, Element, VecOf};
use crate::simd::exp::{base_magic, base_value, exp_base, exp_from_base, exp_scaled, pow2, Pair};
use crate::simd::{FloatVec, Isa, Real};

/// Elements per statistics block (chosen by measurement, see docs/design.md: each block's
/// exponentials wait for its maximum, and 2048 halves those waits against 1024).
pub(crate) const BLOCK: usize = 2048;
/// Elements per segment: the unit in which one huge row is split across threads. A row's
/// statistics are always the ordered merge of its segments' statistics, whether or not the
/// segments ran in parallel, so results do not depend on the thread count.
pub(crate) const SEGMENT: usize = 32 * BLOCK;

/// Outputs of at least this many bytes are written with non-temporal stores (they cannot stay
/// in the 32 MiB L3 anyway, and streaming saves reading each output line before writing it).
pub(crate) const STREAM_MIN_BYTES: usize = 16 * 1024 * 1024;

/// Rows up to this many bytes use store-and-rescale for softmax (they stay in L2, 512 KiB per
/// core on the machine this was tuned on, or in the 32 MiB L3; measured in docs/design.md).
pub(crate) const STORE_LIMIT_BYTES: usize = 1024 * 1024;

/// Bytes per cache line on the x86-64 cores the kernels are tuned for.
const CACHE_LINE: usize = 64;

/// Hints every line of the `count` elements at `ptr` into the L2 ([`Isa::prefetch_far`]): for
/// the next row, which the L1 could not keep until it is read.
#[cfg_attr(not(xent_unoptimized), inline(always))]
pub(crate) fn prefetch_elems_far<S: Isa, T>(isa: S, ptr: *const T, count: usize) {
    prefetch_lines(isa, ptr, count, true);
}

/// Hints every cache line of the `count` elements at `ptr`: one prefetch per 64 bytes,
/// whatever the vector width. (A round of four vectors spans two lines of f32 on AVX2 but four
/// on AVX-512: one hint per two vectors left half of the AVX-512 lines to the hardware
/// prefetcher, and the f32 cross-entropy ran slower there than on AVX2.) The kernels' rounds
/// pass constant counts, so the loop unrolls; only the softmax rescale's last chunk of a block
/// passes a shorter one.
#[cfg_attr(not(xent_unoptimized), inline(always))]
fn prefetch_lines<S: Isa, T>(isa: S, ptr: *const T, count: usize, far: bool) {
    let bytes = count * core::mem::size_of::<T>();
    let mut offset = 0;
    while offset < bytes {
        let line = (ptr as *const u8).wrapping_add(offset);
        if far {
            isa.prefetch_far(line);
        } else {
            isa.prefetch(line);
        }
        offset += CACHE_LINE;
    }
}

/// Hints every cache line that holds part of the elements in `[start, end)` into the L1: for
/// rows a few hundred bytes long, whose loads the hardware prefetcher leaves waiting on memory
/// (docs/performance.md, section 27).
#[cfg_attr(not(xent_unoptimized), inline(always))]
pub(crate) fn prefetch_span<S: Isa, T>(isa: S, start: *const T, end: *const T) {
    let start = start as *const u8;
    let end = end as usize;
    let mut line = start.wrapping_sub(start as usize % CACHE_LINE);
    while (line as usize) < end {
        isa.prefetch(line);
        line = line.wrapping_add(CACHE_LINE);
    }
}

/// Where a pass over a block hints lines ahead of itself: the round over elements
/// `[i, i + count)` hints the `count · quarters / 4` elements from `base + i · quarters / 4`
/// (into the L2 when `far`), and, when `own` is not null, the `count` elements from `own + i`
/// into the L1. At a pace below four quarters a round hints fewer lines than it reads, so that
/// one pass can fetch part of the next row and another pass the rest.
#[derive(Clone, Copy)]
pub(crate) struct Lookahead<T> {
    base: *const T,
    quarters: usize,
    far: bool,
    own: *const T,
}

impl<T> Lookahead<T> {
    /// No hints.
    pub(crate) const NONE: Self = Lookahead {
        base: core::ptr::null(),
        quarters: 0,
        far: false,
        own: core::ptr::null(),
    };

    /// Ahead of `block` in the same row, at the pass's pace: two blocks into the L1 for data
    /// in cache, four into the L2 for a batch that comes from memory (`from_memory`; measured
    /// in docs/performance.md, section 25).
    #[cfg_attr(not(xent_unoptimized), inline(always))]
    pub(crate) fn in_row(block: *const T, from_memory: bool) -> Self {
        Lookahead {
            base: block.wrapping_add(if from_memory { 4 } else { 2 } * BLOCK),
            quarters: 4,
            far: from_memory,
            own: core::ptr::null(),
        }
    }

    /// The next row's elements from `from` on, into the L2 at `quarters` of the pass's pace,
    /// for the pass over the block that starts `block_start` elements into the row of `n` at
    /// `row`.
    #[cfg_attr(not(xent_unoptimized), inline(always))]
    pub(crate) fn next_row(
        row: *const T,
        n: usize,
        from: usize,
        block_start: usize,
        quarters: usize,
    ) -> Self {
        Lookahead {
            base: row.wrapping_add(n + from + block_start * quarters / 4),
            quarters,
            far: true,
            own: core::ptr::null(),
        }
    }

    /// These hints, and two blocks ahead of `block` into the L1: the lines that earlier hints
    /// brought only as far as the L2.
    #[cfg_attr(not(xent_unoptimized), inline(always))]
    pub(crate) fn and_own_row(self, block: *const T) -> Self {
        Lookahead {
            own: block.wrapping_add(2 * BLOCK),
            ..self
        }
    }

    /// The same hints, for the same bytes seen as elements of another type of the same size.
    #[cfg_attr(not(xent_unoptimized), inline(always))]
    pub(crate) fn cast<U>(self) -> Lookahead<U> {
        debug_assert_eq!(core::mem::size_of::<T>(), core::mem::size_of::<U>());
        Lookahead {
            base: self.base as *const U,
            quarters: self.quarters,
            far: self.far,
            own: self.own as *const U,
        }
    }

    #[cfg_attr(not(xent_unoptimized), inline(always))]
    pub(crate) fn at<S: Isa>(self, isa: S, i: usize, count: usize) {
        let first = self.base.wrapping_add(i * self.quarters / 4);
        prefetch_lines(isa, first, count * self.quarters / 4, self.far);
        if !self.own.is_null() {
            prefetch_lines(isa, self.own.wrapping_add(i), count, false);
        }
    }
}

static STORE_LIMIT: core::sync::atomic::AtomicUsize =
    core::sync::atomic::AtomicUsize::new(STORE_LIMIT_BYTES);

/// Overrides the store-and-rescale row limit (bytes), for measuring the two strategies. Capped
/// at [`MAX_STORED_BLOCKS`] blocks of f32.
pub(crate) fn set_store_limit_bytes(bytes: usize) {
    STORE_LIMIT.store(
        bytes.min(MAX_STORED_BLOCKS * BLOCK * 4),
        core::sync::atomic::Ordering::Relaxed,
    );
}

/// The longest row (elements) softmax stores and rescales. The limit is on the stored terms:
/// they are kept in the compute precision, in the output row itself for f32 / f64 and in an f32
/// scratch row for f16 / bf16 (whose outputs could not hold them, nor take a second rounding).
pub(crate) fn store_limit<E: Element>() -> usize {
    STORE_LIMIT.load(core::sync::atomic::Ordering::Relaxed) / core::mem::size_of::<E::Terms>()
}

/// Whether `E`'s stored terms need a scratch row (they do not fit in the output row).
pub(crate) fn terms_need_scratch<E: Element>() -> bool {
    core::mem::size_of::<E>() != core::mem::size_of::<E::Terms>()
}

/// A scratch row of terms that starts on a cache line: every AVX-512 vector of terms then
/// fills one line, where a row as `malloc` returns it (16 bytes past a line here) split each
/// store and load of the passes in two (aligned, f16 fused in place took 7–15 % less time on
/// one thread, docs/performance.md, section 31).
pub(crate) struct TermsRow<T> {
    room: Vec<T>,
    start: usize,
}

impl<T: Element> TermsRow<T> {
    /// Room for `len` terms (none for 0).
    pub(crate) fn new(len: usize) -> Self {
        let size = core::mem::size_of::<T>();
        let room = if len == 0 {
            Vec::new()
        } else {
            vec![T::from_f64(0.0); len + CACHE_LINE / size]
        };
        // Elements up to the first line boundary: a Vec is aligned to its element, so the
        // gap is a whole number of them, and the spare entries cover it.
        let gap = (CACHE_LINE - room.as_ptr() as usize % CACHE_LINE) % CACHE_LINE;
        TermsRow {
            room,
            start: gap / size,
        }
    }

    /// The row from its first cache-line boundary: `len` or more entries, or none (an empty
    /// room's dangling pointer may be off a line too).
    pub(crate) fn get(&mut self) -> &mut [T] {
        let start = self.start.min(self.room.len());
        &mut self.room[start..]
    }
}

/// The maximum and Σ e^((x − max)/τ) of a stretch of a row.
#[derive(Copy, Clone, Debug, PartialEq)]
pub struct Stats {
    pub max: f64,
    /// The sum, rounded to f64 ...
    pub sum: f64,
    /// ... and what the rounding left out (|comp| ≤ ulp(sum)/2): merging hundreds of blocks of
    /// an f64 row must not cost it ULPs.
    pub comp: f64,
}

impl Stats {
    pub const EMPTY: Stats = Stats {
        max: f64::NEG_INFINITY,
        sum: 0.0,
        comp: 0.0,
    };

    /// Statistics with an exact sum.
    pub fn new(max: f64, sum: f64) -> Stats {
        Stats {
            max,
            sum,
            comp: 0.0,
        }
    }

    /// e^((m − max)/τ): the weight of a part whose maximum is `m` in a whole whose maximum is
    /// `max` (1 when they are equal, including equal infinities). The rounding errors of
    /// m − max and of the scaling are carried to first order, so that f64 rows keep their
    /// outputs within a few ULP (for f32 inputs the difference is exact anyway).
    #[inline]
    pub(crate) fn weight(m: f64, max: f64, tau: Tau) -> f64 {
        if m == max {
            return 1.0;
        }
        let d = m - max;
        if !d.is_finite() {
            return (d * tau.inv).exp();
        }
        let m_part = d + max;
        let d_err = (m - m_part) + (m_part - d - max);
        let a = d * tau.inv;
        if !a.is_finite() {
            // (m − max)/τ overflowed: the weight is e^-inf = 0 (its error terms would be NaN).
            return a.exp();
        }
        let a_err = d.mul_add(tau.inv, -a) + d_err * tau.inv + d * tau.inv_lo;
        let w = a.exp();
        w.mul_add(a_err, w)
    }

    /// Merges the statistics of two stretches (order matters only for rounding).
    #[inline]
    pub(crate) fn merge(self, other: Stats, tau: Tau) -> Stats {
        if self == Stats::EMPTY {
            return other;
        }
        let max = if other.max > self.max {
            other.max
        } else {
            self.max
        };
        let (wa, wb) = (
            Stats::weight(self.max, max, tau),
            Stats::weight(other.max, max, tau),
        );
        let pa = self.sum * wa;
        let pb = other.sum * wb;
        let s = pa + pb;
        if !s.is_finite() {
            return Stats::new(max, s);
        }
        // Error-free transformations of the two products and of their sum.
        let ea = self.sum.mul_add(wa, -pa) + self.comp * wa;
        let eb = other.sum.mul_add(wb, -pb) + other.comp * wb;
        let bb = s - pa;
        let es = (pa - (s - bb)) + (pb - bb);
        let e = es + ea + eb;
        let sum = s + e;
        Stats {
            max,
            sum,
            comp: e - (sum - s),
        }
    }

    /// ln Σ e^(x/τ) = max/τ + ln S, with the special values of docs/semantics.md.
    pub fn logsumexp(self, inv_tau: f64) -> f64 {
        if self.sum.is_nan() {
            f64::NAN
        } else if self.max.is_infinite() {
            self.max
        } else {
            self.max * inv_tau + self.sum.ln()
        }
    }
}

/// τ, and 1/τ in f64 with its rounding error.
#[derive(Copy, Clone, Debug)]
pub(crate) struct Tau {
    pub value: f64,
    pub inv: f64,
    pub inv_lo: f64,
}

/// The temperature of a call, as the kernels use it: `inv` = 1/τ rounded to the compute
/// precision and `inv_lo` its rounding error; `tau` the same in f64 for the scalar code.
#[derive(Copy, Clone, Debug)]
pub(crate) struct Scale<R> {
    pub inv: R,
    pub inv_lo: R,
    pub tau: Tau,
}

impl<R: Real> Scale<R> {
    /// `None` when 1/τ is not a finite, non-zero value of the compute precision.
    pub fn new(tau: f64) -> Option<Self> {
        let inv_f64 = 1.0 / tau;
        let inv = R::from_f64(inv_f64);
        let invd = inv.to_f64();
        if !(tau.is_finite() && tau > 0.0 && invd.is_finite() && invd != 0.0) {
            return None;
        }
        let inv_lo = R::from_f64((-tau).mul_add(invd, 1.0) / tau);
        Some(Scale {
            inv,
            inv_lo,
            tau: Tau {
                value: tau,
                inv: inv_f64,
                inv_lo: (-tau).mul_add(inv_f64, 1.0) / tau,
            },
        })
    }

    pub fn is_identity(&self) -> bool {
        self.tau.inv == 1.0
    }
}

#[cfg_attr(not(xent_unoptimized), inline(always))]
pub(crate) fn splat<S: Isa, E: Element>(isa: S, x: E::Real) -> VecOf<S, E> {
    <VecOf<S, E> as FloatVec>::splat(isa, x)
}

/// Statistics of a block whose maximum `m` is ±inf (or which is all NaN), or so large that
/// e^((x − m)/τ) is 0 for every x < m (ulp(m)/τ beyond the exponential's range), exactly:
/// the entries equal to m count 1 each, the others 0.
#[cold]
fn special_block_stats<E: Element>(x: &[E], m: E::Real) -> Stats {
    let mut count = 0.0;
    let mut nan = false;
    for &v in x {
        let v = v.to_real();
        nan |= v.is_nan();
        count += if v == m { 1.0 } else { 0.0 };
    }
    let sum = if nan {
        f64::NAN
    } else if m > <E::Real as Real>::NEG_INFINITY {
        count
    } else {
        0.0
    };
    Stats::new(m.to_f64(), sum)
}

/// (x − m)/τ as the rounded value only: enough for sums.
#[cfg_attr(not(xent_unoptimized), inline(always))]
fn scaled_diff<S: Isa, E: Element, const SCALED: bool>(
    x: VecOf<S, E>,
    m: VecOf<S, E>,
    inv: VecOf<S, E>,
) -> VecOf<S, E> {
    let d = x.sub(m);
    if SCALED {
        d.mul(inv)
    } else {
        d
    }
}

/// (x − m)/τ as hi + lo, where lo carries the rounding errors of the subtraction (TwoSum) and
/// of the scaling. `lo` may be NaN where `hi` is infinite; consumers mask it.
#[cfg_attr(not(xent_unoptimized), inline(always))]
pub(crate) fn scaled_diff_exact<S: Isa, E: Element, const SCALED: bool>(
    x: VecOf<S, E>,
    neg_m: VecOf<S, E>,
    sc: ScaleVecs<S, E>,
) -> (VecOf<S, E>, VecOf<S, E>) {
    let s = x.add(neg_m);
    let x_part = s.sub(neg_m);
    let m_part = s.sub(x_part);
    let err = x.sub(x_part).add(neg_m.sub(m_part));
    if SCALED {
        let hi = s.mul(sc.inv);
        let prod_err = s.mul_add(sc.inv, sc.zero.sub(hi));
        let lo = prod_err.add(err.mul_add(sc.inv, s.mul(sc.inv_lo)));
        (hi, lo)
    } else {
        (s, err)
    }
}

#[derive(Copy, Clone)]
pub(crate) struct ScaleVecs<S: Isa, E: Element> {
    inv: VecOf<S, E>,
    inv_lo: VecOf<S, E>,
    zero: VecOf<S, E>,
}

impl<S: Isa, E: Element> ScaleVecs<S, E> {
    #[cfg_attr(not(xent_unoptimized), inline(always))]
    pub(crate) fn new(isa: S, sc: &Scale<E::Real>) -> Self {
        ScaleVecs {
            inv: splat::<S, E>(isa, sc.inv),
            inv_lo: splat::<S, E>(isa, sc.inv_lo),
            zero: splat::<S, E>(isa, <E::Real as Real>::ZERO),
        }
    }
}

/// Σ e^((x − m)/τ) over a block with finite maximum `m`; with `STORE`, also stores each term
/// (computed with the exact argument) in `dst`, in the compute precision: `dst` is `x` itself
/// (f32, f64) or a scratch row of the same length that does not overlap it (f16, bf16).
///
/// Also returns the maximum (NaN ignored, as [`max_scan`]) of `next`, the block after this one:
/// its loads ride along with this block's exponentials four vectors per round, so that the
/// next block's exponentials need not wait for a separate maximum pass (a drain of the core
/// once per block).
#[cfg_attr(not(xent_unoptimized), inline(always))]
fn block_sum_exp<S: Isa, E: Element, const STORE: bool>(
    isa: S,
    src: *const E,
    dst: *mut E::Terms,
    n: usize,
    term: &impl VecMap<VecOf<S, E>>,
    next: &[E],
    hint: Lookahead<E>,
) -> (f64, E::Real) {
    let lanes = VecOf::<S, E>::LANES;
    let ninf = <E::Real as Real>::NEG_INFINITY;
    let zero = splat::<S, E>(isa, <E::Real as Real>::ZERO);
    // One accumulator fed by pairs: the exponential needs most of the 16 vector registers.
    let mut sum = LaneSum::new(isa, zero);
    let mut next_max = splat::<S, E>(isa, ninf);
    let next_ptr = next.as_ptr();
    let mut i = 0;
    // Four vectors per round (two pairs stepped together: more independent work in the
    // scheduler's window), then at most one pair.
    while i + 4 * lanes <= n {
        // Fetch ahead while this block computes (by default the block after the next one,
        // which this loop reads): the DRAM transfer overlaps the exponentials.
        hint.at(isa, i, 4 * lanes);
        if i + 4 * lanes <= next.len() {
            // SAFETY: i + 4 * lanes <= next.len(). `v.max(acc)` keeps NaN out (max_scan).
            unsafe {
                let a = E::load(isa, next_ptr.add(i + lanes))
                    .max(E::load(isa, next_ptr.add(i)).max(next_max));
                next_max = E::load(isa, next_ptr.add(i + 3 * lanes))
                    .max(E::load(isa, next_ptr.add(i + 2 * lanes)).max(a));
            }
        }
        // SAFETY: i + 4 * lanes <= n, and src/dst are valid for n elements.
        unsafe {
            let y = term.apply_quad([
                E::load(isa, src.add(i)),
                E::load(isa, src.add(i + lanes)),
                E::load(isa, src.add(i + 2 * lanes)),
                E::load(isa, src.add(i + 3 * lanes)),
            ]);
            if STORE {
                for (k, &v) in y.iter().enumerate() {
                    E::Terms::store(v, dst.add(i + k * lanes));
                }
            }
            sum.add(y[0].add(y[1]).add(y[2].add(y[3])), 4);
        }
        i += 4 * lanes;
    }
    let folded = i.min(next.len() / (4 * lanes) * (4 * lanes));
    if i + 2 * lanes <= n {
        hint.at(isa, i, 2 * lanes);
        // SAFETY: i + 2 * lanes <= n, and src/dst are valid for n elements.
        unsafe {
            let (y0, y1) =
                term.apply_pair(E::load(isa, src.add(i)), E::load(isa, src.add(i + lanes)));
            if STORE {
                E::Terms::store(y0, dst.add(i));
                E::Terms::store(y1, dst.add(i + lanes));
            }
            sum.add(y0.add(y1), 2);
        }
        i += 2 * lanes;
    }
    if i + lanes <= n {
        // SAFETY: i + lanes <= n, and src/dst are valid for n elements.
        unsafe {
            let y = term.apply(E::load(isa, src.add(i)));
            if STORE {
                E::Terms::store(y, dst.add(i));
            }
            sum.add(y, 1);
        }
        i += lanes;
    }
    if i < n {
        // SAFETY: src is valid for n elements; the slice ends before any write below.
        let tail = unsafe { core::slice::from_raw_parts(src.add(i), n - i) };
        let y = term.apply(load_tail(isa, tail, ninf));
        if STORE {
            // SAFETY: dst is valid for n elements and no other reference to this part is alive.
            store_tail::<S, E::Terms>(y, unsafe {
                core::slice::from_raw_parts_mut(dst.add(i), n - i)
            });
        }
        sum.add(y, 1);
    }
    let (rest, _) = max_scan::<S, E, false>(isa, &next[folded..]);
    let folded_max = next_max.reduce_max();
    let next_max = if rest > folded_max { rest } else { folded_max };
    (sum.value() * unscale::<E>(), next_max)
}

/// A vector accumulator whose lanes move their partial sums into an f64 running sum
/// ([`FloatVec::Wide`]) once they hold 16 terms: no lane adds more than 16 terms in its own
/// precision, so the sum's rounding error stays near one ULP whatever the row length and lane
/// count (and the cross-entropy's scaled smoothing gaps cannot overflow). The flushes depend
/// only on the sequence of `add`s: the same terms added the same way give the same bits.
pub(crate) struct LaneSum<V: FloatVec> {
    acc: V,
    zero: V,
    total: V::Wide,
    terms: u32,
}

impl<V: FloatVec> LaneSum<V> {
    #[cfg_attr(not(xent_unoptimized), inline(always))]
    pub(crate) fn new(isa: V::Isa, zero: V) -> Self {
        LaneSum {
            acc: zero,
            zero,
            total: V::wide_zero(isa),
            terms: 0,
        }
    }

    /// Adds `v`, each lane of which is a sum of `terms` terms.
    #[cfg_attr(not(xent_unoptimized), inline(always))]
    pub(crate) fn add(&mut self, v: V, terms: u32) {
        self.acc = self.acc.add(v);
        self.terms += terms;
        if self.terms >= 16 {
            self.total = self.acc.flush_into(self.total);
            self.acc = self.zero;
            self.terms = 0;
        }
    }

    #[cfg_attr(not(xent_unoptimized), inline(always))]
    pub(crate) fn value(self) -> f64 {
        V::wide_value(self.acc.flush_into(self.total))
    }
}

/// 2^-SCALE_SHIFT: undoes the scaling of [`exp_scaled`].
#[cfg_attr(not(xent_unoptimized), inline(always))]
pub(crate) fn unscale<E: Element>() -> f64 {
    pow2::<f64>(-<E::Real as Real>::SCALE_SHIFT)
}

/// The input floor of a row with maximum `m` at temperature τ, for the stored terms:
/// m + EXP_ZERO_SCALE_ARG·τ, rounded down. e^((x − m)/τ) rounds to 0 well above it (below
/// m + EXP_MIN_ARG·τ), and an input clamped there gives the row exponential's exact 0 (a zero
/// scale, see `exp::exp_scaled`), −inf inputs included; every intermediate stays finite, and
/// NaN passes through (`max` returns its second operand for NaN).
#[cfg_attr(not(xent_unoptimized), inline(always))]
pub(crate) fn input_floor<R: Real>(m: f64, sc: &Scale<R>) -> R {
    let min_arg = R::EXP_ZERO_SCALE_ARG.to_f64();
    let mut floor = raw_floor(m, min_arg, sc);
    // Round down: an input clamped to the floor must give the zero scale. For f64 the sum
    // above is itself rounded, so check the scaled distance (exact enough: floor and m are
    // close) and step down until it is at or below the argument; one or two steps.
    while floor > -R::MAX && (floor.to_f64() - m) * sc.tau.inv > min_arg {
        floor = floor.next_down();
    }
    // When ulp(m) exceeds the range of the exponential, m + EXP_ZERO_SCALE_ARG·τ rounds to m;
    // any value below m then already gives e^(…) = 0, so the floor is the value just below m.
    let m = R::from_f64(m);
    if floor < m {
        floor
    } else {
        m.next_down()
    }
}

/// [`input_floor`] and [`is_degenerate`] for a whole vector of row maxima (the lanes of a
/// column-major batch) in one addition, for every maximum with |m| ≤ `bound`:
/// such an m is not degenerate, and `m + step` (step = EXP_ZERO_SCALE_ARG·τ·(1 + 2^-6)) lies
/// below m + EXP_ZERO_SCALE_ARG·τ, so every input it clamps gives the exact 0 (the row
/// exponential clamps its argument at EXP_ZERO_SCALE_ARG). Proof: |m| ≤ τ·2^(p−2)
/// (p significand bits) keeps ulp(|m| + |step|) ≤ τ, so the rounded sum is within τ/2 of the
/// exact one, while the margin is 132·2^-6·τ > 2τ for f32 (1063·2^-6·τ for f64); and
/// ulp(m) ≤ τ/2 is far below EXP_MIN_ARG·τ, so m + EXP_MIN_ARG·τ does not round to m. Maxima
/// outside the bound (or NaN) take the scalar functions.
#[derive(Copy, Clone)]
pub(crate) struct QuickFloor<R> {
    pub bound: R,
    pub step: R,
}

impl<R: Real> QuickFloor<R> {
    #[cfg_attr(not(xent_unoptimized), inline(always))]
    pub(crate) fn new(sc: &Scale<R>) -> Self {
        let tau = sc.tau.value;
        let step = R::EXP_ZERO_SCALE_ARG.to_f64() * tau * (1.0 + 1.0 / 64.0);
        let limit = R::MAX.to_f64() / 4.0;
        let bound = if step.abs() <= limit {
            limit.min(tau * pow2::<f64>(R::MANTISSA_DIGITS as i32 - 2))
        } else {
            -1.0
        };
        QuickFloor {
            bound: R::from_f64(bound),
            step: R::from_f64(step),
        }
    }
}

/// Whether every x < m has e^((x − m)/τ) = 0, because m + EXP_MIN_ARG·τ rounds to m.
#[cfg_attr(not(xent_unoptimized), inline(always))]
pub(crate) fn is_degenerate<R: Real>(m: R, sc: &Scale<R>) -> bool {
    raw_floor(m.to_f64(), R::EXP_MIN_ARG.to_f64(), sc) >= m
}

/// m + arg·τ in the compute precision (kept finite).
#[cfg_attr(not(xent_unoptimized), inline(always))]
fn raw_floor<R: Real>(m: f64, arg: f64, sc: &Scale<R>) -> R {
    R::from_f64((m + arg * sc.tau.value).max(-R::MAX.to_f64()))
}

/// e^((x − m)/τ) · 2^SCALE_SHIFT: from the rounded argument for sums, from the exact one for
/// stored outputs.
pub(crate) struct ExpTerm<S: Isa, E: Element, const SCALED: bool, const STORE: bool> {
    isa: S,
    m: VecOf<S, E>,
    neg_m: VecOf<S, E>,
    floor: VecOf<S, E>,
    sc: ScaleVecs<S, E>,
}

impl<S: Isa, E: Element, const SCALED: bool, const STORE: bool> ExpTerm<S, E, SCALED, STORE> {
    #[cfg_attr(not(xent_unoptimized), inline(always))]
    pub(crate) fn new(isa: S, m: E::Real, sc: &Scale<E::Real>) -> Self {
        ExpTerm {
            isa,
            m: splat::<S, E>(isa, m),
            neg_m: splat::<S, E>(isa, -m),
            floor: if STORE {
                splat::<S, E>(isa, input_floor(m.to_f64(), sc))
            } else {
                splat::<S, E>(isa, <E::Real as Real>::EXP_MIN_ARG)
            },
            sc: ScaleVecs::<S, E>::new(isa, sc),
        }
    }
}

impl<S: Isa, E: Element, const SCALED: bool, const STORE: bool> ExpTerm<S, E, SCALED, STORE> {
    /// One maximum per lane (the lanes of a column-major batch are different rows): lane i
    /// gets `m[i]` and `floor[i]`. With `STORE`, a floor at or below `input_floor(m[i])` (what
    /// [`QuickFloor`] or `input_floor` gives; any such floor yields the same terms); without,
    /// `EXP_MIN_ARG`, as `new` sets it.
    #[cfg_attr(not(xent_unoptimized), inline(always))]
    pub(crate) fn per_lane(
        isa: S,
        m: VecOf<S, E>,
        neg_m: VecOf<S, E>,
        floor: VecOf<S, E>,
        sc: &Scale<E::Real>,
    ) -> Self {
        ExpTerm {
            isa,
            m,
            neg_m,
            floor,
            sc: ScaleVecs::<S, E>::new(isa, sc),
        }
    }
}

impl<S: Isa, E: Element, const SCALED: bool, const STORE: bool> VecMap<VecOf<S, E>>
    for ExpTerm<S, E, SCALED, STORE>
{
    #[cfg_attr(not(xent_unoptimized), inline(always))]
    fn apply(&self, v: VecOf<S, E>) -> VecOf<S, E> {
        if STORE {
            let (hi, lo) = self.exact_arg(v);
            exp_scaled::<_, false>(self.isa, hi, Some(lo))
        } else {
            exp_scaled::<_, true>(self.isa, self.rounded_arg(v), None)
        }
    }

    #[cfg_attr(not(xent_unoptimized), inline(always))]
    fn apply_pair(&self, a: VecOf<S, E>, b: VecOf<S, E>) -> (VecOf<S, E>, VecOf<S, E>) {
        let Pair(ya, yb) = if STORE {
            let ((ha, la), (hb, lb)) = (self.exact_arg(a), self.exact_arg(b));
            exp_scaled::<_, false>(self.isa, Pair(ha, hb), Some(Pair(la, lb)))
        } else {
            let (da, db) = (self.rounded_arg(a), self.rounded_arg(b));
            exp_scaled::<_, true>(self.isa, Pair(da, db), None)
        };
        (ya, yb)
    }

    #[cfg_attr(not(xent_unoptimized), inline(always))]
    fn apply_quad(&self, v: [VecOf<S, E>; 4]) -> [VecOf<S, E>; 4] {
        let [a, b, c, d] = v;
        let Pair(Pair(ya, yb), Pair(yc, yd)) = if STORE {
            let ((ha, la), (hb, lb)) = (self.exact_arg(a), self.exact_arg(b));
            let ((hc, lc), (hd, ld)) = (self.exact_arg(c), self.exact_arg(d));
            let hi = Pair(Pair(ha, hb), Pair(hc, hd));
            exp_scaled::<_, false>(self.isa, hi, Some(Pair(Pair(la, lb), Pair(lc, ld))))
        } else {
            let (da, db) = (self.rounded_arg(a), self.rounded_arg(b));
            let (dc, dd) = (self.rounded_arg(c), self.rounded_arg(d));
            exp_scaled::<_, true>(self.isa, Pair(Pair(da, db), Pair(dc, dd)), None)
        };
        [ya, yb, yc, yd]
    }
}

impl<S: Isa, E: Element, const SCALED: bool, const STORE: bool> ExpTerm<S, E, SCALED, STORE> {
    #[cfg_attr(not(xent_unoptimized), inline(always))]
    fn exact_arg(&self, v: VecOf<S, E>) -> (VecOf<S, E>, VecOf<S, E>) {
        scaled_diff_exact::<S, E, SCALED>(self.floor.max(v), self.neg_m, self.sc)
    }

    #[cfg_attr(not(xent_unoptimized), inline(always))]
    fn rounded_arg(&self, v: VecOf<S, E>) -> VecOf<S, E> {
        self.floor
            .max(scaled_diff::<S, E, SCALED>(v, self.m, self.sc.inv))
    }
}

/// e^(x − c) · 2^SCALE_SHIFT for the base c = k·BASE_LN2_HI of [`exp_base`] (unscaled rows),
/// inputs clamped at c + EXP_ZERO_SCALE_ARG, where the term is exactly 0.
#[derive(Copy, Clone)]
pub(crate) struct BaseTerm<S: Isa, E: Element> {
    isa: S,
    floor: VecOf<S, E>,
    /// `exp::base_magic` of k.
    kc: VecOf<S, E>,
}

impl<S: Isa, E: Element> BaseTerm<S, E> {
    /// The terms relative to the base of `k` (from [`exp_base`]). The floor is the base's own,
    /// c + EXP_ZERO_SCALE_ARG rounded once, not the one of the maximum c stands for: c may lie
    /// up to ln2/2 above that maximum, and an input clamped below the base's floor would not
    /// give the zero scale. Inputs between the two floors are e^-132 below the maximum: their
    /// terms are tiny either way.
    #[cfg_attr(not(xent_unoptimized), inline(always))]
    pub(crate) fn new(isa: S, k: E::Real) -> Self {
        let floor = <E::Real as Real>::from_f64(
            base_value(k) + <E::Real as Real>::EXP_ZERO_SCALE_ARG.to_f64(),
        );
        Self::per_lane(isa, splat::<S, E>(isa, floor), splat::<S, E>(isa, k))
    }

    /// One base per lane (the lanes of a column-major batch are different rows), each k from
    /// `exp_base` (as the batch computes it) with the floor c + EXP_ZERO_SCALE_ARG rounded once.
    #[cfg_attr(not(xent_unoptimized), inline(always))]
    pub(crate) fn per_lane(isa: S, floor: VecOf<S, E>, k: VecOf<S, E>) -> Self {
        BaseTerm {
            isa,
            floor,
            kc: base_magic(isa, k),
        }
    }

    /// The argument clamped at the floor, where the exponential needs it (not with a native
    /// scaling: `exp_from_base` zeroes every lane below the floor's exponent itself; nor where
    /// the caller knows every argument to lie at or above c + `exp::bounded_floor`).
    #[cfg_attr(not(xent_unoptimized), inline(always))]
    fn clamp<const BOUNDED: bool>(&self, v: VecOf<S, E>) -> VecOf<S, E> {
        if BOUNDED || <VecOf<S, E> as FloatVec>::NATIVE_SCALE {
            v
        } else {
            self.floor.max(v)
        }
    }

    /// Two vectors of terms; `BOUNDED` as in [`exp_from_base`]: every argument is known to
    /// lie at or above c + `exp::bounded_floor`, and the clamp and the zeroing are left out.
    #[cfg_attr(not(xent_unoptimized), inline(always))]
    pub(crate) fn apply_pair_in<const BOUNDED: bool>(
        &self,
        a: VecOf<S, E>,
        b: VecOf<S, E>,
    ) -> (VecOf<S, E>, VecOf<S, E>) {
        let x = Pair(self.clamp::<BOUNDED>(a), self.clamp::<BOUNDED>(b));
        let Pair(ya, yb) = exp_from_base::<_, BOUNDED>(self.isa, x, Pair(self.kc, self.kc));
        (ya, yb)
    }

    /// Four vectors of terms, as [`BaseTerm::apply_pair_in`].
    #[cfg_attr(not(xent_unoptimized), inline(always))]
    pub(crate) fn apply_quad_in<const BOUNDED: bool>(
        &self,
        v: [VecOf<S, E>; 4],
    ) -> [VecOf<S, E>; 4] {
        let x = Pair(
            Pair(self.clamp::<BOUNDED>(v[0]), self.clamp::<BOUNDED>(v[1])),
            Pair(self.clamp::<BOUNDED>(v[2]), self.clamp::<BOUNDED>(v[3])),
        );
        let kc = Pair(self.kc, self.kc);
        let Pair(Pair(a, b), Pair(cc, d)) = exp_from_base::<_, BOUNDED>(self.isa, x, Pair(kc, kc));
        [a, b, cc, d]
    }
}

impl<S: Isa, E: Element> VecMap<VecOf<S, E>> for BaseTerm<S, E> {
    #[cfg_attr(not(xent_unoptimized), inline(always))]
    fn apply(&self, v: VecOf<S, E>) -> VecOf<S, E> {
        exp_from_base::<_, false>(self.isa, self.clamp::<false>(v), self.kc)
    }

    #[cfg_attr(not(xent_unoptimized), inline(always))]
    fn apply_pair(&self, a: VecOf<S, E>, b: VecOf<S, E>) -> (VecOf<S, E>, VecOf<S, E>) {
        self.apply_pair_in::<false>(a, b)
    }

    #[cfg_attr(not(xent_unoptimized), inline(always))]
    fn apply_quad(&self, v: [VecOf<S, E>; 4]) -> [VecOf<S, E>; 4] {
        self.apply_quad_in::<false>(v)
    }
}

/// Statistics of one block whose maximum (NaN ignored, [`max_scan`]) is `m`, optionally storing
/// e^((x − m_b)/τ) into `dst`; also returns the maximum of `next`, the following block.
///
/// # Safety
/// `src` is valid for reading `n` elements; when `STORE`, `dst` is valid for writing `n` elements
/// and is either `src` or does not overlap it; `dst` does not overlap `next`.
#[allow(clippy::too_many_arguments)]
#[cfg_attr(not(xent_unoptimized), inline(always))]
unsafe fn block_stats<S: Isa, E: Element, const SCALED: bool, const STORE: bool>(
    isa: S,
    src: *const E,
    dst: *mut E::Terms,
    n: usize,
    m: E::Real,
    next: &[E],
    sc: &Scale<E::Real>,
    hint: Lookahead<E>,
) -> (Stats, E::Real) {
    let finite = m > <E::Real as Real>::NEG_INFINITY && m < <E::Real as Real>::INFINITY;
    if !finite || (STORE && is_degenerate(m, sc)) {
        // SAFETY: forwarded from the caller.
        let stats = unsafe { special_block(src, dst, n, m, STORE) };
        return (stats, max_scan::<S, E, false>(isa, next).0);
    }
    if STORE && !SCALED {
        // Stored terms are relative to the block's base c (≈ m), which is where the block's
        // statistics then stand; the rescaling pass uses the same c.
        if let Some(k) = exp_base::<E::Real>(m.to_f64()) {
            let term = BaseTerm::<S, E>::new(isa, k);
            let (sum, next_max) = block_sum_exp::<S, E, true>(isa, src, dst, n, &term, next, hint);
            return (Stats::new(base_value(k), sum), next_max);
        }
        // |m| too large for the grid: the exact TwoSum argument (τ = 1 in the scaled form).
        let term = ExpTerm::<S, E, true, true>::new(isa, m, sc);
        let (sum, next_max) = block_sum_exp::<S, E, true>(isa, src, dst, n, &term, next, hint);
        return (Stats::new(m.to_f64(), sum), next_max);
    }
    let term = ExpTerm::<S, E, SCALED, STORE>::new(isa, m, sc);
    let (sum, next_max) = block_sum_exp::<S, E, STORE>(isa, src, dst, n, &term, next, hint);
    (Stats::new(m.to_f64(), sum), next_max)
}

/// # Safety
/// As [`block_stats`].
#[cold]
unsafe fn special_block<E: Element>(
    src: *const E,
    dst: *mut E::Terms,
    n: usize,
    m: E::Real,
    store: bool,
) -> Stats {
    // SAFETY: src is valid for n elements; the slice is dropped before any write.
    let stats = special_block_stats::<E>(unsafe { core::slice::from_raw_parts(src, n) }, m);
    if store {
        let hit = pow2::<E::Real>(<E::Real as Real>::SCALE_SHIFT);
        for i in 0..n {
            // SAFETY: i < n; dst is src or disjoint, and each element is read before the
            // same index is written.
            unsafe {
                let v = (*src.add(i)).to_real();
                let term = if v == m && m > <E::Real as Real>::NEG_INFINITY {
                    hit
                } else {
                    <E::Real as Real>::ZERO
                };
                *dst.add(i) = E::Terms::from_real(term);
            }
        }
    }
    stats
}

/// The statistics of one segment (≤ [`SEGMENT`] elements): blocks merged left to right.
/// `from_memory`: the data comes from memory (see [`Lookahead::in_row`]).
#[cfg_attr(not(xent_unoptimized), inline(always))]
pub(crate) fn segment_stats<S: Isa, E: Element>(
    isa: S,
    x: &[E],
    sc: &Scale<E::Real>,
    from_memory: bool,
) -> Stats {
    // The hints' kind is a constant of each loop (a test per line cost the cached rows).
    match (sc.is_identity(), from_memory) {
        (true, false) => segment_stats_impl::<S, E, false, false>(isa, x, sc, 0),
        (true, true) => segment_stats_impl::<S, E, false, true>(isa, x, sc, 0),
        (false, false) => segment_stats_impl::<S, E, true, false>(isa, x, sc, 0),
        (false, true) => segment_stats_impl::<S, E, true, true>(isa, x, sc, 0),
    }
}

#[cfg_attr(not(xent_unoptimized), inline(always))]
fn segment_stats_impl<S: Isa, E: Element, const SCALED: bool, const FROM_MEMORY: bool>(
    isa: S,
    x: &[E],
    sc: &Scale<E::Real>,
    next_quarters: usize,
) -> Stats {
    // A loop, not `fold` with a closure: closures lose the dispatched target features.
    let mut acc = Stats::EMPTY;
    // Each block's maximum comes from the pass over the block before it; the first block's
    // from its own pass.
    let mut m = max_scan::<S, E, false>(isa, &x[..BLOCK.min(x.len())]).0;
    let mut start = 0;
    while start < x.len() {
        let end = (start + BLOCK).min(x.len());
        let next = &x[end..(end + BLOCK).min(x.len())];
        // SAFETY: the block x[start..end] is valid; nothing is stored.
        let (b, next_max) = unsafe {
            block_stats::<S, E, SCALED, false>(
                isa,
                x.as_ptr().add(start),
                core::ptr::null_mut(),
                end - start,
                m,
                next,
                sc,
                if next_quarters > 0 {
                    Lookahead::next_row(x.as_ptr(), x.len(), 0, start, next_quarters)
                        .and_own_row(x.as_ptr().add(start))
                } else {
                    Lookahead::in_row(x.as_ptr().add(start), FROM_MEMORY)
                },
            )
        };
        acc = acc.merge(b, sc.tau);
        m = next_max;
        start = end;
    }
    acc
}

/// The statistics of a row of at most [`SEGMENT`] elements from memory, hinting the first
/// `quarters` of the next row into the L2 (and its own lines into the L1), for a pass after
/// it that hints the rest.
#[cfg_attr(not(xent_unoptimized), inline(always))]
pub(crate) fn row_stats_next<S: Isa, E: Element>(
    isa: S,
    x: &[E],
    sc: &Scale<E::Real>,
    quarters: usize,
) -> Stats {
    if sc.is_identity() {
        segment_stats_impl::<S, E, false, true>(isa, x, sc, quarters)
    } else {
        segment_stats_impl::<S, E, true, true>(isa, x, sc, quarters)
    }
}

/// The statistics of a whole row: its segments merged left to right.
#[cfg_attr(not(xent_unoptimized), inline(always))]
pub(crate) fn row_stats<S: Isa, E: Element>(
    isa: S,
    x: &[E],
    sc: &Scale<E::Real>,
    from_memory: bool,
) -> Stats {
    let mut acc = Stats::EMPTY;
    for seg in x.chunks(SEGMENT) {
        acc = acc.merge(segment_stats(isa, seg, sc, from_memory), sc.tau);
    }
    acc
}

/// What a row's output pass has to do, decided from its statistics.
pub(crate) enum RowCase {
    /// Finite maximum and sum: the vector output pass.
    Regular,
    /// NaN somewhere: every output NaN.
    Nan,
    /// Every entry −inf: softmax 0, log-softmax −inf.
    AllNegInf,
    /// Some +inf entries, no NaN: mass 1/k on each of the k +inf entries. Also used for a
    /// finite maximum so large that every smaller entry has probability 0 (softmax only).
    PosInf,
}

pub(crate) fn row_case(st: Stats) -> RowCase {
    if st.sum.is_nan() {
        RowCase::Nan
    } else if st.max == f64::NEG_INFINITY {
        RowCase::AllNegInf
    } else if st.max == f64::INFINITY {
        RowCase::PosInf
    } else {
        RowCase::Regular
    }
}

/// Writes the outputs of a non-regular row (scalar; such rows are rare).
///
/// # Safety
/// `src` valid for reading and `dst` for writing `n` elements; equal or non-overlapping.
#[cold]
pub(crate) unsafe fn write_special_row<E: Element>(
    src: *const E,
    dst: *mut E,
    n: usize,
    case: RowCase,
    st: Stats,
    log: bool,
) {
    let top = <E::Real as Real>::from_f64(st.max);
    for i in 0..n {
        // SAFETY: i < n; each element is read before the same index is written.
        unsafe {
            let x = (*src.add(i)).to_real();
            let y = match case {
                RowCase::Nan => <E::Real as Real>::NAN,
                RowCase::AllNegInf if log => <E::Real as Real>::NEG_INFINITY,
                RowCase::AllNegInf => <E::Real as Real>::ZERO,
                RowCase::PosInf => {
                    let hit = x == top;
                    match (hit, log) {
                        (true, true) => <E::Real as Real>::from_f64(-st.sum.ln()),
                        (true, false) => <E::Real as Real>::from_f64(1.0 / st.sum),
                        (false, true) => <E::Real as Real>::NEG_INFINITY,
                        (false, false) => <E::Real as Real>::ZERO,
                    }
                }
                RowCase::Regular => unreachable!("regular rows take the vector path"),
            };
            *dst.add(i) = E::from_real(y);
        }
    }
}

/// A function applied to every vector of a row. (A trait rather than a closure: closures are
/// compiled without the dispatched `#[target_feature]`s and would not inline the intrinsics.)
pub(crate) trait VecMap<V> {
    fn apply(&self, v: V) -> V;

    /// `apply` on two independent vectors; maps built on the exponential step both through it
    /// together (`simd::exp::Pair`).
    #[cfg_attr(not(xent_unoptimized), inline(always))]
    fn apply_pair(&self, a: V, b: V) -> (V, V) {
        (self.apply(a), self.apply(b))
    }

    /// `apply` on four independent vectors (pairs of pairs, stepped together).
    #[cfg_attr(not(xent_unoptimized), inline(always))]
    fn apply_quad(&self, v: [V; 4]) -> [V; 4] {
        let [v0, v1, v2, v3] = v;
        let (a, b) = self.apply_pair(v0, v1);
        let (c, d) = self.apply_pair(v2, v3);
        [a, b, c, d]
    }
}

/// Multiplies by a constant.
pub(crate) struct MulBy<V>(pub V);

impl<V: FloatVec> VecMap<V> for MulBy<V> {
    #[cfg_attr(not(xent_unoptimized), inline(always))]
    fn apply(&self, v: V) -> V {
        v.mul(self.0)
    }
}

/// Multiplies by two constants in turn.
pub(crate) struct MulBy2<V>(pub V, pub V);

impl<V: FloatVec> VecMap<V> for MulBy2<V> {
    #[cfg_attr(not(xent_unoptimized), inline(always))]
    fn apply(&self, v: V) -> V {
        v.mul(self.0).mul(self.1)
    }
}

/// Applies `f` to every vector of `src`, writing `dst` (which is `src` or does not overlap it).
/// With `STREAM`, the whole cache lines of `dst` are written with non-temporal stores (for
/// outputs far larger than the caches: it saves reading each output line before writing it),
/// the partial lines at either end with plain ones; the task that streams issues one
/// `Isa::store_fence` when it is done. Each round over `[i, i + count)` also hints `hint`'s
/// lines for it (`Lookahead::at`).
///
/// A line is never written partly by non-temporal and partly by plain stores: the plain store
/// pulls the line into the cache, and the streamed part then goes through it at many times
/// the cost of a whole streamed line (docs/performance.md, section 26: aligned to the vector
/// instead of the line, the AVX2 f32 softmax streamed at a third of its speed).
///
/// # Safety
/// `src` valid for reading and `dst` for writing `n` elements; equal or non-overlapping.
#[cfg_attr(not(xent_unoptimized), inline(always))]
pub(crate) unsafe fn map_vectors<
    S: Isa,
    I: Element<Real = E::Real>,
    E: Element,
    const STREAM: bool,
>(
    isa: S,
    src: *const I,
    dst: *mut E,
    n: usize,
    pad: E::Real,
    f: impl VecMap<VecOf<S, E>>,
    hint: Lookahead<I>,
) {
    let mut i = 0;
    if STREAM {
        let lanes = VecOf::<S, E>::LANES;
        let size = core::mem::size_of::<E>();
        let head = ((CACHE_LINE - dst as usize % CACHE_LINE) % CACHE_LINE / size).min(n);
        // SAFETY: head <= n.
        unsafe { map_plain(isa, src, dst, head, pad, &f, Lookahead::NONE) };
        i = head;
        // Whole lines per round: a pair of vectors spans one or two lines, or half of one
        // (16-bit elements on AVX2, any type on the scalar path).
        let pairs = (CACHE_LINE / size / (2 * lanes)).max(1);
        let round = pairs * 2 * lanes;
        while i + round <= n {
            hint.at(isa, i, round);
            for k in 0..pairs {
                let j = i + 2 * lanes * k;
                // SAFETY: j + 2 * lanes <= i + round <= n; dst + i is line-aligned and j − i
                // a multiple of the pair, so dst + j is aligned to the pair's size or to the
                // line, whichever is smaller.
                unsafe {
                    let (a, b) =
                        f.apply_pair(I::load(isa, src.add(j)), I::load(isa, src.add(j + lanes)));
                    E::stream_pair(isa, a, b, dst.add(j));
                }
            }
            i += round;
        }
    }
    // SAFETY: i <= n.
    unsafe {
        if STREAM {
            map_plain(isa, src.add(i), dst.add(i), n - i, pad, &f, Lookahead::NONE)
        } else {
            map_plain(isa, src, dst, n, pad, &f, hint)
        }
    }
}

/// [`map_vectors`] with plain stores.
///
/// # Safety
/// As [`map_vectors`].
#[cfg_attr(not(xent_unoptimized), inline(always))]
unsafe fn map_plain<S: Isa, I: Element<Real = E::Real>, E: Element>(
    isa: S,
    src: *const I,
    dst: *mut E,
    n: usize,
    pad: E::Real,
    f: &impl VecMap<VecOf<S, E>>,
    hint: Lookahead<I>,
) {
    let lanes = VecOf::<S, E>::LANES;
    let mut i = 0;
    while i + 2 * lanes <= n {
        hint.at(isa, i, 2 * lanes);
        // SAFETY: i + 2 * lanes <= n.
        unsafe {
            let (a, b) = f.apply_pair(I::load(isa, src.add(i)), I::load(isa, src.add(i + lanes)));
            E::store_pair::<S, true>(isa, a, b, dst.add(i));
        }
        i += 2 * lanes;
    }
    while i + lanes <= n {
        // SAFETY: i + lanes <= n.
        unsafe { E::store(f.apply(I::load(isa, src.add(i))), dst.add(i)) };
        i += lanes;
    }
    if i < n {
        // SAFETY: valid for n elements; the load completes before the store.
        unsafe {
            let v = f.apply(I::load_partial(isa, src.add(i), n - i, pad));
            E::store_partial(v, dst.add(i), n - i);
        }
    }
}

/// [`map_vectors`] with the streaming choice made at run time.
///
/// # Safety
/// As [`map_vectors`].
#[allow(clippy::too_many_arguments)]
#[cfg_attr(not(xent_unoptimized), inline(always))]
pub(crate) unsafe fn map_vectors_to<S: Isa, E: Element>(
    isa: S,
    src: *const E,
    dst: *mut E,
    n: usize,
    pad: E::Real,
    f: impl VecMap<VecOf<S, E>>,
    stream: bool,
    hint: Lookahead<E>,
) {
    // SAFETY: forwarded.
    unsafe {
        if stream {
            map_vectors::<S, E, E, true>(isa, src, dst, n, pad, f, hint)
        } else {
            map_vectors::<S, E, E, false>(isa, src, dst, n, pad, f, hint)
        }
    }
}

/// Softmax (`log == false`) or log-softmax of a stretch of a regular row whose statistics are
/// `st`, recomputing from `src`.
///
/// # Safety
/// As [`map_vectors`].
#[cfg_attr(not(xent_unoptimized), inline(always))]
#[allow(clippy::too_many_arguments)]
pub(crate) unsafe fn write_regular<S: Isa, E: Element>(
    isa: S,
    src: *const E,
    dst: *mut E,
    n: usize,
    st: Stats,
    sc: &Scale<E::Real>,
    log: bool,
    stream: bool,
    hint: Lookahead<E>,
) {
    // SAFETY: forwarded.
    unsafe {
        if !log && is_degenerate(<E::Real as Real>::from_f64(st.max), sc) {
            return write_special_row(src, dst, n, RowCase::PosInf, st, false);
        }
        match (sc.is_identity(), log) {
            (true, false) => write_softmax::<S, E, false>(isa, src, dst, n, st, sc, stream),
            (false, false) => write_softmax::<S, E, true>(isa, src, dst, n, st, sc, stream),
            (true, true) => {
                write_log_softmax::<S, E, false>(isa, src, dst, n, st, sc, stream, hint)
            }
            (false, true) => {
                write_log_softmax::<S, E, true>(isa, src, dst, n, st, sc, stream, hint)
            }
        }
    }
}

#[cfg_attr(not(xent_unoptimized), inline(always))]
unsafe fn write_softmax<S: Isa, E: Element, const SCALED: bool>(
    isa: S,
    src: *const E,
    dst: *mut E,
    n: usize,
    st: Stats,
    sc: &Scale<E::Real>,
    stream: bool,
) {
    let ninf = <E::Real as Real>::NEG_INFINITY;
    if !SCALED {
        if let Some(k) = exp_base::<E::Real>(st.max) {
            // e^(x − M)/S = e^(x − c) · e^(c − M)/S; c − M is exact (0 or |M| > ln2/2, and
            // |c − M| < 1/2).
            let factor = unscale::<E>() / st.sum * (base_value(k) - st.max).exp();
            let f = ScaledBy {
                term: BaseTerm::<S, E>::new(isa, k),
                factor: splat::<S, E>(isa, <E::Real as Real>::from_f64(factor)),
            };
            // SAFETY: forwarded.
            return unsafe { map_vectors_to(isa, src, dst, n, ninf, f, stream, Lookahead::NONE) };
        }
    }
    // Scaled rows, and |M| too large for the grid: the exact TwoSum argument.
    let f = ScaledBy {
        term: ExpTerm::<S, E, true, true>::new(isa, <E::Real as Real>::from_f64(st.max), sc),
        factor: splat::<S, E>(isa, <E::Real as Real>::from_f64(unscale::<E>() / st.sum)),
    };
    // SAFETY: forwarded.
    unsafe { map_vectors_to(isa, src, dst, n, ninf, f, stream, Lookahead::NONE) }
}

/// A term times a constant factor.
struct ScaledBy<T, V> {
    term: T,
    factor: V,
}

impl<V: FloatVec, T: VecMap<V>> VecMap<V> for ScaledBy<T, V> {
    #[cfg_attr(not(xent_unoptimized), inline(always))]
    fn apply(&self, x: V) -> V {
        self.term.apply(x).mul(self.factor)
    }

    #[cfg_attr(not(xent_unoptimized), inline(always))]
    fn apply_pair(&self, a: V, b: V) -> (V, V) {
        let (ya, yb) = self.term.apply_pair(a, b);
        (ya.mul(self.factor), yb.mul(self.factor))
    }
}

#[cfg_attr(not(xent_unoptimized), inline(always))]
#[allow(clippy::too_many_arguments)]
unsafe fn write_log_softmax<S: Isa, E: Element, const SCALED: bool>(
    isa: S,
    src: *const E,
    dst: *mut E,
    n: usize,
    st: Stats,
    sc: &Scale<E::Real>,
    stream: bool,
    hint: Lookahead<E>,
) {
    let f = LogSoftmaxMap::<S, E, SCALED>::new(isa, st, sc);
    // SAFETY: forwarded.
    unsafe {
        map_vectors_to(
            isa,
            src,
            dst,
            n,
            <E::Real as Real>::NEG_INFINITY,
            f,
            stream,
            hint,
        )
    }
}

struct LogSoftmaxMap<S: Isa, E: Element, const SCALED: bool> {
    m: VecOf<S, E>,
    ln_hi: VecOf<S, E>,
    ln_lo: VecOf<S, E>,
    neg_inf: VecOf<S, E>,
    neg_max: VecOf<S, E>,
    /// M/τ, for the rows where x − M overflows but (x − M)/τ does not (τ > 1).
    m_scaled: VecOf<S, E>,
    /// τ > 1: an overflowed x − M may come back into range once scaled. (For τ ≤ 1 an
    /// overflowed (x − M)/τ is the correctly rounded −inf.)
    rescue_overflow: bool,
    sc: ScaleVecs<S, E>,
}

impl<S: Isa, E: Element, const SCALED: bool> LogSoftmaxMap<S, E, SCALED> {
    /// ln S as a sum of two values of the compute precision.
    #[cfg_attr(not(xent_unoptimized), inline(always))]
    fn ln_sum(st: Stats) -> (E::Real, E::Real) {
        let ln_s = st.sum.ln() + st.comp / st.sum;
        let ln_hi = <E::Real as Real>::from_f64(ln_s);
        (ln_hi, <E::Real as Real>::from_f64(ln_s - ln_hi.to_f64()))
    }

    /// One row per lane (a column-major batch): lane i from `stats[i]`.
    #[cfg_attr(not(xent_unoptimized), inline(always))]
    fn per_lane(isa: S, stats: &[Stats], sc: &Scale<E::Real>) -> Self {
        let zero = <E::Real as Real>::ZERO;
        let mut m = [zero; SMALL_BATCH_MAX];
        let mut ln_hi = [zero; SMALL_BATCH_MAX];
        let mut ln_lo = [zero; SMALL_BATCH_MAX];
        let mut m_scaled = [zero; SMALL_BATCH_MAX];
        for (i, &st) in stats.iter().enumerate().take(SMALL_BATCH_MAX) {
            m[i] = <E::Real as Real>::from_f64(st.max);
            (ln_hi[i], ln_lo[i]) = Self::ln_sum(st);
            m_scaled[i] = <E::Real as Real>::from_f64(st.max * sc.tau.inv);
        }
        // SAFETY: SMALL_BATCH_MAX ≥ LANES values each.
        let load = |v: &[E::Real; SMALL_BATCH_MAX]| unsafe { VecOf::<S, E>::load(isa, v.as_ptr()) };
        LogSoftmaxMap {
            m: load(&m),
            ln_hi: load(&ln_hi),
            ln_lo: load(&ln_lo),
            neg_inf: splat::<S, E>(isa, <E::Real as Real>::NEG_INFINITY),
            neg_max: splat::<S, E>(isa, -<E::Real as Real>::MAX),
            m_scaled: load(&m_scaled),
            rescue_overflow: sc.tau.inv < 1.0,
            sc: ScaleVecs::<S, E>::new(isa, sc),
        }
    }

    #[cfg_attr(not(xent_unoptimized), inline(always))]
    fn new(isa: S, st: Stats, sc: &Scale<E::Real>) -> Self {
        let (ln_hi, ln_lo) = Self::ln_sum(st);
        LogSoftmaxMap {
            m: splat::<S, E>(isa, <E::Real as Real>::from_f64(st.max)),
            ln_hi: splat::<S, E>(isa, ln_hi),
            ln_lo: splat::<S, E>(isa, ln_lo),
            neg_inf: splat::<S, E>(isa, <E::Real as Real>::NEG_INFINITY),
            neg_max: splat::<S, E>(isa, -<E::Real as Real>::MAX),
            m_scaled: splat::<S, E>(isa, <E::Real as Real>::from_f64(st.max * sc.tau.inv)),
            rescue_overflow: sc.tau.inv < 1.0,
            sc: ScaleVecs::<S, E>::new(isa, sc),
        }
    }
}

impl<S: Isa, E: Element, const SCALED: bool> VecMap<VecOf<S, E>> for LogSoftmaxMap<S, E, SCALED> {
    #[cfg_attr(not(xent_unoptimized), inline(always))]
    fn apply(&self, x: VecOf<S, E>) -> VecOf<S, E> {
        // The output (x − M)/τ − ln S adds two terms of the same sign (x ≤ M, S ≥ 1): no
        // cancellation, so each rounding below costs at most half an ULP of the output, and the
        // exact difference (TwoSum) that the exponentials need would buy nothing here.
        // With a temperature: the difference, 1/τ and the product each round once (the
        // second part of 1/τ would turn an infinite difference into NaN where it is 0).
        let d = scaled_diff::<S, E, SCALED>(x, self.m, self.sc.inv);
        let d = if SCALED && self.rescue_overflow {
            let overflowed = VecOf::<S, E>::mask_and(d.lt(self.neg_max), self.neg_inf.lt(x));
            VecOf::<S, E>::select(overflowed, x.mul(self.sc.inv).sub(self.m_scaled), d)
        } else {
            d
        };
        d.sub(self.ln_hi).sub(self.ln_lo)
    }
}

/// Softmax of a whole row that fits in cache: exponentials stored in the statistics pass, then
/// each block rescaled in place by e^((m_b − M)/τ)/S. (Streaming the rescaled blocks out
/// through a scratch row was measured 1.5× slower here: see docs/design.md.)
///
/// The terms go to `terms`: `dst` itself for f32 / f64, an f32 scratch row for f16 / bf16
/// (one exponential per entry there too, and one rounding of each output). With `stream` the
/// output is written with non-temporal stores (`terms` is then a scratch row); with
/// `hint_next` (rows of a batch that comes from memory) the two passes share the hints that
/// fetch the next row.
///
/// # Safety
/// As [`map_vectors`], with `n <= store_limit::<E>()`; `terms` is valid for `n` elements and is
/// `dst` or disjoint from `src` and `dst`.
#[allow(clippy::too_many_arguments)]
#[cfg_attr(not(xent_unoptimized), inline(always))]
pub(crate) unsafe fn softmax_row_stored<S: Isa, E: Element>(
    isa: S,
    src: *const E,
    dst: *mut E,
    terms: *mut E::Terms,
    n: usize,
    sc: &Scale<E::Real>,
    stream: bool,
    hint_next: bool,
) {
    // SAFETY: forwarded.
    unsafe {
        match (sc.is_identity(), stream) {
            (true, false) => softmax_row_stored_impl::<S, E, false, false>(
                isa, src, dst, terms, n, sc, hint_next,
            ),
            (true, true) => {
                softmax_row_stored_impl::<S, E, false, true>(isa, src, dst, terms, n, sc, hint_next)
            }
            (false, false) => {
                softmax_row_stored_impl::<S, E, true, false>(isa, src, dst, terms, n, sc, hint_next)
            }
            (false, true) => {
                softmax_row_stored_impl::<S, E, true, true>(isa, src, dst, terms, n, sc, hint_next)
            }
        }
    }
}

const MAX_STORED_BLOCKS: usize = 256;

/// Elements a streamed softmax rescale writes per group of next-row hints (1 KiB of f32: 16
/// hints, then 16 lines of output).
const STREAM_HINT_CHUNK: usize = 256;

#[cfg_attr(not(xent_unoptimized), inline(always))]
unsafe fn softmax_row_stored_impl<S: Isa, E: Element, const SCALED: bool, const STREAM: bool>(
    isa: S,
    src: *const E,
    dst: *mut E,
    terms: *mut E::Terms,
    n: usize,
    sc: &Scale<E::Real>,
    hint_next: bool,
) {
    debug_assert!(n.div_ceil(BLOCK) <= MAX_STORED_BLOCKS);
    // With `hint_next`, the share of the next row the statistics pass hints; the rescale
    // hints the rest. Streamed, the rescale's own traffic is the output's writes, so it
    // takes three quarters of the reads as well (docs/performance.md, section 25); not for
    // half precision, whose statistics pass (an f32 term stored per 16-bit input) is the
    // longer one (section 26).
    let q1 = if STREAM && core::mem::size_of::<E>() > 2 {
        1
    } else {
        2
    };
    let mut block_max = [0f64; MAX_STORED_BLOCKS];
    let mut st = Stats::EMPTY;
    // SAFETY: src is valid for n elements; the slice ends before the first write.
    let mut m = max_scan::<S, E, false>(isa, unsafe {
        core::slice::from_raw_parts(src, BLOCK.min(n))
    })
    .0;
    let mut start = 0;
    let mut k = 0;
    while start < n {
        let len = BLOCK.min(n - start);
        let end = start + len;
        // SAFETY: start + len <= n; forwarded validity and aliasing. The next block is read
        // only; this call writes terms[start..end], which does not overlap it (terms is dst,
        // and then src itself or disjoint from it, or a scratch row disjoint from both).
        let (b, next_max) = unsafe {
            let next = core::slice::from_raw_parts(src.add(end), BLOCK.min(n - end));
            let hint = if hint_next {
                Lookahead::next_row(src, n, 0, start, q1).and_own_row(src.add(start))
            } else {
                Lookahead::in_row(src.add(start), false)
            };
            block_stats::<S, E, SCALED, true>(
                isa,
                src.add(start),
                terms.add(start),
                len,
                m,
                next,
                sc,
                hint,
            )
        };
        block_max[k] = b.max;
        st = st.merge(b, sc.tau);
        m = next_max;
        start = end;
        k += 1;
    }
    match row_case(st) {
        RowCase::Regular | RowCase::PosInf => {}
        // SAFETY: for these cases the output does not depend on the input values (NaN
        // everywhere / zeros everywhere), so dst, which may hold the terms now, serves as input.
        case => return unsafe { write_special_row::<E>(dst, dst, n, case, st, false) },
    }
    let inv_sum = 1.0 / st.sum;
    let zero = <E::Real as Real>::ZERO;
    let mut start = 0;
    for &m in &block_max[..k] {
        let len = BLOCK.min(n - start);
        let f = Stats::weight(m, st.max, sc.tau) * inv_sum;
        let (t, p) = (terms.wrapping_add(start), dst.wrapping_add(start));
        let scaled = f * unscale::<E>();
        // From memory, this pass hints the rest of the next row, a chunk at a time, so that
        // the next row's read overlaps this pass (and a streamed call's writes) instead of
        // following it.
        let chunk = if hint_next { STREAM_HINT_CHUNK } else { len };
        let mut done = 0;
        while done < len {
            let mut c = chunk.min(len - done);
            if STREAM && hint_next {
                // Chunks end on multiples of the chunk's size in the output, whole lines: a
                // line split between two chunks would take plain stores on both sides.
                let into = (p.wrapping_add(done) as usize / core::mem::size_of::<E>()) % chunk;
                c = (chunk - into).min(len - done);
            }
            if hint_next {
                Lookahead::next_row(src, n, n * q1 / 4, start + done, 4 - q1).at(isa, 0, c);
            }
            let (t, p) = (t.wrapping_add(done), p.wrapping_add(done));
            // SAFETY: start + done + c <= n; the terms are rescaled into dst (in place for
            // f32 / f64 unless streamed).
            unsafe {
                if scaled >= <E::Real as Real>::MIN_POSITIVE.to_f64() || f == 0.0 {
                    let fv = splat::<S, E>(isa, <E::Real as Real>::from_f64(scaled));
                    map_vectors::<S, E::Terms, E, STREAM>(
                        isa,
                        t,
                        p,
                        c,
                        zero,
                        MulBy(fv),
                        Lookahead::NONE,
                    );
                } else {
                    // The combined factor would be subnormal: unscale first, then apply f.
                    let u = splat::<S, E>(isa, <E::Real as Real>::from_f64(unscale::<E>()));
                    let fv = splat::<S, E>(isa, <E::Real as Real>::from_f64(f));
                    map_vectors::<S, E::Terms, E, STREAM>(
                        isa,
                        t,
                        p,
                        c,
                        zero,
                        MulBy2(u, fv),
                        Lookahead::NONE,
                    );
                }
            }
            done += c;
        }
        start += len;
    }
}

/// Rows of at most this many vectors run in batches of rows ([`small_rows_batch`]).
pub(crate) const SMALL_VECTORS: usize = 4;

/// What [`small_rows_batch`] computes.
#[derive(Copy, Clone, PartialEq, Eq)]
pub(crate) enum SmallOp {
    Softmax,
    LogSoftmax,
    LogSumExp,
}

/// Most rows one short-row batch holds (the widest vector's lane count).
pub(crate) const SMALL_BATCH_MAX: usize = 16;

/// Compute-precision values a short-row batch keeps its columns in.
pub(crate) const SMALL_BATCH_SCRATCH: usize = SMALL_VECTORS * SMALL_BATCH_MAX * SMALL_BATCH_MAX;

/// Where the tiles of a small row lie: tile j covers columns off(j) .. off(j) + width(j).
/// With n ≥ LANES the last one ends at n: a whole vector overlapping its predecessor (its
/// repeated columns are transposed and stored twice, with the same values), or, where the
/// columns past the last whole vector are at most four and the vector type transposes quads
/// cheaply (`FloatVec::QUAD_TILES`), a tile of four columns; a row shorter than a vector is one
/// partial vector padded with −inf.
#[derive(Copy, Clone)]
pub(crate) struct SmallShape {
    lanes: usize,
    /// Tiles per row.
    pub k: usize,
    last: usize,
    full: bool,
    /// The last tile is four columns.
    quad: bool,
    n: usize,
}

impl SmallShape {
    #[cfg_attr(not(xent_unoptimized), inline(always))]
    pub(crate) fn new<S: Isa, E: Element>(n: usize) -> Self {
        let lanes = VecOf::<S, E>::LANES;
        let full = n >= lanes;
        let rest = n % lanes;
        // Half-precision partial loads go through a buffer: quads only for native elements.
        let quad = full
            && (1..=4).contains(&rest)
            && VecOf::<S, E>::QUAD_TILES
            && core::mem::size_of::<E>() == core::mem::size_of::<E::Real>();
        SmallShape {
            lanes,
            k: n.div_ceil(lanes),
            last: match (quad, full) {
                (true, _) => n - 4,
                (false, true) => n - lanes,
                (false, false) => 0,
            },
            full,
            quad,
            n,
        }
    }

    #[cfg_attr(not(xent_unoptimized), inline(always))]
    pub(crate) fn off(self, j: usize) -> usize {
        if j + 1 == self.k {
            self.last
        } else {
            j * self.lanes
        }
    }

    /// Whether tile j is a quad (four columns).
    #[cfg_attr(not(xent_unoptimized), inline(always))]
    pub(crate) fn is_quad(self, j: usize) -> bool {
        self.quad && j + 1 == self.k
    }

    /// Columns in a tile that is not a quad: LANES, or n for a row shorter than one vector.
    #[cfg_attr(not(xent_unoptimized), inline(always))]
    pub(crate) fn width(self) -> usize {
        self.lanes.min(self.n)
    }

    /// Loads tile j of the row at `src`: a vector, or for a quad four values in lanes 0..4.
    ///
    /// # Safety
    /// `src` valid for reading n elements, j < k.
    #[cfg_attr(not(xent_unoptimized), inline(always))]
    pub(crate) unsafe fn load<S: Isa, E: Element>(
        self,
        isa: S,
        src: *const E,
        j: usize,
    ) -> VecOf<S, E> {
        let ninf = <E::Real as Real>::NEG_INFINITY;
        // SAFETY: off(j) + LANES ≤ n when `full`, off(j) + 4 = n for a quad, else one vector
        // of n elements.
        unsafe {
            if self.is_quad(j) {
                E::load_quad(isa, src.add(self.last))
            } else if self.full {
                E::load(isa, src.add(self.off(j)))
            } else {
                E::load_partial(isa, src, self.n, ninf)
            }
        }
    }
}

/// Loads a batch of short rows (`rows[i]`, valid for reading `n` elements each; `rows.len() ==
/// LANES`) column-major into `columns`: each tile of LANES rows × LANES columns (or four, see
/// `SmallShape`) is transposed, column j stored at j·LANES, and the columns from n up to a multiple
/// of four hold −inf (never a maximum; their exact-argument terms are zeros). Returns each row's
/// maximum (one per lane), each tile's by a tree (depth log2 LANES, not a chain of LANES). `max`
/// skips a NaN in its first operand only: a row's NaN either reaches its maximum or its sums, where
/// the callers find it.
///
/// # Safety
/// As above; `0 < n ≤ SMALL_VECTORS · LANES`; `columns` valid for writing
/// `SMALL_VECTORS · LANES · LANES` values.
#[cfg_attr(not(xent_unoptimized), inline(always))]
pub(crate) unsafe fn load_columns<S: Isa, E: Element>(
    isa: S,
    rows: &[*const E],
    n: usize,
    columns: *mut E::Real,
) -> VecOf<S, E> {
    type V<S, E> = VecOf<S, E>;
    let lanes = V::<S, E>::LANES;
    debug_assert!(rows.len() == lanes && lanes <= SMALL_BATCH_MAX);
    let shape = SmallShape::new::<S, E>(n);
    let width = shape.width();
    let ninf = splat::<S, E>(isa, <E::Real as Real>::NEG_INFINITY);
    let mut max = ninf;
    for b in 0..SMALL_VECTORS {
        if b < shape.k {
            let mut tile = [ninf; SMALL_BATCH_MAX];
            for (v, &row) in tile.iter_mut().zip(rows) {
                // SAFETY: b < k.
                *v = unsafe { shape.load::<S, E>(isa, row, b) };
            }
            let off = shape.off(b);
            // A whole tile in a loop of constant length: with the length `width`, the stores
            // became one call to `memcpy` from a copy of the tile on the stack (11 % of the time
            // of 20-column batches on AVX2, with the registers saved around the call).
            let put = |c: usize, v: V<S, E>| {
                // SAFETY: off + c < n.
                unsafe { v.store(columns.add((off + c) * lanes)) };
            };
            if shape.is_quad(b) {
                let quad = V::<S, E>::transpose_quads(&tile[..lanes]);
                for (c, &v) in quad.iter().enumerate() {
                    put(c, v);
                }
                max = quad[0].max(quad[1]).max(quad[2].max(quad[3])).max(max);
            } else if width == lanes {
                V::<S, E>::transpose(&mut tile[..lanes]);
                for (c, &v) in tile[..lanes].iter().enumerate() {
                    put(c, v);
                }
                let mut w = lanes;
                while w > 1 {
                    w /= 2;
                    for c in 0..w {
                        tile[c] = tile[c].max(tile[c + w]);
                    }
                }
                max = tile[0].max(max);
            } else {
                V::<S, E>::transpose(&mut tile[..lanes]);
                for (c, &v) in tile.iter().enumerate().take(width) {
                    put(c, v);
                    max = v.max(max);
                }
            }
        }
    }
    for j in n..n.next_multiple_of(4) {
        // SAFETY: n rounded up to four ≤ SMALL_VECTORS · LANES.
        unsafe { ninf.store(columns.add(j * lanes)) };
    }
    max
}

/// Softmax, log-softmax or log-sum-exp (`op`) of `LANES` short rows at once (`n ≤
/// SMALL_VECTORS · LANES`), **column-major** as `ce::small_batch`: each tile of LANES rows ×
/// LANES columns is transposed on the way in, so that the maximum, the exponentials, the sums
/// and the outputs are vector steps for the whole batch, with no reduction across lanes; the
/// outputs are transposed back. Row i is the one `i · n` elements after `src` (and `dst`; its
/// log-sum-exp at `lse + i`) for `i < count`; the other lanes compute on row 0 and are
/// dropped. Each row's bits depend on that row alone (lanes never mix): the terms are those of
/// the general path's blocks (`ExpTerm::per_lane` computes what `ExpTerm::new` does), the sum
/// runs over the columns in order (in the compute precision over four columns, then in f64).
///
/// Returns the mask of rows (of the first `count`) left to the general path, nothing of
/// theirs written: a maximum that is not finite or is degenerate, or NaN.
///
/// # Safety
/// `src` valid for reading `count · n` elements; for softmax / log-softmax `dst` valid for
/// writing them (equal to `src` or disjoint from it), for log-sum-exp `lse` valid for writing
/// `count` values; `0 < count ≤ LANES`; `0 < n ≤ SMALL_VECTORS · LANES`; `columns` valid for
/// writing [`SMALL_BATCH_SCRATCH`] values and disjoint from all of them.
#[allow(clippy::too_many_arguments)]
#[cfg_attr(not(xent_unoptimized), inline(always))]
pub(crate) unsafe fn small_rows_batch<S: Isa, E: Element>(
    isa: S,
    op: SmallOp,
    src: *const E,
    dst: *mut E,
    lse: *mut E,
    count: usize,
    n: usize,
    sc: &Scale<E::Real>,
    columns: *mut E::Real,
) -> u32 {
    // SAFETY: forwarded.
    unsafe {
        if sc.is_identity() {
            small_rows_batch_impl::<S, E, false>(isa, op, src, dst, lse, count, n, sc, columns)
        } else {
            small_rows_batch_impl::<S, E, true>(isa, op, src, dst, lse, count, n, sc, columns)
        }
    }
}

#[allow(clippy::too_many_arguments)]
#[cfg_attr(not(xent_unoptimized), inline(always))]
unsafe fn small_rows_batch_impl<S: Isa, E: Element, const SCALED: bool>(
    isa: S,
    op: SmallOp,
    src: *const E,
    dst: *mut E,
    lse: *mut E,
    count: usize,
    n: usize,
    sc: &Scale<E::Real>,
    columns: *mut E::Real,
) -> u32 {
    type V<S, E> = VecOf<S, E>;
    let lanes = V::<S, E>::LANES;
    debug_assert!(lanes <= SMALL_BATCH_MAX && count > 0 && count <= lanes);
    debug_assert!(n > 0 && n <= SMALL_VECTORS * lanes);
    let ninf = <E::Real as Real>::NEG_INFINITY;
    let all = (1u32 << count) - 1;
    let mut srcs = [src; SMALL_BATCH_MAX];
    for (i, s) in srcs.iter_mut().enumerate().take(count) {
        *s = src.wrapping_add(i * n);
    }
    // SAFETY: rows i < count are valid for n elements (the others repeat row 0); `columns`
    // as `load_columns` needs.
    let max = unsafe { load_columns::<S, E>(isa, &srcs[..lanes], n, columns) };
    let padded = n.next_multiple_of(4);
    // SAFETY (all accesses to `columns`): j < padded ≤ SMALL_VECTORS · LANES.
    let column = |j: usize| unsafe { V::<S, E>::load(isa, columns.add(j * lanes)) };
    // Each lane's floor: one addition where the maximum is ordinary, the scalar checks
    // otherwise (as in `ce::small_batch`).
    let quick = QuickFloor::new(sc);
    let neg_max = max.mul(splat::<S, E>(isa, <E::Real as Real>::from_f64(-1.0)));
    let ordinary = splat::<S, E>(isa, quick.bound).ge(max.max(neg_max));
    let mut floor = max.add(splat::<S, E>(isa, quick.step));
    let mut special = 0u32;
    let unusual = !V::<S, E>::mask_bits(ordinary) & all;
    if unusual != 0 {
        let mut m = [<E::Real as Real>::ZERO; SMALL_BATCH_MAX];
        let mut floors = [<E::Real as Real>::ZERO; SMALL_BATCH_MAX];
        // SAFETY: SMALL_BATCH_MAX ≥ LANES.
        unsafe {
            max.store(m.as_mut_ptr());
            floor.store(floors.as_mut_ptr());
        }
        for r in 0..count {
            if unusual >> r & 1 == 0 {
                continue;
            }
            let mr = m[r];
            let finite = mr > ninf && mr < <E::Real as Real>::INFINITY;
            if !finite || is_degenerate(mr, sc) {
                special |= 1 << r;
            } else {
                floors[r] = input_floor(mr.to_f64(), sc);
            }
        }
        if special == all {
            return special;
        }
        // SAFETY: as above.
        floor = unsafe { V::<S, E>::load(isa, floors.as_ptr()) };
    }
    let mut sums = [0.0f64; SMALL_BATCH_MAX];
    if op == SmallOp::Softmax {
        // The terms from the exact argument, stored over their columns for the output.
        let term = ExpTerm::<S, E, SCALED, true>::per_lane(isa, max, neg_max, floor, sc);
        let mut j = 0;
        while j < padded {
            let e = term.apply_quad([column(j), column(j + 1), column(j + 2), column(j + 3)]);
            for (q, eq) in e.iter().enumerate() {
                // SAFETY: j + q < padded.
                unsafe { eq.store(columns.add((j + q) * lanes)) };
            }
            e[0].add(e[1]).add(e[2].add(e[3])).add_lanes_f64(&mut sums);
            j += 4;
        }
    } else {
        // Sums only, from the rounded argument with the fixed floor (as `ExpTerm::new` sets
        // it for sums), over the row's own columns: the floor's term is not an exact zero.
        let floor = splat::<S, E>(isa, <E::Real as Real>::EXP_MIN_ARG);
        let term = ExpTerm::<S, E, SCALED, false>::per_lane(isa, max, neg_max, floor, sc);
        let mut j = 0;
        while j + 4 <= n {
            let e = term.apply_quad([column(j), column(j + 1), column(j + 2), column(j + 3)]);
            e[0].add(e[1]).add(e[2].add(e[3])).add_lanes_f64(&mut sums);
            j += 4;
        }
        if j < n {
            let mut rest = term.apply(column(j));
            for c in j + 1..n {
                rest = rest.add(term.apply(column(c)));
            }
            rest.add_lanes_f64(&mut sums);
        }
    }
    let mut m = [<E::Real as Real>::ZERO; SMALL_BATCH_MAX];
    // SAFETY: SMALL_BATCH_MAX ≥ LANES.
    unsafe { max.store(m.as_mut_ptr()) };
    let mut stats = [Stats::EMPTY; SMALL_BATCH_MAX];
    for (r, st) in stats.iter_mut().enumerate().take(lanes) {
        *st = Stats::new(m[r].to_f64(), sums[r] * unscale::<E>());
        if st.sum.is_nan() {
            special |= (1 << r) & all;
        }
    }
    if special == all {
        return special;
    }
    let written = !special & all;
    if op == SmallOp::LogSumExp {
        for (r, st) in stats.iter().enumerate().take(count) {
            if written >> r & 1 != 0 {
                // SAFETY: r < count.
                unsafe { *lse.add(r) = E::from_f64(st.logsumexp(sc.tau.inv)) };
            }
        }
        return special;
    }
    let dsts = &Consecutive { dst, n };
    if op == SmallOp::Softmax {
        let mut factors = [<E::Real as Real>::ZERO; SMALL_BATCH_MAX];
        for (f, st) in factors.iter_mut().zip(&stats).take(lanes) {
            *f = <E::Real as Real>::from_f64(unscale::<E>() / st.sum);
        }
        // SAFETY: SMALL_BATCH_MAX ≥ LANES.
        let factor = unsafe { V::<S, E>::load(isa, factors.as_ptr()) };
        // SAFETY: forwarded.
        unsafe {
            store_columns(
                isa,
                &EveryColumn(&MulBy(factor)),
                columns,
                dsts,
                written,
                count,
                n,
            )
        };
    } else {
        let f = LogSoftmaxMap::<S, E, SCALED>::per_lane(isa, &stats[..lanes], sc);
        // SAFETY: forwarded.
        unsafe { store_columns(isa, &EveryColumn(&f), columns, dsts, written, count, n) };
    }
    special
}

/// A map of a short-row batch's columns to its outputs: column j's vector (one row per lane)
/// to the outputs of that column.
pub(crate) trait ColumnMap<V> {
    fn column(&self, j: usize, v: V) -> V;
}

/// The same map for every column.
pub(crate) struct EveryColumn<'a, F>(pub &'a F);

impl<V, F: VecMap<V>> ColumnMap<V> for EveryColumn<'_, F> {
    #[cfg_attr(not(xent_unoptimized), inline(always))]
    fn column(&self, _: usize, v: V) -> V {
        self.0.apply(v)
    }
}

/// Where the rows of a short-row batch's outputs start.
pub(crate) trait RowStarts<E> {
    fn start(&self, i: usize) -> *mut E;
}

/// Rows of `n` elements one after another from `dst`.
pub(crate) struct Consecutive<E> {
    pub dst: *mut E,
    pub n: usize,
}

impl<E> RowStarts<E> for Consecutive<E> {
    #[cfg_attr(not(xent_unoptimized), inline(always))]
    fn start(&self, i: usize) -> *mut E {
        self.dst.wrapping_add(i * self.n)
    }
}

/// Each row at its own place.
impl<E> RowStarts<E> for [*mut E] {
    #[cfg_attr(not(xent_unoptimized), inline(always))]
    fn start(&self, i: usize) -> *mut E {
        self[i]
    }
}

/// The outputs of a short-row batch: `f` of each column, transposed back to rows tile by
/// tile (as `load_columns` reads them), stored at `dsts.start(i)` for the rows i in `written`
/// (of the first `count`).
///
/// # Safety
/// `columns` holds the batch's `n` columns; `dsts.start(i)` valid for writing `n` elements for
/// every row i in `written`.
#[cfg_attr(not(xent_unoptimized), inline(always))]
pub(crate) unsafe fn store_columns<S: Isa, E: Element>(
    isa: S,
    f: &impl ColumnMap<VecOf<S, E>>,
    columns: *const E::Real,
    dsts: &(impl RowStarts<E> + ?Sized),
    written: u32,
    count: usize,
    n: usize,
) {
    type V<S, E> = VecOf<S, E>;
    let lanes = V::<S, E>::LANES;
    let shape = SmallShape::new::<S, E>(n);
    let width = shape.width();
    // SAFETY (all accesses to `columns`): j < n.
    let column = |j: usize| f.column(j, unsafe { V::<S, E>::load(isa, columns.add(j * lanes)) });
    for b in 0..SMALL_VECTORS {
        if b < shape.k {
            let off = shape.off(b);
            let mut tile = [splat::<S, E>(isa, <E::Real as Real>::ZERO); SMALL_BATCH_MAX];
            if shape.is_quad(b) {
                let quad = [
                    column(off),
                    column(off + 1),
                    column(off + 2),
                    column(off + 3),
                ];
                V::<S, E>::untranspose_quads(quad, &mut tile[..lanes]);
            } else {
                for (c, v) in tile.iter_mut().enumerate().take(width) {
                    *v = column(off + c);
                }
                V::<S, E>::transpose(&mut tile[..lanes]);
            }
            let quad = shape.is_quad(b);
            for (i, v) in tile.iter().enumerate().take(count) {
                if written >> i & 1 != 0 {
                    // SAFETY: off + 4 = n for a quad, off + width ≤ n otherwise.
                    unsafe {
                        let out = dsts.start(i).add(off);
                        if quad {
                            E::store_quad(*v, out);
                        } else if width == lanes {
                            E::store(*v, out);
                        } else {
                            E::store_partial(*v, out, width);
                        }
                    }
                }
            }
        }
    }
}
