//! x86-64 AVX-512 (F, BW, CD, DQ, VL) + F16C: sixteen f32 or eight f64 lanes.
//!
//! Detection comes from pulp's `V4` token (x86-64-v4: the AVX-512 foundation plus BW, CD, DQ
//! and VL on top of the `V3` level) plus a run-time check for F16C, as on the AVX2 path. The
//! kernels are the same generic bodies as on every other path; only the lane count and these
//! primitive operations differ. Comparison masks are AVX-512 mask registers (one bit per lane)
//! rather than vectors, so `select` is a masked blend and `mask_bits` is free.
//!
//! The vector types wrap `__m512`/`__m512d`; they are created only through an [`Avx512`] token,
//! and an `Avx512` exists only after both checks succeeded, so every intrinsic below runs on a
//! CPU that has it.

use core::arch::x86_64::*;

use super::{FloatVec, Isa, Kernel, SumF64};

/// The AVX-512 (x86-64-v4) + F16C instruction-set token.
#[derive(Copy, Clone, Debug)]
pub struct Avx512 {
    _level: pulp::x86::V4,
    /// AVX512_BF16 is present: pairs of vectors are stored as bfloat16 with one
    /// `vcvtne2ps2bf16` (see [`Isa::store_half_pair`]). Not part of the level: the path runs on
    /// AVX-512 CPUs without it.
    bf16_convert: bool,
}

impl Avx512 {
    /// Detects x86-64-v4 (AVX-512 F, BW, CD, DQ, VL and everything of v3) and F16C at run time,
    /// and whether AVX512_BF16 is there too.
    #[inline]
    pub fn try_new() -> Option<Self> {
        if !std::arch::is_x86_feature_detected!("f16c") {
            return None;
        }
        let level = pulp::x86::V4::try_new()?;
        Some(Avx512 {
            _level: level,
            bf16_convert: std::arch::is_x86_feature_detected!("avx512bf16"),
        })
    }

    /// The same token with the bfloat16 pair store on the integer rounding, as on a CPU
    /// without AVX512_BF16 (so that tests run both forms on one that has it).
    #[cfg(test)]
    pub(crate) fn without_bf16_convert(self) -> Self {
        Avx512 {
            bf16_convert: false,
            ..self
        }
    }

    /// Whether a bf16 pair store takes `vcvtne2ps2bf16`: where the CPU has it, and only for
    /// vectors without a subnormal lane. The instruction rounds to nearest even and quiets NaN
    /// exactly as `store_half` does, but flushes subnormal inputs to zero.
    #[inline(always)]
    fn converts_bf16_pair(self, low: F32x16, high: F32x16) -> bool {
        const SUBNORMAL: i32 = 0x20;
        // SAFETY: the token proves AVX-512 DQ.
        self.bf16_convert
            && unsafe {
                (_mm512_fpclass_ps_mask::<SUBNORMAL>(low.0)
                    | _mm512_fpclass_ps_mask::<SUBNORMAL>(high.0))
                    == 0
            }
    }
}

/// Runs a kernel with the AVX-512, AVX2, FMA and F16C code generation enabled.
///
/// # Safety
/// The CPU must support those features (an [`Avx512`] token proves it).
#[target_feature(
    enable = "avx512f,avx512bw,avx512cd,avx512dq,avx512vl,avx,avx2,fma,f16c,bmi1,bmi2,lzcnt,popcnt"
)]
unsafe fn run_with_features<K: Kernel>(kernel: K, isa: Avx512) -> K::Output {
    kernel.run(isa)
}

impl Isa for Avx512 {
    const NAME: &'static str = "avx512";
    type F32 = F32x16;
    type F64 = F64x8;

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
        // SAFETY: SSE is part of the level the token proves.
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
    unsafe fn load_half<const BF16: bool>(self, ptr: *const u16) -> F32x16 {
        // SAFETY: the caller guarantees 16 readable values; the token proves AVX-512F (whose
        // vcvtph2ps is the F16C conversion on 16 lanes).
        unsafe {
            let h = _mm256_loadu_si256(ptr as *const __m256i);
            if BF16 {
                // bfloat16 is the top half of an f32: one zero-masked word permute puts value
                // i in the top half of lane i and zeroes the bottom halves (the upper 256 bits
                // of the source are never selected). Written as assembly because LLVM turns
                // the masked intrinsic into a two-table `vpermt2w` against a zero register,
                // one more port-5 operation on the exponential pass's critical port.
                F32x16(_mm512_castsi512_ps(spread_bf16(h)))
            } else {
                F32x16(_mm512_cvtph_ps(h))
            }
        }
    }

    #[inline(always)]
    unsafe fn store_half<const BF16: bool, const NAN: bool>(v: F32x16, ptr: *mut u16) {
        // SAFETY: the caller guarantees 16 writable values; `v` exists only through a token,
        // which proves AVX-512 F and BW.
        unsafe { _mm256_storeu_si256(ptr as *mut __m256i, half_bits::<BF16, NAN>(v)) }
    }

