//! Vector maths, written once and instantiated per instruction set.
//!
//! The kernels in `crate::kernels` are generic over an [`Isa`] token. An `Isa` names one vector
//! type per compute precision ([`Isa::F32`], [`Isa::F64`]) that implements [`FloatVec`], the small
//! set of operations the kernels need (arithmetic, fused multiply-add, x86-style min/max, masks,
//! loads and stores, lane reductions, and the one bit trick the exponential needs). Everything else
//! (the exponential, the online max/sum merge) is built on top of `FloatVec` in this module tree,
//! so each ISA contributes only its primitive operations:
//!
//! * [`scalar::Scalar`]: one lane, plain Rust, available everywhere.
//! * [`avx2::Avx2`] (x86-64): eight f32 or four f64 lanes under AVX2 + FMA, entered through pulp's
//!   `V3` token, which both detects the features at run time and compiles the kernel body with
//!   `#[target_feature(enable = "avx2,fma,…")]`.
//! * [`avx512::Avx512`] (x86-64): sixteen f32 or eight f64 lanes under AVX-512 (F, BW, CD, DQ,
//!   VL), entered through pulp's `V4` token the same way; comparisons give mask registers.
//!
//! A vector value can only be created through its `Isa` token, and the AVX2 token only exists
//! after run-time detection succeeded; that is what makes the intrinsic calls sound.

pub(crate) mod exp;
pub(crate) mod log;
mod real;
pub(crate) mod scalar;

#[cfg(target_arch = "x86_64")]
pub(crate) mod avx2;
// Under `cargo fuzz` (`cfg(fuzzing)`: AddressSanitizer and coverage instrumentation) a third
// instantiation of every kernel took CI's fuzz build past its time budget; fuzz builds leave the
// AVX-512 path out (the detected path is then AVX2 there) unless built with
// `--cfg xent_fuzz_avx512` (docs/fuzzing.md). The test suite runs it like every other path.
#[cfg(all(target_arch = "x86_64", any(not(fuzzing), xent_fuzz_avx512)))]
pub(crate) mod avx512;

use core::fmt::Debug;
use core::ops::{Add, Mul, Neg, Sub};

