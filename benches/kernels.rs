//! Criterion benchmarks: every kernel × f32/f64/f16/bf16 × the standard shapes, beside two baselines
//! measured in the same run: a plain three-pass Rust softmax with `exp` from std, and xent's own
//! scalar path (forced). The double-double oracle (`xent::reference`) is benchmarked at the
//! in-cache shape only: it takes minutes per iteration at the large ones. `wide`'s `f32x8::exp`
//! is the baseline of the exp group.
//!
//! ```text
//! cargo bench --bench kernels                       # everything (long)
//! cargo bench --bench kernels -- 'softmax/f32/4096x32000'
//! ```
//!
//! Throughput is reported in bytes of minimal traffic (input read once, output written once).

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use std::hint::black_box;
use std::time::Duration;
use xent::{Element, IsaPath};

const SHAPES: [(usize, usize); 6] = [
    (1_048_576, 20),
    (4096, 32_000),
    (1024, 128_256),
    (2048, 50_257),
    (64, 4096),
    (1, 16_777_216),
];

trait BenchFloat: Element + std::ops::Sub<Output = Self> + std::ops::Mul<Output = Self> {
    fn std_exp(self) -> Self;
    fn std_max(self, b: Self) -> Self;
}
impl BenchFloat for f32 {
    fn std_exp(self) -> Self {
        self.exp()
    }
    fn std_max(self, b: Self) -> Self {
        self.max(b)
    }
}
impl BenchFloat for f64 {
    fn std_exp(self) -> Self {
        self.exp()
    }
    fn std_max(self, b: Self) -> Self {
        self.max(b)
    }
}

macro_rules! bench_half {
    ($t:ty) => {
        impl BenchFloat for $t {
            fn std_exp(self) -> Self {
                <$t>::from_f32(self.to_f32().exp())
            }
            fn std_max(self, b: Self) -> Self {
                <$t>::from_f32(self.to_f32().max(b.to_f32()))
            }
        }
    };
}
bench_half!(xent::half::f16);
bench_half!(xent::half::bf16);

/// The plain baseline: max pass, exp-and-sum pass, scale pass per row, serial.
fn plain_softmax<E: BenchFloat>(x: &[E], cols: usize, out: &mut [E]) {
    for (row, o) in x.chunks(cols).zip(out.chunks_mut(cols)) {
        let m = row
            .iter()
            .copied()
            .fold(E::from_f64(f64::NEG_INFINITY), E::std_max);
        let mut s = 0f64;
        for (o, &v) in o.iter_mut().zip(row) {
            *o = (v - m).std_exp();
            s += o.to_f64();
        }
        let inv = E::from_f64(1.0 / s);
        o.iter_mut().for_each(|v| *v = *v * inv);
    }
}

fn data<E: Element>(n: usize) -> Vec<E> {
    (0..n)
        .map(|i| E::from_f64(((i as f64 * 0.618_033_988_7).fract() - 0.5) * 16.0))
        .collect()
}

