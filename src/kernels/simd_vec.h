// Native-width float/int vectors (GCC vector extensions) for the per-instruction-set kernel translation units.
// Included AFTER `#pragma GCC target(...)`, so every function here is compiled for that set: 16 lanes (zmm) under
// AVX-512, 8 (ymm) under AVX2, 4 (xmm) on the baseline; the kernels are written against kLanes. Everything is static: each translation unit has its own copy,
// so no function compiled for AVX-512 can be picked by the linker for a baseline caller. Standard headers must be
// included before the pragma for the same reason (their inline functions would otherwise be compiled for the set).
// No include guard on purpose: one inclusion per translation unit, after the pragma.
// Needs <cstdint>, <cstring> and (x86) <immintrin.h>, included by the translation unit before its pragma. The
// translation unit also defines VLM_KERNEL_AVX512 or VLM_KERNEL_AVX2: g++ does not update __AVX512F__ and friends
// for `#pragma GCC target`, so the code cannot ask the compiler which set it is being built for.

// The wide vectors never cross a non-inlined call boundary, so the ABI note GCC gives for them is moot.
#pragma GCC diagnostic ignored "-Wpsabi"

namespace {

#if defined(VLM_KERNEL_AVX512)
constexpr int kLanes = 16;
#elif defined(VLM_KERNEL_AVX2)
constexpr int kLanes = 8;
#else
constexpr int kLanes = 4;
#endif
typedef float vf __attribute__((vector_size(4 * kLanes)));
typedef int32_t vi __attribute__((vector_size(4 * kLanes)));

// Broadcasts through the intrinsics: `vf{} + a` keeps a real addition (0 + a is not a for a = -0) and an element
// loop is not always recognised as a broadcast.
inline vf splat(float a) {
#if defined(VLM_KERNEL_AVX512)
  return (vf)_mm512_set1_ps(a);
#elif defined(VLM_KERNEL_AVX2)
  return (vf)_mm256_set1_ps(a);
#elif defined(__SSE2__)
  return (vf)_mm_set1_ps(a);
#else
  vf v;
  for (int i = 0; i < kLanes; ++i) v[i] = a;
  return v;
#endif
}
inline vi splat_i(int32_t a) {
#if defined(VLM_KERNEL_AVX512)
  return (vi)_mm512_set1_epi32(a);
#elif defined(VLM_KERNEL_AVX2)
  return (vi)_mm256_set1_epi32(a);
#elif defined(__SSE2__)
  return (vi)_mm_set1_epi32(a);
#else
  vi v;
  for (int i = 0; i < kLanes; ++i) v[i] = a;
  return v;
#endif
}
inline vf load(const float* p) {
  vf v;
  std::memcpy(&v, p, sizeof v);
  return v;
}
inline void store(float* p, vf v) { std::memcpy(p, &v, sizeof v); }
/// First n (< kLanes) lanes only: the tail of a row that is not a multiple of 16 wide.
inline void store_first(float* p, vf v, int64_t n) {
  float tmp[kLanes];  // a copy, so that the caller's vector can stay in a register
  store(tmp, v);
  for (int64_t i = 0; i < n; ++i) p[i] = tmp[i];
}
inline vf select(vi mask, vf a, vf b) { return mask ? a : b; }
inline vf vmax(vf a, vf b) { return a > b ? a : b; }

/// a * b + c in one rounding where the set has FMA (so results differ from the baseline only in the last bits).
inline vf vfma(vf a, vf b, vf c) {
#if defined(VLM_KERNEL_AVX512)
  return (vf)_mm512_fmadd_ps((__m512)a, (__m512)b, (__m512)c);
#elif defined(VLM_KERNEL_AVX2)
  return (vf)_mm256_fmadd_ps((__m256)a, (__m256)b, (__m256)c);
#else
  return a * b + c;
#endif
}

inline float hsum(vf v) {
  float s = 0;
  for (int i = 0; i < kLanes; ++i) s += v[i];
  return s;
}
inline float hmax(vf v) {
  float m = v[0];
  for (int i = 1; i < kLanes; ++i) m = v[i] > m ? v[i] : m;
  return m;
}

/// exp(x) for x <= 0 (softmax after subtracting the row max), Cephes' expf: x = n ln2 + r, |r| <= ln2 / 2, a degree-6
/// polynomial for e^r, then 2^n through the exponent bits. About 1 ulp; inputs below -87 flush to e^-87 (callers mask
/// those entries to exact zeros anyway).
inline vf exp_nonpositive(vf x) {
  x = x < -87.0f ? splat(-87.0f) : x;
  const vf magic = splat(12582912.0f);  // 1.5 * 2^23: adding and subtracting it rounds to the nearest integer
  vf n = vfma(x, splat(1.44269504088896341f), magic) - magic;
  vf r = vfma(n, splat(-0.693359375f), x);
  r = vfma(n, splat(2.12194440e-4f), r);
  vf p = splat(1.9875691500e-4f);
  p = vfma(p, r, splat(1.3981999507e-3f));
  p = vfma(p, r, splat(8.3334519073e-3f));
  p = vfma(p, r, splat(4.1665795894e-2f));
  p = vfma(p, r, splat(1.6666665459e-1f));
  p = vfma(p, r, splat(5.0000001201e-1f));
  vf e = vfma(p, r * r, r) + 1.0f;
  vi bits = (__builtin_convertvector(n, vi) + 127) << 23;
  vf scale;
  std::memcpy(&scale, &bits, sizeof scale);
  return e * scale;
}

}  // namespace