/// The compute precision of a kernel: `f32` (for f32, and later f16/bf16 storage) or `f64`.
pub trait Real:
    Copy
    + Debug
    + PartialOrd
    + Send
    + Sync
    + 'static
    + Add<Output = Self>
    + Sub<Output = Self>
    + Mul<Output = Self>
    + Neg<Output = Self>
{
    /// The vector of this precision under instruction set `S`.
    type Vec<S: Isa>: FloatVec<Real = Self, Isa = S>;

    const ZERO: Self;
    const ONE: Self;
    const NEG_INFINITY: Self;
    const INFINITY: Self;
    const NAN: Self;
    const MAX: Self;
    const MIN_POSITIVE: Self;

    fn from_f64(x: f64) -> Self;
    fn to_f64(self) -> f64;
    fn is_nan(self) -> bool;
    /// The largest value below `self` (finite, non-NaN `self`).
    fn next_down(self) -> Self;

    // Constants of the exponential (see `simd::exp`).
    /// Below this argument e^x rounds to +0 (so clamping there changes nothing).
    const EXP_MIN_ARG: Self;
    /// −(EXP_BIAS + SCALE_SHIFT)·ln 2: where the row kernels' stored exponential rounds n to
    /// −(EXP_BIAS + SCALE_SHIFT), so that its scale 2^(n + SCALE_SHIFT), built from the bits,
    /// has a zero exponent field and a zero mantissa: exactly +0, and so is the term. Paths
    /// that build the scale from the bits clamp stored terms' arguments here (and the row
    /// kernels' input floors lie at or below it), which makes every clamped term an exact 0 without
    /// a compare (see `exp::exp_scaled`); AVX-512's `exp::exp_from_base` zeroes every n from
    /// that one down with its masked scaling instead.
    const EXP_ZERO_SCALE_ARG: Self;
    /// Above this argument e^x rounds to +inf.
    const EXP_MAX_ARG: Self;
    /// Arguments in [EXP_FAST_MIN, EXP_FAST_MAX) have a normal 2^n: one scaling suffices.
    const EXP_FAST_MIN: Self;
    const EXP_FAST_MAX: Self;
    const LOG2E: Self;
    /// ln 2 split so that `n * LN2_HI` is exact for every reachable `n`.
    const LN2_HI: Self;
    const LN2_LO: Self;
    /// ln 2 rounded to the precision: reducing with it alone is accurate enough for terms that
    /// are only summed when `SUM_REDUCES_ONCE` (f32: relative error below 2^-21 for every
    /// argument the row kernels reach).
    const LN2: Self;
    const SUM_REDUCES_ONCE: bool;
    /// ln 2 split for [`exp::exp_from_base`](crate::simd::exp::exp_from_base): the bases are
    /// c = k·`BASE_LN2_HI` with |k| ≤ round(`BASE_LIMIT`·log2 e), exact in f64.
    const BASE_LN2_HI: Self;
    const BASE_LN2_LO: Self;
    const BASE_LIMIT: f64;
    /// 1.5 · 2^mantissa_bits: adding it rounds to an integer held in the low mantissa bits.
    const ROUND_MAGIC: Self;
    /// The exponent bias.
    const EXP_BIAS: i32;
    /// Non-positive arguments are scaled as `(p · 2^(n + SCALE_SHIFT)) · 2^-SCALE_SHIFT`, which
    /// keeps the first product normal and rounds once into the subnormal range.
    const SCALE_SHIFT: i32;
    /// Coefficients c_k (k = d … 2, highest first) of e^r ≈ 1 + r + r²·Σ c_k r^(k−2) on
    /// |r| ≤ ln2/2, accurate to well under one ULP.
    const EXP_POLY: &'static [Self];
    /// A cheaper polynomial of the same form for terms that are only summed (relative error
    /// about 2^-23 for f32, 2^-52 for f64).
    const EXP_POLY_SUM: &'static [Self];
    /// The table form of [`exp::exp_from_base`](crate::simd::exp::exp_from_base) (f32; empty
    /// for f64, which keeps the polynomial form): 2^(j/8) rounded to nearest, j = 0 … 7.
    const BASE_TABLE: &'static [Self];
    /// The same entries times 2^SCALE_SHIFT (exact), for the vectors that scale natively.
    const BASE_TABLE_SCALED: &'static [Self];
    /// c3, c2 of e^t ≈ 1 + t + c2·t² + c3·t³ on |t| ≤ ln2/16 (the table form's polynomial).
    const BASE_TABLE_POLY: &'static [Self];
    /// Significand bits including the implicit one (24 or 53).
    const MANTISSA_DIGITS: u32;
}

