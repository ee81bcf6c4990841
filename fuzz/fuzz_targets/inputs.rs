//! Structured fuzz inputs, shared by the fuzz targets and by `tests/fuzz_corpus.rs` (which
//! replays the committed corpus on stable Rust through the same decoding).
#![allow(dead_code)]

use arbitrary::Arbitrary;

/// One value, biased toward trouble: specials, extremes, subnormals, huge spreads.
#[derive(Arbitrary, Debug, Clone, Copy)]
pub enum Value {
    Special(u8),
    Small(i16),
    Scaled(i16, i8),
    Bits(u64),
}

impl Value {
    pub fn to_f64(self) -> f64 {
        match self {
            Value::Special(k) => {
                let s = xent::fuzz_checks::special_f64();
                s[k as usize % s.len()]
            }
            Value::Small(v) => v as f64 / 256.0,
            Value::Scaled(v, e) => v as f64 * 2f64.powi(e as i32 / 2),
            Value::Bits(b) => f64::from_bits(b),
        }
    }
}

/// A batch of rows for the row kernels.
#[derive(Arbitrary, Debug)]
pub struct RowsInput {
    pub f64: bool,
    pub cols: u8,
    pub tau: u8,
    pub scalar: bool,
    pub values: Vec<Value>,
}

impl RowsInput {
    pub fn temperature(&self) -> f64 {
        [1.0, 1.0, 0.5, 2.0, 1e-3, 1e3, 0.7, 1e-30][self.tau as usize % 8]
    }
    /// Column count: every small count, and multiples around the vector and block widths.
    pub fn cols(&self) -> usize {
        let c = self.cols as usize;
        if c < 128 {
            c.max(1)
        } else {
            (c - 127) * 37
        }
    }
}

/// A flat slice for exp / max.
#[derive(Arbitrary, Debug)]
pub struct SliceInput {
    pub f64: bool,
    pub scalar: bool,
    pub offset: u8,
    pub values: Vec<Value>,
}

/// Shapes and options that may be invalid.
#[derive(Arbitrary, Debug)]
pub struct ValidationInput {
    pub f64: bool,
    pub len: u8,
    pub cols: u8,
    pub out_len: u8,
    pub tau: Value,
}

pub fn values<E: xent::Element>(v: &[Value]) -> Vec<E> {
    v.iter().map(|x| E::from_f64(x.to_f64())).collect()
}

/// Runs `f` on the scalar path when asked, else on the detected one.
pub fn on_path(scalar: bool, f: impl FnOnce()) {
    let _guard = if scalar {
        Some(xent::force_isa(xent::IsaPath::Scalar).unwrap())
    } else {
        None
    };
    f();
}

pub fn run_rows(input: &RowsInput) {
    let cols = input.cols();
    let rows = (input.values.len() / cols).min(64);
    let vals = &input.values[..rows * cols];
    let tau = input.temperature();
    on_path(input.scalar, || {
        if input.f64 {
            xent::fuzz_checks::check_rows::<f64>(&values::<f64>(vals), cols, tau);
        } else {
            xent::fuzz_checks::check_rows::<f32>(&values::<f32>(vals), cols, tau);
        }
    });
}

pub fn run_slice(input: &SliceInput, check_exp: bool) {
    let off = (input.offset as usize % 8).min(input.values.len());
    let vals = &input.values[off..];
    on_path(input.scalar, || {
        if input.f64 {
            let v = values::<f64>(vals);
            if check_exp {
                xent::fuzz_checks::check_exp(&v)
            } else {
                xent::fuzz_checks::check_max(&v)
            }
        } else {
            let v = values::<f32>(vals);
            if check_exp {
                xent::fuzz_checks::check_exp(&v)
            } else {
                xent::fuzz_checks::check_max(&v)
            }
        }
    });
}

pub fn run_validation(input: &ValidationInput) {
    let len = input.len as usize;
    let cols = input.cols as usize % 40;
    let out_len = input.out_len as usize;
    let tau = input.tau.to_f64();
    if input.f64 {
        let x: Vec<f64> = (0..len).map(|i| i as f64 * 0.25).collect();
        xent::fuzz_checks::check_validation(&x, cols, out_len, tau);
    } else {
        let x: Vec<f32> = (0..len).map(|i| i as f32 * 0.25).collect();
        xent::fuzz_checks::check_validation(&x, cols, out_len, tau);
    }
}

/// A cross-entropy batch with options that may be invalid.
#[derive(Arbitrary, Debug)]
pub struct CrossEntropyInput {
    pub f64: bool,
    pub scalar: bool,
    pub cols: u8,
    pub reduction: u8,
    pub smoothing: u8,
    pub z_loss: u8,
    pub softcap: u8,
    pub tau: u8,
    pub weights: Option<Vec<u8>>,
    pub targets: Vec<i8>,
    pub values: Vec<Value>,
}

