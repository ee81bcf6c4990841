//! The seed's toy task learned end to end, with xent computing the loss and the logits'
//! gradient: `Max(1,6,2)`, `First(3,8,1)`, `Min(7,2,9)`, `Last(5,4,6)`, `Second(8,0,9)` → the
//! answer digit, over the seed's 20-token vocabulary.
//!
//! ```text
//! cargo run --release --example train_toy
//! cargo run --release --example train_toy -- --epochs 60 --smoothing 0.1 --out /tmp/toy
//! ```
//!
//! Prints loss and accuracy per epoch on both sets, the seed's worked example through the
//! trained model, a per-operation table and the hardest examples, and the calibration (ECE, 15
//! bins) before and after temperature scaling; writes `curves.png` and `reliability.png`.

mod toy;

use std::path::PathBuf;
use toy::{Example, Model, Rng, OPS, VOCAB};
use xent::{CrossEntropy, Reduction, Softmax};

struct Args {
    epochs: usize,
    smoothing: f64,
    out: PathBuf,
    seed: u64,
}

fn parse_args() -> Args {
    let mut a = Args {
        epochs: 30,
        smoothing: 0.0,
        out: PathBuf::from("target/train_toy"),
        seed: 7,
    };
    let args: Vec<String> = std::env::args().skip(1).collect();
    let mut i = 0;
    while i < args.len() {
        let val = args.get(i + 1).cloned().unwrap_or_default();
        match args[i].as_str() {
            "--epochs" => a.epochs = val.parse().expect("--epochs N"),
            "--smoothing" => a.smoothing = val.parse().expect("--smoothing EPS"),
            "--out" => a.out = PathBuf::from(val),
            "--seed" => a.seed = val.parse().expect("--seed N"),
            other => panic!("unknown argument {other} (see the doc comment of train_toy)"),
        }
        i += 2;
    }
    a
}

/// Per-example probabilities (rows × 20) at temperature τ, by xent's softmax.
fn probabilities(logits: &[f32], tau: f64) -> Vec<f32> {
    let mut p = vec![0.0; logits.len()];
    Softmax::new()
        .temperature(tau)
        .softmax_rows(logits, 20, &mut p)
        .expect("valid shape");
    p
}

/// Expected calibration error over `bins` equal-width confidence bins, and the bins'
/// (mean confidence, accuracy, count) for the reliability diagram.
fn calibration(p: &[f32], set: &[Example], bins: usize) -> (f64, Vec<(f64, f64, usize)>) {
    let mut acc = vec![(0.0, 0.0, 0usize); bins];
    for (row, ex) in p.chunks_exact(20).zip(set) {
        let (best, conf) =
            row.iter()
                .enumerate()
                .fold((0, f32::MIN), |b, (i, &v)| if v > b.1 { (i, v) } else { b });
        let bin = ((conf as f64 * bins as f64) as usize).min(bins - 1);
        acc[bin].0 += conf as f64;
        acc[bin].1 += f64::from(u8::from(best == ex.target as usize));
        acc[bin].2 += 1;
    }
    let n = set.len() as f64;
    let ece = acc
        .iter()
        .filter(|b| b.2 > 0)
        .map(|b| (b.2 as f64 / n) * (b.0 / b.2 as f64 - b.1 / b.2 as f64).abs())
        .sum();
    let table = acc
        .iter()
        .map(|b| {
            if b.2 == 0 {
                (0.0, 0.0, 0)
            } else {
                (b.0 / b.2 as f64, b.1 / b.2 as f64, b.2)
            }
        })
        .collect();
    (ece, table)
}

/// τ minimising the held-out NLL (golden-section search on ln τ), by xent's cross-entropy
/// with temperature.
fn fit_temperature(logits: &[f32], targets: &[u32]) -> f64 {
    let nll = |ln_tau: f64| {
        CrossEntropy::new()
            .temperature(ln_tau.exp())
            .forward(logits, 20, targets)
            .expect("valid batch")
            .loss
    };
    let (mut a, mut b) = ((0.05f64).ln(), (20f64).ln());
    let r = (5f64.sqrt() - 1.0) / 2.0;
    for _ in 0..60 {
        let (c, d) = (b - r * (b - a), a + r * (b - a));
        if nll(c) < nll(d) {
            b = d;
        } else {
            a = c;
        }
    }
    ((a + b) / 2.0).exp()
}

