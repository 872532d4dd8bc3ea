// CUDA kernels of the pointwise NCF models (core/ncf_model.h) around the dense layers of
// kernels/dense_ops.h: the GMF product and the MLP input, the Inverse Learning losses
// (core/idl_loss.h, the same double formulas), and the embedding rows' gradients. Rows of a step:
// n users, each with `per` items (the labeled item first, then the unlabeled draws); a pass uses the
// first per_used items of each user (1: labeled rows only), row r = i * per_used + k.
#pragma once
#include <cuda_runtime.h>

#include <cstddef>
#include <cstdint>

namespace shardrec::kernels::cuda {

struct NcfShape {
  int g = 0;      // GMF width
  int m = 0;      // MLP embedding width (0: gmf)
  int per = 1;    // items per user in the step
  int per_used = 1;
  int row() const { return g + m; }
};

// P[r, 0:g] = u * it (GMF), X0[r] = [u[g:], it[g:]] (MLP input, 2m wide) for the n * per_used rows;
// U: n x row, I: n * per x row. P has row stride ldp.
void ncf_inputs(const float* U, const float* I, size_t n, const NcfShape& s, float* P, int ldp, float* X0,
                cudaStream_t st);

// Per row: labeled (k == 0) rows take BCE against lab[i] with weight c_lab, unlabeled rows the dual
// loss (or BCE against 0 when unlabeled_negative) with weight c_unl. loss[r]: the unweighted loss
// (double); dy[r] = float(dL/dy * c), exactly 0 where the weight is 0 (the row does not count).
void ncf_loss(const float* y, size_t n, const NcfShape& s, const uint8_t* lab, double c_lab, double c_unl,
              bool unlabeled_negative, double* loss, float* dy, cudaStream_t st);

// dP[r, k] = dy[r] * wp[k] for k < pin (the prediction layer's input gradient).
void ncf_pred_input_grad(const float* dy, size_t M, const float* wp, int pin, float* dP, int lddp, cudaStream_t st);

// The rows' gradients: gU (n x row) sums over each user's used items in item order, gI (n * per x
// row) is zero for unused items. GMF columns from dP (dp * it, dp * u), MLP columns from dX0.
void ncf_row_grads(const float* dP, int lddp, const float* dX0, const float* U, const float* I, size_t n,
                   const NcfShape& s, float* gU, float* gI, cudaStream_t st);

// out[k] = a[k] + sign * b[k] (sign +1 or -1: a + b or a - b, the same floats).
void signed_sum(const float* a, const float* b, float sign, size_t count, float* out, cudaStream_t st);

}  // namespace shardrec::kernels::cuda
