//! The worked example of the seed document (`Max(1,6,2)`, 20 logits, answer token 8 = '6'),
//! with the true values: the exponentials sum to 61.6043 (the document mis-adds them to
//! 61.404), so p[8] = 0.690229 and the loss −ln p[8] = 0.370732 (not 0.6925 and 0.3673).

mod common;

const LOGITS: [f64; 20] = [
    -2.34, -1.56, -0.82, -0.31, 1.23, 0.78, 0.94, 1.52, 3.75, 0.41, 0.23, -0.08, -1.92, -1.67,
    -1.43, -2.01, -1.78, -2.34, -2.12, -2.45,
];

fn check<E: xent::Element>(tol: f64) {
    let x: Vec<E> = LOGITS.iter().map(|&v| E::from_f64(v)).collect();
    let mut p = vec![E::from_f64(0.0); 20];
    xent::softmax_rows(&x, 20, &mut p).unwrap();
    let mut lp = vec![E::from_f64(0.0); 20];
    xent::log_softmax_rows(&x, 20, &mut lp).unwrap();
    let lse = xent::logsumexp(&x).to_f64();
    assert!(
        (lse.exp() - 61.6043).abs() < 1e-4,
        "sum of exps {}",
        lse.exp()
    );
    assert!((p[8].to_f64() - 0.690229).abs() < 5e-7, "p[8] = {:?}", p[8]);
    assert!(
        (-lp[8].to_f64() - 0.370732).abs() < 5e-7,
        "loss = {:?}",
        lp[8]
    );
    assert_eq!(xent::argmax(&x), Some(8));
    let total: f64 = p.iter().map(|v| v.to_f64()).sum();
    assert!((total - 1.0).abs() < tol);
    // And the document's values are really wrong.
    assert!((p[8].to_f64() - 0.6925).abs() > 1e-3);
}

#[test]
fn seed_worked_example_every_path() {
    common::for_each_path(|_| {
        check::<f32>(1e-6);
        check::<f64>(1e-14);
    });
}

#[test]
fn seed_worked_example_cross_entropy() {
    common::for_each_path(|_| {
        let mut g: Vec<f32> = LOGITS.iter().map(|&v| v as f32).collect();
        let out = xent::CrossEntropy::new()
            .forward_backward_inplace(&mut g, 20, &[8u32])
            .unwrap();
        assert!((out.loss - 0.370732).abs() < 5e-7, "loss {}", out.loss);
        // d loss / d logit_8 = p[8] − 1.
        assert!(
            (f64::from(g[8]) - (0.690229 - 1.0)).abs() < 5e-7,
            "grad {}",
            g[8]
        );
        assert!((f64::from(g[4]) - 1.23f64.exp() / 61.6043).abs() < 1e-6);
        assert_eq!((out.correct, out.valid_rows), (1, 1));
    });
}
