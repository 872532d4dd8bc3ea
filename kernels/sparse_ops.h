// CUDA kernels of the sharded embedding step (the GPU side of kernels/embedding_ops.h). Every
// reduction that feeds parameters has one fixed order (sort + segment reduce, no float atomics),
// and the arithmetic mirrors the CPU kernels operation for operation (the CUDA sources build with
// -fmad=false, like the CPU's -ffp-contract=off): dot products keep the CPU's eight partial sums
// and combining tree, row gradients are summed in key order, and the optimizer formulas are the
// same floats. Only expf/log1p differ from glibc by an ulp or two, which is where GPU and CPU
// parameters part (docs/architecture.md, "GPU backend").
#pragma once
#include <cuda_runtime.h>

#include <cstddef>
#include <cstdint>

#include "base/cuda_util.h"
#include "base/kinds.h"
#include "base/rng.h"

namespace shardrec::kernels::cuda {

// Device view of a dist::Sharding.
struct ShardingView {
  ShardingKind kind = ShardingKind::kModulo;
  int world = 1;
  int table_owner = 0;
  int64_t rows = 0;
  const int64_t* bounds = nullptr;  // range: world + 1 bounds on the device
};

// Grow-only device scratch for the kernels below (CUB temporary storage and index arrays), one per
// table, so steps allocate nothing once warm.
struct Workspace {
  shardrec::cuda::DeviceBuffer<char> temp;
  shardrec::cuda::DeviceBuffer<uint32_t> a32, b32, c32, d32;
  shardrec::cuda::DeviceBuffer<uint64_t> a64, b64;
  shardrec::cuda::DeviceBuffer<int64_t> r64a, r64b, r64c;
  shardrec::cuda::DeviceBuffer<float> seg;
  shardrec::cuda::DeviceBuffer<uint32_t> stamp;  // dense Adam: the step that last touched a row
  uint32_t stamp_rows = 0, gen = 0;
};

// Bytes of one gradient record: int64 row, uint64 key, dim floats, padded to 8 bytes.
inline size_t record_bytes(int dim) { return 16 + ((static_cast<size_t>(dim) * 4 + 7) / 8) * 8; }

// owner[i], local[i] and the sort key (owner << 48 | local) of n ids. Ids outside [0, rows)
// set *bad to 1 (the caller reports them).
void owner_local(const int64_t* ids, size_t n, const ShardingView& s, int32_t* owner,
                 int64_t* local, uint64_t* key, int* bad, cudaStream_t st);

// De-duplication by (owner, local): sorts the n keys (with their positions), keeps one entry per
// distinct key in sorted order, and for every id the index of its entry (`slot`).
// uniq_local: local index of each distinct key; uniq_owner_count[k]: distinct keys owned by rank
// k; id_owner_count[k]: ids (duplicates included) owned by k; perm: positions sorted by key
// (stable). Returns the number of distinct keys (synchronises the stream).
size_t route_unique(const uint64_t* key, size_t n, int world, Workspace& ws, uint64_t* sorted_key,
                    uint32_t* perm, uint32_t* slot, int64_t* uniq_local, uint32_t* uniq_owner_count,
                    uint32_t* id_owner_count, cudaStream_t st);

// out[i*dim..] = table[rows[i]*dim..] for i < n.
void gather_rows(const float* table, int dim, const int64_t* rows, size_t n, float* out,
                 cudaStream_t st);
// out[i*dim..] = src[slot[i]*dim..]
void expand_rows(const float* src, int dim, const uint32_t* slot, size_t n, float* out,
                 cudaStream_t st);

// Gradient records bound for the owners, in key-sorted order: for p < n, record p carries
// (local[perm[p]], keys[perm[p]]) and the gradient row perm[p] of grads. Record layout:
// int64 row, uint64 key, dim floats.
void pack_records(const uint32_t* perm, const int64_t* local, const uint64_t* keys,
                  const float* grads, int dim, size_t n, char* out, cudaStream_t st);
// The same records built from per-id arrays in their own order (the local-only user table).
void pack_records_direct(const int64_t* local, const uint64_t* keys, const float* grads, int dim,
                         size_t n, char* out, cudaStream_t st);

struct OptimizerParams {
  // An optimizer step of `kind`, or an Inverse Gradient move (base/kinds.h), with d(g) = -lr * g,
  // or a fresh Adam's first step when fresh_adam (adam_step = lr / (1 - beta1), adam_bc2_sqrt =
  // sqrt(1 - beta2)); kCandidate saves the touched rows and their old values to a CandidateRows.
  OptimizerKind kind = OptimizerKind::kSgd;
  RowMove move = RowMove::kOptimizer;
  bool fresh_adam = false;
  float lr = 0, beta1 = 0, beta2 = 0, eps = 0, weight_decay = 0;
  float adam_step = 0, adam_bc2_sqrt = 1;  // this step's factors (RowOptimizer::begin_step)
};

// Where a candidate reduction (RowMove::kCandidate) leaves the touched rows: their local index, old value and
// d, `count` of them (device int). Capacity: one per record.
struct CandidateRows {
  int64_t* rows = nullptr;
  float* orig = nullptr;
  float* delta = nullptr;
  int* count = nullptr;
};
// Puts the saved rows back (w = orig), or commits them (w = orig + sign * d).
void restore_rows(const CandidateRows& c, int dim, float* w, cudaStream_t st, size_t capacity);
void commit_rows(const CandidateRows& c, int dim, float sign, float* w, cudaStream_t st, size_t capacity);

// The owner's half of apply(): n records received (any order). Groups them by row, sums each
// row's gradients in key order, and applies the optimizer to the row (fused). Dense Adam then
// moves every other row of the shard with a zero gradient.
// m, v: Adam moments (rows x dim), or v = Adagrad's row accumulators; unused ones may be null.
// key_bound: all keys are below it (0 = unknown). When the row and key bits fit in 64 bits
// together, one radix sort on the packed (row, key) replaces the two stable sorts.
void reduce_apply(const char* records, size_t n, int dim, int64_t local_rows, float* w, float* m,
                  float* v, const OptimizerParams& p, Workspace& ws, cudaStream_t st, uint64_t key_bound = 0,
                  const CandidateRows* cand = nullptr);

struct MfParams {
  int dim = 0, per = 2, negs = 1;
  int reg_dim = 0;  // L2 covers the first reg_dim floats of an item vector (VBPR: its embedding); 0: all
  bool bpr = true;
  float inv = 0, reg = 0, l2 = 0;
};
// Forward and backward of MF for n samples: U (n x dim), I (n x per x dim, positive first) ->
// gU, gI (the gradients of scale * loss, pre-scaled into inv and reg) and loss[i], the sample's
// unscaled loss in double. Mirrors the CPU loop of MFModel::pass term by term.
void mf_forward_backward(const float* U, const float* I, size_t n, const MfParams& p, float* gU,
                         float* gI, double* loss, cudaStream_t st);

// ---- The epoch's samples, drawn on the device with the functions the CPU trainer draws with
// (base/rng.h's Permutation, base/sampling.h), so both backends train on identical batches.
// pos[r] = perm(row_lo + r) and row[r] = r for r < n, then both sorted by pos (the epoch's order of
// this rank's rows); bounds[s] = first index whose pos >= s * batch, for s = 0..steps.
void epoch_order(const Permutation& perm, int64_t row_lo, size_t n, int64_t batch, int64_t steps, Workspace& ws,
                 uint64_t* pos_sorted, uint32_t* row_sorted, int64_t* bounds, cudaStream_t st);

struct SampleParams {
  uint64_t neg_base = 0;  // hash64(seed, 0x4e67, epoch), as the CPU sampler's
  int64_t num_items = 0;
  int negatives = 1;
  int64_t row_lo = 0, user_lo = 0;
};
// The batch of samples [begin, begin + n) of the epoch order: user ids, items (positive, then the
// negatives), order keys and the samples' dataset rows. A user who has seen every item sets
// *failed_row to that sample's dataset row.
void build_batch(const uint64_t* pos_sorted, const uint32_t* row_sorted, size_t begin, size_t n,
                 const int64_t* ptr, const int32_t* item, const int32_t* row_user, const SampleParams& p,
                 int64_t* uid, int64_t* iid, uint64_t* ukey, uint64_t* ikey, int64_t* grow, int64_t* failed_row,
                 cudaStream_t st);

// Sampler::unlabeled on the device, the same draws: for each of n rows (dataset
// row grow[i], local user user[i] of the rank's CSR ptr/item), iid[i * per + 1 + k] for k < per - 1.
// A user who has rated every item sets *failed_row to that row.
void draw_unlabeled(const int64_t* grow, const int32_t* user, size_t n, int per, const int64_t* ptr, const int32_t* item,
                    int64_t n_items, uint64_t seed, int epoch, int64_t* iid, int64_t* failed_row, cudaStream_t st);

// Evaluation: for each of nu users, the top k of `ni` items by (score desc, item id asc), with
// score = dot(user, item) bit-identical to kernels::dot. items: ni x dim, ids: their global ids.
// exclude_ptr/exclude_ids: per user, sorted global ids that must not be ranked (CSR, nu + 1
// offsets). Outputs nu x k (score, id); missing entries get id -1.
void score_topk(const float* users, size_t nu, const float* items, const int64_t* ids, size_t ni,
                int dim, const int64_t* exclude_ptr, const int64_t* exclude_ids, int k,
                float* top_score, int64_t* top_id, cudaStream_t st);

}  // namespace shardrec::kernels::cuda
