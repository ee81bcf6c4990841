//! The training example cannot silently rot: a few epochs of the seed's toy task, with the loss
//! and gradient from xent, must learn (loss well below ln 20, accuracy far above chance).

#[path = "../examples/train_toy/toy.rs"]
mod toy;

#[test]
#[cfg_attr(
    debug_assertions,
    ignore = "trains a model: run in release (.ci/run does)"
)]
fn toy_task_learns() {
    let (mut train, test) = toy::dataset(7, 1000);
    let mut model = toy::Model::new(16, 128, 8);
    let ce = xent::CrossEntropy::new();
    let (loss0, acc0) = toy::evaluate(&model, &test, &ce);
    assert!((loss0 - 20f64.ln()).abs() < 0.5, "untrained loss {loss0}");
    assert!(acc0 < 0.2);
    let mut rng = toy::Rng::new(9);
    for _ in 0..3 {
        toy::train_epoch(&mut model, &mut train, 50, 3e-3, &ce, &mut rng);
    }
    let (loss, acc) = toy::evaluate(&model, &test, &ce);
    assert!(
        loss < 0.5,
        "held-out loss {loss} after 3 epochs (ln 20 = 3.0)"
    );
    assert!(
        acc > 0.8,
        "held-out accuracy {acc} after 3 epochs (chance 0.05)"
    );
}