/// An instruction-set token. Holding one proves the CPU supports the instruction set.
pub trait Isa: Copy + Send + Sync + Debug + 'static {
    const NAME: &'static str;
    type F32: FloatVec<Real = f32, Isa = Self>;
    type F64: FloatVec<Real = f64, Isa = Self>;

    /// Hints the CPU to fetch the cache line holding `ptr` (any address; never faults).
    fn prefetch(self, ptr: *const u8);

    /// As [`Isa::prefetch`], for a line needed only after more data than the L1 holds has
    /// gone through it (the next row's): into the L2 where the core tells the levels apart
    /// (Intel's; AMD's since Zen 4), into the L1 elsewhere.
    fn prefetch_far(self, ptr: *const u8);

    /// Orders earlier non-temporal stores ([`FloatVec::stream`]) before later memory accesses.
    fn store_fence(self);

    /// Runs `kernel` compiled for this instruction set (inside a `#[target_feature]` function).
    fn run<K: Kernel>(self, kernel: K) -> K::Output;

    /// Loads `F32::LANES` half-precision values, IEEE binary16 (`BF16 == false`) or bfloat16,
    /// as f32 lanes (exactly: every half value is an f32 value).
    ///
    /// # Safety
    /// `ptr` must be valid for reading `F32::LANES` values (no alignment needed).
    unsafe fn load_half<const BF16: bool>(self, ptr: *const u16) -> Self::F32;

    /// Stores f32 lanes as `F32::LANES` half-precision values, each rounded once to nearest
    /// even (overflow to ±inf, gradual underflow; a NaN stays NaN, quieted, keeping the top
    /// payload bits). Every path converts bit-identically (tested over all inputs that matter).
    /// `NAN == false` promises that no lane is NaN: bfloat16 then skips its NaN handling (the
    /// same bits for every other value).
    ///
    /// # Safety
    /// `ptr` must be valid for writing `F32::LANES` values (no alignment needed).
    unsafe fn store_half<const BF16: bool, const NAN: bool>(v: Self::F32, ptr: *mut u16);

    /// [`Isa::store_half`] of two vectors to `2 · F32::LANES` consecutive values, `low` first:
    /// the same bits, for paths that convert a pair in fewer operations than two singles.
    ///
    /// # Safety
    /// `ptr` must be valid for writing `2 · F32::LANES` values (no alignment needed).
    #[inline(always)]
    unsafe fn store_half_pair<const BF16: bool, const NAN: bool>(
        self,
        low: Self::F32,
        high: Self::F32,
        ptr: *mut u16,
    ) {
        // SAFETY: forwarded from the caller.
        unsafe {
            Self::store_half::<BF16, NAN>(low, ptr);
            Self::store_half::<BF16, NAN>(high, ptr.add(<Self::F32 as FloatVec>::LANES));
        }
    }

    /// [`Isa::store_half_pair`] (NaN lanes allowed) by a non-temporal store: the same bits.
    /// Paths without one store plainly.
    ///
    /// # Safety
    /// `ptr` must be valid for writing `2 · F32::LANES` values and aligned to their size.
    #[inline(always)]
    unsafe fn stream_half_pair<const BF16: bool>(
        self,
        low: Self::F32,
        high: Self::F32,
        ptr: *mut u16,
    ) {
        // SAFETY: forwarded from the caller.
        unsafe { self.store_half_pair::<BF16, true>(low, high, ptr) }
    }

    /// Running extremes of 16-bit patterns, [`Isa::BITS16_LANES`] lanes: the largest as a
    /// signed integer, the smallest and the largest as unsigned ones. Half-precision values
    /// are sign-magnitude, so a maximum scan can take these straight from the stored bits
    /// (`reduce::half_max_scan`) instead of widening every value to f32.
    type Extremes16: Copy;

    /// Patterns one [`Isa::fold_extremes16`] reads.
    const BITS16_LANES: usize;

    /// Every lane set to `start`, in the order (signed maximum, unsigned minimum, unsigned
    /// maximum).
    fn splat_extremes16(self, start: [u16; 3]) -> Self::Extremes16;

    /// Folds [`Isa::BITS16_LANES`] patterns read from `ptr` into `acc`.
    ///
    /// # Safety
    /// `ptr` must be valid for reading `BITS16_LANES` values (no alignment needed).
    unsafe fn fold_extremes16(self, acc: Self::Extremes16, ptr: *const u16) -> Self::Extremes16;

    /// The extremes over the lanes, in the order of [`Isa::splat_extremes16`].
    fn reduce_extremes16(acc: Self::Extremes16) -> [u16; 3];
}

/// Two sets of 16-bit extremes combined, in the order of [`Isa::splat_extremes16`]: the
/// scalar form of one `fold_extremes16` step (a single pattern b is `[b, b, b]`).
#[inline(always)]
pub(crate) fn merge_extremes16(a: [u16; 3], b: [u16; 3]) -> [u16; 3] {
    [
        (a[0] as i16).max(b[0] as i16) as u16,
        a[1].min(b[1]),
        a[2].max(b[2]),
    ]
}

