#include "kernels/ncf_ops.h"

#include "base/cuda_util.h"
#include "base/math.h"

namespace shardrec::kernels::cuda {

namespace {

constexpr int kThreads = 256;
inline unsigned blocks_for(size_t n) { return static_cast<unsigned>((n + kThreads - 1) / kThreads); }


__global__ void inputs_k(const float* U, const float* I, size_t n, NcfShape s, float* P, int ldp, float* X0) {
  const int R = s.g + s.m, w = s.g + 2 * s.m;
  const size_t t = blockIdx.x * static_cast<size_t>(blockDim.x) + threadIdx.x;
  if (t >= n * s.per_used * w) return;
  const size_t r = t / w;
  const int c = static_cast<int>(t % w);
  const size_t i = r / s.per_used, o = i * s.per + r % s.per_used;
  const float* u = U + i * R;
  const float* it = I + o * R;
  if (c < s.g) P[r * ldp + c] = u[c] * it[c];
  else if (c < s.g + s.m) X0[r * 2 * s.m + (c - s.g)] = u[c];
  else X0[r * 2 * s.m + (c - s.g)] = it[c - s.m];
}

__global__ void loss_k(const float* y, size_t n, NcfShape s, const uint8_t* lab, double c_lab, double c_unl,
                       bool unl_neg, double* loss, float* dy) {
  const size_t r = blockIdx.x * static_cast<size_t>(blockDim.x) + threadIdx.x;
  if (r >= n * s.per_used) return;
  const bool labeled = r % s.per_used == 0;
  const double c = labeled ? c_lab : c_unl;
  const double v = y[r];
  double l, d;
  if (labeled || unl_neg) {  // core/idl_loss.h bce()
    const double t = labeled ? (lab[r / s.per_used] ? 1.0 : 0.0) : 0.0;
    d = hd::sigmoid(v) - t;
    l = t > 0.5 ? hd::softplus(-v) : hd::softplus(v);
  } else {  // dual()
    const double lp = hd::softplus(-v), ln = hd::softplus(v);
    const double sum = lp * lp + ln * ln;
    const double pos = ln * ln / sum, neg = lp * lp / sum;
    d = hd::sigmoid(v) - pos;
    l = pos * lp + neg * ln;
  }
  loss[r] = l;
  dy[r] = c == 0 ? 0.0f : static_cast<float>(d * c);
}

__global__ void pred_grad_k(const float* dy, size_t M, const float* wp, int pin, float* dP, int lddp) {
  const size_t t = blockIdx.x * static_cast<size_t>(blockDim.x) + threadIdx.x;
  if (t >= M * pin) return;
  const size_t r = t / pin;
  const int k = static_cast<int>(t % pin);
  dP[r * lddp + k] = dy[r] * wp[k];
}

__global__ void user_grads_k(const float* dP, int lddp, const float* dX0, const float* I, size_t n, NcfShape s,
                             float* gU) {
  const int R = s.g + s.m;
  const size_t t = blockIdx.x * static_cast<size_t>(blockDim.x) + threadIdx.x;
  if (t >= n * R) return;
  const size_t i = t / R;
  const int c = static_cast<int>(t % R);
  float acc = 0.0f;  // the CPU's zeroed gradient row, then one += per item in item order
  for (int k = 0; k < s.per_used; ++k) {
    const size_t r = i * s.per_used + k, o = i * s.per + k;
    if (c < s.g) acc += dP[r * lddp + c] * I[o * R + c];
    else acc += dX0[r * 2 * s.m + (c - s.g)];
  }
  gU[t] = acc;
}

__global__ void item_grads_k(const float* dP, int lddp, const float* dX0, const float* U, size_t n, NcfShape s,
                             float* gI) {
  const int R = s.g + s.m;
  const size_t t = blockIdx.x * static_cast<size_t>(blockDim.x) + threadIdx.x;
  if (t >= n * s.per * R) return;
  const size_t o = t / R;
  const int c = static_cast<int>(t % R);
  const size_t i = o / s.per;
  const int k = static_cast<int>(o % s.per);
  float v = 0.0f;
  if (k < s.per_used) {
    const size_t r = i * s.per_used + k;
    if (c < s.g) v = v + dP[r * lddp + c] * U[i * R + c];
    else v = v + dX0[r * 2 * s.m + s.m + (c - s.g)];
  }
  gI[t] = v;
}

__global__ void signed_sum_k(const float* a, const float* b, float sign, size_t count, float* out) {
  const size_t t = blockIdx.x * static_cast<size_t>(blockDim.x) + threadIdx.x;
  if (t < count) out[t] = a[t] + sign * b[t];
}

}  // namespace

void ncf_inputs(const float* U, const float* I, size_t n, const NcfShape& s, float* P, int ldp, float* X0,
                cudaStream_t st) {
  const size_t cells = n * s.per_used * (s.g + 2 * s.m);
  if (cells == 0) return;
  inputs_k<<<blocks_for(cells), kThreads, 0, st>>>(U, I, n, s, P, ldp, X0);
  SHARDREC_CUDA_CHECK(cudaGetLastError());
}

void ncf_loss(const float* y, size_t n, const NcfShape& s, const uint8_t* lab, double c_lab, double c_unl,
              bool unlabeled_negative, double* loss, float* dy, cudaStream_t st) {
  if (n == 0) return;
  loss_k<<<blocks_for(n * s.per_used), kThreads, 0, st>>>(y, n, s, lab, c_lab, c_unl, unlabeled_negative, loss, dy);
  SHARDREC_CUDA_CHECK(cudaGetLastError());
}

void ncf_pred_input_grad(const float* dy, size_t M, const float* wp, int pin, float* dP, int lddp, cudaStream_t st) {
  if (M == 0) return;
  pred_grad_k<<<blocks_for(M * pin), kThreads, 0, st>>>(dy, M, wp, pin, dP, lddp);
  SHARDREC_CUDA_CHECK(cudaGetLastError());
}

void ncf_row_grads(const float* dP, int lddp, const float* dX0, const float* U, const float* I, size_t n,
                   const NcfShape& s, float* gU, float* gI, cudaStream_t st) {
  if (n == 0) return;
  const size_t R = static_cast<size_t>(s.g + s.m);
  user_grads_k<<<blocks_for(n * R), kThreads, 0, st>>>(dP, lddp, dX0, I, n, s, gU);
  SHARDREC_CUDA_CHECK(cudaGetLastError());
  item_grads_k<<<blocks_for(n * s.per * R), kThreads, 0, st>>>(dP, lddp, dX0, U, n, s, gI);
  SHARDREC_CUDA_CHECK(cudaGetLastError());
}

void signed_sum(const float* a, const float* b, float sign, size_t count, float* out, cudaStream_t st) {
  if (count == 0) return;
  signed_sum_k<<<blocks_for(count), kThreads, 0, st>>>(a, b, sign, count, out);
  SHARDREC_CUDA_CHECK(cudaGetLastError());
}

}  // namespace shardrec::kernels::cuda
