//! The scalar oracle: every kernel computed one element at a time in double-double arithmetic
//! (about 104 significant bits), far more precise than any element type under test.
//!
//! Tests and fuzz targets compare the kernels against these functions. They are written for
//! clarity, not speed, and follow the special-value rules of `docs/semantics.md` by explicit
//! case analysis, independently of how the kernels reach them.

use crate::Element;

/// A double-double number `hi + lo` with |lo| ≤ ulp(hi)/2.
#[derive(Copy, Clone, Debug, PartialEq)]
pub struct Dd {
    /// The leading part (the value rounded to f64).
    pub hi: f64,
    /// The trailing part.
    pub lo: f64,
}

fn two_sum(a: f64, b: f64) -> Dd {
    let s = a + b;
    if !s.is_finite() {
        return Dd::new(s);
    }
    let bb = s - a;
    let e = (a - (s - bb)) + (b - bb);
    Dd { hi: s, lo: e }
}

fn quick_two_sum(a: f64, b: f64) -> Dd {
    let s = a + b;
    Dd {
        hi: s,
        lo: b - (s - a),
    }
}

impl Dd {
    /// The value `x` exactly.
    pub fn new(x: f64) -> Dd {
        Dd { hi: x, lo: 0.0 }
    }

    /// Sum, correct to about 2^-104 relative.
    #[allow(clippy::should_implement_trait)]
    pub fn add(self, b: Dd) -> Dd {
        if !self.hi.is_finite() || !b.hi.is_finite() {
            return Dd::new(self.hi + b.hi);
        }
        let s = two_sum(self.hi, b.hi);
        let t = two_sum(self.lo, b.lo);
        let s = quick_two_sum(s.hi, s.lo + t.hi);
        quick_two_sum(s.hi, s.lo + t.lo)
    }

    /// Difference.
    #[allow(clippy::should_implement_trait)]
    pub fn sub(self, b: Dd) -> Dd {
        self.add(Dd {
            hi: -b.hi,
            lo: -b.lo,
        })
    }

    /// Product.
    #[allow(clippy::should_implement_trait)]
    pub fn mul(self, b: Dd) -> Dd {
        let p = self.hi * b.hi;
        if !p.is_finite() || p == 0.0 {
            return Dd::new(p);
        }
        let e = self.hi.mul_add(b.hi, -p);
        quick_two_sum(p, e + (self.hi * b.lo + self.lo * b.hi))
    }

    /// Quotient.
    #[allow(clippy::should_implement_trait)]
    pub fn div(self, b: Dd) -> Dd {
        if self.hi.abs() > 1e300 && self.hi.is_finite() {
            // Keep the intermediate products below overflow; powers of two scale exactly.
            return self.ldexp(-64).div(b).ldexp(64);
        }
        let q1 = self.hi / b.hi;
        if !q1.is_finite() || q1 == 0.0 {
            return Dd::new(q1);
        }
        let r = self.sub(b.mul(Dd::new(q1)));
        let q2 = r.hi / b.hi;
        let r = r.sub(b.mul(Dd::new(q2)));
        let q3 = r.hi / b.hi;
        quick_two_sum(q1, q2).add(Dd::new(q3))
    }

    /// Rounded to f64.
    pub fn to_f64(self) -> f64 {
        self.hi + self.lo
    }

    /// Multiplies by 2^k exactly (while the result stays normal).
    pub fn ldexp(self, k: i32) -> Dd {
        Dd {
            hi: ldexp(self.hi, k),
            lo: ldexp(self.lo, k),
        }
    }
}

/// x · 2^k, rounded once.
pub fn ldexp(x: f64, k: i32) -> f64 {
    // Apply in steps that keep every intermediate normal, so only the last one rounds.
    let mut x = x;
    let mut k = k;
    while k > 1000 {
        x *= 2f64.powi(1000);
        k -= 1000;
    }
    while k < -1000 {
        if k < -1900 {
            x *= 2f64.powi(-1000);
            k += 1000;
        } else {
            // Split so that the final multiplication does the only rounding.
            let first = k + 1000;
            return x * 2f64.powi(-1000) * 2f64.powi(first);
        }
    }
    x * 2f64.powi(k)
}

const LN2: Dd = Dd {
    hi: core::f64::consts::LN_2,
    lo: 2.319_046_813_846_299_6e-17,
};