fn bench_type<E: BenchFloat>(c: &mut Criterion) {
    for (rows, cols) in SHAPES {
        let n = rows * cols;
        let x = data::<E>(n);
        let mut out = x.clone();
        let mut lse = vec![E::from_f64(0.0); rows];
        let bytes = (n * std::mem::size_of::<E>()) as u64;
        let shape = format!("{rows}x{cols}");
        let paths: Vec<IsaPath> = IsaPath::ALL
            .into_iter()
            .filter(|p| p.is_available())
            .collect();

        let mut group = c.benchmark_group(format!("softmax/{}/{shape}", E::NAME));
        group.throughput(Throughput::Bytes(2 * bytes));
        for &p in &paths {
            group.bench_function(BenchmarkId::new("xent", p), |b| {
                let _g = xent::force_isa(p).unwrap();
                b.iter(|| xent::softmax_rows(black_box(&x), cols, &mut out).unwrap())
            });
            group.bench_function(BenchmarkId::new("xent_inplace", p), |b| {
                let _g = xent::force_isa(p).unwrap();
                b.iter(|| xent::softmax_rows_inplace(black_box(&mut out), cols).unwrap())
            });
        }
        group.bench_function("plain_3pass", |b| {
            b.iter(|| plain_softmax(black_box(&x), cols, &mut out))
        });
        if n <= 1 << 18 {
            group.bench_function("reference_oracle", |b| {
                b.iter(|| {
                    for row in x.chunks(cols) {
                        black_box(xent::reference::softmax(row, 1.0));
                    }
                })
            });
        }
        group.finish();

        // Cross-entropy: 1 and 2 threads (the machine's cores), dispatched path.
        let targets: Vec<u32> = (0..rows).map(|r| (r * 7919 % cols) as u32).collect();
        let ce = xent::CrossEntropy::new();
        let saved = ce.forward(&x, cols, &targets).unwrap().lse;
        let mut ce_out = xent::Output::default();
        for threads in [1usize, 2] {
            let pool = rayon::ThreadPoolBuilder::new()
                .num_threads(threads)
                .build()
                .unwrap();
            let mut group =
                c.benchmark_group(format!("cross_entropy/{}/{shape}/{threads}t", E::NAME));
            group.throughput(Throughput::Bytes(2 * bytes));
            group.bench_function("forward", |b| {
                b.iter(|| {
                    pool.install(|| ce.forward_into(black_box(&x), cols, &targets, &mut ce_out))
                })
            });
            group.bench_function("forward_backward", |b| {
                b.iter(|| {
                    pool.install(|| {
                        ce.forward_backward_into(
                            black_box(&x),
                            cols,
                            &targets,
                            &mut out,
                            &mut ce_out,
                        )
                    })
                })
            });
            group.bench_function("forward_backward_inplace", |b| {
                b.iter(|| {
                    pool.install(|| {
                        ce.forward_backward_inplace_into(
                            black_box(&mut out),
                            cols,
                            &targets,
                            &mut ce_out,
                        )
                    })
                })
            });
            group.bench_function("backward", |b| {
                b.iter(|| {
                    pool.install(|| {
                        ce.backward(
                            black_box(&x),
                            cols,
                            &targets,
                            &saved,
                            xent::GradOutput::Scalar(1.0),
                            &mut out,
                        )
                    })
                })
            });
            group.finish();
        }

        let mut group = c.benchmark_group(format!("log_softmax/{}/{shape}", E::NAME));
        group.throughput(Throughput::Bytes(2 * bytes));
        for &p in &paths {
            group.bench_function(BenchmarkId::new("xent", p), |b| {
                let _g = xent::force_isa(p).unwrap();
                b.iter(|| xent::log_softmax_rows(black_box(&x), cols, &mut out).unwrap())
            });
        }
        group.finish();

        let mut group = c.benchmark_group(format!("logsumexp/{}/{shape}", E::NAME));
        group.throughput(Throughput::Bytes(bytes));
        for &p in &paths {
            group.bench_function(BenchmarkId::new("xent", p), |b| {
                let _g = xent::force_isa(p).unwrap();
                b.iter(|| xent::logsumexp_rows(black_box(&x), cols, &mut lse).unwrap())
            });
        }
        group.finish();

        let mut group = c.benchmark_group(format!("max/{}/{shape}", E::NAME));
        group.throughput(Throughput::Bytes(bytes));
        for &p in &paths {
            group.bench_function(BenchmarkId::new("xent", p), |b| {
                let _g = xent::force_isa(p).unwrap();
                b.iter(|| xent::max(black_box(&x)))
            });
        }
        group.bench_function("std_fold", |b| {
            b.iter(|| {
                black_box(&x)
                    .iter()
                    .copied()
                    .fold(E::from_f64(f64::NEG_INFINITY), E::std_max)
            })
        });
        group.finish();

        let mut group = c.benchmark_group(format!("exp/{}/{shape}", E::NAME));
        group.throughput(Throughput::Bytes(2 * bytes));
        for &p in &paths {
            group.bench_function(BenchmarkId::new("xent", p), |b| {
                let _g = xent::force_isa(p).unwrap();
                b.iter(|| xent::exp(black_box(&x), &mut out).unwrap())
            });
        }
        group.bench_function("std", |b| {
            b.iter(|| {
                for (o, &v) in out.iter_mut().zip(black_box(&x)) {
                    *o = v.std_exp();
                }
            })
        });
        if E::NAME == "f32" {
            let xf: Vec<f32> = x.iter().map(|v| v.to_f64() as f32).collect();
            let mut of = vec![0f32; n];
            group.bench_function("wide_f32x8", |b| {
                b.iter(|| {
                    for (o, v) in of.chunks_exact_mut(8).zip(black_box(&xf).chunks_exact(8)) {
                        let v = wide::f32x8::from(<[f32; 8]>::try_from(v).unwrap());
                        o.copy_from_slice(&v.exp().to_array());
                    }
                })
            });
        }
        group.finish();
    }
}

fn benches(c: &mut Criterion) {
    bench_type::<f32>(c);
    bench_type::<f64>(c);
    bench_type::<xent::half::f16>(c);
    bench_type::<xent::half::bf16>(c);
}

criterion_group! {
    name = kernels;
    config = Criterion::default()
        .sample_size(10)
        .warm_up_time(Duration::from_millis(300))
        .measurement_time(Duration::from_secs(2));
    targets = benches
}
criterion_main!(kernels);
