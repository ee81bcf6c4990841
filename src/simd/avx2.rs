//! x86-64 AVX2 + FMA (+ F16C): eight f32 or four f64 lanes.
//!
//! Detection comes from pulp's `V3` token (AVX2, FMA, BMI1/2, LZCNT, …) plus a run-time check
//! for F16C, which every AVX2 CPU has but pulp's `V3` does not enable. Kernels run inside our
//! own `#[target_feature]` function that enables both, so the half-precision conversions
//! inline. The vector types wrap `__m256`/`__m256d`; they are created only through an [`Avx2`]
//! token, and an `Avx2` exists only after both checks succeeded, so every intrinsic below runs
//! on a CPU that has it.

use core::arch::x86_64::*;

use super::{FloatVec, Isa, Kernel};

/// The AVX2 + FMA + F16C instruction-set token.
#[derive(Copy, Clone, Debug)]
pub struct Avx2(pulp::x86::V3);

impl Avx2 {
    /// Detects AVX2 + FMA (and the rest of x86-64-v3) and F16C at run time.
    #[inline]
    pub fn try_new() -> Option<Self> {
        if !std::arch::is_x86_feature_detected!("f16c") {
            return None;
        }
        pulp::x86::V3::try_new().map(Avx2)
    }
}

/// Runs a kernel with the AVX2, FMA and F16C code generation enabled.
///
/// # Safety
/// The CPU must support those features (an [`Avx2`] token proves it).
#[target_feature(enable = "avx,avx2,fma,f16c,bmi1,bmi2,lzcnt,popcnt")]
unsafe fn run_with_features<K: Kernel>(kernel: K, isa: Avx2) -> K::Output {
    kernel.run(isa)
}

impl Isa for Avx2 {
    const NAME: &'static str = "avx2+fma";
    type F32 = F32x8;
    type F64 = F64x4;

    #[inline(always)]
    fn prefetch(self, ptr: *const u8) {
        // SAFETY: a prefetch is a hint; it never faults, whatever the address.
        unsafe { _mm_prefetch::<_MM_HINT_T0>(ptr as *const i8) }
    }

    #[inline(always)]
    fn store_fence(self) {
        // SAFETY: SSE is part of the V3 level the token proves.
        unsafe { _mm_sfence() }
    }

    #[inline(always)]
    fn run<K: Kernel>(self, kernel: K) -> K::Output {
        // A generic function with the features enabled, the kernel passed as a value: a
        // closure body would be compiled without those features.
        // SAFETY: the token proves the features.
        unsafe { run_with_features(kernel, self) }
    }

    #[inline(always)]
    unsafe fn load_half<const BF16: bool>(self, ptr: *const u16) -> F32x8 {
        // SAFETY: the caller guarantees 8 readable values; the token proves AVX2 and F16C.
        unsafe {
            let h = _mm_loadu_si128(ptr as *const __m128i);
            if BF16 {
                // bfloat16 is the top half of an f32.
                F32x8(_mm256_castsi256_ps(_mm256_slli_epi32::<16>(
                    _mm256_cvtepu16_epi32(h),
                )))
            } else {
                F32x8(_mm256_cvtph_ps(h))
            }
        }
    }

    #[inline(always)]
    unsafe fn store_half<const BF16: bool>(v: F32x8, ptr: *mut u16) {
        // SAFETY: the caller guarantees 8 writable values; `v` exists only through a token,
        // which proves AVX2 and F16C.
        unsafe {
            let h = if BF16 {
                let bits = _mm256_castps_si256(v.0);
                // Round to nearest even on the 16 bits cut off: add 0x7FFF plus the lowest kept bit.
                let lsb = _mm256_and_si256(_mm256_srli_epi32::<16>(bits), _mm256_set1_epi32(1));
                let rounded = _mm256_srli_epi32::<16>(_mm256_add_epi32(
                    _mm256_add_epi32(bits, _mm256_set1_epi32(0x7FFF)),
                    lsb,
                ));
                // NaN: keep the top payload bits and set the quiet bit.
                let quiet = _mm256_or_si256(_mm256_srli_epi32::<16>(bits), _mm256_set1_epi32(0x40));
                let nan = _mm256_castps_si256(_mm256_cmp_ps::<_CMP_UNORD_Q>(v.0, v.0));
                let r = _mm256_blendv_epi8(rounded, quiet, nan);
                // 32 → 16 bits (values ≤ 0xFFFF, so unsigned saturation is exact), then gather
                // the two 128-bit halves' low quadwords.
                let packed = _mm256_packus_epi32(r, r);
                _mm256_castsi256_si128(_mm256_permute4x64_epi64::<0b1000>(packed))
            } else {
                _mm256_cvtps_ph::<_MM_FROUND_TO_NEAREST_INT>(v.0)
            };
            _mm_storeu_si128(ptr as *mut __m128i, h);
        }
    }
}

