//! The main benchmark: how close each kernel gets to this machine's memory bandwidth.
//!
//! ```text
//! cargo run --release --example throughput                 # f32, three shapes: about a minute
//! cargo run --release --example throughput -- --dtypes f32,f64 --shapes 1024x128256,2048x50257
//! cargo run --release --example throughput -- --quick     # CI smoke run
//! cargo run --release --example throughput -- --kernels softmax,logsumexp \
//!     --shapes 4096x32000,1x16777216 --dtypes f32 --threads 1,2 --isa scalar
//! cargo run --release --example throughput -- --store-limit 0   # softmax always recomputes
//! cargo run --release --example throughput -- --mask 0.5   # half the classes are −inf
//! cargo run --release --example throughput -- --label-smoothing 0.1   # cross-entropy option
//! cargo run --release --example throughput -- --fresh   # in-place kernels on fresh logits
//! ```
//!
//! It measures the streaming bandwidth itself first (read-only, copy, in-place read-modify-write,
//! on buffers far larger than the caches), then for each kernel, shape, element type and thread
//! count prints the best-of-N time, the bandwidth of the kernel's minimal traffic (read the input
//! once; write the output once where there is one), that as a percentage of the matching
//! measured limit, and the speedup over a plain three-pass Rust softmax with `f32::exp` /
//! `f64::exp` (max pass, exp-and-sum pass, scale pass) run in the same process.
//!
//! The in-place kernels run, by default, on what their previous run left in the buffer (the
//! traffic is the same). The values are not: a cross-entropy gradient with mean reduction is
//! about 1/(rows · cols) per entry, which f16 rounds to zero, so repeated f16 runs see rows of
//! zeros. `--fresh` copies the logits back before every timed run of an in-place kernel and
//! then reads a buffer twice the size of a 32 MiB last-level cache (both untimed), so that
//! each run starts, as a training step does, on fresh logits that come from memory.

use std::hint::black_box;
use std::time::{Duration, Instant};

use rayon::prelude::*;
use xent::{Element, IsaPath};

#[derive(Clone, Copy, Debug, PartialEq)]
enum Kernel {
    Max,
    Exp,
    LogSumExp,
    Softmax,
    SoftmaxInplace,
    LogSoftmax,
    /// Cross-entropy loss only (one read).
    CeForward,
    /// Cross-entropy loss and gradient into a separate buffer.
    CeForwardBackward,
    /// Cross-entropy loss and gradient written over the logits.
    CeForwardBackwardInplace,
    /// The gradient from a saved per-row log-sum-exp.
    CeBackward,
    /// The plain three-pass softmax the table compares against.
    Plain,
}

impl Kernel {
    const ALL: [Kernel; 11] = [
        Kernel::Max,
        Kernel::Exp,
        Kernel::LogSumExp,
        Kernel::Softmax,
        Kernel::SoftmaxInplace,
        Kernel::LogSoftmax,
        Kernel::CeForward,
        Kernel::CeForwardBackward,
        Kernel::CeForwardBackwardInplace,
        Kernel::CeBackward,
        Kernel::Plain,
    ];
    fn name(self) -> &'static str {
        match self {
            Kernel::Max => "max",
            Kernel::Exp => "exp",
            Kernel::LogSumExp => "logsumexp",
            Kernel::Softmax => "softmax",
            Kernel::SoftmaxInplace => "softmax_inplace",
            Kernel::LogSoftmax => "log_softmax",
            Kernel::CeForward => "ce_forward",
            Kernel::CeForwardBackward => "ce_fwd_bwd",
            Kernel::CeForwardBackwardInplace => "ce_fwd_bwd_inplace",
            Kernel::CeBackward => "ce_backward",
            Kernel::Plain => "plain3pass",
        }
    }
    /// Which measured bandwidth bounds this kernel.
    fn traffic(self) -> Traffic {
        match self {
            Kernel::Max | Kernel::LogSumExp | Kernel::CeForward => Traffic::Read,
            Kernel::SoftmaxInplace | Kernel::CeForwardBackwardInplace => Traffic::ReadModifyWrite,
            _ => Traffic::Copy,
        }
    }
}