/// e^a as (m, n) with e^a = m · 2^n and m in about [0.7, 1.5], or `None` when e^a is 0 or
/// beyond every finite double (the caller maps those to 0 / +inf).
pub fn exp_parts(a: Dd) -> Option<(Dd, i32)> {
    if a.hi.is_nan() || a.hi < -1200.0 || a.hi > 1200.0 {
        return None;
    }
    let n = (a.hi / core::f64::consts::LN_2).round();
    let r = a.sub(LN2.mul(Dd::new(n)));
    // e^r = (e^(r / 2^10))^(2^10): the Taylor series converges fast for |r / 1024| < 4e-4.
    let k = 10;
    let t = r.ldexp(-k);
    let mut term = Dd::new(1.0);
    let mut sum = Dd::new(1.0);
    for i in 1..=12 {
        term = term.mul(t).div(Dd::new(i as f64));
        sum = sum.add(term);
    }
    for _ in 0..k {
        sum = sum.mul(sum);
    }
    Some((sum, n as i32))
}

/// e^a in double-double (subnormal results lose the low part; see [`exp_parts`] for more).
pub fn exp_dd(a: Dd) -> Dd {
    if a.hi.is_nan() {
        return Dd::new(f64::NAN);
    }
    match exp_parts(a) {
        Some((m, n)) if n > -960 && n < 1020 => m.ldexp(n),
        Some((m, n)) => Dd::new(ldexp(m.to_f64(), n)),
        None if a.hi > 0.0 => Dd::new(f64::INFINITY),
        None => Dd::new(0.0),
    }
}

/// ln a for a > 0 in double-double (one Newton step from the f64 logarithm).
pub fn ln_dd(a: Dd) -> Dd {
    if a.hi <= 0.0 || !a.hi.is_finite() {
        return Dd::new(a.hi.ln());
    }
    let y = Dd::new(a.hi.ln());
    // y + (a · e^-y − 1)
    let e = exp_dd(Dd::new(-y.hi));
    y.add(a.mul(e).sub(Dd::new(1.0)))
}

/// e^x for one element, rounded once to f64 from the double-double result.
pub fn exp<E: Element>(x: E) -> f64 {
    exp_dd(Dd::new(x.to_f64())).to_f64()
}

/// The maximum (first NaN if any NaN); `None` when empty.
pub fn max<E: Element>(x: &[E]) -> Option<E> {
    if let Some(&n) = x.iter().find(|v| v.to_f64().is_nan()) {
        return Some(n);
    }
    let mut it = x.iter().copied();
    let first = it.next()?;
    Some(it.fold(first, |m, v| if v.to_f64() > m.to_f64() { v } else { m }))
}

/// Index of the first maximal element, or of the first NaN.
pub fn argmax<E: Element>(x: &[E]) -> Option<usize> {
    if let Some(i) = x.iter().position(|v| v.to_f64().is_nan()) {
        return Some(i);
    }
    let m = max(x)?.to_f64();
    x.iter().position(|v| v.to_f64() == m)
}

/// What a row's results follow from, after the special-value rules.
enum RowKind {
    Nan,
    AllNegInf,
    /// k entries are +inf.
    PosInf(usize),
    /// Finite maximum m, Σ e^((x − m)/τ) = s.
    Regular {
        m: f64,
        s: Dd,
    },
}

fn row_kind<E: Element>(x: &[E], tau: f64) -> RowKind {
    let v: Vec<f64> = x.iter().map(|e| e.to_f64()).collect();
    if v.iter().any(|a| a.is_nan()) {
        return RowKind::Nan;
    }
    let k = v.iter().filter(|&&a| a == f64::INFINITY).count();
    if k > 0 {
        return RowKind::PosInf(k);
    }
    let m = v.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    if m == f64::NEG_INFINITY {
        return RowKind::AllNegInf;
    }
    let s = v
        .iter()
        .fold(Dd::new(0.0), |s, &a| s.add(exp_dd(scaled_diff(a, m, tau))));
    RowKind::Regular { m, s }
}

/// (a − m)/τ in double-double (a − m is exact in double-double for f64 inputs).
fn scaled_diff(a: f64, m: f64, tau: f64) -> Dd {
    let d = two_sum(a, -m);
    if d.hi.is_infinite() && a.is_finite() && tau != 1.0 {
        // a − m overflows; (a − m)/τ may not.
        return Dd::new(a)
            .div(Dd::new(tau))
            .sub(Dd::new(m).div(Dd::new(tau)));
    }
    if tau == 1.0 {
        d
    } else {
        d.div(Dd::new(tau))
    }
}

