//! The vector exponential.
//!
//! Algorithm (the same for f32 and f64, constants in `simd::real`):
//!
//! 1. Clamp x to [EXP_MIN_ARG, EXP_MAX_ARG]: outside that range e^x rounds to 0 or +inf anyway,
//!    and inside it every intermediate below stays finite. NaN passes through the clamp.
//! 2. n = round(x · log2 e), computed as `fma(x, log2e, MAGIC)`: adding 1.5 · 2^mantissa_bits
//!    rounds to an integer that sits in the low mantissa bits of the sum (plus a bias, below).
//! 3. r = x − n · ln2 with ln 2 split in two (Cody–Waite): r_hi = x − n · LN2_HI is exact and
//!    the rest, −n · LN2_LO, is kept apart as a small correction. The caller may add to it the
//!    rounding error `lo` of the argument itself (see `kernels::row`): e^(hi + lo) ≈ e^hi · e^lo.
//! 4. e^r ≈ 1 + (r_hi + (corr + r²·Q(r))), Q by Estrin's scheme: a degree-6 minimax polynomial
//!    for f32 (`tools/fit_exp_poly.py`), Taylor to degree 13 for f64 (whose two final additions
//!    also keep their rounding errors); only the final additions round at the result's scale.
//! 5. 2^n: shifting the integer bits of the magic sum left by the mantissa width leaves exactly
//!    the exponent field of 2^(n + bias). Where 2^n is not normal, the product is formed as
//!    `(p · 2^(n ± S)) · 2^∓S` with S = SCALE_SHIFT so that the first product is always a
//!    normal number and the second rounds once: results in the subnormal range are rounded correctly from p, and results beyond the
//!    largest finite value become +inf.
//!
//! Error: ≤ 1 ULP for every f32 input (tested exhaustively) and every f64 input tested.

use super::{FloatVec, Real};

#[inline(always)]
fn splat<V: FloatVec>(isa: V::Isa, x: V::Real) -> V {
    V::splat(isa, x)
}

/// `2^k` for an exponent `k` in the normal range, exactly.
pub(crate) fn pow2<R: Real>(k: i32) -> R {
    R::from_f64(2f64.powi(k))
}

/// The magic constant whose sum with n leaves `n + EXP_BIAS + shift` in the low mantissa bits.
#[inline(always)]
fn magic<R: Real>(shift: i32) -> R {
    R::ROUND_MAGIC + R::from_f64((R::EXP_BIAS + shift) as f64)
}

/// e^r ≈ 1 + (r + r²·Q(r)) for r = r_hi + corr, |r| ≤ ln2/2 (and NaN), Q from `coeffs`
/// (highest degree first). r_hi is exact and corr is small, so the sum is formed as
/// 1 + (r_hi + (corr + r²·Q)): only the last two additions round at the scale of the result.
#[inline(always)]
fn exp_poly<V: FloatVec>(isa: V::Isa, r_hi: V, corr: V, coeffs: &[V::Real]) -> V {
    let r = r_hi.add(corr);
    // Q by Estrin's scheme: pairs (c_k + c_{k+1} r) combined by Horner's rule in r². Shorter
    // dependency chains than plain Horner keep more vectors in flight.
    let r2 = r.mul(r);
    let n = coeffs.len();
    // coeffs are highest degree first; walk pairs from the top.
    let mut q = if n % 2 == 1 {
        splat::<V>(isa, coeffs[0])
    } else {
        splat::<V>(isa, coeffs[0]).mul_add(r, splat(isa, coeffs[1]))
    };
    let mut k = if n % 2 == 1 { 1 } else { 2 };
    while k < n {
        let pair = splat::<V>(isa, coeffs[k]).mul_add(r, splat(isa, coeffs[k + 1]));
        q = q.mul_add(r2, pair);
        k += 2;
    }
    let small = r2.mul_add(q, corr);
    let one = splat::<V>(isa, V::Real::ONE);
    if !V::Real::EXP_COMPENSATED {
        return r_hi.add(small).add(one);
    }
    // Keep the rounding errors of the two final additions (Fast2Sum: |r_hi| ≥ |small| and
    // 1 ≥ |u|) and add them back before the one rounding that remains.
    let u = r_hi.add(small);
    let u_err = r_hi.sub(u).add(small);
    let p = one.add(u);
    let p_err = one.sub(p).add(u);
    p.add(p_err.add(u_err))
}