#[derive(Clone, Copy, Debug)]
enum Traffic {
    Read,
    Copy,
    ReadModifyWrite,
}

struct Options {
    kernels: Vec<Kernel>,
    shapes: Vec<(usize, usize)>,
    dtypes: Vec<String>,
    threads: Vec<usize>,
    isa: Option<IsaPath>,
    min_time: Duration,
    quick: bool,
    /// Fraction of each row's classes masked with −inf (a constrained vocabulary).
    mask: f64,
    /// The cross-entropy kernels' label smoothing ε.
    smoothing: f64,
    /// In-place kernels start every timed run on the logits, evicted from the caches.
    fresh: bool,
}

fn parse_args() -> Options {
    let mut o = Options {
        kernels: Kernel::ALL.to_vec(),
        shapes: vec![(4096, 32000), (1048576, 20), (1, 16777216)],
        dtypes: vec!["f32".into()],
        threads: vec![1, 2],
        isa: None,
        min_time: Duration::from_millis(200),
        quick: false,
        mask: 0.0,
        smoothing: 0.0,
        fresh: false,
    };
    let args: Vec<String> = std::env::args().skip(1).collect();
    let mut i = 0;
    while i < args.len() {
        let val = || args.get(i + 1).cloned().unwrap_or_default();
        match args[i].as_str() {
            "--quick" => {
                o.quick = true;
                o.shapes = vec![(256, 4096), (1, 1 << 20)];
                o.min_time = Duration::from_millis(20);
            }
            "--kernels" => {
                o.kernels = val()
                    .split(',')
                    .map(|k| {
                        *Kernel::ALL
                            .iter()
                            .find(|c| c.name() == k)
                            .unwrap_or_else(|| panic!("unknown kernel {k}"))
                    })
                    .collect();
                i += 1;
            }
            "--shapes" => {
                o.shapes = val()
                    .split(',')
                    .map(|s| {
                        let (r, c) = s.split_once('x').expect("shape is ROWSxCOLS");
                        (r.parse().unwrap(), c.parse().unwrap())
                    })
                    .collect();
                i += 1;
            }
            "--dtypes" => {
                o.dtypes = val().split(',').map(String::from).collect();
                i += 1;
            }
            "--threads" => {
                o.threads = val().split(',').map(|t| t.parse().unwrap()).collect();
                i += 1;
            }
            "--isa" => {
                let v = val();
                o.isa = Some(
                    *IsaPath::ALL
                        .iter()
                        .find(|p| p.name() == v)
                        .unwrap_or_else(|| panic!("unknown isa {v}")),
                );
                i += 1;
            }
            "--store-limit" => {
                xent::set_softmax_store_limit_bytes(val().parse().unwrap());
                i += 1;
            }
            "--mask" => {
                o.mask = val().parse().unwrap();
                assert!(
                    (0.0..1.0).contains(&o.mask),
                    "--mask takes a fraction in [0, 1)"
                );
                i += 1;
            }
            "--label-smoothing" => {
                o.smoothing = val().parse().unwrap();
                i += 1;
            }
            "--fresh" => o.fresh = true,
            "--min-ms" => {
                o.min_time = Duration::from_millis(val().parse().unwrap());
                i += 1;
            }
            other => {
                panic!("unknown argument {other} (see the doc comment of examples/throughput.rs)")
            }
        }
        i += 1;
    }
    o
}

/// Best time of repeated runs, running for at least `min_time` (and at least 3 times).
fn best_time(min_time: Duration, mut f: impl FnMut()) -> Duration {
    best_time_prepared(min_time, &mut (), |_| {}, |_| f())
}

/// [`best_time`] with `prepare` run on `state`, untimed, before every run of `f` on it.
fn best_time_prepared<S: ?Sized>(
    min_time: Duration,
    state: &mut S,
    mut prepare: impl FnMut(&mut S),
    mut f: impl FnMut(&mut S),
) -> Duration {
    prepare(state);
    f(state); // warm up (page faults, caches, thread pool)
    let start = Instant::now();
    let mut best = Duration::MAX;
    let mut runs = 0;
    while runs < 3 || start.elapsed() < min_time {
        prepare(state);
        let t = Instant::now();
        f(state);
        best = best.min(t.elapsed());
        runs += 1;
    }
    best
}