/// ln Σ e^(x/τ) of one row (−inf when empty), with the special values of docs/semantics.md.
pub fn logsumexp<E: Element>(x: &[E], tau: f64) -> f64 {
    match row_kind(x, tau) {
        RowKind::Nan => f64::NAN,
        RowKind::AllNegInf => f64::NEG_INFINITY,
        RowKind::PosInf(_) => f64::INFINITY,
        RowKind::Regular { m, s } => Dd::new(m).div(Dd::new(tau)).add(ln_dd(s)).to_f64(),
    }
}

/// Softmax of one row at temperature τ.
pub fn softmax<E: Element>(x: &[E], tau: f64) -> Vec<f64> {
    match row_kind(x, tau) {
        RowKind::Nan => vec![f64::NAN; x.len()],
        RowKind::AllNegInf => vec![0.0; x.len()],
        RowKind::PosInf(k) => x
            .iter()
            .map(|v| {
                if v.to_f64() == f64::INFINITY {
                    1.0 / k as f64
                } else {
                    0.0
                }
            })
            .collect(),
        RowKind::Regular { m, s } => x
            .iter()
            .map(|v| exp_dd(scaled_diff(v.to_f64(), m, tau)).div(s).to_f64())
            .collect(),
    }
}

/// Log-softmax of one row at temperature τ.
pub fn log_softmax<E: Element>(x: &[E], tau: f64) -> Vec<f64> {
    match row_kind(x, tau) {
        RowKind::Nan => vec![f64::NAN; x.len()],
        RowKind::AllNegInf => vec![f64::NEG_INFINITY; x.len()],
        RowKind::PosInf(k) => x
            .iter()
            .map(|v| {
                if v.to_f64() == f64::INFINITY {
                    -(k as f64).ln()
                } else {
                    f64::NEG_INFINITY
                }
            })
            .collect(),
        RowKind::Regular { m, s } => {
            let ln_s = ln_dd(s);
            x.iter()
                .map(|v| scaled_diff(v.to_f64(), m, tau).sub(ln_s).to_f64())
                .collect()
        }
    }
}

/// Options of the cross-entropy oracle (see `CrossEntropy` for their meaning).
#[derive(Clone, Debug)]
pub struct CeOptions<'a> {
    /// Class weights (`None`: all 1).
    pub weights: Option<&'a [f64]>,
    /// ε.
    pub label_smoothing: f64,
    /// z.
    pub z_loss: f64,
    /// c (`None`: no soft-capping).
    pub softcap: Option<f64>,
    /// τ.
    pub temperature: f64,
    /// The factor the gradient is scaled by (1/Σ w for a mean, the upstream gradient …),
    /// applied before the chain rule's 1/τ so that no intermediate overflows needlessly.
    pub grad_scale: f64,
}

/// One row of the cross-entropy oracle.
#[derive(Clone, Debug, PartialEq)]
pub struct CeRow {
    /// ce + z-loss of the row (0 for an ignored row).
    pub loss: f64,
    /// The z-loss part.
    pub z: f64,
    /// ln Σ e^y of the transformed logits y.
    pub lse: f64,
    /// d loss / d x · `grad_scale` (all 0 for an ignored row).
    pub grad: Vec<f64>,
}

/// `a · b` where a zero coefficient `a` removes the term (so 0 · ∞ counts 0).
fn coeff_mul(a: f64, b: f64) -> f64 {
    if a == 0.0 {
        0.0
    } else {
        a * b
    }
}