/// Eight f32 lanes.
#[derive(Copy, Clone, Debug)]
pub struct F32x8(__m256);

/// Four f64 lanes.
#[derive(Copy, Clone, Debug)]
pub struct F64x4(__m256d);

// Every `unsafe` block below calls an AVX/AVX2/FMA intrinsic on values that exist only because an
// `Avx2` token was created, which proves the CPU supports them (see the module comment).

impl FloatVec for F32x8 {
    type Real = f32;
    type Isa = Avx2;
    type Mask = __m256;
    const LANES: usize = 8;

    #[inline(always)]
    fn splat(_: Avx2, x: f32) -> Self {
        // SAFETY: the token proves AVX support.
        Self(unsafe { _mm256_set1_ps(x) })
    }
    #[inline(always)]
    unsafe fn load(_: Avx2, ptr: *const f32) -> Self {
        // SAFETY: the caller guarantees 8 readable values; the token proves AVX support.
        Self(unsafe { _mm256_loadu_ps(ptr) })
    }
    #[inline(always)]
    unsafe fn store(self, ptr: *mut f32) {
        // SAFETY: the caller guarantees 8 writable values; `self` proves AVX support.
        unsafe { _mm256_storeu_ps(ptr, self.0) }
    }
    #[inline(always)]
    unsafe fn stream(self, ptr: *mut f32) {
        // SAFETY: the caller guarantees 8 writable, 32-byte aligned values.
        unsafe { _mm256_stream_ps(ptr, self.0) }
    }
    #[inline(always)]
    unsafe fn load_partial(_: Avx2, ptr: *const f32, n: usize, pad: f32) -> Self {
        // SAFETY: masked-off lanes are not accessed (vmaskmovps never faults on them); the
        // caller guarantees n readable values; the token proves AVX2 support.
        unsafe {
            let mask = tail_mask_32(n);
            let v = _mm256_maskload_ps(ptr, mask);
            Self(_mm256_blendv_ps(
                _mm256_set1_ps(pad),
                v,
                _mm256_castsi256_ps(mask),
            ))
        }
    }
    #[inline(always)]
    unsafe fn store_partial(self, ptr: *mut f32, n: usize) {
        // SAFETY: as load_partial, for writes.
        unsafe { _mm256_maskstore_ps(ptr, tail_mask_32(n), self.0) }
    }
    #[inline(always)]
    fn add(self, b: Self) -> Self {
        // SAFETY: see the comment above this impl.
        Self(unsafe { _mm256_add_ps(self.0, b.0) })
    }
    #[inline(always)]
    fn sub(self, b: Self) -> Self {
        // SAFETY: see the comment above this impl.
        Self(unsafe { _mm256_sub_ps(self.0, b.0) })
    }
    #[inline(always)]
    fn mul(self, b: Self) -> Self {
        // SAFETY: see the comment above this impl.
        Self(unsafe { _mm256_mul_ps(self.0, b.0) })
    }
    #[inline(always)]
    fn div(self, b: Self) -> Self {
        // SAFETY: see the comment above this impl.
        Self(unsafe { _mm256_div_ps(self.0, b.0) })
    }
    #[inline(always)]
    fn mul_add(self, b: Self, c: Self) -> Self {
        // SAFETY: see the comment above this impl (FMA is part of the V3 level).
        Self(unsafe { _mm256_fmadd_ps(self.0, b.0, c.0) })
    }
    #[inline(always)]
    fn max(self, b: Self) -> Self {
        // SAFETY: see the comment above this impl.
        Self(unsafe { _mm256_max_ps(self.0, b.0) })
    }
    #[inline(always)]
    fn min(self, b: Self) -> Self {
        // SAFETY: see the comment above this impl.
        Self(unsafe { _mm256_min_ps(self.0, b.0) })
    }
    #[inline(always)]
    fn lt(self, b: Self) -> __m256 {
        // SAFETY: see the comment above this impl.
        unsafe { _mm256_cmp_ps::<_CMP_LT_OQ>(self.0, b.0) }
    }
    #[inline(always)]
    fn ge(self, b: Self) -> __m256 {
        // SAFETY: see the comment above this impl.
        unsafe { _mm256_cmp_ps::<_CMP_GE_OQ>(self.0, b.0) }
    }
    #[inline(always)]
    fn eq(self, b: Self) -> __m256 {
        // SAFETY: see the comment above this impl.
        unsafe { _mm256_cmp_ps::<_CMP_EQ_OQ>(self.0, b.0) }
    }
    #[inline(always)]
    fn is_nan(self) -> __m256 {
        // SAFETY: see the comment above this impl.
        unsafe { _mm256_cmp_ps::<_CMP_UNORD_Q>(self.0, self.0) }
    }
    #[inline(always)]
    fn and_mask(self, mask: __m256) -> Self {
        // SAFETY: see the comment above this impl.
        Self(unsafe { _mm256_and_ps(self.0, mask) })
    }
    #[inline(always)]
    fn select(mask: __m256, a: Self, b: Self) -> Self {
        // SAFETY: see the comment above this impl.
        Self(unsafe { _mm256_blendv_ps(b.0, a.0, mask) })
    }
    #[inline(always)]
    fn mask_or(a: __m256, b: __m256) -> __m256 {
        // SAFETY: see the comment above this impl.
        unsafe { _mm256_or_ps(a, b) }
    }
    #[inline(always)]
    fn mask_and(a: __m256, b: __m256) -> __m256 {
        // SAFETY: see the comment above this impl.
        unsafe { _mm256_and_ps(a, b) }
    }
    #[inline(always)]
    fn mask_bits(mask: __m256) -> u32 {
        // SAFETY: see the comment above this impl.
        unsafe { _mm256_movemask_ps(mask) as u32 }
    }
    #[inline(always)]
    fn shl_mantissa(self) -> Self {
        // SAFETY: see the comment above this impl.
        Self(unsafe { _mm256_castsi256_ps(_mm256_slli_epi32::<23>(_mm256_castps_si256(self.0))) })
    }
    #[inline(always)]
    fn split_exponent(self) -> (Self, Self) {
        // SAFETY: see the comment above this impl.
        unsafe {
            let bits = _mm256_castps_si256(self.0);
            let m = _mm256_or_si256(
                _mm256_and_si256(bits, _mm256_set1_epi32(0x007F_FFFF)),
                _mm256_set1_epi32(0x3F80_0000),
            );
            let k = _mm256_sub_ps(
                _mm256_cvtepi32_ps(_mm256_srli_epi32::<23>(bits)),
                _mm256_set1_ps(127.0),
            );
            (Self(_mm256_castsi256_ps(m)), Self(k))
        }
    }
    #[inline(always)]
    fn reduce_max(self) -> f32 {
        let lanes: [f32; 8] = lanes_f32(self.0);
        lanes[1..]
            .iter()
            .fold(lanes[0], |a, &b| if a > b { a } else { b })
    }
    #[inline(always)]
    fn reduce_sum_f64(self) -> f64 {
        // SAFETY: see the comment above this impl.
        unsafe {
            let lo = _mm256_cvtps_pd(_mm256_castps256_ps128(self.0));
            let hi = _mm256_cvtps_pd(_mm256_extractf128_ps::<1>(self.0));
            F64x4(_mm256_add_pd(lo, hi)).reduce_sum_f64()
        }
    }
    #[inline(always)]
    fn transpose_max(v: &[Self], out: &mut [f32]) {
        let (v, out) = (&v[..8], &mut out[..8]);
        // SAFETY: see the comment above this impl.
        unsafe {
            // Pairs of adjacent lanes of two vectors: [a01 a23 b01 b23 | a45 a67 b45 b67].
            let (ab, cd) = (max_pairs(v[0].0, v[1].0), max_pairs(v[2].0, v[3].0));
            let (ef, gh) = (max_pairs(v[4].0, v[5].0), max_pairs(v[6].0, v[7].0));
            // [a0123 b c d | a4567 b c d] and the same for e … h.
            let (abcd, efgh) = (max_pairs(ab, cd), max_pairs(ef, gh));
            let r = _mm256_max_ps(
                _mm256_permute2f128_ps::<0x20>(abcd, efgh),
                _mm256_permute2f128_ps::<0x31>(abcd, efgh),
            );
            _mm256_storeu_ps(out.as_mut_ptr(), r);
        }
    }
    #[inline(always)]
    fn transpose_sum_f64(v: &[Self], out: &mut [f64]) {
        let (v, out) = (&v[..8], &mut out[..8]);
        // Lane i of each f64 vector: x_i + x_(i+4), then the f64 transpose for four rows.
        let lo = [
            widen_halves(v[0]),
            widen_halves(v[1]),
            widen_halves(v[2]),
            widen_halves(v[3]),
        ];
        let hi = [
            widen_halves(v[4]),
            widen_halves(v[5]),
            widen_halves(v[6]),
            widen_halves(v[7]),
        ];
        F64x4::transpose_sum_f64(&lo, &mut out[..4]);
        F64x4::transpose_sum_f64(&hi, &mut out[4..]);
    }
}