fn main() {
    let args = parse_args();
    let started = std::time::Instant::now();
    let (mut train, test) = toy::dataset(args.seed, 1000);
    let mut model = Model::new(16, 128, args.seed + 1);
    let ce = CrossEntropy::new().label_smoothing(args.smoothing);
    let plain = CrossEntropy::new();
    let mut rng = Rng::new(args.seed + 2);
    println!(
        "xent {} path; {} training / {} held-out examples; label smoothing {}",
        xent::isa(),
        train.len(),
        test.len(),
        args.smoothing
    );
    let (l0, a0) = toy::evaluate(&model, &test, &plain);
    println!(
        "epoch   0: held-out loss {l0:.4} (ln 20 = {:.4}), accuracy {:5.1}%",
        20f64.ln(),
        a0 * 100.0
    );
    println!("epoch | train loss  train acc | held-out loss  held-out acc");
    let (t0, ta0) = toy::evaluate(&model, &train, &plain);
    let mut curves = vec![(0, t0, ta0, l0, a0)];
    for epoch in 1..=args.epochs {
        let lr = if epoch * 4 > args.epochs * 3 {
            1e-3
        } else {
            3e-3
        };
        toy::train_epoch(&mut model, &mut train, 50, lr, &ce, &mut rng);
        let (tl, ta) = toy::evaluate(&model, &train, &plain);
        let (vl, va) = toy::evaluate(&model, &test, &plain);
        curves.push((epoch, tl, ta, vl, va));
        println!(
            "{epoch:5} | {tl:10.4} {:9.1}% | {vl:13.4} {:12.1}%",
            ta * 100.0,
            va * 100.0
        );
    }
    println!("trained in {:.1} s", started.elapsed().as_secs_f64());

    // The seed's worked example through the trained model.
    let example = Example::new(3, 1, 6, 2);
    let mut cache = toy::Cache::default();
    let logits = model.forward(&[example], &mut cache);
    let p = probabilities(&logits, 1.0);
    let mut order: Vec<usize> = (0..20).collect();
    order.sort_by(|&a, &b| p[b].total_cmp(&p[a]));
    println!(
        "\n{} → target '{}' (token {})",
        example.text(),
        VOCAB[example.target as usize],
        example.target
    );
    for &i in &order[..5] {
        println!(
            "  token {i:2} {:>7}: logit {:8.3}  p = {:.6}",
            VOCAB[i], logits[i], p[i]
        );
    }
    let mut grad = logits.clone();
    let out = CrossEntropy::new()
        .reduction(Reduction::Sum)
        .forward_backward_inplace(&mut grad, 20, &[example.target as u32])
        .unwrap();
    println!("  loss = −ln p[{}] = {:.6}", example.target, out.loss);
    let mut gorder: Vec<usize> = (0..20).collect();
    gorder.sort_by(|&a, &b| grad[b].abs().total_cmp(&grad[a].abs()));
    let top: Vec<String> = gorder[..4]
        .iter()
        .map(|&i| format!("{} {:+.6}", VOCAB[i], grad[i]))
        .collect();
    println!(
        "  largest gradient entries (p − one-hot): {}",
        top.join(", ")
    );

    // Per-operation analysis and the hardest held-out examples (the seed's Part 7).
    let logits = model.forward(&test, &mut cache);
    let targets: Vec<u32> = test.iter().map(|e| e.target as u32).collect();
    let per = CrossEntropy::new()
        .reduction(Reduction::None)
        .forward(&logits, 20, &targets)
        .unwrap();
    let p = probabilities(&logits, 1.0);
    println!("\nheld-out, per operation:\n  op     | examples | mean loss | accuracy");
    for (k, op) in OPS.iter().enumerate() {
        let idx: Vec<usize> = (0..test.len()).filter(|&i| test[i].op == k).collect();
        let loss: f64 = idx.iter().map(|&i| per.row_losses[i]).sum::<f64>() / idx.len() as f64;
        let correct = idx
            .iter()
            .filter(|&&i| {
                let row = &p[i * 20..(i + 1) * 20];
                (0..20).max_by(|&a, &b| row[a].total_cmp(&row[b])) == Some(test[i].target as usize)
            })
            .count();
        println!(
            "  {op:<6} | {:8} | {loss:9.4} | {:7.1}%",
            idx.len(),
            100.0 * correct as f64 / idx.len() as f64
        );
    }
    let mut hardest: Vec<usize> = (0..test.len()).collect();
    hardest.sort_by(|&a, &b| per.row_losses[b].total_cmp(&per.row_losses[a]));
    println!(
        "hardest held-out examples:\n  example        | target | predicted | p(target) | loss"
    );
    for &i in &hardest[..6] {
        let row = &p[i * 20..(i + 1) * 20];
        let pred = (0..20).max_by(|&a, &b| row[a].total_cmp(&row[b])).unwrap();
        println!(
            "  {:<14} | {:>6} | {:>9} | {:9.4} | {:.4}",
            test[i].text(),
            VOCAB[test[i].target as usize],
            VOCAB[pred],
            row[test[i].target as usize],
            per.row_losses[i]
        );
    }

    // Calibration before and after temperature scaling.
    let (ece_before, bins_before) = calibration(&p, &test, 15);
    let tau = fit_temperature(&logits, &targets);
    let p_tau = probabilities(&logits, tau);
    let (ece_after, bins_after) = calibration(&p_tau, &test, 15);
    let nll_tau = CrossEntropy::new()
        .temperature(tau)
        .forward(&logits, 20, &targets)
        .unwrap()
        .loss;
    println!(
        "\ncalibration (held-out, 15 bins): ECE {:.4} at τ = 1 (NLL {:.4}); fitted τ = {tau:.3}: ECE {:.4} (NLL {nll_tau:.4})",
        ece_before, per.loss / test.len() as f64, ece_after
    );

    std::fs::create_dir_all(&args.out).expect("create the output folder");
    match plots::write(&args.out, &curves, &bins_before, &bins_after, tau) {
        Ok(()) => println!(
            "figures: {} and {}",
            args.out.join("curves.png").display(),
            args.out.join("reliability.png").display()
        ),
        Err(e) => println!("figures not written: {e}"),
    }
}

