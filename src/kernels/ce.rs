//! Softmax cross-entropy of one row: the forward statistics and the gradient pass.
//!
//! # Passes
//!
//! **Cached path** (unscaled rows up to `row::STORE_LIMIT_BYTES`, which stay in L2 / L3):
//!
//! * A read-only pass takes the maximum (and NaN) left and right of the target ([`RowScan`]):
//!   the argmax test falls out of the two maxima, and a row that is not regular goes to the
//!   scalar special-value code before anything is written.
//! * A pass from cache computes e_j = e^(x_j − c) (c ≈ M, `simd::exp::exp_from_base`) and sums
//!   them over j ≠ t ([`others_sum`]). The target's term e_t is formed in f64, so that the
//!   loss (M − x_t) + ln S = ln(1 + S_other/e_t) keeps full relative accuracy as p_t → 1.
//!   `forward` only sums; the fused kernel ([`row_fused`]) also stores e_j into the gradient
//!   buffer and, once lse is known, turns the stored terms into gradient entries (one
//!   exponential per entry); `backward` recomputes the maximum and the same e_j and writes the
//!   entries directly. The three share the summation, so they agree bitwise.
//!
//! **Blocked path** (scaled rows, longer rows):
//!
//! * **Forward** (one read): the row's statistics (`row::row_stats`, blocked online max and
//!   Σ e^((x − m)/τ)) over the entries other than the target, in two stretches `[0, t)` and
//!   `(t, C)`, merged; e_t in f64 as above.
//! * **Gradient** (one more read and one write): from the row's log-sum-exp alone, so that
//!   `backward(saved lse)` and the fused kernels run the same code and agree bitwise.
//!
//! Every pass sums Σ_{j≠t} e_j segment by segment (`row::SEGMENT` entries) and adds the
//! segments' shares in order, so that one huge row's passes can run their segments on
//! different threads ([`segment_gradient`], [`finish_gradient`]) with the serial results.
//!
//! In both, each gradient entry is g/τ · (A·p_j − B_j) (see `docs/semantics.md`), written as
//! one fused multiply-add, and the target's entry −B_t (1 − p_t) + (A − B_t) p_t is formed from
//! Σ_{j≠t} p_j, never 1 − p_t by cancellation. Label smoothing adds a cheap pass from cache:
//! Σ w_j (M − x_j), a sum of non-negative terms, so no cancellation with large offsets.
//!
//! Rows whose maximum is not finite (NaN, ±inf) or so large that the exponential degenerates
//! take scalar code that applies the special-value rules directly.

use super::reduce::range_scan_hinting;
use super::row::{
    self, is_degenerate, splat, unscale, BaseTerm, ExpTerm, LaneSum, Scale, Stats, Tau, VecMap,
};
use crate::element::{Element, VecOf};
use crate::simd::exp::{self, base_value, exp_base, pow2};
use crate::simd::{FloatVec, Isa, Real};

/// The options of a call, as the row kernels use them.
#[derive(Copy, Clone)]
pub(crate) struct CeParams<'a, R: Real> {
    /// Temperature (identity when the logits were soft-capped into a scratch row already).
    pub sc: Scale<R>,
    /// Class weights in the compute precision, and in f64.
    pub weights: Option<&'a [R]>,
    pub weights_f64: Option<&'a [f64]>,
    /// Σ_j w_j.
    pub weight_total: f64,
    /// ε.
    pub eps: f64,
    /// z.
    pub z: f64,
}

impl<R: Real> CeParams<'_, R> {
    #[cfg_attr(not(xent_unoptimized), inline(always))]
    pub fn weight(&self, j: usize) -> f64 {
        self.weights_f64.map_or(1.0, |w| w[j])
    }

    /// The coefficients A and B_t of the gradient (without the z-loss part when lse is not
    /// finite: the loss is infinite there anyway).
    #[cfg_attr(not(xent_unoptimized), inline(always))]
    fn coefficients(&self, t: usize, classes: usize, lse: f64) -> (f64, f64) {
        let wt = self.weight(t);
        let smooth = self.eps / classes as f64;
        let z_part = if lse.is_finite() {
            coeff_mul(2.0 * self.z * wt, lse)
        } else {
            0.0
        };
        let a = (1.0 - self.eps) * wt + smooth * self.weight_total + z_part;
        let b_t = (1.0 - self.eps) * wt + smooth * wt;
        (a, b_t)
    }
}

/// `a · b` where a zero coefficient removes the term (0 · ∞ counts 0).
#[cfg_attr(not(xent_unoptimized), inline(always))]
pub(crate) fn coeff_mul(a: f64, b: f64) -> f64 {
    if a == 0.0 {
        0.0
    } else {
        a * b
    }
}

/// (m − x)/τ in f64, also where m − x alone overflows but the scaled value does not (τ > 1).
#[cfg_attr(not(xent_unoptimized), inline(always))]
fn scaled_gap_f64(m: f64, x: f64, inv_tau: f64) -> f64 {
    let gap = m - x;
    if gap.is_finite() || !x.is_finite() {
        gap * inv_tau
    } else {
        m * inv_tau - x * inv_tau
    }
}

/// One row's forward results.
#[derive(Copy, Clone, Debug, Default)]
pub struct RowForward {
    /// ce + z-loss.
    pub loss: f64,
    pub z: f64,
    pub lse: f64,
    /// The target is the first maximal logit.
    pub correct: bool,
}

/// The forward statistics of a row with target `t` (`None`: ignored; only its lse is taken).
#[cfg_attr(not(xent_unoptimized), inline(always))]
pub(crate) fn row_forward<S: Isa, E: Element>(
    isa: S,
    x: &[E],
    t: Option<usize>,
    p: &CeParams<E::Real>,
) -> RowForward {
    let tau = p.sc.tau;
    let Some(t) = t else {
        let st = row::row_stats(isa, x, &p.sc, false);
        return RowForward {
            lse: st.logsumexp(tau.inv),
            ..RowForward::default()
        };
    };
    let n = x.len();
    if takes_cached_path::<E>(n, p) {
        // The maximum's scan hints the first part of the next row, the exponential pass the
        // rest (docs/performance.md, section 25). The half-precision scan is the quicker
        // (integer compares on the stored patterns), so it takes a smaller share.
        let scan_quarters = if core::mem::size_of::<E>() == 2 { 1 } else { 2 };
        let scan = RowScan::hinting(isa, x, t, scan_quarters);
        if !scan.regular(p) {
            return RowForward {
                correct: scan.correct(t),
                ..special_forward(x, t, p)
            };
        }
        let gaps = smoothing_gaps(isa, x, scan.m, p);
        let mut map = GradMap::<S, E>::new(isa, <E::Real as Real>::from_f64(scan.m), p);
        map.hint = NextRowHint {
            ahead: n,
            from: n * scan_quarters / 4,
            quarters: 4 - scan_quarters,
        };
        // SAFETY: the stretches lie inside x; nothing is written in SUM mode.
        let s_others = unsafe {
            others_sum::<S, E, E, SUM>(&map, x.as_ptr(), core::ptr::null_mut(), n, t, None)
        };
        return finish_forward(&scan, map.reference, s_others, gaps, n, t, p);
    }
    let left = row::row_stats(isa, &x[..t], &p.sc, false);
    let right = row::row_stats(isa, &x[t + 1..], &p.sc, false);
    forward_from_stretches(isa, x, t, left, right, None, p)
}

/// The forward results of a row on the blocked path from the statistics of its two stretches
/// `[0, t)` and `(t, C)` (each the ordered merge of its segments' statistics, however they
/// were computed: serially in [`row_forward`], or in parallel for one huge row).
#[cfg_attr(not(xent_unoptimized), inline(always))]
pub(crate) fn forward_from_stretches<S: Isa, E: Element>(
    isa: S,
    x: &[E],
    t: usize,
    left: Stats,
    right: Stats,
    gaps: Option<f64>,
    p: &CeParams<E::Real>,
) -> RowForward {
    let tau = p.sc.tau;
    let n = x.len();
    let others = left.merge(right, tau);
    let xt = x[t].to_f64();
    let scan = RowScan {
        left: left.max,
        right: right.max,
        xt,
        m: row_max(xt, others),
        low: f64::NEG_INFINITY,
        nan: others.sum.is_nan() || xt.is_nan(),
    };
    if !scan.regular(p) {
        return RowForward {
            correct: scan.correct(t),
            ..special_forward(x, t, p)
        };
    }
    let s_others = if others.sum == 0.0 {
        0.0
    } else {
        let w = Stats::weight(others.max, scan.m, tau);
        others.sum.mul_add(w, others.comp * w)
    };
    // A match, not `unwrap_or_else`: a closure would lose the dispatched target features.
    let gaps = match gaps {
        Some(g) => g,
        None => smoothing_gaps(isa, x, scan.m, p),
    };
    finish_forward(&scan, scan.m, s_others, gaps, n, t, p)
}

/// The maximum of a row from its target's logit and the merged statistics of the stretches
/// around it (the reference point of its smoothing gaps).
pub(crate) fn row_max(xt: f64, others: Stats) -> f64 {
    if xt > others.max {
        xt
    } else {
        others.max
    }
}

/// The forward results of a regular row from Σ_{j≠t} e^((x_j − reference)/τ) and the smoothing
/// gaps.
#[cfg_attr(not(xent_unoptimized), inline(always))]
fn finish_forward<R: Real>(
    scan: &RowScan,
    reference: f64,
    s_others: f64,
    gaps: f64,
    n: usize,
    t: usize,
    p: &CeParams<R>,
) -> RowForward {
    let tau = p.sc.tau;
    let m = scan.m;
    let xt = scan.xt;
    // Relative to the maximum M (reference − M is exact and tiny, or 0).
    let s_others = if reference == m {
        s_others
    } else {
        s_others * Stats::weight(reference, m, tau)
    };
    let e_t = Stats::weight(xt, m, tau);
    let s = s_others + e_t;
    let ln_s = s.ln();
    let lse = m * tau.inv + ln_s;
    // −ln p_t = (M − x_t)/τ + ln S = ln(1 + S_other / e_t): the second form keeps its relative
    // accuracy as p_t → 1.
    let nll_t = if e_t >= 1e-250 {
        (s_others / e_t).ln_1p()
    } else {
        scaled_gap_f64(m, xt, tau.inv) + ln_s
    };
    let wt = p.weight(t);
    let mut ce = coeff_mul((1.0 - p.eps) * wt, nll_t);
    if p.eps > 0.0 {
        // Σ_j w_j (−ln p_j) = Σ_j w_j (M − x_j)/τ + W ln S.
        ce += smoothing_term(gaps, p, n, ln_s);
    }
    let z = coeff_mul(p.z * wt, lse * lse);
    RowForward {
        loss: ce + z,
        z,
        lse,
        correct: scan.correct(t),
    }
}

