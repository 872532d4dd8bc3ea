// The GPU twin of dist::ShardedEmbedding: the shard's rows and optimizer state live in device
// memory, and route/gather/apply run as CUDA kernels (kernels/sparse_ops.h) with the exchanges on
// device buffers through a dist::Comm (dist/cuda_comm.h: NCCL, or staged through the host).
// Same contract as the CPU table: requests are de-duplicated (sort + unique), every gradient
// contribution travels to its row's owner with its order key, and the owner sums each row's
// contributions in key order before the fused optimizer step, so the result does not depend on
// the number of ranks.
#pragma once
#include <cuda_runtime.h>

#include <cstdint>
#include <vector>

#include "kernels/row_optimizer.h"
#include "dist/comm.h"
#include "dist/sharded_embedding.h"
#include "base/cuda_util.h"
#include "kernels/sparse_ops.h"

namespace shardrec::dist {

struct DeviceRouting {
  size_t num_ids = 0;
  bool direct = false;  // every id is ours (local-only table, or one rank): no exchange
  shardrec::cuda::DeviceBuffer<int32_t> owner;
  shardrec::cuda::DeviceBuffer<int64_t> local;
  shardrec::cuda::DeviceBuffer<uint64_t> key, sorted_key;
  shardrec::cuda::DeviceBuffer<uint32_t> perm, slot, counts;
  shardrec::cuda::DeviceBuffer<int64_t> uniq_local, serve;
  std::vector<uint64_t> uniq_count, id_count;      // what we ask each owner for
  std::vector<uint64_t> serve_count, incoming;     // what each requester asks of us
};

class DeviceEmbedding {
 public:
  // Uploads the host table's rows; the optimizer state starts fresh (as the host's does).
  DeviceEmbedding(const ShardedEmbedding& host, cudaStream_t stream);

  // ids: device pointer to n global ids. local_only as in ShardedEmbedding::route.
  void route(Comm& comm, const int64_t* ids, size_t n, bool local_only, DeviceRouting& r);
  void gather(Comm& comm, const DeviceRouting& r, float* out);  // out: device, n x dim
  // keys, grads: device pointers (n keys, n x dim gradients). key_bound: every key (on every
  // rank) is below it, 0 if unknown; a known bound lets the owner sort once instead of twice.
  void apply(Comm& comm, const DeviceRouting& r, const uint64_t* keys, const float* grads, uint64_t key_bound = 0);
  // Copies the rows back into the host table (for evaluation and export).
  void download(ShardedEmbedding& host) const;

  // The Inverse Gradient meta-step (core/inverse_gradient.h, ig::TentativeRows on the host tables):
  // reduces grads at the owners like apply(), computes each touched row's candidate move d and
  // gathers the d rows of the batch's ids into d_out (device, n x dim); the table is unchanged.
  void candidate(Comm& comm, const DeviceRouting& r, const uint64_t* keys, const float* grads, float lr,
                 bool fresh_adam, float* d_out);
  // Moves the last candidate's touched rows to w + sign * d (sign +1 or -1).
  void commit_candidate(float sign);
  // A stateless step w += d(g) on the touched rows (the reference's re-created Adam).
  void fresh_step(Comm& comm, const DeviceRouting& r, const uint64_t* keys, const float* grads, float lr);
  // A fresh optimizer (moments, accumulators and step counter), as ShardedEmbedding::reset_optimizer.
  void reset_optimizer();
  // The whole training state, for checkpoints (io/checkpoint.h reads and restores the host
  // table): the rows, the optimizer state (Adam's m and v, or Adagrad's row accumulators; the
  // host's layout) and the optimizer's step counter, which sets Adam's bias corrections.
  void download_state(ShardedEmbedding& host) const;
  // After a checkpoint was loaded into the host table: continue from its state on the device.
  void upload_state(const ShardedEmbedding& host);

  int dim() const { return dim_; }
  int64_t local_rows() const { return local_rows_; }
  const float* rows() const { return w_.data(); }
  size_t memory_bytes() const;

 private:
  // apply()'s exchange and owner-side reduction with optimizer parameters p; save_candidate keeps
  // the touched rows for commit_candidate (RowMove::kCandidate).
  void reduce(Comm& comm, const DeviceRouting& r, const uint64_t* keys, const float* grads,
              const shardrec::kernels::cuda::OptimizerParams& p, uint64_t key_bound, bool save_candidate);
  shardrec::kernels::cuda::CandidateRows saved_candidate();
  shardrec::kernels::cuda::OptimizerParams candidate_params(RowMove move, float lr, bool fresh_adam) const;

  std::string name_;
  int dim_;
  int64_t rows_, local_rows_;
  int rank_;
  Sharding sharding_;
  cudaStream_t st_;
  RowOptimizer host_opt_;  // the step counter and this step's Adam factors, as on the CPU
  shardrec::cuda::DeviceBuffer<float> w_, m_, v_;
  shardrec::cuda::DeviceBuffer<int64_t> bounds_;
  shardrec::cuda::DeviceBuffer<int> bad_;
  shardrec::cuda::DeviceBuffer<float> send_rows_, recv_rows_;
  shardrec::cuda::DeviceBuffer<char> send_rec_, recv_rec_;
  shardrec::kernels::cuda::Workspace ws_;
  shardrec::cuda::PinnedBuffer<uint32_t> host_counts_;
  // The last candidate's touched rows (capacity: records received).
  shardrec::cuda::DeviceBuffer<int64_t> cand_rows_;
  shardrec::cuda::DeviceBuffer<float> cand_orig_, cand_delta_;
  shardrec::cuda::DeviceBuffer<int> cand_count_;
  size_t cand_cap_ = 0;
};

}  // namespace shardrec::dist