pub fn run_cross_entropy(input: &CrossEntropyInput) {
    let cols = (input.cols as usize % 70).max(1);
    let rows = (input.values.len() / cols).min(16);
    let vals = &input.values[..rows * cols];
    let pick = |k: u8, options: &[f64]| options[k as usize % options.len()];
    let case = xent::fuzz_checks::CeCase {
        reduction: [
            xent::Reduction::Mean,
            xent::Reduction::Sum,
            xent::Reduction::None,
        ][input.reduction as usize % 3],
        ignore_index: -100,
        // Invalid values included: the checks demand an error then.
        weights: input.weights.as_ref().map(|w| {
            (0..cols)
                .map(|j| match w.get(j).copied().unwrap_or(1) {
                    255 => -1.0,
                    254 => f64::NAN,
                    v => v as f64 / 16.0,
                })
                .collect()
        }),
        label_smoothing: pick(input.smoothing, &[0.0, 0.0, 0.1, 1.0, 1.5, -0.1]),
        z_loss: pick(input.z_loss, &[0.0, 0.0, 1e-4, 0.1, -1.0]),
        softcap: [
            None,
            None,
            Some(5.0),
            Some(30.0),
            Some(0.0),
            Some(f64::INFINITY),
        ][input.softcap as usize % 6],
        temperature: pick(input.tau, &[1.0, 1.0, 0.5, 2.0, 1e-3, 0.0, f64::NAN]),
    };
    // Targets: valid classes, ignore_index, and out-of-range / negative values.
    let targets: Vec<i64> = (0..rows)
        .map(|r| match input.targets.get(r).copied().unwrap_or(0) {
            -100 => -100,
            t if t < -100 => t as i64 + 50,
            t => t as i64,
        })
        .collect();
    on_path(input.scalar, || {
        if input.f64 {
            xent::fuzz_checks::check_cross_entropy(
                &values::<f64>(vals),
                cols,
                &targets,
                &case,
                None,
            );
        } else {
            xent::fuzz_checks::check_cross_entropy(
                &values::<f32>(vals),
                cols,
                &targets,
                &case,
                None,
            );
        }
    });
}

/// Every kernel family in half precision (a separate target, so that the f32 / f64 targets'
/// input layouts, and with them their committed regressions, stay as they were).
#[derive(Arbitrary, Debug)]
pub struct HalfInput {
    pub kind: u8,
    pub bf16: bool,
    pub scalar: bool,
    pub cols: u8,
    pub tau: u8,
    pub smoothing: u8,
    pub targets: Vec<i8>,
    pub values: Vec<Value>,
}

fn run_half_typed<E: xent::Element>(input: &HalfInput) {
    let vals: Vec<E> = values::<E>(&input.values);
    match input.kind % 4 {
        0 => {
            let cols = (input.cols as usize % 200).max(1);
            let rows = (vals.len() / cols).min(32);
            let tau = [1.0, 1.0, 0.5, 2.0, 1e-3, 1e3, 0.7][input.tau as usize % 7];
            xent::fuzz_checks::check_rows(&vals[..rows * cols], cols, tau);
        }
        1 => xent::fuzz_checks::check_exp(&vals),
        2 => xent::fuzz_checks::check_max(&vals),
        _ => {
            let cols = (input.cols as usize % 70).max(1);
            let rows = (vals.len() / cols).min(16);
            let targets: Vec<i64> = (0..rows)
                .map(|r| match input.targets.get(r).copied().unwrap_or(0) {
                    -100 => -100,
                    t => t as i64,
                })
                .collect();
            let case = xent::fuzz_checks::CeCase {
                reduction: xent::Reduction::Mean,
                ignore_index: -100,
                weights: None,
                label_smoothing: [0.0, 0.1, 1.0][input.smoothing as usize % 3],
                z_loss: [0.0, 1e-4][(input.smoothing as usize / 3) % 2],
                softcap: None,
                temperature: [1.0, 0.5, 2.0][input.tau as usize % 3],
            };
            xent::fuzz_checks::check_cross_entropy(
                &vals[..rows * cols],
                cols,
                &targets,
                &case,
                None,
            );
        }
    }
}

pub fn run_half(input: &HalfInput) {
    on_path(input.scalar, || {
        if input.bf16 {
            run_half_typed::<xent::half::bf16>(input)
        } else {
            run_half_typed::<xent::half::f16>(input)
        }
    });
}

