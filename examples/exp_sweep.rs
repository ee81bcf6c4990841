//! Quick max-ULP sweep of exp over a slab of f32 inputs (a tuning aid; tests/exp.rs is the
//! exhaustive check): `cargo run --release --example exp_sweep -- START_BITS COUNT`.
fn main() {
    let args: Vec<u64> = std::env::args()
        .skip(1)
        .map(|a| a.parse().unwrap())
        .collect();
    let (start, count) = (
        args.first().copied().unwrap_or(0xC000_0000),
        args.get(1).copied().unwrap_or(1 << 26),
    );
    let xs: Vec<f32> = (start..start + count)
        .map(|b| f32::from_bits(b as u32))
        .collect();
    for path in xent::IsaPath::ALL.into_iter().filter(|p| p.is_available()) {
        let _g = xent::force_isa(path).unwrap();
        let mut out = vec![0f32; xs.len()];
        xent::exp(&xs, &mut out).unwrap();
        let mut worst = (0f64, 0f32);
        for (&x, &y) in xs.iter().zip(&out) {
            let e = (x as f64).exp();
            let r = e as f32;
            if r.is_infinite() || r == 0.0 && y == 0.0 || x.is_nan() {
                continue;
            }
            let v = e.abs();
            let ex = if v == 0.0 {
                -126
            } else {
                (v.log2().floor() as i32).max(-126)
            };
            let ulp = 2f64.powi(ex - 23);
            let err = (y as f64 - e).abs() / ulp;
            if err > worst.0 {
                worst = (err, x);
            }
        }
        println!("{path}: max {:.4} ULP at {:e}", worst.0, worst.1);
    }
}
