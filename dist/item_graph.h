// A frozen sparse item-item matrix over a sharded item table (FREEDOM's kNN graphs of the item
// modalities): row i at i's owner. multiply() is out = A x, multiply_transposed() out = A^T x (its
// backward); each is one all-to-all of the rows the local rows' terms need (the halo), and each
// output row sums w * x over its terms in ascending neighbour id order, so the result is the
// same float operations on the same values for any number of ranks or threads.
#pragma once
#include <cstdint>
#include <utility>
#include <vector>

#include "base/scratch.h"
#include "base/thread_pool.h"
#include "dist/comm.h"
#include "dist/sharding.h"

namespace shardrec::dist {

// Each local item's k nearest items by the cosine similarity of `features` (this rank's rows in
// local order, F wide) among all items, the item itself included (as FREEDOM's top-k is); ties go
// to the smaller id; each list ascending by id. A zero row has similarity 0 with every item.
// Collective: every rank gathers every item's normalised row (rows x F floats per rank).
std::vector<std::vector<int64_t>> knn_items(Comm& comm, const Sharding& items, const float* features, int F, int k,
                                            ThreadPool* pool = nullptr);

// Per local item: (column id, weight) terms.
using SparseRows = std::vector<std::vector<std::pair<int64_t, float>>>;

class ItemGraph {
 public:
  // Collective. rows: this rank's rows of A (any order; a repeated column's weights are added).
  ItemGraph(Comm& comm, const Sharding& items, const SparseRows& rows);

  // Collective. x, out: this rank's rows (local order, dim wide); out must not alias x.
  void multiply(Comm& comm, const float* x, float* out, int dim, ThreadPool* pool = nullptr) {
    fwd_.apply(comm, x, out, dim, pool);
  }
  void multiply_transposed(Comm& comm, const float* x, float* out, int dim, ThreadPool* pool = nullptr) {
    bwd_.apply(comm, x, out, dim, pool);
  }
  int64_t local_terms() const { return static_cast<int64_t>(fwd_.nbr.size()); }

 private:
  // One product: the local rows' terms over a halo of rows asked of their owners.
  struct Product {
    std::vector<int64_t> ptr;
    std::vector<uint32_t> nbr;  // index into the received halo rows
    std::vector<float> w;
    std::vector<std::vector<int64_t>> serve;  // per peer: our local rows it asked for
    std::vector<size_t> recv_rows;            // per peer: rows it sends us
    Scratch<float> send, recv;
    // rows: per local row, (column id, weight) sorted by id, no repeats.
    void build(Comm& comm, const Sharding& items, const SparseRows& rows);
    void apply(Comm& comm, const float* x, float* out, int dim, ThreadPool* pool);
  };
  Product fwd_, bwd_;
};

}  // namespace shardrec::dist
