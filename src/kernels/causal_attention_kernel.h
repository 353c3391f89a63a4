// Body of the short-sequence causal attention; included once per instruction set, after simd_vec.h (see
// cpu_kernels.h). No include guard on purpose.
//
// One (b, h) tile at a time, everything in L1: for T = 32, hs = 48 the operands are 6 KiB each. Two building blocks
// do all the arithmetic, both register-blocked over RB rows and vectorised without horizontal reductions:
//   scores:   out[i, :] = sum_d a[i, d] * bt[d, :]     (S = q k^T, dP = dy v^T; lanes run along the key index j)
//   weighted: out[i, :] = sum_j w[i, j] * src[j, :]    (y = P v, dq = dS k, dk = dS^T q, dv = P^T dy; lanes along hs)
// The causal mask is the loop bounds plus zeros above the diagonal of P; nothing is transposed outside the tile.
namespace {

#if defined(__AVX512F__)
constexpr int kAttnRows = 4;  // RB: 4 rows x up to 3 vectors = 12 accumulators of the 32 zmm registers
#else
constexpr int kAttnRows = 2;
#endif

/// Tiles are padded to multiples of 16 floats: a whole number of vectors for every build.
inline int64_t round16(int64_t n) { return (n + 15) / 16 * 16; }

// The widest rows the dispatch below instantiates: T <= 64 keys, hs <= 128 (the LibTorch layer checks both).
constexpr int kMaxKeyVectors = 64 / kLanes;
constexpr int kMaxHeadVectors = 128 / kLanes;

/// out[r, 0 : kLanes NV] = sum_d a[r * sa + d] * bt[d * tp + 0 : kLanes NV] for r < RB.
template <int NV, int RB>
inline void scores_block(const float* a, int64_t sa, int64_t hs, const float* bt, int64_t tp, float* out) {
  vf acc[RB][NV] = {};
  for (int64_t d = 0; d < hs; ++d) {
    vf b[NV];
    for (int v = 0; v < NV; ++v) b[v] = load(bt + d * tp + v * kLanes);
    for (int r = 0; r < RB; ++r) {
      const vf ad = splat(a[r * sa + d]);
      for (int v = 0; v < NV; ++v) acc[r][v] = vfma(ad, b[v], acc[r][v]);
    }
  }
  for (int r = 0; r < RB; ++r)
    for (int v = 0; v < NV; ++v) store(out + r * tp + v * kLanes, acc[r][v]);
}

/// Picks scores_block<nv, RB> for a run-time nv in 1 .. kMaxKeyVectors.
template <int RB, int NV = 1>
inline void scores_nv(int64_t nv, const float* a, int64_t sa, int64_t hs, const float* bt, int64_t tp, float* out) {
  if constexpr (NV < kMaxKeyVectors) {
    if (nv > NV) return scores_nv<RB, NV + 1>(nv, a, sa, hs, bt, tp, out);
  }
  scores_block<NV, RB>(a, sa, hs, bt, tp, out);
}

/// Rows i0 .. i0 + RB - 1 of the scores, columns 0 .. through the last row's diagonal (rounded up to kLanes).
template <int RB>
inline void scores_rows(const float* a, int64_t sa, int64_t hs, const float* bt, int64_t tp, float* out, int64_t i0) {
  scores_nv<RB>((i0 + RB - 1) / kLanes + 1, a, sa, hs, bt, tp, out);
}

/// All T rows: out (T, tp) gets the lower triangle (and some of the upper, which the callers mask or ignore).
inline void scores_all(const float* a, int64_t sa, int64_t t, int64_t hs, const float* bt, int64_t tp, float* out) {
  int64_t i = 0;
  for (; i + kAttnRows <= t; i += kAttnRows) scores_rows<kAttnRows>(a + i * sa, sa, hs, bt, tp, out + i * tp, i);
  for (; i < t; ++i) scores_rows<1>(a + i * sa, sa, hs, bt, tp, out + i * tp, i);
}

/// out[r * so + 0 : hs] = sum_{j in [j0, j1)} w[r * tp + j] * src[j * hp + 0 : hs] for r < RB.
template <int HV, int RB>
inline void weighted_block(const float* w, int64_t tp, const float* src, int64_t hp, int64_t j0, int64_t j1,
                           float* out, int64_t so, int64_t hs) {
  vf acc[RB][HV] = {};
  for (int64_t j = j0; j < j1; ++j) {
    vf s[HV];
    for (int h = 0; h < HV; ++h) s[h] = load(src + j * hp + h * kLanes);
    for (int r = 0; r < RB; ++r) {
      const vf wr = splat(w[r * tp + j]);
      for (int h = 0; h < HV; ++h) acc[r][h] = vfma(wr, s[h], acc[r][h]);
    }
  }
  for (int r = 0; r < RB; ++r)
    for (int h = 0; h < HV; ++h) {
      if ((h + 1) * kLanes <= hs)
        store(out + r * so + h * kLanes, acc[r][h]);
      else
        store_first(out + r * so + h * kLanes, acc[r][h], hs - h * kLanes);
    }
}

/// Picks weighted_block<hv, RB> for a run-time hv = hp / kLanes in 1 .. kMaxHeadVectors.
template <int RB, int HV = 1>
inline void weighted_rows(const float* w, int64_t tp, const float* src, int64_t hp, int64_t j0, int64_t j1, float* out,
                          int64_t so, int64_t hs) {
  if constexpr (HV < kMaxHeadVectors) {
    if (hp / kLanes > HV) return weighted_rows<RB, HV + 1>(w, tp, src, hp, j0, j1, out, so, hs);
  }
  weighted_block<HV, RB>(w, tp, src, hp, j0, j1, out, so, hs);
}

/// All T output rows. lower: w is lower-triangular (row i uses j <= i); else upper (row i uses j >= i).
inline void weighted_all(const float* w, int64_t t, int64_t tp, const float* src, int64_t hp, bool lower, float* out,
                         int64_t so, int64_t hs) {
  auto range = [&](int64_t i, int64_t rows, int64_t& j0, int64_t& j1) {
    j0 = lower ? 0 : i;
    j1 = lower ? (i + rows < t ? i + rows : t) : t;
  };
  int64_t i = 0, j0, j1;
  for (; i + kAttnRows <= t; i += kAttnRows) {
    range(i, kAttnRows, j0, j1);
    weighted_rows<kAttnRows>(w + i * tp, tp, src, hp, j0, j1, out + i * so, so, hs);
  }
  for (; i < t; ++i) {
    range(i, 1, j0, j1);
    weighted_rows<1>(w + i * tp, tp, src, hp, j0, j1, out + i * so, so, hs);
  }
}

inline vi lane_iota() {
  vi v;
  for (int l = 0; l < kLanes; ++l) v[l] = l;
  return v;
}

/// Row i of the scores in place -> softmax(scale * s[0 : i]) with exact zeros for j > i up to tp.
inline void causal_softmax_row(float* row, int64_t i, int64_t tp, float scale) {
  const int64_t nv = i / kLanes + 1;
  const vi iota = lane_iota();
  const vf neg_inf = splat(-__builtin_inff());
  vf m = neg_inf;
  for (int64_t v = 0; v < nv; ++v) {
    const vi keep = (iota + int32_t(v * kLanes)) <= int32_t(i);
    const vf s = select(keep, load(row + v * kLanes) * scale, neg_inf);
    store(row + v * kLanes, s);
    m = vmax(m, s);
  }
  const vf mx = splat(hmax(m));
  vf sum = splat(0.0f);
  for (int64_t v = 0; v < nv; ++v) {
    const vi keep = (iota + int32_t(v * kLanes)) <= int32_t(i);
    const vf e = select(keep, exp_nonpositive(load(row + v * kLanes) - mx), splat(0.0f));
    store(row + v * kLanes, e);
    sum += e;
  }
  const float inv = 1.0f / hsum(sum);
  for (int64_t v = 0; v < nv; ++v) store(row + v * kLanes, load(row + v * kLanes) * inv);
  for (int64_t v = nv; v < tp / kLanes; ++v) store(row + v * kLanes, splat(0.0f));
}

/// dst (hs, tp) = src (t, hs; row stride st) transposed, zero columns t .. tp.
inline void transpose_tile(const float* src, int64_t st, int64_t t, int64_t hs, int64_t tp, float* dst) {
  for (int64_t j = 0; j < t; ++j)
    for (int64_t d = 0; d < hs; ++d) dst[d * tp + j] = src[j * st + d];
  for (int64_t d = 0; d < hs; ++d)
    for (int64_t j = t; j < tp; ++j) dst[d * tp + j] = 0.0f;
}

/// dst (t, hp) = src (t, hs; row stride st) with zero columns hs .. hp.
inline void copy_tile(const float* src, int64_t st, int64_t t, int64_t hs, int64_t hp, float* dst) {
  for (int64_t j = 0; j < t; ++j) {
    std::memcpy(dst + j * hp, src + j * st, sizeof(float) * hs);
    std::memset(dst + j * hp + hs, 0, sizeof(float) * (hp - hs));
  }
}

void attention_forward_impl(const AttentionArgs& a, int64_t begin, int64_t end, float* scratch) {
  const int64_t t = a.t, hs = a.hs, tp = round16(t), hp = round16(hs);
  float* kt = scratch;             // (hs, tp)
  float* vloc = kt + hs * tp;      // (t, hp)
  float* pbuf = vloc + t * hp;     // (t, tp) when the probabilities are not kept
  for (int64_t tile = begin; tile < end; ++tile) {
    const int64_t b = tile / a.heads, h = tile % a.heads;
    const float* q = a.q.tile(b, h);
    float* y = a.y.tile(b, h);
    float* p = a.probs ? a.probs + tile * t * tp : pbuf;  // (t, tp)
    transpose_tile(a.k.tile(b, h), a.k.st, t, hs, tp, kt);
    copy_tile(a.v.tile(b, h), a.v.st, t, hs, hp, vloc);
    scores_all(q, a.q.st, t, hs, kt, tp, p);  // (T, T) = q k^T, lower triangle
    for (int64_t i = 0; i < t; ++i) causal_softmax_row(p + i * tp, i, tp, a.scale);
    weighted_all(p, t, tp, vloc, hp, /*lower=*/true, y, a.y.st, hs);  // (T, hs) = P v
  }
}

void attention_backward_impl(const AttentionArgs& a, int64_t begin, int64_t end, float* scratch) {
  const int64_t t = a.t, hs = a.hs, tp = round16(t), hp = round16(hs);
  float* vt = scratch;            // (hs, tp)
  float* kloc = vt + hs * tp;     // (t, hp)
  float* qloc = kloc + t * hp;    // (t, hp)
  float* dyloc = qloc + t * hp;   // (t, hp)
  float* ds = dyloc + t * hp;     // (t, tp)
  float* dst = ds + t * tp;       // (tp, tp)
  float* pt = dst + tp * tp;      // (tp, tp)
  for (int64_t tile = begin; tile < end; ++tile) {
    const int64_t b = tile / a.heads, h = tile % a.heads;
    const float* p = a.probs + tile * t * tp;  // (t, tp), zeros above the diagonal
    const float* dy = a.dy.tile(b, h);
    transpose_tile(a.v.tile(b, h), a.v.st, t, hs, tp, vt);
    copy_tile(a.k.tile(b, h), a.k.st, t, hs, hp, kloc);
    copy_tile(a.q.tile(b, h), a.q.st, t, hs, hp, qloc);
    copy_tile(dy, a.dy.st, t, hs, hp, dyloc);
    scores_all(dy, a.dy.st, t, hs, vt, tp, ds);  // dP (T, T) = dy v^T, lower triangle
    // dS = scale * P * (dP - rowsum(P * dP)); rowsum(P * dP) is dy . y without needing y.
    for (int64_t i = 0; i < t; ++i) {
      const int64_t nv = i / kLanes + 1;
      float* row = ds + i * tp;
      const float* prow = p + i * tp;
      vf acc = splat(0.0f);
      for (int64_t v = 0; v < nv; ++v) acc = vfma(load(prow + v * kLanes), load(row + v * kLanes), acc);
      const vf di = splat(hsum(acc));
      for (int64_t v = 0; v < nv; ++v)
        store(row + v * kLanes, load(prow + v * kLanes) * (load(row + v * kLanes) - di) * a.scale);
      for (int64_t v = nv; v < tp / kLanes; ++v) store(row + v * kLanes, splat(0.0f));
    }
    weighted_all(ds, t, tp, kloc, hp, /*lower=*/true, a.dq.tile(b, h), a.dq.st, hs);  // dq (T, hs) = dS k
    for (int64_t i = 0; i < t; ++i)
      for (int64_t j = 0; j < t; ++j) {
        dst[j * tp + i] = ds[i * tp + j];
        pt[j * tp + i] = p[i * tp + j];
      }
    weighted_all(dst, t, tp, qloc, hp, /*lower=*/false, a.dk.tile(b, h), a.dk.st, hs);   // dk = dS^T q
    weighted_all(pt, t, tp, dyloc, hp, /*lower=*/false, a.dv.tile(b, h), a.dv.st, hs);   // dv = P^T dy
  }
}

}  // namespace