    #[inline(always)]
    unsafe fn store_half_pair<const BF16: bool, const NAN: bool>(
        self,
        low: F32x16,
        high: F32x16,
        ptr: *mut u16,
    ) {
        // SAFETY: the caller guarantees 32 writable values; the token proves AVX-512 F, BW and
        // DQ, and `vcvtne2ps2bf16` runs only where detection found AVX512_BF16.
        unsafe {
            if BF16 && self.converts_bf16_pair(low, high) {
                _mm512_storeu_si512(ptr as *mut __m512i, convert_pair_bf16(low.0, high.0));
                return;
            }
            Self::store_half::<BF16, NAN>(low, ptr);
            Self::store_half::<BF16, NAN>(high, ptr.add(16));
        }
    }

    #[inline(always)]
    unsafe fn stream_half_pair<const BF16: bool>(self, low: F32x16, high: F32x16, ptr: *mut u16) {
        // SAFETY: the caller guarantees 32 writable values aligned to 64 bytes; the token
        // proves AVX-512 F, BW and DQ, and `vcvtne2ps2bf16` runs only where detection found
        // AVX512_BF16 (`converts_bf16_pair`).
        unsafe {
            let bits = if BF16 && self.converts_bf16_pair(low, high) {
                convert_pair_bf16(low.0, high.0)
            } else {
                _mm512_inserti64x4::<1>(
                    _mm512_castsi256_si512(half_bits::<BF16, true>(low)),
                    half_bits::<BF16, true>(high),
                )
            };
            _mm512_stream_si512(ptr as *mut __m512i, bits);
        }
    }

    type Extremes16 = [__m512i; 3];
    const BITS16_LANES: usize = 32;

    #[inline(always)]
    fn splat_extremes16(self, start: [u16; 3]) -> [__m512i; 3] {
        // SAFETY: the token proves AVX-512F.
        unsafe {
            [
                _mm512_set1_epi16(start[0] as i16),
                _mm512_set1_epi16(start[1] as i16),
                _mm512_set1_epi16(start[2] as i16),
            ]
        }
    }

    #[inline(always)]
    unsafe fn fold_extremes16(self, acc: [__m512i; 3], ptr: *const u16) -> [__m512i; 3] {
        // SAFETY: the caller guarantees 32 readable values; the token proves AVX-512 F and BW.
        unsafe {
            let b = _mm512_loadu_si512(ptr as *const __m512i);
            [
                _mm512_max_epi16(acc[0], b),
                _mm512_min_epu16(acc[1], b),
                _mm512_max_epu16(acc[2], b),
            ]
        }
    }

    #[inline(always)]
    fn reduce_extremes16(acc: [__m512i; 3]) -> [u16; 3] {
        let mut lanes = [[0u16; 32]; 3];
        for (out, v) in lanes.iter_mut().zip(acc) {
            // SAFETY: `out` holds 32 values; the vectors exist only through a token.
            unsafe { _mm512_storeu_si512(out.as_mut_ptr() as *mut __m512i, v) };
        }
        super::extremes16_of_lanes(&lanes)
    }
}

/// Sixteen f32 lanes.
#[derive(Copy, Clone, Debug)]
pub struct F32x16(__m512);

/// Eight f64 lanes.
#[derive(Copy, Clone, Debug)]
pub struct F64x8(__m512d);

/// Lane k holds k · `step` + `base` (both words at once): an index vector for the bfloat16
/// word permutes. `word_index(0x1_0001, 0)` names value k in both words of lane k (spreading
/// 16 values to the lanes' top halves); `word_index(0x4_0004, 0x3_0001)` names words 4k + 1
/// and 4k + 3, so that output word j is input word 2j + 1 (the lanes' top halves, packed).
///
/// # Safety
/// AVX-512F must be available (the callers hold a token).
#[inline(always)]
unsafe fn word_index(step: i32, base: i32) -> __m512i {
    // SAFETY: forwarded from the caller.
    unsafe {
        _mm512_add_epi32(
            _mm512_mullo_epi32(
                _mm512_set_epi32(15, 14, 13, 12, 11, 10, 9, 8, 7, 6, 5, 4, 3, 2, 1, 0),
                _mm512_set1_epi32(step),
            ),
            _mm512_set1_epi32(base),
        )
    }
}

/// Sixteen bfloat16 values as the top halves of sixteen 32-bit lanes, bottom halves zero.
///
/// # Safety
/// AVX-512 F and BW must be available (the callers hold a token).
#[target_feature(enable = "avx512f,avx512bw")]
#[inline]
unsafe fn spread_bf16(h: __m256i) -> __m512i {
    let spread: __m512i;
    // SAFETY: register-only instruction of the features this function enables. One
    // zero-masked word permute; as assembly because LLVM turns the masked intrinsic into a
    // two-table `vpermt2w` against a zero register, one more operation on port 5, which the
    // exponential pass saturates.
    unsafe {
        core::arch::asm!(
            "vpermw {out}{{{odd}}}{{z}}, {index}, {src}",
            out = lateout(zmm_reg) spread,
            odd = in(kreg) 0xAAAA_AAAA_u32,
            index = in(zmm_reg) word_index(0x1_0001, 0),
            src = in(zmm_reg) _mm512_castsi256_si512(h),
            options(pure, nomem, nostack, preserves_flags),
        );
    }
    spread
}

