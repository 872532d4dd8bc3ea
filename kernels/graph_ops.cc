#include "kernels/graph_ops.h"

#include <cstring>

namespace shardrec::kernels {

namespace {
// Eight floats as one value (GCC's vector extension: one ymm register with AVX2, two xmm without).
typedef float v8 __attribute__((vector_size(32)));

// Columns [k, k + 8V) of one output row: V vector accumulators held in registers across the
// neighbours (a loop over a runtime width would load and store the output at every neighbour).
// Weighted: acc += w[e] * row, stored as is; else acc += row, stored times c. Always inlined:
// called out of line, these would be compiled once for the baseline and the AVX2 clone would
// run them (3x slower).
template <int V, bool Weighted>
__attribute__((always_inline)) inline void block(const float* __restrict rows, int64_t b, int64_t e,
                                                 const uint32_t* __restrict nbr, const float* __restrict w,
                                                 float c, float* __restrict o, int dim, int k) {
  v8 acc[V];
  for (int t = 0; t < V; ++t) acc[t] = v8{};
  for (int64_t j = b; j < e; ++j) {
    const float* x = rows + static_cast<size_t>(nbr[j]) * dim + k;
    for (int t = 0; t < V; ++t) {
      v8 y;
      std::memcpy(&y, x + 8 * t, sizeof y);
      if constexpr (Weighted) {
        acc[t] += w[j] * y;
      } else {
        acc[t] += y;
      }
    }
  }
  for (int t = 0; t < V; ++t) {
    if constexpr (!Weighted) acc[t] *= c;
    std::memcpy(o + k + 8 * t, &acc[t], sizeof acc[t]);
  }
}

// Rows [lo, hi): blocks of 64, 16 and 8 columns, then the scalar loop, in the same order.
template <bool Weighted>
__attribute__((always_inline)) inline void row_sums(const float* rows, const int64_t* ptr, const uint32_t* nbr,
                                                    const float* w, const float* s, float* out, int dim, size_t lo,
                                                    size_t hi) {
  for (size_t r = lo; r < hi; ++r) {
    float* o = out + r * dim;
    const int64_t b = ptr[r], e = ptr[r + 1];
    const float c = Weighted ? 1.0f : s[r];
    int k = 0;
    for (; k + 64 <= dim; k += 64) block<8, Weighted>(rows, b, e, nbr, w, c, o, dim, k);
    for (; k + 16 <= dim; k += 16) block<2, Weighted>(rows, b, e, nbr, w, c, o, dim, k);
    for (; k + 8 <= dim; k += 8) block<1, Weighted>(rows, b, e, nbr, w, c, o, dim, k);
    for (; k < dim; ++k) {
      float a = 0.0f;
      for (int64_t j = b; j < e; ++j) {
        if constexpr (Weighted) {
          a += w[j] * rows[static_cast<size_t>(nbr[j]) * dim + k];
        } else {
          a += rows[static_cast<size_t>(nbr[j]) * dim + k];
        }
      }
      o[k] = Weighted ? a : a * c;
    }
  }
}
}  // namespace

// Adds and multiplies only (nothing contracts into an FMA): the AVX2 clone computes the same bits.
__attribute__((target_clones("avx2", "default"))) void csr_scaled_row_sums(const float* rows, const int64_t* ptr,
                                                                           const uint32_t* nbr, const float* s,
                                                                           float* out, int dim, size_t lo,
                                                                           size_t hi) {
  row_sums<false>(rows, ptr, nbr, nullptr, s, out, dim, lo, hi);
}

__attribute__((target_clones("avx2", "default"))) void csr_weighted_row_sums(const float* rows, const int64_t* ptr,
                                                                             const uint32_t* nbr, const float* w,
                                                                             float* out, int dim, size_t lo,
                                                                             size_t hi) {
  row_sums<true>(rows, ptr, nbr, w, nullptr, out, dim, lo, hi);
}

}  // namespace shardrec::kernels
