//! The portable path: one lane, plain Rust, same algorithms as the vector paths.

use super::{FloatVec, Isa, Kernel, SumF64};

/// The scalar instruction-set token (always available).
#[derive(Copy, Clone, Debug)]
pub struct Scalar;

impl Isa for Scalar {
    const NAME: &'static str = "scalar";
    type F32 = f32;
    type F64 = f64;

    #[inline(always)]
    fn prefetch(self, _ptr: *const u8) {}

    #[inline(always)]
    fn prefetch_far(self, _ptr: *const u8) {}

    #[inline(always)]
    fn store_fence(self) {}

    #[inline(always)]
    fn run<K: Kernel>(self, kernel: K) -> K::Output {
        kernel.run(self)
    }

    #[inline(always)]
    unsafe fn load_half<const BF16: bool>(self, ptr: *const u16) -> f32 {
        // SAFETY: the caller guarantees one readable value.
        let bits = unsafe { ptr.read_unaligned() };
        if BF16 {
            // The top half of an f32, NaN payloads included (as the AVX2 path widens it).
            f32::from_bits(u32::from(bits) << 16)
        } else {
            half::f16::from_bits(bits).to_f32()
        }
    }

    #[inline(always)]
    unsafe fn store_half<const BF16: bool, const NAN: bool>(v: f32, ptr: *mut u16) {
        // `half` rounds to nearest even and quiets NaN exactly as F16C and the AVX2 bfloat16
        // code do (checked bit for bit in tests/half.rs).
        let bits = if BF16 {
            half::bf16::from_f32(v).to_bits()
        } else {
            half::f16::from_f32(v).to_bits()
        };
        // SAFETY: the caller guarantees one writable value.
        unsafe { ptr.write_unaligned(bits) }
    }

    type Extremes16 = [u16; 3];
    const BITS16_LANES: usize = 1;

    #[inline(always)]
    fn splat_extremes16(self, start: [u16; 3]) -> [u16; 3] {
        start
    }

    #[inline(always)]
    unsafe fn fold_extremes16(self, acc: [u16; 3], ptr: *const u16) -> [u16; 3] {
        // SAFETY: the caller guarantees one readable value.
        let b = unsafe { ptr.read_unaligned() };
        super::merge_extremes16(acc, [b; 3])
    }

    #[inline(always)]
    fn reduce_extremes16(acc: [u16; 3]) -> [u16; 3] {
        acc
    }
}