/// The maxima of adjacent lane pairs of `a` and `b`: [a01 a23 b01 b23 | a45 a67 b45 b67].
#[inline(always)]
fn max_pairs(a: __m256, b: __m256) -> __m256 {
    // SAFETY: only reached from `F32x8` methods, whose values prove AVX support.
    unsafe {
        _mm256_max_ps(
            _mm256_shuffle_ps::<0b10_00_10_00>(a, b),
            _mm256_shuffle_ps::<0b11_01_11_01>(a, b),
        )
    }
}

/// Lane i: a_i + a_(i+4), in f64.
#[inline(always)]
fn widen_halves(a: F32x8) -> F64x4 {
    // SAFETY: `a` exists only through an AVX token.
    unsafe {
        F64x4(_mm256_add_pd(
            _mm256_cvtps_pd(_mm256_castps256_ps128(a.0)),
            _mm256_cvtps_pd(_mm256_extractf128_ps::<1>(a.0)),
        ))
    }
}

/// All-ones in the first `n` 32-bit lanes.
#[inline(always)]
unsafe fn tail_mask_32(n: usize) -> __m256i {
    // SAFETY: only called from AVX2 code (see the callers).
    unsafe {
        _mm256_cmpgt_epi32(
            _mm256_set1_epi32(n as i32),
            _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7),
        )
    }
}