/// [`Isa::reduce_extremes16`] from the lanes of the three accumulators, stored as arrays.
#[inline(always)]
pub(crate) fn extremes16_of_lanes<const N: usize>(lanes: &[[u16; N]; 3]) -> [u16; 3] {
    (0..N).fold([i16::MIN as u16, u16::MAX, 0], |acc, i| {
        merge_extremes16(acc, [lanes[0][i], lanes[1][i], lanes[2][i]])
    })
}

/// The operations a kernel may perform on a vector of `LANES` values of one precision.
///
/// `min` and `max` follow the x86 `minps`/`maxps` rule on every ISA: when the comparison is
/// false (either operand NaN, or equal values), the **second** operand is returned. Kernels rely on
/// that to let a NaN through (`max(bound, x)` returns `x` when `x` is NaN).
pub trait FloatVec: Copy + Debug {
    type Real: Real;
    type Isa: Isa;
    /// Lane mask produced by comparisons.
    type Mask: Copy;
    const LANES: usize;

    fn splat(isa: Self::Isa, x: Self::Real) -> Self;
    /// # Safety
    /// `ptr` must be valid for reading `LANES` values (no alignment needed).
    unsafe fn load(isa: Self::Isa, ptr: *const Self::Real) -> Self;
    /// # Safety
    /// `ptr` must be valid for writing `LANES` values (no alignment needed).
    unsafe fn store(self, ptr: *mut Self::Real);
    /// Stores `LANES` values with a non-temporal (cache-bypassing) store.
    ///
    /// # Safety
    /// `ptr` must be valid for writing `LANES` values and aligned to `LANES` values; the caller
    /// issues [`Isa::store_fence`] before the data is handed to another thread.
    unsafe fn stream(self, ptr: *mut Self::Real);
    /// Loads `n < LANES` values; the other lanes are `pad`.
    ///
    /// # Safety
    /// `ptr` must be valid for reading `n` values.
    unsafe fn load_partial(
        isa: Self::Isa,
        ptr: *const Self::Real,
        n: usize,
        pad: Self::Real,
    ) -> Self;
    /// Stores the first `n < LANES` lanes.
    ///
    /// # Safety
    /// `ptr` must be valid for writing `n` values.
    unsafe fn store_partial(self, ptr: *mut Self::Real, n: usize);

    fn add(self, b: Self) -> Self;
    fn sub(self, b: Self) -> Self;
    fn mul(self, b: Self) -> Self;
    fn div(self, b: Self) -> Self;
    /// `self * b + c` with one rounding.
    fn mul_add(self, b: Self, c: Self) -> Self;
    /// `if self > b { self } else { b }` (x86 `maxps`).
    fn max(self, b: Self) -> Self;
    /// `if self < b { self } else { b }` (x86 `minps`).
    fn min(self, b: Self) -> Self;

    fn lt(self, b: Self) -> Self::Mask;
    fn ge(self, b: Self) -> Self::Mask;
    fn eq(self, b: Self) -> Self::Mask;
    /// Lanes that are NaN.
    fn is_nan(self) -> Self::Mask;
    /// Lanes where `self` or `b` is NaN (one unordered comparison for two vectors).
    fn either_nan(self, b: Self) -> Self::Mask;
    /// `mask ? self : 0`.
    fn and_mask(self, mask: Self::Mask) -> Self;
    /// `mask ? a : b`.
    fn select(mask: Self::Mask, a: Self, b: Self) -> Self;
    fn mask_or(a: Self::Mask, b: Self::Mask) -> Self::Mask;
    fn mask_and(a: Self::Mask, b: Self::Mask) -> Self::Mask;
    /// Bit `i` set when lane `i` of the mask is set.
    fn mask_bits(mask: Self::Mask) -> u32;

