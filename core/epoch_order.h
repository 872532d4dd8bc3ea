// This rank's samples of one pass over m rows in a seeded order: a row's position is perm(index),
// step s holds positions [s*B, (s+1)*B), and each step's samples come in position order. A counting
// sort in two passes over the permutation groups them by step: evaluating it twice is cheaper than
// holding every row's position (measured). The order holds 8 bytes a row (position within the
// step, row); a step's users are looked up when it is taken, from the user of every 64th row.
// Every epoch (and Inverse Gradient's phases) comes from it, so every rank sees its part of the
// same global order.
#pragma once
#include <cstdint>
#include <functional>
#include <span>
#include <vector>

#include "base/rng.h"
#include "base/thread_pool.h"
#include "core/model.h"
#include "core/sampler.h"
#include "core/step_engine.h"
#include "io/dataset.h"

namespace shardrec {

struct LocalSample {
  uint32_t off;   // position in the global order, minus the step's first position
  uint32_t row;   // index in this rank's training slice
  uint32_t user;  // user index within this rank's users
};

class EpochOrder {
 public:
  // rows(k), index(k) for k < count: the local training row of the pass's k-th local sample (rising)
  // and its index among the pass's m rows (the permutation's argument).
  template <class Rows, class Index>
  // pool: threads that split the two passes (the same order for any number).
  EpochOrder(const Permutation& perm, int64_t batch, const io::UserSlice& tr, size_t count, Rows rows, Index index,
             ThreadPool* pool = nullptr);

  int64_t steps() const { return static_cast<int64_t>(start_.size()) - 1; }
  // Step s's samples, sorted by position. The span stays valid until step(s + 2) is taken (two
  // buffers in turn: a step and the one after it are held together).
  std::span<const LocalSample> step(int64_t s);

 private:
  struct Entry {
    uint32_t off;  // position in the global order, minus the step's first position
    uint32_t row;  // index in this rank's training slice
  };
  static constexpr int kBlockBits = 6;
  std::vector<int64_t> start_;  // steps() + 1 bounds into order_
  std::vector<Entry> order_;
  uint32_t batch_ = 0;
  const int64_t* ptr_ = nullptr;        // the slice's user offsets
  std::vector<uint32_t> block_user_;    // the user of row b << kBlockBits
  std::vector<uint32_t> by_off_;        // a full step's rows placed by position (step())
  std::vector<uint8_t> here_;
  std::vector<LocalSample> taken_[2];   // the steps handed out, in turn
};

template <class Rows, class Index>
EpochOrder::EpochOrder(const Permutation& perm, int64_t batch, const io::UserSlice& tr, size_t count, Rows rows,
                       Index index, ThreadPool* pool) {
  const uint64_t B = static_cast<uint64_t>(batch);
  batch_ = static_cast<uint32_t>(batch);
  const int64_t S = static_cast<int64_t>((perm.size() + B - 1) / B);
  // Each thread counts, then fills, its own range of the samples; where in its step a sample
  // lands does not matter, since step() puts a step's samples in position order.
  const int T = pool ? pool->size() : 1;
  std::vector<std::vector<int64_t>> cnt(T, std::vector<int64_t>(S + 1, 0));
  parallel(pool, count, [&](size_t lo, size_t hi, int t) {
    int64_t* c = cnt[t].data();
    for (size_t k = lo; k < hi; ++k) ++c[perm(static_cast<uint64_t>(index(k))) / B];
  });
  start_.assign(S + 1, 0);
  for (int64_t s = 0; s < S; ++s) {
    int64_t at = start_[s];
    for (int t = 0; t < T; ++t) {  // counts -> each thread's first slot in step s
      const int64_t c = cnt[t][s];
      cnt[t][s] = at;
      at += c;
    }
    start_[s + 1] = at;
  }
  order_.resize(count);
  parallel(pool, count, [&](size_t lo, size_t hi, int t) {
    int64_t* fill = cnt[t].data();
    for (size_t k = lo; k < hi; ++k) {
      const uint64_t pos = perm(static_cast<uint64_t>(index(k)));
      order_[fill[pos / B]++] = {static_cast<uint32_t>(pos % B), rows(k)};
    }
  });
  ptr_ = tr.ptr.data();
  const int64_t nrows = tr.rows();
  block_user_.resize(static_cast<size_t>((nrows >> kBlockBits) + 1));
  uint32_t user = 0;
  for (size_t b = 0; b < block_user_.size(); ++b) {
    const int64_t r = static_cast<int64_t>(b) << kBlockBits;
    while (user + 1 < tr.ptr.size() - 1 && r >= tr.ptr[user + 1]) ++user;
    block_user_[b] = user;
  }
}

}  // namespace shardrec

namespace shardrec {

// The steps of phase r from r.first on, on the host: fn(step, samples, global_n) for each, then
// r.after_step; false when after_step stopped the phase. (CUDA engines that order on the device
// reproduce the same steps.)
bool run_steps(const PhaseRun& r, const io::UserSlice& tr,
               const std::function<void(int64_t, std::span<const LocalSample>, int64_t)>& fn);

// run_steps() that also shows each step the one after it (null for the phase's last), whose
// batch can be built and routed ahead: batches are pure functions of the phase.
struct StepView {
  int64_t step = 0;
  std::span<const LocalSample> samples;
  int64_t global_n = 0;
};
bool run_steps_ahead(const PhaseRun& r, const io::UserSlice& tr,
                     const std::function<void(const StepView&, const StepView*)>& fn, ThreadPool* pool = nullptr);

// One step's batch on the host: users with order keys, item slots (own item, then the draws)
// with keys, labels and dataset rows.
struct HostBatch {
  std::vector<int64_t> uid, iid, row;
  std::vector<uint64_t> ukey, ikey;
  std::vector<uint8_t> lab;
  std::vector<int32_t> ulocal;  // the samples' users within this rank's users
  std::vector<const int32_t*> seen;  // the samples' users' training items (host negatives)
  std::vector<int64_t> seen_cnt;
  StepBatch b;
  // sampler null: the draw slots are left to the device (only slot 0 of each sample is set).
  // pool: threads that split the samples (the same batch for any number).
  void build(const PhaseRun& r, int64_t step, std::span<const LocalSample> s, int64_t global_n,
             const io::UserSlice& tr, const uint8_t* labels, const Sampler* sampler, DrawKind kind, int rank,
             ThreadPool* pool = nullptr);
};

}  // namespace shardrec
