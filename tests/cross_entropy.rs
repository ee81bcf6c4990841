//! Cross-entropy against PyTorch's float64 golden cases (tests/data/cross_entropy_torch.json,
//! made by ../shared/golden/make_golden.py) and against the oracle.

mod common;

use common::{for_each_path, CeCase, CeWorst};
use serde_json::Value;
use xent::{GradOutput, Reduction};

fn num(v: &Value) -> f64 {
    match v {
        Value::Number(n) => n.as_f64().unwrap(),
        Value::String(s) if s == "nan" => f64::NAN,
        Value::String(s) if s == "inf" => f64::INFINITY,
        Value::String(s) if s == "-inf" => f64::NEG_INFINITY,
        other => panic!("not a number: {other}"),
    }
}

fn nums(v: &Value) -> Vec<f64> {
    v.as_array().unwrap().iter().map(num).collect()
}

struct Golden {
    cols: usize,
    logits: Vec<f64>,
    targets: Vec<i64>,
    case: CeCase,
    grad_rows: Option<Vec<f64>>,
    loss: Option<f64>,
    row_losses: Vec<f64>,
    lse: Vec<f64>,
    z_rows: Vec<f64>,
    valid_rows: usize,
    grad: Vec<f64>,
}

fn golden() -> Vec<Golden> {
    let text = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/data/cross_entropy_torch.json"
    ))
    .unwrap();
    let doc: Value = serde_json::from_str(&text).unwrap();
    doc["cases"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            let o = &c["options"];
            let e = &c["expected"];
            let reduction = match o["reduction"].as_str().unwrap() {
                "mean" => Reduction::Mean,
                "sum" => Reduction::Sum,
                _ => Reduction::None,
            };
            Golden {
                cols: c["cols"].as_u64().unwrap() as usize,
                logits: nums(&c["logits"]),
                targets: c["targets"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|t| t.as_i64().unwrap())
                    .collect(),
                case: CeCase {
                    reduction,
                    ignore_index: o["ignore_index"].as_i64().unwrap_or(-100),
                    weights: o["weights"].as_array().map(|_| nums(&o["weights"])),
                    label_smoothing: num(&o["label_smoothing"]),
                    z_loss: num(&o["z_loss"]),
                    softcap: o["softcap"].as_f64(),
                    temperature: num(&o["temperature"]),
                },
                grad_rows: c["grad_output_rows"]
                    .as_array()
                    .map(|_| nums(&c["grad_output_rows"])),
                loss: e["loss"].as_f64().or(match &e["loss"] {
                    Value::String(_) => Some(num(&e["loss"])),
                    _ => None,
                }),
                row_losses: nums(&e["row_losses"]),
                lse: nums(&e["lse"]),
                z_rows: nums(&e["z_loss_rows"]),
                valid_rows: e["valid_rows"].as_u64().unwrap() as usize,
                grad: nums(&e["grad"]),
            }
        })
        .collect()
}

/// |got − want| within rel · |want| + abs (NaN and infinities exactly).
fn near(got: f64, want: f64, rel: f64, abs: f64) -> bool {
    if want.is_nan() || got.is_nan() || want.is_infinite() || got.is_infinite() {
        return (want.is_nan() && got.is_nan()) || got == want;
    }
    (got - want).abs() <= rel * want.abs() + abs
}