    /// Reinterprets the bits as an integer, shifts left by the explicit mantissa width (23 or
    /// 52) and reinterprets back: turns `ROUND_MAGIC + bias + n` into `2^n`.
    fn shl_mantissa(self) -> Self;

    /// 2^e from a sum that holds `ROUND_MAGIC/8 + bias + e + j/8` (rounded to eighths, 0 ≤ j
    /// < 8): the bits shifted left by the mantissa width less three, the fraction's three bits
    /// masked off (the table form of `exp::exp_from_base`).
    fn pow2_of_eighths(self) -> Self;

    /// `table[j]` in every lane, j the lane's three lowest bits read as an integer (`table`
    /// has eight entries): one register permute on the vector paths.
    fn lookup8(self, isa: Self::Isa, table: &[Self::Real]) -> Self;

    /// Whether [`FloatVec::scale_pow2`] is one instruction (AVX-512's `vscalefps`): the
    /// exponential then scales its result by 2^n directly instead of building 2^n from bits.
    const NATIVE_SCALE: bool = false;

    /// self · 2^n for integral lanes n with 2^n a normal number (exact when the product is
    /// normal).
    fn scale_pow2(self, isa: Self::Isa, n: Self) -> Self {
        let magic = Self::Real::ROUND_MAGIC.to_f64() + Self::Real::EXP_BIAS as f64;
        self.mul(
            n.add(Self::splat(isa, Self::Real::from_f64(magic)))
                .shl_mantissa(),
        )
    }

    /// self · 2^n where n ≥ `min` or n is NaN, +0 where n < `min` (n integral, 2^n normal
    /// where kept): the stored terms' scaling where [`FloatVec::NATIVE_SCALE`], with the zero
    /// that the bits form of 2^n gives at the bottom of the exponent range.
    fn scale_pow2_from(self, isa: Self::Isa, n: Self, min: Self) -> Self {
        Self::select(
            n.lt(min),
            Self::splat(isa, Self::Real::ZERO),
            self.scale_pow2(isa, n),
        )
    }

    /// For positive, normal, finite lanes x = m · 2^k: returns (m ∈ [1, 2), k as a float).
    /// Other lanes give unspecified (but non-trapping) values.
    fn split_exponent(self) -> (Self, Self);

    /// Lane-wise maximum with the x86 rule applied left to right (lane 0 first).
    fn reduce_max(self) -> Self::Real;
    /// Sum of the lanes, accumulated in f64.
    fn reduce_sum_f64(self) -> f64;

    /// The running f64 sum that the row kernels' vector accumulators flush their lanes into
    /// every few rounds ([`FloatVec::flush_into`]): for f32 lanes, f64 vectors (no horizontal
    /// step, no scalar chain per flush; the f64 lanes' own rounding, under 2^-53 per flush, is
    /// far below f32's 2^-20 bounds); for f64 lanes, a compensated scalar sum ([`SumF64`]),
    /// which f64's bounds need.
    type Wide: Copy;
    /// An empty [`FloatVec::Wide`] sum.
    fn wide_zero(isa: Self::Isa) -> Self::Wide;
    /// Adds this vector's lanes to the running sum.
    fn flush_into(self, wide: Self::Wide) -> Self::Wide;
    /// The running sum's value (its lanes summed in a fixed order).
    fn wide_value(wide: Self::Wide) -> f64;

    /// Transposes `LANES` vectors in place: afterwards lane `r` of `v[c]` is what lane `c` of
    /// `v[r]` was (rows of a batch become columns, one row per lane, and back).
    fn transpose(v: &mut [Self]);

    /// Whether [`FloatVec::transpose_quads`] and [`FloatVec::untranspose_quads`] cost much less
    /// than a whole [`FloatVec::transpose`]: a batch of short rows then moves the few columns
    /// past its last whole tile four at a time (20 columns on 16 lanes: one 16 × 4 tile instead
    /// of a second 16 × 16 one overlapping the first).
    const QUAD_TILES: bool = false;