/// Softmax cross-entropy of one row with target `target` (`None`: ignored), by the formula of
/// `docs/semantics.md` (PyTorch's `F.cross_entropy` per row, plus z-loss, soft-capping and
/// temperature), in double-double where it matters.
pub fn cross_entropy_row<E: Element>(x: &[E], target: Option<usize>, o: &CeOptions) -> CeRow {
    let n = x.len();
    let tau = o.temperature;
    // y = x/τ, soft-capped: kept as (row in f64, τ for the division) so that without
    // soft-capping (x − m)/τ is formed exactly in double-double.
    let (y, tau_y): (Vec<f64>, f64) = match o.softcap {
        Some(c) => (
            x.iter()
                .map(|v| c * (v.to_f64() / tau / c).tanh())
                .collect(),
            1.0,
        ),
        None => (x.iter().map(|v| v.to_f64()).collect(), tau),
    };
    // dy/dx.
    let dydx = |j: usize| match o.softcap {
        Some(c) => {
            let ch = (x[j].to_f64() / tau / c).cosh();
            1.0 / (tau * ch * ch)
        }
        None => 1.0 / tau,
    };
    let kind = row_kind(&y, tau_y);
    let lse = logsumexp(&y, tau_y);
    let Some(t) = target else {
        return CeRow {
            loss: 0.0,
            z: 0.0,
            lse,
            grad: vec![0.0; n],
        };
    };
    let w = |j: usize| o.weights.map_or(1.0, |w| w[j]);
    let w_total: f64 = (0..n).map(w).sum();
    let eps = o.label_smoothing;
    let smooth = eps / n as f64;
    // −log p_j and p_j.
    let (nlp, p): (Vec<f64>, Vec<f64>) = match kind {
        RowKind::Nan => (vec![f64::NAN; n], vec![f64::NAN; n]),
        _ => {
            let lsm = log_softmax(&y, tau_y);
            let sm = softmax(&y, tau_y);
            (lsm.iter().map(|v| -v).collect(), sm)
        }
    };
    let mut ce = coeff_mul((1.0 - eps) * w(t), nlp[t]);
    if eps > 0.0 {
        ce += match kind {
            // −ln p_j = (M − y_j)/τ + ln S can exceed the f64 range on its own (logits near
            // ∓MAX) while ε/C Σ w_j (−ln p_j) does not: sum it scaled by 2^-64.
            RowKind::Regular { m, s } => {
                let ln_s = ln_dd(s).ldexp(-64);
                let mut acc = Dd::new(0.0);
                let mut infinite = false;
                for (j, &yj) in y.iter().enumerate() {
                    if w(j) == 0.0 {
                        continue;
                    }
                    if yj == f64::NEG_INFINITY {
                        infinite = true;
                        continue;
                    }
                    let gap = Dd::new(m).ldexp(-64).sub(Dd::new(yj).ldexp(-64));
                    let gap = if tau_y == 1.0 {
                        gap
                    } else {
                        gap.div(Dd::new(tau_y))
                    };
                    acc = acc.add(gap.add(ln_s).mul(Dd::new(w(j))));
                }
                if infinite {
                    f64::INFINITY
                } else {
                    ldexp(acc.mul(Dd::new(smooth)).to_f64(), 64)
                }
            }
            _ => smooth * (0..n).map(|j| coeff_mul(w(j), nlp[j])).sum::<f64>(),
        };
    }
    let z = coeff_mul(o.z_loss * w(t), lse * lse);
    // d row / d y_j = A p_j − B_j, A = (1 − ε) w_t + (ε/C) W + 2 z w_t lse (the z-loss part
    // is left out where lse is not finite), B_j = (1 − ε) w_t [j = t] + (ε/C) w_j.
    let z_grad = if lse.is_finite() {
        coeff_mul(2.0 * o.z_loss * w(t), lse)
    } else {
        0.0
    };
    let a = (1.0 - eps) * w(t) + smooth * w_total + z_grad;
    let grad = (0..n)
        .map(|j| {
            let b = if j == t { (1.0 - eps) * w(t) } else { 0.0 } + smooth * w(j);
            let sums_to_one = !matches!(kind, RowKind::Nan | RowKind::AllNegInf);
            let g = if j == t && sums_to_one {
                // A p_t − B_t = −B_t (1 − p_t) + (A − B_t) p_t, with 1 − p_t summed in
                // double-double from the other entries (a plain f64 sum of 10^5 equal terms
                // drifts by ~10^-12, far beyond f64's gradient bound: the huge_rows fuzz target
                // found that).
                let others = (0..n)
                    .filter(|&k| k != t)
                    .fold(Dd::new(0.0), |s, k| s.add(Dd::new(p[k])))
                    .to_f64();
                -b * others + (a - b) * p[t]
            } else {
                a * p[j] - b
            };
            g * o.grad_scale * dydx(j)
        })
        .collect();
    let loss = if matches!(kind, RowKind::Nan) {
        f64::NAN
    } else {
        ce + z
    };
    CeRow { loss, z, lse, grad }
}