/// Reads `buf` (64 MiB, twice this machine's last-level cache) so that whatever was cached
/// before is evicted.
fn evict_caches(buf: &[u64]) {
    black_box(buf.iter().fold(0u64, |a, &b| a ^ b));
}

struct Bandwidth {
    read: f64,
    copy: f64,
    rmw: f64,
}

impl Bandwidth {
    fn limit(&self, t: Traffic) -> f64 {
        match t {
            Traffic::Read => self.read,
            Traffic::Copy => self.copy,
            Traffic::ReadModifyWrite => self.rmw,
        }
    }
}

/// Streaming bandwidth in GB/s (bytes read + bytes written per second), on `bytes`-sized buffers
/// far larger than the caches: read-only (a sum), copy with non-temporal stores (what a kernel
/// writing a fresh output can reach), and in-place read-modify-write.
fn measure_bandwidth(bytes: usize, min_time: Duration) -> Bandwidth {
    let n = bytes / 8;
    let src: Vec<u64> = (0..n as u64).collect();
    let mut dst = vec![0u64; n];
    let chunk = 1 << 16;
    let read = best_time(min_time, || {
        let s: u64 = src
            .par_chunks(chunk)
            .map(|c| {
                let mut acc = [0u64; 8];
                for v in c.chunks_exact(8) {
                    for (a, &b) in acc.iter_mut().zip(v) {
                        *a = a.wrapping_add(b);
                    }
                }
                acc.iter().fold(0u64, |a, &b| a.wrapping_add(b))
            })
            .reduce(|| 0, u64::wrapping_add);
        black_box(s);
    });
    let copy = best_time(min_time, || {
        dst.par_chunks_mut(chunk)
            .zip(src.par_chunks(chunk))
            .for_each(|(d, s)| copy_streaming(s, d));
    });
    let rmw = best_time(min_time, || {
        dst.par_chunks_mut(chunk)
            .for_each(|d| d.iter_mut().for_each(|v| *v = v.wrapping_add(1)));
    });
    let gb = bytes as f64 / 1e9;
    Bandwidth {
        read: gb / read.as_secs_f64(),
        copy: 2.0 * gb / copy.as_secs_f64(),
        rmw: 2.0 * gb / rmw.as_secs_f64(),
    }
}

/// Copies with non-temporal (cache-bypassing) stores where the CPU has them (SSE2 on x86-64).
fn copy_streaming(src: &[u64], dst: &mut [u64]) {
    #[cfg(target_arch = "x86_64")]
    {
        use std::arch::x86_64::{__m128i, _mm_loadu_si128, _mm_sfence, _mm_stream_si128};
        let pairs = src.len().min(dst.len()) / 2;
        let aligned = (dst.as_ptr() as usize).is_multiple_of(16);
        if aligned {
            for i in 0..pairs {
                // SAFETY: SSE2 is part of x86-64; i * 2 + 2 <= len for both slices, and dst is
                // 16-byte aligned as _mm_stream_si128 requires.
                unsafe {
                    let v = _mm_loadu_si128(src.as_ptr().add(2 * i) as *const __m128i);
                    _mm_stream_si128(dst.as_mut_ptr().add(2 * i) as *mut __m128i, v);
                }
            }
            dst[2 * pairs..].copy_from_slice(&src[2 * pairs..]);
            // SAFETY: SSE2; orders the streaming stores before later accesses.
            unsafe { _mm_sfence() };
            return;
        }
    }
    dst.copy_from_slice(src);
}

/// The baseline: max pass, exp-and-sum pass (stores the exponentials), scale pass, per row.
trait PlainFloat: Element + std::ops::Sub<Output = Self> + std::ops::Mul<Output = Self> {
    fn exp_(self) -> Self;
    fn max_(self, b: Self) -> Self;
}
impl PlainFloat for f32 {
    fn exp_(self) -> Self {
        self.exp()
    }
    fn max_(self, b: Self) -> Self {
        self.max(b)
    }
}
impl PlainFloat for f64 {
    fn exp_(self) -> Self {
        self.exp()
    }
    fn max_(self, b: Self) -> Self {
        self.max(b)
    }
}

