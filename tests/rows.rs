//! Softmax, log-softmax and log-sum-exp against the oracle: every length around the vector and
//! unroll widths, random lengths up to 100 000, every alignment, several value distributions,
//! special values, temperatures, and every instruction-set path.

mod common;

use common::rows::check_rows;
use common::{for_each_path, special_f64};
use proptest::prelude::*;
use xent::Element;

/// A value generator: a distribution family, a scale and an offset.
#[allow(clippy::too_many_arguments)]
fn values<E: Element>(
    n: usize,
    seed: u64,
    family: u8,
    scale: f64,
    offset: f64,
    specials: bool,
) -> Vec<E> {
    let mut s = seed | 1;
    let mut next = move || {
        s ^= s << 13;
        s ^= s >> 7;
        s ^= s << 17;
        s
    };
    let sp = special_f64();
    (0..n)
        .map(|_| {
            let u = (next() >> 11) as f64 / (1u64 << 53) as f64;
            if specials && next() % 16 == 0 {
                return E::from_f64(sp[(next() % sp.len() as u64) as usize]);
            }
            let v = match family % 4 {
                0 => (u - 0.5) * 2.0,                                           // uniform
                1 => (-2.0 * (u + 1e-300).ln()).sqrt() * (next() as f64).cos(), // ~normal
                2 => {
                    if u < 0.02 {
                        8.0
                    } else {
                        u - 1.0
                    }
                } // one dominant class
                _ => (u * 40.0).floor() / 4.0,                                  // many ties
            };
            E::from_f64(v * scale + offset)
        })
        .collect()
}

#[allow(clippy::too_many_arguments)]
fn check_all<E: Element>(
    rows: usize,
    cols: usize,
    seed: u64,
    family: u8,
    scale: f64,
    offset: f64,
    specials: bool,
    tau: f64,
    align: usize,
) {
    let x = values::<E>(rows * cols + align, seed, family, scale, offset, specials);
    let x = &x[align..];
    for_each_path(|_| {
        check_rows(x, cols, tau);
    });
}

const SCALES: [f64; 6] = [0.01, 1.0, 10.0, 100.0, 1e4, 1e30];

#[test]
fn every_small_length_every_alignment() {
    // 2 × (8 lanes × 4 accumulators) + 1 = 65 covers every head/tail split of the f32 path.
    for cols in 0..=65usize {
        for align in 0..8 {
            let scale = SCALES[(cols + align) % SCALES.len()];
            check_all::<f32>(
                3,
                cols.max(1),
                cols as u64 * 31 + align as u64,
                (cols % 4) as u8,
                scale,
                0.0,
                false,
                1.0,
                align,
            );
            check_all::<f64>(
                2,
                cols.max(1),
                cols as u64 * 17 + align as u64,
                (align % 4) as u8,
                scale,
                0.0,
                false,
                1.0,
                align,
            );
        }
    }
}

#[test]
fn special_values_every_path() {
    for cols in [1usize, 2, 7, 8, 9, 31, 33, 64, 100, 1025, 3000] {
        for seed in 0..6 {
            check_all::<f32>(
                4,
                cols,
                seed * 977 + cols as u64,
                seed as u8,
                10.0,
                0.0,
                true,
                1.0,
                0,
            );
            check_all::<f64>(
                4,
                cols,
                seed * 991 + cols as u64,
                seed as u8,
                10.0,
                0.0,
                true,
                1.0,
                0,
            );
        }
    }
}

/// Short rows run in batches of LANES rows (transposed): full batches, a partial last one,
/// special rows among ordinary ones, every length up to four vectors of the widest path.
#[test]
fn short_rows_in_full_batches() {
    for cols in [
        1usize, 2, 3, 4, 5, 7, 8, 9, 13, 16, 17, 20, 24, 31, 32, 33, 47, 48, 63, 64,
    ] {
        for (seed, specials) in [(1u64, false), (2, true), (3, true)] {
            check_all::<f32>(
                37,
                cols,
                seed * 7 + cols as u64,
                seed as u8,
                10.0,
                0.0,
                specials,
                1.0,
                0,
            );
            check_all::<f64>(
                19,
                cols,
                seed * 5 + cols as u64,
                seed as u8,
                10.0,
                0.0,
                specials,
                0.7,
                1,
            );
            check_all::<half::bf16>(
                35,
                cols,
                seed * 3 + cols as u64,
                0,
                4.0,
                0.0,
                specials,
                1.0,
                0,
            );
        }
    }
}

