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
  const int n = comm.size();
  Routing r;
  r.local_only = local_only;
  r.num_ids = ids.size();
  r.request.assign(n, {});
  r.owner.resize(ids.size());
  r.local.resize(ids.size());
  r.slot.resize(ids.size());
  // De-duplicate with a hash map (O(ids)); a slot is an index into the owner's request list.
  size_t cap = 16;
  while (cap < 2 * ids.size()) cap <<= 1;
  if (dedup_.size() < cap) dedup_.assign(cap, IdSlot{0, 0, 0});
  cap = dedup_.size();
  if (++dedup_gen_ == 0) {  // wrapped: clear the stamps once
    for (auto& e : dedup_) e.gen = 0;
    dedup_gen_ = 1;
  }
  const uint32_t gen = dedup_gen_;
  for (size_t i = 0; i < ids.size(); ++i) {
    const int64_t id = ids[i];
    if (id < 0 || id >= rows_)
      fail("table " + name_ + ": id " + std::to_string(id) + " outside its " +
           std::to_string(rows_) + " rows");
    const int o = sharding_.owner(id);
    r.owner[i] = o;
    r.local[i] = sharding_.local_index(id);
    size_t h = mix64(static_cast<uint64_t>(id)) & (cap - 1);
    while (dedup_[h].gen == gen && dedup_[h].id != id) h = (h + 1) & (cap - 1);
    if (dedup_[h].gen != gen) {
      dedup_[h] = IdSlot{id, static_cast<uint32_t>(r.request[o].size()), gen};
      r.request[o].push_back(id);
    }
    r.slot[i] = dedup_[h].slot;
  }
  r.serve.assign(n, {});
  r.incoming.assign(n, 0);
  if (local_only) {
    for (int k = 0; k < n; ++k)
      if (k != comm.rank() && !r.request[k].empty())
        fail("table " + name_ + ": id " + std::to_string(r.request[k][0]) + " routed as local but owned by rank " + std::to_string(k));
    return r;
  }
  // Only remote ids travel; an owner serves its own ids straight from its table. Each list ends
  // with the number of gradient records that will follow in apply(), so apply() needs no
  // exchange of counts.
  std::vector<std::vector<int64_t>> remote(r.request);
  remote[comm.rank()].clear();
  for (auto& v : remote) v.push_back(0);
  for (size_t i = 0; i < ids.size(); ++i)
    if (r.owner[i] != comm.rank()) ++remote[r.owner[i]].back();
  auto got = all_to_all(comm, remote);
  for (int k = 0; k < n; ++k) {
    r.incoming[k] = static_cast<uint64_t>(got[k].back());
    got[k].pop_back();
    r.serve[k].resize(got[k].size());
    for (size_t i = 0; i < got[k].size(); ++i) r.serve[k][i] = sharding_.local_index(got[k][i]);
  }
  return r;
}