macro_rules! plain_half {
    ($t:ty) => {
        impl PlainFloat for $t {
            fn exp_(self) -> Self {
                <$t>::from_f32(self.to_f32().exp())
            }
            fn max_(self, b: Self) -> Self {
                <$t>::from_f32(self.to_f32().max(b.to_f32()))
            }
        }
    };
}
plain_half!(xent::half::f16);
plain_half!(xent::half::bf16);

fn plain_softmax_rows<E: PlainFloat>(x: &[E], cols: usize, out: &mut [E]) {
    let per_task = (65536 / (cols * std::mem::size_of::<E>())).max(1) * cols;
    x.par_chunks(per_task)
        .zip(out.par_chunks_mut(per_task))
        .for_each(|(x, out)| {
            for (row, o) in x.chunks(cols).zip(out.chunks_mut(cols)) {
                let m = row
                    .iter()
                    .copied()
                    .fold(E::from_f64(f64::NEG_INFINITY), E::max_);
                let mut s = 0f64;
                for (o, &v) in o.iter_mut().zip(row) {
                    *o = (v - m).exp_();
                    s += o.to_f64();
                }
                let inv = E::from_f64(1.0 / s);
                o.iter_mut().for_each(|v| *v = *v * inv);
            }
        });
}

/// Targets and a saved log-sum-exp for the cross-entropy kernels.
struct CeData {
    loss: xent::CrossEntropy,
    targets: Vec<u32>,
    lse: Vec<f64>,
    out: xent::Output,
}

fn run_kernel<E: PlainFloat>(
    k: Kernel,
    x: &[E],
    cols: usize,
    out: &mut [E],
    lse: &mut [E],
    ce: &mut CeData,
) {
    let loss = ce.loss.clone();
    match k {
        Kernel::CeForward => loss
            .forward_into(x, cols, &ce.targets, &mut ce.out)
            .unwrap(),
        Kernel::CeForwardBackward => loss
            .forward_backward_into(x, cols, &ce.targets, out, &mut ce.out)
            .unwrap(),
        Kernel::CeForwardBackwardInplace => loss
            .forward_backward_inplace_into(out, cols, &ce.targets, &mut ce.out)
            .unwrap(),
        Kernel::CeBackward => loss
            .backward(
                x,
                cols,
                &ce.targets,
                &ce.lse,
                xent::GradOutput::Scalar(1.0),
                out,
            )
            .unwrap(),
        Kernel::Max => {
            black_box(xent::max(x));
        }
        Kernel::Exp => xent::exp(x, out).unwrap(),
        Kernel::LogSumExp => xent::logsumexp_rows(x, cols, lse).unwrap(),
        Kernel::Softmax => xent::softmax_rows(x, cols, out).unwrap(),
        Kernel::SoftmaxInplace => xent::softmax_rows_inplace(out, cols).unwrap(),
        Kernel::LogSoftmax => xent::log_softmax_rows(x, cols, out).unwrap(),
        Kernel::Plain => plain_softmax_rows(x, cols, out),
    }
}