/// Steps 2–4: returns (p ≈ e^r, the magic sum holding n).
#[inline(always)]
fn reduce_and_poly<V: FloatVec>(
    isa: V::Isa,
    x: V,
    magic: V,
    lo: Option<V>,
    coeffs: &[V::Real],
) -> (V, V) {
    let biased = x.mul_add(splat(isa, V::Real::LOG2E), magic);
    let n = biased.sub(magic);
    // x − n·LN2_HI is exact (n·LN2_HI is, and the difference is small); the rest of the
    // reduction is a small correction kept apart until the end.
    let r_hi = n.mul_add(splat(isa, -V::Real::LN2_HI), x);
    let mut corr = n.mul(splat(isa, -V::Real::LN2_LO));
    if let Some(lo) = lo {
        corr = corr.add(lo);
    }
    (exp_poly(isa, r_hi, corr, coeffs), biased)
}

/// e^x for every x: the public `exp`.
#[inline(always)]
pub(crate) fn exp<V: FloatVec>(isa: V::Isa, x: V) -> V {
    let in_range = V::mask_and(
        x.ge(splat(isa, V::Real::EXP_FAST_MIN)),
        x.lt(splat(isa, V::Real::EXP_FAST_MAX)),
    );
    if V::mask_bits(in_range) == (1u32 << V::LANES) - 1 {
        // Every lane's 2^n is a normal number: one scaling, no clamping.
        let (p, biased) = reduce_and_poly(
            isa,
            x,
            splat(isa, magic::<V::Real>(0)),
            None,
            V::Real::EXP_POLY,
        );
        return p.mul(biased.shl_mantissa());
    }
    exp_any(isa, x)
}

/// e^x with overflow, underflow, infinities and NaN.
#[inline(always)]
fn exp_any<V: FloatVec>(isa: V::Isa, x: V) -> V {
    let shift = V::Real::SCALE_SHIFT;
    // `min`/`max` return their second operand for NaN, which keeps x's NaN.
    let x = splat::<V>(isa, V::Real::EXP_MAX_ARG).min(x);
    let x = splat::<V>(isa, V::Real::EXP_MIN_ARG).max(x);
    let positive = x.ge(splat(isa, V::Real::ZERO));
    let magic = V::select(
        positive,
        splat(isa, magic::<V::Real>(-shift)),
        splat(isa, magic::<V::Real>(shift)),
    );
    let post = V::select(
        positive,
        splat(isa, pow2::<V::Real>(shift)),
        splat(isa, pow2::<V::Real>(-shift)),
    );
    let (p, biased) = reduce_and_poly(isa, x, magic, None, V::Real::EXP_POLY);
    p.mul(biased.shl_mantissa()).mul(post)
}

/// e^(hi + lo) · 2^SCALE_SHIFT for hi in [3·EXP_MIN_ARG, 0] (or NaN), |lo| ≤ ulp(hi): the
/// exponential inside the row kernels, whose arguments are differences to a maximum (callers
/// clamp them from below). The result is scaled up by 2^SCALE_SHIFT so that it is always a
/// normal number; callers fold 2^-SCALE_SHIFT into the factor they multiply by anyway, so
/// results in the subnormal range are rounded once, at that multiplication. `SUM` selects the
/// cheaper polynomial for terms that are only summed.
#[inline(always)]
pub(crate) fn exp_scaled<V: FloatVec, const SUM: bool>(isa: V::Isa, hi: V, lo: Option<V>) -> V {
    let coeffs = if SUM {
        V::Real::EXP_POLY_SUM
    } else {
        V::Real::EXP_POLY
    };
    let magic = splat(isa, magic::<V::Real>(V::Real::SCALE_SHIFT));
    // Arguments below the bound give 0 after the caller's factor (≤ 2^-SCALE_SHIFT); clamping
    // keeps n in range. `lo` stays small (callers keep hi ≥ 3·EXP_MIN_ARG), so it needs no mask.
    let hi = splat::<V>(isa, V::Real::EXP_MIN_ARG).max(hi);
    let (p, biased) = reduce_and_poly(isa, hi, magic, lo, coeffs);
    p.mul(biased.shl_mantissa())
}