/// `v` rounded once to 16 half-precision values (the bits of [`Isa::store_half`]).
///
/// # Safety
/// AVX-512 F and BW must be available (every `F32x16` comes from a token that proves them).
#[inline(always)]
unsafe fn half_bits<const BF16: bool, const NAN: bool>(v: F32x16) -> __m256i {
    // SAFETY: forwarded from the caller.
    unsafe {
        if BF16 {
            // The AVX2 path's integer rounding (AVX512_BF16's vcvtneps2bf16 would flush
            // subnormals to zero), kept in the top half of each lane: bits + 0x7FFF, plus
            // one where the kept part is odd (ties to even).
            let bits = _mm512_castps_si512(v.0);
            let odd = _mm512_test_epi32_mask(bits, _mm512_set1_epi32(0x1_0000));
            let up = _mm512_add_epi32(bits, _mm512_set1_epi32(0x7FFF));
            let rounded = _mm512_mask_add_epi32(up, odd, up, _mm512_set1_epi32(1));
            // NaN: keep the top payload bits and set the quiet bit.
            let top = if NAN {
                let nan = _mm512_cmp_ps_mask::<_CMP_UNORD_Q>(v.0, v.0);
                _mm512_mask_or_epi32(rounded, nan, bits, _mm512_set1_epi32(0x40_0000))
            } else {
                rounded
            };
            // The top halves, in order, into the low 256 bits (one word permute).
            let packed = _mm512_permutexvar_epi16(word_index(0x4_0004, 0x3_0001), top);
            _mm512_castsi512_si256(packed)
        } else {
            _mm512_cvtps_ph::<_MM_FROUND_TO_NEAREST_INT>(v.0)
        }
    }
}

/// `low` and `high` rounded to bfloat16 by `vcvtne2ps2bf16`, `low`'s values first: nearest
/// even, NaN quieted keeping the top payload bits, subnormal inputs flushed to zero.
///
/// # Safety
/// The CPU must have AVX512_BF16 (run-time detection; it is not part of the token's level).
#[target_feature(enable = "avx512f")]
#[inline]
unsafe fn convert_pair_bf16(low: __m512, high: __m512) -> __m512i {
    let packed: __m512i;
    // SAFETY: the caller guarantees AVX512_BF16; registers only.
    unsafe {
        core::arch::asm!(
            "vcvtne2ps2bf16 {out}, {high}, {low}",
            out = lateout(zmm_reg) packed,
            high = in(zmm_reg) high,
            low = in(zmm_reg) low,
            options(pure, nomem, nostack, preserves_flags),
        );
    }
    packed
}

/// The first `n` lanes (n < 32).
#[inline(always)]
fn low_lanes(n: usize) -> u32 {
    (1u32 << n) - 1
}

/// Transposes the 4 × 4 matrix in every 128-bit block: afterwards element i of block b of
/// `out[k]` is element k of block b of `v[i]`.
///
/// # Safety
/// AVX-512F must be available (the callers hold a token).
#[inline(always)]
unsafe fn transpose_within_blocks(v: [__m512; 4]) -> [__m512; 4] {
    // SAFETY: forwarded from the caller.
    unsafe {
        let (ab_lo, ab_hi) = (
            _mm512_unpacklo_ps(v[0], v[1]),
            _mm512_unpackhi_ps(v[0], v[1]),
        );
        let (cd_lo, cd_hi) = (
            _mm512_unpacklo_ps(v[2], v[3]),
            _mm512_unpackhi_ps(v[2], v[3]),
        );
        [
            _mm512_shuffle_ps::<0x44>(ab_lo, cd_lo),
            _mm512_shuffle_ps::<0xEE>(ab_lo, cd_lo),
            _mm512_shuffle_ps::<0x44>(ab_hi, cd_hi),
            _mm512_shuffle_ps::<0xEE>(ab_hi, cd_hi),
        ]
    }
}

/// Transposes four groups of four 128-bit blocks: afterwards block b of `out[k]` is block k of
/// `v[b]` (a 4 × 4 transpose whose elements are blocks), by two rounds of block shuffles.
///
/// # Safety
/// AVX-512F must be available (the callers hold a token).
#[inline(always)]
unsafe fn transpose_blocks(v: [__m512; 4]) -> [__m512; 4] {
    // SAFETY: forwarded from the caller.
    unsafe {
        let s0 = _mm512_shuffle_f32x4::<0x44>(v[0], v[1]); // v0.0 v0.1 v1.0 v1.1
        let s1 = _mm512_shuffle_f32x4::<0xEE>(v[0], v[1]); // v0.2 v0.3 v1.2 v1.3
        let s2 = _mm512_shuffle_f32x4::<0x44>(v[2], v[3]);
        let s3 = _mm512_shuffle_f32x4::<0xEE>(v[2], v[3]);
        [
            _mm512_shuffle_f32x4::<0x88>(s0, s2), // v0.0 v1.0 v2.0 v3.0
            _mm512_shuffle_f32x4::<0xDD>(s0, s2),
            _mm512_shuffle_f32x4::<0x88>(s1, s3),
            _mm512_shuffle_f32x4::<0xDD>(s1, s3),
        ]
    }
}

// Every `unsafe` block below calls an AVX-512 intrinsic on values that exist only because an
// `Avx512` token was created, which proves the CPU supports them (see the module comment).

impl FloatVec for F32x16 {
    type Real = f32;
    type Isa = Avx512;
    type Mask = __mmask16;
    const LANES: usize = 16;

