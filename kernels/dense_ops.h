// Dense layers on the GPU: cuBLAS for the products that stay within a sample (the layer's output
// Z = X W^T + b and the input gradient dX = dZ W), and an exact fixed-point kernel for the one
// product that sums over samples (the weight gradient). The CPU sums each sample's contribution
// a*x rounded once to an int64 at 2^-frac_bits (core/ncf_model.h DenseGradAccum,
// dist/dense_allreduce.h); the GPU forms the same double product, rounds it the same way and adds
// the integers (integer atomics are associative), so for equal inputs the sums are bitwise the
// CPU's and do not depend on how samples are spread over ranks or thread blocks.
//
// Row independence. A GEMM's row r depends only on row r of X, but cuBLAS picks its algorithm by
// the shape, and two algorithms may sum the inner dimension in different orders. The products run
// in chunks of a fixed kRows rows (the last one padded), so every rank, whatever its share of the
// batch, runs the same algorithm on every row: GPU runs stay bitwise invariant to the number of
// ranks. Buffers passed in must hold padded_rows(M) rows. The math is full FP32
// (CUBLAS_COMPUTE_32F_PEDANTIC: no TF32 or reduced-precision reductions, whatever the environment).
#pragma once
#include <cuda_runtime.h>

#include <cstddef>
#include <cstdint>
#include <memory>

namespace shardrec::kernels::cuda {

constexpr size_t kRows = 2048;
inline size_t padded_rows(size_t m) { return ((m + kRows - 1) / kRows) * kRows; }

// A cuBLAS handle bound to one stream (RAII; the handle type stays out of this header).
class Blas {
 public:
  explicit Blas(cudaStream_t st);
  ~Blas();
  Blas(const Blas&) = delete;
  Blas& operator=(const Blas&) = delete;
  cudaStream_t stream() const { return st_; }
  void* handle() const { return h_; }

 private:
  cudaStream_t st_;
  void* h_ = nullptr;
};

// Z[r, 0:out] = X[r, 0:in] . W^T + b, then ReLU when relu, for r < M. X has row stride ldx, Z has
// ldz; W is row-major [out][in] (the CPU layout). b may be null (no bias).
void linear_forward(Blas& blas, const float* X, int ldx, size_t M, int in, const float* W, const float* b,
                    int out, bool relu, float* Z, int ldz);
// dX[r, 0:in] = dZ[r, 0:out] . W for r < M (dZ row stride ldz, dX row stride ldx).
void linear_backward_input(Blas& blas, const float* dZ, int ldz, size_t M, int out, const float* W, int in,
                           float* dX, int ldx);

// How one contribution a * x becomes an integer, as the two CPU reductions do it:
//   kExactProduct (core/ncf_model.h DenseGradAccum): the product in double (exact for two floats),
//                 rounded to nearest-even at 2^-frac_bits;
//   kFloatProduct (dist/dense_allreduce.h ExactGradientSum): the product in float, then llround
//                 (half away from zero) at 2^-frac_bits.
enum class FixedRounding { kExactProduct, kFloatProduct };

// acc[c*nx + j] += sum over r < M of fixed(A[r*lda + c] * X[r*ldx + j]) for c < na, j < nx.
// X == nullptr means a column of ones (a bias: acc[c] += fixed(A[r, c])). Zeros of A add nothing.
// A contribution that is not finite or reaches max_abs sets *bad to 1 (a diverged run).
void fixed_outer_sum(const float* A, int lda, int na, const float* X, int ldx, int nx, size_t M,
                     int frac_bits, double max_abs, int64_t* acc, int* bad, cudaStream_t st,
                     FixedRounding mode = FixedRounding::kExactProduct);

// dst[r, 0:cols] = src[r, 0:cols] for r < rows (row strides lds, ldd).
void copy_columns(const float* src, int lds, float* dst, int ldd, size_t rows, int cols, cudaStream_t st);

// ReLU's gradient: dZ[r, c] = 0 where !(Z[r, c] > 0) (strides ld), r < M, c < n.
void relu_mask(const float* Z, int ldz, float* dZ, int lddz, size_t M, int n, cudaStream_t st);

}  // namespace shardrec::kernels::cuda