macro_rules! scalar_vec {
    ($t:ty, $bits:ty, $shift:expr) => {
        impl FloatVec for $t {
            type Real = $t;
            type Isa = Scalar;
            type Mask = bool;
            const LANES: usize = 1;

            #[inline(always)]
            fn splat(_: Scalar, x: $t) -> Self {
                x
            }
            #[inline(always)]
            unsafe fn load(_: Scalar, ptr: *const $t) -> Self {
                // SAFETY: the caller guarantees `ptr` is readable for one value.
                unsafe { ptr.read_unaligned() }
            }
            #[inline(always)]
            unsafe fn store(self, ptr: *mut $t) {
                // SAFETY: the caller guarantees `ptr` is writable for one value.
                unsafe { ptr.write_unaligned(self) }
            }
            #[inline(always)]
            unsafe fn stream(self, ptr: *mut $t) {
                // SAFETY: the caller guarantees `ptr` is writable for one value.
                unsafe { ptr.write(self) }
            }
            #[inline(always)]
            unsafe fn load_partial(_: Scalar, ptr: *const $t, n: usize, pad: $t) -> Self {
                // SAFETY: n < LANES = 1, so nothing but n == 0 reaches here; kept general.
                if n > 0 {
                    unsafe { ptr.read_unaligned() }
                } else {
                    pad
                }
            }
            #[inline(always)]
            unsafe fn store_partial(self, ptr: *mut $t, n: usize) {
                if n > 0 {
                    // SAFETY: the caller guarantees n writable values.
                    unsafe { ptr.write_unaligned(self) }
                }
            }
            #[inline(always)]
            fn add(self, b: Self) -> Self {
                self + b
            }
            #[inline(always)]
            fn sub(self, b: Self) -> Self {
                self - b
            }
            #[inline(always)]
            fn mul(self, b: Self) -> Self {
                self * b
            }
            #[inline(always)]
            fn div(self, b: Self) -> Self {
                self / b
            }
            #[inline(always)]
            fn mul_add(self, b: Self, c: Self) -> Self {
                // Fused, as on the vector paths, so every path rounds the same way.
                <$t>::mul_add(self, b, c)
            }
            #[inline(always)]
            fn max(self, b: Self) -> Self {
                if self > b {
                    self
                } else {
                    b
                }
            }
            #[inline(always)]
            fn min(self, b: Self) -> Self {
                if self < b {
                    self
                } else {
                    b
                }
            }
            #[inline(always)]
            fn lt(self, b: Self) -> bool {
                self < b
            }
            #[inline(always)]
            fn ge(self, b: Self) -> bool {
                self >= b
            }
            #[inline(always)]
            fn eq(self, b: Self) -> bool {
                self == b
            }
            #[inline(always)]
            fn is_nan(self) -> bool {
                self != self
            }
            #[inline(always)]
            fn either_nan(self, b: Self) -> bool {
                self != self || b != b
            }
            #[inline(always)]
            fn and_mask(self, mask: bool) -> Self {
                if mask {
                    self
                } else {
                    0.0
                }
            }
            #[inline(always)]
            fn select(mask: bool, a: Self, b: Self) -> Self {
                if mask {
                    a
                } else {
                    b
                }
            }
            #[inline(always)]
            fn mask_or(a: bool, b: bool) -> bool {
                a | b
            }
            #[inline(always)]
            fn mask_and(a: bool, b: bool) -> bool {
                a & b
            }
            #[inline(always)]
            fn mask_bits(mask: bool) -> u32 {
                mask as u32
            }
            #[inline(always)]
            fn shl_mantissa(self) -> Self {
                <$t>::from_bits(self.to_bits().wrapping_shl($shift))
            }
            #[inline(always)]
            fn pow2_of_eighths(self) -> Self {
                // The exponent field's mask is the bit pattern of +inf.
                <$t>::from_bits(self.to_bits().wrapping_shl($shift - 3) & <$t>::INFINITY.to_bits())
            }
            #[inline(always)]
            fn lookup8(self, _: Scalar, table: &[$t]) -> Self {
                table[(self.to_bits() & 7) as usize]
            }
            #[inline(always)]
            fn split_exponent(self) -> (Self, Self) {
                let bits = self.to_bits();
                let mantissa_mask = (1 << $shift) - 1;
                let one = (1.0 as $t).to_bits();
                let biased = (bits >> $shift) & (2 * (one >> $shift) + 1);
                let bias = (one >> $shift) as $t;
                (
                    <$t>::from_bits((bits & mantissa_mask) | one),
                    biased as $t - bias,
                )
            }
            #[inline(always)]
            fn reduce_max(self) -> $t {
                self
            }
            #[inline(always)]
            fn reduce_sum_f64(self) -> f64 {
                self as f64
            }
            type Wide = <$t as ScalarWide>::Wide;
            #[inline(always)]
            fn wide_zero(_: Scalar) -> Self::Wide {
                Default::default()
            }
            #[inline(always)]
            fn flush_into(self, wide: Self::Wide) -> Self::Wide {
                <$t as ScalarWide>::flush(self, wide)
            }
            #[inline(always)]
            fn wide_value(wide: Self::Wide) -> f64 {
                <$t as ScalarWide>::value(wide)
            }
            #[inline(always)]
            fn transpose(_v: &mut [Self]) {}
            #[inline(always)]
            fn add_lanes_f64(self, acc: &mut [f64]) {
                acc[0] += self as f64;
            }
        }
    };
}

/// The scalar path's [`FloatVec::Wide`]: a plain f64 for f32 lanes, as the vector paths' f64
/// lanes; a compensated sum for f64.
pub trait ScalarWide {
    type Wide: Copy + Default;
    fn flush(self, wide: Self::Wide) -> Self::Wide;
    fn value(wide: Self::Wide) -> f64;
}

impl ScalarWide for f32 {
    type Wide = f64;
    #[inline(always)]
    fn flush(self, wide: f64) -> f64 {
        wide + self as f64
    }
    #[inline(always)]
    fn value(wide: f64) -> f64 {
        wide
    }
}

impl ScalarWide for f64 {
    type Wide = SumF64;
    #[inline(always)]
    fn flush(self, wide: SumF64) -> SumF64 {
        wide.plus(self)
    }
    #[inline(always)]
    fn value(wide: SumF64) -> f64 {
        wide.value()
    }
}

scalar_vec!(f32, u32, 23);
scalar_vec!(f64, u64, 52);