    #[inline(always)]
    fn splat(_: Avx512, x: f32) -> Self {
        // SAFETY: the token proves AVX-512F.
        Self(unsafe { _mm512_set1_ps(x) })
    }
    #[inline(always)]
    unsafe fn load(_: Avx512, ptr: *const f32) -> Self {
        // SAFETY: the caller guarantees 16 readable values; the token proves AVX-512F.
        Self(unsafe { _mm512_loadu_ps(ptr) })
    }
    #[inline(always)]
    unsafe fn store(self, ptr: *mut f32) {
        // SAFETY: the caller guarantees 16 writable values; `self` proves AVX-512F.
        unsafe { _mm512_storeu_ps(ptr, self.0) }
    }
    #[inline(always)]
    unsafe fn stream(self, ptr: *mut f32) {
        // SAFETY: the caller guarantees 16 writable, 64-byte aligned values.
        unsafe { _mm512_stream_ps(ptr, self.0) }
    }
    #[inline(always)]
    unsafe fn load_partial(_: Avx512, ptr: *const f32, n: usize, pad: f32) -> Self {
        // SAFETY: masked-off lanes are not accessed (faults are suppressed on them); the
        // caller guarantees n readable values.
        Self(unsafe { _mm512_mask_loadu_ps(_mm512_set1_ps(pad), low_lanes(n) as __mmask16, ptr) })
    }
    #[inline(always)]
    unsafe fn store_partial(self, ptr: *mut f32, n: usize) {
        // SAFETY: as load_partial, for writes.
        unsafe { _mm512_mask_storeu_ps(ptr, low_lanes(n) as __mmask16, self.0) }
    }
    #[inline(always)]
    fn add(self, b: Self) -> Self {
        // SAFETY: see the comment above this impl.
        Self(unsafe { _mm512_add_ps(self.0, b.0) })
    }
    #[inline(always)]
    fn sub(self, b: Self) -> Self {
        // SAFETY: see the comment above this impl.
        Self(unsafe { _mm512_sub_ps(self.0, b.0) })
    }
    #[inline(always)]
    fn mul(self, b: Self) -> Self {
        // SAFETY: see the comment above this impl.
        Self(unsafe { _mm512_mul_ps(self.0, b.0) })
    }
    #[inline(always)]
    fn div(self, b: Self) -> Self {
        // SAFETY: see the comment above this impl.
        Self(unsafe { _mm512_div_ps(self.0, b.0) })
    }
    #[inline(always)]
    fn mul_add(self, b: Self, c: Self) -> Self {
        // SAFETY: see the comment above this impl.
        Self(unsafe { _mm512_fmadd_ps(self.0, b.0, c.0) })
    }
    #[inline(always)]
    fn max(self, b: Self) -> Self {
        // SAFETY: see the comment above this impl (vmaxps: the second operand when unordered
        // or equal, as on AVX2).
        Self(unsafe { _mm512_max_ps(self.0, b.0) })
    }
    #[inline(always)]
    fn min(self, b: Self) -> Self {
        // SAFETY: see the comment above this impl.
        Self(unsafe { _mm512_min_ps(self.0, b.0) })
    }
    #[inline(always)]
    fn lt(self, b: Self) -> __mmask16 {
        // SAFETY: see the comment above this impl.
        unsafe { _mm512_cmp_ps_mask::<_CMP_LT_OQ>(self.0, b.0) }
    }
    #[inline(always)]
    fn ge(self, b: Self) -> __mmask16 {
        // SAFETY: see the comment above this impl.
        unsafe { _mm512_cmp_ps_mask::<_CMP_GE_OQ>(self.0, b.0) }
    }
    #[inline(always)]
    fn eq(self, b: Self) -> __mmask16 {
        // SAFETY: see the comment above this impl.
        unsafe { _mm512_cmp_ps_mask::<_CMP_EQ_OQ>(self.0, b.0) }
    }
    #[inline(always)]
    fn is_nan(self) -> __mmask16 {
        // SAFETY: see the comment above this impl.
        unsafe { _mm512_cmp_ps_mask::<_CMP_UNORD_Q>(self.0, self.0) }
    }
    #[inline(always)]
    fn either_nan(self, b: Self) -> __mmask16 {
        // SAFETY: see the comment above this impl.
        unsafe { _mm512_cmp_ps_mask::<_CMP_UNORD_Q>(self.0, b.0) }
    }
    #[inline(always)]
    fn and_mask(self, mask: __mmask16) -> Self {
        // SAFETY: see the comment above this impl.
        Self(unsafe { _mm512_maskz_mov_ps(mask, self.0) })
    }
    #[inline(always)]
    fn select(mask: __mmask16, a: Self, b: Self) -> Self {
        // SAFETY: see the comment above this impl.
        Self(unsafe { _mm512_mask_blend_ps(mask, b.0, a.0) })
    }
    #[inline(always)]
    fn mask_or(a: __mmask16, b: __mmask16) -> __mmask16 {
        a | b
    }
    #[inline(always)]
    fn mask_and(a: __mmask16, b: __mmask16) -> __mmask16 {
        a & b
    }
    #[inline(always)]
    fn mask_bits(mask: __mmask16) -> u32 {
        u32::from(mask)
    }
    #[inline(always)]
    fn shl_mantissa(self) -> Self {
        // SAFETY: see the comment above this impl.
        Self(unsafe { _mm512_castsi512_ps(_mm512_slli_epi32::<23>(_mm512_castps_si512(self.0))) })
    }
    #[inline(always)]
    fn pow2_of_eighths(self) -> Self {
        // SAFETY: see the comment above this impl.
        unsafe {
            let shifted = _mm512_slli_epi32::<20>(_mm512_castps_si512(self.0));
            Self(_mm512_castsi512_ps(_mm512_and_si512(
                shifted,
                _mm512_set1_epi32(0x7F80_0000),
            )))
        }
    }
    #[inline(always)]
    fn lookup8(self, _: Avx512, table: &[f32]) -> Self {
        let t = &table[..8];
        // SAFETY: see the comment above this impl. vpermps reads four index bits: the table
        // twice over makes the fourth one irrelevant.
        unsafe {
            let entries = _mm512_setr_ps(
                t[0], t[1], t[2], t[3], t[4], t[5], t[6], t[7], t[0], t[1], t[2], t[3], t[4], t[5],
                t[6], t[7],
            );
            Self(_mm512_permutexvar_ps(_mm512_castps_si512(self.0), entries))
        }
    }
    const NATIVE_SCALE: bool = true;
    #[inline(always)]
    fn scale_pow2(self, _: Avx512, n: Self) -> Self {
        // SAFETY: see the comment above this impl.
        Self(unsafe { _mm512_scalef_ps(self.0, n.0) })
    }
    #[inline(always)]
    fn scale_pow2_from(self, _: Avx512, n: Self, min: Self) -> Self {
        // SAFETY: see the comment above the f32 impl. (Not less than: NaN lanes are kept.)
        unsafe {
            let keep = _mm512_cmp_ps_mask::<_CMP_NLT_UQ>(n.0, min.0);
            Self(_mm512_maskz_scalef_ps(keep, self.0, n.0))
        }
    }
    #[inline(always)]
    fn split_exponent(self) -> (Self, Self) {
        // SAFETY: see the comment above this impl.
        unsafe {
            let bits = _mm512_castps_si512(self.0);
            let m = _mm512_or_si512(
                _mm512_and_si512(bits, _mm512_set1_epi32(0x007F_FFFF)),
                _mm512_set1_epi32(0x3F80_0000),
            );
            let k = _mm512_sub_ps(
                _mm512_cvtepi32_ps(_mm512_srli_epi32::<23>(bits)),
                _mm512_set1_ps(127.0),
            );
            (Self(_mm512_castsi512_ps(m)), Self(k))
        }
    }
    #[inline(always)]
    fn reduce_max(self) -> f32 {
        // SAFETY: `__m512` and `[f32; 16]` have the same size; every bit pattern is valid.
        let lanes = unsafe { core::mem::transmute::<__m512, [f32; 16]>(self.0) };
        lanes[1..]
            .iter()
            .fold(lanes[0], |a, &b| if a > b { a } else { b })
    }
    #[inline(always)]
    fn reduce_sum_f64(self) -> f64 {
        let (lo, hi) = self.widen();
        lo.add(hi).reduce_sum_f64()
    }
    type Wide = (F64x8, F64x8);
    #[inline(always)]
    fn wide_zero(isa: Avx512) -> (F64x8, F64x8) {
        (F64x8::splat(isa, 0.0), F64x8::splat(isa, 0.0))
    }
    #[inline(always)]
    fn flush_into(self, wide: (F64x8, F64x8)) -> (F64x8, F64x8) {
        let (lo, hi) = self.widen();
        (wide.0.add(lo), wide.1.add(hi))
    }
    #[inline(always)]
    fn wide_value(wide: (F64x8, F64x8)) -> f64 {
        wide.0.add(wide.1).reduce_sum_f64()
    }
    #[inline(always)]
    fn transpose(v: &mut [Self]) {
        let v = &mut v[..16];
        // SAFETY: see the comment above this impl.
        unsafe {
            // Within every 128-bit block: pairs of rows interleaved, then quarters of columns,
            // as on AVX2; q[g][k] then holds, in block b, column 4b + k of rows 4g .. 4g + 3.
            let mut q = [[_mm512_setzero_ps(); 4]; 4];
            for (g, group) in q.iter_mut().enumerate() {
                *group = transpose_within_blocks([
                    v[4 * g].0,
                    v[4 * g + 1].0,
                    v[4 * g + 2].0,
                    v[4 * g + 3].0,
                ]);
            }
            // Column 4b + k: block g is block b of q[g][k].
            for k in 0..4 {
                let cols = transpose_blocks([q[0][k], q[1][k], q[2][k], q[3][k]]);
                for (b, &c) in cols.iter().enumerate() {
                    v[4 * b + k] = Self(c);
                }
            }
        }
    }
    const QUAD_TILES: bool = true;
    #[inline(always)]
    unsafe fn load_quad(_: Avx512, ptr: *const f32) -> Self {
        // SAFETY: the caller guarantees 4 readable values; the token proves AVX-512F.
        Self(unsafe { _mm512_zextps128_ps512(_mm_loadu_ps(ptr)) })
    }
    #[inline(always)]
    unsafe fn store_quad(self, ptr: *mut f32) {
        // SAFETY: the caller guarantees 4 writable values; `self` proves AVX-512F.
        unsafe { _mm_storeu_ps(ptr, _mm512_castps512_ps128(self.0)) }
    }
    #[inline(always)]
    fn transpose_quads(rows: &[Self]) -> [Self; 4] {
        let rows = &rows[..16];
        // SAFETY: see the comment above this impl.
        unsafe {
            // z[k] holds in block g row 4g + k's values (block 0 of each row), by three block
            // shuffles; then a 4 × 4 transpose within every block.
            let mut z = [_mm512_setzero_ps(); 4];
            for (k, z) in z.iter_mut().enumerate() {
                let low = _mm512_shuffle_f32x4::<0x00>(rows[k].0, rows[4 + k].0);
                let high = _mm512_shuffle_f32x4::<0x00>(rows[8 + k].0, rows[12 + k].0);
                *z = _mm512_shuffle_f32x4::<0x88>(low, high);
            }
            transpose_within_blocks(z).map(Self)
        }
    }
    #[inline(always)]
    fn untranspose_quads(columns: [Self; 4], rows: &mut [Self]) {
        let rows = &mut rows[..16];
        // SAFETY: see the comment above this impl.
        unsafe {
            // Block g of z[k]: row 4g + k's four values, moved to block 0 of that row.
            let z = transpose_within_blocks(columns.map(|c| c.0));
            for (k, &z) in z.iter().enumerate() {
                rows[k] = Self(z);
                rows[4 + k] = Self(_mm512_shuffle_f32x4::<0x01>(z, z));
                rows[8 + k] = Self(_mm512_shuffle_f32x4::<0x02>(z, z));
                rows[12 + k] = Self(_mm512_shuffle_f32x4::<0x03>(z, z));
            }
        }
    }
    #[inline(always)]
    fn add_lanes_f64(self, acc: &mut [f64]) {
        let (lo, hi) = self.widen();
        lo.add_lanes_f64(&mut acc[..8]);
        hi.add_lanes_f64(&mut acc[8..16]);
    }
}

