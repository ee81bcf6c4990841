//! Checks shared by the tests and the fuzz targets: each runs a kernel on an input, compares
//! every output with the oracle in [`crate::reference`] within the documented bounds
//! (docs/accuracy.md) and the special-value rules (docs/semantics.md), and panics with the
//! context on a violation. Not part of the stable API.

use crate::kernels::ce::LSE_COARSE;
pub use crate::kernels::Conversion;
use crate::{reference, Element, IsaPath, Softmax};

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
        let _guard = crate::force_isa(p).unwrap();
        f(p);
    }
}

/// The spacing of `E` values around the exact value `v` (the subnormal spacing below the
/// normal range).
pub fn ulp_of<E: Element>(v: f64) -> f64 {
    let (digits, min_exp) = match E::NAME {
        "f32" => (24, -126),
        "f64" => (53, -1022),
        "f16" => (11, -14),
        "bf16" => (8, -126),
        other => panic!("no ulp rule for {other}"),
    };
    let v = v.abs();
    // floor(log2 v) read from the exponent field: exact (a rounded log2 of a value just below
    // a power of two gives the binade above) and cheap, which the 2^32-input sweep needs.
    // Subnormal f64 values lie below every type's normal range.
    let e = if v.is_finite() && v >= f64::MIN_POSITIVE {
        ((v.to_bits() >> 52) as i32 - 1023).max(min_exp)
    } else {
        min_exp
    };
    let k = e - (digits - 1);
    if k >= f64::MIN_EXP - 1 {
        f64::from_bits(((k + 1023) as u64) << 52)
    } else {
        crate::reference::ldexp(1.0, k)
    }
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

/// Documented bounds (docs/accuracy.md).
pub struct Bounds {
    /// Softmax: ULP of the element type.
    pub softmax_ulp: f64,
    /// Log-softmax: ULP of the element type, plus `log_abs` absolute.
    pub log_ulp: f64,
    pub log_abs: f64,
    /// Log-sum-exp: `lse_rel · max(1, |lse|)` absolute.
    pub lse_rel: f64,
}

pub fn bounds<E: Element>() -> Bounds {
    match E::NAME {
        "f32" => Bounds {
            softmax_ulp: 8.0,
            log_ulp: 8.0,
            log_abs: 2f64.powi(-21),
            lse_rel: 2f64.powi(-20),
        },
        "f64" => Bounds {
            softmax_ulp: 8.0,
            log_ulp: 8.0,
            log_abs: 2f64.powi(-50),
            lse_rel: 2f64.powi(-49),
        },
        // Half precision: the f32 bounds on the f32 result, then one rounding to the half
        // type: 0.5 ULP of the half type plus 8 ULP of f32 (≤ 0.002 of a half ULP).
        _ => Bounds {
            softmax_ulp: 0.51,
            log_ulp: 0.51,
            log_abs: 2f64.powi(-21),
            lse_rel: 2f64.powi(-20) + half_round_rel::<E>(),
        },
    }
}

/// Whether `E` is stored in less precision than it computes in.
pub fn is_half<E: Element>() -> bool {
    core::mem::size_of::<E>() == 2
}

/// The relative size of half an ULP of `E` (one rounding to `E`), 0 for f32 / f64.
pub fn half_round_rel<E: Element>() -> f64 {
    match E::NAME {
        "f16" => 2f64.powi(-11),
        "bf16" => 2f64.powi(-8),
        _ => 0.0,
    }
}

/// The spacing of `E`'s compute precision (f32 for f32 and the half types) around `v`.
pub fn ulp_of_real<E: Element>(v: f64) -> f64 {
    if E::NAME == "f64" {
        ulp_of::<f64>(v)
    } else {
        ulp_of::<f32>(v)
    }
}

/// `x` converted to f32 through the dispatched path's vector loads (tests check the
/// half-precision conversions bit for bit with this).
pub fn to_f32_on_path<E: Element<Real = f32>>(x: &[E]) -> Vec<f32> {
    let mut elems = x.to_vec();
    let mut out = vec![0f32; x.len()];
    crate::kernels::run_convert(
        crate::simd::current(),
        &mut elems,
        &mut out,
        Conversion::Load,
    );
    out
}

/// `x` rounded to `E` through the dispatched path's vector stores of the form `how`
/// (`StoreNoNan`, `StorePairNoNan`: for an `x` without NaN, through the stores that skip the
/// NaN handling, as the cross-entropy's gradient rows with bounded entries do).
pub fn from_f32_on_path<E: Element<Real = f32>>(x: &[f32], how: Conversion) -> Vec<E> {
    let no_nan = how.assumes_no_nan();
    assert!(
        !(no_nan && x.iter().any(|v| v.is_nan())),
        "no-NaN stores with a NaN"
    );
    let mut reals = x.to_vec();
    let mut out = vec![E::from_f64(0.0); x.len()];
    crate::kernels::run_convert(crate::simd::current(), &mut out, &mut reals, how);
    out
}

fn lse_error<E: Element>(got: f64, want: f64) -> f64 {
    // A log-sum-exp beyond the element type's range must come back as that infinity.
    let want = if E::from_f64(want).to_f64().is_infinite() {
        E::from_f64(want).to_f64()
    } else {
        want
    };
    if got.is_nan() || want.is_nan() {
        return if got.is_nan() && want.is_nan() {
            0.0
        } else {
            f64::INFINITY
        };
    }
    if got.is_infinite() || want.is_infinite() {
        return if got == want { 0.0 } else { f64::INFINITY };
    }
    (got - want).abs() / want.abs().max(1.0)
}

/// Worst errors seen, for reporting.
#[derive(Default, Debug, Clone, Copy)]
pub struct Worst {
    pub softmax_ulp: f64,
    pub log_excess: f64,
    pub lse_rel: f64,
}

/// Checks every row op on `x` (`cols` columns) at temperature `tau`; panics with context on a
/// violation. Returns the worst errors.
pub fn check_rows<E: Element>(x: &[E], cols: usize, tau: f64) -> Worst {
    let b = bounds::<E>();
    let sm = Softmax::new().temperature(tau);
    let rows = x.len().checked_div(cols).unwrap_or(0);
    let mut p = vec![E::from_f64(7.0); x.len()];
    let mut lp = vec![E::from_f64(7.0); x.len()];
    let mut lse = vec![E::from_f64(7.0); rows];
    sm.softmax_rows(x, cols, &mut p).unwrap();
    sm.log_softmax_rows(x, cols, &mut lp).unwrap();
    sm.logsumexp_rows(x, cols, &mut lse).unwrap();
    let mut p_in = x.to_vec();
    sm.softmax_rows_inplace(&mut p_in, cols).unwrap();
    let mut lp_in = x.to_vec();
    sm.log_softmax_rows_inplace(&mut lp_in, cols).unwrap();
    let bits = |v: &[E]| v.iter().map(|e| e.to_f64().to_bits()).collect::<Vec<_>>();
    assert_eq!(
        bits(&p),
        bits(&p_in),
        "softmax in place differs from out of place"
    );
    assert_eq!(bits(&lp), bits(&lp_in), "log_softmax in place differs");
    // A row's softmax depends on that row alone (short rows run in batches of rows).
    let mut one = vec![E::from_f64(7.0); cols];
    for r in 0..rows {
        sm.softmax_rows(&x[r * cols..(r + 1) * cols], cols, &mut one)
            .unwrap();
        assert_eq!(
            bits(&one),
            bits(&p[r * cols..(r + 1) * cols]),
            "softmax of row {r} alone differs from the batch's (cols {cols}, tau {tau})"
        );
    }
    let mut worst = Worst::default();
    for r in 0..rows {
        let row = &x[r * cols..(r + 1) * cols];
        let want_p = reference::softmax(row, tau);
        let want_lp = reference::log_softmax(row, tau);
        let want_lse = reference::logsumexp(row, tau);
        let e = lse_error::<E>(lse[r].to_f64(), want_lse);
        assert!(
            e <= b.lse_rel,
            "{}: lse row {r} (cols {cols}, tau {tau}): got {:?} want {want_lse:e}, rel err {e:e}",
            E::NAME,
            lse[r]
        );
        worst.lse_rel = worst.lse_rel.max(e);
        for c in 0..cols {
            let i = r * cols + c;
            let e = ulp_error(p[i], want_p[c]);
            assert!(
                e <= b.softmax_ulp,
                "{}: softmax[{r},{c}] = {:?}, want {:e} ({e} ULP); x = {:?}, tau {tau}",
                E::NAME,
                p[i],
                want_p[c],
                row[c]
            );
            worst.softmax_ulp = worst.softmax_ulp.max(e);
            let got = lp[i].to_f64();
            let want = want_lp[c];
            let ok = if got.is_nan() || want.is_nan() || got.is_infinite() || want.is_infinite() {
                ulp_error(lp[i], want) == 0.0
            } else {
                let allowed = b.log_ulp * ulp_of::<E>(want) + b.log_abs;
                let err = (got - want).abs();
                worst.log_excess = worst.log_excess.max(err / allowed);
                err <= allowed
            };
            assert!(
                ok,
                "{}: log_softmax[{r},{c}] = {got:e}, want {want:e}; x = {:?}, tau {tau}",
                E::NAME,
                row[c]
            );
        }
    }
    worst
}

/// e^x over `x` (out of place, and in place) against the oracle: within 1 ULP, NaN exactly
/// where the input is NaN, and the two calls bitwise equal.
pub fn check_exp<E: Element>(x: &[E]) {
    let mut out = vec![E::from_f64(7.0); x.len()];
    crate::exp(x, &mut out).unwrap();
    let mut inplace = x.to_vec();
    crate::exp_inplace(&mut inplace);
    for (i, (&v, &y)) in x.iter().zip(&out).enumerate() {
        let e = ulp_error(y, reference::exp(v));
        assert!(
            e <= 1.0,
            "{}: exp({:?}) = {:?}: {e} ULP (index {i})",
            E::NAME,
            v,
            y
        );
        assert!(
            y.to_f64().to_bits() == inplace[i].to_f64().to_bits(),
            "exp in place differs at {i}"
        );
    }
}

/// max and argmax against the oracle (exact; the first NaN when there is one).
pub fn check_max<E: Element>(x: &[E]) {
    let (got, want) = (crate::max(x), reference::max(x));
    match (got, want) {
        (None, None) => {}
        (Some(g), Some(w)) if w.to_f64().is_nan() => {
            assert_eq!(
                g.to_f64().to_bits(),
                w.to_f64().to_bits(),
                "max must return the first NaN"
            )
        }
        (Some(g), Some(w)) => assert_eq!(g.to_f64(), w.to_f64(), "max"),
        _ => panic!("max: got {got:?}, want {want:?}"),
    }
    assert_eq!(crate::argmax(x), reference::argmax(x), "argmax");
}

/// Shape and option validation: every row entry point either succeeds (exactly when the
/// shape, the output length and τ are valid) or returns an error with its outputs untouched.
pub fn check_validation<E: Element>(x: &[E], cols: usize, out_len: usize, tau: f64) {
    let sentinel = E::from_f64(12345.0);
    let tau_ok = tau.is_finite() && tau > 0.0 && {
        let inv = E::from_f64(1.0 / tau).to_f64();
        inv.is_finite() && inv != 0.0
    };
    let shape_ok = if cols == 0 {
        x.is_empty()
    } else {
        x.len().is_multiple_of(cols)
    };
    let rows = x.len().checked_div(cols).unwrap_or(0);
    let sm = Softmax::new().temperature(tau);
    let untouched = |v: &[E]| v.iter().all(|&e| e == sentinel);

    let mut out = vec![sentinel; out_len];
    let r = sm.softmax_rows(x, cols, &mut out);
    assert_eq!(
        r.is_ok(),
        tau_ok && shape_ok && out_len == x.len(),
        "softmax_rows: {r:?}"
    );
    if r.is_err() {
        assert!(untouched(&out), "softmax_rows wrote its output on error");
    }
    let mut out = vec![sentinel; out_len];
    let r = sm.log_softmax_rows(x, cols, &mut out);
    assert_eq!(
        r.is_ok(),
        tau_ok && shape_ok && out_len == x.len(),
        "log_softmax_rows: {r:?}"
    );
    if r.is_err() {
        assert!(
            untouched(&out),
            "log_softmax_rows wrote its output on error"
        );
    }
    let mut lse = vec![sentinel; out_len];
    let r = sm.logsumexp_rows(x, cols, &mut lse);
    let lse_ok = tau_ok && shape_ok && (cols == 0 || out_len == rows);
    assert_eq!(r.is_ok(), lse_ok, "logsumexp_rows: {r:?}");
    if r.is_err() {
        assert!(untouched(&lse), "logsumexp_rows wrote its output on error");
    }
    let mut inplace = x.to_vec();
    let r = sm.softmax_rows_inplace(&mut inplace, cols);
    assert_eq!(r.is_ok(), tau_ok && shape_ok, "softmax_rows_inplace: {r:?}");
    if r.is_err() {
        assert!(
            inplace
                .iter()
                .zip(x)
                .all(|(a, b)| a.to_f64().to_bits() == b.to_f64().to_bits()),
            "softmax_rows_inplace changed its input on error"
        );
    }
    let mut e = vec![sentinel; out_len];
    let r = crate::exp(x, &mut e);
    assert_eq!(r.is_ok(), out_len == x.len(), "exp: {r:?}");
    if r.is_err() {
        assert!(untouched(&e), "exp wrote its output on error");
    }
}

/// Values that stress the kernels (also used by the fuzz targets' value decoder).
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

/// Cross-entropy options as plain data, for tests and fuzz targets.
#[derive(Clone, Debug, Default)]
pub struct CeCase {
    pub reduction: crate::Reduction,
    pub ignore_index: i64,
    pub weights: Option<Vec<f64>>,
    pub label_smoothing: f64,
    pub z_loss: f64,
    pub softcap: Option<f64>,
    pub temperature: f64,
}

impl CeCase {
    pub fn options(&self) -> crate::CrossEntropy {
        let mut ce = crate::CrossEntropy::new()
            .reduction(self.reduction)
            .ignore_index(self.ignore_index)
            .label_smoothing(self.label_smoothing)
            .z_loss(self.z_loss)
            .temperature(self.temperature);
        if let Some(w) = &self.weights {
            ce = ce.weights(w);
        }
        if let Some(c) = self.softcap {
            ce = ce.softcap(c);
        }
        ce
    }
}

/// Worst cross-entropy errors seen, each as a fraction of its documented bound.
#[derive(Default, Debug, Clone, Copy)]
pub struct CeWorst {
    pub loss: f64,
    pub lse: f64,
    pub grad: f64,
}

/// Cross-entropy bounds (docs/accuracy.md): (loss relative, loss absolute, gradient ULP).
pub fn ce_bounds<E: Element>() -> (f64, f64, f64) {
    match E::NAME {
        "f64" => (2f64.powi(-44), 2f64.powi(-50), 8.0),
        // f32 and the half types compute in f32; losses are reported in f64.
        _ => (1e-6, 1e-7, 8.0),
    }
}

fn close(got: f64, want: f64, allowed: f64) -> (bool, f64) {
    if got.is_nan() || want.is_nan() || got.is_infinite() || want.is_infinite() {
        let same = (got.is_nan() && want.is_nan()) || got == want;
        return (same, if same { 0.0 } else { f64::INFINITY });
    }
    let err = (got - want).abs();
    (
        err <= allowed,
        if allowed > 0.0 { err / allowed } else { err },
    )
}

/// Runs every cross-entropy entry point on one input and checks them against the oracle
/// (`reference::cross_entropy_row`) within the documented bounds, plus: in place equals out of
/// place bitwise, backward from the saved lse equals the fused gradient bitwise, and an error
/// exactly when the input is invalid (then no buffer touched). `targets` are i64 so that
/// invalid ones can be expressed. Returns `None` when the input was (correctly) rejected.
pub fn check_cross_entropy<E: Element>(
    x: &[E],
    cols: usize,
    targets: &[i64],
    case: &CeCase,
    grad_rows: Option<&[f64]>,
) -> Option<CeWorst> {
    let ce = case.options();
    let sentinel = E::from_f64(7.0);
    let mut grad = vec![sentinel; x.len()];
    let fwd = ce.forward(x, cols, targets);
    let fb = ce.forward_backward(x, cols, targets, &mut grad);
    let mut inplace = x.to_vec();
    let fbi = ce.forward_backward_inplace(&mut inplace, cols, targets);
    let Ok(out) = fwd else {
        let err = fwd.unwrap_err();
        // Compared as text: an error may carry a NaN option value.
        let text =
            |r: &Result<crate::Output, crate::Error>| r.as_ref().err().map(|e| e.to_string());
        assert_eq!(
            text(&fb),
            Some(err.to_string()),
            "forward_backward differs on {err}"
        );
        assert_eq!(text(&fbi), Some(err.to_string()));
        assert!(
            grad.iter().all(|g| g.to_f64() == 7.0),
            "grad touched on error"
        );
        let bits = |v: &[E]| v.iter().map(|e| e.to_f64().to_bits()).collect::<Vec<_>>();
        assert_eq!(bits(&inplace), bits(x), "logits touched on error");
        return None;
    };
    let fb = fb.expect("forward accepted the input, forward_backward must too");
    let fbi = fbi.expect("forward_backward_inplace must accept it too");
    let same = |a: &crate::Output, b: &crate::Output| {
        let bits = |v: &[f64]| v.iter().map(|e| e.to_bits()).collect::<Vec<_>>();
        assert_eq!(bits(&a.row_losses), bits(&b.row_losses));
        assert_eq!(bits(&a.lse), bits(&b.lse));
        assert_eq!(a.loss.to_bits(), b.loss.to_bits());
        assert_eq!((a.correct, a.valid_rows), (b.correct, b.valid_rows));
    };
    same(&out, &fb);
    same(&out, &fbi);
    let bits = |v: &[E]| v.iter().map(|e| e.to_f64().to_bits()).collect::<Vec<_>>();
    assert_eq!(bits(&grad), bits(&inplace), "in-place gradient differs");
    let g_scalar = crate::GradOutput::Scalar(1.0);
    let ones;
    let go = match (case.reduction, grad_rows) {
        (crate::Reduction::None, Some(g)) => crate::GradOutput::Rows(g),
        (crate::Reduction::None, None) => {
            ones = vec![1.0; out.lse.len()];
            crate::GradOutput::Rows(&ones)
        }
        _ => g_scalar,
    };
    let mut back = vec![sentinel; x.len()];
    ce.backward(x, cols, targets, &out.lse, go, &mut back)
        .unwrap();
    if grad_rows.is_none() {
        assert_eq!(
            bits(&back),
            bits(&grad),
            "backward(saved lse) differs from fused"
        );
    } else {
        grad = back;
    }

    let (loss_rel, loss_abs, grad_ulp) = ce_bounds::<E>();
    let rows = x.len().checked_div(cols).unwrap_or(0);
    let weights = case.weights.as_deref();
    let mut worst = CeWorst::default();
    let (mut total, mut valid, mut correct) = (0.0, 0, 0);
    let factor_rows: Vec<f64> = (0..rows).map(|r| grad_rows.map_or(1.0, |g| g[r])).collect();
    let denom: f64 = (0..rows)
        .filter(|&r| targets[r] != case.ignore_index)
        .map(|r| weights.map_or(1.0, |w| w[targets[r] as usize]))
        .sum();
    let factor = match case.reduction {
        crate::Reduction::Mean if denom == 0.0 => 0.0,
        crate::Reduction::Mean => 1.0 / denom,
        _ => 1.0,
    };
    let mut want_rows = Vec::new();
    for r in 0..rows {
        let row = &x[r * cols..(r + 1) * cols];
        let t = (targets[r] != case.ignore_index).then_some(targets[r] as usize);
        if let Some(t) = t {
            valid += 1;
            if reference::argmax(row) == Some(t) && !row.iter().any(|v| v.to_f64().is_nan()) {
                correct += 1;
            }
        }
        let o = reference::CeOptions {
            weights,
            label_smoothing: case.label_smoothing,
            z_loss: case.z_loss,
            softcap: case.softcap,
            temperature: case.temperature,
            grad_scale: factor * factor_rows[r],
        };
        let want = reference::cross_entropy_row(row, t, &o);
        total += want.loss;
        // Documented limit (docs/semantics.md): a row loss within a factor of 4 of the largest
        // finite f64 may overflow to +inf in an intermediate sum.
        let near_max = want.loss.abs() > f64::MAX / 4.0 && out.row_losses[r] == f64::INFINITY;
        let (ok, e) = if near_max {
            (true, 0.0)
        } else {
            close(
                out.row_losses[r],
                want.loss,
                loss_rel * want.loss.abs() + loss_abs,
            )
        };
        assert!(
            ok,
            "{}: row {r} loss {:e}, want {:e} (cols {cols}, target {:?}, {case:?})",
            E::NAME,
            out.row_losses[r],
            want.loss,
            t
        );
        worst.loss = worst.loss.max(e);
        let (ok, _) = close(
            out.row_z_losses[r],
            want.z,
            loss_rel * want.z.abs() + loss_abs,
        );
        assert!(
            ok,
            "{}: row {r} z-loss {:e}, want {:e}",
            E::NAME,
            out.row_z_losses[r],
            want.z
        );
        // The per-row lse is reported in f64 (never rounded to E, so never overflowing it),
        // computed in E's compute precision.
        let lse_bound = if E::NAME == "f64" {
            bounds::<f64>().lse_rel
        } else {
            bounds::<f32>().lse_rel
        };
        let e = lse_error::<f64>(out.lse[r], want.lse);
        assert!(
            e <= lse_bound,
            "{}: row {r} lse {:e}, want {:e}",
            E::NAME,
            out.lse[r],
            want.lse
        );
        worst.lse = worst.lse.max(e / lse_bound);
        want_rows.push(want);
    }
    // The documented near-MAX limit, as for the rows; here either side may be the one whose
    // sum of near-MAX row losses overflowed.
    let near_max = |a: f64, b: f64| a.abs() > f64::MAX / 4.0 && b == f64::INFINITY;
    let (ok, e) = if near_max(total * factor, out.loss) || near_max(out.loss, total * factor) {
        (true, 0.0)
    } else {
        close(
            out.loss,
            total * factor,
            loss_rel * (total * factor).abs() + loss_abs,
        )
    };
    assert!(
        ok,
        "{}: loss {:e}, want {:e} ({case:?})",
        E::NAME,
        out.loss,
        total * factor
    );
    worst.loss = worst.loss.max(e);
    assert_eq!(out.valid_rows, valid);
    assert_eq!(out.correct, correct, "correct-prediction count");
    let t_of = |r: usize| targets[r] as usize;
    let w_total: f64 = weights.map_or(cols as f64, |w| w.iter().sum());
    for (r, want) in want_rows.iter().enumerate() {
        let g = factor * factor_rows[r];
        for c in 0..cols {
            let w = want.grad[c];
            let got = grad[r * cols + c].to_f64();
            let w_rounded = E::from_f64(w).to_f64();
            // Smoothing and z-loss make g/τ·(A·p_j − B_j) a difference: its error is relative
            // to the terms, not to the result. Gradients come from the saved f64 lse, whose
            // rounding (|lse|·2^-53) shifts every p_j relatively by as much; from LSE_COARSE
            // on, the kernels take ln S from the row instead.
            let ulp_rel = grad_ulp * ulp_of_real::<E>(1.0);
            let lse_rel = if out.lse[r].is_finite() && out.lse[r].abs() < LSE_COARSE {
                out.lse[r].abs() * 2f64.powi(-52)
            } else {
                0.0
            };
            let t = t_of(r);
            let wj = weights.map_or(1.0, |w| w[c]);
            let wt = weights.map_or(1.0, |w| w[t.min(cols - 1)]);
            let smooth = case.label_smoothing / cols as f64;
            let a = (1.0 - case.label_smoothing) * wt
                + smooth * w_total
                + if case.z_loss > 0.0 && out.lse[r].is_finite() {
                    (2.0 * case.z_loss * wt * out.lse[r]).abs()
                } else {
                    0.0
                };
            let b = smooth * wj
                + if c == t {
                    (1.0 - case.label_smoothing) * wt + a
                } else {
                    0.0
                };
            let terms = (g / case.temperature).abs() * 2.0 * b;
            let allowed = grad_ulp * ulp_of_real::<E>(w)
                + if is_half::<E>() {
                    0.5 * ulp_of::<E>(w)
                } else {
                    0.0
                }
                + w.abs() * lse_rel
                + (ulp_rel + lse_rel) * terms
                + 1e-30;
            let (ok, e) = if w_rounded.is_infinite() || w.is_nan() {
                close(got, w_rounded, 0.0)
            } else {
                close(got, w, allowed)
            };
            assert!(
                ok,
                "{}: grad[{r},{c}] = {got:?}, want {w:?}, allowed {allowed:?} (x = {:?}, target {:?}, cols {cols}, {case:?})",
                E::NAME,
                x[r * cols + c],
                targets[r]
            );
            worst.grad = worst.grad.max(e);
        }
    }
    Some(worst)
}
