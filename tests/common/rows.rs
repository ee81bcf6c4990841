//! The row-kernel tester: runs softmax, log-softmax and log-sum-exp (out of place and in place)
//! on one input and checks every output against the oracle with the documented bounds.

use super::ulp_error;
use xent::{reference, Element, Softmax};

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
        _ => Bounds {
            softmax_ulp: 8.0,
            log_ulp: 8.0,
            log_abs: 2f64.powi(-50),
            lse_rel: 2f64.powi(-49),
        },
    }
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
                let allowed = b.log_ulp * super::ulp_of::<E>(want) + b.log_abs;
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