impl F32x16 {
    /// Lanes 0–7 and 8–15 as f64 (exact).
    #[inline(always)]
    fn widen(self) -> (F64x8, F64x8) {
        // SAFETY: see the comment above the f32 impl.
        unsafe {
            let lo = _mm512_cvtps_pd(_mm512_castps512_ps256(self.0));
            let hi = _mm512_cvtps_pd(_mm256_castpd_ps(_mm512_extractf64x4_pd::<1>(
                _mm512_castps_pd(self.0),
            )));
            (F64x8(lo), F64x8(hi))
        }
    }
}

impl FloatVec for F64x8 {
    type Real = f64;
    type Isa = Avx512;
    type Mask = __mmask8;
    const LANES: usize = 8;

    #[inline(always)]
    fn splat(_: Avx512, x: f64) -> Self {
        // SAFETY: the token proves AVX-512F.
        Self(unsafe { _mm512_set1_pd(x) })
    }
    #[inline(always)]
    unsafe fn load(_: Avx512, ptr: *const f64) -> Self {
        // SAFETY: the caller guarantees 8 readable values; the token proves AVX-512F.
        Self(unsafe { _mm512_loadu_pd(ptr) })
    }
    #[inline(always)]
    unsafe fn store(self, ptr: *mut f64) {
        // SAFETY: the caller guarantees 8 writable values; `self` proves AVX-512F.
        unsafe { _mm512_storeu_pd(ptr, self.0) }
    }
    #[inline(always)]
    unsafe fn stream(self, ptr: *mut f64) {
        // SAFETY: the caller guarantees 8 writable, 64-byte aligned values.
        unsafe { _mm512_stream_pd(ptr, self.0) }
    }
    #[inline(always)]
    unsafe fn load_partial(_: Avx512, ptr: *const f64, n: usize, pad: f64) -> Self {
        // SAFETY: as the f32 version.
        Self(unsafe { _mm512_mask_loadu_pd(_mm512_set1_pd(pad), low_lanes(n) as __mmask8, ptr) })
    }
    #[inline(always)]
    unsafe fn store_partial(self, ptr: *mut f64, n: usize) {
        // SAFETY: as load_partial, for writes.
        unsafe { _mm512_mask_storeu_pd(ptr, low_lanes(n) as __mmask8, self.0) }
    }
    #[inline(always)]
    fn add(self, b: Self) -> Self {
        // SAFETY: see the comment above the f32 impl.
        Self(unsafe { _mm512_add_pd(self.0, b.0) })
    }
    #[inline(always)]
    fn sub(self, b: Self) -> Self {
        // SAFETY: see the comment above the f32 impl.
        Self(unsafe { _mm512_sub_pd(self.0, b.0) })
    }
    #[inline(always)]
    fn mul(self, b: Self) -> Self {
        // SAFETY: see the comment above the f32 impl.
        Self(unsafe { _mm512_mul_pd(self.0, b.0) })
    }
    #[inline(always)]
    fn div(self, b: Self) -> Self {
        // SAFETY: see the comment above the f32 impl.
        Self(unsafe { _mm512_div_pd(self.0, b.0) })
    }
    #[inline(always)]
    fn mul_add(self, b: Self, c: Self) -> Self {
        // SAFETY: see the comment above the f32 impl.
        Self(unsafe { _mm512_fmadd_pd(self.0, b.0, c.0) })
    }
    #[inline(always)]
    fn max(self, b: Self) -> Self {
        // SAFETY: see the comment above the f32 impl.
        Self(unsafe { _mm512_max_pd(self.0, b.0) })
    }
    #[inline(always)]
    fn min(self, b: Self) -> Self {
        // SAFETY: see the comment above the f32 impl.
        Self(unsafe { _mm512_min_pd(self.0, b.0) })
    }
    #[inline(always)]
    fn lt(self, b: Self) -> __mmask8 {
        // SAFETY: see the comment above the f32 impl.
        unsafe { _mm512_cmp_pd_mask::<_CMP_LT_OQ>(self.0, b.0) }
    }
    #[inline(always)]
    fn ge(self, b: Self) -> __mmask8 {
        // SAFETY: see the comment above the f32 impl.
        unsafe { _mm512_cmp_pd_mask::<_CMP_GE_OQ>(self.0, b.0) }
    }
    #[inline(always)]
    fn eq(self, b: Self) -> __mmask8 {
        // SAFETY: see the comment above the f32 impl.
        unsafe { _mm512_cmp_pd_mask::<_CMP_EQ_OQ>(self.0, b.0) }
    }
    #[inline(always)]
    fn is_nan(self) -> __mmask8 {
        // SAFETY: see the comment above the f32 impl.
        unsafe { _mm512_cmp_pd_mask::<_CMP_UNORD_Q>(self.0, self.0) }
    }
    #[inline(always)]
    fn either_nan(self, b: Self) -> __mmask8 {
        // SAFETY: see the comment above the f32 impl.
        unsafe { _mm512_cmp_pd_mask::<_CMP_UNORD_Q>(self.0, b.0) }
    }
    #[inline(always)]
    fn and_mask(self, mask: __mmask8) -> Self {
        // SAFETY: see the comment above the f32 impl.
        Self(unsafe { _mm512_maskz_mov_pd(mask, self.0) })
    }
    #[inline(always)]
    fn select(mask: __mmask8, a: Self, b: Self) -> Self {
        // SAFETY: see the comment above the f32 impl.
        Self(unsafe { _mm512_mask_blend_pd(mask, b.0, a.0) })
    }
    #[inline(always)]
    fn mask_or(a: __mmask8, b: __mmask8) -> __mmask8 {
        a | b
    }
    #[inline(always)]
    fn mask_and(a: __mmask8, b: __mmask8) -> __mmask8 {
        a & b
    }
    #[inline(always)]
    fn mask_bits(mask: __mmask8) -> u32 {
        u32::from(mask)
    }
    #[inline(always)]
    fn shl_mantissa(self) -> Self {
        // SAFETY: see the comment above the f32 impl.
        Self(unsafe { _mm512_castsi512_pd(_mm512_slli_epi64::<52>(_mm512_castpd_si512(self.0))) })
    }
    #[inline(always)]
    fn pow2_of_eighths(self) -> Self {
        // SAFETY: see the comment above the f32 impl.
        unsafe {
            let shifted = _mm512_slli_epi64::<49>(_mm512_castpd_si512(self.0));
            Self(_mm512_castsi512_pd(_mm512_and_si512(
                shifted,
                _mm512_set1_epi64(0x7FF0_0000_0000_0000),
            )))
        }
    }
    #[inline(always)]
    fn lookup8(self, _: Avx512, table: &[f64]) -> Self {
        let t = &table[..8];
        // SAFETY: see the comment above the f32 impl (vpermpd reads three index bits).
        unsafe {
            let entries = _mm512_setr_pd(t[0], t[1], t[2], t[3], t[4], t[5], t[6], t[7]);
            Self(_mm512_permutexvar_pd(_mm512_castpd_si512(self.0), entries))
        }
    }
    const NATIVE_SCALE: bool = true;
    #[inline(always)]
    fn scale_pow2(self, _: Avx512, n: Self) -> Self {
        // SAFETY: see the comment above the f32 impl.
        Self(unsafe { _mm512_scalef_pd(self.0, n.0) })
    }
    #[inline(always)]
    fn scale_pow2_from(self, _: Avx512, n: Self, min: Self) -> Self {
        // SAFETY: see the comment above the f32 impl. (Not less than: NaN lanes are kept.)
        unsafe {
            let keep = _mm512_cmp_pd_mask::<_CMP_NLT_UQ>(n.0, min.0);
            Self(_mm512_maskz_scalef_pd(keep, self.0, n.0))
        }
    }
    #[inline(always)]
    fn split_exponent(self) -> (Self, Self) {
        // SAFETY: see the comment above the f32 impl.
        unsafe {
            let bits = _mm512_castpd_si512(self.0);
            let m = _mm512_or_si512(
                _mm512_and_si512(bits, _mm512_set1_epi64(0x000F_FFFF_FFFF_FFFF)),
                _mm512_set1_epi64(0x3FF0_0000_0000_0000),
            );
            // The same exact construction as the AVX2 path: the biased exponent in the low
            // mantissa bits of 2^52, then 2^52 + 1023 subtracted.
            let e = _mm512_or_si512(
                _mm512_srli_epi64::<52>(bits),
                _mm512_set1_epi64(0x4330_0000_0000_0000),
            );
            let k = _mm512_sub_pd(
                _mm512_castsi512_pd(e),
                _mm512_set1_pd(4_503_599_627_371_519.0),
            );
            (Self(_mm512_castsi512_pd(m)), Self(k))
        }
    }
    #[inline(always)]
    fn reduce_max(self) -> f64 {
        // SAFETY: `__m512d` and `[f64; 8]` have the same size; every bit pattern is valid.
        let lanes = unsafe { core::mem::transmute::<__m512d, [f64; 8]>(self.0) };
        lanes[1..]
            .iter()
            .fold(lanes[0], |a, &b| if a > b { a } else { b })
    }
    #[inline(always)]
    fn reduce_sum_f64(self) -> f64 {
        // SAFETY: `__m512d` and `[f64; 8]` have the same size; every bit pattern is valid.
        let l = unsafe { core::mem::transmute::<__m512d, [f64; 8]>(self.0) };
        ((l[0] + l[4]) + (l[2] + l[6])) + ((l[1] + l[5]) + (l[3] + l[7]))
    }
    type Wide = SumF64;
    #[inline(always)]
    fn wide_zero(_: Avx512) -> SumF64 {
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
        let v = &mut v[..8];
        // SAFETY: see the comment above the f32 impl.
        unsafe {
            // t[g][k] holds, in 128-bit block b, column 2b + k of rows 2g and 2g + 1.
            let mut t = [[_mm512_setzero_ps(); 2]; 4];
            for (g, pair) in t.iter_mut().enumerate() {
                let (a, b) = (v[2 * g].0, v[2 * g + 1].0);
                *pair = [
                    _mm512_castpd_ps(_mm512_unpacklo_pd(a, b)),
                    _mm512_castpd_ps(_mm512_unpackhi_pd(a, b)),
                ];
            }
            // Column 2b + k: block g is block b of t[g][k].
            for k in 0..2 {
                let cols = transpose_blocks([t[0][k], t[1][k], t[2][k], t[3][k]]);
                for (b, &c) in cols.iter().enumerate() {
                    v[2 * b + k] = Self(_mm512_castps_pd(c));
                }
            }
        }
    }
    #[inline(always)]
    fn add_lanes_f64(self, acc: &mut [f64]) {
        let acc = &mut acc[..8];
        // SAFETY: see the comment above the f32 impl; acc holds 8 values.
        unsafe {
            let p = acc.as_mut_ptr();
            _mm512_storeu_pd(p, _mm512_add_pd(_mm512_loadu_pd(p), self.0));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::simd::tests::{check_quads, check_transpose_and_widen};

    #[test]
    fn widens_every_bfloat16_pattern_exactly() {
        let Some(isa) = Avx512::try_new() else { return };
        let patterns: Vec<u16> = (0..=u16::MAX).collect();
        for chunk in patterns.chunks_exact(16) {
            // SAFETY: the chunk holds 16 values.
            let v = unsafe { isa.load_half::<true>(chunk.as_ptr()) };
            let mut lanes = [0f32; 16];
            // SAFETY: lanes holds 16 values.
            unsafe { v.store(lanes.as_mut_ptr()) };
            for (&h, &x) in chunk.iter().zip(&lanes) {
                assert_eq!(x.to_bits(), u32::from(h) << 16, "bfloat16 {h:#06x}");
            }
        }
    }

    /// Both forms of the bfloat16 pair store (`vcvtne2ps2bf16` where the CPU has it, the
    /// integer rounding otherwise) against the scalar rounding: every top half with the cut-off
    /// halves at and around the rounding boundaries, in order (pairs all subnormal, all normal)
    /// and scrambled (subnormal lanes among normal ones, NaN among numbers).
    #[test]
    fn stores_bfloat16_pairs_as_the_scalar_path_rounds() {
        let Some(isa) = Avx512::try_new() else { return };
        let cut_off = [0u32, 1, 0x7FFF, 0x8000, 0x8001, 0xFFFF, 0x1234, 0xC000];
        let ordered: Vec<f32> = (0..=0xFFFFu32)
            .flat_map(|top| {
                cut_off
                    .iter()
                    .map(move |&low| f32::from_bits(top << 16 | low))
            })
            .collect();
        let n = ordered.len();
        let scrambled: Vec<f32> = (0..n).map(|i| ordered[i * 40_503 % n]).collect();
        for form in [isa, isa.without_bf16_convert()] {
            for values in [&ordered, &scrambled] {
                for chunk in values.chunks_exact(32) {
                    let expected: Vec<u16> = chunk
                        .iter()
                        .map(|&x| half::bf16::from_f32(x).to_bits())
                        .collect();
                    let mut out = [0u16; 32];
                    // SAFETY: the chunk holds 32 values, `out` 32 slots.
                    let (low, high) = unsafe {
                        (
                            F32x16::load(isa, chunk.as_ptr()),
                            F32x16::load(isa, chunk.as_ptr().add(16)),
                        )
                    };
                    // SAFETY: `out` holds 32 values.
                    unsafe { form.store_half_pair::<true, true>(low, high, out.as_mut_ptr()) };
                    assert_eq!(out.as_slice(), expected, "{chunk:?} ({form:?})");
                    if chunk.iter().all(|x| !x.is_nan()) {
                        out = [0; 32];
                        // SAFETY: as above; no lane is NaN.
                        unsafe { form.store_half_pair::<true, false>(low, high, out.as_mut_ptr()) };
                        assert_eq!(out.as_slice(), expected, "{chunk:?} ({form:?})");
                    }
                }
            }
        }
    }

    #[test]
    fn transposes_and_widens() {
        let Some(isa) = Avx512::try_new() else { return };
        check_transpose_and_widen::<F32x16>(isa);
        check_transpose_and_widen::<F64x8>(isa);
        check_quads::<F32x16>(isa);
        check_quads::<F64x8>(isa);
    }
}
