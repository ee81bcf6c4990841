//! Helpers shared by the integration tests: ULP distances and ISA iteration.
#![allow(dead_code)]

use xent::{Element, IsaPath};

/// The paths this machine can run.
pub fn paths() -> Vec<IsaPath> {
    IsaPath::ALL
        .into_iter()
        .filter(|p| p.is_available())
        .collect()
}

/// Runs `f` once per available path, with the path forced on this thread.
pub fn for_each_path(mut f: impl FnMut(IsaPath)) {
    for p in paths() {
        let _guard = xent::force_isa(p).unwrap();
        f(p);
    }
}

/// The spacing of `E` values around the exact value `v` (the subnormal spacing below the
/// normal range).
pub fn ulp_of<E: Element>(v: f64) -> f64 {
    let (digits, min_exp) = match E::NAME {
        "f32" => (24, -126),
        "f64" => (53, -1022),
        other => panic!("no ulp rule for {other}"),
    };
    let v = v.abs();
    let e = if v == 0.0 || !v.is_finite() {
        min_exp
    } else {
        (v.log2().floor() as i32).max(min_exp)
    };
    xent::reference::ldexp(1.0, e - (digits - 1))
}

/// Distance of `got` from the exact value `want` in units of `E`'s last place; 0 when both
/// are the same infinity or both NaN, +inf when exactly one of them is NaN or infinite.
pub fn ulp_error<E: Element>(got: E, want: f64) -> f64 {
    let g = got.to_f64();
    if g.is_nan() || want.is_nan() {
        return if g.is_nan() && want.is_nan() {
            0.0
        } else {
            f64::INFINITY
        };
    }
    // The exact value rounds to infinity in E: then the kernel must give that infinity.
    let want_rounded = E::from_f64(want).to_f64();
    if want_rounded.is_infinite() || g.is_infinite() {
        return if g == want_rounded {
            0.0
        } else {
            f64::INFINITY
        };
    }
    let diff = (g - want).abs();
    if diff == 0.0 {
        return 0.0;
    }
    diff / ulp_of::<E>(want)
}

pub mod rows;

/// Values that stress the kernels: zeros, infinities, NaN payloads, subnormals, extremes.
pub fn special_f64() -> Vec<f64> {
    vec![
        0.0,
        -0.0,
        f64::INFINITY,
        f64::NEG_INFINITY,
        f64::NAN,
        -f64::NAN,
        f64::from_bits(0x7ff8_0000_0000_1234),
        1e-310,
        -1e-310,
        f64::MAX,
        f64::MIN,
        3.0e38,
        -3.0e38,
        1e-40,
        88.0,
        -104.0,
        710.0,
        -746.0,
    ]
}