fn run_golden<E: xent::Element>(rel: f64, abs: f64, grad_rel: f64) -> usize {
    let mut checked = 0;
    for (k, g) in golden().iter().enumerate() {
        let x: Vec<E> = g.logits.iter().map(|&v| E::from_f64(v)).collect();
        let ce = g.case.options();
        let out = ce.forward(&x, g.cols, &g.targets).unwrap();
        let ctx = format!("{} case {k} ({:?}, cols {})", E::NAME, g.case, g.cols);
        if let Some(want) = g.loss {
            assert!(
                near(out.loss, want, rel, abs),
                "{ctx}: loss {} want {want}",
                out.loss
            );
        }
        assert_eq!(out.valid_rows, g.valid_rows, "{ctx}");
        for r in 0..g.targets.len() {
            assert!(
                near(out.row_losses[r], g.row_losses[r], rel, abs),
                "{ctx}: row {r} loss {} want {}",
                out.row_losses[r],
                g.row_losses[r]
            );
            assert!(
                near(out.row_z_losses[r], g.z_rows[r], rel, abs),
                "{ctx}: row {r} z {} want {}",
                out.row_z_losses[r],
                g.z_rows[r]
            );
            assert!(
                near(out.lse[r], g.lse[r], rel, abs),
                "{ctx}: row {r} lse {} want {}",
                out.lse[r],
                g.lse[r]
            );
        }
        let mut grad = vec![E::from_f64(0.0); x.len()];
        match &g.grad_rows {
            Some(rows) => ce
                .backward(
                    &x,
                    g.cols,
                    &g.targets,
                    &out.lse,
                    GradOutput::Rows(rows),
                    &mut grad,
                )
                .unwrap(),
            None => {
                ce.forward_backward(&x, g.cols, &g.targets, &mut grad)
                    .unwrap();
            }
        }
        // PyTorch forms soft-capping's derivative as 1 − tanh², which is 0 in float64 once
        // tanh rounds to ±1: its gradients there are off by up to ~1e-16 absolute (xent's and
        // the oracle's sech² keep the tiny true value).
        let floor = if g.case.softcap.is_some() {
            1e-15
        } else {
            1e-30
        };
        for r in 0..g.targets.len() {
            let row = &g.grad[r * g.cols..(r + 1) * g.cols];
            let scale = row.iter().fold(0f64, |m, v| m.max(v.abs()));
            for c in 0..g.cols {
                let got = grad[r * g.cols + c].to_f64();
                assert!(
                    near(got, row[c], grad_rel, grad_rel * scale + floor),
                    "{ctx}: grad[{r},{c}] = {got:e}, want {:e}",
                    row[c]
                );
            }
        }
        // Against the oracle too, with every consistency check.
        common::check_cross_entropy(&x, g.cols, &g.targets, &g.case, g.grad_rows.as_deref());
        checked += 1;
    }
    checked
}

#[test]
fn golden_f64() {
    for_each_path(|_| assert_eq!(run_golden::<f64>(1e-12, 1e-13, 1e-11), 200));
}

#[test]
fn golden_f32() {
    for_each_path(|_| assert_eq!(run_golden::<f32>(1e-6, 1e-7, 1e-6), 200));
}

#[test]
fn reports_worst_errors() {
    let mut worst = CeWorst::default();
    for_each_path(|_| {
        for g in golden() {
            let x: Vec<f32> = g.logits.iter().map(|&v| v as f32).collect();
            if let Some(w) = common::check_cross_entropy(&x, g.cols, &g.targets, &g.case, None) {
                worst.loss = worst.loss.max(w.loss);
                worst.lse = worst.lse.max(w.lse);
                worst.grad = worst.grad.max(w.grad);
            }
        }
    });
    println!("f32 golden inputs vs oracle, fraction of bound: {worst:?}");
}

use proptest::prelude::*;

fn case_strategy() -> impl Strategy<Value = (usize, usize, CeCase, u64)> {
    (
        // Up to five rows, and batches of several full vectors of rows (the small-row batches
        // of eight f32 / four f64 rows, with ignored rows in between).
        prop_oneof![0usize..6, 6usize..40],
        1usize..80,
        prop_oneof![
            Just(Reduction::Mean),
            Just(Reduction::Sum),
            Just(Reduction::None)
        ],
        prop_oneof![Just(0.0), Just(0.1), Just(1.0)],
        prop_oneof![Just(0.0), Just(1e-4), Just(0.1)],
        prop_oneof![Just(None), Just(Some(5.0)), Just(Some(30.0))],
        prop_oneof![Just(1.0), Just(0.5), Just(2.0)],
        any::<bool>(),
        any::<u64>(),
    )
        .prop_map(
            |(rows, cols, reduction, eps, z, softcap, tau, weighted, seed)| {
                let weights = weighted.then(|| {
                    (0..cols)
                        .map(|j| ((seed >> (j % 48)) & 7) as f64 * 0.25)
                        .collect()
                });
                (
                    rows,
                    cols,
                    CeCase {
                        reduction,
                        ignore_index: -100,
                        weights,
                        label_smoothing: eps,
                        z_loss: z,
                        softcap,
                        temperature: tau,
                    },
                    seed,
                )
            },
        )
}

