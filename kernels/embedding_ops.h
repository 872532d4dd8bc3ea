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

// y += alpha * x
void axpy(float alpha, const float* x, float* y, int n);

// Sum of squares (for L2 regularisation and row-wise Adagrad).
float sum_squares(const float* a, int n);

}  // namespace shardrec::kernels