    /// Loads four values into lanes 0..4 (the other lanes unspecified), for
    /// [`FloatVec::transpose_quads`]; a plain load of their width, never one that spans a
    /// whole vector (a masked store of four lanes at a row's end crossed a cache line for
    /// most rows and ran the 20-column softmax 20 % slower).
    ///
    /// # Safety
    /// `ptr` valid for reading four values; `LANES ≥ 4`.
    #[inline(always)]
    unsafe fn load_quad(isa: Self::Isa, ptr: *const Self::Real) -> Self {
        // SAFETY: forwarded.
        unsafe { Self::load_partial(isa, ptr, 4, Self::Real::ZERO) }
    }

    /// Stores lanes 0..4 (see [`FloatVec::load_quad`]).
    ///
    /// # Safety
    /// `ptr` valid for writing four values; `LANES ≥ 4`.
    #[inline(always)]
    unsafe fn store_quad(self, ptr: *mut Self::Real) {
        // SAFETY: forwarded.
        unsafe { self.store_partial(ptr, 4) }
    }

    /// Four columns of `LANES ≥ 4` rows: lanes 0..4 of `rows[r]` hold row r's four values (its
    /// other lanes are ignored); lane r of column `k` is lane k of `rows[r]`.
    #[inline(always)]
    fn transpose_quads(rows: &[Self]) -> [Self; 4] {
        let mut tile = [rows[0]; 16];
        tile[..Self::LANES].copy_from_slice(&rows[..Self::LANES]);
        Self::transpose(&mut tile[..Self::LANES]);
        [tile[0], tile[1], tile[2], tile[3]]
    }

    /// The inverse of [`FloatVec::transpose_quads`]: lanes 0..4 of `rows[r]` become lane r of
    /// the four columns (its other lanes are unspecified).
    #[inline(always)]
    fn untranspose_quads(columns: [Self; 4], rows: &mut [Self]) {
        let rows = &mut rows[..Self::LANES];
        rows[..4].copy_from_slice(&columns);
        Self::transpose(rows);
    }

    /// `acc[i] += lane i` in f64, for the first `LANES` entries of `acc`.
    fn add_lanes_f64(self, acc: &mut [f64]);
}

/// A kernel body generic over the instruction set, run by [`dispatch`] (crate-internal: the
/// module is private).
pub trait Kernel {
    type Output;
    fn run<S: Isa>(self, isa: S) -> Self::Output;
}

/// The instruction-set paths xent has. [`crate::isa`] reports the one in use.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash)]
pub enum IsaPath {
    /// Portable scalar code, one lane.
    Scalar,
    /// x86-64 AVX2 + FMA (pulp's `V3` level), 256-bit vectors.
    Avx2Fma,
    /// x86-64 AVX-512 F, BW, CD, DQ, VL (pulp's `V4` level), 512-bit vectors.
    Avx512,
}

impl IsaPath {
    /// A short name (`"scalar"`, `"avx2+fma"`, `"avx512"`).
    pub fn name(self) -> &'static str {
        match self {
            IsaPath::Scalar => scalar::Scalar::NAME,
            IsaPath::Avx2Fma => "avx2+fma",
            IsaPath::Avx512 => "avx512",
        }
    }

    /// Whether this CPU can run the path.
    pub fn is_available(self) -> bool {
        match self {
            IsaPath::Scalar => true,
            IsaPath::Avx2Fma => {
                #[cfg(target_arch = "x86_64")]
                {
                    avx2::Avx2::try_new().is_some()
                }
                #[cfg(not(target_arch = "x86_64"))]
                {
                    false
                }
            }
            IsaPath::Avx512 => {
                #[cfg(all(target_arch = "x86_64", any(not(fuzzing), xent_fuzz_avx512)))]
                {
                    avx512::Avx512::try_new().is_some()
                }
                #[cfg(not(all(target_arch = "x86_64", any(not(fuzzing), xent_fuzz_avx512))))]
                {
                    false
                }
            }
        }
    }

    /// Every path, best first.
    pub const ALL: [IsaPath; 3] = [IsaPath::Avx512, IsaPath::Avx2Fma, IsaPath::Scalar];
}