fn logits(n: usize, seed: u64, scale: f64) -> Vec<f64> {
    let mut s = seed | 1;
    (0..n)
        .map(|_| {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            match s % 23 {
                0 => f64::NEG_INFINITY,
                1 => 1e4,
                _ => ((s >> 11) as f64 / (1u64 << 53) as f64 - 0.5) * scale,
            }
        })
        .collect()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(150))]

    /// Every option combination (weights + smoothing + ignore_index together included),
    /// against the oracle on every path, with the in-place / backward consistency checks.
    #[test]
    // Offsets near 2^14 and far beyond it: the gradient's exponential is relative to a base on
    // a grid below 2^14 (f32) / 2^20 (f64) and exact otherwise.
    fn matches_oracle((rows, cols, case, seed) in case_strategy(), scale in prop_oneof![Just(1.0), Just(30.0)],
                      offset in prop_oneof![Just(0.0), Just(0.0), Just(8185.0), Just(16380.0), Just(-3e7)]) {
        let x: Vec<f64> = logits(rows * cols, seed, scale).into_iter().map(|v| v + offset).collect();
        let targets: Vec<i64> = (0..rows)
            .map(|r| if (seed >> r) & 3 == 0 { -100 } else { ((seed >> (2 * r % 64)) % cols as u64) as i64 })
            .collect();
        for_each_path(|_| {
            let x32: Vec<f32> = x.iter().map(|&v| v as f32).collect();
            common::check_cross_entropy(&x32, cols, &targets, &case, None);
            common::check_cross_entropy(&x, cols, &targets, &case, None);
        });
    }
}

/// Central differences of the f64 loss agree with the analytic gradient.
#[test]
fn finite_difference_gradient() {
    let cases = [
        CeCase {
            temperature: 1.0,
            ..CeCase::default()
        },
        CeCase {
            temperature: 0.7,
            label_smoothing: 0.2,
            z_loss: 0.01,
            weights: Some(vec![0.5, 1.0, 2.0, 1.5, 0.0, 1.0, 0.3]),
            ..CeCase::default()
        },
        CeCase {
            temperature: 1.3,
            softcap: Some(2.0),
            label_smoothing: 0.1,
            ..CeCase::default()
        },
    ];
    for (k, case) in cases.iter().enumerate() {
        let cols = 7;
        let x = logits(3 * cols, 99 + k as u64, 3.0)
            .into_iter()
            .map(|v| {
                if v.is_finite() && v.abs() < 100.0 {
                    v
                } else {
                    0.5
                }
            })
            .collect::<Vec<f64>>();
        let targets = [1i64, -100, 6];
        let ce = CeCase {
            ignore_index: -100,
            ..case.clone()
        }
        .options();
        let mut grad = vec![0.0; x.len()];
        ce.forward_backward(&x, cols, &targets, &mut grad).unwrap();
        let h = 1e-6;
        for i in 0..x.len() {
            let mut xp = x.clone();
            xp[i] += h;
            let mut xm = x.clone();
            xm[i] -= h;
            let fd = (ce.forward(&xp, cols, &targets).unwrap().loss
                - ce.forward(&xm, cols, &targets).unwrap().loss)
                / (2.0 * h);
            assert!(
                (fd - grad[i]).abs() < 1e-7,
                "case {k} entry {i}: fd {fd} analytic {}",
                grad[i]
            );
        }
    }
}

/// Results, the reduced loss included, are bitwise identical for any thread count.
#[test]
fn thread_count_determinism() {
    let (rows, cols) = (300, 1000);
    let x: Vec<f32> = logits(rows * cols, 5, 20.0)
        .iter()
        .map(|&v| v as f32)
        .collect();
    let targets: Vec<u32> = (0..rows as u32).map(|r| r * 31 % cols as u32).collect();
    let ce = xent::CrossEntropy::new().label_smoothing(0.1).z_loss(1e-4);
    let run = |threads: usize| {
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build()
            .unwrap();
        pool.install(|| {
            let mut g = x.clone();
            let out = ce.forward_backward_inplace(&mut g, cols, &targets).unwrap();
            (
                out.loss.to_bits(),
                out.correct,
                g.iter().map(|v| v.to_bits()).collect::<Vec<_>>(),
            )
        })
    };
    let one = run(1);
    for t in [2, 3, 8] {
        assert!(run(t) == one, "{t} threads differ from 1");
    }
}