fn bench_dtype<E: PlainFloat>(o: &Options, bw: &[(usize, Bandwidth)], path: IsaPath) {
    for &(rows, cols) in &o.shapes {
        let n = rows * cols;
        let mut seed = 0x1234_5678u64;
        let x: Vec<E> = (0..n)
            .map(|_| {
                seed = seed
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                E::from_f64(((seed >> 40) as f64 / (1u64 << 24) as f64 - 0.5) * 16.0)
            })
            .collect();
        // The same scattered set of classes masked in every row; targets are never masked.
        let masked = |j: usize| {
            let u = ((j as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15) >> 40) as f64;
            u / 16_777_216.0 < o.mask
        };
        let x: Vec<E> = if o.mask > 0.0 {
            x.iter()
                .enumerate()
                .map(|(i, &v)| {
                    if masked(i % cols) {
                        E::from_f64(f64::NEG_INFINITY)
                    } else {
                        v
                    }
                })
                .collect()
        } else {
            x
        };
        let mut out = x.clone();
        let mut lse = vec![E::from_f64(0.0); rows];
        let targets: Vec<u32> = (0..rows)
            .map(|r| {
                let t = r * 7919 % cols;
                (0..cols)
                    .map(|k| (t + k) % cols)
                    .find(|&j| !masked(j))
                    .unwrap_or(t) as u32
            })
            .collect();
        let loss = xent::CrossEntropy::new().label_smoothing(o.smoothing);
        let saved = loss.forward(&x, cols, &targets).unwrap();
        let mut ce = CeData {
            loss,
            targets,
            lse: saved.lse,
            out: xent::Output::default(),
        };
        let bytes = (n * std::mem::size_of::<E>()) as f64;
        let evict = if o.fresh {
            vec![1u64; 8 << 20]
        } else {
            Vec::new()
        };
        for &(threads, ref bw) in bw {
            let pool = rayon::ThreadPoolBuilder::new()
                .num_threads(threads)
                .build()
                .unwrap();
            let mut plain_ms = None;
            let mut lines = Vec::new();
            // The baseline runs first so every kernel line can quote the speedup over it.
            let mut order = o.kernels.clone();
            order.sort_by_key(|k| *k != Kernel::Plain);
            for &k in &order {
                let t = pool.install(|| {
                    let _g = xent::force_isa(path).unwrap();
                    // Without --fresh, the in-place kernels run on `out`, which holds the
                    // previous run's output: the same traffic as on fresh logits.
                    let fresh = o.fresh && matches!(k.traffic(), Traffic::ReadModifyWrite);
                    best_time_prepared(
                        o.min_time,
                        &mut out[..],
                        |out| {
                            if fresh {
                                out.copy_from_slice(&x);
                                evict_caches(&evict);
                            }
                        },
                        |out| run_kernel(k, &x, cols, out, &mut lse, &mut ce),
                    )
                });
                let ms = t.as_secs_f64() * 1e3;
                if k == Kernel::Plain {
                    plain_ms = Some(ms);
                }
                let traffic = match k.traffic() {
                    Traffic::Read => bytes,
                    _ => 2.0 * bytes,
                };
                let gbs = traffic / t.as_secs_f64() / 1e9;
                let pct = 100.0 * gbs / bw.limit(k.traffic());
                let speedup = plain_ms.map_or("-".into(), |p| format!("{:.2}x", p / ms));
                lines.push(format!(
                    "{:<16} {:>4} {:>12} {:>2} {:>10.3} {:>8.1} {:>6.0}% {:>9}",
                    k.name(),
                    E::NAME,
                    format!("{rows}x{cols}"),
                    threads,
                    ms,
                    gbs,
                    pct,
                    speedup
                ));
            }
            for l in lines {
                println!("{l}");
            }
        }
    }
}

fn main() {
    let o = parse_args();
    let path = o.isa.unwrap_or_else(xent::isa);
    println!(
        "xent throughput: isa {path} (detected {}), rayon threads {:?}",
        xent::isa(),
        o.threads
    );
    let bw_bytes = if o.quick { 64 << 20 } else { 512 << 20 };
    let bw: Vec<(usize, Bandwidth)> = o
        .threads
        .iter()
        .map(|&t| {
            let pool = rayon::ThreadPoolBuilder::new().num_threads(t).build().unwrap();
            let b = pool.install(|| measure_bandwidth(bw_bytes, o.min_time));
            println!(
                "bandwidth, {t} thread(s): read {:.1} GB/s, copy {:.1} GB/s, read-modify-write {:.1} GB/s",
                b.read, b.copy, b.rmw
            );
            (t, b)
        })
        .collect();
    println!(
        "{:<16} {:>4} {:>12} {:>2} {:>10} {:>8} {:>7} {:>9}",
        "kernel", "type", "shape", "th", "ms", "GB/s", "%limit", "vs plain"
    );
    for d in &o.dtypes {
        match d.as_str() {
            "f32" => bench_dtype::<f32>(&o, &bw, path),
            "f64" => bench_dtype::<f64>(&o, &bw, path),
            "f16" => bench_dtype::<xent::half::f16>(&o, &bw, path),
            "bf16" => bench_dtype::<xent::half::bf16>(&o, &bw, path),
            other => panic!("unknown dtype {other}"),
        }
    }
}