mod plots {
    use plotters::prelude::*;
    use std::path::Path;

    type Res = Result<(), Box<dyn std::error::Error>>;

    /// plotters draws text with a TrueType font it is given: use a system one.
    fn register_font() -> Res {
        let candidates = [
            "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf",
            "/usr/share/fonts/TTF/DejaVuSans.ttf",
            "/usr/share/fonts/dejavu/DejaVuSans.ttf",
            "/System/Library/Fonts/Supplemental/Arial.ttf",
            "C:\\Windows\\Fonts\\arial.ttf",
        ];
        let bytes = candidates
            .iter()
            .find_map(|p| std::fs::read(p).ok())
            .ok_or("no TrueType font found (looked for DejaVu Sans / Arial)")?;
        let bytes: &'static [u8] = Box::leak(bytes.into_boxed_slice());
        plotters::style::register_font("sans-serif", FontStyle::Normal, bytes)
            .map_err(|_| "the font could not be loaded")?;
        Ok(())
    }

    pub fn write(
        dir: &Path,
        curves: &[(usize, f64, f64, f64, f64)],
        before: &[(f64, f64, usize)],
        after: &[(f64, f64, usize)],
        tau: f64,
    ) -> Res {
        register_font()?;
        let path = dir.join("curves.png");
        let root = BitMapBackend::new(&path, (1200, 500)).into_drawing_area();
        root.fill(&WHITE)?;
        let (left, right) = root.split_horizontally(600);
        let epochs = (curves.len() - 1) as f64;
        let max_loss = curves
            .iter()
            .map(|c| c.1.max(c.3))
            .fold(0.0, f64::max)
            .max(0.1);
        let mut chart = ChartBuilder::on(&left)
            .caption("Loss (mean cross-entropy)", ("sans-serif", 22))
            .margin(12)
            .x_label_area_size(40)
            .y_label_area_size(55)
            .build_cartesian_2d(0f64..epochs.max(1.0), 0.0..max_loss * 1.05)?;
        chart
            .configure_mesh()
            .x_desc("epoch")
            .y_desc("loss")
            .draw()?;
        chart
            .draw_series(LineSeries::new(
                curves.iter().map(|c| (c.0 as f64, c.1)),
                &BLUE,
            ))?
            .label("training")
            .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], BLUE));
        chart
            .draw_series(LineSeries::new(
                curves.iter().map(|c| (c.0 as f64, c.3)),
                &RED,
            ))?
            .label("held-out")
            .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], RED));
        chart
            .configure_series_labels()
            .border_style(BLACK)
            .background_style(WHITE)
            .draw()?;
        let mut chart = ChartBuilder::on(&right)
            .caption("Accuracy", ("sans-serif", 22))
            .margin(12)
            .x_label_area_size(40)
            .y_label_area_size(55)
            .build_cartesian_2d(0f64..epochs.max(1.0), 0f64..100.0)?;
        chart
            .configure_mesh()
            .x_desc("epoch")
            .y_desc("accuracy (%)")
            .draw()?;
        chart
            .draw_series(LineSeries::new(
                curves.iter().map(|c| (c.0 as f64, 100.0 * c.2)),
                &BLUE,
            ))?
            .label("training")
            .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], BLUE));
        chart
            .draw_series(LineSeries::new(
                curves.iter().map(|c| (c.0 as f64, 100.0 * c.4)),
                &RED,
            ))?
            .label("held-out")
            .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], RED));
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::LowerRight)
            .border_style(BLACK)
            .background_style(WHITE)
            .draw()?;
        root.present()?;

        let path = dir.join("reliability.png");
        let root = BitMapBackend::new(&path, (1200, 550)).into_drawing_area();
        root.fill(&WHITE)?;
        let (left, right) = root.split_horizontally(600);
        for (area, bins, title) in [
            (
                &left,
                before,
                "Before temperature scaling (τ = 1)".to_string(),
            ),
            (
                &right,
                after,
                format!("After temperature scaling (τ = {tau:.2})"),
            ),
        ] {
            let mut chart = ChartBuilder::on(area)
                .caption(title, ("sans-serif", 20))
                .margin(12)
                .x_label_area_size(40)
                .y_label_area_size(55)
                .build_cartesian_2d(0f64..1.0, 0f64..1.0)?;
            chart
                .configure_mesh()
                .x_desc("confidence (max probability)")
                .y_desc("accuracy")
                .draw()?;
            let n = bins.len() as f64;
            chart
                .draw_series(
                    bins.iter()
                        .enumerate()
                        .filter(|(_, b)| b.2 > 0)
                        .map(|(i, b)| {
                            let x0 = i as f64 / n;
                            Rectangle::new(
                                [(x0 + 0.005, 0.0), (x0 + 1.0 / n - 0.005, b.1)],
                                BLUE.mix(0.6).filled(),
                            )
                        }),
                )?
                .label("accuracy per confidence bin")
                .legend(|(x, y)| {
                    Rectangle::new([(x, y - 5), (x + 15, y + 5)], BLUE.mix(0.6).filled())
                });
            chart.draw_series(
                bins.iter()
                    .enumerate()
                    .filter(|(_, b)| b.2 > 0)
                    .map(|(i, b)| {
                        Text::new(
                            format!("n={}", b.2),
                            (i as f64 / n + 0.004, (b.1 + 0.03).min(0.97)),
                            ("sans-serif", 12),
                        )
                    }),
            )?;
            chart
                .draw_series(
                    bins.iter()
                        .filter(|b| b.2 > 0)
                        .map(|b| Circle::new((b.0, b.1), 4, RED.filled())),
                )?
                .label("(mean confidence, accuracy)")
                .legend(|(x, y)| Circle::new((x + 8, y), 4, RED.filled()));
            chart
                .draw_series(LineSeries::new(
                    [(0.0, 0.0), (1.0, 1.0)],
                    BLACK.stroke_width(1),
                ))?
                .label("perfect calibration")
                .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], BLACK));
            chart
                .configure_series_labels()
                .position(SeriesLabelPosition::UpperLeft)
                .border_style(BLACK)
                .background_style(WHITE)
                .draw()?;
        }
        root.present()?;
        Ok(())
    }
}
