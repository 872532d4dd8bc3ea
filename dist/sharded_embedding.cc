#include "dist/sharded_embedding.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <numeric>

#include "core/error.h"
#include "core/rng.h"

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
    for (int k = 0; k < dim; ++k) {
      w[k] = init.kind == InitSpec::Kind::kUniform
                 ? static_cast<float>((2.0 * rng.uniform() - 1.0) * init.scale)
                 : static_cast<float>(rng.normal() * std);
    }
  }
}

Routing ShardedEmbedding::route(Comm& comm, std::span<const int64_t> ids) const {
  const int n = comm.size();
  Routing r;
  r.num_ids = ids.size();
  r.request.assign(n, {});
  for (int64_t id : ids) {
    if (id < 0 || id >= rows_)
      fail("table " + name_ + ": id " + std::to_string(id) + " outside its " +
           std::to_string(rows_) + " rows");
    r.request[sharding_.owner(id)].push_back(id);
  }
  r.request_offset.assign(n + 1, 0);
  for (int k = 0; k < n; ++k) {
    auto& v = r.request[k];
    std::sort(v.begin(), v.end());
    v.erase(std::unique(v.begin(), v.end()), v.end());
    r.request_offset[k + 1] = r.request_offset[k] + v.size();
  }
  r.slot.resize(ids.size());
  for (size_t i = 0; i < ids.size(); ++i) {
    const int o = sharding_.owner(ids[i]);
    const auto& v = r.request[o];
    r.slot[i] = static_cast<uint32_t>(r.request_offset[o] +
                                      (std::lower_bound(v.begin(), v.end(), ids[i]) - v.begin()));
  }
  auto got = all_to_all(comm, r.request);
  r.serve.assign(n, {});
  for (int k = 0; k < n; ++k) {
    r.serve[k].resize(got[k].size());
    for (size_t i = 0; i < got[k].size(); ++i) r.serve[k][i] = sharding_.local_index(got[k][i]);
  }
  return r;
}

void ShardedEmbedding::gather(Comm& comm, const Routing& r, float* out) const {
  const int n = comm.size();
  const size_t rb = dim_ * sizeof(float);
  std::vector<size_t> sb(n), sd(n), recvb(n), rd(n);
  size_t stotal = 0, rtotal = 0;
  for (int k = 0; k < n; ++k) {
    sb[k] = r.serve[k].size() * rb; sd[k] = stotal; stotal += sb[k];
    recvb[k] = r.request[k].size() * rb; rd[k] = rtotal; rtotal += recvb[k];
  }
  std::vector<float> send(stotal / sizeof(float)), recv(rtotal / sizeof(float));
  float* p = send.data();
  for (int k = 0; k < n; ++k)
    for (int64_t l : r.serve[k]) { std::memcpy(p, local_row(l), rb); p += dim_; }
  comm.alltoallv(send.data(), sb.data(), sd.data(), recv.data(), recvb.data(), rd.data());
  for (size_t i = 0; i < r.num_ids; ++i)
    std::memcpy(out + i * dim_, recv.data() + static_cast<size_t>(r.slot[i]) * dim_, rb);
}

namespace {
struct GradHeader {
  int64_t local_row;  // at the owner
  uint64_t key;
};
}  // namespace

void ShardedEmbedding::apply(Comm& comm, const Routing& r, std::span<const uint64_t> keys,
                             const float* grads) {
  const int n = comm.size();
  const size_t rec = sizeof(GradHeader) + dim_ * sizeof(float);
  // Contributions per owner, packed as (header, dim floats) records.
  std::vector<size_t> count(n, 0);
  std::vector<int> owner_of(r.num_ids);
  for (size_t i = 0; i < r.num_ids; ++i) {
    // The slot says which owner's list the id is in.
    const int o = static_cast<int>(std::upper_bound(r.request_offset.begin() + 1,
                                                    r.request_offset.end(), r.slot[i]) -
                                   (r.request_offset.begin() + 1));
    owner_of[i] = o;
    ++count[o];
  }
  std::vector<size_t> sb(n), sd(n);
  size_t total = 0;
  for (int k = 0; k < n; ++k) { sb[k] = count[k] * rec; sd[k] = total; total += sb[k]; }
  std::vector<char> send(total);
  std::vector<size_t> fill(sd);
  for (size_t i = 0; i < r.num_ids; ++i) {
    const int o = owner_of[i];
    const int64_t id = r.request[o][r.slot[i] - r.request_offset[o]];
    GradHeader h{sharding_.local_index(id), keys[i]};
    char* dst = send.data() + fill[o];
    std::memcpy(dst, &h, sizeof h);
    std::memcpy(dst + sizeof h, grads + i * dim_, dim_ * sizeof(float));
    fill[o] += rec;
  }
  std::vector<uint64_t> sc(n), rc(n);
  for (int k = 0; k < n; ++k) sc[k] = sb[k];
  comm.alltoall_u64(sc.data(), rc.data());
  std::vector<size_t> recvb(n), rd(n);
  size_t rtotal = 0;
  for (int k = 0; k < n; ++k) { recvb[k] = rc[k]; rd[k] = rtotal; rtotal += rc[k]; }
  std::vector<char> recv(rtotal);
  comm.alltoallv(send.data(), sb.data(), sd.data(), recv.data(), recvb.data(), rd.data());

  // Reduce each row's contributions in key order.
  const size_t nrec = rtotal / rec;
  std::vector<GradHeader> hdr(nrec);
  for (size_t i = 0; i < nrec; ++i) std::memcpy(&hdr[i], recv.data() + i * rec, sizeof(GradHeader));
  std::vector<uint32_t> order(nrec);
  std::iota(order.begin(), order.end(), 0u);
  std::sort(order.begin(), order.end(), [&](uint32_t a, uint32_t b) {
    if (hdr[a].local_row != hdr[b].local_row) return hdr[a].local_row < hdr[b].local_row;
    if (hdr[a].key != hdr[b].key) return hdr[a].key < hdr[b].key;
    return a < b;
  });
  opt_.begin_step();
  std::vector<double> acc(dim_);
  std::vector<float> g(dim_);
  int64_t next_dense = 0;  // dense optimizers also move the rows nobody touched
  for (size_t i = 0; i < nrec;) {
    const int64_t row = hdr[order[i]].local_row;
    if (row < 0 || row >= local_rows_)
      fail("table " + name_ + ": gradient for local row " + std::to_string(row) + " outside the shard");
    std::fill(acc.begin(), acc.end(), 0.0);
    for (; i < nrec && hdr[order[i]].local_row == row; ++i) {
      const float* src = reinterpret_cast<const float*>(recv.data() + order[i] * rec + sizeof(GradHeader));
      for (int k = 0; k < dim_; ++k) acc[k] += src[k];
    }
    for (int k = 0; k < dim_; ++k) g[k] = static_cast<float>(acc[k]);
    if (opt_.config().dense())
      for (; next_dense < row; ++next_dense) opt_.update(next_dense, local_row(next_dense), nullptr);
    opt_.update(row, local_row(row), g.data());
    next_dense = row + 1;
  }
  if (opt_.config().dense())
    for (; next_dense < local_rows_; ++next_dense) opt_.update(next_dense, local_row(next_dense), nullptr);
}

}  // namespace shardrec::dist