#[test]
fn bad_input_is_an_error_and_touches_nothing() {
    use xent::{CrossEntropy, Error};
    let x = [0.5f32, 1.0, -1.0, 2.0, 0.0, 0.0];
    let mut grad = [9f32; 6];
    let e = |r: Result<xent::Output, Error>| r.unwrap_err();
    let ce = CrossEntropy::new();
    assert!(matches!(
        e(ce.forward(&x, 3, &[0u32, 3])),
        Error::TargetOutOfRange {
            row: 1,
            target: 3,
            classes: 3
        }
    ));
    assert!(matches!(
        e(ce.forward(&x, 3, &[-1i32, 0])),
        Error::TargetOutOfRange {
            row: 0,
            target: -1,
            ..
        }
    ));
    assert!(matches!(
        e(ce.forward(&x, 3, &[0u32])),
        Error::LengthMismatch {
            what: "targets",
            ..
        }
    ));
    assert!(matches!(
        e(ce.forward(&x, 4, &[0u32])),
        Error::NotMultipleOfCols { .. }
    ));
    assert!(matches!(
        e(ce.forward(&x, 0, &[0u32])),
        Error::ZeroCols { .. }
    ));
    assert!(matches!(
        e(ce.clone().weights(&[1.0, 2.0]).forward(&x, 3, &[0u32, 1])),
        Error::LengthMismatch {
            what: "weights",
            ..
        }
    ));
    assert!(matches!(
        e(ce.clone()
            .weights(&[1.0, -2.0, 1.0])
            .forward(&x, 3, &[0u32, 1])),
        Error::InvalidWeight { class: 1, .. }
    ));
    assert!(matches!(
        e(ce.clone()
            .weights(&[1.0, f64::NAN, 1.0])
            .forward(&x, 3, &[0u32, 1])),
        Error::InvalidWeight { class: 1, .. }
    ));
    assert!(matches!(
        e(ce.clone().label_smoothing(1.5).forward(&x, 3, &[0u32, 1])),
        Error::InvalidOption {
            name: "label_smoothing",
            ..
        }
    ));
    assert!(matches!(
        e(ce.clone()
            .label_smoothing(f64::NAN)
            .forward(&x, 3, &[0u32, 1])),
        Error::InvalidOption {
            name: "label_smoothing",
            ..
        }
    ));
    assert!(matches!(
        e(ce.clone().z_loss(-1.0).forward(&x, 3, &[0u32, 1])),
        Error::InvalidOption { name: "z_loss", .. }
    ));
    assert!(matches!(
        e(ce.clone().softcap(0.0).forward(&x, 3, &[0u32, 1])),
        Error::InvalidOption {
            name: "softcap",
            ..
        }
    ));
    assert!(matches!(
        e(ce.clone().temperature(0.0).forward(&x, 3, &[0u32, 1])),
        Error::InvalidTemperature { .. }
    ));
    assert!(matches!(
        e(ce.forward_backward(&x, 3, &[0u32, 1], &mut grad[..5])),
        Error::LengthMismatch { what: "grad", .. }
    ));
    assert!(matches!(
        e(ce.forward_backward(&x, 3, &[0u32, 7], &mut grad)),
        Error::TargetOutOfRange { .. }
    ));
    assert_eq!(grad, [9f32; 6]);
    let mut logits = x;
    assert!(ce
        .forward_backward_inplace(&mut logits, 3, &[0u32, 9])
        .is_err());
    assert_eq!(logits, x);
    let lse = [0.0f64; 2];
    assert!(matches!(
        ce.backward(
            &x,
            3,
            &[0u32, 1],
            &lse[..1],
            GradOutput::Scalar(1.0),
            &mut grad
        ),
        Err(Error::LengthMismatch {
            what: "saved_lse",
            ..
        })
    ));
    assert!(matches!(
        ce.backward(&x, 3, &[0u32, 1], &lse, GradOutput::Rows(&[1.0]), &mut grad),
        Err(Error::LengthMismatch {
            what: "grad_output",
            ..
        })
    ));
    assert_eq!(grad, [9f32; 6]);
    // Every target type; usize beyond i64 is reported saturated.
    assert!(ce.forward(&x, 3, &[0i64, 2]).is_ok());
    assert!(ce.forward(&x, 3, &[0usize, 2]).is_ok());
    assert!(matches!(
        e(ce.forward(&x, 3, &[0usize, usize::MAX])),
        Error::TargetOutOfRange {
            target: i64::MAX,
            ..
        }
    ));
    // Empty batches are fine: mean over no rows is 0.
    let out = ce.forward::<f32, u32>(&[], 3, &[]).unwrap();
    assert_eq!((out.loss, out.valid_rows), (0.0, 0));
}