void ShardedEmbedding::gather(Comm& comm, const Routing& r, float* out) const {
  const int n = comm.size(), me = comm.rank();
  const size_t rb = dim_ * sizeof(float);
  std::vector<size_t> sb(n), sd(n), recvb(n), rd(n);
  size_t stotal = 0, rtotal = 0;
  for (int k = 0; k < n; ++k) {
    sb[k] = k == me ? 0 : r.serve[k].size() * rb; sd[k] = stotal; stotal += sb[k];
    recvb[k] = k == me ? 0 : r.request[k].size() * rb; rd[k] = rtotal; rtotal += recvb[k];
  }
  float* send = reinterpret_cast<float*>(send_.get(stotal));
  float* recv = reinterpret_cast<float*>(recv_.get(rtotal));
  float* p = send;
  for (int k = 0; k < n; ++k) {
    if (k == me) continue;
    for (int64_t l : r.serve[k]) { std::memcpy(p, local_row(l), rb); p += dim_; }
  }
  if (!r.local_only) comm.alltoallv(send, sb.data(), sd.data(), recv, recvb.data(), rd.data());
  auto copy = [&](size_t lo, size_t hi, int) {
    for (size_t i = lo; i < hi; ++i) {
      const int o = r.owner[i];
      const float* src = o == me ? local_row(r.local[i])
                                 : recv + (rd[o] / sizeof(float)) + r.slot[i] * static_cast<size_t>(dim_);
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
  bool rising = true;
  uint64_t last = 0;
  bool any = false;
  for (size_t i = 0; i < r.num_ids && rising; ++i) {
    if (r.owner[i] != me) continue;
    rising = !any || keys[i] > last;
    last = keys[i];
    any = true;
  }
  if (opt_.config().dense() || !rising) {
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
  for (size_t i = 0; i < r.num_ids; ++i) {
    if (r.owner[i] != me) continue;
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
  std::fill(mixed, mixed + L, uint8_t{0});
  std::vector<GradRef>& refs = refs_;
  refs.clear();
  const std::span<const char> recv = send_records(comm, r, keys, grads);
  const size_t rec = sizeof(GradHeader) + dim_ * sizeof(float);
  if (!recv.empty()) {
    // A row that remote ranks touched takes all its contributions through the records.
    const uint32_t gen = next_row_gen();
    for (size_t s = 0; s < L; ++s) {
      row_gen_[slot_row[s]] = gen;
      row_group_[slot_row[s]] = static_cast<uint32_t>(s);
    }
    for (size_t off = 0; off < recv.size(); off += rec) {
      const GradRef g = record_at(recv.data() + off);
      if (row_gen_[g.row] == gen) mixed[row_group_[g.row]] = 1;
    }
    for (size_t s = 0; s < L; ++s)
      if (mixed[s])
        for (uint32_t k = head[s]; k != kNone; k = next[k]) refs.push_back({slot_row[s], keys[k], grads + k * static_cast<size_t>(dim_)});
    for (size_t off = 0; off < recv.size(); off += rec) refs.push_back(record_at(recv.data() + off));
  }
  group_refs();
  opt_.begin_step();
  const int threads = pool_ ? pool_->size() : 1;
  float* sums = group_grad_.get(static_cast<size_t>(threads) * static_cast<size_t>(dim_));
  auto slots = [&](size_t lo, size_t hi, int t) {
    float* out = sums + static_cast<size_t>(t) * dim_;
    for (size_t s = lo; s < hi; ++s) {
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

ShardedEmbedding::GradRef ShardedEmbedding::record_at(const char* p) const {
  GradHeader h;
  std::memcpy(&h, p, sizeof h);
  return {h.local_row, h.key, reinterpret_cast<const float*>(p + sizeof h)};
}

std::span<const char> ShardedEmbedding::send_records(Comm& comm, const Routing& r, std::span<const uint64_t> keys,
                                                     const float* grads) {
  const int n = comm.size(), me = comm.rank();
  const size_t rec = sizeof(GradHeader) + dim_ * sizeof(float);
  // Remote contributions travel as (header, dim floats) records.
  std::vector<size_t> count(n, 0);
  for (size_t i = 0; i < r.num_ids; ++i) ++count[r.owner[i]];
  std::vector<size_t> sb(n), sd(n);
  size_t total = 0;
  for (int k = 0; k < n; ++k) {
    sb[k] = k == me ? 0 : count[k] * rec;
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
  std::vector<size_t> recvb(n), rd(n);
  size_t rtotal = 0;
  for (int k = 0; k < n; ++k) { recvb[k] = r.incoming[k] * rec; rd[k] = rtotal; rtotal += recvb[k]; }
  char* recv = recv_.get(rtotal);
  if (!r.local_only) comm.alltoallv(send, sb.data(), sd.data(), recv, recvb.data(), rd.data());
  for (size_t off = 0; off < rtotal; off += rec) {
    GradHeader h;
    std::memcpy(&h, recv + off, sizeof h);
    if (h.local_row < 0 || h.local_row >= local_rows_)
      fail("table " + name_ + ": gradient for local row " + std::to_string(h.local_row) +
           " outside the shard");
  }
  return {recv, rtotal};
}

void ShardedEmbedding::group_contributions(Comm& comm, const Routing& r,
                                           std::span<const uint64_t> keys, const float* grads) {
  // Our own rows are read in place, first, then the records in arrival order.
  std::vector<GradRef>& refs = refs_;
  refs.clear();
  for (size_t i = 0; i < r.num_ids; ++i)
    if (r.owner[i] == comm.rank()) refs.push_back({r.local[i], keys[i], grads + i * dim_});
  const std::span<const char> recv = send_records(comm, r, keys, grads);
  const size_t rec = sizeof(GradHeader) + dim_ * sizeof(float);
  for (size_t off = 0; off < recv.size(); off += rec) refs.push_back(record_at(recv.data() + off));
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
