//! A vector natural logarithm for the arguments the batched cross-entropy meets: sums of
//! exponentials, ≥ 1/2 and finite. It serves the f32 compute precision, where the loss needs
//! a relative error near 2^-24, so it is built for about 1e-13 rather than a full f64 ULP
//! (f64 rows keep the correctly rounded scalar `ln`).

use super::{FloatVec, Real};

#[cfg_attr(not(xent_unoptimized), inline(always))]
fn splat<V: FloatVec>(isa: V::Isa, x: f64) -> V {
    V::splat(isa, V::Real::from_f64(x))
}

/// ln x for finite x ≥ 1/2 (other lanes: unspecified values). With x = m · 2^k, m folded into
/// [√2/2, √2), ln m = 2 atanh(s) for s = (m − 1)/(m + 1), |s| ≤ 0.1716, from eight terms of the
/// odd series: truncation below 4e-14 relative to ln m's scale, the rest a few f64 roundings.
#[cfg_attr(not(xent_unoptimized), inline(always))]
pub(crate) fn ln_at_least_half<V: FloatVec>(isa: V::Isa, x: V) -> V {
    let one = splat::<V>(isa, 1.0);
    let (m, k) = x.split_exponent();
    let big = m.ge(splat(isa, core::f64::consts::SQRT_2));
    let m = V::select(big, m.mul(splat(isa, 0.5)), m);
    let k = V::select(big, k.add(one), k);
    let f = m.sub(one);
    let s = f.div(f.add(splat(isa, 2.0)));
    let z = s.mul(s);
    // 1 + z/3 + z²/5 + … + z⁷/15, Horner from the highest term.
    let mut p = splat::<V>(isa, 1.0 / 15.0);
    for d in [13.0, 11.0, 9.0, 7.0, 5.0, 3.0, 1.0] {
        p = p.mul_add(z, splat(isa, 1.0 / d));
    }
    k.mul_add(splat(isa, core::f64::consts::LN_2), s.add(s).mul(p))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::simd::scalar::Scalar;

    fn check<V: FloatVec<Real = f64>>(isa: V::Isa, xs: &[f64]) -> f64 {
        let mut worst = 0f64;
        let lanes = V::LANES;
        let mut buf = vec![0f64; lanes];
        for chunk in xs.chunks(lanes) {
            buf[..chunk.len()].copy_from_slice(chunk);
            // SAFETY: buf holds LANES values.
            let v = unsafe { V::load(isa, buf.as_ptr()) };
            let mut out = vec![0f64; lanes];
            // SAFETY: out holds LANES values.
            unsafe { ln_at_least_half(isa, v).store(out.as_mut_ptr()) };
            for (x, got) in chunk.iter().zip(&out) {
                let want = x.ln();
                // Relative to max(ln x, 1): what the loss's absolute/relative bound needs.
                let err = (got - want).abs() / want.abs().max(1e-300);
                assert!(
                    err < 1e-13 || (got - want).abs() < 1e-15,
                    "ln({x}) = {got}, want {want}"
                );
                worst = worst.max(err);
            }
        }
        worst
    }

    fn samples() -> Vec<f64> {
        let mut xs = vec![
            0.5,
            0.75,
            0.999,
            1.0 - f64::EPSILON / 2.0,
            1.0,
            1.0 + f64::EPSILON,
            1.5,
            core::f64::consts::SQRT_2,
            2.0,
            3.0,
            20.0,
            1e300,
            f64::MAX,
        ];
        let mut s = 0x9E37_79B9_7F4A_7C15u64;
        for i in 0..200_000 {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            let u = (s >> 11) as f64 / (1u64 << 53) as f64;
            // Near 1 from either side (where ln is small), then across the exponent range.
            xs.push(match i % 4 {
                0 => 1.0 + u * 2f64.powi(-(i % 60)),
                1 => 1.0 - u * 2f64.powi(-(i % 60) - 1),
                _ => 2f64.powf(u * 1000.0),
            });
        }
        xs
    }

    #[test]
    fn ln_scalar_within_bound() {
        check::<f64>(Scalar, &samples());
    }

    #[cfg(target_arch = "x86_64")]
    #[test]
    fn ln_avx2_within_bound() {
        if let Some(isa) = crate::simd::avx2::Avx2::try_new() {
            check::<<crate::simd::avx2::Avx2 as crate::simd::Isa>::F64>(isa, &samples());
        }
    }

    #[cfg(target_arch = "x86_64")]
    #[test]
    fn ln_avx512_within_bound() {
        if let Some(isa) = crate::simd::avx512::Avx512::try_new() {
            check::<<crate::simd::avx512::Avx512 as crate::simd::Isa>::F64>(isa, &samples());
        }
    }
}