impl core::fmt::Display for IsaPath {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(self.name())
    }
}

std::thread_local! {
    static FORCED: core::cell::Cell<Option<IsaPath>> = const { core::cell::Cell::new(None) };
}

/// The best path this CPU runs, detected once.
pub(crate) fn detected() -> IsaPath {
    use std::sync::OnceLock;
    static BEST: OnceLock<IsaPath> = OnceLock::new();
    *BEST.get_or_init(|| {
        IsaPath::ALL
            .into_iter()
            .find(|p| p.is_available())
            .unwrap_or(IsaPath::Scalar)
    })
}

/// The path the calling thread uses now: a forced one (see [`crate::force_isa`]) or the best.
pub(crate) fn current() -> IsaPath {
    FORCED.with(|f| f.get()).unwrap_or_else(detected)
}

pub(crate) fn set_forced(path: Option<IsaPath>) -> Option<IsaPath> {
    FORCED.with(|f| f.replace(path))
}

/// Runs `kernel` on `path`, which the caller obtained from [`current`] (so it is available).
#[inline]
pub(crate) fn dispatch<K: Kernel>(path: IsaPath, kernel: K) -> K::Output {
    match path {
        IsaPath::Scalar => kernel.run(scalar::Scalar),
        IsaPath::Avx2Fma => {
            #[cfg(target_arch = "x86_64")]
            if let Some(isa) = avx2::Avx2::try_new() {
                return isa.run(kernel);
            }
            kernel.run(scalar::Scalar)
        }
        IsaPath::Avx512 => {
            #[cfg(all(target_arch = "x86_64", any(not(fuzzing), xent_fuzz_avx512)))]
            if let Some(isa) = avx512::Avx512::try_new() {
                return isa.run(kernel);
            }
            kernel.run(scalar::Scalar)
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// `V::transpose` turns row r's lane c into column c's lane r, and `add_lanes_f64` adds
    /// each lane into its own f64 accumulator.
    pub(crate) fn check_transpose_and_widen<V: FloatVec>(isa: V::Isa) {
        const MAX: usize = 16;
        let lanes = V::LANES;
        assert!(lanes <= MAX);
        let value = |r: usize, c: usize| ((r * MAX + c) % 11) as f64 * 0.75 - 4.5;
        let rows: Vec<[V::Real; MAX]> = (0..lanes)
            .map(|r| core::array::from_fn(|c| V::Real::from_f64(value(r, c))))
            .collect();
        // SAFETY: each row holds MAX ≥ LANES values.
        let mut v: Vec<V> = rows
            .iter()
            .map(|r| unsafe { V::load(isa, r.as_ptr()) })
            .collect();
        V::transpose(&mut v);
        let mut sum = [0.5f64; MAX];
        for (c, column) in v.iter().enumerate() {
            let mut got = [V::Real::ZERO; MAX];
            // SAFETY: got holds MAX ≥ LANES values.
            unsafe { column.store(got.as_mut_ptr()) };
            for (r, row) in rows.iter().enumerate() {
                assert_eq!(got[r].to_f64(), row[c].to_f64(), "row {r}, column {c}");
            }
            column.add_lanes_f64(&mut sum);
        }
        for (r, row) in rows.iter().enumerate() {
            let expected = 0.5 + row[..lanes].iter().map(|x| x.to_f64()).sum::<f64>();
            assert_eq!(sum[r], expected, "row {r}");
        }
    }

    /// `V::transpose_quads` turns lanes 0..4 of each row into four columns and
    /// `V::untranspose_quads` turns them back (other lanes of the rows hold NaN: ignored).
    pub(crate) fn check_quads<V: FloatVec>(isa: V::Isa) {
        const MAX: usize = 16;
        let lanes = V::LANES;
        assert!((4..=MAX).contains(&lanes));
        let value = |r: usize, c: usize| ((r * 7 + c * 3) % 13) as f64 * 0.5 - 3.0;
        let rows: Vec<[V::Real; MAX]> = (0..lanes)
            .map(|r| {
                core::array::from_fn(|c| {
                    V::Real::from_f64(if c < 4 { value(r, c) } else { f64::NAN })
                })
            })
            .collect();
        // SAFETY: each row holds MAX ≥ LANES values.
        let v: Vec<V> = rows
            .iter()
            .map(|r| unsafe { V::load(isa, r.as_ptr()) })
            .collect();
        let columns = V::transpose_quads(&v);
        for (c, column) in columns.iter().enumerate() {
            let mut got = [V::Real::ZERO; MAX];
            // SAFETY: got holds MAX ≥ LANES values.
            unsafe { column.store(got.as_mut_ptr()) };
            for (r, got) in got.iter().enumerate().take(lanes) {
                assert_eq!(got.to_f64(), value(r, c), "row {r}, column {c}");
            }
        }
        let mut back = vec![V::splat(isa, V::Real::ZERO); lanes];
        V::untranspose_quads(columns, &mut back);
        for (r, row) in back.iter().enumerate() {
            // Four values stored, the fifth left alone.
            let mut got = [V::Real::from_f64(7.0); 5];
            // SAFETY: got holds five values.
            unsafe { row.store_quad(got.as_mut_ptr()) };
            for (c, got) in got.iter().enumerate().take(4) {
                assert_eq!(got.to_f64(), value(r, c), "back: row {r}, column {c}");
            }
            assert_eq!(got[4].to_f64(), 7.0, "row {r}: a fifth value stored");
            // SAFETY: got holds four values.
            let reloaded = unsafe { V::load_quad(isa, got.as_ptr()) };
            let mut lanes_back = [V::Real::ZERO; MAX];
            // SAFETY: MAX ≥ LANES values.
            unsafe { reloaded.store(lanes_back.as_mut_ptr()) };
            for (c, got) in lanes_back.iter().enumerate().take(4) {
                assert_eq!(got.to_f64(), value(r, c), "load_quad: row {r}");
            }
        }
    }

    #[test]
    fn scalar_transpose_and_widen() {
        check_transpose_and_widen::<<scalar::Scalar as Isa>::F32>(scalar::Scalar);
        check_transpose_and_widen::<<scalar::Scalar as Isa>::F64>(scalar::Scalar);
    }
}

/// Neumaier summation in f64 of the partial sums that vector lanes flush every few rounds
/// (each lane adds at most 16 terms in its own precision first).
#[derive(Copy, Clone, Default)]
pub struct SumF64 {
    total: f64,
    comp: f64,
}

impl SumF64 {
    #[cfg_attr(not(xent_unoptimized), inline(always))]
    pub(crate) fn add(&mut self, x: f64) {
        let t = self.total + x;
        self.comp += if self.total.abs() >= x.abs() {
            (self.total - t) + x
        } else {
            (x - t) + self.total
        };
        self.total = t;
    }

    #[cfg_attr(not(xent_unoptimized), inline(always))]
    pub(crate) fn value(self) -> f64 {
        // Past an infinity the compensation is meaningless (inf − inf).
        if self.total.is_finite() {
            self.total + self.comp
        } else {
            self.total
        }
    }

    /// `self` with `x` added: the form [`FloatVec::flush_into`] takes for f64 lanes.
    #[cfg_attr(not(xent_unoptimized), inline(always))]
    pub(crate) fn plus(mut self, x: f64) -> Self {
        self.add(x);
        self
    }
}
