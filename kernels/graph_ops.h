// Sparse row sums for graph propagation (dist/graph.h): out[r] = s[r] * sum of rows[nbr[e]] for
// e in [ptr[r], ptr[r+1]), each element summed from 0 in e's order, then scaled. The summation
// order is part of the result: any vector width gives the same bits as the scalar loop.
#pragma once
#include <cstddef>
#include <cstdint>

namespace shardrec::kernels {

void csr_scaled_row_sums(const float* rows, const int64_t* ptr, const uint32_t* nbr, const float* s, float* out,
                         int dim, size_t lo, size_t hi);

// Weighted: out[r] = sum of w[e] * rows[nbr[e]] for e in [ptr[r], ptr[r+1]), from 0 in e's order
// (dist/item_graph.h).
void csr_weighted_row_sums(const float* rows, const int64_t* ptr, const uint32_t* nbr, const float* w, float* out,
                           int dim, size_t lo, size_t hi);

}  // namespace shardrec::kernels