#[test]
fn special_values_follow_the_semantics_table() {
    let ninf = f32::NEG_INFINITY;
    let ce = xent::CrossEntropy::new().reduction(Reduction::None);
    // NaN row: loss NaN, gradient NaN. Target logit −inf: loss +inf, finite gradient.
    // All −inf: loss +inf, gradient −1 at the target (softmax all 0). Smoothing over a −inf
    // class: +inf with a finite gradient.
    let x = [f32::NAN, 0.0, 1.0, ninf, 0.0, 1.0, ninf, ninf, ninf];
    let mut g = x;
    let out = ce
        .forward_backward_inplace(&mut g, 3, &[0u32, 0, 1])
        .unwrap();
    assert!(out.row_losses[0].is_nan() && g[..3].iter().all(|v| v.is_nan()));
    assert_eq!(out.row_losses[1], f64::INFINITY);
    assert!(g[3..6].iter().all(|v| v.is_finite()));
    assert_eq!(out.row_losses[2], f64::INFINITY);
    assert_eq!(&g[6..], &[0.0, -1.0, 0.0]);
    let smooth = xent::CrossEntropy::new().label_smoothing(0.1);
    let mut g = [0.0f32, ninf, 1.0];
    let out = smooth.forward_backward_inplace(&mut g, 3, &[0u32]).unwrap();
    assert_eq!(out.loss, f64::INFINITY);
    assert!(g.iter().all(|v| v.is_finite()));
    // A NaN target logit makes the row NaN even when its weight is 0 (fuzz finding).
    let ce_w = xent::CrossEntropy::new()
        .reduction(Reduction::None)
        .weights(&[0.0, 1.0]);
    let out = ce_w.forward(&[f32::NAN, 1.0], 2, &[0u32]).unwrap();
    assert!(out.row_losses[0].is_nan());
    // An all-ignored batch: mean 0 with zero gradient (PyTorch: NaN).
    let mut g = [1.0f32, 2.0, 3.0];
    let out = xent::CrossEntropy::new()
        .forward_backward_inplace(&mut g, 3, &[-100i64])
        .unwrap();
    assert_eq!((out.loss, g), (0.0, [0.0; 3]));
}

