//! max and argmax against the oracle: lengths around every vector width, alignments, NaN
//! anywhere, ties, signed zeros, and every instruction-set path; f32, f64, f16 and bf16 (whose
//! scan compares the stored patterns as integers, so every pattern is checked against the
//! others).

mod common;

use common::{for_each_path, special_f64};
use half::{bf16, f16};
use proptest::prelude::*;
use xent::Element;

fn check<E: Element>(x: &[E]) {
    let want = xent::reference::max(x);
    let got = xent::max(x);
    match (got, want) {
        (None, None) => {}
        (Some(g), Some(w)) => {
            let (g, w) = (g.to_f64(), w.to_f64());
            if w.is_nan() {
                assert!(g.is_nan(), "max: got {g}, want NaN");
                // The first NaN itself (payload preserved).
                let first = x.iter().find(|v| v.to_f64().is_nan()).unwrap().to_f64();
                assert_eq!(g.to_bits(), first.to_bits(), "max returns the first NaN");
            } else {
                assert_eq!(g, w, "max of {} elements", x.len());
            }
        }
        _ => panic!("max: got {got:?}, want {want:?}"),
    }
    assert_eq!(
        xent::argmax(x),
        xent::reference::argmax(x),
        "argmax of {:?}",
        x.len()
    );
}

fn seq<E: Element>(n: usize, seed: u64, specials: bool) -> Vec<E> {
    let sp = special_f64();
    let mut s = seed | 1;
    (0..n)
        .map(|_| {
            s = s
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            let r = s >> 33;
            if specials && r.is_multiple_of(13) {
                E::from_f64(sp[(r as usize / 13) % sp.len()])
            } else {
                E::from_f64((r % 1000) as f64 - 500.0)
            }
        })
        .collect()
}

#[test]
fn every_length_and_alignment() {
    for_each_path(|_| {
        for n in 0..=70 {
            for align in 0..8 {
                for specials in [false, true] {
                    let v = seq::<f32>(n + align, n as u64 * 7 + align as u64, specials);
                    check(&v[align..]);
                    let v = seq::<f64>(n + align, n as u64 * 5 + align as u64, specials);
                    check(&v[align..]);
                    let v = seq::<f16>(n + align, n as u64 * 3 + align as u64, specials);
                    check(&v[align..]);
                    let v = seq::<bf16>(n + align, n as u64 * 11 + align as u64, specials);
                    check(&v[align..]);
                }
            }
        }
    });
}

#[test]
fn nan_at_every_position() {
    for_each_path(|_| {
        for n in [1usize, 7, 8, 9, 31, 32, 33, 100, 70_000] {
            for pos in [0, n / 2, n - 1] {
                let mut v = seq::<f32>(n, 3, false);
                v[pos] = f32::NAN;
                check(&v);
                assert_eq!(xent::argmax(&v), Some(pos));
                let mut v = seq::<f64>(n, 3, false);
                v[pos] = f64::NAN;
                check(&v);
                // Half precision: NaNs of either sign, quiet or signalling, with payloads
                // (the integer scan sees them at both ends of the pattern order).
                for nan in [0x7FC0u16, 0xFFC0, 0x7F81, 0xFFFF, 0x7FFF, 0xFF81] {
                    let mut v = seq::<bf16>(n, 5, false);
                    v[pos] = bf16::from_bits(nan);
                    check(&v);
                    assert_eq!(xent::argmax(&v), Some(pos));
                }
                for nan in [0x7E00u16, 0xFE00, 0x7C01, 0xFFFF, 0x7FFF, 0xFC01] {
                    let mut v = seq::<f16>(n, 5, false);
                    v[pos] = f16::from_bits(nan);
                    check(&v);
                    assert_eq!(xent::argmax(&v), Some(pos));
                }
            }
        }
    });
}

#[test]
fn ties_infinities_and_zeros() {
    for_each_path(|_| {
        assert_eq!(xent::argmax(&[1.0f32, 5.0, 5.0, 5.0]), Some(1));
        assert_eq!(xent::max(&[f32::NEG_INFINITY; 9]), Some(f32::NEG_INFINITY));
        assert_eq!(xent::argmax(&[f32::NEG_INFINITY; 9]), Some(0));
        assert_eq!(
            xent::max(&[1.0f64, f64::INFINITY, 2.0]),
            Some(f64::INFINITY)
        );
        let z = xent::max(&[-0.0f32, 0.0, -0.0]).unwrap();
        assert_eq!(z, 0.0);
        assert_eq!(xent::argmax(&[-0.0f32, 0.0]), Some(0));
    });
}

/// Every 16-bit pattern against backgrounds from −inf to +inf, at the first and the last
/// position of a slice that fills an AVX-512 register of patterns and leaves a tail.
fn every_pattern<E: Element>(from_bits: fn(u16) -> E) {
    let backgrounds = [
        0xFF80u16, 0xC000, 0x8001, 0x8000, 0x0000, 0x0001, 0x4000, 0x7F7F,
    ];
    for_each_path(|_| {
        for &back in &backgrounds {
            let mut v = vec![from_bits(back); 33];
            for bits in 0..=u16::MAX {
                for pos in [0, 31, 32] {
                    v[pos] = from_bits(bits);
                    check(&v);
                    v[pos] = from_bits(back);
                }
            }
        }
    });
}

#[test]
#[cfg_attr(
    debug_assertions,
    ignore = "2^16 patterns × 24 slices per path: run in release (.ci/run does)"
)]
fn every_bf16_pattern() {
    every_pattern(bf16::from_bits);
}

#[test]
#[cfg_attr(
    debug_assertions,
    ignore = "2^16 patterns × 24 slices per path: run in release (.ci/run does)"
)]
fn every_f16_pattern() {
    every_pattern(f16::from_bits);
}

#[test]
fn half_signed_zeros_and_infinities() {
    for_each_path(|_| {
        let z = |b: u16| bf16::from_bits(b);
        assert_eq!(xent::max(&[z(0x8000); 40]).unwrap().to_bits(), 0x8000);
        assert_eq!(xent::max(&[z(0xFF80); 40]), Some(bf16::NEG_INFINITY));
        let mut v = vec![z(0x8000); 40];
        v[37] = z(0);
        assert_eq!(xent::max(&v).unwrap().to_f64(), 0.0);
        assert_eq!(xent::argmax(&v), Some(0));
        let mut w = vec![bf16::from_f64(-1.0); 40];
        w[37] = z(0);
        assert_eq!(xent::max(&w).unwrap().to_bits(), 0);
        v[3] = bf16::INFINITY;
        assert_eq!(xent::max(&v), Some(bf16::INFINITY));
        assert_eq!(xent::max(&[f16::NEG_INFINITY; 65]), Some(f16::NEG_INFINITY));
        assert_eq!(xent::argmax(&[f16::NEG_INFINITY; 65]), Some(0));
    });
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]
    #[test]
    fn random_lengths(n in 0usize..200_000, seed in any::<u64>(), specials in any::<bool>()) {
        for_each_path(|_| {
            check(&seq::<f32>(n, seed, specials));
            check(&seq::<f64>(n / 2, seed, specials));
            check(&seq::<f16>(n / 2, seed, specials));
            check(&seq::<bf16>(n / 2, seed, specials));
        });
    }
}