/// One or two rows of 131 072 … 147 455 entries: two segments or more each, so that in a
/// call of so few rows every kernel splits each row across threads (`kernels::huge_row`,
/// cross-entropy's `CallRows::row`). The entries are a short pattern repeated, with a few
/// planted anywhere (specials included): libFuzzer's inputs stay small.
#[derive(Arbitrary, Debug)]
pub struct HugeRowsInput {
    pub cross_entropy: bool,
    pub f64: bool,
    pub scalar: bool,
    pub rows: u8,
    pub extra: u16,
    pub tau: u8,
    pub smoothing: u8,
    pub weighted: bool,
    pub targets: Vec<u32>,
    pub pattern: Vec<Value>,
    pub planted: Vec<(u32, Value)>,
}

impl HugeRowsInput {
    pub fn rows(&self) -> usize {
        1 + self.rows as usize % 2
    }
    pub fn cols(&self) -> usize {
        2 * 65_536 + self.extra as usize % 16_384
    }
    pub fn values<E: xent::Element>(&self) -> Vec<E> {
        let n = self.rows() * self.cols();
        let pattern: Vec<E> = if self.pattern.is_empty() {
            vec![E::from_f64(0.0)]
        } else {
            values(&self.pattern[..self.pattern.len().min(64)])
        };
        let mut x: Vec<E> = (0..n).map(|i| pattern[i % pattern.len()]).collect();
        for &(at, v) in self.planted.iter().take(8) {
            x[at as usize % n] = E::from_f64(v.to_f64());
        }
        x
    }
}

/// Runs `f` in a pool of `threads` threads, on the ISA path of the calling thread (a forced
/// path is the forcing thread's alone: the pool's thread forces it again).
fn in_pool<T: Send>(threads: usize, f: impl FnOnce() -> T + Send) -> T {
    let path = xent::isa();
    rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build()
        .unwrap()
        .install(|| {
            let _forced = xent::force_isa(path).unwrap();
            f()
        })
}

fn run_huge_typed<E: xent::Element>(input: &HugeRowsInput) {
    let (rows, cols) = (input.rows(), input.cols());
    let x = input.values::<E>();
    let tau = [1.0, 0.7][input.tau as usize % 2];
    if !input.cross_entropy {
        // Against the oracle with the rows split across two threads, then the outputs with
        // one and two threads bitwise equal (tests/determinism.rs adds three).
        in_pool(2, || xent::fuzz_checks::check_rows(&x, cols, tau));
        let sm = xent::Softmax::new().temperature(tau);
        let run = || {
            let mut out = vec![E::from_f64(0.0); x.len()];
            let mut lse = vec![E::from_f64(0.0); rows];
            sm.softmax_rows(&x, cols, &mut out).unwrap();
            sm.logsumexp_rows(&x, cols, &mut lse).unwrap();
            let bits = |v: &[E]| v.iter().map(|e| e.to_f64().to_bits()).collect::<Vec<_>>();
            (bits(&out), bits(&lse))
        };
        assert!(
            in_pool(1, run) == in_pool(2, run),
            "two threads differ from one"
        );
        return;
    }
    let targets: Vec<i64> = (0..rows)
        .map(|r| input.targets.get(r).map_or(r as i64 * 7919, |&t| t as i64) % cols as i64)
        .collect();
    let case = xent::fuzz_checks::CeCase {
        reduction: xent::Reduction::None,
        ignore_index: -100,
        weights: input
            .weighted
            .then(|| (0..cols).map(|j| 0.5 + (j % 7) as f64 * 0.25).collect()),
        label_smoothing: [0.0, 0.1][input.smoothing as usize % 2],
        z_loss: 1e-4,
        softcap: None,
        temperature: tau,
    };
    in_pool(2, || {
        xent::fuzz_checks::check_cross_entropy(&x, cols, &targets, &case, None);
    });
    let ce = case.options();
    let run = || {
        let mut grad = vec![E::from_f64(0.0); x.len()];
        let out = ce.forward_backward(&x, cols, &targets, &mut grad).unwrap();
        let mut bits: Vec<u64> = grad.iter().map(|e| e.to_f64().to_bits()).collect();
        bits.extend(out.row_losses.iter().chain(&out.lse).map(|v| v.to_bits()));
        bits.push(out.loss.to_bits());
        bits
    };
    assert!(
        in_pool(1, run) == in_pool(2, run),
        "two threads differ from one"
    );
}

pub fn run_huge_rows(input: &HugeRowsInput) {
    on_path(input.scalar, || {
        if input.f64 {
            run_huge_typed::<f64>(input);
        } else {
            run_huge_typed::<f32>(input);
        }
    });
}
