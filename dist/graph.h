// The symmetric-normalised adjacency of a bipartite user-item graph, partitioned with the tables:
//   A = D^-1/2 [[0, R], [R^T, 0]] D^-1/2,  R the (deduplicated) 0/1 interaction matrix,
// a user's edges at the user's owner, an item's at the item's owner. multiply() is one layer of
// propagation, out = A x: every rank sends the rows its neighbours' owners need (its own rows
// pre-scaled by d^-1/2, one all-to-all: the halo) and each output row sums its neighbours in
// ascending id order, then scales by its own d^-1/2. Every row is the same sequence of float
// operations on the same values for any number of ranks or threads, so the result is bitwise
// world-size invariant. A is symmetric, so the backward of a layer is multiply() again.
#pragma once
#include <cstdint>
#include <span>
#include <vector>

#include "base/scratch.h"
#include "base/thread_pool.h"
#include "dist/comm.h"
#include "dist/sharding.h"

namespace shardrec::dist {

class BipartiteGraph {
 public:
  // Collective. ptr/item: this rank's users in local order (users.local_rows(rank) + 1 offsets)
  // and their items' global ids (any order, duplicates allowed: an edge counts once).
  BipartiteGraph(Comm& comm, const Sharding& users, const Sharding& items, std::span<const int64_t> ptr,
                 std::span<const int32_t> item);

  // Collective. x and out: this rank's user rows (local order, dim wide) then its item rows;
  // out must not alias x. pool (optional) splits the rows.
  void multiply(Comm& comm, const float* xu, const float* xi, float* ou, float* oi, int dim,
                ThreadPool* pool = nullptr);

  int64_t local_users() const { return static_cast<int64_t>(su_.size()); }
  int64_t local_items() const { return static_cast<int64_t>(si_.size()); }
  // Edges held here (each interaction once at the user's owner and once at the item's).
  int64_t local_edges() const { return static_cast<int64_t>(u_nbr_.size() + i_nbr_.size()); }
  // Rows this rank receives per multiply from other ranks (the halo), and sends to them.
  int64_t halo_rows_in() const { return halo_in_; }
  int64_t halo_rows_out() const { return halo_out_; }
  // This rank's memory for the graph and one multiply's buffers at `dim`.
  size_t memory_bytes(int dim) const;

 private:
  int world_ = 1, me_ = 0;
  std::vector<float> su_, si_;           // d^-1/2 of local users and items (0 without edges)
  // Edges in CSR form over local rows; a neighbour is an index into the halo buffer of rows.
  std::vector<int64_t> u_ptr_, i_ptr_;
  std::vector<uint32_t> u_nbr_, i_nbr_;
  // Per peer: local item rows and local user rows we serve (in the order the peer asked).
  std::vector<std::vector<int64_t>> serve_items_, serve_users_;
  std::vector<size_t> recv_rows_;  // per peer: rows it sends us (its items, then its users)
  int64_t halo_in_ = 0, halo_out_ = 0;
  Scratch<float> send_, recv_;
};

}  // namespace shardrec::dist