/// (m − x)·GAP_SCALE for the smoothing sum, formed by one fused multiply-add so that it never
/// overflows (m − x alone does for x and m near ∓MAX), and scaled so that 16 such terms summed
/// in a lane cannot overflow either. `m_scaled` is m·GAP_SCALE.
#[cfg_attr(not(xent_unoptimized), inline(always))]
fn scaled_gap<S: Isa, E: Element>(isa: S, x: VecOf<S, E>, m_scaled: VecOf<S, E>) -> VecOf<S, E> {
    x.mul_add(
        splat::<S, E>(isa, <E::Real as Real>::from_f64(-GAP_SCALE)),
        m_scaled,
    )
}

/// 2^-64: see [`scaled_gap`]; a row would need 2^63 maximal weighted gaps to overflow the sum.
const GAP_SCALE: f64 = 1.0 / 18446744073709551616.0;

/// Σ_j w_j (m − x_j) · GAP_SCALE over a row whose maximum is m (terms ≥ 0; a zero weight
/// removes its term even where x_j = −inf).
#[cfg_attr(not(xent_unoptimized), inline(always))]
fn weighted_gaps<S: Isa, E: Element>(isa: S, x: &[E], m: E::Real, w: Option<&[E::Real]>) -> f64 {
    let lanes = VecOf::<S, E>::LANES;
    let n = x.len();
    let zero = splat::<S, E>(isa, <E::Real as Real>::ZERO);
    let gaps = Gaps::<S, E> {
        isa,
        x: x.as_ptr(),
        w: w.map_or(core::ptr::null(), |w| w.as_ptr()),
        m,
        m_scaled: splat::<S, E>(isa, <E::Real as Real>::from_f64(m.to_f64() * GAP_SCALE)),
        zero,
    };
    // Four vectors summed before they reach the accumulator: one addition in its chain per
    // four vectors (one per vector made this pass wait on the add's latency, 20 ms of a
    // 67 ms fused call at 4096 × 32000).
    let mut sum = LaneSum::new(isa, zero);
    let mut i = 0;
    while i + 4 * lanes <= n {
        // SAFETY: i + 4·lanes <= n; see `Gaps::at`.
        let q = unsafe {
            [
                gaps.at(i, lanes),
                gaps.at(i + lanes, lanes),
                gaps.at(i + 2 * lanes, lanes),
                gaps.at(i + 3 * lanes, lanes),
            ]
        };
        sum.add(q[0].add(q[1]).add(q[2].add(q[3])), 4);
        i += 4 * lanes;
    }
    while i < n {
        let len = lanes.min(n - i);
        // SAFETY: i + len <= n; see `Gaps::at`.
        sum.add(unsafe { gaps.at(i, len) }, 1);
        i += len;
    }
    sum.value()
}

/// The weighted, scaled gaps of one row (see [`weighted_gaps`]).
struct Gaps<S: Isa, E: Element> {
    isa: S,
    x: *const E,
    /// The class weights, or null.
    w: *const E::Real,
    m: E::Real,
    m_scaled: VecOf<S, E>,
    zero: VecOf<S, E>,
}

impl<S: Isa, E: Element> Gaps<S, E> {
    /// The gaps of entries `i .. i + len` (`len ≤ LANES`); padding lanes hold x = m (gap 0)
    /// and w = 0.
    ///
    /// # Safety
    /// `x` (and `w` when not null) valid for reading `i + len` entries: the caller's
    /// validation checked that the weights have one entry per class.
    #[cfg_attr(not(xent_unoptimized), inline(always))]
    unsafe fn at(&self, i: usize, len: usize) -> VecOf<S, E> {
        // SAFETY: forwarded.
        unsafe {
            let x = load_elems(self.isa, self.x.add(i), len, self.m);
            let gap = scaled_gap::<S, E>(self.isa, x, self.m_scaled);
            if self.w.is_null() {
                gap
            } else {
                let wv = load_weights::<S, E>(self.isa, self.w.add(i), len);
                wv.mul(gap).and_mask(self.zero.lt(wv))
            }
        }
    }
}

/// ε/C · Σ_j w_j (−ln p_j) = ε/C · (Σ_j w_j (M − x_j)/τ + W ln S) from the scaled gap sum
/// Σ w_j (M − x_j)·GAP_SCALE, multiplied in an order that overflows only if the result does.
#[cfg_attr(not(xent_unoptimized), inline(always))]
fn smoothing_term<R: Real>(scaled_gaps: f64, p: &CeParams<R>, classes: usize, ln_s: f64) -> f64 {
    let smooth = p.eps / classes as f64;
    scaled_gaps * smooth * p.sc.tau.inv / GAP_SCALE + smooth * coeff_mul(p.weight_total, ln_s)
}

/// The forward results of a row that is not regular, by the special-value rules (scalar).
#[cold]
fn special_forward<E: Element, R: Real>(x: &[E], t: usize, p: &CeParams<R>) -> RowForward {
    let tau = p.sc.tau;
    let sp = SpecialRow::scan(x, tau.inv);
    let wt = p.weight(t);
    if sp.nan {
        return RowForward {
            loss: f64::NAN,
            z: coeff_mul(p.z * wt, f64::NAN),
            lse: f64::NAN,
            correct: false,
        };
    }
    let lse = sp.lse;
    let mut ce = coeff_mul((1.0 - p.eps) * wt, sp.nll(x[t].to_f64()));
    if p.eps > 0.0 {
        // Scaled like the regular path: (M − x)/τ may exceed the f64 range on its own.
        let scaled: f64 = x
            .iter()
            .enumerate()
            .map(|(j, v)| coeff_mul(p.weight(j), sp.nll_scaled(v.to_f64(), GAP_SCALE)))
            .sum();
        ce += scaled * (p.eps / x.len() as f64) / GAP_SCALE;
    }
    let z = coeff_mul(p.z * wt, lse * lse);
    RowForward {
        loss: ce + z,
        z,
        lse,
        correct: false,
    }
}

/// A row whose maximum M is NaN, ±inf, or finite but so large that e^((x − M)/τ) is 0 for
/// every x < M: the k entries equal to M share the probability, the others get 0.
struct SpecialRow {
    nan: bool,
    max: f64,
    count: f64,
    lse: f64,
    inv_tau: f64,
}

impl SpecialRow {
    fn scan<E: Element>(x: &[E], inv_tau: f64) -> SpecialRow {
        let mut max = f64::NEG_INFINITY;
        let mut nan = false;
        for v in x {
            let v = v.to_f64();
            nan |= v.is_nan();
            if v > max {
                max = v;
            }
        }
        let count = x.iter().filter(|v| v.to_f64() == max).count() as f64;
        let lse = if nan {
            f64::NAN
        } else if max.is_infinite() {
            max
        } else {
            max * inv_tau + count.ln()
        };
        SpecialRow {
            nan,
            max,
            count,
            lse,
            inv_tau,
        }
    }

    /// −ln p for an entry x.
    fn nll(&self, x: f64) -> f64 {
        self.nll_scaled(x, 1.0)
    }

    /// −ln p · `scale` for an entry x (`scale` a power of two ≤ 1, applied before the
    /// difference so that it cannot overflow).
    fn nll_scaled(&self, x: f64, scale: f64) -> f64 {
        if self.max == f64::NEG_INFINITY {
            f64::INFINITY
        } else if x == self.max {
            self.count.ln() * scale
        } else if self.max == f64::INFINITY {
            f64::INFINITY
        } else {
            scaled_gap_f64(self.max * scale, x * scale, self.inv_tau) + self.count.ln() * scale
        }
    }

    /// p for an entry x.
    fn prob(&self, x: f64) -> f64 {
        if self.nan {
            f64::NAN
        } else if x == self.max && self.max > f64::NEG_INFINITY {
            1.0 / self.count
        } else {
            0.0
        }
    }
}

/// The gradient of one row with target `t` and log-sum-exp `lse`, scaled by `g`, into `dst`
/// (`src` itself or a disjoint buffer): [`segment_gradient`] over every segment in order, then
/// [`finish_gradient`], as the parallel driver runs them for one huge row.
///
/// # Safety
/// `src` valid for reading and `dst` for writing `n` elements; equal or disjoint; `t < n`.
#[allow(clippy::too_many_arguments)]
#[cfg_attr(not(xent_unoptimized), inline(always))]
pub(crate) unsafe fn row_gradient<S: Isa, E: Element>(
    isa: S,
    src: *const E,
    dst: *mut E,
    n: usize,
    t: usize,
    lse: f64,
    g: f64,
    p: &CeParams<E::Real>,
) {
    // SAFETY: forwarded.
    let Some(plan) = (unsafe { gradient_plan(isa, src, n, t, lse, g, p) }) else {
        // SAFETY: forwarded.
        return unsafe { special_gradient(src, dst, n, t, g, p) };
    };
    let weights = if p.eps > 0.0 { p.weights } else { None };
    let mut others = 0.0;
    for k in 0..n.div_ceil(row::SEGMENT) {
        // SAFETY: forwarded; the target entry is written last, after its logit was read.
        others += unsafe { segment_others::<S, E, E, GRAD>(&plan.map, src, dst, n, t, k, weights) };
    }
    // SAFETY: forwarded.
    unsafe { write_target_entry(&plan, dst, t, others, p) };
}

/// The gradient entries of segment `k` (`row::SEGMENT` entries) of a row, all but the
/// target's; returns their share of the sum that [`finish_gradient`] takes.
///
/// # Safety
/// As [`row_gradient`]. The rows [`gradient_splits`] accepts read nothing outside the segment.
#[allow(clippy::too_many_arguments)]
#[cfg_attr(not(xent_unoptimized), inline(always))]
pub(crate) unsafe fn segment_gradient<S: Isa, E: Element>(
    isa: S,
    src: *const E,
    dst: *mut E,
    n: usize,
    t: usize,
    k: usize,
    lse: f64,
    g: f64,
    p: &CeParams<E::Real>,
) -> f64 {
    // SAFETY: forwarded.
    let Some(plan) = (unsafe { gradient_plan(isa, src, n, t, lse, g, p) }) else {
        return 0.0; // `finish_gradient` writes the whole row.
    };
    let weights = if p.eps > 0.0 { p.weights } else { None };
    // SAFETY: forwarded.
    unsafe { segment_others::<S, E, E, GRAD>(&plan.map, src, dst, n, t, k, weights) }
}

/// The target's gradient entry from the segments' shares summed in order (or, for a row that
/// is not regular, the whole row by the special-value rules).
///
/// # Safety
/// As [`row_gradient`], after [`segment_gradient`] ran over every segment.
#[allow(clippy::too_many_arguments)]
#[cfg_attr(not(xent_unoptimized), inline(always))]
pub(crate) unsafe fn finish_gradient<S: Isa, E: Element>(
    isa: S,
    src: *const E,
    dst: *mut E,
    n: usize,
    t: usize,
    others: f64,
    lse: f64,
    g: f64,
    p: &CeParams<E::Real>,
) {
    // SAFETY: forwarded.
    match unsafe { gradient_plan(isa, src, n, t, lse, g, p) } {
        // SAFETY: forwarded.
        Some(plan) => unsafe { write_target_entry(&plan, dst, t, others, p) },
        // SAFETY: forwarded.
        None => unsafe { special_gradient(src, dst, n, t, g, p) },
    }
}

