#include "dist/sharded_embedding.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <numeric>

#include "base/error.h"
#include "base/rng.h"
#include "kernels/embedding_ops.h"

namespace shardrec::dist {

InitSpec::Kind InitSpec::parse(const std::string& name) {
  if (name == "normal") return Kind::kNormal;
  if (name == "xavier_normal") return Kind::kXavierNormal;
  if (name == "uniform") return Kind::kUniform;
  fail("init '" + name + "': expected normal, xavier_normal or uniform");
}

ShardedEmbedding::ShardedEmbedding(std::string name, uint64_t table_key, int64_t rows, int dim,
                                   Sharding sharding, int rank, uint64_t seed,
                                   const InitSpec& init, const OptimizerConfig& opt)
    : name_(std::move(name)),
      rows_(rows),
      dim_(dim),
      sharding_(std::move(sharding)),
      rank_(rank),
      local_rows_(sharding_.local_rows(rank)),
      data_(static_cast<size_t>(local_rows_) * dim),
      opt_(opt, local_rows_, dim) {
  // Each row's initial values are a function of (seed, table, global id) only.
  // xavier_normal follows PyTorch for an (rows x dim) weight: std = sqrt(2 / (rows + dim)).
  if (init.kind == InitSpec::Kind::kNone) return;  // zeros, about to be loaded
  const double std = init.kind == InitSpec::Kind::kXavierNormal
                         ? std::sqrt(2.0 / static_cast<double>(rows + dim))
                         : init.scale;
  for (int64_t l = 0; l < local_rows_; ++l) {
    const int64_t id = sharding_.global_id(rank, l);
    CounterRng rng(seed, 0x1a17 + table_key, static_cast<uint64_t>(id));
    float* w = &data_[l * dim];
    if (init.kind == InitSpec::Kind::kUniform) {
      for (int k = 0; k < dim; ++k) w[k] = static_cast<float>((2.0 * rng.uniform() - 1.0) * init.scale);
      continue;
    }
    for (int k = 0; k < dim; k += 2) {  // both values of each Box-Muller pair
      double a, b;
      rng.normal_pair(a, b);
      w[k] = static_cast<float>(a * std);
      if (k + 1 < dim) w[k + 1] = static_cast<float>(b * std);
    }
  }
}

Routing ShardedEmbedding::route(Comm& comm, std::span<const int64_t> ids, bool local_only) const {
  Routing r;
  plan(comm, ids, local_only, r);
  if (!local_only) exchange_ids(comm, r, nullptr);
  return r;
}

void ShardedEmbedding::plan(const Comm& comm, std::span<const int64_t> ids, bool local_only, Routing& r) const {
  const int n = comm.size(), me = comm.rank();
  r.local_only = local_only;
  r.num_ids = ids.size();
  r.request.resize(n);
  for (auto& v : r.request) v.clear();
  r.owner.resize(ids.size());
  r.local.resize(ids.size());
  r.slot.resize(ids.size());
  // A slot is an index into the owner's request list (first-seen order). Our own ids are
  // de-duplicated by a stamp per local row, the others' with a hash map (O(ids) both).
  if (own_slot_.size() != static_cast<size_t>(local_rows_)) own_slot_.assign(local_rows_, 0);
  if (++own_gen_ == 0) {  // wrapped: clear the stamps once
    std::fill(own_slot_.begin(), own_slot_.end(), 0);
    own_gen_ = 1;
  }
  const uint64_t own_gen = static_cast<uint64_t>(own_gen_) << 32;
  size_t cap = 16;
  if (n > 1) {
    while (cap < 2 * ids.size()) cap <<= 1;
    if (dedup_.size() < cap) dedup_.assign(cap, IdSlot{0, 0, 0});
    cap = dedup_.size();
    if (++dedup_gen_ == 0) {
      for (auto& e : dedup_) e.gen = 0;
      dedup_gen_ = 1;
    }
  }
  const uint32_t gen = dedup_gen_;
  std::vector<int64_t>& mine = r.request[me];
  // Owners first, in a pass of their own, so the stamps can be asked for ahead: the stamp's
  // load is a cache miss (a row's stamp is touched about once a step) and was 90% of plan().
  for (size_t i = 0; i < ids.size(); ++i) {
    const int64_t id = ids[i];
    if (id < 0 || id >= rows_)
      fail("table " + name_ + ": id " + std::to_string(id) + " outside its " +
           std::to_string(rows_) + " rows");
    const auto [o, l] = sharding_.locate(id);
    r.owner[i] = o;
    r.local[i] = l;
  }
  constexpr size_t kAhead = 16;
  for (size_t i = 0; i < ids.size(); ++i) {
    if (i + kAhead < ids.size()) {
      if (r.owner[i + kAhead] == me)
        __builtin_prefetch(&own_slot_[r.local[i + kAhead]], 1);
      else
        __builtin_prefetch(&dedup_[mix64(static_cast<uint64_t>(ids[i + kAhead])) & (cap - 1)], 1);
    }
    const int64_t id = ids[i];
    const int o = r.owner[i];
    const int64_t l = r.local[i];
    if (o == me) {
      uint64_t& st = own_slot_[l];
      if ((st & ~uint64_t{0xffffffff}) != own_gen) {
        st = own_gen | mine.size();
        mine.push_back(id);
      }
      r.slot[i] = static_cast<uint32_t>(st);
      continue;
    }
    size_t h = mix64(static_cast<uint64_t>(id)) & (cap - 1);
    while (dedup_[h].gen == gen && dedup_[h].id != id) h = (h + 1) & (cap - 1);
    if (dedup_[h].gen != gen) {
      dedup_[h] = IdSlot{id, static_cast<uint32_t>(r.request[o].size()), gen};
      r.request[o].push_back(id);
    }
    r.slot[i] = dedup_[h].slot;
  }
  r.serve.resize(n);
  for (auto& v : r.serve) v.clear();
  r.incoming.assign(n, 0);
  if (local_only)
    for (int k = 0; k < n; ++k)
      if (k != me && !r.request[k].empty())
        fail("table " + name_ + ": id " + std::to_string(r.request[k][0]) + " routed as local but owned by rank " + std::to_string(k));
}

std::vector<uint64_t> ShardedEmbedding::exchange_counts(const Comm& comm, const Routing& r) const {
  // Only remote ids travel; an owner serves its own ids straight from its table. Each list ends
  // with the number of gradient records that will follow in apply(), so apply() needs no
  // exchange of counts.
  std::vector<uint64_t> c(comm.size(), 0);
  for (int k = 0; k < comm.size(); ++k)
    if (k != comm.rank()) c[k] = r.request[k].size() + 1;
  return c;
}

std::vector<std::vector<int64_t>> ShardedEmbedding::id_lists(const Comm& comm, const Routing& r) const {
  // exchange_counts(r)[k] ids to rank k: our requests, then our number of gradient records.
  const int me = comm.rank();
  std::vector<std::vector<int64_t>> out(comm.size());
  for (int k = 0; k < comm.size(); ++k) {
    if (k == me) continue;
    out[k].assign(r.request[k].begin(), r.request[k].end());
    out[k].push_back(0);
  }
  for (size_t i = 0; i < r.num_ids; ++i)
    if (r.owner[i] != me) ++out[r.owner[i]].back();
  return out;
}

void ShardedEmbedding::exchange(Comm& comm, Routing& r, const uint64_t* counts) {
  if (r.local_only) fail("internal: table " + name_ + ": a local-only routing has nothing to exchange");
  if (!ahead_arrived_) {  // nothing carried them (a step without gradients): send them now
    ahead_queued_ = false;
    return exchange_ids(comm, r, counts);
  }
  // The ids came with the last step's gradients (send_ahead).
  ahead_arrived_ = false;
  if (!counts) fail("internal: table " + name_ + ": ids sent ahead without their counts");
  for (int k = 0; k < comm.size(); ++k) {
    if (ahead_recv_[k].size() != counts[k]) fail("internal: table " + name_ + ": ids sent ahead do not match their counts");
    read_ids(r, k, ahead_recv_[k].data(), counts[k]);
  }
}

void ShardedEmbedding::exchange_ids(Comm& comm, Routing& r, const uint64_t* counts) const {
  const int n = comm.size();
  const std::vector<uint64_t> scount = exchange_counts(comm, r);
  std::vector<uint64_t> rcount(n);
  if (counts)
    rcount.assign(counts, counts + n);
  else
    comm.alltoall_u64(scount.data(), rcount.data());
  std::vector<size_t> sb(n), sd(n), rb(n), rd(n);
  size_t stotal = 0, rtotal = 0;
  for (int k = 0; k < n; ++k) {
    sb[k] = scount[k] * sizeof(int64_t); sd[k] = stotal; stotal += sb[k];
    rb[k] = rcount[k] * sizeof(int64_t); rd[k] = rtotal; rtotal += rb[k];
  }
  int64_t* send = reinterpret_cast<int64_t*>(send_.get(stotal));
  int64_t* recv = reinterpret_cast<int64_t*>(recv_.get(rtotal));
  const std::vector<std::vector<int64_t>> lists = id_lists(comm, r);
  for (int k = 0; k < n; ++k) std::copy(lists[k].begin(), lists[k].end(), send + sd[k] / sizeof(int64_t));
  comm.alltoallv(send, sb.data(), sd.data(), recv, rb.data(), rd.data());
  for (int k = 0; k < n; ++k) read_ids(r, k, recv + rd[k] / sizeof(int64_t), rcount[k]);
}

void ShardedEmbedding::read_ids(Routing& r, int k, const int64_t* got, uint64_t count) const {
  r.serve[k].clear();
  r.incoming[k] = 0;
  if (count == 0) return;  // ourselves
  const size_t ids = count - 1;
  r.incoming[k] = static_cast<uint64_t>(got[ids]);
  r.serve[k].resize(ids);
  for (size_t i = 0; i < ids; ++i) {
    const auto [o, l] = got[i] >= 0 && got[i] < rows_ ? sharding_.locate(got[i]) : std::pair<int, int64_t>{-1, 0};
    if (o != rank_)
      fail("table " + name_ + ": rank " + std::to_string(k) + " asked for id " + std::to_string(got[i]) + ", which is not ours");
    r.serve[k][i] = l;
  }
}

void ShardedEmbedding::gather(Comm& comm, const Routing& r, float* out, const uint64_t* ahead_send,
                              uint64_t* ahead_recv) const {
  const int n = comm.size(), me = comm.rank();
  const size_t rb = dim_ * sizeof(float);
  if (ahead_send && r.local_only) fail("internal: table " + name_ + ": nothing travels with a local-only gather");
  const size_t extra = ahead_send ? sizeof(uint64_t) : 0;  // after each rank's rows
  std::vector<size_t> sb(n), sd(n), recvb(n), rd(n);
  size_t stotal = 0, rtotal = 0;
  for (int k = 0; k < n; ++k) {
    sb[k] = k == me ? 0 : r.serve[k].size() * rb + extra; sd[k] = stotal; stotal += sb[k];
    recvb[k] = k == me ? 0 : r.request[k].size() * rb + extra; rd[k] = rtotal; rtotal += recvb[k];
  }
  char* send = send_.get(stotal);
  char* recv = recv_.get(rtotal);
  for (int k = 0; k < n; ++k) {
    if (k == me) continue;
    char* p = send + sd[k];
    for (int64_t l : r.serve[k]) { std::memcpy(p, local_row(l), rb); p += rb; }
    if (extra) std::memcpy(p, &ahead_send[k], extra);
  }
  if (!r.local_only) comm.alltoallv(send, sb.data(), sd.data(), recv, recvb.data(), rd.data());
  if (ahead_recv)
    for (int k = 0; k < n; ++k) {
      ahead_recv[k] = 0;
      if (k != me) std::memcpy(&ahead_recv[k], recv + rd[k] + recvb[k] - extra, extra);
    }
  auto copy = [&](size_t lo, size_t hi, int) {
    constexpr size_t kAhead = 6;  // our rows are scattered over the shard: ask for them early
    for (size_t i = lo; i < hi; ++i) {
      if (i + kAhead < hi && r.owner[i + kAhead] == me) {
        const char* w = reinterpret_cast<const char*>(local_row(r.local[i + kAhead]));
        for (size_t b = 0; b < rb; b += 64) __builtin_prefetch(w + b);
      }
      const int o = r.owner[i];
      const float* src = o == me ? local_row(r.local[i])
                                 : reinterpret_cast<const float*>(recv + rd[o] + r.slot[i] * rb);
      std::memcpy(out + i * dim_, src, rb);
    }
  };
  parallel(pool_, r.num_ids, copy);
}

namespace {
struct GradHeader {
  int64_t local_row;  // at the owner
  uint64_t key;
};
}  // namespace

void ShardedEmbedding::apply(Comm& comm, const Routing& r, std::span<const uint64_t> keys,
                             const float* grads) {
  // Our own contributions in rising key order (every model's keys rise with the sample) are
  // summed straight from the gradient buffer, by slot; records are only for rows that remote
  // ranks touched too. The sums are the same additions in the same order: the same bits.
  const int me = comm.rank();
  if (opt_.config().dense()) {
    group_contributions(comm, r, keys, grads);
    apply_groups();
    return;
  }
  const size_t L = r.request[me].size();
  constexpr uint32_t kNone = UINT32_MAX;
  uint32_t* head = chain_head_.get(L);
  uint32_t* tail = chain_tail_.get(L);
  uint32_t* next = chain_next_.get(r.num_ids);
  int64_t* slot_row = slot_row_.get(L);
  uint8_t* mixed = slot_mixed_.get(L);
  std::fill(head, head + L, kNone);
  bool rising = true, first = true;
  uint64_t last = 0;
  for (size_t i = 0; i < r.num_ids; ++i) {
    if (r.owner[i] != me) continue;
    rising &= first || keys[i] > last;
    first = false;
    last = keys[i];
    const uint32_t s = r.slot[i];
    const uint32_t k = static_cast<uint32_t>(i);
    if (head[s] == kNone) {
      head[s] = k;
      slot_row[s] = r.local[i];
    } else {
      next[tail[s]] = k;
    }
    tail[s] = k;
    next[k] = kNone;
  }
  if (!rising) {  // keys out of sample order: the general path, which sorts
    group_contributions(comm, r, keys, grads);
    apply_groups();
    return;
  }
  std::fill(mixed, mixed + L, uint8_t{0});
  std::vector<GradRef>& refs = refs_;
  refs.clear();
  send_records(comm, r, keys, grads);  // the remote contributions, into refs
  if (!refs.empty()) {
    // A row that remote ranks touched takes all its contributions through the records (their
    // order in refs does not matter: a row's group is summed in key order).
    const uint32_t gen = next_row_gen();
    for (size_t s = 0; s < L; ++s) {
      row_gen_[slot_row[s]] = gen;
      row_group_[slot_row[s]] = static_cast<uint32_t>(s);
    }
    for (const GradRef& g : refs)
      if (row_gen_[g.row] == gen) mixed[row_group_[g.row]] = 1;
    for (size_t s = 0; s < L; ++s)
      if (mixed[s])
        for (uint32_t k = head[s]; k != kNone; k = next[k]) refs.push_back({slot_row[s], keys[k], grads + k * static_cast<size_t>(dim_)});
  }
  group_refs();
  opt_.begin_step();
  const int threads = pool_ ? pool_->size() : 1;
  float* sums = group_grad_.get(static_cast<size_t>(threads) * static_cast<size_t>(dim_));
  constexpr size_t kAhead = 6;  // the rows are scattered over the shard: ask for them early
  auto slots = [&](size_t lo, size_t hi, int t) {
    float* out = sums + static_cast<size_t>(t) * dim_;
    const size_t row_bytes = dim_ * sizeof(float);
    for (size_t s = lo; s < hi; ++s) {
      if (s + kAhead < hi) {
        const char* w = reinterpret_cast<const char*>(local_row(slot_row[s + kAhead]));
        for (size_t b = 0; b < row_bytes; b += 64) __builtin_prefetch(w + b, 1);
      }
      if (mixed[s]) continue;
      const uint32_t k = head[s];
      const float* g = grads + k * static_cast<size_t>(dim_);
      if (next[k] != kNone) {  // a sum in sample (key) order
        std::memcpy(out, g, dim_ * sizeof(float));
        for (uint32_t j = next[k]; j != kNone; j = next[j]) kernels::add(grads + j * static_cast<size_t>(dim_), out, dim_);
        g = out;
      }
      opt_.update(slot_row[s], local_row(slot_row[s]), g);
    }
  };
  auto groups = [&](size_t lo, size_t hi, int t) {
    float* out = sums + static_cast<size_t>(t) * dim_;
    for (size_t g = lo; g < hi; ++g) {
      sum_group(g, out);
      opt_.update(group_row_[g], local_row(group_row_[g]), out);
    }
  };
  parallel(pool_, L, slots);
  parallel(pool_, group_row_.size(), groups);
}

void ShardedEmbedding::reduce(Comm& comm, const Routing& r, std::span<const uint64_t> keys,
                              const float* grads,
                              const std::function<void(int64_t, const float*)>& visit) {
  reduce_counted(comm, r, keys, grads, [&](int64_t row, const float* g, uint32_t) { visit(row, g); });
}

void ShardedEmbedding::reduce_counted(Comm& comm, const Routing& r, std::span<const uint64_t> keys,
                                      const float* grads,
                                      const std::function<void(int64_t, const float*, uint32_t)>& visit) {
  group_contributions(comm, r, keys, grads);
  float* sum = group_grad_.get(static_cast<size_t>(dim_));
  for (size_t g = 0; g + 1 < group_start_.size(); ++g) {
    sum_group(g, sum);
    visit(group_row_[g], sum, group_start_[g + 1] - group_start_[g]);
  }
}

void ShardedEmbedding::sum_group(size_t g, float* out) {
  GradRef* b = grouped_.data() + group_start_[g];
  GradRef* e = grouped_.data() + group_start_[g + 1];
  bool sorted = true;
  for (GradRef* p = b + 1; p < e; ++p) sorted &= p[-1].key < p->key;
  if (!sorted) std::sort(b, e, [](const GradRef& x, const GradRef& y) { return x.key < y.key; });
  std::memcpy(out, b->g, dim_ * sizeof(float));
  for (GradRef* p = b + 1; p < e; ++p) kernels::add(p->g, out, dim_);
}

uint32_t ShardedEmbedding::next_row_gen() {
  if (row_gen_.size() != static_cast<size_t>(local_rows_)) {
    row_gen_.assign(local_rows_, 0);
    row_group_.assign(local_rows_, 0);
  }
  if (++row_gen_now_ == 0) {  // wrapped: clear the stamps once
    std::fill(row_gen_.begin(), row_gen_.end(), 0u);
    row_gen_now_ = 1;
  }
  return row_gen_now_;
}

void ShardedEmbedding::send_ahead(const Comm& comm, const Routing& next, std::span<const uint64_t> counts) {
  if (next.local_only) fail("internal: table " + name_ + ": a local-only routing has nothing to send ahead");
  ahead_send_ = id_lists(comm, next);
  ahead_counts_.assign(counts.begin(), counts.end());
  ahead_queued_ = true;
  ahead_arrived_ = false;
}

void ShardedEmbedding::cancel_ahead() { ahead_queued_ = ahead_arrived_ = false; }

void ShardedEmbedding::send_records(Comm& comm, const Routing& r, std::span<const uint64_t> keys,
                                    const float* grads) {
  const int n = comm.size(), me = comm.rank();
  const size_t rec = sizeof(GradHeader) + dim_ * sizeof(float);
  // Remote contributions travel as (header, dim floats) records, followed by the next step's ids
  // where they were queued (send_ahead).
  const bool ahead = ahead_queued_ && !r.local_only;
  std::vector<size_t> count(n, 0);
  for (size_t i = 0; i < r.num_ids; ++i) ++count[r.owner[i]];
  std::vector<size_t> sb(n), sd(n);
  size_t total = 0;
  for (int k = 0; k < n; ++k) {
    sb[k] = k == me ? 0 : count[k] * rec;
    if (ahead) sb[k] += ahead_send_[k].size() * sizeof(int64_t);
    sd[k] = total;
    total += sb[k];
  }
  char* send = send_.get(total);
  std::vector<size_t> fill(sd);
  for (size_t i = 0; i < r.num_ids; ++i) {
    const int o = r.owner[i];
    if (o == me) continue;
    GradHeader h{r.local[i], keys[i]};
    char* dst = send + fill[o];
    std::memcpy(dst, &h, sizeof h);
    std::memcpy(dst + sizeof h, grads + i * dim_, dim_ * sizeof(float));
    fill[o] += rec;
  }
  if (ahead)
    for (int k = 0; k < n; ++k)
      if (!ahead_send_[k].empty()) std::memcpy(send + fill[k], ahead_send_[k].data(), ahead_send_[k].size() * sizeof(int64_t));
  std::vector<size_t> recvb(n), rd(n);
  size_t rtotal = 0;
  for (int k = 0; k < n; ++k) {
    recvb[k] = r.incoming[k] * rec + (ahead ? ahead_counts_[k] * sizeof(int64_t) : 0);
    rd[k] = rtotal;
    rtotal += recvb[k];
  }
  char* recv = recv_.get(rtotal);
  if (!r.local_only) comm.alltoallv(send, sb.data(), sd.data(), recv, recvb.data(), rd.data());
  for (int k = 0; k < n; ++k) {
    const char* p = recv + rd[k];
    for (uint64_t j = 0; j < r.incoming[k]; ++j, p += rec) {
      GradHeader h;
      std::memcpy(&h, p, sizeof h);
      if (h.local_row < 0 || h.local_row >= local_rows_)
        fail("table " + name_ + ": gradient for local row " + std::to_string(h.local_row) +
             " outside the shard");
      refs_.push_back({h.local_row, h.key, reinterpret_cast<const float*>(p + sizeof h)});
    }
  }
  if (ahead) {
    ahead_recv_.assign(n, {});
    for (int k = 0; k < n; ++k) {
      const char* p = recv + rd[k] + r.incoming[k] * rec;
      ahead_recv_[k].resize(ahead_counts_[k]);
      if (ahead_counts_[k]) std::memcpy(ahead_recv_[k].data(), p, ahead_counts_[k] * sizeof(int64_t));
    }
    ahead_queued_ = false;
    ahead_arrived_ = true;
  }
}

void ShardedEmbedding::group_contributions(Comm& comm, const Routing& r,
                                           std::span<const uint64_t> keys, const float* grads) {
  // Our own rows are read in place, first, then the records in arrival order.
  std::vector<GradRef>& refs = refs_;
  refs.clear();
  for (size_t i = 0; i < r.num_ids; ++i)
    if (r.owner[i] == comm.rank()) refs.push_back({r.local[i], keys[i], grads + i * dim_});
  send_records(comm, r, keys, grads);
  group_refs();
}

void ShardedEmbedding::group_refs() {
  const std::vector<GradRef>& refs = refs_;
  // Group the contributions by row, stably (arrival order: by source rank, and within a source
  // in key order, since every rank walks its samples in global order) ...
  const uint32_t gen = next_row_gen();
  std::vector<int64_t>& group_row = group_row_;
  std::vector<uint32_t>& group_start = group_start_;
  std::vector<uint32_t>& ref_group = ref_group_;
  group_row.clear();
  group_start.clear();
  ref_group.resize(refs.size());
  for (size_t i = 0; i < refs.size(); ++i) {
    const int64_t row = refs[i].row;
    if (row_gen_[row] != gen) {
      row_gen_[row] = gen;
      row_group_[row] = static_cast<uint32_t>(group_row.size());
      group_row.push_back(row);
      group_start.push_back(0);
    }
    ref_group[i] = row_group_[row];
    ++group_start[ref_group[i]];
  }
  const size_t ng = group_row.size();
  group_start.push_back(0);
  for (size_t g = 0, acc = 0; g <= ng; ++g) {  // counts -> starts (exclusive prefix sum)
    const size_t c = group_start[g];
    group_start[g] = static_cast<uint32_t>(acc);
    acc += c;
  }
  std::vector<GradRef>& grouped = grouped_;
  grouped.resize(refs.size());
  fill_.assign(group_start.begin(), group_start.end() - 1);
  for (size_t i = 0; i < refs.size(); ++i) grouped[fill_[ref_group[i]]++] = refs[i];
}

void ShardedEmbedding::apply_groups() {
  const uint32_t gen = row_gen_now_;
  const std::vector<int64_t>& group_row = group_row_;
  const size_t ng = group_row.size();
  // ... then sum each row's contributions in key order (a group that mixes sources is sorted by
  // key first) and update the row. The result does not depend on how samples met ranks.
  opt_.begin_step();
  const bool dense = opt_.config().dense();
  // One gradient row per group (dense optimizers need them all at the end), else one per thread.
  const int threads = pool_ ? pool_->size() : 1;
  float* group_grad = group_grad_.get((dense ? ng : static_cast<size_t>(threads)) * static_cast<size_t>(dim_));
  // Groups are rows: each is summed and updated by one thread, whichever it is.
  auto groups = [&](size_t lo, size_t hi, int t) {
    for (size_t g = lo; g < hi; ++g) {
      float* out = dense ? group_grad + g * dim_ : group_grad + static_cast<size_t>(t) * dim_;
      sum_group(g, out);
      if (!dense) opt_.update(group_row[g], local_row(group_row[g]), out);
    }
  };
  // Dense optimizers move every row of the shard, the untouched ones with a zero gradient.
  auto sweep = [&](size_t lo, size_t hi, int) {
    for (int64_t row = static_cast<int64_t>(lo); row < static_cast<int64_t>(hi); ++row)
      opt_.update(row, local_row(row),
                  row_gen_[row] == gen ? group_grad + row_group_[row] * static_cast<size_t>(dim_) : nullptr);
  };
  parallel(pool_, ng, groups);
  if (dense) parallel(pool_, static_cast<size_t>(local_rows_), sweep);
}

}  // namespace shardrec::dist
