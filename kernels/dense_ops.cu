#include "kernels/dense_ops.h"

#include <cublas_v2.h>

#include <algorithm>
#include <string>

#include "base/cuda_util.h"

namespace shardrec::kernels::cuda {

namespace {

constexpr int kThreads = 256;
constexpr size_t kSampleChunk = 256;  // samples one thread of fixed_outer_sum adds before its atomic

#define BLAS_CHECK(call)                                                                               \
  do {                                                                                                 \
    const cublasStatus_t s_ = (call);                                                                  \
    if (s_ != CUBLAS_STATUS_SUCCESS)                                                                   \
      ::shardrec::fail(std::string("cuBLAS error in " #call ": ") + cublasGetStatusString(s_));        \
  } while (0)
#define CK(call) SHARDREC_CUDA_CHECK(call)

cublasHandle_t H(const Blas& b) { return static_cast<cublasHandle_t>(b.handle()); }

// Row-major Y[M x n] (stride ldy) is column-major Y^T [n x M] with leading dimension ldy; cuBLAS
// sees every product below transposed.
void gemm(Blas& blas, cublasOperation_t ta, int m, int n, int k, const float* A, int lda, const float* B, int ldb,
          float* C, int ldc) {
  const float one = 1.0f, zero = 0.0f;
  BLAS_CHECK(cublasGemmEx(H(blas), ta, CUBLAS_OP_N, m, n, k, &one, A, CUDA_R_32F, lda, B, CUDA_R_32F, ldb, &zero, C,
                          CUDA_R_32F, ldc, CUBLAS_COMPUTE_32F_PEDANTIC, CUBLAS_GEMM_DEFAULT));
}

__global__ void bias_relu_k(float* Z, int ldz, size_t M, int n, const float* b, bool relu) {
  const size_t t = blockIdx.x * static_cast<size_t>(blockDim.x) + threadIdx.x;
  if (t >= M * n) return;
  const size_t r = t / n;
  const int c = static_cast<int>(t % n);
  float z = Z[r * ldz + c];
  if (b) z = b[c] + z;  // the CPU adds the bias first: b + dot
  if (relu) z = z > 0.0f ? z : 0.0f;
  Z[r * ldz + c] = z;
}

__global__ void relu_mask_k(const float* Z, int ldz, float* dZ, int lddz, size_t M, int n) {
  const size_t t = blockIdx.x * static_cast<size_t>(blockDim.x) + threadIdx.x;
  if (t >= M * n) return;
  const size_t r = t / n;
  const int c = static_cast<int>(t % n);
  if (!(Z[r * ldz + c] > 0.0f)) dZ[r * lddz + c] = 0.0f;
}

// Round to nearest as an int64, as core/ncf_model.cc's fixed(): 1.5 * 2^52 leaves the integer in
// the low mantissa bits.
__device__ __forceinline__ long long fixed_of(double v) {
  const double magic = 6755399441055744.0;
  return __double_as_longlong(v + magic) - __double_as_longlong(magic);
}

__global__ void fixed_outer_k(const float* A, int lda, int na, const float* X, int ldx, int nx, size_t M,
                              double scale, double max_abs, unsigned long long* acc, int* bad, bool float_product) {
  const size_t t = blockIdx.x * static_cast<size_t>(blockDim.x) + threadIdx.x;
  if (t >= static_cast<size_t>(na) * nx) return;
  const int c = static_cast<int>(t / nx), j = static_cast<int>(t % nx);
  const size_t r0 = blockIdx.y * kSampleChunk, r1 = min(M, r0 + kSampleChunk);
  long long sum = 0;
  bool ok = true;
  for (size_t r = r0; r < r1; ++r) {
    const float a = A[r * lda + c];
    if (a == 0.0f) continue;  // ReLU zeros: nothing to add (the CPU skips them too)
    if (float_product) {
      const float v = X ? a * X[r * ldx + j] : a;
      if (!(fabs(static_cast<double>(v)) < max_abs)) ok = false;
      sum += llround(static_cast<double>(v) * scale);
      continue;
    }
    const double x = X ? static_cast<double>(X[r * ldx + j]) : 1.0;
    const double p = static_cast<double>(a) * x;
    if (!(fabs(p) < max_abs)) ok = false;
    sum += fixed_of(static_cast<double>(a) * scale * x);
  }
  if (!ok) *bad = 1;
  if (sum != 0) atomicAdd(acc + t, static_cast<unsigned long long>(sum));  // two's complement: exact
}

}  // namespace

Blas::Blas(cudaStream_t st) : st_(st) {
  cublasHandle_t h = nullptr;
  BLAS_CHECK(cublasCreate(&h));
  h_ = h;
  BLAS_CHECK(cublasSetStream(h, st));
  BLAS_CHECK(cublasSetMathMode(h, CUBLAS_PEDANTIC_MATH));
}

Blas::~Blas() {
  if (h_) cublasDestroy(static_cast<cublasHandle_t>(h_));
}

void linear_forward(Blas& blas, const float* X, int ldx, size_t M, int in, const float* W, const float* b, int out,
                    bool relu, float* Z, int ldz) {
  if (M == 0) return;
  // Z^T[out x rows] = W[out x in] . X^T[in x rows]; W row-major [out][in] is column-major W^T.
  for (size_t r = 0; r < M; r += kRows)
    gemm(blas, CUBLAS_OP_T, out, static_cast<int>(kRows), in, W, in, X + r * ldx, ldx, Z + r * ldz, ldz);
  if (b || relu) {
    bias_relu_k<<<static_cast<unsigned>((M * out + kThreads - 1) / kThreads), kThreads, 0, blas.stream()>>>(
        Z, ldz, M, out, b, relu);
    CK(cudaGetLastError());
  }
}

void linear_backward_input(Blas& blas, const float* dZ, int ldz, size_t M, int out, const float* W, int in, float* dX,
                           int ldx) {
  if (M == 0) return;
  // dX^T[in x rows] = W^T[in x out] . dZ^T[out x rows].
  for (size_t r = 0; r < M; r += kRows)
    gemm(blas, CUBLAS_OP_N, in, static_cast<int>(kRows), out, W, in, dZ + r * ldz, ldz, dX + r * ldx, ldx);
}

__global__ void copy_columns_k(const float* src, int lds, float* dst, int ldd, size_t rows, int cols) {
  const size_t t = blockIdx.x * static_cast<size_t>(blockDim.x) + threadIdx.x;
  if (t >= rows * cols) return;
  const size_t r = t / cols;
  const int c = static_cast<int>(t % cols);
  dst[r * ldd + c] = src[r * lds + c];
}

void copy_columns(const float* src, int lds, float* dst, int ldd, size_t rows, int cols, cudaStream_t st) {
  if (rows == 0 || cols == 0) return;
  copy_columns_k<<<static_cast<unsigned>((rows * cols + kThreads - 1) / kThreads), kThreads, 0, st>>>(src, lds, dst, ldd,
                                                                                                   rows, cols);
  CK(cudaGetLastError());
}

void fixed_outer_sum(const float* A, int lda, int na, const float* X, int ldx, int nx, size_t M, int frac_bits,
                     double max_abs, int64_t* acc, int* bad, cudaStream_t st, FixedRounding mode) {
  if (M == 0 || na == 0 || nx == 0) return;
  const size_t cells = static_cast<size_t>(na) * nx;
  const dim3 grid(static_cast<unsigned>((cells + kThreads - 1) / kThreads),
                  static_cast<unsigned>((M + kSampleChunk - 1) / kSampleChunk));
  fixed_outer_k<<<grid, kThreads, 0, st>>>(A, lda, na, X, ldx, nx, M, std::ldexp(1.0, frac_bits), max_abs,
                                          reinterpret_cast<unsigned long long*>(acc), bad,
                                          mode == FixedRounding::kFloatProduct);
  CK(cudaGetLastError());
}

void relu_mask(const float* Z, int ldz, float* dZ, int lddz, size_t M, int n, cudaStream_t st) {
  if (M == 0 || n == 0) return;
  relu_mask_k<<<static_cast<unsigned>((M * n + kThreads - 1) / kThreads), kThreads, 0, st>>>(Z, ldz, dZ, lddz, M, n);
  CK(cudaGetLastError());
}

}  // namespace shardrec::kernels::cuda