/// Whether one huge row's gradient may run as [`segment_gradient`] tasks in parallel: rows on
/// the blocked path, where the plan reads nothing but the target's logit (the cached path and
/// a coarse lse scan the whole row first).
pub(crate) fn gradient_splits<E: Element>(n: usize, lse: f64, p: &CeParams<E::Real>) -> bool {
    !takes_cached_path::<E>(n, p) && !lse_is_coarse(lse)
}

/// What a regular row's gradient passes need: the terms' map with the factors set, the
/// factors, and the target's logit.
struct GradPlan<S: Isa, E: Element> {
    map: GradMap<S, E>,
    f: GradFactors,
    xt: f64,
}

/// The plan of a row's gradient, or `None` for a row that is not regular.
///
/// # Safety
/// `src` valid for reading `n` elements; `t < n`.
#[cfg_attr(not(xent_unoptimized), inline(always))]
unsafe fn gradient_plan<S: Isa, E: Element>(
    isa: S,
    src: *const E,
    n: usize,
    t: usize,
    lse: f64,
    g: f64,
    p: &CeParams<E::Real>,
) -> Option<GradPlan<S, E>> {
    // SAFETY: t < n.
    let xt = unsafe { *src.add(t) }.to_f64();
    let tau = p.sc.tau;
    let mut map = if takes_cached_path::<E>(n, p) || lse_is_coarse(lse) {
        // SAFETY: src is valid for n elements; the slice is dropped before any write.
        let scan = RowScan::new(isa, unsafe { core::slice::from_raw_parts(src, n) }, t);
        if !scan.regular(p) || !lse.is_finite() {
            return None;
        }
        let mut map = GradMap::<S, E>::new(isa, <E::Real as Real>::from_f64(scan.m), p);
        map.hint = NextRowHint::whole(n);
        map
    } else {
        let m = <E::Real as Real>::from_f64(lse * tau.value);
        if !(lse.is_finite() && m.to_f64().is_finite()) || is_degenerate(m, &p.sc) {
            return None;
        }
        // The terms relative to m ≈ lse·τ (≥ every logit).
        GradMap::<S, E>::new(isa, m, p)
    };
    let coarse = if lse_is_coarse(lse) {
        // SAFETY: src is valid for n elements, t < n.
        Some(unsafe { coarse_ln_sum(&map, src, n, t, xt, p) })
    } else {
        None
    };
    let f = GradFactors::new(&map, t, n, lse, g, p, coarse);
    map.set_factors(&f);
    Some(GradPlan { map, f, xt })
}

/// Writes the target's entry from `others`, the row's Σ_{j≠t} e_j · 2^-SCALE_SHIFT before
/// the factors (as [`segment_others`] sums it, segment by segment).
///
/// # Safety
/// `dst` valid for writing entry `t`.
#[cfg_attr(not(xent_unoptimized), inline(always))]
unsafe fn write_target_entry<S: Isa, E: Element>(
    plan: &GradPlan<S, E>,
    dst: *mut E,
    t: usize,
    others: f64,
    p: &CeParams<E::Real>,
) {
    let others = others * unscale::<E>() * plan.f.shift;
    let entry = plan.f.target_entry(others, plan.xt, p.sc.tau.inv);
    // SAFETY: forwarded.
    unsafe { *dst.add(t) = E::from_f64(entry) };
}

/// Softmax cross-entropy forward and gradient of one regular row in one exponential per entry
/// (rows on the cached path): the terms e^((x_j − c)) are stored while the row is summed (into
/// `dst` where the element type holds the compute precision, into `terms`, at least `n` long,
/// for f16 / bf16), and once lse is known a second pass over the stored terms (from cache)
/// turns them into gradient entries. Bitwise equal to
/// [`row_forward`] followed by [`row_gradient`], which compute the same terms in the same order.
/// Returns `None`, having written nothing, for a row that is not regular or not on the cached
/// path (the caller then takes those two functions).
///
/// # Safety
/// As [`row_gradient`].
#[allow(clippy::too_many_arguments)]
#[cfg_attr(not(xent_unoptimized), inline(always))]
pub(crate) unsafe fn row_fused<S: Isa, E: Element>(
    isa: S,
    src: *const E,
    dst: *mut E,
    n: usize,
    t: usize,
    g: f64,
    p: &CeParams<E::Real>,
    terms: &mut [E::Terms],
) -> Option<RowForward> {
    let in_place = !row::terms_need_scratch::<E>();
    if !takes_cached_path::<E>(n, p) || !(in_place || terms.len() >= n) {
        return None;
    }
    // Where E is its own term type (f32, f64), E::Terms is E.
    let terms = if in_place {
        dst as *mut E::Terms
    } else {
        terms.as_mut_ptr()
    };
    let overwrites_logits = core::ptr::eq(src, dst as *const E);
    // In place, the three passes share the next row's hints (`NextRowHint::shared`): for f32
    // / f64 the maximum's scan takes the first quarter. Half-precision rows, bound by their
    // arithmetic, measured slower with it (docs/performance.md, section 26).
    let scan_quarters = if overwrites_logits && core::mem::size_of::<E>() != 2 {
        1
    } else {
        0
    };
    // SAFETY: src is valid for n elements; the slice is dropped before the first write.
    let (scan, gaps) = unsafe {
        let x = core::slice::from_raw_parts(src, n);
        let scan = RowScan::hinting(isa, x, t, scan_quarters);
        if !scan.regular(p) {
            return None;
        }
        (scan, smoothing_gaps(isa, x, scan.m, p))
    };
    let mut map = GradMap::<S, E>::new(isa, <E::Real as Real>::from_f64(scan.m), p);
    map.set_bounded(scan.low);
    map.hint = if overwrites_logits {
        NextRowHint::shared(n, scan_quarters, false)
    } else {
        NextRowHint::whole(n)
    };
    // SAFETY: the stretches lie inside the row and skip t; each term is stored where its
    // logit was just read.
    let s_others = unsafe { others_sum::<S, E, E::Terms, STORE>(&map, src, terms, n, t, None) };
    let fwd = finish_forward(&scan, map.reference, s_others, gaps, n, t, p);
    // A coarse lse: ln S from the sum just taken, as `row_gradient` sums it anew.
    let coarse =
        lse_is_coarse(fwd.lse).then(|| ln_sum_from(s_others, scan.xt, map.reference, p.sc.tau));
    let f = GradFactors::new(&map, t, n, fwd.lse, g, p, coarse);
    map.set_factors(&f);
    // In place, the rescale hints the rest of the next row; out of place, the gradient
    // buffer's next row, which the next exponential pass writes.
    if overwrites_logits {
        map.hint = NextRowHint::shared(n, scan_quarters, true);
    }
    let weights = if p.eps > 0.0 { p.weights } else { None };
    // SAFETY: as above; the stored terms are turned into gradient entries (in place where
    // `terms` is `dst`).
    unsafe {
        if weights.is_none() && entries_are_bounded::<E>(&f) {
            rescale_stretch::<S, E, false>(&map, terms, dst, 0, t, None);
            rescale_stretch::<S, E, false>(&map, terms, dst, t + 1, n, None);
        } else {
            rescale_stretch::<S, E, true>(&map, terms, dst, 0, t, weights);
            rescale_stretch::<S, E, true>(&map, terms, dst, t + 1, n, weights);
        }
        let others = s_others * f.shift;
        *dst.add(t) = E::from_f64(f.target_entry(others, scan.xt, p.sc.tau.inv));
    }
    Some(fwd)
}

/// Whether every gradient entry α·e − β of a row (no class weights) is finite: the stored
/// terms e lie below 2^(SCALE_SHIFT + 1) (at most e^0.35 · 2^SCALE_SHIFT from
/// `exp_from_base`, 2^SCALE_SHIFT from the exact form), so where the sum of
/// |α|·2^(SCALE_SHIFT + 1) and |β| is at most half the largest finite value of the compute
/// precision no entry overflows, and none is NaN. Such rows store their entries without a
/// NaN check (bfloat16's rounding has one: `Element::store_no_nan`).
#[cfg_attr(not(xent_unoptimized), inline(always))]
fn entries_are_bounded<E: Element>(f: &GradFactors) -> bool {
    let e_max = crate::simd::exp::pow2::<f64>(<E::Real as Real>::SCALE_SHIFT + 1);
    let bound = f.alpha.abs() * e_max + f.beta.abs();
    // Rounded to the compute precision, twice the bound is still finite (NaN fails too).
    <E::Real as Real>::from_f64(2.0 * bound)
        .to_f64()
        .is_finite()
}

/// Whether a row of `n` entries takes the cached path: a read-only pass for its maximum (and
/// NaN), then the exponentials relative to that maximum from cache. Unscaled rows that fit in
/// the L2 / L3 caches; scaled rows and longer ones keep the blocked online statistics.
#[cfg_attr(not(xent_unoptimized), inline(always))]
pub(crate) fn takes_cached_path<E: Element>(n: usize, p: &CeParams<E::Real>) -> bool {
    p.sc.is_identity() && n * core::mem::size_of::<E>() <= row::STORE_LIMIT_BYTES
}

/// The first read of a row on the cached path: the maxima left and right of the target (NaN
/// ignored, and recorded apart).
#[derive(Copy, Clone)]
struct RowScan {
    left: f64,
    right: f64,
    xt: f64,
    m: f64,
    /// A lower bound of the entries other than the target: their minimum for the half types,
    /// −inf for the others (`reduce::range_scan_hinting`).
    low: f64,
    nan: bool,
}

impl RowScan {
    #[cfg_attr(not(xent_unoptimized), inline(always))]
    fn new<S: Isa, E: Element>(isa: S, x: &[E], t: usize) -> RowScan {
        Self::hinting(isa, x, t, 0)
    }

    /// As [`RowScan::new`], hinting the first `quarters` quarters of the next row at that pace.
    #[cfg_attr(not(xent_unoptimized), inline(always))]
    fn hinting<S: Isa, E: Element>(isa: S, x: &[E], t: usize, quarters: usize) -> RowScan {
        let (n, p) = (x.len(), x.as_ptr());
        let (left, low_l, nan_l) = range_scan_hinting::<S, E, true>(
            isa,
            &x[..t],
            row::Lookahead::next_row(p, n, 0, 0, quarters),
        );
        let (right, low_r, nan_r) = range_scan_hinting::<S, E, true>(
            isa,
            &x[t + 1..],
            row::Lookahead::next_row(p, n, 0, t + 1, quarters),
        );
        let xt = x[t].to_f64();
        let (left, right) = (left.to_f64(), right.to_f64());
        let others = if left > right { left } else { right };
        RowScan {
            left,
            right,
            xt,
            m: if xt > others { xt } else { others },
            low: low_l.to_f64().min(low_r.to_f64()),
            nan: nan_l || nan_r || xt.is_nan(),
        }
    }

