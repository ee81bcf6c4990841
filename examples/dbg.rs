fn main() {
    let x = [f64::NEG_INFINITY, 4.0 * 2f64.powi(57)];
    for p in xent::IsaPath::ALL {
        let _g = xent::force_isa(p).unwrap();
        let mut out = [0f64; 2];
        xent::Softmax::new()
            .temperature(2.0)
            .softmax_rows(&x, 2, &mut out)
            .unwrap();
        let mut o3 = [0f64; 3];
        let x3 = [f64::NEG_INFINITY, 4.0 * 2f64.powi(57), 1.0];
        xent::Softmax::new()
            .temperature(2.0)
            .softmax_rows(&x3, 3, &mut o3)
            .unwrap();
        println!("{p}: {:?} {:?}", out, o3);
    }
}
