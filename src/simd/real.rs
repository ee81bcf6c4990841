//! The two compute precisions and the constants of their exponential.

use super::{Isa, Real};

/// 2^(j/8) for j = 0 … 7, each rounded to nearest (relative errors within 0.54 · 2^-24): the
/// entries of f32's table-form output exponential.
const BASE_TABLE_F32: [f32; 8] = [
    f32::from_bits(0x3f80_0000),
    f32::from_bits(0x3f8b_95c2),
    f32::from_bits(0x3f98_37f0),
    f32::from_bits(0x3fa5_fed7),
    f32::from_bits(0x3fb5_04f3),
    f32::from_bits(0x3fc5_672a),
    f32::from_bits(0x3fd7_44fd),
    f32::from_bits(0x3fea_c0c7),
];

/// Each (normal) entry times 2^k, exactly: k added to the exponent fields.
const fn times_pow2(table: [f32; 8], k: i32) -> [f32; 8] {
    let mut out = table;
    let mut j = 0;
    while j < 8 {
        out[j] = f32::from_bits(table[j].to_bits() + ((k as u32) << 23));
        j += 1;
    }
    out
}

impl Real for f32 {
    type Vec<S: Isa> = S::F32;

    const ZERO: Self = 0.0;
    const ONE: Self = 1.0;
    const NEG_INFINITY: Self = f32::NEG_INFINITY;
    const INFINITY: Self = f32::INFINITY;
    const NAN: Self = f32::NAN;
    const MAX: Self = f32::MAX;
    const MIN_POSITIVE: Self = f32::MIN_POSITIVE;

    #[cfg_attr(not(xent_unoptimized), inline(always))]
    fn from_f64(x: f64) -> Self {
        x as f32
    }
    #[cfg_attr(not(xent_unoptimized), inline(always))]
    fn to_f64(self) -> f64 {
        self as f64
    }
    #[cfg_attr(not(xent_unoptimized), inline(always))]
    fn is_nan(self) -> bool {
        self.is_nan()
    }
    #[cfg_attr(not(xent_unoptimized), inline(always))]
    fn next_down(self) -> Self {
        let b = self.to_bits();
        if self == 0.0 {
            -f32::from_bits(1)
        } else if self > 0.0 {
            f32::from_bits(b - 1)
        } else {
            f32::from_bits(b + 1)
        }
    }

    // e^-104 = 6.8e-46 is below half the smallest subnormal (7.0e-46): rounds to 0.
    const EXP_MIN_ARG: Self = -104.0;
    // −191·ln 2 = −132.3904: n = round(x·log2 e) = −191 with 0.5 to spare either side.
    const EXP_ZERO_SCALE_ARG: Self = -132.39;
    // e^89 = 4.5e38 is above f32::MAX: rounds to +inf.
    const EXP_MAX_ARG: Self = 89.0;
    // n = round(x · log2 e) stays in [-126, 127].
    const EXP_FAST_MIN: Self = -87.0;
    const EXP_FAST_MAX: Self = 88.0;
    const LOG2E: Self = core::f32::consts::LOG2_E;
    // 0x3F317200: 16 significant bits, so n * LN2_HI is exact for |n| < 2^8.
    const LN2_HI: Self = f32::from_bits(0x3f31_7200); // 0.693145751953125
    const LN2_LO: Self = f32::from_bits(0x35bf_be8e); // ln 2 − LN2_HI, rounded
                                                      // |ln 2 − LN2| < 2e-9, times |n| ≤ 190: under 4e-7 relative, on terms that are ≤ 2^-100
                                                      // of the row's largest where n is that large.
    const LN2: Self = core::f32::consts::LN_2;
    const SUM_REDUCES_ONCE: bool = true;
    // ln 2 rounded to f32 (24 bits): x − N·BASE_LN2_HI is exact in an fma for every x.
    const BASE_LN2_HI: Self = core::f32::consts::LN_2;
    const BASE_LN2_LO: Self = f32::from_bits(0xb102_e308); // ln 2 − BASE_LN2_HI, rounded
    const BASE_LIMIT: f64 = 16384.0;
    const ROUND_MAGIC: Self = 12_582_912.0;
    const EXP_BIAS: i32 = 127;
    const SCALE_SHIFT: i32 = 64;
    // Minimax fits by tools/fit_exp_poly.py (max relative error 3.8e-9 and 1.1e-7).
    const EXP_POLY: &'static [Self] = &[
        f32::from_bits(0x3ab5_1226), // 0x1.6a244cp-10
        f32::from_bits(0x3c09_1cea), // 0x1.1239d4p-7
        f32::from_bits(0x3d2a_ac79), // 0x1.5558f2p-5
        f32::from_bits(0x3e2a_aa49), // 0x1.555492p-3
        f32::from_bits(0x3eff_fffe), // 0x1.fffffcp-2
    ];
    const EXP_POLY_SUM: &'static [Self] = &[
        f32::from_bits(0x3c08_3142), // 0x1.106284p-7
        f32::from_bits(0x3d2b_94f8), // 0x1.5729f0p-5
        f32::from_bits(0x3e2a_abd7), // 0x1.5557aep-3
        f32::from_bits(0x3eff_fefe), // 0x1.fffdfcp-2
    ];
    const BASE_TABLE: &'static [Self] = &BASE_TABLE_F32;
    const BASE_TABLE_SCALED: &'static [Self] = &times_pow2(BASE_TABLE_F32, f32::SCALE_SHIFT);
    // Minimax with c1 = 1 on |t| ≤ ln2/16 (`tools/fit_exp_poly.py 3 --table 8`): relative
    // error 0.432 · 2^-24 (2.6e-8).
    const BASE_TABLE_POLY: &'static [Self] = &[
        f32::from_bits(0x3e2a_ab2c), // 0x1.555658p-3
        f32::from_bits(0x3f00_043a), // 0x1.000874p-1
    ];
    const MANTISSA_DIGITS: u32 = f32::MANTISSA_DIGITS;
}