    #[cfg_attr(not(xent_unoptimized), inline(always))]
    fn regular<R: Real>(&self, p: &CeParams<R>) -> bool {
        self.m.is_finite() && !self.nan && !is_degenerate(R::from_f64(self.m), &p.sc)
    }

    /// Whether the target is the first maximal entry.
    #[cfg_attr(not(xent_unoptimized), inline(always))]
    fn correct(&self, t: usize) -> bool {
        !self.nan && (t == 0 || self.xt > self.left) && self.xt >= self.right
    }
}

/// Whether `t` is the first maximal entry of a row without NaN (by a scalar scan: the rows
/// the vector passes cannot decide, special ones and ties in a small batch).
pub(crate) fn first_max_is<E: Element>(row: &[E], t: usize) -> bool {
    let xt = row[t].to_f64();
    !row.iter().any(|v| v.to_f64().is_nan())
        && row[..t].iter().all(|v| v.to_f64() < xt)
        && row[t + 1..].iter().all(|v| v.to_f64() <= xt)
}

/// Σ_j w_j (M − x_j)·GAP_SCALE when label smoothing is on (0 otherwise).
#[cfg_attr(not(xent_unoptimized), inline(always))]
fn smoothing_gaps<S: Isa, E: Element>(isa: S, x: &[E], m: f64, p: &CeParams<E::Real>) -> f64 {
    let mut total = 0.0;
    if p.eps > 0.0 {
        for k in 0..x.len().div_ceil(row::SEGMENT) {
            total += segment_gaps(isa, x, k, m, p);
        }
    }
    total
}

/// Segment `k`'s share of [`smoothing_gaps`] (`row::SEGMENT` entries): the shares are summed
/// in segment order, serially or, for one huge row, from parallel tasks.
#[cfg_attr(not(xent_unoptimized), inline(always))]
pub(crate) fn segment_gaps<S: Isa, E: Element>(
    isa: S,
    x: &[E],
    k: usize,
    m: f64,
    p: &CeParams<E::Real>,
) -> f64 {
    let (start, end) = (k * row::SEGMENT, ((k + 1) * row::SEGMENT).min(x.len()));
    let w = p.weights.map(|w| &w[start..end]);
    weighted_gaps(isa, &x[start..end], <E::Real as Real>::from_f64(m), w)
}

/// The scalars of a row's gradient: entry j is α·e_j − β·w_j with e_j the scaled term of
/// [`GradMap`], and p_j = e_j · 2^-SCALE_SHIFT · shift.
struct GradFactors {
    a: f64,
    b_t: f64,
    scale: f64,
    /// lse − reference/τ (tiny), with the reference's scaling error.
    r: f64,
    shift: f64,
    alpha: f64,
    beta: f64,
    reference: f64,
}

impl GradFactors {
    /// `coarse_ln_sum`: for rows whose lse is coarse, ln Σ_j e^((x_j − reference)/τ) from the
    /// row itself ([`coarse_ln_sum`]), which lse no longer carries.
    #[cfg_attr(not(xent_unoptimized), inline(always))]
    fn new<S: Isa, E: Element>(
        map: &GradMap<S, E>,
        t: usize,
        n: usize,
        lse: f64,
        g: f64,
        p: &CeParams<E::Real>,
        coarse_ln_sum: Option<f64>,
    ) -> GradFactors {
        let tau = p.sc.tau;
        let (a, b_t) = p.coefficients(t, n, lse);
        // p_j = e^((x_j − m)/τ) · e^−r with r = lse − m/τ (tiny), m/τ formed with its error.
        let mf = map.reference;
        let q = mf * tau.inv;
        let q_err = mf.mul_add(tau.inv, -q) + mf * tau.inv_lo;
        let r = match coarse_ln_sum {
            Some(ln_sum) => ln_sum,
            None => (lse - q) - q_err,
        };
        let shift = (-r).exp();
        let scale = g * tau.inv;
        GradFactors {
            a,
            b_t,
            scale,
            r,
            shift,
            alpha: scale * a * shift * unscale::<E>(),
            beta: scale * p.eps / n as f64,
            reference: mf,
        }
    }

    /// The target's entry from Σ_{j≠t} p_j: −B_t (1 − p_t) + (A − B_t) p_t without forming
    /// 1 − p_t.
    #[cfg_attr(not(xent_unoptimized), inline(always))]
    fn target_entry(&self, others: f64, xt: f64, inv_tau: f64) -> f64 {
        let p_t = ((xt - self.reference) * inv_tau - self.r).exp();
        self.scale * (-self.b_t * others + (self.a - self.b_t) * p_t)
    }
}

/// From this |lse| on, its f64 rounding (≥ 2^-13) exceeds what the gradient's probabilities,
/// p_j = e^((x_j − m)/τ − (lse − m/τ)), can absorb (at |lse| ≈ 2^60 it is 128: every p_j off
/// by e^128). Such rows take ln S from the row itself, relative to its maximum, in an extra
/// summing pass (`backward` and the fused kernels alike, so that they still agree bitwise).
pub(crate) const LSE_COARSE: f64 = (1u64 << 40) as f64;

#[cfg_attr(not(xent_unoptimized), inline(always))]
fn lse_is_coarse(lse: f64) -> bool {
    lse.abs() >= LSE_COARSE
}

/// ln Σ_j e^((x_j − reference)/τ) of a row with finite maximum, from `s_others`, the sum
/// without the target (as the cross-entropy passes sum it), and the target's own term.
#[cfg_attr(not(xent_unoptimized), inline(always))]
fn ln_sum_from(s_others: f64, xt: f64, reference: f64, tau: Tau) -> f64 {
    (s_others + Stats::weight(xt, reference, tau)).ln()
}

/// ln Σ_j e^((x_j − reference)/τ) of a regular row, summed anew (rows whose lse is coarse).
/// The map takes the exact form there: |m| ≥ LSE_COARSE·τ − ln n is far beyond the base's grid
/// limit, and τ = 1 wherever the base is used.
///
/// # Safety
/// `src` valid for reading `n` elements; `t < n`.
#[cfg_attr(not(xent_unoptimized), inline(always))]
unsafe fn coarse_ln_sum<S: Isa, E: Element>(
    map: &GradMap<S, E>,
    src: *const E,
    n: usize,
    t: usize,
    xt: f64,
    p: &CeParams<E::Real>,
) -> f64 {
    // SAFETY: forwarded; SUM writes nothing.
    let s_others =
        unsafe { others_sum::<S, E, E, SUM>(map, src, core::ptr::null_mut(), n, t, None) };
    ln_sum_from(s_others, xt, map.reference, p.sc.tau)
}

/// e^((x − m)/τ) · 2^SCALE_SHIFT and the gradient entry α·e − β_j.
struct GradMap<S: Isa, E: Element> {
    isa: S,
    /// Terms are e^((x − reference)/τ): the base c ≈ m of `exp_from_base` where the row is
    /// unscaled and |m| small enough (`fast`), m itself otherwise.
    reference: f64,
    fast: bool,
    /// On the base form, every entry lies at or above the reference + `exp::bounded_floor`
    /// (the scan's minimum shows it for half-precision rows): the exponential needs neither
    /// its clamp nor its zeroing. Set by the caller.
    bounded: bool,
    /// Which lines of the next row a pass over this one hints.
    hint: NextRowHint,
    /// The two forms of the term (the row kernels' own): relative to the base, and exact.
    base: BaseTerm<S, E>,
    exact: ExpTerm<S, E, true, true>,
    alpha: VecOf<S, E>,
    neg_beta: VecOf<S, E>,
}

impl<S: Isa, E: Element> GradMap<S, E> {
    /// The terms of a row whose entries are all ≤ m.
    #[cfg_attr(not(xent_unoptimized), inline(always))]
    fn new(isa: S, m: E::Real, p: &CeParams<E::Real>) -> Self {
        let k = if p.sc.is_identity() {
            exp_base::<E::Real>(m.to_f64())
        } else {
            None
        };
        let zero = <E::Real as Real>::ZERO;
        GradMap {
            isa,
            reference: k.map_or(m.to_f64(), base_value),
            fast: k.is_some(),
            bounded: false,
            hint: NextRowHint::NONE,
            base: BaseTerm::new(isa, k.unwrap_or(zero)),
            exact: ExpTerm::new(isa, m, &p.sc),
            alpha: splat::<S, E>(isa, zero),
            neg_beta: splat::<S, E>(isa, zero),
        }
    }

    #[cfg_attr(not(xent_unoptimized), inline(always))]
    fn set_factors(&mut self, f: &GradFactors) {
        self.alpha = splat::<S, E>(self.isa, <E::Real as Real>::from_f64(f.alpha));
        self.neg_beta = splat::<S, E>(self.isa, <E::Real as Real>::from_f64(-f.beta));
    }

    /// Whether the row's entries, all at least `low`, let the base form drop its zeroing.
    #[cfg_attr(not(xent_unoptimized), inline(always))]
    fn set_bounded(&mut self, low: f64) {
        self.bounded = self.fast && low - self.reference >= exp::bounded_floor::<E::Real>();
    }

    #[cfg_attr(not(xent_unoptimized), inline(always))]
    fn term<const EXACT: bool>(&self, x: VecOf<S, E>) -> VecOf<S, E> {
        // Scaled rows, and |m| too large for the grid, take the exact form (τ = 1 in the
        // scaled form where unscaled).
        if EXACT {
            self.exact.apply(x)
        } else {
            self.base.apply(x)
        }
    }

    /// Four terms on the base form (the cached path's rounds of four vectors); `BOUNDED`: as
    /// `exp::exp_from_base`, where `bounded` holds.
    #[cfg_attr(not(xent_unoptimized), inline(always))]
    fn term_quad<const BOUNDED: bool>(&self, v: [VecOf<S, E>; 4]) -> [VecOf<S, E>; 4] {
        self.base.apply_quad_in::<BOUNDED>(v)
    }

    #[cfg_attr(not(xent_unoptimized), inline(always))]
    fn term_pair<const EXACT: bool, const BOUNDED: bool>(
        &self,
        a: VecOf<S, E>,
        b: VecOf<S, E>,
    ) -> (VecOf<S, E>, VecOf<S, E>) {
        if EXACT {
            self.exact.apply_pair(a, b)
        } else {
            self.base.apply_pair_in::<BOUNDED>(a, b)
        }
    }
}

/// On the cached path each pass over a row also hints lines of the next row (rows are
/// contiguous), so that the next row's first read overlaps this row's arithmetic. A round
/// over elements `[i, i + count)` hints the `count` elements of the next row from
/// `from + i · quarters / 4` on: a pass hints the whole row (`quarters` 4) or shares it with
/// the other passes (in place: 1 + 2 + 1 quarters for f32 / f64, 0 + 3 + 1 for halves),
/// spreading the reads over more of the row's time (memory serves the hints at its own pace:
/// bunched into one pass, they queue). A shared pass hints some lines more than once; the
/// extra hints find them in flight or cached, and the hint count per round stays a constant,
/// unrolled.
#[derive(Clone, Copy)]
struct NextRowHint {
    /// Elements from this row to the next; 0: no hints.
    ahead: usize,
    /// The first element of the next row this pass hints.
    from: usize,
    /// How fast the hinted elements advance, in quarters of the pass's pace.
    quarters: usize,
}

