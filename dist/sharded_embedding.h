// An embedding table whose rows are spread over ranks by a Sharding. One training step:
//   route()  - ids bucketed by owner, de-duplicated, one all-to-all of ids (counts + ids);
//   gather() - owners return the requested rows (one all-to-all of rows);
//   apply()  - every gradient contribution travels to the row's owner with its order key; the
//              owner sums each row's contributions in key order (the global sample order) and
//              applies the optimizer there. Keys fix the summation order, so the result does not
//              depend on how samples were spread over ranks: bitwise world-size invariance.
// A Routing can be reused for a second gather/apply on the same ids (the MG meta-step).
#pragma once
#include <cstdint>
#include <functional>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "kernels/row_optimizer.h"
#include "base/scratch.h"
#include "base/thread_pool.h"
#include "dist/comm.h"
#include "dist/sharding.h"

namespace shardrec::dist {

struct InitSpec {
  // kNone: rows left at zero, for tables whose values are loaded next (not an option).
  enum class Kind { kNormal, kXavierNormal, kUniform, kNone };
  Kind kind = Kind::kXavierNormal;
  double scale = 0.01;  // std for kNormal, half-width for kUniform
  static Kind parse(const std::string& name);  // normal, xavier_normal, uniform
};

struct Routing {
  std::vector<std::vector<int64_t>> request;  // per owner: unique global ids we asked for (first-seen order)
  std::vector<std::vector<int64_t>> serve;    // per requester: local row indices we serve
  std::vector<uint32_t> slot;                 // ids[k] -> index in its owner's request list
  std::vector<int32_t> owner;                 // ids[k] -> owner rank
  std::vector<int64_t> local;                 // ids[k] -> row index at its owner
  std::vector<uint64_t> incoming;             // per requester: gradient records it will send us
  size_t num_ids = 0;
  bool local_only = false;                    // every id is ours: no collective at all
};

class ShardedEmbedding {
 public:
  // table_key separates the random streams of different tables under one seed.
  ShardedEmbedding(std::string name, uint64_t table_key, int64_t rows, int dim, Sharding sharding,
                   int rank, uint64_t seed, const InitSpec& init, const OptimizerConfig& opt);

  // local_only: the caller guarantees that this rank owns every id (the user table, whose
  // partition is the data's); route, gather and apply then skip their collectives. All ranks
  // must pass the same value.
  Routing route(Comm& comm, std::span<const int64_t> ids, bool local_only = false) const;
  // route() in two halves, so a step's ids can be routed ahead: plan() de-duplicates this rank's
  // ids by owner (no collective); exchange() sends them to their owners, one all-to-all-v.
  // counts[k]: the int64s rank k sends us (exchange_counts at rank k, announced by an earlier
  // gather's `ahead`), or null to exchange them first (one more round).
  void plan(const Comm& comm, std::span<const int64_t> ids, bool local_only, Routing& r) const;  // reuses r's buffers
  void exchange(Comm& comm, Routing& r, const uint64_t* counts = nullptr);
  std::vector<uint64_t> exchange_counts(const Comm& comm, const Routing& r) const;
  // Routing a step ahead with no exchange of its own: after a gather that carried
  // exchange_counts(next) (counts: what each rank sends us), the next exchange of gradient
  // records (apply, reduce) carries next's ids too, and exchange(next, counts) only reads them.
  // Every rank alike. cancel_ahead() drops what was queued or received (a phase that stopped).
  void send_ahead(const Comm& comm, const Routing& next, std::span<const uint64_t> counts);
  void cancel_ahead();
  // out: ids.size() x dim, rows in the order of the routed ids. ahead_send[k] (one uint64 for each
  // rank) travels to rank k with the rows and arrives in ahead_recv (both or neither; every rank
  // alike; not with a local-only routing).
  void gather(Comm& comm, const Routing& r, float* out, const uint64_t* ahead_send = nullptr,
              uint64_t* ahead_recv = nullptr) const;
  // grads: ids.size() x dim, keys: ids.size() order keys (unique per row within a step).
  // Advances the optimizer's step on every rank, touched or not.
  void apply(Comm& comm, const Routing& r, std::span<const uint64_t> keys, const float* grads);
  // The same reduction as apply(), but each touched row's summed gradient goes to
  // visit(local_row, grad) at its owner instead of the optimizer (whose step does not advance):
  // tentative updates (Inverse Gradient's candidates) and stateless steps.
  void reduce(Comm& comm, const Routing& r, std::span<const uint64_t> keys, const float* grads,
              const std::function<void(int64_t, const float*)>& visit);
  // reduce() that also tells each row's number of contributions (occurrences in the step).
  void reduce_counted(Comm& comm, const Routing& r, std::span<const uint64_t> keys, const float* grads,
                      const std::function<void(int64_t, const float*, uint32_t)>& visit);
  // Forgets the optimizer state (a fresh optimizer, step 0): the Inverse Learning reference
  // re-creates its Adam, see core/inverse_gradient.h.
  void reset_optimizer() { opt_ = RowOptimizer(opt_.config(), local_rows_, dim_); }
  // Threads that split gather's copies and the owner's reduce-and-update by rows (null: none).
  // Each row is computed by the same operations on any thread: the same bits for any number.
  void set_pool(ThreadPool* pool) { pool_ = pool; }
  ThreadPool* pool() const { return pool_; }

