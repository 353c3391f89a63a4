// Body of the fused nearest-code search; included once per instruction set, after simd_vec.h (see cpu_kernels.h).
// No include guard on purpose.
//
// Layout: kLanes rows of x per vector (lanes = rows), so one code costs D broadcast-FMAs and a compare+select per
// kLanes rows,
// with no horizontal reductions; R such row blocks and C codes are in flight at once to hide the FMA latency and to
// reuse each loaded x vector C times. Scores are never stored: N x K is never materialised.
namespace {

/// Transposes R * kLanes rows of x (row-major, D wide) into xt[(r * D + j) * kLanes + lane].
template <int DS, int R>
inline void transpose_rows(const float* x, int64_t d_rt, float* xt) {
  const int64_t D = DS ? DS : d_rt;
  for (int r = 0; r < R; ++r)
    for (int l = 0; l < kLanes; ++l) {
      const float* row = x + (int64_t(r) * kLanes + l) * D;
      for (int64_t j = 0; j < D; ++j) xt[(r * D + j) * kLanes + l] = row[j];
    }
}

/// D = 4: the same transposition in registers, two rounds of two-source shuffles (vpermt2ps under AVX-512) instead
/// of 4 kLanes scalar moves. Round 1 gathers dims {0, 1} and {2, 3} of half a vector's rows, round 2 joins halves.
template <int R>
inline void transpose_rows_d4(const float* x, float* xt) {
  constexpr int half = kLanes / 2;
  vi pick01, pick23, lo, hi;
  for (int m = 0; m < kLanes; ++m) {
    const int r = m % half, dim = m / half;  // (x0, x1) concatenated holds row r's dim at 4 r + dim
    pick01[m] = 4 * r + dim;
    pick23[m] = 4 * r + dim + 2;
    lo[m] = m < half ? m : kLanes + m - half;  // first halves of (t_a, t_b)
    hi[m] = m < half ? half + m : kLanes + m;  // second halves
  }
  for (int r = 0; r < R; ++r) {
    const float* p = x + int64_t(r) * kLanes * 4;
    const vf x0 = load(p), x1 = load(p + kLanes), x2 = load(p + 2 * kLanes), x3 = load(p + 3 * kLanes);
    const vf t0 = __builtin_shuffle(x0, x1, pick01), t1 = __builtin_shuffle(x0, x1, pick23);  // rows 0 .. half
    const vf t2 = __builtin_shuffle(x2, x3, pick01), t3 = __builtin_shuffle(x2, x3, pick23);  // rows half ..
    float* o = xt + int64_t(r) * 4 * kLanes;
    store(o, __builtin_shuffle(t0, t2, lo));
    store(o + kLanes, __builtin_shuffle(t0, t2, hi));
    store(o + 2 * kLanes, __builtin_shuffle(t1, t3, lo));
    store(o + 3 * kLanes, __builtin_shuffle(t1, t3, hi));
  }
}

/// argmin over all codes for R * kLanes consecutive rows starting at x; DS = D when known at compile time, else 0.
template <int DS, int R, int C>
inline void nearest_block(const float* x, const NearestCodeArgs& a, int64_t* out, float* xt) {
  const int64_t D = DS ? DS : a.d;
  if constexpr (DS == 4)
    transpose_rows_d4<R>(x, xt);
  else
    transpose_rows<DS, R>(x, a.d, xt);
  vf best[R];
  vi idx[R];
  for (int r = 0; r < R; ++r) {
    best[r] = splat(__builtin_inff());
    idx[r] = splat_i(0);
  }
  // Strict < while walking k upwards keeps the lowest index on exact ties, as argmin does.
  auto take = [&](int r, vf score, int32_t k) {
    vi lt = score < best[r];
    best[r] = select(lt, score, best[r]);
    idx[r] = lt ? splat_i(k) : idx[r];
  };
  int64_t k = 0;
  for (; k + C <= a.k; k += C) {
    vf acc[R][C];
    for (int c = 0; c < C; ++c)
      for (int r = 0; r < R; ++r) acc[r][c] = splat(a.c2[k + c]);
    const float* ck = a.neg2c + k * D;
    for (int64_t j = 0; j < D; ++j) {
      vf xr[R];
      for (int r = 0; r < R; ++r) xr[r] = load(xt + (r * D + j) * kLanes);
      for (int c = 0; c < C; ++c) {
        const vf cj = splat(ck[c * D + j]);
        for (int r = 0; r < R; ++r) acc[r][c] = vfma(xr[r], cj, acc[r][c]);
      }
    }
    for (int c = 0; c < C; ++c)
      for (int r = 0; r < R; ++r) take(r, acc[r][c], int32_t(k + c));
  }
  for (; k < a.k; ++k) {
    vf acc[R];
    for (int r = 0; r < R; ++r) acc[r] = splat(a.c2[k]);
    const float* ck = a.neg2c + k * D;
    for (int64_t j = 0; j < D; ++j) {
      const vf cj = splat(ck[j]);
      for (int r = 0; r < R; ++r) acc[r] = vfma(load(xt + (r * D + j) * kLanes), cj, acc[r]);
    }
    for (int r = 0; r < R; ++r) take(r, acc[r], int32_t(k));
  }
  for (int r = 0; r < R; ++r) {
    int32_t lanes[kLanes];  // a copy, so that idx can stay in registers
    std::memcpy(lanes, &idx[r], sizeof lanes);
    for (int l = 0; l < kLanes; ++l) out[r * kLanes + l] = lanes[l];
  }
}

/// Rows [begin, end): whole blocks in place, the ragged end through a zero-padded copy.
template <int DS, int R, int C>
void nearest_rows(const NearestCodeArgs& a, int64_t begin, int64_t end, float* scratch) {
  const int64_t D = DS ? DS : a.d;
  constexpr int64_t rows = int64_t(R) * kLanes;
  float* xt = scratch;                    // R * kLanes * D
  float* pad = scratch + rows * D;        // R * kLanes * D
  int64_t n = begin;
  for (; n + rows <= end; n += rows) nearest_block<DS, R, C>(a.x + n * D, a, a.out + n, xt);
  if (n < end) {
    const int64_t left = end - n;
    int64_t idx[rows];
    std::memset(pad, 0, sizeof(float) * rows * D);
    std::memcpy(pad, a.x + n * D, sizeof(float) * left * D);
    nearest_block<DS, R, C>(pad, a, idx, xt);
    std::memcpy(a.out + n, idx, sizeof(int64_t) * left);
  }
}

void nearest_code_impl(const NearestCodeArgs& a, int64_t begin, int64_t end, float* scratch) {
  // Registers: D <= 8 keeps x in R * D vectors plus R each of best, index, score; wider D streams x from L1 and
  // keeps R * C scores. 32 vector registers under AVX-512, 16 under AVX2 and SSE.
#if defined(VLM_KERNEL_AVX512)
  constexpr int kRowsSmall = 4, kRows = 2, kCodes = 4;
#else
  constexpr int kRowsSmall = 2, kRows = 2, kCodes = 2;
#endif
  switch (a.d) {
    case 4: return nearest_rows<4, kRowsSmall, 1>(a, begin, end, scratch);
    case 8: return nearest_rows<8, kRowsSmall, 1>(a, begin, end, scratch);
    case 16: return nearest_rows<16, kRows, kCodes>(a, begin, end, scratch);
    case 32: return nearest_rows<32, kRows, kCodes>(a, begin, end, scratch);
    case 64: return nearest_rows<64, kRows, kCodes>(a, begin, end, scratch);
    default: return nearest_rows<0, kRows, kCodes>(a, begin, end, scratch);
  }
}

}  // namespace
