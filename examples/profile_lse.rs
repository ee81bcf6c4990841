//! Best-of-N in-cache throughput of exp, log-sum-exp and softmax on one thread (a tuning aid;
//! the throughput example is the real benchmark).
fn best(mut f: impl FnMut()) -> f64 {
    let mut b = f64::MAX;
    for _ in 0..40 {
        let t = std::time::Instant::now();
        f();
        b = b.min(t.elapsed().as_secs_f64());
    }
    b
}
fn main() {
    let x: Vec<f32> = (0..16 * 4096)
        .map(|i| ((i as f32 * 0.618).fract() - 0.5) * 16.0)
        .collect();
    let mut lse = vec![0f32; 16];
    let mut out = vec![0f32; x.len() + 100];
    let n = x.len() as f64 * 50.0;
    let t = best(|| {
        for _ in 0..50 {
            xent::logsumexp_rows(&x, 4096, &mut lse).unwrap();
            std::hint::black_box(&lse);
        }
    });
    let t2 = best(|| {
        for _ in 0..50 {
            xent::exp(&x, &mut out[100..]).unwrap();
            std::hint::black_box(&out);
        }
    });
    let t3 = best(|| {
        for _ in 0..50 {
            xent::softmax_rows(&x, 4096, &mut out[100..]).unwrap();
            std::hint::black_box(&out);
        }
    });
    println!(
        "in cache, best of 40: lse {:.2} Gelem/s, exp {:.2} Gelem/s, softmax {:.2} Gelem/s",
        n / t / 1e9,
        n / t2 / 1e9,
        n / t3 / 1e9
    );
}