  const std::string& name() const { return name_; }
  int dim() const { return dim_; }
  int64_t rows() const { return rows_; }
  const Sharding& sharding() const { return sharding_; }
  int64_t local_rows() const { return local_rows_; }
  int rank() const { return rank_; }
  float* local_row(int64_t local) { return &data_[local * dim_]; }
  const float* local_row(int64_t local) const { return &data_[local * dim_]; }
  std::vector<float>& local_data() { return data_; }
  const std::vector<float>& local_data() const { return data_; }
  const RowOptimizer& optimizer() const { return opt_; }
  RowOptimizer& optimizer() { return opt_; }  // checkpoints save and restore its state
  size_t memory_bytes() const { return data_.size() * sizeof(float) + opt_.state_bytes(); }

 private:
  std::string name_;
  int64_t rows_;
  int dim_;
  Sharding sharding_;
  int rank_;
  int64_t local_rows_;
  std::vector<float> data_;
  RowOptimizer opt_;
  struct GradRef {
    int64_t row;
    uint64_t key;
    const float* g;
  };
  // Sends the remote contributions to their owners and appends the records received (checked)
  // to refs_, in rank order. The ids queued by send_ahead travel after the records and are kept
  // in ahead_recv_.
  void send_records(Comm& comm, const Routing& r, std::span<const uint64_t> keys, const float* grads);
  void exchange_ids(Comm& comm, Routing& r, const uint64_t* counts) const;  // one round, or two without counts
  std::vector<std::vector<int64_t>> id_lists(const Comm& comm, const Routing& r) const;  // what exchange sends
  void read_ids(Routing& r, int k, const int64_t* got, uint64_t count) const;  // rank k's requests
  std::vector<std::vector<int64_t>> ahead_send_, ahead_recv_;
  std::vector<uint64_t> ahead_counts_;
  bool ahead_queued_ = false, ahead_arrived_ = false;
  void group_contributions(Comm& comm, const Routing& r, std::span<const uint64_t> keys,
                           const float* grads);
  void group_refs();  // refs_ grouped by row into grouped_, group_start_, group_row_
  void apply_groups();
  uint32_t next_row_gen();  // a fresh stamp for row_gen_
  void sum_group(size_t g, float* out);  // a row's contributions summed in key order
  mutable Scratch<char> send_, recv_;
  ThreadPool* pool_ = nullptr;
  std::vector<GradRef> refs_, grouped_;
  std::vector<uint32_t> ref_group_, group_start_, fill_;
  std::vector<int64_t> group_row_;
  Scratch<float> group_grad_;
  // apply()'s own contributions chained by slot (sample order) without records.
  Scratch<uint32_t> chain_head_, chain_tail_, chain_next_;
  Scratch<int64_t> slot_row_;
  Scratch<uint8_t> slot_mixed_;
  // Requester-side de-duplication: an open-addressing map id -> slot, cleared by generation.
  struct IdSlot {
    int64_t id;
    uint32_t slot, gen;
  };
  mutable std::vector<IdSlot> dedup_;
  mutable uint32_t dedup_gen_ = 0;
  mutable std::vector<uint64_t> own_slot_;  // per local row: (stamp << 32) | slot
  mutable uint32_t own_gen_ = 0;
  // Owner-side grouping of gradient contributions by local row (generation-stamped).
  std::vector<uint32_t> row_gen_, row_group_;
  uint32_t row_gen_now_ = 0;
};

}  // namespace shardrec::dist
