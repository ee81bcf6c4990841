//! The exponential: every f32 input, and 10^8 f64 inputs over the whole domain plus the edges,
//! on every instruction-set path, within 1 ULP of the exact value.

mod common;

use common::{for_each_path, ulp_error};
use rayon::prelude::*;

/// Max ULP error of xent::exp over `xs` against the oracle `exact`.
fn max_error<E: xent::Element + Send + Sync>(
    xs: &[E],
    exact: impl Fn(E) -> f64 + Sync,
) -> (f64, E) {
    max_error_by(xs, |x, y| ulp_error::<E>(y, exact(x)))
}

/// Max of `error(x, exp(x))` over `xs`.
fn max_error_by<E: xent::Element + Send + Sync>(
    xs: &[E],
    error: impl Fn(E, E) -> f64 + Sync,
) -> (f64, E) {
    let path = xent::isa();
    xs.par_chunks(1 << 14)
        .map(|chunk| {
            let _g = xent::force_isa(path).unwrap();
            let mut out = chunk.to_vec();
            xent::exp_inplace(&mut out);
            let mut worst = (0.0f64, chunk[0]);
            for (&x, &y) in chunk.iter().zip(&out) {
                let e = error(x, y);
                if e > worst.0 || e.is_nan() {
                    worst = (e, x);
                }
            }
            worst
        })
        .reduce(
            || (0.0, E::from_f64(0.0)),
            |a, b| if b.0 > a.0 { b } else { a },
        )
}

/// For every available path, the worst `error(x, exp(x), oracle(x))` over `xs` and where it
/// occurs. The oracle runs once per input for all paths: in the long sweeps it costs more than
/// the kernels.
fn worst_per_path<E, R>(
    xs: &[E],
    oracle: impl Fn(E) -> R + Sync,
    error: impl Fn(E, E, &R) -> f64 + Sync,
) -> Vec<(xent::IsaPath, f64, E)>
where
    E: xent::Element + Send + Sync,
    R: Send,
{
    let paths = common::paths();
    let none = || vec![(0.0f64, E::from_f64(0.0)); paths.len()];
    let worst = xs
        .par_chunks(1 << 14)
        .map(|chunk| {
            let exact: Vec<R> = chunk.iter().map(|&x| oracle(x)).collect();
            let mut worst = none();
            for (w, &path) in worst.iter_mut().zip(&paths) {
                let _g = xent::force_isa(path).unwrap();
                let mut out = chunk.to_vec();
                xent::exp_inplace(&mut out);
                for ((&x, &y), r) in chunk.iter().zip(&out).zip(&exact) {
                    let e = error(x, y, r);
                    if e > w.0 || e.is_nan() {
                        *w = (e, x);
                    }
                }
            }
            worst
        })
        .reduce(none, |a, b| {
            a.into_iter()
                .zip(b)
                .map(|(a, b)| if b.0 > a.0 || b.0.is_nan() { b } else { a })
                .collect()
        });
    paths
        .into_iter()
        .zip(worst)
        .map(|(p, (e, x))| (p, e, x))
        .collect()
}

#[test]
fn exp_f32_edges() {
    for_each_path(|path| {
        let cases = [
            (0.0f32, 1.0f32),
            (-0.0, 1.0),
            (f32::INFINITY, f32::INFINITY),
            (f32::NEG_INFINITY, 0.0),
            (89.0, f32::INFINITY),
            (88.8, f32::INFINITY),
            (-104.0, 0.0),
            (-1000.0, 0.0),
            (f32::MAX, f32::INFINITY),
            (f32::MIN, 0.0),
        ];
        for (x, want) in cases {
            let mut y = [0f32];
            xent::exp(&[x], &mut y).unwrap();
            assert_eq!(y[0], want, "{path}: exp({x})");
        }
        let mut y = [0f32];
        xent::exp(&[f32::NAN], &mut y).unwrap();
        assert!(y[0].is_nan(), "{path}");
        // The largest finite result and the smallest subnormal.
        let (e, _) = max_error(&[88.72283f32, -103.27893, -87.33655, -87.33654], |x| {
            (x as f64).exp()
        });
        assert!(e <= 1.0, "{path}: {e}");
    });
}