impl NextRowHint {
    const NONE: Self = NextRowHint {
        ahead: 0,
        from: 0,
        quarters: 0,
    };

    /// The whole next row, `n` elements on.
    fn whole(n: usize) -> Self {
        NextRowHint {
            ahead: n,
            from: 0,
            quarters: 4,
        }
    }

    /// In place, after the maximum's scan has hinted the first `scan` quarters of the next
    /// row (0 or 1): the quarters up to the last for the exponential pass, the last one for
    /// the rescale. The exponential pass takes about three quarters of the time of the two
    /// passes over a cached row, the rescale one quarter (docs/performance.md, sections 24
    /// and 26).
    fn shared(n: usize, scan: usize, second: bool) -> Self {
        NextRowHint {
            ahead: n,
            from: n / 4 * if second { 3 } else { scan },
            quarters: if second { 1 } else { 3 - scan },
        }
    }

    /// Hints the next row's lines for the round over elements `[i, i + count)` of a pass over
    /// the row starting at `row`.
    #[cfg_attr(not(xent_unoptimized), inline(always))]
    fn at<S: Isa, T>(self, isa: S, row: *const T, i: usize, count: usize) {
        if self.ahead != 0 {
            let first = self.ahead + self.from + i * self.quarters / 4;
            row::prefetch_elems_far(isa, row.wrapping_add(first), count);
        }
    }
}

/// What a pass over a row's terms does besides summing them.
const SUM: u8 = 0;
/// ... stores each term into `dst`.
const STORE: u8 = 1;
/// ... stores each gradient entry α·e − β_j into `dst`.
const GRAD: u8 = 2;

/// Σ_{j≠t} e_j · 2^-SCALE_SHIFT over a row, doing `MODE`: the shares of its segments
/// ([`segment_others`]) summed in order. Every mode sums the same terms in the same order, so
/// the forward pass, the fused pass and `backward` agree bitwise, and so does one huge row's
/// gradient run segment by segment in parallel.
///
/// # Safety
/// `src` valid for reading `n` elements; unless `MODE == SUM`, `dst` valid for writing them
/// (equal to `src` or disjoint); `t < n`; `weights`, when given, has `n` entries.
#[cfg_attr(not(xent_unoptimized), inline(always))]
unsafe fn others_sum<S: Isa, E: Element, D: Element<Real = E::Real>, const MODE: u8>(
    f: &GradMap<S, E>,
    src: *const E,
    dst: *mut D,
    n: usize,
    t: usize,
    weights: Option<&[E::Real]>,
) -> f64 {
    let mut total = 0.0;
    for k in 0..n.div_ceil(row::SEGMENT) {
        // SAFETY: forwarded.
        total += unsafe { segment_others::<S, E, D, MODE>(f, src, dst, n, t, k, weights) };
    }
    total * unscale::<E>()
}

/// Σ e_j (scaled by 2^SCALE_SHIFT) over segment `k` of a row (`row::SEGMENT` entries), the
/// target left out, doing `MODE`: the stretches before and after the target.
///
/// # Safety
/// As [`others_sum`].
#[cfg_attr(not(xent_unoptimized), inline(always))]
unsafe fn segment_others<S: Isa, E: Element, D: Element<Real = E::Real>, const MODE: u8>(
    f: &GradMap<S, E>,
    src: *const E,
    dst: *mut D,
    n: usize,
    t: usize,
    k: usize,
    weights: Option<&[E::Real]>,
) -> f64 {
    let (start, end) = (k * row::SEGMENT, ((k + 1) * row::SEGMENT).min(n));
    // One call site in a loop: the stretch is inlined (target features), and this keeps one
    // copy of it per mode.
    let mut parts = [0.0; 2];
    let stretches = [
        (start, end.min(t).max(start)),
        ((t + 1).max(start).min(end), end),
    ];
    for (k, (a, b)) in stretches.into_iter().enumerate() {
        // SAFETY: forwarded; the stretches lie inside the segment.
        parts[k] = unsafe { stretch::<S, E, D, MODE>(f, src, dst, a, b, weights) };
    }
    parts[0] + parts[1]
}

/// # Safety
/// As [`others_sum`], with `start <= end <= n`.
#[cfg_attr(not(xent_unoptimized), inline(always))]
unsafe fn stretch<S: Isa, E: Element, D: Element<Real = E::Real>, const MODE: u8>(
    f: &GradMap<S, E>,
    src: *const E,
    dst: *mut D,
    start: usize,
    end: usize,
    weights: Option<&[E::Real]>,
) -> f64 {
    // Only the half types' scan finds the bound, and only the fused pass (STORE) takes it:
    // one more copy of the loop for those, none for the others.
    let bounded = E::HALF_INF_BITS.is_some() && MODE == STORE && f.bounded;
    // SAFETY: forwarded.
    unsafe {
        if bounded {
            stretch_impl::<S, E, D, false, true, MODE>(f, src, dst, start, end, weights)
        } else if f.fast {
            stretch_impl::<S, E, D, false, false, MODE>(f, src, dst, start, end, weights)
        } else {
            stretch_impl::<S, E, D, true, false, MODE>(f, src, dst, start, end, weights)
        }
    }
}

#[cfg_attr(not(xent_unoptimized), inline(always))]
unsafe fn stretch_impl<
    S: Isa,
    E: Element,
    D: Element<Real = E::Real>,
    const EXACT: bool,
    const BOUNDED: bool,
    const MODE: u8,
>(
    f: &GradMap<S, E>,
    src: *const E,
    dst: *mut D,
    start: usize,
    end: usize,
    weights: Option<&[E::Real]>,
) -> f64 {
    let lanes = VecOf::<S, E>::LANES;
    let isa = f.isa;
    let ninf = <E::Real as Real>::NEG_INFINITY;
    let zero = splat::<S, E>(isa, <E::Real as Real>::ZERO);
    let w_ptr = weights.map_or(core::ptr::null(), |w| w.as_ptr());
    // SAFETY (for the closure-free helper below): i + len <= end <= n; src/dst valid for n
    // elements, weights for n entries.
    #[cfg_attr(not(xent_unoptimized), inline(always))]
    unsafe fn sink<S: Isa, E: Element, D: Element<Real = E::Real>, const MODE: u8>(
        f: &GradMap<S, E>,
        e: VecOf<S, E>,
        dst: *mut D,
        w_ptr: *const E::Real,
        i: usize,
        len: usize,
    ) {
        // SAFETY: forwarded.
        unsafe {
            if MODE == STORE {
                store_elems::<S, D>(e, dst.add(i), len);
            } else if MODE == GRAD {
                let nb = neg_beta(f, w_ptr, i, len);
                store_elems::<S, D>(e.mul_add(f.alpha, nb), dst.add(i), len);
            }
        }
    }
    // One accumulator, flushed to f64 every 16 terms per lane, as the row statistics do.
    let mut sum = LaneSum::new(isa, zero);
    let mut i = start;
    // Rounds of four vectors where the base form applies (more independent work in the
    // scheduler's window), then pairs.
    if !EXACT {
        while i + 4 * lanes <= end {
            f.hint.at(isa, src, i, 4 * lanes);
            // SAFETY: i + 4·lanes <= end.
            unsafe {
                let e = f.term_quad::<BOUNDED>([
                    E::load(isa, src.add(i)),
                    E::load(isa, src.add(i + lanes)),
                    E::load(isa, src.add(i + 2 * lanes)),
                    E::load(isa, src.add(i + 3 * lanes)),
                ]);
                for (k, &v) in e.iter().enumerate() {
                    sink::<S, E, D, MODE>(f, v, dst, w_ptr, i + k * lanes, lanes);
                }
                sum.add(e[0].add(e[1]).add(e[2].add(e[3])), 4);
            }
            i += 4 * lanes;
        }
    }
    while i + 2 * lanes <= end {
        f.hint.at(isa, src, i, 2 * lanes);
        // SAFETY: i + 2·lanes <= end.
        unsafe {
            let (e0, e1) = f.term_pair::<EXACT, BOUNDED>(
                E::load(isa, src.add(i)),
                E::load(isa, src.add(i + lanes)),
            );
            sink::<S, E, D, MODE>(f, e0, dst, w_ptr, i, lanes);
            sink::<S, E, D, MODE>(f, e1, dst, w_ptr, i + lanes, lanes);
            sum.add(e0.add(e1), 2);
        }
        i += 2 * lanes;
    }
    while i < end {
        let len = lanes.min(end - i);
        // SAFETY: i + len <= end. Padding lanes hold x = −inf (e = 0), and are not stored;
        // they lie below any bound, so the last vector keeps the clamp and the zeroing.
        unsafe {
            let e = f.term::<EXACT>(load_elems(isa, src.add(i), len, ninf));
            sink::<S, E, D, MODE>(f, e, dst, w_ptr, i, len);
            sum.add(e, 1);
        }
        i += len;
    }
    sum.value()
}

/// −β·w_j for the `len` entries at `i` (−β without weights: `w_ptr` null).
///
/// # Safety
/// When not null, `w_ptr` valid for reading entries `i .. i + len`.
#[cfg_attr(not(xent_unoptimized), inline(always))]
unsafe fn neg_beta<S: Isa, E: Element>(
    f: &GradMap<S, E>,
    w_ptr: *const E::Real,
    i: usize,
    len: usize,
) -> VecOf<S, E> {
    if !w_ptr.is_null() {
        // SAFETY: forwarded.
        unsafe { load_weights::<S, E>(f.isa, w_ptr.add(i), len).mul(f.neg_beta) }
    } else {
        f.neg_beta
    }
}

/// Turns the terms stored over `[start, end)` into gradient entries α·e − β_j.
///
/// # Safety
/// `terms` valid for reading and `dst` for writing `end` elements (the same memory, or
/// disjoint); `weights`, when given, has `end` or more entries.
#[cfg_attr(not(xent_unoptimized), inline(always))]
unsafe fn rescale_stretch<S: Isa, E: Element, const NAN: bool>(
    f: &GradMap<S, E>,
    terms: *const E::Terms,
    dst: *mut E,
    start: usize,
    end: usize,
    weights: Option<&[E::Real]>,
) {
    let w_ptr = weights.map_or(core::ptr::null(), |w| w.as_ptr());
    let lanes = VecOf::<S, E>::LANES;
    let zero = <E::Real as Real>::ZERO;
    let isa = f.isa;
    let mut i = start;
    // Whole vectors two per round, then the tail.
    while i + 2 * lanes <= end {
        f.hint.at(isa, dst, i, 2 * lanes);
        // SAFETY: i + 2·lanes <= end; forwarded validity.
        unsafe {
            let e0 = E::Terms::load(isa, terms.add(i));
            let e1 = E::Terms::load(isa, terms.add(i + lanes));
            let nb0 = neg_beta(f, w_ptr, i, lanes);
            let nb1 = neg_beta(f, w_ptr, i + lanes, lanes);
            let (g0, g1) = (e0.mul_add(f.alpha, nb0), e1.mul_add(f.alpha, nb1));
            E::store_pair::<S, NAN>(isa, g0, g1, dst.add(i));
        }
        i += 2 * lanes;
    }
    while i < end {
        let len = lanes.min(end - i);
        // SAFETY: i + len <= end; forwarded validity.
        unsafe {
            let e = load_elems(isa, terms.add(i), len, zero);
            let nb = neg_beta(f, w_ptr, i, len);
            store_elems::<S, E>(e.mul_add(f.alpha, nb), dst.add(i), len);
        }
        i += len;
    }
}

