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
    // rescale (f16 / bf16 through the task's scratch row); 17 MB and more in all, and the
    // shorter rows on every path (each has its own streaming stores).
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
    }
}
