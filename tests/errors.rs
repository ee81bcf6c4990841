//! Bad input returns an `Error` naming the problem, never panics, and leaves every output
//! buffer as it was.

use xent::{Error, Softmax};

const SENTINEL: f32 = 12345.0;

fn untouched(out: &[f32]) -> bool {
    out.iter().all(|&v| v == SENTINEL)
}

#[test]
fn length_and_shape_errors() {
    let x = [1.0f32; 12];
    let mut out = [SENTINEL; 11];
    assert_eq!(
        xent::softmax_rows(&x, 4, &mut out),
        Err(Error::LengthMismatch {
            what: "out",
            expected: 12,
            actual: 11
        })
    );
    assert!(untouched(&out));
    let mut out = [SENTINEL; 12];
    assert_eq!(
        xent::softmax_rows(&x, 5, &mut out),
        Err(Error::NotMultipleOfCols { len: 12, cols: 5 })
    );
    assert_eq!(
        xent::log_softmax_rows(&x, 0, &mut out),
        Err(Error::ZeroCols { len: 12 })
    );
    assert!(untouched(&out));
    let mut lse = [SENTINEL; 2];
    assert_eq!(
        xent::logsumexp_rows(&x, 4, &mut lse),
        Err(Error::LengthMismatch {
            what: "out",
            expected: 3,
            actual: 2
        })
    );
    assert!(untouched(&lse));
    assert!(xent::logsumexp_rows(&x, 7, &mut lse).is_err());
    assert!(untouched(&lse));
    let mut y = [SENTINEL; 3];
    assert!(xent::exp(&x, &mut y).is_err());
    assert!(untouched(&y));
    let mut inplace = [SENTINEL; 12];
    assert!(xent::softmax_rows_inplace(&mut inplace, 5).is_err());
    assert!(xent::log_softmax_rows_inplace(&mut inplace, 0).is_err());
    assert!(untouched(&inplace));
}

#[test]
fn temperature_errors() {
    let x = [1.0f32; 4];
    for tau in [
        0.0,
        -1.0,
        f64::NAN,
        f64::INFINITY,
        f64::NEG_INFINITY,
        1e-300,
        1e300,
    ] {
        let sm = Softmax::new().temperature(tau);
        let mut out = [SENTINEL; 4];
        let err = sm.softmax_rows(&x, 2, &mut out).unwrap_err();
        assert!(
            matches!(err, Error::InvalidTemperature { .. }),
            "{tau}: {err}"
        );
        assert!(untouched(&out));
        assert!(sm.log_softmax_rows(&x, 2, &mut out).is_err());
        let mut lse = [SENTINEL; 2];
        assert!(sm.logsumexp_rows(&x, 2, &mut lse).is_err());
        assert!(untouched(&lse));
        assert!(sm.logsumexp(&x).is_err());
        assert!(sm.logsumexp::<f32>(&[]).is_err());
        let mut inplace = [SENTINEL; 4];
        assert!(sm.softmax_rows_inplace(&mut inplace, 2).is_err());
        assert!(untouched(&inplace));
    }
    // 1e-300 is a fine temperature for f64 (1/τ = 1e300 is finite there).
    let x64 = [1.0f64, 2.0];
    let mut out = [0f64; 2];
    Softmax::new()
        .temperature(1e-300)
        .softmax_rows(&x64, 2, &mut out)
        .unwrap();
    assert_eq!(out, [0.0, 1.0]);
}

#[test]
fn errors_have_clear_messages() {
    let msgs = [
        Error::LengthMismatch {
            what: "out",
            expected: 3,
            actual: 2,
        }
        .to_string(),
        Error::NotMultipleOfCols { len: 12, cols: 5 }.to_string(),
        Error::ZeroCols { len: 12 }.to_string(),
        Error::InvalidTemperature { value: -1.0 }.to_string(),
    ];
    assert!(msgs[0].contains("`out`") && msgs[0].contains('3') && msgs[0].contains('2'));
    assert!(msgs[1].contains("12") && msgs[1].contains("cols = 5"));
    assert!(msgs[2].contains("cols = 0"));
    assert!(msgs[3].contains("-1"));
}

#[test]
fn empty_inputs() {
    let mut out: [f32; 0] = [];
    xent::softmax_rows::<f32>(&[], 3, &mut out).unwrap();
    xent::softmax_rows::<f32>(&[], 0, &mut out).unwrap();
    let mut lse = [SENTINEL; 2];
    xent::logsumexp_rows::<f32>(&[], 0, &mut lse).unwrap();
    assert_eq!(
        lse,
        [f32::NEG_INFINITY; 2],
        "rows of zero columns have lse -inf"
    );
    assert_eq!(xent::logsumexp::<f64>(&[]), f64::NEG_INFINITY);
    assert_eq!(xent::max::<f32>(&[]), None);
    assert_eq!(xent::argmax::<f32>(&[]), None);
    xent::exp_inplace::<f32>(&mut []);
}