/// All-ones in the first `n` 64-bit lanes.
#[inline(always)]
unsafe fn tail_mask_64(n: usize) -> __m256i {
    // SAFETY: only called from AVX2 code (see the callers).
    unsafe { _mm256_cmpgt_epi64(_mm256_set1_epi64x(n as i64), _mm256_setr_epi64x(0, 1, 2, 3)) }
}

#[inline(always)]
fn lanes_f32(v: __m256) -> [f32; 8] {
    // SAFETY: `__m256` and `[f32; 8]` have the same size, and every bit pattern is valid for both.
    unsafe { core::mem::transmute::<__m256, [f32; 8]>(v) }
}

#[inline(always)]
fn lanes_f64(v: __m256d) -> [f64; 4] {
    // SAFETY: `__m256d` and `[f64; 4]` have the same size, and every bit pattern is valid for both.
    unsafe { core::mem::transmute::<__m256d, [f64; 4]>(v) }
}

impl FloatVec for F64x4 {
    type Real = f64;
    type Isa = Avx2;
    type Mask = __m256d;
    const LANES: usize = 4;

    #[inline(always)]
    fn splat(_: Avx2, x: f64) -> Self {
        // SAFETY: the token proves AVX support.
        Self(unsafe { _mm256_set1_pd(x) })
    }
    #[inline(always)]
    unsafe fn load(_: Avx2, ptr: *const f64) -> Self {
        // SAFETY: the caller guarantees 4 readable values; the token proves AVX support.
        Self(unsafe { _mm256_loadu_pd(ptr) })
    }
    #[inline(always)]
    unsafe fn store(self, ptr: *mut f64) {
        // SAFETY: the caller guarantees 4 writable values; `self` proves AVX support.
        unsafe { _mm256_storeu_pd(ptr, self.0) }
    }
    #[inline(always)]
    unsafe fn stream(self, ptr: *mut f64) {
        // SAFETY: the caller guarantees 4 writable, 32-byte aligned values.
        unsafe { _mm256_stream_pd(ptr, self.0) }
    }
    #[inline(always)]
    unsafe fn load_partial(_: Avx2, ptr: *const f64, n: usize, pad: f64) -> Self {
        // SAFETY: as the f32 version.
        unsafe {
            let mask = tail_mask_64(n);
            let v = _mm256_maskload_pd(ptr, mask);
            Self(_mm256_blendv_pd(
                _mm256_set1_pd(pad),
                v,
                _mm256_castsi256_pd(mask),
            ))
        }
    }
    #[inline(always)]
    unsafe fn store_partial(self, ptr: *mut f64, n: usize) {
        // SAFETY: as load_partial, for writes.
        unsafe { _mm256_maskstore_pd(ptr, tail_mask_64(n), self.0) }
    }
    #[inline(always)]
    fn add(self, b: Self) -> Self {
        // SAFETY: see the comment above the f32 impl.
        Self(unsafe { _mm256_add_pd(self.0, b.0) })
    }
    #[inline(always)]
    fn sub(self, b: Self) -> Self {
        // SAFETY: see the comment above the f32 impl.
        Self(unsafe { _mm256_sub_pd(self.0, b.0) })
    }
    #[inline(always)]
    fn mul(self, b: Self) -> Self {
        // SAFETY: see the comment above the f32 impl.
        Self(unsafe { _mm256_mul_pd(self.0, b.0) })
    }
    #[inline(always)]
    fn div(self, b: Self) -> Self {
        // SAFETY: see the comment above the f32 impl.
        Self(unsafe { _mm256_div_pd(self.0, b.0) })
    }
    #[inline(always)]
    fn mul_add(self, b: Self, c: Self) -> Self {
        // SAFETY: see the comment above the f32 impl.
        Self(unsafe { _mm256_fmadd_pd(self.0, b.0, c.0) })
    }
    #[inline(always)]
    fn max(self, b: Self) -> Self {
        // SAFETY: see the comment above the f32 impl.
        Self(unsafe { _mm256_max_pd(self.0, b.0) })
    }
    #[inline(always)]
    fn min(self, b: Self) -> Self {
        // SAFETY: see the comment above the f32 impl.
        Self(unsafe { _mm256_min_pd(self.0, b.0) })
    }
    #[inline(always)]
    fn lt(self, b: Self) -> __m256d {
        // SAFETY: see the comment above the f32 impl.
        unsafe { _mm256_cmp_pd::<_CMP_LT_OQ>(self.0, b.0) }
    }
    #[inline(always)]
    fn ge(self, b: Self) -> __m256d {
        // SAFETY: see the comment above the f32 impl.
        unsafe { _mm256_cmp_pd::<_CMP_GE_OQ>(self.0, b.0) }
    }
    #[inline(always)]
    fn eq(self, b: Self) -> __m256d {
        // SAFETY: see the comment above the f32 impl.
        unsafe { _mm256_cmp_pd::<_CMP_EQ_OQ>(self.0, b.0) }
    }
    #[inline(always)]
    fn is_nan(self) -> __m256d {
        // SAFETY: see the comment above the f32 impl.
        unsafe { _mm256_cmp_pd::<_CMP_UNORD_Q>(self.0, self.0) }
    }
    #[inline(always)]
    fn and_mask(self, mask: __m256d) -> Self {
        // SAFETY: see the comment above the f32 impl.
        Self(unsafe { _mm256_and_pd(self.0, mask) })
    }
    #[inline(always)]
    fn select(mask: __m256d, a: Self, b: Self) -> Self {
        // SAFETY: see the comment above the f32 impl.
        Self(unsafe { _mm256_blendv_pd(b.0, a.0, mask) })
    }
    #[inline(always)]
    fn mask_or(a: __m256d, b: __m256d) -> __m256d {
        // SAFETY: see the comment above the f32 impl.
        unsafe { _mm256_or_pd(a, b) }
    }
    #[inline(always)]
    fn mask_and(a: __m256d, b: __m256d) -> __m256d {
        // SAFETY: see the comment above the f32 impl.
        unsafe { _mm256_and_pd(a, b) }
    }
    #[inline(always)]
    fn mask_bits(mask: __m256d) -> u32 {
        // SAFETY: see the comment above the f32 impl.
        unsafe { _mm256_movemask_pd(mask) as u32 }
    }
    #[inline(always)]
    fn shl_mantissa(self) -> Self {
        // SAFETY: see the comment above the f32 impl.
        Self(unsafe { _mm256_castsi256_pd(_mm256_slli_epi64::<52>(_mm256_castpd_si256(self.0))) })
    }
    #[inline(always)]
    fn split_exponent(self) -> (Self, Self) {
        // SAFETY: see the comment above the f32 impl.
        unsafe {
            let bits = _mm256_castpd_si256(self.0);
            let m = _mm256_or_si256(
                _mm256_and_si256(bits, _mm256_set1_epi64x(0x000F_FFFF_FFFF_FFFF)),
                _mm256_set1_epi64x(0x3FF0_0000_0000_0000),
            );
            // The biased exponent (sign bit 0) in the low mantissa bits of 2^52, then
            // 2^52 + 1023 subtracted: exact, without AVX-512's 64-bit integer conversion.
            let e = _mm256_or_si256(
                _mm256_srli_epi64::<52>(bits),
                _mm256_set1_epi64x(0x4330_0000_0000_0000),
            );
            let k = _mm256_sub_pd(
                _mm256_castsi256_pd(e),
                _mm256_set1_pd(4_503_599_627_371_519.0),
            );
            (Self(_mm256_castsi256_pd(m)), Self(k))
        }
    }
    #[inline(always)]
    fn reduce_max(self) -> f64 {
        let lanes = lanes_f64(self.0);
        lanes[1..]
            .iter()
            .fold(lanes[0], |a, &b| if a > b { a } else { b })
    }
    #[inline(always)]
    fn reduce_sum_f64(self) -> f64 {
        let l = lanes_f64(self.0);
        (l[0] + l[2]) + (l[1] + l[3])
    }
    #[inline(always)]
    fn transpose_max(v: &[Self], out: &mut [f64]) {
        let (v, out) = (&v[..4], &mut out[..4]);
        // SAFETY: see the comment above the f32 impl.
        unsafe {
            // [a01 b01 a23 b23] and [c01 d01 c23 d23], then the 128-bit halves.
            let (ab, cd) = (
                _mm256_max_pd(
                    _mm256_unpacklo_pd(v[0].0, v[1].0),
                    _mm256_unpackhi_pd(v[0].0, v[1].0),
                ),
                _mm256_max_pd(
                    _mm256_unpacklo_pd(v[2].0, v[3].0),
                    _mm256_unpackhi_pd(v[2].0, v[3].0),
                ),
            );
            let r = _mm256_max_pd(
                _mm256_permute2f128_pd::<0x20>(ab, cd),
                _mm256_permute2f128_pd::<0x31>(ab, cd),
            );
            _mm256_storeu_pd(out.as_mut_ptr(), r);
        }
    }
    #[inline(always)]
    fn transpose_sum_f64(v: &[Self], out: &mut [f64]) {
        let (v, out) = (&v[..4], &mut out[..4]);
        // SAFETY: see the comment above the f32 impl.
        unsafe {
            // Every row i: (x0 + x1) + (x2 + x3).
            let ab = _mm256_hadd_pd(v[0].0, v[1].0);
            let cd = _mm256_hadd_pd(v[2].0, v[3].0);
            let r = _mm256_add_pd(
                _mm256_permute2f128_pd::<0x20>(ab, cd),
                _mm256_permute2f128_pd::<0x31>(ab, cd),
            );
            _mm256_storeu_pd(out.as_mut_ptr(), r);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transposed_reductions() {
        let Some(isa) = Avx2::try_new() else { return };
        let rows: Vec<[f32; 8]> = (0..8)
            .map(|r| core::array::from_fn(|c| ((r * 8 + c) % 11) as f32 - 4.5))
            .collect();
        // SAFETY: 8 values per row.
        let v: Vec<F32x8> = rows
            .iter()
            .map(|r| unsafe { F32x8::load(isa, r.as_ptr()) })
            .collect();
        let mut max = [0f32; 8];
        let mut sum = [0f64; 8];
        F32x8::transpose_max(&v, &mut max);
        F32x8::transpose_sum_f64(&v, &mut sum);
        for (i, row) in rows.iter().enumerate() {
            assert_eq!(max[i], row.iter().cloned().fold(f32::MIN, f32::max));
            assert_eq!(sum[i], row.iter().map(|&x| x as f64).sum::<f64>());
        }
        let rows64: Vec<[f64; 4]> = (0..4)
            .map(|r| core::array::from_fn(|c| ((r * 4 + c) % 7) as f64 * 0.75 - 3.0))
            .collect();
        // SAFETY: 4 values per row.
        let w: Vec<F64x4> = rows64
            .iter()
            .map(|r| unsafe { F64x4::load(isa, r.as_ptr()) })
            .collect();
        let mut max = [0f64; 4];
        let mut sum = [0f64; 4];
        F64x4::transpose_max(&w, &mut max);
        F64x4::transpose_sum_f64(&w, &mut sum);
        for (i, row) in rows64.iter().enumerate() {
            assert_eq!(max[i], row.iter().cloned().fold(f64::MIN, f64::max));
            assert_eq!(sum[i], row.iter().sum::<f64>());
        }
    }
}
