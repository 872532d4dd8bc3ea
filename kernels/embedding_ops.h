// CPU kernels of the embedding step. Each has one fixed summation order, independent of where a
// row lives, so every rank computes bit-identical values (the build disables FMA contraction).
// The CUDA versions (kernels/*.cu) arrive with the GPU backend.
#pragma once
#include <cstddef>
#include <cstdint>

namespace shardrec::kernels {

// Dot product with 8 interleaved partial sums combined in a fixed tree: vectorisable without
// -ffast-math, and the same bits on every call.
float dot(const float* a, const float* b, int n);

// Four dot products against one row b: out[k] = dot(a[k], b), bit-identical to dot() (each
// product keeps dot's own partial sums and combining tree); b is loaded once for all four.
void dot4(const float* const a[4], const float* b, int n, float* out);

// out[k] = dot(rows + k * n, b) for k < m, bit-identical to dot(): the same eight partial sums and
// combining tree, four rows at a time with the sums in registers (a similarity matrix's row).
void dot_rows(const float* rows, int64_t m, const float* b, int n, float* out);

// out[k] = e^(x[k] - c) * w: a softmax's terms (x[k] - c <= 0 there; below -87 the result is the
// value at -87, about 1.6e-38). A fixed range reduction and polynomial (within about 2 ulp of
// expf) of adds, multiplies and bit operations only, so every clone and every call computes the
// same bits, eight lanes at a time.
void exp_shifted(const float* x, float c, float w, int64_t n, float* out);
// out[k] = e^(x[k] - c[k]) * w[k], each term the bits exp_shifted(x + k, c[k], w[k], 1) gives.
void exp_shifted_each(const float* x, const float* c, const float* w, int64_t n, float* out);

// y += alpha * x
void axpy(float alpha, const float* x, float* y, int n);

// out = sum_k w[k] * rows[k] (k ascending, from zero), the bits of out = 0 and axpy(w[k], rows[k],
// out) in k order; the n-wide sum stays in registers across the rows.
void weighted_rows(const float* rows, const float* w, int64_t m, int n, float* out);

// y += x
void add(const float* __restrict x, float* __restrict y, int n);

// One BPR term's gradients, accumulated: gu += c (i - j), gi += c u, gj -= c u.
// The gradient rows never alias the embedding rows (restrict lets the loop vectorise).
void bpr_backward(float c, const float* __restrict u, const float* __restrict i,
                  const float* __restrict j, float* __restrict gu, float* __restrict gi,
                  float* __restrict gj, int n);

// Sum of squares (for L2 regularisation and row-wise Adagrad).
float sum_squares(const float* a, int n);

// Index of the first NaN or Inf among n floats, or n. A branch-free scan of the exponent bits
// first (vectorised), so the common all-finite case costs one pass at memory speed.
size_t first_nonfinite(const float* x, size_t n);

}  // namespace shardrec::kernels
