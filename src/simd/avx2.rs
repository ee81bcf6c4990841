//! x86-64 AVX2 + FMA (+ F16C): eight f32 or four f64 lanes.
//!
//! Detection comes from pulp's `V3` token (AVX2, FMA, BMI1/2, LZCNT, …) plus a run-time check
//! for F16C, which every AVX2 CPU has but pulp's `V3` does not enable. Kernels run inside our
//! own `#[target_feature]` function that enables both, so the half-precision conversions
//! inline. The vector types wrap `__m256`/`__m256d`; they are created only through an [`Avx2`]
//! token, and an `Avx2` exists only after both checks succeeded, so every intrinsic below runs
//! on a CPU that has it.

use core::arch::x86_64::*;

use super::{FloatVec, Isa, Kernel, SumF64};

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
    fn prefetch_far(self, ptr: *const u8) {
        // SAFETY: a prefetch is a hint; it never faults, whatever the address.
        unsafe { _mm_prefetch::<_MM_HINT_T1>(ptr as *const i8) }
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
    unsafe fn store_half<const BF16: bool, const NAN: bool>(v: F32x8, ptr: *mut u16) {
        // SAFETY: the caller guarantees 8 writable values; `v` exists only through a token,
        // which proves AVX2 and F16C.
        unsafe {
            let h = if BF16 {
                // 32 → 16 bits (values ≤ 0xFFFF, so unsigned saturation is exact), then gather
                // the two 128-bit halves' low quadwords.
                let r = bf16_rounded::<NAN>(v);
                let packed = _mm256_packus_epi32(r, r);
                _mm256_castsi256_si128(_mm256_permute4x64_epi64::<0b1000>(packed))
            } else {
                _mm256_cvtps_ph::<_MM_FROUND_TO_NEAREST_INT>(v.0)
            };
            _mm_storeu_si128(ptr as *mut __m128i, h);
        }
    }

    #[inline(always)]
    unsafe fn store_half_pair<const BF16: bool, const NAN: bool>(
        self,
        low: F32x8,
        high: F32x8,
        ptr: *mut u16,
    ) {
        // SAFETY: the caller guarantees 16 writable values; the token proves AVX2 and F16C.
        unsafe { _mm256_storeu_si256(ptr as *mut __m256i, half_pair_bits::<BF16, NAN>(low, high)) }
    }

    #[inline(always)]
    unsafe fn stream_half_pair<const BF16: bool>(self, low: F32x8, high: F32x8, ptr: *mut u16) {
        // SAFETY: the caller guarantees 16 writable values aligned to 32 bytes; the token
        // proves AVX2 and F16C.
        unsafe { _mm256_stream_si256(ptr as *mut __m256i, half_pair_bits::<BF16, true>(low, high)) }
    }

    type Extremes16 = [__m256i; 3];
    const BITS16_LANES: usize = 16;

    #[inline(always)]
    fn splat_extremes16(self, start: [u16; 3]) -> [__m256i; 3] {
        // SAFETY: the token proves AVX2.
        unsafe {
            [
                _mm256_set1_epi16(start[0] as i16),
                _mm256_set1_epi16(start[1] as i16),
                _mm256_set1_epi16(start[2] as i16),
            ]
        }
    }

    #[inline(always)]
    unsafe fn fold_extremes16(self, acc: [__m256i; 3], ptr: *const u16) -> [__m256i; 3] {
        // SAFETY: the caller guarantees 16 readable values; the token proves AVX2.
        unsafe {
            let b = _mm256_loadu_si256(ptr as *const __m256i);
            [
                _mm256_max_epi16(acc[0], b),
                _mm256_min_epu16(acc[1], b),
                _mm256_max_epu16(acc[2], b),
            ]
        }
    }

    #[inline(always)]
    fn reduce_extremes16(acc: [__m256i; 3]) -> [u16; 3] {
        let mut lanes = [[0u16; 16]; 3];
        for (out, v) in lanes.iter_mut().zip(acc) {
            // SAFETY: `out` holds 16 values; the vectors exist only through a token.
            unsafe { _mm256_storeu_si256(out.as_mut_ptr() as *mut __m256i, v) };
        }
        super::extremes16_of_lanes(&lanes)
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
    fn either_nan(self, b: Self) -> __m256 {
        // SAFETY: see the comment above this impl.
        unsafe { _mm256_cmp_ps::<_CMP_UNORD_Q>(self.0, b.0) }
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
    fn pow2_of_eighths(self) -> Self {
        // SAFETY: see the comment above this impl.
        unsafe {
            let shifted = _mm256_slli_epi32::<20>(_mm256_castps_si256(self.0));
            Self(_mm256_castsi256_ps(_mm256_and_si256(
                shifted,
                _mm256_set1_epi32(0x7F80_0000),
            )))
        }
    }
    #[inline(always)]
    fn lookup8(self, _: Avx2, table: &[f32]) -> Self {
        let t = &table[..8];
        // SAFETY: see the comment above this impl (vpermps reads the low three index bits).
        unsafe {
            let entries = _mm256_setr_ps(t[0], t[1], t[2], t[3], t[4], t[5], t[6], t[7]);
            Self(_mm256_permutevar8x32_ps(
                entries,
                _mm256_castps_si256(self.0),
            ))
        }
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
        let (lo, hi) = self.widen();
        lo.add(hi).reduce_sum_f64()
    }
    type Wide = (F64x4, F64x4);
    #[inline(always)]
    fn wide_zero(isa: Avx2) -> (F64x4, F64x4) {
        (F64x4::splat(isa, 0.0), F64x4::splat(isa, 0.0))
    }
    #[inline(always)]
    fn flush_into(self, wide: (F64x4, F64x4)) -> (F64x4, F64x4) {
        let (lo, hi) = self.widen();
        (wide.0.add(lo), wide.1.add(hi))
    }
    #[inline(always)]
    fn wide_value(wide: (F64x4, F64x4)) -> f64 {
        wide.0.add(wide.1).reduce_sum_f64()
    }
    #[inline(always)]
    fn transpose(v: &mut [Self]) {
        let v = &mut v[..8];
        // SAFETY: see the comment above this impl.
        unsafe {
            // Pairs of rows interleaved, then quarters of columns, then the 128-bit halves:
            // q0 holds columns 0 (low half) and 4 (high half) of rows 0-3, and so on.
            let (a, b) = (v[0].0, v[1].0);
            let (c, d) = (v[2].0, v[3].0);
            let (e, f) = (v[4].0, v[5].0);
            let (g, h) = (v[6].0, v[7].0);
            let (ab_lo, ab_hi) = (_mm256_unpacklo_ps(a, b), _mm256_unpackhi_ps(a, b));
            let (cd_lo, cd_hi) = (_mm256_unpacklo_ps(c, d), _mm256_unpackhi_ps(c, d));
            let (ef_lo, ef_hi) = (_mm256_unpacklo_ps(e, f), _mm256_unpackhi_ps(e, f));
            let (gh_lo, gh_hi) = (_mm256_unpacklo_ps(g, h), _mm256_unpackhi_ps(g, h));
            let q0 = _mm256_shuffle_ps::<0x44>(ab_lo, cd_lo);
            let q1 = _mm256_shuffle_ps::<0xEE>(ab_lo, cd_lo);
            let q2 = _mm256_shuffle_ps::<0x44>(ab_hi, cd_hi);
            let q3 = _mm256_shuffle_ps::<0xEE>(ab_hi, cd_hi);
            let q4 = _mm256_shuffle_ps::<0x44>(ef_lo, gh_lo);
            let q5 = _mm256_shuffle_ps::<0xEE>(ef_lo, gh_lo);
            let q6 = _mm256_shuffle_ps::<0x44>(ef_hi, gh_hi);
            let q7 = _mm256_shuffle_ps::<0xEE>(ef_hi, gh_hi);
            v[0] = Self(_mm256_permute2f128_ps::<0x20>(q0, q4));
            v[1] = Self(_mm256_permute2f128_ps::<0x20>(q1, q5));
            v[2] = Self(_mm256_permute2f128_ps::<0x20>(q2, q6));
            v[3] = Self(_mm256_permute2f128_ps::<0x20>(q3, q7));
            v[4] = Self(_mm256_permute2f128_ps::<0x31>(q0, q4));
            v[5] = Self(_mm256_permute2f128_ps::<0x31>(q1, q5));
            v[6] = Self(_mm256_permute2f128_ps::<0x31>(q2, q6));
            v[7] = Self(_mm256_permute2f128_ps::<0x31>(q3, q7));
        }
    }
    #[inline(always)]
    fn add_lanes_f64(self, acc: &mut [f64]) {
        let acc = &mut acc[..8];
        // SAFETY: see the comment above this impl; acc holds 8 values.
        unsafe {
            let lo = _mm256_cvtps_pd(_mm256_castps256_ps128(self.0));
            let hi = _mm256_cvtps_pd(_mm256_extractf128_ps::<1>(self.0));
            let p = acc.as_mut_ptr();
            _mm256_storeu_pd(p, _mm256_add_pd(_mm256_loadu_pd(p), lo));
            _mm256_storeu_pd(p.add(4), _mm256_add_pd(_mm256_loadu_pd(p.add(4)), hi));
        }
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

impl F32x8 {
    /// Lanes 0–3 and 4–7 as f64 (exact).
    #[inline(always)]
    fn widen(self) -> (F64x4, F64x4) {
        // SAFETY: see the comment above the f32 impl.
        unsafe {
            let lo = _mm256_cvtps_pd(_mm256_castps256_ps128(self.0));
            let hi = _mm256_cvtps_pd(_mm256_extractf128_ps::<1>(self.0));
            (F64x4(lo), F64x4(hi))
        }
    }
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
    fn either_nan(self, b: Self) -> __m256d {
        // SAFETY: see the comment above the f32 impl.
        unsafe { _mm256_cmp_pd::<_CMP_UNORD_Q>(self.0, b.0) }
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
    fn pow2_of_eighths(self) -> Self {
        // SAFETY: see the comment above the f32 impl.
        unsafe {
            let shifted = _mm256_slli_epi64::<49>(_mm256_castpd_si256(self.0));
            Self(_mm256_castsi256_pd(_mm256_and_si256(
                shifted,
                _mm256_set1_epi64x(0x7FF0_0000_0000_0000),
            )))
        }
    }
    #[inline(always)]
    fn lookup8(self, _: Avx2, table: &[f64]) -> Self {
        // Lane by lane: no f64 exponential takes the table form (`Real::BASE_TABLE` is empty).
        let lanes = lanes_f64(self.0).map(|x| table[(x.to_bits() & 7) as usize]);
        // SAFETY: see the comment above the f32 impl.
        Self(unsafe { _mm256_setr_pd(lanes[0], lanes[1], lanes[2], lanes[3]) })
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
    type Wide = SumF64;
    #[inline(always)]
    fn wide_zero(_: Avx2) -> SumF64 {
        SumF64::default()
    }
    #[inline(always)]
    fn flush_into(self, wide: SumF64) -> SumF64 {
        wide.plus(self.reduce_sum_f64())
    }
    #[inline(always)]
    fn wide_value(wide: SumF64) -> f64 {
        wide.value()
    }
    #[inline(always)]
    fn transpose(v: &mut [Self]) {
        let v = &mut v[..4];
        // SAFETY: see the comment above the f32 impl.
        unsafe {
            let (a, b, c, d) = (v[0].0, v[1].0, v[2].0, v[3].0);
            // [a0 b0 a2 b2], [a1 b1 a3 b3], the same for c, d; then the 128-bit halves.
            let (ab_lo, ab_hi) = (_mm256_unpacklo_pd(a, b), _mm256_unpackhi_pd(a, b));
            let (cd_lo, cd_hi) = (_mm256_unpacklo_pd(c, d), _mm256_unpackhi_pd(c, d));
            v[0] = Self(_mm256_permute2f128_pd::<0x20>(ab_lo, cd_lo));
            v[1] = Self(_mm256_permute2f128_pd::<0x20>(ab_hi, cd_hi));
            v[2] = Self(_mm256_permute2f128_pd::<0x31>(ab_lo, cd_lo));
            v[3] = Self(_mm256_permute2f128_pd::<0x31>(ab_hi, cd_hi));
        }
    }
    #[inline(always)]
    fn add_lanes_f64(self, acc: &mut [f64]) {
        let acc = &mut acc[..4];
        // SAFETY: see the comment above the f32 impl; acc holds 4 values.
        unsafe {
            let p = acc.as_mut_ptr();
            _mm256_storeu_pd(p, _mm256_add_pd(_mm256_loadu_pd(p), self.0));
        }
    }
}

/// The lanes of `v` rounded to bfloat16 (nearest even), each in the low 16 bits of its 32-bit
/// lane; with `NAN`, a NaN keeps its top payload bits and is quieted.
///
/// # Safety
/// AVX2 must be available (every `F32x8` comes from a token that proves it).
#[inline(always)]
unsafe fn bf16_rounded<const NAN: bool>(v: F32x8) -> __m256i {
    // SAFETY: forwarded from the caller.
    unsafe {
        let bits = _mm256_castps_si256(v.0);
        // Round to nearest even on the 16 bits cut off: add 0x7FFF plus the lowest kept bit.
        let lsb = _mm256_and_si256(_mm256_srli_epi32::<16>(bits), _mm256_set1_epi32(1));
        let rounded = _mm256_srli_epi32::<16>(_mm256_add_epi32(
            _mm256_add_epi32(bits, _mm256_set1_epi32(0x7FFF)),
            lsb,
        ));
        if NAN {
            let quiet = _mm256_or_si256(_mm256_srli_epi32::<16>(bits), _mm256_set1_epi32(0x40));
            let nan = _mm256_castps_si256(_mm256_cmp_ps::<_CMP_UNORD_Q>(v.0, v.0));
            _mm256_blendv_epi8(rounded, quiet, nan)
        } else {
            rounded
        }
    }
}

/// `low` and `high` rounded once to 16 half-precision values, `low`'s first (the bits of two
/// [`Isa::store_half`] calls).
///
/// # Safety
/// AVX2 and F16C must be available (every `F32x8` comes from a token that proves them).
#[inline(always)]
unsafe fn half_pair_bits<const BF16: bool, const NAN: bool>(low: F32x8, high: F32x8) -> __m256i {
    // SAFETY: forwarded from the caller.
    unsafe {
        if BF16 {
            // One pack for both: each 128-bit half holds four of `low` then four of `high`;
            // the quadword permute puts `low`'s eight first.
            let packed = _mm256_packus_epi32(bf16_rounded::<NAN>(low), bf16_rounded::<NAN>(high));
            _mm256_permute4x64_epi64::<0b11_01_10_00>(packed)
        } else {
            _mm256_set_m128i(
                _mm256_cvtps_ph::<_MM_FROUND_TO_NEAREST_INT>(high.0),
                _mm256_cvtps_ph::<_MM_FROUND_TO_NEAREST_INT>(low.0),
            )
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::simd::tests::{check_quads, check_transpose_and_widen};

    #[test]
    fn transposes_and_widens() {
        let Some(isa) = Avx2::try_new() else { return };
        check_transpose_and_widen::<F32x8>(isa);
        check_transpose_and_widen::<F64x4>(isa);
        check_quads::<F32x8>(isa);
        check_quads::<F64x4>(isa);
    }
}
