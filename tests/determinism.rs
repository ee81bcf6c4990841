//! Results are bitwise identical for any number of threads, including one huge row that is
//! split across threads.

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