/// The gradient of a row that is not regular (scalar): p from the special-value rules.
///
/// # Safety
/// As [`row_gradient`].
#[cold]
unsafe fn special_gradient<E: Element, R: Real>(
    src: *const E,
    dst: *mut E,
    n: usize,
    t: usize,
    g: f64,
    p: &CeParams<R>,
) {
    let tau = p.sc.tau;
    // SAFETY: src valid for n elements; the slice is dropped before the writes below.
    let sp = SpecialRow::scan(unsafe { core::slice::from_raw_parts(src, n) }, tau.inv);
    let (a, b_t) = p.coefficients(t, n, sp.lse);
    let smooth = p.eps / n as f64;
    let scale = g * tau.inv;
    // SAFETY: t < n.
    let p_t = sp.prob(unsafe { *src.add(t) }.to_f64());
    let mut others = 0.0;
    for j in 0..n {
        if j == t {
            continue;
        }
        // SAFETY: j < n; each entry is read before it is written.
        unsafe {
            let pj = sp.prob((*src.add(j)).to_f64());
            others += pj;
            *dst.add(j) = E::from_f64(scale * (a * pj - smooth * p.weight(j)));
        }
    }
    let value = if sp.nan {
        f64::NAN
    } else if sp.max == f64::NEG_INFINITY {
        // The all-zero softmax of an all −inf row does not sum to 1: p − one-hot directly.
        scale * (a * p_t - b_t)
    } else {
        scale * (-b_t * others + (a - b_t) * p_t)
    };
    // SAFETY: t < n.
    unsafe { *dst.add(t) = E::from_f64(value) };
}

/// `out[i] = body` over the first `rows` entries of per-row arrays (`rows` a multiple of
/// `S::F64::LANES`), one f64 vector of rows at a time: inside `body` each named array stands
/// for its vector. (A macro, not a function taking a closure: closures are not compiled with
/// the dispatched target features, so their intrinsics would become calls.)
macro_rules! rows_f64 {
    ($isa:expr, $rows:expr, [$($x:ident),+] => $out:expr, $body:expr) => {{
        let w = <S::F64 as FloatVec>::LANES;
        let out: *mut f64 = $out.as_mut_ptr();
        let mut i = 0;
        while i + w <= $rows {
            // SAFETY: i + w ≤ rows ≤ BATCH_MAX, the length of every array.
            $(let $x = unsafe { S::F64::load($isa, $x.as_ptr().add(i)) };)+
            let v: S::F64 = $body;
            // SAFETY: as above.
            unsafe { v.store(out.add(i)) };
            i += w;
        }
    }};
}

/// Most rows one small batch holds (the widest vector's lane count).
pub(crate) const BATCH_MAX: usize = 16;

/// The compute-precision values a small batch keeps its exponentials in (not in `dst`: a
/// half-precision gradient buffer could not hold them, and in place they would overwrite
/// logits still to be read).
pub(crate) const fn small_scratch_len(lanes: usize) -> usize {
    lanes * row::SMALL_VECTORS * lanes
}

/// One row of a small batch.
#[derive(Copy, Clone)]
pub(crate) struct SmallRow<E> {
    pub src: *const E,
    /// Null when no gradient is wanted.
    pub dst: *mut E,
    /// The target class (< n).
    pub t: usize,
    /// The saved log-sum-exp (backward only).
    pub saved_lse: f64,
    /// The gradient's scale for this row.
    pub g: f64,
}

/// Rows of at most `row::SMALL_VECTORS` vectors (a classifier's classes, the seed's 20-token
/// vocabulary), `LANES` rows at a time, **column-major**: the batch is transposed on the way in
/// (`FloatVec::transpose`, one `LANES × LANES` tile per vector of the rows, or a tile of four
/// columns at the end: `row::SmallShape`) so that vector j holds column j of every row, one row per
/// lane. Every per-row step (maximum, NaN screen, first maximal column, target term, the sums, the
/// gradient's coefficients) is then one vector operation for the whole batch, and each entry costs
/// one exponential that serves the loss and the gradient (kept in `scratch`, in L1). The gradient
/// is transposed back and stored row by row. The per-row scalar work left is one logarithm and one
/// exponential, both in f64 vectors across rows.
///
/// Forward (`forward == true`) fills entry i of `out` with row i's results; with `dst` not
/// null it also writes the gradient. Backward recomputes the same exponentials and writes the
/// gradient from the saved lse: the gradient is p_j = e_j · e^(M/τ − lse) in both, so the two
/// agree bitwise; lanes never mix, so the arithmetic of a row does not depend on the other
/// rows of its batch.
///
/// Returns a bit mask of the rows left for the general path (a maximum that is not finite or
/// is degenerate, NaN): nothing of theirs was read past the first pass or written.
///
/// # Safety
/// For every row: `src` valid for reading `n` elements, `dst` null (for all rows, or for
/// none) or valid for writing `n` elements (equal to `src` or disjoint from every row), rows
/// disjoint; `0 < n ≤ SMALL_VECTORS · LANES`, `t < n`; `rows.len() ≥ LANES`, of which the
/// first `0 < count ≤ LANES` are computed (the others only read, and must be valid rows);
/// `scratch.len() ≥ small_scratch_len(LANES)`.
#[allow(clippy::too_many_arguments)]
#[cfg_attr(not(xent_unoptimized), inline(always))]
pub(crate) unsafe fn small_batch<S: Isa, E: Element>(
    isa: S,
    rows: &[SmallRow<E>],
    count: usize,
    n: usize,
    forward: bool,
    p: &CeParams<E::Real>,
    out: &mut BatchForward,
    scratch: &mut [E::Real],
) -> u32 {
    // SAFETY: forwarded.
    unsafe {
        if p.sc.is_identity() {
            small_batch_impl::<S, E, false>(isa, rows, count, n, forward, p, out, scratch)
        } else {
            small_batch_impl::<S, E, true>(isa, rows, count, n, forward, p, out, scratch)
        }
    }
}