impl Real for f64 {
    type Vec<S: Isa> = S::F64;

    const ZERO: Self = 0.0;
    const ONE: Self = 1.0;
    const NEG_INFINITY: Self = f64::NEG_INFINITY;
    const INFINITY: Self = f64::INFINITY;
    const NAN: Self = f64::NAN;
    const MAX: Self = f64::MAX;
    const MIN_POSITIVE: Self = f64::MIN_POSITIVE;

    #[cfg_attr(not(xent_unoptimized), inline(always))]
    fn from_f64(x: f64) -> Self {
        x
    }
    #[cfg_attr(not(xent_unoptimized), inline(always))]
    fn to_f64(self) -> f64 {
        self
    }
    #[cfg_attr(not(xent_unoptimized), inline(always))]
    fn is_nan(self) -> bool {
        self.is_nan()
    }
    #[cfg_attr(not(xent_unoptimized), inline(always))]
    fn next_down(self) -> Self {
        let b = self.to_bits();
        if self == 0.0 {
            -f64::from_bits(1)
        } else if self > 0.0 {
            f64::from_bits(b - 1)
        } else {
            f64::from_bits(b + 1)
        }
    }

    // e^-746 = 1.0e-324 is below half the smallest subnormal (2.5e-324): rounds to 0.
    const EXP_MIN_ARG: Self = -746.0;
    // −1535·ln 2 = −1063.9810: n = −1535 with 0.5 to spare either side.
    const EXP_ZERO_SCALE_ARG: Self = -1063.98;
    // e^710 is above f64::MAX: rounds to +inf.
    const EXP_MAX_ARG: Self = 710.0;
    // n = round(x · log2 e) stays in [-1022, 1023].
    const EXP_FAST_MIN: Self = -708.0;
    const EXP_FAST_MAX: Self = 709.0;
    const LOG2E: Self = core::f64::consts::LOG2_E;
    // 0x3FE62E42FEE00000: the low 21 bits are zero, so n * LN2_HI is exact for |n| < 2^11.
    const LN2_HI: Self = f64::from_bits(0x3fe6_2e42_fee0_0000);
    const LN2_LO: Self = f64::from_bits(0x3dea_39ef_3579_3c76); // ln 2 − LN2_HI, rounded
    const LN2: Self = core::f64::consts::LN_2;
    const SUM_REDUCES_ONCE: bool = false;
    // LN2_HI, 32 significant bits: k·BASE_LN2_HI is exact in f64 for |k| < 2^21.
    const BASE_LN2_HI: Self = f64::from_bits(0x3fe6_2e42_fee0_0000);
    const BASE_LN2_LO: Self = f64::from_bits(0x3dea_39ef_3579_3c76);
    const BASE_LIMIT: f64 = 1_048_576.0;
    const ROUND_MAGIC: Self = 6_755_399_441_055_744.0;
    const EXP_BIAS: i32 = 1023;
    const SCALE_SHIFT: i32 = 512;
    // Taylor coefficients 1/13!, …, 1/2! (truncation error 4e-18 relative).
    const EXP_POLY: &'static [Self] = &[
        1.0 / 6_227_020_800.0,
        1.0 / 479_001_600.0,
        1.0 / 39_916_800.0,
        1.0 / 3_628_800.0,
        1.0 / 362_880.0,
        1.0 / 40_320.0,
        1.0 / 5040.0,
        1.0 / 720.0,
        1.0 / 120.0,
        1.0 / 24.0,
        1.0 / 6.0,
        0.5,
    ];
    // 1/12!, …, 1/2! (truncation error 1.7e-16 relative: enough for sums).
    const EXP_POLY_SUM: &'static [Self] = &[
        1.0 / 479_001_600.0,
        1.0 / 39_916_800.0,
        1.0 / 3_628_800.0,
        1.0 / 362_880.0,
        1.0 / 40_320.0,
        1.0 / 5040.0,
        1.0 / 720.0,
        1.0 / 120.0,
        1.0 / 24.0,
        1.0 / 6.0,
        0.5,
    ];
    const BASE_TABLE: &'static [Self] = &[];
    const BASE_TABLE_SCALED: &'static [Self] = &[];
    const BASE_TABLE_POLY: &'static [Self] = &[];
    const MANTISSA_DIGITS: u32 = f64::MANTISSA_DIGITS;
}
