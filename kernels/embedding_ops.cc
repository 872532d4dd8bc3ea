#include "kernels/embedding_ops.h"

#include <cmath>
#include <cstring>

namespace shardrec::kernels {

// Each kernel is compiled for AVX2 and for the baseline, picked at load time. Both versions give
// the same bits: every lane does the same operations in the same order (no reassociation, no FMA
// contraction), only more lanes run at once.
#define SHARDREC_CLONES __attribute__((target_clones("avx2", "default")))

SHARDREC_CLONES float dot(const float* a, const float* b, int n) {
  float p[8] = {0, 0, 0, 0, 0, 0, 0, 0};
  int i = 0;
  for (; i + 8 <= n; i += 8)
    for (int l = 0; l < 8; ++l) p[l] += a[i + l] * b[i + l];
  for (int l = 0; i < n; ++i, ++l) p[l] += a[i] * b[i];
  return ((p[0] + p[4]) + (p[1] + p[5])) + ((p[2] + p[6]) + (p[3] + p[7]));
}

SHARDREC_CLONES void dot4(const float* const a[4], const float* b, int n, float* out) {
  float p[4][8] = {};
  const float *a0 = a[0], *a1 = a[1], *a2 = a[2], *a3 = a[3];
  int i = 0;
  for (; i + 8 <= n; i += 8)
    for (int l = 0; l < 8; ++l) {
      const float bl = b[i + l];
      p[0][l] += a0[i + l] * bl;
      p[1][l] += a1[i + l] * bl;
      p[2][l] += a2[i + l] * bl;
      p[3][l] += a3[i + l] * bl;
    }
  for (int l = 0; i < n; ++i, ++l)
    for (int k = 0; k < 4; ++k) p[k][l] += a[k][i] * b[i];
  for (int k = 0; k < 4; ++k)
    out[k] = ((p[k][0] + p[k][4]) + (p[k][1] + p[k][5])) + ((p[k][2] + p[k][6]) + (p[k][3] + p[k][7]));
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