#[allow(clippy::too_many_arguments)]
#[cfg_attr(not(xent_unoptimized), inline(always))]
unsafe fn small_batch_impl<S: Isa, E: Element, const SCALED: bool>(
    isa: S,
    rows: &[SmallRow<E>],
    count: usize,
    n: usize,
    forward: bool,
    p: &CeParams<E::Real>,
    out: &mut BatchForward,
    scratch: &mut [E::Real],
) -> u32 {
    const K: usize = row::SMALL_VECTORS;
    type V<S, E> = VecOf<S, E>;
    let lanes = V::<S, E>::LANES;
    debug_assert!(lanes <= BATCH_MAX && count > 0 && count <= lanes && rows.len() >= lanes);
    debug_assert!(n > 0 && n <= K * lanes);
    let real = <E::Real as Real>::from_f64;
    // Lanes past `count` compute on whatever valid rows the caller left there, and rows found
    // special run on through the vector code too, so every lane runs the same code: their
    // results are dropped and nothing of theirs is written.
    let batch = &rows[..lanes];
    // Column j of the batch (later its exponentials) at j·LANES.
    let columns = scratch[..K * lanes * lanes].as_mut_ptr();

    // In: the batch transposed to columns (nothing written yet), and each row's maximum.
    let mut srcs = [core::ptr::null::<E>(); BATCH_MAX];
    for (s, row) in srcs.iter_mut().zip(batch) {
        *s = row.src;
    }
    // SAFETY: every row is valid for n elements; `columns` holds K·LANES columns.
    let max = unsafe { row::load_columns::<S, E>(isa, &srcs[..lanes], n, columns) };
    let mut m = [<E::Real as Real>::ZERO; BATCH_MAX];
    // SAFETY: BATCH_MAX ≥ LANES.
    unsafe { max.store(m.as_mut_ptr()) };
    // Rows whose maximum is ordinary (|M| ≤ bound) get their exponential's input floor from
    // one vector addition; the others take the scalar checks (see `row::QuickFloor`).
    let quick = row::QuickFloor::new(&p.sc);
    let minus_one = splat::<S, E>(isa, real(-1.0));
    let neg_max = max.mul(minus_one);
    let ordinary = splat::<S, E>(isa, quick.bound).ge(max.max(neg_max));
    let mut floor = max.add(splat::<S, E>(isa, quick.step));
    let mut special = 0u32;
    let unusual = !V::<S, E>::mask_bits(ordinary) & ((1u32 << count) - 1);
    if unusual != 0 {
        let mut floors = [<E::Real as Real>::ZERO; BATCH_MAX];
        // SAFETY: BATCH_MAX ≥ LANES.
        unsafe { floor.store(floors.as_mut_ptr()) };
        for (r, (&mr, floor)) in m.iter().zip(&mut floors).enumerate().take(count) {
            if unusual >> r & 1 == 0 {
                continue;
            }
            let finite = mr > <E::Real as Real>::NEG_INFINITY && mr < <E::Real as Real>::INFINITY;
            if !finite || is_degenerate(mr, &p.sc) {
                special |= 1 << r;
            } else {
                *floor = row::input_floor(mr.to_f64(), &p.sc);
            }
        }
        // SAFETY: as above.
        floor = unsafe { V::<S, E>::load(isa, floors.as_ptr()) };
    }
    let mut special = special & ((1u32 << count) - 1);
    if special == (1u32 << count) - 1 {
        return special;
    }
    // Label smoothing's Σ w_j (M − x_j), while the logits are still there (in place).
    let mut gaps = [0.0f64; BATCH_MAX];
    if forward && p.eps > 0.0 {
        for r in 0..count {
            // SAFETY: src is valid for n elements, not yet written.
            let x = unsafe { core::slice::from_raw_parts(batch[r].src, n) };
            gaps[r] = weighted_gaps(isa, x, m[r], p.weights);
        }
    }

    // The targets' logits as a vector, and −inf in their place: the column pass then sums
    // the other terms without a select per column (the target's term is an exact 0 there) and
    // finds the row's other maximal columns; the target's own term comes from this vector, by
    // the same map, so it is the value the column would have held.
    let mut x_target_real = [<E::Real as Real>::ZERO; BATCH_MAX];
    for (r, (xt, row)) in x_target_real.iter_mut().zip(batch).enumerate() {
        // SAFETY: t < n, r < LANES.
        unsafe {
            let entry = columns.add(row.t * lanes + r);
            *xt = *entry;
            *entry = <E::Real as Real>::NEG_INFINITY;
        }
    }
    // SAFETY: BATCH_MAX ≥ LANES.
    let xt_v = unsafe { V::<S, E>::load(isa, x_target_real.as_ptr()) };
    let mut x_target = [0.0f64; BATCH_MAX];
    for (x, xt) in x_target.iter_mut().zip(&x_target_real) {
        *x = xt.to_f64();
    }

    // The exponentials, relative to each row's reference: its maximum, or for unscaled f32
    // rows (|M| < half of BASE_LIMIT) the base c ≈ M of `exp_from_base`, whose argument needs
    // no TwoSum (five fewer operations per vector), the same c as on the general path.
    let base_limit = <E::Real as Real>::BASE_LIMIT / 2.0;
    let wanted = !special & ((1u32 << count) - 1);
    let base_path = !SCALED
        && <E::Real as Real>::MANTISSA_DIGITS == f32::MANTISSA_DIGITS
        && V::<S, E>::mask_bits(max.max(neg_max).lt(splat::<S, E>(isa, real(base_limit)))) & wanted
            == wanted;
    let want_grad = !rows[0].dst.is_null();
    let sums = if base_path {
        // k = round(M·log2 e), rounded as `exp_base` rounds it: the product is below 2^(p−2),
        // where adding and subtracting 1.5·2^(p−1) rounds to an integer (ties to even); the
        // floor c + EXP_ZERO_SCALE_ARG is rounded once in the fma, as `BaseTerm::new` rounds it.
        let digits = <E::Real as Real>::MANTISSA_DIGITS as i32;
        let round = splat::<S, E>(isa, real(1.5 * pow2::<f64>(digits - 1)));
        let k = max
            .mul(splat::<S, E>(isa, <E::Real as Real>::LOG2E))
            .add(round)
            .sub(round);
        let floor = k.mul_add(
            splat::<S, E>(isa, <E::Real as Real>::BASE_LN2_HI),
            splat::<S, E>(isa, <E::Real as Real>::EXP_ZERO_SCALE_ARG),
        );
        let term = BaseTerm::<S, E>::per_lane(isa, floor, k);
        // SAFETY: forwarded (the columns were written above, up to `padded`).
        let sums = unsafe { column_sums::<S, E, _>(isa, &term, columns, n, xt_v, max) };
        (sums, Some(k))
    } else {
        let term = row::ExpTerm::<S, E, SCALED, true>::per_lane(isa, max, neg_max, floor, &p.sc);
        // SAFETY: as above.
        let sums = unsafe { column_sums::<S, E, _>(isa, &term, columns, n, xt_v, max) };
        (sums, None)
    };
    let (
        ColumnSums {
            mut s_others,
            mut e_target,
            other_max,
            nan,
        },
        base_k,
    ) = sums;
    // A NaN anywhere in a row reached its sums or its target's term: such rows take the
    // general path.
    special |= nan & ((1u32 << count) - 1);
    if special == (1u32 << count) - 1 {
        return special;
    }

    // The per-row scalar steps, as f64 vectors across the batch's rows.
    let tau = p.sc.tau;
    let mut mf = [0.0f64; BATCH_MAX];
    max.add_lanes_f64(&mut mf);
    // The reference of the terms: the base c = k·BASE_LN2_HI (exact in f64), or the maximum.
    let mut rf = mf;
    if let Some(k) = base_k {
        let mut kf = [0.0f64; BATCH_MAX];
        k.add_lanes_f64(&mut kf);
        for (rf, &k) in rf.iter_mut().zip(&kf) {
            *rf = k * <E::Real as Real>::BASE_LN2_HI.to_f64();
        }
    }
    let unscale = S::F64::splat(isa, unscale::<E>());
    rows_f64!(isa, lanes, [s_others] => s_others, s_others.mul(unscale));
    rows_f64!(isa, lanes, [e_target] => e_target, e_target.mul(unscale));
    let mut wt = [1.0f64; BATCH_MAX];
    if let Some(w) = p.weights_f64 {
        for (wt, row) in wt.iter_mut().zip(batch) {
            *wt = w[row.t];
        }
    }
    let inv = S::F64::splat(isa, tau.inv);
    let zero64 = S::F64::splat(isa, 0.0);
    let ce_coeff = S::F64::splat(isa, 1.0 - p.eps);
    let mut lse = [0.0f64; BATCH_MAX];
    if forward {
        // −ln p_t and ln S: for the whole batch at once where the compute precision is f32 (a
        // vector logarithm accurate far beyond it), per row in f64 otherwise.
        let mut nll = [0.0f64; BATCH_MAX];
        let mut ln_s = [0.0f64; BATCH_MAX];
        if <E::Real as Real>::MANTISSA_DIGITS == f32::MANTISSA_DIGITS {
            let sums = NllSums {
                s_others: &s_others,
                e_target: &e_target,
                max: &mf,
                reference: &rf,
                x_target: &x_target,
            };
            batch_nll_f32(isa, lanes, sums, tau.inv, &mut nll, &mut ln_s);
        } else {
            for r in 0..count {
                let (s_o, e_t, xt) = (s_others[r], e_target[r], x_target[r]);
                (nll[r], ln_s[r]) = if xt == mf[r] {
                    // e_t = 1 exactly: ln S = ln(1 + S_other) keeps its accuracy as p_t → 1.
                    let l = s_o.ln_1p();
                    (l, l)
                } else {
                    // x_t < M, so p_t ≤ 1/2: no cancellation.
                    let l = (s_o + e_t).ln();
                    (scaled_gap_f64(mf[r], xt, tau.inv) + l, l)
                };
            }
        }
        rows_f64!(isa, lanes, [rf, ln_s] => lse, rf.mul(inv).add(ln_s));
        rows_f64!(isa, lanes, [wt, nll] => out.ce, coeff_mul_vec(ce_coeff.mul(wt), nll, zero64));
        if p.eps > 0.0 {
            for r in 0..count {
                // ln S relative to the maximum, as the gaps are.
                let ln_s_max = ln_s[r] + (rf[r] - mf[r]) * tau.inv;
                out.ce[r] += smoothing_term(gaps[r], p, n, ln_s_max);
            }
        }
        let z_coeff = S::F64::splat(isa, p.z);
        rows_f64!(isa, lanes, [wt, lse] => out.z, coeff_mul_vec(z_coeff.mul(wt), lse.mul(lse), zero64));
        out.lse = lse;
        // The target is the first maximal column where it is maximal and no other column is;
        // a tie is settled by the scalar scan.
        let mut correct = V::<S, E>::mask_bits(xt_v.eq(max));
        let tied = correct & other_max;
        for (r, row) in batch.iter().enumerate() {
            if tied >> r & 1 != 0 {
                // SAFETY: src is valid for n elements, not yet written (in place, the gradient
                // is written below).
                let x = unsafe { core::slice::from_raw_parts(row.src, n) };
                if !first_max_is(x, row.t) {
                    correct &= !(1 << r);
                }
            }
        }
        out.correct = correct;
    } else {
        for (lse, row) in lse.iter_mut().zip(batch) {
            *lse = row.saved_lse;
        }
    }
    if !want_grad {
        return special;
    }
    // The gradient from lse: p_j = e_j · e^(M/τ − lse), as the general path and `backward`
    // compute it (the factor's exponential for the whole batch at once).
    let mut factor = [0.0f64; BATCH_MAX];
    rows_f64!(isa, lanes, [rf, lse] => factor, rf.mul(inv).sub(lse));
    for r in 0..lanes {
        if lse_is_coarse(lse[r]) {
            // ln S from the row's sums, which lse no longer carries (see `LSE_COARSE`).
            factor[r] = -(s_others[r] + e_target[r]).ln();
        }
    }
    batch_exp(isa, lanes, &mut factor);
    // Per row: entry j = e_j · α + w_j · (−β), the target's entry apart (from the sums), with
    // the coefficients A and B_t of `CeParams::coefficients`.
    let mut g = [0.0f64; BATCH_MAX];
    for (g, row) in g.iter_mut().zip(batch) {
        *g = row.g;
    }
    let smooth = S::F64::splat(isa, p.eps / n as f64);
    let smooth_total = S::F64::splat(isa, p.eps / n as f64 * p.weight_total);
    let z2 = S::F64::splat(isa, 2.0 * p.z);
    let eps = S::F64::splat(isa, p.eps);
    let cols = S::F64::splat(isa, n as f64);
    let minus_one = S::F64::splat(isa, -1.0);
    let mut a = [0.0f64; BATCH_MAX];
    rows_f64!(isa, lanes, [wt, lse] => a, {
        let z_part = coeff_mul_vec(z2.mul(wt), lse, zero64);
        let finite = lse.sub(lse).eq(zero64);
        ce_coeff
            .mul(wt)
            .add(smooth_total)
            .add(S::F64::select(finite, z_part, zero64))
    });
    let mut alpha64 = [0.0f64; BATCH_MAX];
    rows_f64!(isa, lanes, [g, a, factor] => alpha64, g.mul(inv).mul(a).mul(factor).mul(unscale));
    let mut neg_beta64 = [0.0f64; BATCH_MAX];
    rows_f64!(isa, lanes, [g] => neg_beta64, g.mul(inv).mul(minus_one).mul(eps).div(cols));
    let mut target_entry = [0.0f64; BATCH_MAX];
    rows_f64!(isa, lanes, [g, a, wt, factor, s_others, e_target] => target_entry, {
        let b_t = ce_coeff.mul(wt).add(smooth.mul(wt));
        let others = b_t.mul(minus_one).mul(s_others.mul(factor));
        g.mul(inv).mul(others.add(a.sub(b_t).mul(e_target.mul(factor))))
    });
    let mut alpha = [<E::Real as Real>::ZERO; BATCH_MAX];
    let mut neg_beta = [<E::Real as Real>::ZERO; BATCH_MAX];
    for r in 0..lanes {
        alpha[r] = real(alpha64[r]);
        neg_beta[r] = real(neg_beta64[r]);
    }
    let written = !special & ((1u32 << count) - 1);
    // SAFETY: BATCH_MAX ≥ LANES values each.
    let (alpha, neg_beta) = unsafe {
        (
            V::<S, E>::load(isa, alpha.as_ptr()),
            V::<S, E>::load(isa, neg_beta.as_ptr()),
        )
    };
    let gradient = GradColumns::<S, E> {
        isa,
        alpha,
        neg_beta,
        weights: if p.eps > 0.0 { p.weights } else { None },
    };
    let mut dsts = [core::ptr::null_mut::<E>(); BATCH_MAX];
    for (d, row) in dsts.iter_mut().zip(batch) {
        *d = row.dst;
    }
    // SAFETY: `columns` holds the n columns' exponentials; every written row's dst is valid
    // for n elements.
    unsafe { row::store_columns(isa, &gradient, columns, &dsts[..lanes], written, count, n) };
    for (r, row) in batch.iter().enumerate().take(count) {
        if written >> r & 1 != 0 {
            // SAFETY: t < n.
            unsafe { *row.dst.add(row.t) = E::from_f64(target_entry[r]) };
        }
    }
    special
}