#[test]
#[cfg_attr(
    debug_assertions,
    ignore = "2^32 inputs: run in release (.ci/run does)"
)]
fn exp_f32_exhaustive() {
    let mut worst: Vec<(xent::IsaPath, f64, f32)> = Vec::new();
    // 16 slabs of 2^28 inputs keep memory small.
    for slab in 0u64..16 {
        let xs: Vec<f32> = ((slab << 28)..((slab + 1) << 28))
            .map(|b| f32::from_bits(b as u32))
            .collect();
        // glibc's exp is accurate to well under 1e-3 f32 ULP: the f64 result is the exact
        // value for this purpose.
        let w = worst_per_path(&xs, |x| (x as f64).exp(), |_, y, &e| ulp_error::<f32>(y, e));
        if worst.is_empty() {
            worst = w;
        } else {
            for (a, b) in worst.iter_mut().zip(w) {
                if b.1 > a.1 || b.1.is_nan() {
                    *a = b;
                }
            }
        }
    }
    for (path, e, x) in worst {
        println!("exp f32 {path}: max error {e:.4} ULP at {x:e}");
        assert!(e <= 1.0, "{path}: {e} ULP at {x:e}");
    }
}

fn splitmix(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// The oracle of an f64 exponential: e^x rounded, and as m · 2^n in double-double.
type F64Exact = (f64, Option<(xent::reference::Dd, i32)>);

fn f64_exact(x: f64) -> F64Exact {
    use xent::reference::{exp_parts, Dd};
    (xent::reference::exp(x), exp_parts(Dd::new(x)))
}

/// ULP error of `y` = exp(x) against the double-double value itself, compared in the scaled
/// domain e^x = m · 2^n so that subnormal results are measured exactly too (rounding the oracle
/// to f64 first would add up to half an ULP to the measurement).
fn f64_error(y: f64, &(exact, parts): &F64Exact) -> f64 {
    use xent::reference::ldexp;
    match parts {
        Some((m, n)) if exact.is_finite() && exact != 0.0 => {
            let scaled = ldexp(y, -n);
            ((scaled - m.hi) - m.lo).abs() / ldexp(common::ulp_of::<f64>(exact), -n)
        }
        _ => ulp_error::<f64>(y, exact),
    }
}

#[test]
fn exp_f64_edges() {
    for_each_path(|path| {
        let cases = [
            (0.0f64, 1.0f64),
            (-0.0, 1.0),
            (f64::INFINITY, f64::INFINITY),
            (f64::NEG_INFINITY, 0.0),
            (710.0, f64::INFINITY),
            (-746.0, 0.0),
            (f64::MAX, f64::INFINITY),
            (f64::MIN, 0.0),
        ];
        for (x, want) in cases {
            let mut y = [0f64];
            xent::exp(&[x], &mut y).unwrap();
            assert_eq!(y[0], want, "{path}: exp({x})");
        }
        let edges = [
            709.782712893384f64,
            709.7827128933841,
            -708.3964185322641,
            -745.1332191019411,
            -745.13321910194,
            -744.44,
            1e-300,
            -1e-300,
            5e-324,
            0.5 * core::f64::consts::LN_2,
            -0.5 * core::f64::consts::LN_2,
        ];
        let (e, x) = max_error_by(&edges, |x, y| f64_error(y, &f64_exact(x)));
        assert!(e <= 1.0, "{path}: {e} ULP at {x:e}");
    });
}

#[test]
#[cfg_attr(
    debug_assertions,
    ignore = "10^8 inputs: run in release (.ci/run does)"
)]
fn exp_f64_random_1e8() {
    let n = 100_000_000usize;
    // Half uniform over the interesting range, half uniform bit patterns (every binade). The
    // same inputs for every path: the double-double oracle runs once per input.
    let mut seed = 0x5EED_0000u64;
    let xs: Vec<f64> = (0..n)
        .map(|i| {
            let r = splitmix(&mut seed);
            if i % 2 == 0 {
                -746.0 + (r >> 11) as f64 * (1456.0 / (1u64 << 53) as f64)
            } else {
                f64::from_bits(r)
            }
        })
        .collect();
    for (path, e, x) in worst_per_path(&xs, f64_exact, |_, y, r| f64_error(y, r)) {
        println!("exp f64 {path}: max error {e:.6} ULP at {x:e} over {n} inputs");
        assert!(e <= 1.0, "{path}: {e} ULP at {x:e}");
    }
}