/// Rows short enough for the column-major batches, a NaN in some of them (at the target, in
/// the columns two overlapping vectors share, at the end): those rows are NaN throughout, and
/// every other row is bitwise what it is when no row of its batch holds a NaN.
#[test]
fn nan_rows_in_a_small_batch_leave_the_others_alone() {
    let ce = xent::CrossEntropy::new().reduction(Reduction::None);
    for cols in [5usize, 20, 24] {
        let rows = 19;
        let clean: Vec<f32> = logits(rows * cols, 7 + cols as u64, 6.0)
            .into_iter()
            .map(|v| if v.is_finite() { v as f32 } else { -3.0 })
            .collect();
        let targets: Vec<u32> = (0..rows).map(|r| ((r * 7) % cols) as u32).collect();
        let nan_at = [(2usize, 0usize), (5, 13), (9, cols - 1), (10, 14), (17, 7)];
        let mut dirty = clean.clone();
        for &(r, j) in &nan_at {
            dirty[r * cols + j.min(cols - 1)] = f32::NAN;
        }
        // A NaN at the target too.
        dirty[12 * cols + targets[12] as usize] = f32::NAN;
        let is_nan_row = |r: usize| r == 12 || nan_at.iter().any(|&(nr, _)| nr == r);
        for_each_path(|_| {
            let mut g_clean = clean.clone();
            let o_clean = ce
                .forward_backward_inplace(&mut g_clean, cols, &targets)
                .unwrap();
            let mut g_dirty = dirty.clone();
            let o_dirty = ce
                .forward_backward_inplace(&mut g_dirty, cols, &targets)
                .unwrap();
            for r in 0..rows {
                let (gc, gd) = (&g_clean[r * cols..][..cols], &g_dirty[r * cols..][..cols]);
                if is_nan_row(r) {
                    assert!(o_dirty.row_losses[r].is_nan(), "cols {cols} row {r}");
                    assert!(gd.iter().all(|v| v.is_nan()), "cols {cols} row {r}");
                } else {
                    assert_eq!(o_dirty.row_losses[r], o_clean.row_losses[r], "row {r}");
                    assert_eq!(o_dirty.lse[r], o_clean.lse[r], "row {r}");
                    let bits = |g: &[f32]| g.iter().map(|v| v.to_bits()).collect::<Vec<_>>();
                    assert_eq!(bits(gd), bits(gc), "cols {cols} row {r}");
                }
            }
        });
    }
}

/// The golden inputs with the logits rounded to f16 / bf16: the oracle recomputes the expected
/// values from the rounded logits (PyTorch's values are for the unrounded ones).
#[test]
fn golden_inputs_in_half_precision() {
    use xent::half::{bf16, f16};
    for_each_path(|_| {
        for g in golden() {
            let a: Vec<f16> = g.logits.iter().map(|&v| f16::from_f64(v)).collect();
            common::check_cross_entropy(&a, g.cols, &g.targets, &g.case, g.grad_rows.as_deref());
            let b: Vec<bf16> = g.logits.iter().map(|&v| bf16::from_f64(v)).collect();
            common::check_cross_entropy(&b, g.cols, &g.targets, &g.case, g.grad_rows.as_deref());
        }
    });
}

/// |lse| beyond 2^40: its rounding (here up to 128 in f64) must not scale the probabilities.
/// One dominant logit, so every p_j is 0 or 1 and the gradient is exact however coarse lse
/// is; rows of 3 (batched small rows), 40 and 300 000 columns (the blocked path) and τ = 1
/// (the cached path) as well as τ = 1e-3.
#[test]
fn huge_lse_keeps_the_gradient_bounded() {
    fn check<E: xent::Element>(fill: f64, top: f64, tau: f64, cols: usize) {
        let mut x = vec![E::from_f64(fill); cols];
        x[cols / 2] = E::from_f64(top);
        let targets = [0u32];
        let ce = xent::CrossEntropy::new().temperature(tau);
        let mut grad = vec![E::from_f64(0.0); cols];
        let out = ce.forward_backward(&x, cols, &targets, &mut grad).unwrap();
        assert!(out.lse[0].abs() >= 2f64.powi(40), "{} {top:e}", E::NAME);
        let mut back = vec![E::from_f64(0.0); cols];
        ce.backward(
            &x,
            cols,
            &targets,
            &out.lse,
            GradOutput::Scalar(1.0),
            &mut back,
        )
        .unwrap();
        for (c, (&g, &b)) in grad.iter().zip(&back).enumerate() {
            let want = if c == 0 {
                -1.0 / tau
            } else if c == cols / 2 {
                1.0 / tau
            } else {
                0.0
            };
            assert_eq!(
                g.to_f64().to_bits(),
                b.to_f64().to_bits(),
                "backward == fused"
            );
            assert!(
                (g.to_f64() - want).abs() <= 1e-6 * want.abs() + 1e-300,
                "{} top {top:e} τ {tau} cols {cols}: grad[{c}] = {:e}, want {want:e}",
                E::NAME,
                g.to_f64()
            );
        }
    }
    for_each_path(|_| {
        for cols in [3, 40, 300_000] {
            for (fill, top, tau) in [
                (0.0, 1.02e15, 1e-3),
                (0.0, 3e15, 1.0),
                (-1e15, -1e15 + 1e3, 1e-3),
            ] {
                check::<f64>(fill, top, tau, cols);
            }
            for (fill, top, tau) in [(0.0, 1e30, 1e-3), (0.0, 3e15, 1.0), (-1e30, 1e30, 1.0)] {
                check::<f32>(fill, top, tau, cols);
            }
        }
    });
}

