//! In-cache throughput on one thread, best of 40 runs (a tuning aid; the throughput example is
//! the real benchmark): exp on 16 KiB of f32, log-sum-exp and softmax on 16 rows × 4096.
//!
//! `RAYON_NUM_THREADS=1 cargo run --release --example in_cache`
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
    let reps = 200;
    let small = &x[..4096];
    let t_exp = best(|| {
        for _ in 0..reps * 16 {
            xent::exp(small, &mut out[100..4196]).unwrap();
            std::hint::black_box(&out);
        }
    });
    let t_lse = best(|| {
        for _ in 0..reps {
            xent::logsumexp_rows(&x, 4096, &mut lse).unwrap();
            std::hint::black_box(&lse);
        }
    });
    let t_sm = best(|| {
        for _ in 0..reps {
            xent::softmax_rows(&x, 4096, &mut out[100..]).unwrap();
            std::hint::black_box(&out);
        }
    });
    let n = (reps * x.len()) as f64;
    println!(
        "isa {}: exp (16 KiB) {:.2} Gelem/s, logsumexp {:.2} Gelem/s, softmax {:.2} Gelem/s",
        xent::isa(),
        n / t_exp / 1e9,
        n / t_lse / 1e9,
        n / t_sm / 1e9
    );
}