#[test]
fn temperatures() {
    for tau in [0.5, 2.0, 0.1, 7.3, 1e-3, 1e3] {
        for cols in [5usize, 64, 1500] {
            check_all::<f32>(3, cols, cols as u64, 1, 5.0, 0.0, true, tau, 1);
            check_all::<f64>(3, cols, cols as u64 + 1, 1, 5.0, 0.0, true, tau, 1);
        }
    }
}

#[test]
fn rows_that_span_blocks_segments_and_the_store_limit() {
    // 2048-element blocks, the 64 Ki-element store limit of f32, and 65 536-element segments.
    for cols in [
        1023usize, 2047, 2048, 2049, 4097, 65_535, 65_536, 65_537, 140_000,
    ] {
        check_all::<f32>(1, cols, cols as u64, 1, 20.0, 3.0, false, 1.0, 3);
        check_all::<f64>(1, cols, cols as u64, 2, 20.0, -3.0, false, 1.0, 1);
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    // Offsets near ±2^14 (f32) and 2^20 (f64) put a row's blocks on both sides of the limit of
    // the base-relative exponential (`simd::exp::exp_from_base`).
    #[test]
    fn random_shapes_f32(rows in 1usize..6, cols in 1usize..3000, seed in any::<u64>(),
                         family in 0u8..4, scale in prop::sample::select(SCALES.to_vec()),
                         offset in prop::sample::select(vec![0.0, 1e4, 16380.0, -16390.0, -1e8, 3e38]),
                         specials in any::<bool>(), align in 0usize..8,
                         tau in prop::sample::select(vec![1.0, 0.5, 3.0])) {
        check_all::<f32>(rows, cols, seed, family, scale, offset, specials, tau, align);
    }

    #[test]
    fn random_shapes_f64(rows in 1usize..6, cols in 1usize..3000, seed in any::<u64>(),
                         family in 0u8..4, scale in prop::sample::select(SCALES.to_vec()),
                         offset in prop::sample::select(vec![0.0, 1e4, 1048570.0, -1e8, 1e300]),
                         specials in any::<bool>(), align in 0usize..8,
                         tau in prop::sample::select(vec![1.0, 0.5, 3.0])) {
        check_all::<f64>(rows, cols, seed, family, scale, offset, specials, tau, align);
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 6, ..ProptestConfig::default() })]

    #[test]
    fn long_rows(cols in 3000usize..100_000, seed in any::<u64>(), family in 0u8..4) {
        check_all::<f32>(1, cols, seed, family, 10.0, 0.0, false, 1.0, 0);
        check_all::<f64>(1, cols, seed, family, 10.0, 0.0, false, 1.0, 0);
    }
}

/// Prints the worst errors over a fixed sweep (`cargo test --release --test rows report --
/// --nocapture`); the numbers in docs/accuracy.md come from this run.
#[test]
fn report_worst_errors() {
    fn sweep<E: Element>() {
        for_each_path(|path| {
            let mut w = common::rows::Worst::default();
            for (k, cols) in [7usize, 20, 100, 1000, 5000, 32000, 70_000]
                .into_iter()
                .enumerate()
            {
                let big = cols > 5000;
                for family in 0..if big { 1 } else { 4u8 } {
                    for (scale, offset) in [(10.0, 0.0), (1.0, 0.0), (30.0, 1e4), (100.0, -1e3)]
                        .into_iter()
                        .take(if big { 1 } else { 4 })
                    {
                        for tau in [1.0, 0.7] {
                            let x = values::<E>(
                                2 * cols,
                                k as u64 * 131 + family as u64,
                                family,
                                scale,
                                offset,
                                false,
                            );
                            let r = check_rows(&x, cols, tau);
                            w.softmax_ulp = w.softmax_ulp.max(r.softmax_ulp);
                            w.log_excess = w.log_excess.max(r.log_excess);
                            w.lse_rel = w.lse_rel.max(r.lse_rel);
                        }
                    }
                }
            }
            println!(
                "{} {path}: softmax max {:.2} ULP; log_softmax max {:.3} of its bound; logsumexp max {:.3e} relative",
                E::NAME, w.softmax_ulp, w.log_excess, w.lse_rel
            );
        });
    }
    sweep::<f32>();
    sweep::<f64>();
}