/// Entries masked with −inf have probability 0, so their gradient is exactly 0 however large
/// the incoming gradient is (a clamped, nonzero exponential times g = 1e35 would show). Rows of
/// 3 and 20 columns (batched small rows), 300 and 70 000 (the cached and blocked paths), τ = 1
/// and 0.25, a third of the classes masked; fused and from the saved lse.
#[test]
fn masked_classes_get_exactly_zero_gradient() {
    fn check<E: xent::Element>(cols: usize, tau: f64, g: f64) {
        // Small rows: more than two batches of the widest vector; long rows: a few suffice.
        let rows = if cols > 1000 { 3 } else { 33 };
        let masked = |j: usize| j % 3 == 1;
        let x: Vec<E> = (0..rows * cols)
            .map(|i| {
                let v = ((i as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15) >> 40) as f64;
                if masked(i % cols) {
                    E::from_f64(f64::NEG_INFINITY)
                } else {
                    E::from_f64(v / 16_777_216.0 * 16.0 - 8.0)
                }
            })
            .collect();
        let targets: Vec<u32> = (0..rows).map(|r| (3 * r % cols) as u32 / 3 * 3).collect();
        let ce = xent::CrossEntropy::new()
            .reduction(Reduction::None)
            .temperature(tau);
        let mut fused = x.clone();
        let out = ce
            .forward_backward_inplace(&mut fused, cols, &targets)
            .unwrap();
        let grad_rows = vec![g; rows];
        let mut back = vec![E::from_f64(1.0); x.len()];
        ce.backward(
            &x,
            cols,
            &targets,
            &out.lse,
            GradOutput::Rows(&grad_rows),
            &mut back,
        )
        .unwrap();
        for (i, &b) in back.iter().enumerate() {
            if masked(i % cols) {
                assert_eq!(
                    fused[i].to_f64(),
                    0.0,
                    "{} cols {cols} τ {tau}: fused[{i}]",
                    E::NAME
                );
                assert_eq!(
                    b.to_f64(),
                    0.0,
                    "{} cols {cols} τ {tau}: backward[{i}]",
                    E::NAME
                );
            } else {
                assert!(
                    b.to_f64().is_finite(),
                    "{} cols {cols}: backward[{i}]",
                    E::NAME
                );
            }
        }
    }
    for_each_path(|_| {
        for cols in [3, 20, 300, 70_000] {
            for tau in [1.0, 0.25] {
                check::<f32>(cols, tau, 1e35);
                check::<f64>(cols, tau, 1e300);
                check::<xent::half::bf16>(cols, tau, 1e35);
                check::<xent::half::f16>(cols, tau, 1e4);
            }
        }
    });
}

/// One huge row's passes split into segments across threads (a few rows of more than two
/// segments, off the cached path): the results against the oracle, with the options that
/// change the passes (temperature, smoothing with weights, z-loss), a target in the first,
/// a middle and the last segment.
#[test]
#[cfg_attr(
    debug_assertions,
    ignore = "minutes at opt-level 0; CI runs it in release"
)]
fn huge_rows_split_across_threads_match_oracle() {
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(2)
        .build()
        .unwrap();
    let cases = [
        CeCase {
            temperature: 1.0,
            ..CeCase::default()
        },
        CeCase {
            temperature: 0.7,
            label_smoothing: 0.1,
            z_loss: 1e-4,
            weights: Some((0..300_000).map(|j| 0.5 + (j % 5) as f64 * 0.25).collect()),
            ..CeCase::default()
        },
    ];
    pool.install(|| {
        for case in &cases {
            for (cols, targets) in [
                (300_000, [5i64, 150_001, 299_999]),
                (140_000, [0, 65_536, 139_999]),
            ] {
                let mut case = case.clone();
                if let Some(w) = &mut case.weights {
                    w.truncate(cols);
                }
                let x = logits(3 * cols, 0x5eed ^ cols as u64, 30.0);
                if cols > 200_000 {
                    let x32: Vec<f32> = x.iter().map(|&v| v as f32).collect();
                    common::check_cross_entropy(&x32, cols, &targets, &case, None).unwrap();
                } else {
                    common::check_cross_entropy(&x, cols, &targets, &case, None).unwrap();
                }
            }
        }
    });
}

