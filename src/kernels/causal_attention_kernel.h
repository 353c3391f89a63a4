// Body of the short-sequence causal attention; included once per instruction set, after simd_vec.h (see
// cpu_kernels.h). No include guard on purpose.
//
// One (b, h) tile at a time, everything in L1: for T = 32, hs = 48 the operands are 6 KiB each. Two building blocks
// do all the arithmetic, both register-blocked over RB rows and vectorised without horizontal reductions:
//   scores:   out[i, :] = sum_d a[i, d] * bt[d, :]     (S = q k^T, dP = dy v^T; lanes run along the key index j)
//   weighted: out[i, :] = sum_j w[i, j] * src[j, :]    (y = P v, dq = dS k, dk = dS^T q, dv = P^T dy; lanes along hs)
// The causal mask is the loop bounds plus zeros above the diagonal of P; nothing is transposed outside the tile.
namespace {

#if defined(VLM_KERNEL_AVX512)
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
  vf acc[RB][NV];  // set by loops, not `= {}`, which GCC turns into a rep stos of a stack copy
  for (int r = 0; r < RB; ++r)
    for (int v = 0; v < NV; ++v) acc[r][v] = splat(0.0f);
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

/// out[r * so + 0 : hs] = sum_{j in [j0, j1)} w[r * tp + j] * src[j * ss + 0 : hs] for r < RB; src rows readable to
/// a whole number of vectors.
template <int HV, int RB>
inline void weighted_block(const float* w, int64_t tp, const float* src, int64_t ss, int64_t j0, int64_t j1,
                           float* out, int64_t so, int64_t hs) {
  vf acc[RB][HV];  // set by loops, not `= {}`, which GCC turns into a rep stos of a stack copy
  for (int r = 0; r < RB; ++r)
    for (int h = 0; h < HV; ++h) acc[r][h] = splat(0.0f);
  for (int64_t j = j0; j < j1; ++j) {
    vf s[HV];
    for (int h = 0; h < HV; ++h) s[h] = load(src + j * ss + h * kLanes);
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

/// Rows of a (t, hs) operand for the weighted blocks, readable to a whole number of vectors (see padded_rows).
struct TileRows {
  const float* data;
  int64_t stride;
};

/// Picks weighted_block<hv, RB> for a run-time hv = ceil(hs / kLanes) in 1 .. kMaxHeadVectors.
template <int RB, int HV = 1>
inline void weighted_rows(const float* w, int64_t tp, const float* src, int64_t ss, int64_t j0, int64_t j1, float* out,
                          int64_t so, int64_t hs) {
  if constexpr (HV < kMaxHeadVectors) {
    if (hs > HV * kLanes) return weighted_rows<RB, HV + 1>(w, tp, src, ss, j0, j1, out, so, hs);
  }
  weighted_block<HV, RB>(w, tp, src, ss, j0, j1, out, so, hs);
}

/// All T output rows. lower: w is lower-triangular (row i uses j <= i); else upper (row i uses j >= i).
inline void weighted_all(const float* w, int64_t t, int64_t tp, TileRows src, bool lower, float* out, int64_t so,
                         int64_t hs) {
  auto range = [&](int64_t i, int64_t rows, int64_t& j0, int64_t& j1) {
    j0 = lower ? 0 : i;
    j1 = lower ? (i + rows < t ? i + rows : t) : t;
  };
  int64_t i = 0, j0, j1;
  for (; i + kAttnRows <= t; i += kAttnRows) {
    range(i, kAttnRows, j0, j1);
    weighted_rows<kAttnRows>(w + i * tp, tp, src.data, src.stride, j0, j1, out + i * so, so, hs);
  }
  for (; i < t; ++i) {
    range(i, 1, j0, j1);
    weighted_rows<1>(w + i * tp, tp, src.data, src.stride, j0, j1, out + i * so, so, hs);
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

/// Transposes kLanes x kLanes in registers: at level h, swap the off-diagonal h x h blocks of every 2h x 2h block
/// (one two-source shuffle per row: vpermt2ps under AVX-512); after all levels every bit of the row index has been
/// exchanged with the column index's.
template <int H>
inline void transpose_level(vf (&m)[kLanes]) {
  vi keep_row, keep_partner;
#pragma GCC unroll 16
  for (int c = 0; c < kLanes; ++c) {
    keep_row[c] = (c & H) ? kLanes + c - H : c;
    keep_partner[c] = (c & H) ? kLanes + c : c + H;
  }
#pragma GCC unroll 16
  for (int r = 0; r < kLanes; ++r) {
    if (r & H) continue;
    const vf a = m[r], b = m[r + H];
    m[r] = __builtin_shuffle(a, b, keep_row);
    m[r + H] = __builtin_shuffle(a, b, keep_partner);
  }
  if constexpr (H > 1) transpose_level<H / 2>(m);
}
inline void transpose_square(vf (&m)[kLanes]) { transpose_level<kLanes / 2>(m); }

/// One full kLanes x kLanes block: dst[c * sd + r] = src[r * ss + c].
inline void transpose_full(const float* src, int64_t ss, float* dst, int64_t sd) {
  vf m[kLanes];
#pragma GCC unroll 16
  for (int r = 0; r < kLanes; ++r) m[r] = load(src + r * ss);
  transpose_square(m);
#pragma GCC unroll 16
  for (int c = 0; c < kLanes; ++c) store(dst + c * sd, m[c]);
}

/// A ragged block (nr rows, nc columns valid) through a zero-padded copy; stores nc rows of dst.
inline void transpose_ragged(const float* src, int64_t ss, int64_t nr, int64_t nc, float* dst, int64_t sd) {
  float buf[kLanes * kLanes];
  for (int64_t r = 0; r < kLanes; ++r)
    for (int64_t c = 0; c < kLanes; ++c) buf[r * kLanes + c] = (r < nr && c < nc) ? src[r * ss + c] : 0.0f;
  vf m[kLanes];
  for (int r = 0; r < kLanes; ++r) m[r] = load(buf + r * kLanes);
  transpose_square(m);
  for (int64_t c = 0; c < nc; ++c) store(dst + c * sd, m[c]);
}

/// dst[c * sd + r] = src[r * ss + c] for r < rows, c < cols; dst's columns rows .. (rows rounded up to kLanes) get
/// zeros. Reads nothing outside the rows x cols block.
inline void transpose(const float* src, int64_t ss, int64_t rows, int64_t cols, float* dst, int64_t sd) {
  for (int64_t rb = 0; rb < rows; rb += kLanes)
    for (int64_t cb = 0; cb < cols; cb += kLanes) {
      const int64_t nr = rows - rb < kLanes ? rows - rb : kLanes, nc = cols - cb < kLanes ? cols - cb : kLanes;
      if (nr == kLanes && nc == kLanes)
        transpose_full(src + rb * ss + cb, ss, dst + cb * sd + rb, sd);
      else
        transpose_ragged(src + rb * ss + cb, ss, nr, nc, dst + cb * sd + rb, sd);
    }
}

/// Rows of (t, hs) with stride st as the weighted blocks read them: whole vectors up to hp. When hs is a whole number
/// of vectors the source is used in place; otherwise it is copied into buf with zero columns hs .. hp.
inline TileRows padded_rows(const float* src, int64_t st, int64_t t, int64_t hs, int64_t hp, float* buf) {
  if (hs % kLanes == 0) return {src, st};
  const int64_t whole = hs / kLanes * kLanes;
  for (int64_t j = 0; j < t; ++j) {
    const float* s = src + j * st;
    float* d = buf + j * hp;
    for (int64_t e = 0; e < whole; e += kLanes) store(d + e, load(s + e));
    for (int64_t e = whole; e < hs; ++e) d[e] = s[e];
    for (int64_t e = hs; e < hp; ++e) d[e] = 0.0f;
  }
  return {buf, hp};
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
    transpose(a.k.tile(b, h), a.k.st, t, hs, kt, tp);  // (hs, T)
    const TileRows vrows = padded_rows(a.v.tile(b, h), a.v.st, t, hs, hp, vloc);
    scores_all(q, a.q.st, t, hs, kt, tp, p);  // (T, T) = q k^T, lower triangle
    for (int64_t i = 0; i < t; ++i) causal_softmax_row(p + i * tp, i, tp, a.scale);
    weighted_all(p, t, tp, vrows, /*lower=*/true, y, a.y.st, hs);  // (T, hs) = P v
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
    transpose(a.v.tile(b, h), a.v.st, t, hs, vt, tp);  // (hs, T)
    const TileRows krows = padded_rows(a.k.tile(b, h), a.k.st, t, hs, hp, kloc);
    const TileRows qrows = padded_rows(a.q.tile(b, h), a.q.st, t, hs, hp, qloc);
    const TileRows dyrows = padded_rows(dy, a.dy.st, t, hs, hp, dyloc);
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
    weighted_all(ds, t, tp, krows, /*lower=*/true, a.dq.tile(b, h), a.dq.st, hs);  // dq (T, hs) = dS k
    transpose(ds, tp, t, t, dst, tp);  // dS^T (T, T)
    transpose(p, tp, t, t, pt, tp);    // P^T (T, T)
    weighted_all(dst, t, tp, qrows, /*lower=*/false, a.dk.tile(b, h), a.dk.st, hs);   // dk = dS^T q
    weighted_all(pt, t, tp, dyrows, /*lower=*/false, a.dv.tile(b, h), a.dv.st, hs);   // dv = P^T dy
  }
}

}  // namespace
