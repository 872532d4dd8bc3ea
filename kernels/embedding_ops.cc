#include "kernels/embedding_ops.h"

namespace shardrec::kernels {

float dot(const float* a, const float* b, int n) {
  float p[8] = {0, 0, 0, 0, 0, 0, 0, 0};
  int i = 0;
  for (; i + 8 <= n; i += 8)
    for (int l = 0; l < 8; ++l) p[l] += a[i + l] * b[i + l];
  for (int l = 0; i < n; ++i, ++l) p[l] += a[i] * b[i];
  return ((p[0] + p[4]) + (p[1] + p[5])) + ((p[2] + p[6]) + (p[3] + p[7]));
}

void axpy(float alpha, const float* __restrict x, float* __restrict y, int n) {
  for (int i = 0; i < n; ++i) y[i] += alpha * x[i];
}

void bpr_backward(float c, const float* __restrict u, const float* __restrict i,
                  const float* __restrict j, float* __restrict gu, float* __restrict gi,
                  float* __restrict gj, int n) {
  for (int q = 0; q < n; ++q) {
    gu[q] += c * (i[q] - j[q]);
    gi[q] += c * u[q];
    gj[q] -= c * u[q];
  }
}

float sum_squares(const float* a, int n) { return dot(a, a, n); }

}  // namespace shardrec::kernels