/// The correct-prediction count with ties at the maximum, in rows short enough for the
/// column-major batches and in long ones: a target counts when it is the row's first maximal
/// class (torch.argmax), whether or not the maximum appears again after it.
#[test]
fn correct_count_with_ties_at_the_maximum() {
    fn check<E: xent::Element>(from: impl Fn(f32) -> E) {
        let ce = xent::CrossEntropy::new();
        for cols in [3usize, 8, 20, 33, 300] {
            // Per row: the positions holding the maximum (4.0), and the target.
            let t = cols / 2;
            let cases: [(&[usize], usize, bool); 7] = [
                (&[t], t, true),
                (&[t, cols - 1], t, true),
                (&[0, t], t, false),
                (&[t - 1, t], t, false),
                (&[0, cols - 1], t, false),
                (&[t + 1], t, false),
                (&[0, 1, 2], 0, true),
            ];
            let rows = 3 * cases.len();
            let mut x = vec![from(0.0); rows * cols];
            let mut targets = vec![0u32; rows];
            let mut want = 0;
            for r in 0..rows {
                let (maxima, target, first) = cases[r % cases.len()];
                for j in 0..cols {
                    x[r * cols + j] = from(((r + j) % 5) as f32 * 0.5 - 1.0);
                }
                for &j in maxima {
                    x[r * cols + j] = from(4.0);
                }
                targets[r] = target as u32;
                want += usize::from(first);
            }
            for_each_path(|path| {
                let got = ce.forward(&x, cols, &targets).unwrap().correct;
                assert_eq!(
                    got,
                    want,
                    "{} cols {cols} {path:?}",
                    core::any::type_name::<E>()
                );
                let mut g = x.clone();
                let got = ce
                    .forward_backward_inplace(&mut g, cols, &targets)
                    .unwrap()
                    .correct;
                assert_eq!(got, want, "in place, cols {cols} {path:?}");
            });
        }
    }
    check(|v| v);
    check(f64::from);
    check(xent::half::bf16::from_f32);
    check(xent::half::f16::from_f32);
}

/// As p_t → 1 the loss ln(1 + Σ_{j≠t} e^(x_j − x_t)) keeps its relative accuracy, in rows
/// short enough for the column-major batches and in long ones (1 − p_t is never formed).
#[test]
fn confident_rows_keep_the_loss_relative_accuracy() {
    fn check<E: xent::Element>(from: impl Fn(f32) -> E, rel: f64) {
        let ce = xent::CrossEntropy::new().reduction(Reduction::None);
        for cols in [5usize, 20, 300] {
            let gaps = [0.5f32, 2.0, 10.0, 20.0, 40.0, 60.0, 80.0];
            let rows = gaps.len() * 2;
            let mut x = vec![from(0.0); rows * cols];
            let mut targets = vec![0u32; rows];
            for r in 0..rows {
                let t = (r * 7) % cols;
                for j in 0..cols {
                    x[r * cols + j] = from(if j == t { 0.0 } else { -gaps[r % gaps.len()] });
                }
                targets[r] = t as u32;
            }
            for_each_path(|path| {
                let out = ce.forward(&x, cols, &targets).unwrap();
                for r in 0..rows {
                    let d = gaps[r % gaps.len()] as f64;
                    let want = ((cols - 1) as f64 * (-d).exp()).ln_1p();
                    let got = out.row_losses[r];
                    assert!(
                        ((got - want) / want).abs() <= rel,
                        "cols {cols} gap {d} {path:?}: loss {got:e}, want {want:e}"
                    );
                }
            });
        }
    }
    check(|v| v, 1e-6);
    check(xent::half::bf16::from_f32, 1e-6);
    check(f64::from, 1e-13);
}
