//! max and argmax against the oracle: lengths around every vector width, alignments, NaN
//! anywhere, ties, signed zeros, and every instruction-set path.

mod common;

use common::{for_each_path, special_f64};
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

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]
    #[test]
    fn random_lengths(n in 0usize..200_000, seed in any::<u64>(), specials in any::<bool>()) {
        for_each_path(|_| {
            check(&seq::<f32>(n, seed, specials));
            check(&seq::<f64>(n / 2, seed, specials));
        });
    }
}
