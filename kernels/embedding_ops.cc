#include "kernels/embedding_ops.h"

#include <cmath>
#include <cstring>

namespace shardrec::kernels {

// Each kernel is compiled for AVX2 and for the baseline, picked at load time. Both versions give
// the same bits: every lane does the same operations in the same order (no reassociation, no FMA
// contraction), only more lanes run at once.
#define SHARDREC_CLONES __attribute__((target_clones("avx2", "default")))
// Helpers of the clones, always inlined: called out of line they would be compiled once, for the
// baseline, and the AVX2 clone would run that.
#define SHARDREC_INLINE __attribute__((always_inline)) inline

SHARDREC_CLONES float dot(const float* a, const float* b, int n) {
  float p[8] = {0, 0, 0, 0, 0, 0, 0, 0};
  int i = 0;
  for (; i + 8 <= n; i += 8)
    for (int l = 0; l < 8; ++l) p[l] += a[i + l] * b[i + l];
  for (int l = 0; i < n; ++i, ++l) p[l] += a[i] * b[i];
  return ((p[0] + p[4]) + (p[1] + p[5])) + ((p[2] + p[6]) + (p[3] + p[7]));
}

namespace {
// Eight floats as one value (GCC's vector extension: one ymm register with AVX2, two xmm without).
typedef float v8 __attribute__((vector_size(32)));

// Through a reference: returning a vector from a function changes the baseline clone's ABI.
SHARDREC_INLINE void load8(v8& v, const float* p) { std::memcpy(&v, p, sizeof v); }

// dot()'s tail and combining tree on lanes p (R rows).
template <int R>
SHARDREC_INLINE void finish_dots(v8 (&acc)[R], const float* const* a, const float* b, int i, int n, float* out) {
  for (int r = 0; r < R; ++r) {
    float p[8];
    std::memcpy(p, &acc[r], sizeof p);
    for (int l = 0, j = i; j < n; ++j, ++l) p[l] += a[r][j] * b[j];
    out[r] = ((p[0] + p[4]) + (p[1] + p[5])) + ((p[2] + p[6]) + (p[3] + p[7]));
  }
}

template <int R>
SHARDREC_INLINE void dots(const float* const* a, const float* b, int n, float* out) {
  v8 acc[R];
  for (int r = 0; r < R; ++r) acc[r] = v8{};
  int i = 0;
  for (; i + 8 <= n; i += 8) {
    v8 vb, va;
    load8(vb, b + i);
    for (int r = 0; r < R; ++r) {
      load8(va, a[r] + i);
      acc[r] += va * vb;
    }
  }
  finish_dots<R>(acc, a, b, i, n, out);
}

// Columns [k, k + 8V) of the weighted sum, in registers across the rows.
template <int V>
SHARDREC_INLINE void weighted_block(const float* __restrict rows, const float* __restrict w, int64_t m, int n, int k,
                           float* __restrict out) {
  v8 acc[V];
  for (int t = 0; t < V; ++t) acc[t] = v8{};
  for (int64_t r = 0; r < m; ++r) {
    const float* x = rows + static_cast<size_t>(r) * n + k;
    const float c = w[r];
    for (int t = 0; t < V; ++t) {
      v8 v;
      load8(v, x + 8 * t);
      acc[t] += c * v;
    }
  }
  for (int t = 0; t < V; ++t) std::memcpy(out + k + 8 * t, &acc[t], sizeof acc[t]);
}
}  // namespace

// The lanes in registers (dots<4>). Written with plain float arrays, GCC vectorised it into
// shuffles and spills (76% of a recommend over 1M items, which now runs 4x faster on one thread
// with the tiling in core/evaluator.cc). Same operations per lane, so the same bits.
SHARDREC_CLONES void dot4(const float* const a[4], const float* b, int n, float* out) { dots<4>(a, b, n, out); }

namespace {
// e^x * w for x <= 0: x = k ln2 + r (Cody-Waite, |r| <= ln2 / 2), e^r by its Taylor polynomial
// of degree 7 (relative error below 1e-8), 2^k from the exponent bits. Written once for any
// lane type: F a float or eight (GCC's vector selects keep the clamps branch-free, which plain
// float selects are not without -fno-trapping-math), I the matching integers.
// x is replaced by the result (through references: a vector argument or return value would
// change the baseline clone's ABI).
template <class F, class I>
SHARDREC_INLINE void exp_times(F& x, const F& w) {
  x = x < -87.0f ? F{} - 87.0f : x;
  x = x > 88.0f ? F{} + 88.0f : x;
  const F kf = (x * 1.44269504f + 12582912.0f) - 12582912.0f;  // round to nearest
  const F r = (x - kf * 0.693359375f) - kf * -2.12194440e-4f;
  F p = F{} + 1.0f / 5040.0f;
  p = p * r + 1.0f / 720.0f;
  p = p * r + 1.0f / 120.0f;
  p = p * r + 1.0f / 24.0f;
  p = p * r + 1.0f / 6.0f;
  p = p * r + 0.5f;
  p = p * r + 1.0f;
  p = p * r + 1.0f;
  I bits;
  if constexpr (sizeof(F) == sizeof(float)) {
    bits = (static_cast<I>(kf) + 127) << 23;
  } else {
    bits = (__builtin_convertvector(kf, I) + 127) << 23;
  }
  F two_k;
  std::memcpy(&two_k, &bits, sizeof two_k);
  x = (p * two_k) * w;
}
typedef int32_t v8i __attribute__((vector_size(32)));
}  // namespace

SHARDREC_CLONES void exp_shifted(const float* __restrict x, float c, float w, int64_t n, float* __restrict out) {
  int64_t k = 0;
  v8 vx, vw = v8{} + w;
  for (; k + 8 <= n; k += 8) {
    load8(vx, x + k);
    vx -= c;
    exp_times<v8, v8i>(vx, vw);
    std::memcpy(out + k, &vx, sizeof vx);
  }
  for (; k < n; ++k) {
    float y = x[k] - c;
    exp_times<float, int32_t>(y, w);
    out[k] = y;
  }
}

SHARDREC_CLONES void exp_shifted_each(const float* __restrict x, const float* __restrict c,
                                      const float* __restrict w, int64_t n, float* __restrict out) {
  int64_t k = 0;
  v8 vx, vc, vw;
  for (; k + 8 <= n; k += 8) {
    load8(vx, x + k);
    load8(vc, c + k);
    load8(vw, w + k);
    vx -= vc;
    exp_times<v8, v8i>(vx, vw);
    std::memcpy(out + k, &vx, sizeof vx);
  }
  for (; k < n; ++k) {
    float y = x[k] - c[k];
    exp_times<float, int32_t>(y, w[k]);
    out[k] = y;
  }
}

SHARDREC_CLONES void dot_rows(const float* rows, int64_t m, const float* b, int n, float* out) {
  int64_t k = 0;
  for (; k + 4 <= m; k += 4) {
    const float* a[4] = {rows + k * n, rows + (k + 1) * n, rows + (k + 2) * n, rows + (k + 3) * n};
    dots<4>(a, b, n, out + k);
  }
  for (; k < m; ++k) {
    const float* a[1] = {rows + k * n};
    dots<1>(a, b, n, out + k);
  }
}

SHARDREC_CLONES void weighted_rows(const float* rows, const float* w, int64_t m, int n, float* out) {
  int k = 0;
  for (; k + 64 <= n; k += 64) weighted_block<8>(rows, w, m, n, k, out);
  for (; k + 16 <= n; k += 16) weighted_block<2>(rows, w, m, n, k, out);
  for (; k + 8 <= n; k += 8) weighted_block<1>(rows, w, m, n, k, out);
  for (; k < n; ++k) {
    float a = 0.0f;
    for (int64_t r = 0; r < m; ++r) a += w[r] * rows[static_cast<size_t>(r) * n + k];
    out[k] = a;
  }
}

SHARDREC_CLONES void axpy(float alpha, const float* __restrict x, float* __restrict y, int n) {
  for (int i = 0; i < n; ++i) y[i] += alpha * x[i];
}

SHARDREC_CLONES void add(const float* __restrict x, float* __restrict y, int n) {
  for (int i = 0; i < n; ++i) y[i] += x[i];
}

SHARDREC_CLONES void bpr_backward(float c, const float* __restrict u, const float* __restrict i,
                  const float* __restrict j, float* __restrict gu, float* __restrict gi,
                  float* __restrict gj, int n) {
  for (int q = 0; q < n; ++q) {
    gu[q] += c * (i[q] - j[q]);
    gi[q] += c * u[q];
    gj[q] -= c * u[q];
  }
}

SHARDREC_CLONES float sum_squares(const float* a, int n) { return dot(a, a, n); }

namespace {
SHARDREC_CLONES bool any_nonfinite(const float* x, size_t n) {
  uint32_t bad = 0;
  for (size_t i = 0; i < n; ++i) {
    uint32_t b;
    std::memcpy(&b, x + i, sizeof b);
    bad |= static_cast<uint32_t>((b & 0x7f800000u) == 0x7f800000u);  // exponent all ones
  }
  return bad != 0;
}
}  // namespace

size_t first_nonfinite(const float* x, size_t n) {
  if (!any_nonfinite(x, n)) return n;
  for (size_t i = 0; i < n; ++i)
    if (!std::isfinite(x[i])) return i;
  return n;
}

}  // namespace shardrec::kernels