/// A small batch's gradient entries from its columns of exponentials: e_j · α + w_j · (−β)
/// (the targets' entries are written apart).
struct GradColumns<'a, S: Isa, E: Element> {
    isa: S,
    alpha: VecOf<S, E>,
    neg_beta: VecOf<S, E>,
    weights: Option<&'a [E::Real]>,
}

impl<S: Isa, E: Element> row::ColumnMap<VecOf<S, E>> for GradColumns<'_, S, E> {
    #[cfg_attr(not(xent_unoptimized), inline(always))]
    fn column(&self, j: usize, e: VecOf<S, E>) -> VecOf<S, E> {
        let neg_b = match self.weights {
            None => self.neg_beta,
            Some(w) => self.neg_beta.mul(splat::<S, E>(self.isa, w[j])),
        };
        e.mul_add(self.alpha, neg_b)
    }
}

/// What one pass over a small batch's columns gathers, per row (lane).
struct ColumnSums {
    /// Σ_{j≠t} e_j, widened to f64 after every four columns.
    s_others: [f64; BATCH_MAX],
    /// e_t, the target's term.
    e_target: [f64; BATCH_MAX],
    /// Bit i: another column of row i equals its maximum.
    other_max: u32,
    /// Bit i: a NaN among row i's terms.
    nan: u32,
}

/// The exponentials of a small batch's columns (`columns`: column j at j·LANES, padded with
/// −inf up to a multiple of four, each row's target entry replaced by −inf), stored over them;
/// per row the sum of the others (f32 over four columns, then f64, as the row-major kernels sum
/// a lane), the target's term (from `x_target`, by the same map), and whether another column
/// holds the maximum. Four columns per round (independent chains), from the last round to the
/// first; the loop carries few vectors (the register file holds the exponential's constants
/// too).
///
/// # Safety
/// `columns` valid for reading and writing `n.next_multiple_of(4)` columns of LANES values.
#[cfg_attr(not(xent_unoptimized), inline(always))]
unsafe fn column_sums<S: Isa, E: Element, T: VecMap<VecOf<S, E>>>(
    isa: S,
    term: &T,
    columns: *mut E::Real,
    n: usize,
    x_target: VecOf<S, E>,
    max: VecOf<S, E>,
) -> ColumnSums {
    type V<S, E> = VecOf<S, E>;
    let lanes = V::<S, E>::LANES;
    let zero = splat::<S, E>(isa, <E::Real as Real>::ZERO);
    let one = splat::<S, E>(isa, <E::Real as Real>::ONE);
    let padded = n.next_multiple_of(4);
    // SAFETY (all accesses to `columns`): j < padded.
    let column = |j: usize| unsafe { V::<S, E>::load(isa, columns.add(j * lanes)) };
    let mut s_others = [0.0f64; BATCH_MAX];
    // Every term but the target's once more, in f32: NaN there exactly where such a term is
    // (they are finite and ≥ 0 otherwise, so the sum cannot be inf − inf).
    let mut probe = zero;
    // Per row, how many of the other columns equal the maximum (a count in floating point,
    // one `and` and one addition per column: no select).
    let mut hits = zero;
    let mut j = padded;
    while j > 0 {
        j -= 4;
        let v = [column(j), column(j + 1), column(j + 2), column(j + 3)];
        let e = term.apply_quad(v);
        for q in 0..4 {
            // SAFETY: j + q < padded.
            unsafe { e[q].store(columns.add((j + q) * lanes)) };
            hits = hits.add(one.and_mask(v[q].eq(max)));
        }
        // Padding columns and the targets' entries (−inf) give exact zeros.
        let quad = e[0].add(e[1]).add(e[2].add(e[3]));
        probe = probe.add(quad);
        quad.add_lanes_f64(&mut s_others);
    }
    let mut e_target = [0.0f64; BATCH_MAX];
    let e_t = term.apply(x_target);
    e_t.add_lanes_f64(&mut e_target);
    ColumnSums {
        s_others,
        e_target,
        other_max: V::<S, E>::mask_bits(hits.ge(one)),
        nan: V::<S, E>::mask_bits(V::<S, E>::mask_or(probe.is_nan(), e_t.is_nan())),
    }
}

/// The forward results of a small batch, one entry per row.
#[derive(Copy, Clone, Default)]
pub(crate) struct BatchForward {
    /// The cross-entropy part of the loss (without z-loss).
    pub ce: [f64; BATCH_MAX],
    pub z: [f64; BATCH_MAX],
    pub lse: [f64; BATCH_MAX],
    /// Bit i: row i's target is its first maximal column.
    pub correct: u32,
}

/// `coeff_mul` lane-wise: a zero coefficient removes its term (0 · ∞ counts 0).
#[cfg_attr(not(xent_unoptimized), inline(always))]
fn coeff_mul_vec<V: FloatVec>(a: V, b: V, zero: V) -> V {
    V::select(a.eq(zero), zero, a.mul(b))
}

/// The per-row sums `batch_nll_f32` takes (f64, one entry per row): the terms are
/// e^((x − reference)/τ), so that e_target = 1 where the target is the maximum and the
/// reference the maximum itself, and close to 1 where the reference is a base c ≈ M.
struct NllSums<'a> {
    s_others: &'a [f64],
    e_target: &'a [f64],
    max: &'a [f64],
    reference: &'a [f64],
    x_target: &'a [f64],
}

/// −ln p_t and ln S (S relative to the reference) for a batch of f32-precision rows,
/// `S::F64::LANES` rows per vector. Where the target is the maximum, −ln p_t =
/// ln(1 + u) with u = S_other / e_t (accurate as p_t → 1) and ln S = (x_t − reference)/τ +
/// ln(1 + u); otherwise (p_t ≤ 1/2: no cancellation) ln S = ln(S_other + e_t) and
/// −ln p_t = (reference − x_t)/τ + ln S. One logarithm per row: of 1 + u or of S.
#[cfg_attr(not(xent_unoptimized), inline(always))]
fn batch_nll_f32<S: Isa>(
    isa: S,
    rows: usize,
    sums: NllSums<'_>,
    inv_tau: f64,
    nll: &mut [f64],
    ln_s: &mut [f64],
) {
    let w = <S::F64 as FloatVec>::LANES;
    let (zero, one, two) = (
        S::F64::splat(isa, 0.0),
        S::F64::splat(isa, 1.0),
        S::F64::splat(isa, 2.0),
    );
    let inv = S::F64::splat(isa, inv_tau);
    let mut i = 0;
    while i + w <= rows {
        // SAFETY: i + w ≤ rows ≤ every slice's length.
        unsafe {
            let s_o = S::F64::load(isa, sums.s_others.as_ptr().add(i));
            let e_t = S::F64::load(isa, sums.e_target.as_ptr().add(i));
            let m = S::F64::load(isa, sums.max.as_ptr().add(i));
            let c = S::F64::load(isa, sums.reference.as_ptr().add(i));
            let xt = S::F64::load(isa, sums.x_target.as_ptr().add(i));
            let at_max = xt.eq(m);
            let u = s_o.div(e_t);
            let w1 = one.add(u);
            let s = s_o.add(e_t);
            // Both arguments are at least e^-(1/1024) (the target's term, or the maximum's).
            let l = crate::simd::log::ln_at_least_half(isa, S::F64::select(at_max, w1, s));
            // ln(1 + u) = ln(w) + ln(1 + r/w) with w = 1 + u rounded and r = u − (w − 1) its
            // rounding error (w − 1 is exact below 2): ln(1 + r/w) = r/w to within r², and
            // below w = 2, r/w = r to within |r|·u ≤ 2^-53·u (u itself where w = 1, ln w = 0).
            // From w = 2 on, |r/w| ≤ 2^-53 is below ln w's last bit and dropped. The
            // logarithm's relative accuracy holds down to the smallest u, with no division.
            let r = u.sub(w1.sub(one));
            let log1p = l.add(S::F64::select(w1.lt(two), r, zero));
            let gap_form = c.sub(xt).mul_add(inv, l);
            S::F64::select(at_max, log1p, gap_form).store(nll.as_mut_ptr().add(i));
            S::F64::select(at_max, xt.sub(c).mul_add(inv, log1p), l)
                .store(ln_s.as_mut_ptr().add(i));
        }
        i += w;
    }
}

/// e^x in place, `S::F64::LANES` values per vector (`x.len()` a multiple of it).
#[cfg_attr(not(xent_unoptimized), inline(always))]
fn batch_exp<S: Isa>(isa: S, rows: usize, x: &mut [f64]) {
    let w = <S::F64 as FloatVec>::LANES;
    let mut i = 0;
    while i + w <= rows {
        // SAFETY: i + w ≤ rows ≤ x.len().
        unsafe {
            let v = S::F64::load(isa, x.as_ptr().add(i));
            crate::simd::exp::exp(isa, v).store(x.as_mut_ptr().add(i));
        }
        i += w;
    }
}

/// Loads `len ≤ LANES` elements at `ptr`, the lanes past `len` set to `pad`.
///
/// # Safety
/// `ptr` valid for reading `len` elements.
#[cfg_attr(not(xent_unoptimized), inline(always))]
unsafe fn load_elems<S: Isa, E: Element>(
    isa: S,
    ptr: *const E,
    len: usize,
    pad: E::Real,
) -> VecOf<S, E> {
    // SAFETY: forwarded.
    unsafe {
        if len == VecOf::<S, E>::LANES {
            E::load(isa, ptr)
        } else {
            E::load_partial(isa, ptr, len, pad)
        }
    }
}

/// Loads `len ≤ LANES` class weights at `ptr`, the lanes past `len` set to 0.
///
/// # Safety
/// `ptr` valid for reading `len` values.
#[cfg_attr(not(xent_unoptimized), inline(always))]
unsafe fn load_weights<S: Isa, E: Element>(isa: S, ptr: *const E::Real, len: usize) -> VecOf<S, E> {
    // SAFETY: forwarded.
    unsafe {
        if len == VecOf::<S, E>::LANES {
            VecOf::<S, E>::load(isa, ptr)
        } else {
            VecOf::<S, E>::load_partial(isa, ptr, len, <E::Real as Real>::ZERO)
        }
    }
}

/// Stores the first `len ≤ LANES` lanes of `v` at `ptr`.
///
/// # Safety
/// `ptr` valid for writing `len` elements.
#[cfg_attr(not(xent_unoptimized), inline(always))]
unsafe fn store_elems<S: Isa, E: Element>(v: VecOf<S, E>, ptr: *mut E, len: usize) {
    // SAFETY: forwarded.
    unsafe {
        if len == VecOf::<S, E>::LANES {
            E::store(v, ptr)
        } else {
            E::store_partial(v, ptr, len)
        }
    }
}
