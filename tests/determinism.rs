//! Results are bitwise identical for any number of threads, including one huge row that is
//! split across threads.

mod common;

use xent::Softmax;

fn data<E: xent::Element>(n: usize) -> Vec<E> {
    (0..n)
        .map(|i| E::from_f64(((i as f64 * 0.618_033_988_7).fract() - 0.5) * 30.0))
        .collect()
}

fn run_all<E: xent::Element>(x: &[E], cols: usize) -> Vec<u64> {
    let rows = x.len() / cols;
    let mut bits = Vec::new();
    let mut push = |v: &[E]| bits.extend(v.iter().map(|e| e.to_f64().to_bits()));
    for tau in [1.0, 0.7] {
        let sm = Softmax::new().temperature(tau);
        let mut out = vec![E::from_f64(0.0); x.len()];
        sm.softmax_rows(x, cols, &mut out).unwrap();
        push(&out);
        sm.log_softmax_rows(x, cols, &mut out).unwrap();
        push(&out);
        let mut lse = vec![E::from_f64(0.0); rows];
        sm.logsumexp_rows(x, cols, &mut lse).unwrap();
        push(&lse);
    }
    let mut e = vec![E::from_f64(0.0); x.len()];
    xent::exp(x, &mut e).unwrap();
    push(&e);
    push(&[xent::max(x).unwrap()]);
    bits.push(xent::argmax(x).unwrap() as u64);
    bits
}

fn check_shape<E: xent::Element>(rows: usize, cols: usize) {
    let x = data::<E>(rows * cols);
    let mut results = Vec::new();
    for threads in [1, 2, 3, 8] {
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build()
            .unwrap();
        results.push((threads, pool.install(|| run_all(&x, cols))));
    }
    for (threads, r) in &results[1..] {
        assert!(
            r == &results[0].1,
            "{rows}x{cols} {}: {threads} threads differ from 1",
            E::NAME
        );
    }
}

#[test]
fn bitwise_identical_across_thread_counts() {
    for (rows, cols) in [
        (1, 300_000),
        (3, 140_000),
        (200, 1000),
        (5000, 20),
        (7, 70_000),
    ] {
        check_shape::<f32>(rows, cols);
        check_shape::<f64>(rows, cols);
    }
}

/// Cross-entropy of a few huge rows splits each row's passes into segments across the
/// threads (one row at a time): the results, the gradient included, hold the same bits as on
/// one thread, where the rows run whole (the row-by-row kernels). The
/// options cover the paths a huge row takes: plain, temperature (scaled rows), smoothing with
/// weights and z-loss, an ignored row, a NaN row and one with a +inf logit (special rows), and
/// an lse so large that the gradient sums the row anew (logits near 2^41).
fn check_ce<E: xent::Element>(rows: usize, cols: usize) {
    use xent::{CrossEntropy, GradOutput, Reduction};
    let mut x = data::<E>(rows * cols);
    let targets: Vec<i64> = (0..rows as i64)
        .map(|r| (r * 7919 + 13) % cols as i64)
        .collect();
    let weights: Vec<f64> = (0..cols).map(|j| 0.5 + (j % 7) as f64 * 0.25).collect();
    let options = [
        CrossEntropy::new(),
        CrossEntropy::new().temperature(0.7),
        CrossEntropy::new()
            .label_smoothing(0.1)
            .weights(&weights)
            .z_loss(1e-4)
            .reduction(Reduction::None),
        CrossEntropy::new().ignore_index(targets[rows - 1]),
    ];
    let bits_of = |v: &[E]| v.iter().map(|e| e.to_f64().to_bits()).collect::<Vec<u64>>();
    let f64_bits = |v: &[f64]| v.iter().map(|e| e.to_bits()).collect::<Vec<u64>>();
    let run = |x: &[E]| -> Vec<u64> {
        let mut bits = Vec::new();
        for ce in &options {
            let out = ce.forward(x, cols, &targets).unwrap();
            let mut grad = vec![E::from_f64(0.0); x.len()];
            let out2 = ce.forward_backward(x, cols, &targets, &mut grad).unwrap();
            bits.extend(bits_of(&grad));
            let mut g = x.to_vec();
            let out3 = ce.forward_backward_inplace(&mut g, cols, &targets).unwrap();
            assert!(
                bits_of(&g) == bits_of(&grad),
                "{}: in place differs",
                E::NAME
            );
            let up: Vec<f64> = (0..rows).map(|r| 1.0 + r as f64).collect();
            ce.backward(x, cols, &targets, &out.lse, GradOutput::Rows(&up), &mut g)
                .unwrap();
            bits.extend(bits_of(&g));
            for o in [&out, &out2, &out3] {
                assert!(
                    f64_bits(&o.lse) == f64_bits(&out.lse),
                    "{}: lse differs",
                    E::NAME
                );
                bits.extend(f64_bits(&o.row_losses));
                bits.push(o.loss.to_bits());
                bits.push(o.correct as u64);
            }
            bits.extend(f64_bits(&out.lse));
        }
        bits
    };
    let check = |x: &[E], what: &str| {
        let mut results = Vec::new();
        for threads in [1, 2, 3] {
            let pool = rayon::ThreadPoolBuilder::new()
                .num_threads(threads)
                .build()
                .unwrap();
            results.push(pool.install(|| run(x)));
        }
        for (k, r) in results.iter().enumerate().skip(1) {
            assert!(
                r == &results[0],
                "CE {rows}x{cols} {} {what}: {} threads differ from 1",
                E::NAME,
                k + 1
            );
        }
    };
    check(&x, "regular");
    x[3] = E::from_f64(f64::NAN);
    if rows > 1 {
        x[cols + 5] = E::from_f64(f64::INFINITY);
    }
    check(&x, "special");
    let offset = 2f64.powi(41);
    let big: Vec<E> = data::<f64>(rows * cols)
        .iter()
        .map(|v| E::from_f64(offset + v * 2f64.powi(30)))
        .collect();
    check(&big, "coarse lse");
}

