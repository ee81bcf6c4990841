//! In-cache throughput on one thread, best of 40 runs (a tuning aid; the throughput example is
//! the real benchmark): exp on 16 KiB of f32; log-sum-exp, softmax, the cross-entropy forward
//! and the fused cross-entropy (out of place; f32, and bf16 for the fused) on 8 rows × 4096;
//! fused cross-entropy on 1638 rows × 20.
//!
//! `RAYON_NUM_THREADS=1 cargo run --release --example in_cache [-- --isa avx2+fma]`
use half::bf16;
use xent::CrossEntropy;

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
    let args: Vec<String> = std::env::args().collect();
    let _forced = args.iter().position(|a| a == "--isa").map(|i| {
        let name = args.get(i + 1).expect("--isa needs a path name");
        let path = xent::IsaPath::ALL
            .into_iter()
            .find(|p| p.name() == name)
            .unwrap_or_else(|| panic!("unknown isa {name}"));
        xent::force_isa(path).expect("this CPU cannot run that path")
    });
    // 8 rows × 4096: input and output (256 KiB) stay in the 512 KiB L2.
    let x: Vec<f32> = (0..8 * 4096)
        .map(|i| ((i as f32 * 0.618).fract() - 0.5) * 16.0)
        .collect();
    let xh: Vec<bf16> = x.iter().map(|&v| bf16::from_f32(v)).collect();
    let mut lse = vec![0f32; 8];
    let mut out = vec![0f32; x.len() + 100];
    let mut out_h = vec![bf16::ZERO; x.len()];
    let reps = 200;
    let small = &x[..4096];
    let ce = CrossEntropy::new();
    let mut ce_out = xent::Output::default();
    let targets: Vec<u32> = (0..8).map(|r| (r * 251) % 4096).collect();
    let narrow = 20;
    let narrow_rows = x.len() / narrow;
    let narrow_targets: Vec<u32> = (0..narrow_rows as u32).map(|r| r % 20).collect();
    let n_narrow = narrow_rows * narrow;
    let t_exp = best(|| {
        for _ in 0..reps * 8 {
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
    let t_ce = best(|| {
        for _ in 0..reps {
            ce.forward_backward_into(&x, 4096, &targets, &mut out[..x.len()], &mut ce_out)
                .unwrap();
            std::hint::black_box(&out);
        }
    });
    let t_ce_fwd = best(|| {
        for _ in 0..reps {
            ce.forward_into(&x, 4096, &targets, &mut ce_out).unwrap();
            std::hint::black_box(&ce_out);
        }
    });
    let t_ce_h = best(|| {
        for _ in 0..reps {
            ce.forward_backward_into(&xh, 4096, &targets, &mut out_h, &mut ce_out)
                .unwrap();
            std::hint::black_box(&out_h);
        }
    });
    let t_ce_narrow = best(|| {
        for _ in 0..reps {
            ce.forward_backward_into(
                &x[..n_narrow],
                narrow,
                &narrow_targets,
                &mut out[..n_narrow],
                &mut ce_out,
            )
            .unwrap();
            std::hint::black_box(&out);
        }
    });
    let n = (reps * x.len()) as f64;
    let gelem = |t: f64| n / t / 1e9;
    println!(
        "isa {}, Gelem/s: exp (16 KiB) {:.2}, logsumexp {:.2}, softmax {:.2}, \
         CE forward f32 {:.2}, CE fused f32 {:.2}, bf16 {:.2}, 20 columns f32 {:.2}",
        xent::isa(),
        gelem(t_exp),
        gelem(t_lse),
        gelem(t_sm),
        gelem(t_ce_fwd),
        gelem(t_ce),
        gelem(t_ce_h),
        (reps * n_narrow) as f64 / t_ce_narrow / 1e9,
    );
}
