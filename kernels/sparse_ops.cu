#include "kernels/sparse_ops.h"

#include <cub/cub.cuh>

#include <cfloat>
#include <cmath>

#include "base/math.h"
#include "base/rng.h"
#include "base/sampling.h"

namespace shardrec::kernels::cuda {

namespace {

constexpr int kThreads = 256;
inline unsigned blocks_for(size_t n, int per_block = kThreads) {
  return static_cast<unsigned>((n + per_block - 1) / per_block);
}
int bits_for(uint64_t max_value) {  // bits needed to hold values up to max_value
  int b = 1;
  while (b < 64 && (max_value >> b) != 0) ++b;
  return b;
}

__global__ void owner_local_k(const int64_t* ids, size_t n, ShardingView s, int32_t* owner,
                              int64_t* local, uint64_t* key, int* bad) {
  const size_t i = blockIdx.x * static_cast<size_t>(blockDim.x) + threadIdx.x;
  if (i >= n) return;
  const int64_t id = ids[i];
  if (id < 0 || id >= s.rows) {
    *bad = 1;
    owner[i] = 0;
    local[i] = 0;
    key[i] = 0;
    return;
  }
  int o;
  int64_t l;
  if (s.kind == ShardingKind::kModulo) {
    o = static_cast<int>(id % s.world);
    l = id / s.world;
  } else if (s.kind == ShardingKind::kTable) {
    o = s.table_owner;
    l = id;
  } else {  // range: the number of inner bounds at or below id (upper_bound, as the CPU)
    int lo = 0, hi = s.world - 1;
    while (lo < hi) {
      const int mid = (lo + hi) / 2;
      if (s.bounds[1 + mid] <= id) lo = mid + 1; else hi = mid;
    }
    o = lo;
    l = id - s.bounds[o];
  }
  owner[i] = o;
  local[i] = l;
  key[i] = (static_cast<uint64_t>(o) << 48) | static_cast<uint64_t>(l);
}

__global__ void iota_k(uint32_t* v, size_t n) {
  const size_t i = blockIdx.x * static_cast<size_t>(blockDim.x) + threadIdx.x;
  if (i < n) v[i] = static_cast<uint32_t>(i);
}

__global__ void head_k(const uint64_t* sk, size_t n, uint32_t* head) {
  const size_t p = blockIdx.x * static_cast<size_t>(blockDim.x) + threadIdx.x;
  if (p < n) head[p] = (p == 0 || sk[p] != sk[p - 1]) ? 1u : 0u;
}

__global__ void slots_k(const uint64_t* sk, const uint32_t* perm, const uint32_t* head,
                        const uint32_t* scan, size_t n, uint32_t* slot, int64_t* uniq_local,
                        uint32_t* uniq_owner_count, uint32_t* id_owner_count) {
  const size_t p = blockIdx.x * static_cast<size_t>(blockDim.x) + threadIdx.x;
  if (p >= n) return;
  const uint32_t u = scan[p] - 1;
  slot[perm[p]] = u;
  const int o = static_cast<int>(sk[p] >> 48);
  atomicAdd(&id_owner_count[o], 1u);  // integer counts: exact in any order
  if (head[p]) {
    uniq_local[u] = static_cast<int64_t>(sk[p] & ((uint64_t{1} << 48) - 1));
    atomicAdd(&uniq_owner_count[o], 1u);
  }
}

__global__ void gather_rows_k(const float* table, int dim, const int64_t* rows, size_t n, float* out) {
  const size_t t = blockIdx.x * static_cast<size_t>(blockDim.x) + threadIdx.x;
  if (t >= n * dim) return;
  const size_t i = t / dim, c = t % dim;
  out[t] = table[rows[i] * dim + c];
}

__global__ void expand_rows_k(const float* src, int dim, const uint32_t* slot, size_t n, float* out) {
  const size_t t = blockIdx.x * static_cast<size_t>(blockDim.x) + threadIdx.x;
  if (t >= n * dim) return;
  const size_t i = t / dim, c = t % dim;
  out[t] = src[static_cast<size_t>(slot[i]) * dim + c];
}

// One warp per record: lane 0 writes the header, the lanes copy the row.
__global__ void pack_k(const uint32_t* perm, const int64_t* local, const uint64_t* keys,
                       const float* grads, int dim, size_t n, char* out, size_t rec) {
  const size_t w = (blockIdx.x * static_cast<size_t>(blockDim.x) + threadIdx.x) / 32;
  const int lane = threadIdx.x % 32;
  if (w >= n) return;
  const size_t i = perm ? perm[w] : w;
  char* r = out + w * rec;
  if (lane == 0) {
    reinterpret_cast<int64_t*>(r)[0] = local[i];
    reinterpret_cast<uint64_t*>(r)[1] = keys[i];
  }
  float* g = reinterpret_cast<float*>(r + 16);
  for (int c = lane; c < dim; c += 32) g[c] = grads[i * dim + c];
}

__global__ void unpack_k(const char* rec_base, size_t n, size_t rec, int64_t* rows, uint64_t* keys) {
  const size_t i = blockIdx.x * static_cast<size_t>(blockDim.x) + threadIdx.x;
  if (i >= n) return;
  const char* r = rec_base + i * rec;
  rows[i] = reinterpret_cast<const int64_t*>(r)[0];
  keys[i] = reinterpret_cast<const uint64_t*>(r)[1];
}

__global__ void pack_row_key_k(const int64_t* rows, uint64_t* keys, size_t n, int key_bits) {
  const size_t i = blockIdx.x * static_cast<size_t>(blockDim.x) + threadIdx.x;
  if (i < n) keys[i] = (static_cast<uint64_t>(rows[i]) << key_bits) | keys[i];
}
__global__ void unpack_row_k(const uint64_t* packed, size_t n, int key_bits, int64_t* rows) {
  const size_t i = blockIdx.x * static_cast<size_t>(blockDim.x) + threadIdx.x;
  if (i < n) rows[i] = static_cast<int64_t>(key_bits < 64 ? packed[i] >> key_bits : 0);
}

__global__ void permute_rows_k(const int64_t* rows, const uint32_t* idx, size_t n, int64_t* out) {
  const size_t i = blockIdx.x * static_cast<size_t>(blockDim.x) + threadIdx.x;
  if (i < n) out[i] = rows[idx[i]];
}

__device__ __forceinline__ hd::AdamStep adam_of(const OptimizerParams& p) {
  return {p.beta1, p.beta2, p.eps, p.weight_decay, p.adam_step, p.adam_bc2_sqrt};
}

// ig::CandidateStep::delta's d(g).
__device__ __forceinline__ float candidate_delta(float g, const OptimizerParams& p) {
  return p.fresh_adam ? hd::fresh_adam_delta(g, adam_of(p)) : -p.lr * g;
}

__global__ void candidate_rows_k(CandidateRows c, int dim, float sign, bool commit, float* w, size_t cap) {
  const size_t t = blockIdx.x * static_cast<size_t>(blockDim.x) + threadIdx.x;
  const size_t s = t / dim;
  if (s >= cap || s >= static_cast<size_t>(*c.count)) return;
  const int j = static_cast<int>(t % dim);
  float* wr = w + c.rows[s] * dim;
  wr[j] = commit ? c.orig[s * dim + j] + sign * c.delta[s * dim + j] : c.orig[s * dim + j];
}

// One warp per touched row: the row's gradient is the sum of its records in key order (the first
// record copied, the next ones added, as the CPU), then the optimizer step on that row.
__global__ void reduce_apply_k(const char* rec_base, size_t rec, const uint32_t* order,
                               const int64_t* uniq_rows, const uint32_t* counts, const uint32_t* offsets,
                               const int* num_runs, int dim, float* w, float* m, float* v,
                               OptimizerParams p, float* seg, uint32_t* stamp, uint32_t gen,
                               CandidateRows cand) {
  const size_t s = (blockIdx.x * static_cast<size_t>(blockDim.x) + threadIdx.x) / 32;
  const int lane = threadIdx.x % 32;
  if (s >= static_cast<size_t>(*num_runs)) return;
  const int64_t row = uniq_rows[s];
  const uint32_t off = offsets[s], cnt = counts[s];
  float* gs = seg + s * dim;
  for (int c = lane; c < dim; c += 32) {
    float g = reinterpret_cast<const float*>(rec_base + order[off] * rec + 16)[c];
    for (uint32_t k = 1; k < cnt; ++k)
      g += reinterpret_cast<const float*>(rec_base + order[off + k] * rec + 16)[c];
    gs[c] = g;
  }
  __syncwarp();
  float* wr = w + row * dim;
  if (p.move != RowMove::kOptimizer) {
    const bool cand_move = p.move == RowMove::kCandidate;
    if (cand_move && s == 0 && lane == 0) *cand.count = *num_runs;
    for (int c = lane; c < dim; c += 32) {
      const float d = candidate_delta(gs[c], p);
      if (!cand_move) {
        wr[c] += d;
      } else {
        cand.orig[s * dim + c] = wr[c];
        cand.delta[s * dim + c] = d;
        wr[c] = d;
      }
    }
    if (cand_move && lane == 0) cand.rows[s] = row;
    return;
  }
  switch (p.kind) {
    case OptimizerKind::kSgd:
      for (int c = lane; c < dim; c += 32) {
        if (p.weight_decay == 0.0f) wr[c] -= p.lr * gs[c];
        else wr[c] -= p.lr * (gs[c] + p.weight_decay * wr[c]);
      }
      break;
    case OptimizerKind::kAdagrad: {
      float scale = 0;
      if (lane == 0) {
        float g2 = 0.0f;
        for (int c = 0; c < dim; ++c) {
          const float g = gs[c] + p.weight_decay * wr[c];
          g2 += g * g;
        }
        float a = v[row];
        a += g2 / static_cast<float>(dim);
        v[row] = a;
        scale = p.lr / (sqrtf(a) + p.eps);
      }
      scale = __shfl_sync(0xffffffffu, scale, 0);
      for (int c = lane; c < dim; c += 32) wr[c] -= scale * (gs[c] + p.weight_decay * wr[c]);
      break;
    }
    default: {
      float* mr = m + row * dim;
      float* vr = v + row * dim;
      const hd::AdamStep a = adam_of(p);
      for (int c = lane; c < dim; c += 32) hd::adam(wr[c], mr[c], vr[c], gs[c], a);
      if (p.kind == OptimizerKind::kAdamDense && lane == 0) stamp[row] = gen;
    }
  }
}

// Dense Adam: rows no record touched this step move with a zero gradient.
__global__ void dense_rest_k(int64_t rows, int dim, float* w, float* m, float* v, OptimizerParams p,
                             const uint32_t* stamp, uint32_t gen) {
  const size_t t = blockIdx.x * static_cast<size_t>(blockDim.x) + threadIdx.x;
  if (t >= static_cast<size_t>(rows) * dim) return;
  if (stamp[t / dim] == gen) return;
  hd::adam(w[t], m[t], v[t], 0.0f, adam_of(p));
}

// ---- MF forward/backward: eight lanes per sample, lane l owns the elements q = l (mod 8), as the
// CPU dot's partial sum l does; the partials combine in the CPU's tree.
__device__ __forceinline__ float dot8(const float* a, const float* b, int d, int l) {
  float s = 0.0f;
  for (int q = l; q < d; q += 8) s += a[q] * b[q];
  // ((p0+p4)+(p1+p5)) + ((p2+p6)+(p3+p7)); a + b == b + a, so every lane ends with the same bits.
  s = s + __shfl_xor_sync(0xffffffffu, s, 4, 8);
  s = s + __shfl_xor_sync(0xffffffffu, s, 1, 8);
  s = s + __shfl_xor_sync(0xffffffffu, s, 2, 8);
  return s;
}

__global__ void mf_fb_k(const float* U, const float* I, size_t n, MfParams p, float* gU, float* gI,
                        double* loss_out) {
  const size_t g = (blockIdx.x * static_cast<size_t>(blockDim.x) + threadIdx.x) / 8;
  const int l = threadIdx.x % 8;
  const bool live = g < n;
  const size_t i = live ? g : n - 1;  // idle groups still join the shuffles
  const int d = p.dim, per = p.per;
  const float* u = U + i * d;
  const float* ip = I + i * per * d;
  float* gu = gU + i * d;
  float* gip = gI + i * per * d;
  if (live) {
    for (int q = l; q < d; q += 8) gu[q] = 0.0f;
    for (int q = l; q < per * d; q += 8) gip[q] = 0.0f;
  }
  __syncwarp();
  double loss = 0;
  const float sp = dot8(u, ip, d, l);
  if (p.bpr) {
    for (int k = 0; k < p.negs; ++k) {
      const float* jn = ip + (1 + k) * d;
      float* gjn = gip + (1 + k) * d;
      const float x = sp - dot8(u, jn, d, l);
      loss += hd::softplus(-static_cast<double>(x));
      const float c = -hd::sigmoid(-x) * p.inv;
      if (live)
        for (int q = l; q < d; q += 8) {
          gu[q] += c * (ip[q] - jn[q]);
          gip[q] += c * u[q];
          gjn[q] -= c * u[q];
        }
    }
  } else {
    for (int k = 0; k < per; ++k) {
      const float* it = ip + k * d;
      float* git = gip + k * d;
      const float y = k == 0 ? sp : dot8(u, it, d, l);
      const float t = k == 0 ? 1.0f : 0.0f;
      loss += hd::softplus(static_cast<double>(y)) - t * y;
      const float c = (hd::sigmoid(y) - t) * p.inv;
      if (live)
        for (int q = l; q < d; q += 8) {
          gu[q] += c * it[q];
          git[q] += c * u[q];
        }
    }
  }
  if (p.l2 > 0) {
    const int rd = p.reg_dim > 0 ? p.reg_dim : d;
    double r = dot8(u, u, d, l);
    for (int k = 0; k < per; ++k) r += dot8(ip + k * d, ip + k * d, rd, l);
    loss += 0.5 * p.l2 * r * (p.bpr ? p.negs : per);
    if (live) {
      for (int q = l; q < d; q += 8) gu[q] += p.reg * u[q];
      for (int k = 0; k < per; ++k)
        for (int q = l; q < rd; q += 8) gip[k * d + q] += p.reg * ip[k * d + q];
    }
  }
  if (live && l == 0) loss_out[i] = loss;
}

// ---- Evaluation: one block per user; scores with the CPU dot's own order, then k rounds of a
// block-wide arg-max by (score desc, id asc) over the unchosen, unexcluded items.
__device__ float dot_serial(const float* a, const float* b, int n) {
  float p[8] = {0, 0, 0, 0, 0, 0, 0, 0};
  int i = 0;
  for (; i + 8 <= n; i += 8)
    for (int l = 0; l < 8; ++l) p[l] += a[i + l] * b[i + l];
  for (int l = 0; i < n; ++i, ++l) p[l] += a[i] * b[i];
  return ((p[0] + p[4]) + (p[1] + p[5])) + ((p[2] + p[6]) + (p[3] + p[7]));
}
__device__ __forceinline__ bool better(float sa, int64_t ia, float sb, int64_t ib) {
  if (ib < 0) return ia >= 0;
  if (ia < 0) return false;
  return sa > sb || (sa == sb && ia < ib);
}
__global__ void score_k(const float* users, size_t nu, const float* items, const int64_t* ids, size_t ni,
                        int dim, const int64_t* ex_ptr, const int64_t* ex_ids, float* scores,
                        int64_t* sid) {
  const size_t t = blockIdx.x * static_cast<size_t>(blockDim.x) + threadIdx.x;
  if (t >= nu * ni) return;
  const size_t u = t / ni, j = t % ni;
  const int64_t id = ids[j];
  scores[t] = dot_serial(users + u * dim, items + j * dim, dim);
  const int64_t lo = ex_ptr[u], hi = ex_ptr[u + 1];
  bool skip = false;
  if (hi > lo) {
    int64_t a = lo, b = hi;
    while (a < b) {
      const int64_t mid = (a + b) / 2;
      if (ex_ids[mid] < id) a = mid + 1; else b = mid;
    }
    skip = a < hi && ex_ids[a] == id;
  }
  sid[t] = skip ? -1 : id;
}

__global__ void topk_k(float* scores, int64_t* sid, size_t ni, int k, float* top_score, int64_t* top_id) {
  const size_t u = blockIdx.x;
  float* s = scores + u * ni;
  int64_t* id = sid + u * ni;
  __shared__ float bs[kThreads];
  __shared__ int64_t bi[kThreads];
  __shared__ size_t bp[kThreads];
  for (int r = 0; r < k; ++r) {
    float best_s = -FLT_MAX;
    int64_t best_i = -1;
    size_t best_p = 0;
    for (size_t j = threadIdx.x; j < ni; j += blockDim.x)
      if (better(s[j], id[j], best_s, best_i)) { best_s = s[j]; best_i = id[j]; best_p = j; }
    bs[threadIdx.x] = best_s;
    bi[threadIdx.x] = best_i;
    bp[threadIdx.x] = best_p;
    __syncthreads();
    for (int h = blockDim.x / 2; h > 0; h /= 2) {
      if (threadIdx.x < h && better(bs[threadIdx.x + h], bi[threadIdx.x + h], bs[threadIdx.x], bi[threadIdx.x])) {
        bs[threadIdx.x] = bs[threadIdx.x + h];
        bi[threadIdx.x] = bi[threadIdx.x + h];
        bp[threadIdx.x] = bp[threadIdx.x + h];
      }
      __syncthreads();
    }
    if (threadIdx.x == 0) {
      top_score[u * k + r] = bi[0] >= 0 ? bs[0] : 0.0f;
      top_id[u * k + r] = bi[0];
      if (bi[0] >= 0) id[bp[0]] = -1;  // chosen: out of the next rounds
    }
    __syncthreads();
  }
}

// ---- Epoch order and batches (the CPU's core/rng.h and Trainer::sample_negative, on the device).
__global__ void positions_k(Permutation p, int64_t row_lo, size_t n, uint64_t* pos, uint32_t* row) {
  const size_t r = blockIdx.x * static_cast<size_t>(blockDim.x) + threadIdx.x;
  if (r >= n) return;
  pos[r] = p(static_cast<uint64_t>(row_lo) + r);
  row[r] = static_cast<uint32_t>(r);
}

__global__ void bounds_k(const uint64_t* pos, size_t n, int64_t batch, int64_t steps, int64_t* bounds) {
  const int64_t s = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x;
  if (s > steps) return;
  const uint64_t target = static_cast<uint64_t>(s) * static_cast<uint64_t>(batch);
  size_t lo = 0, hi = n;
  while (lo < hi) {
    const size_t mid = (lo + hi) / 2;
    if (pos[mid] < target) lo = mid + 1; else hi = mid;
  }
  bounds[s] = static_cast<int64_t>(lo);
}

__global__ void unlabeled_k(const int64_t* grow, const int32_t* user, size_t n, int per, const int64_t* ptr,
                            const int32_t* item, int64_t n_items, uint64_t seed, uint64_t epoch, int64_t* iid,
                            int64_t* failed_row) {
  const size_t t = blockIdx.x * static_cast<size_t>(blockDim.x) + threadIdx.x;
  if (t >= n * (per - 1)) return;
  const size_t i = t / (per - 1);
  const int k = static_cast<int>(t % (per - 1));
  const int32_t u = user[i];
  bool failed = false;
  iid[i * per + 1 + k] = sampling::unlabeled(seed, epoch, grow[i], k, item + ptr[u], ptr[u + 1] - ptr[u], n_items, &failed);
  if (failed) *failed_row = grow[i];
}

__global__ void batch_k(const uint64_t* pos_sorted, const uint32_t* row_sorted, size_t begin, size_t n,
                        const int64_t* ptr, const int32_t* item, const int32_t* row_user, SampleParams p,
                        int64_t* uid, int64_t* iid, uint64_t* ukey, uint64_t* ikey, int64_t* grow, int64_t* failed_row) {
  const size_t i = blockIdx.x * static_cast<size_t>(blockDim.x) + threadIdx.x;
  if (i >= n) return;
  const uint64_t pos = pos_sorted[begin + i];
  const uint32_t r = row_sorted[begin + i];
  const int32_t u = row_user[r];
  const int per = 1 + p.negatives;
  const int64_t g = p.row_lo + r;
  uid[i] = p.user_lo + u;
  ukey[i] = pos;
  grow[i] = g;
  iid[i * per] = item[r];
  const int32_t* seen = item + ptr[u];
  const int64_t cnt = ptr[u + 1] - ptr[u];
  for (int k = 0; k < p.negatives; ++k) {
    bool failed = false;
    iid[i * per + 1 + k] = sampling::negative(p.neg_base, g, k, seen, cnt, p.num_items, &failed);
    if (failed) *failed_row = g;
  }
  for (int k = 0; k < per; ++k) ikey[i * per + k] = pos * per + k;
}

#define CK(call) SHARDREC_CUDA_CHECK(call)

}  // namespace

void epoch_order(const Permutation& perm, int64_t row_lo, size_t n, int64_t batch, int64_t steps, Workspace& ws,
                 uint64_t* pos_sorted, uint32_t* row_sorted, int64_t* bounds, cudaStream_t st) {
  if (n > 0) {
    uint64_t* pos = ws.a64.get(n);
    uint32_t* row = ws.a32.get(n);
    positions_k<<<blocks_for(n), kThreads, 0, st>>>(perm, row_lo, n, pos, row);
    const int end_bit = bits_for(perm.size() > 0 ? perm.size() - 1 : 0);
    size_t need = 0;
    CK(cub::DeviceRadixSort::SortPairs(nullptr, need, pos, pos_sorted, row, row_sorted, n, 0, end_bit, st));
    void* tmp = ws.temp.get(need);
    need = ws.temp.capacity();
    CK(cub::DeviceRadixSort::SortPairs(tmp, need, pos, pos_sorted, row, row_sorted, n, 0, end_bit, st));
  }
  bounds_k<<<blocks_for(steps + 1), kThreads, 0, st>>>(pos_sorted, n, batch, steps, bounds);
  CK(cudaGetLastError());
}

void build_batch(const uint64_t* pos_sorted, const uint32_t* row_sorted, size_t begin, size_t n, const int64_t* ptr,
                 const int32_t* item, const int32_t* row_user, const SampleParams& p, int64_t* uid, int64_t* iid,
                 uint64_t* ukey, uint64_t* ikey, int64_t* grow, int64_t* failed_row, cudaStream_t st) {
  if (n == 0) return;
  batch_k<<<blocks_for(n), kThreads, 0, st>>>(pos_sorted, row_sorted, begin, n, ptr, item, row_user, p, uid, iid, ukey,
                                              ikey, grow, failed_row);
  CK(cudaGetLastError());
}

void owner_local(const int64_t* ids, size_t n, const ShardingView& s, int32_t* owner, int64_t* local,
                 uint64_t* key, int* bad, cudaStream_t st) {
  if (n == 0) return;
  owner_local_k<<<blocks_for(n), kThreads, 0, st>>>(ids, n, s, owner, local, key, bad);
  CK(cudaGetLastError());
}

size_t route_unique(const uint64_t* key, size_t n, int world, Workspace& ws, uint64_t* sorted_key,
                    uint32_t* perm, uint32_t* slot, int64_t* uniq_local, uint32_t* uniq_owner_count,
                    uint32_t* id_owner_count, cudaStream_t st) {
  CK(cudaMemsetAsync(uniq_owner_count, 0, world * sizeof(uint32_t), st));
  CK(cudaMemsetAsync(id_owner_count, 0, world * sizeof(uint32_t), st));
  if (n == 0) return 0;
  uint32_t* iota = ws.a32.get(n);
  uint32_t* head = ws.b32.get(n);
  uint32_t* scan = ws.c32.get(n);
  iota_k<<<blocks_for(n), kThreads, 0, st>>>(iota, n);
  const int end_bit = 48 + bits_for(static_cast<uint64_t>(world));
  size_t need = 0, need2 = 0;
  CK(cub::DeviceRadixSort::SortPairs(nullptr, need, key, sorted_key, iota, perm, n, 0, end_bit, st));
  CK(cub::DeviceScan::InclusiveSum(nullptr, need2, head, scan, n, st));
  void* tmp = ws.temp.get(std::max(need, need2));
  need = ws.temp.capacity();
  CK(cub::DeviceRadixSort::SortPairs(tmp, need, key, sorted_key, iota, perm, n, 0, end_bit, st));
  head_k<<<blocks_for(n), kThreads, 0, st>>>(sorted_key, n, head);
  need2 = ws.temp.capacity();
  CK(cub::DeviceScan::InclusiveSum(tmp, need2, head, scan, n, st));
  slots_k<<<blocks_for(n), kThreads, 0, st>>>(sorted_key, perm, head, scan, n, slot, uniq_local,
                                               uniq_owner_count, id_owner_count);
  CK(cudaGetLastError());
  uint32_t uniq = 0;
  CK(cudaMemcpyAsync(&uniq, scan + n - 1, sizeof uniq, cudaMemcpyDeviceToHost, st));
  CK(cudaStreamSynchronize(st));
  return uniq;
}

void gather_rows(const float* table, int dim, const int64_t* rows, size_t n, float* out, cudaStream_t st) {
  if (n == 0) return;
  gather_rows_k<<<blocks_for(n * dim), kThreads, 0, st>>>(table, dim, rows, n, out);
  CK(cudaGetLastError());
}

void expand_rows(const float* src, int dim, const uint32_t* slot, size_t n, float* out, cudaStream_t st) {
  if (n == 0) return;
  expand_rows_k<<<blocks_for(n * dim), kThreads, 0, st>>>(src, dim, slot, n, out);
  CK(cudaGetLastError());
}

void pack_records(const uint32_t* perm, const int64_t* local, const uint64_t* keys, const float* grads,
                  int dim, size_t n, char* out, cudaStream_t st) {
  if (n == 0) return;
  pack_k<<<blocks_for(n * 32), kThreads, 0, st>>>(perm, local, keys, grads, dim, n, out, record_bytes(dim));
  CK(cudaGetLastError());
}

void pack_records_direct(const int64_t* local, const uint64_t* keys, const float* grads, int dim, size_t n,
                         char* out, cudaStream_t st) {
  pack_records(nullptr, local, keys, grads, dim, n, out, st);
}

void restore_rows(const CandidateRows& c, int dim, float* w, cudaStream_t st, size_t capacity) {
  if (capacity == 0) return;
  candidate_rows_k<<<blocks_for(capacity * dim), kThreads, 0, st>>>(c, dim, 0.0f, false, w, capacity);
  CK(cudaGetLastError());
}

void commit_rows(const CandidateRows& c, int dim, float sign, float* w, cudaStream_t st, size_t capacity) {
  if (capacity == 0) return;
  candidate_rows_k<<<blocks_for(capacity * dim), kThreads, 0, st>>>(c, dim, sign, true, w, capacity);
  CK(cudaGetLastError());
}

void reduce_apply(const char* records, size_t n, int dim, int64_t local_rows, float* w, float* m, float* v,
                  const OptimizerParams& p, Workspace& ws, cudaStream_t st, uint64_t key_bound,
                  const CandidateRows* cand) {
  if (p.move == RowMove::kCandidate) {
    if (!cand) ::shardrec::fail("reduce_apply: a candidate reduction needs its CandidateRows");
    CK(cudaMemsetAsync(cand->count, 0, sizeof(int), st));  // no records: no touched rows
  }
  const bool dense = p.move == RowMove::kOptimizer && p.kind == OptimizerKind::kAdamDense;
  if (dense && ws.stamp_rows != static_cast<uint32_t>(local_rows)) {
    ws.stamp.get(std::max<int64_t>(local_rows, 1));
    CK(cudaMemsetAsync(ws.stamp.data(), 0, std::max<int64_t>(local_rows, 1) * sizeof(uint32_t), st));
    ws.stamp_rows = static_cast<uint32_t>(local_rows);
    ws.gen = 0;
  }
  const uint32_t gen = ++ws.gen;
  if (n > 0) {
    const size_t rec = record_bytes(dim);
    int64_t* rows = ws.r64a.get(n);
    uint64_t* keys = ws.a64.get(n);
    uint64_t* keys_sorted = ws.b64.get(n);
    uint32_t* iota = ws.a32.get(n);
    uint32_t* by_key = ws.b32.get(n);
    uint32_t* order = ws.c32.get(n);
    int64_t* rows_by_key = ws.r64b.get(n);
    int64_t* rows_sorted = ws.r64c.get(n);
    unpack_k<<<blocks_for(n), kThreads, 0, st>>>(records, n, rec, rows, keys);
    iota_k<<<blocks_for(n), kThreads, 0, st>>>(iota, n);
    const int row_bits = bits_for(static_cast<uint64_t>(std::max<int64_t>(local_rows, 1)));
    const int key_bits = key_bound ? bits_for(key_bound - 1) : 64;
    // CUB calls size their temporary storage first (null pointer), then run.
    auto sort_pairs = [&](const auto* kin, auto* kout, const uint32_t* vin, uint32_t* vout, int end_bit) {
      size_t need = 0;
      CK(cub::DeviceRadixSort::SortPairs(nullptr, need, kin, kout, vin, vout, n, 0, end_bit, st));
      void* tmp = ws.temp.get(need);
      need = ws.temp.capacity();
      CK(cub::DeviceRadixSort::SortPairs(tmp, need, kin, kout, vin, vout, n, 0, end_bit, st));
    };
    if (row_bits + key_bits <= 64) {
      // One sort on (row << key_bits | key): rows ascending, each row's records in key order.
      pack_row_key_k<<<blocks_for(n), kThreads, 0, st>>>(rows, keys, n, key_bits);
      sort_pairs(keys, keys_sorted, iota, order, row_bits + key_bits);
      unpack_row_k<<<blocks_for(n), kThreads, 0, st>>>(keys_sorted, n, key_bits, rows_sorted);
    } else {
      // Two stable radix sorts: by key, then by row. Each row's records end in key order.
      sort_pairs(keys, keys_sorted, iota, by_key, 64);
      permute_rows_k<<<blocks_for(n), kThreads, 0, st>>>(rows, by_key, n, rows_by_key);
      sort_pairs(rows_by_key, rows_sorted, by_key, order, row_bits);
    }
    // Runs of equal rows: each touched row, its record count and its first record.
    int64_t* uniq_rows = ws.r64b.data();  // rows_by_key is no longer needed
    uint32_t* counts = ws.a32.data();      // nor is iota
    uint32_t* offsets = ws.d32.get(n + 1);
    int* num_runs = reinterpret_cast<int*>(offsets + n);
    size_t need3 = 0, need4 = 0;
    CK(cub::DeviceRunLengthEncode::Encode(nullptr, need3, rows_sorted, uniq_rows, counts, num_runs, n, st));
    CK(cub::DeviceScan::ExclusiveSum(nullptr, need4, counts, offsets, n, st));
    void* tmp = ws.temp.get(std::max(need3, need4));
    size_t cap = ws.temp.capacity();
    CK(cub::DeviceRunLengthEncode::Encode(tmp, cap, rows_sorted, uniq_rows, counts, num_runs, n, st));
    cap = ws.temp.capacity();
    CK(cub::DeviceScan::ExclusiveSum(tmp, cap, counts, offsets, n, st));
    float* seg = ws.seg.get(n * static_cast<size_t>(dim));
    reduce_apply_k<<<blocks_for(n * 32), kThreads, 0, st>>>(records, rec, order, uniq_rows, counts, offsets,
                                                            num_runs, dim, w, m, v, p, seg, ws.stamp.data(), gen,
                                                            cand ? *cand : CandidateRows{});
    CK(cudaGetLastError());
  }
  if (dense && local_rows > 0) {
    dense_rest_k<<<blocks_for(static_cast<size_t>(local_rows) * dim), kThreads, 0, st>>>(local_rows, dim, w, m, v, p,
                                                                                       ws.stamp.data(), gen);
    CK(cudaGetLastError());
  }
}

void draw_unlabeled(const int64_t* grow, const int32_t* user, size_t n, int per, const int64_t* ptr, const int32_t* item,
                    int64_t n_items, uint64_t seed, int epoch, int64_t* iid, int64_t* failed_row, cudaStream_t st) {
  if (n == 0 || per < 2) return;
  unlabeled_k<<<blocks_for(n * (per - 1)), kThreads, 0, st>>>(grow, user, n, per, ptr, item, n_items, seed,
                                                              static_cast<uint64_t>(epoch), iid, failed_row);
  CK(cudaGetLastError());
}

void mf_forward_backward(const float* U, const float* I, size_t n, const MfParams& p, float* gU, float* gI,
                         double* loss, cudaStream_t st) {
  if (n == 0) return;
  mf_fb_k<<<blocks_for(n * 8), kThreads, 0, st>>>(U, I, n, p, gU, gI, loss);
  CK(cudaGetLastError());
}

void score_topk(const float* users, size_t nu, const float* items, const int64_t* ids, size_t ni, int dim,
                const int64_t* exclude_ptr, const int64_t* exclude_ids, int k, float* top_score,
                int64_t* top_id, cudaStream_t st) {
  if (nu == 0) return;
  shardrec::cuda::DeviceBuffer<float> scores(std::max<size_t>(nu * ni, 1));
  shardrec::cuda::DeviceBuffer<int64_t> sid(std::max<size_t>(nu * ni, 1));
  if (ni > 0) {
    score_k<<<blocks_for(nu * ni), kThreads, 0, st>>>(users, nu, items, ids, ni, dim, exclude_ptr, exclude_ids,
                                                      scores.data(), sid.data());
    CK(cudaGetLastError());
  }
  topk_k<<<static_cast<unsigned>(nu), kThreads, 0, st>>>(scores.data(), sid.data(), ni, k, top_score, top_id);
  CK(cudaGetLastError());
  CK(cudaStreamSynchronize(st));  // the scratch buffers die here
}

}  // namespace shardrec::kernels::cuda