#[test]
#[cfg_attr(
    debug_assertions,
    ignore = "minutes at opt-level 0; CI runs it in release"
)]
fn cross_entropy_huge_rows_identical_across_thread_counts() {
    check_ce::<f32>(1, 300_000);
    check_ce::<f32>(3, 270_000);
    check_ce::<f64>(3, 140_000);
    check_ce::<half::bf16>(2, 600_000);
}

/// Outputs of 16 MiB and more are written with non-temporal stores (after an unaligned head);
/// they must hold the same bits as the regular stores of a row-by-row call.
#[test]
fn streaming_stores_match_regular_stores() {
    fn check<E: xent::Element>(rows: usize, cols: usize) {
        let x = data::<E>(rows * cols);
        for offset in [0usize, 1, 3] {
            let mut big = vec![E::from_f64(0.0); rows * cols + offset];
            let out = &mut big[offset..];
            xent::softmax_rows(&x, cols, out).unwrap();
            let mut one = vec![E::from_f64(0.0); cols];
            for r in (0..rows).step_by(97) {
                xent::softmax_rows(&x[r * cols..(r + 1) * cols], cols, &mut one).unwrap();
                assert!(
                    one == out[r * cols..(r + 1) * cols],
                    "softmax row {r}, offset {offset}"
                );
            }
            Softmax::new().log_softmax_rows(&x, cols, out).unwrap();
            for r in (0..rows).step_by(89) {
                xent::log_softmax_rows(&x[r * cols..(r + 1) * cols], cols, &mut one).unwrap();
                assert!(one == out[r * cols..(r + 1) * cols], "log_softmax row {r}");
            }
            xent::exp(&x, out).unwrap();
            for r in (0..rows).step_by(101) {
                xent::exp(&x[r * cols..(r + 1) * cols], &mut one).unwrap();
                assert!(one == out[r * cols..(r + 1) * cols], "exp row {r}");
            }
        }
    }
    // 300 000-element rows recompute (beyond the store limit), 8 000-element rows store and
    // rescale (through the task's scratch row, which a streamed call uses for f32 / f64 too);
    // 17 MB and more in all, and the shorter rows on every path (each has its own streaming
    // stores).
    check::<f32>(15, 300_000);
    check::<f64>(8, 300_000);
    // (Every path in release; the detected one at opt-level 0, where this takes minutes.)
    let paths = if cfg!(debug_assertions) {
        vec![xent::isa()]
    } else {
        common::paths()
    };
    for path in paths {
        let _forced = xent::force_isa(path).unwrap();
        check::<f32>(600, 8000);
        check::<f64>(300, 8000);
        check::<half::bf16>(1100, 8000);
        check::<half::f16>(1100, 8000);
        // Short rows (column-major batches of rows, hinted ahead from memory).
        check::<f32>(220_000, 20);
        check::<f64>(170_000, 13);
        check::<half::bf16>(450_000, 20);
    }
}
