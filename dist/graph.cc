#include "dist/graph.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <string>

#include "base/error.h"
#include "kernels/graph_ops.h"

namespace shardrec::dist {

namespace {
// d^-1/2 in double, rounded once: the same float wherever it is computed.
float inv_sqrt_degree(int64_t d) { return d > 0 ? static_cast<float>(1.0 / std::sqrt(static_cast<double>(d))) : 0.0f; }

// Ids bucketed by owner, each bucket sorted and unique.
std::vector<std::vector<int64_t>> requests(const std::vector<int64_t>& ids, const Sharding& s, int world) {
  std::vector<std::vector<int64_t>> req(world);
  for (int64_t id : ids) req[s.owner(id)].push_back(id);
  for (auto& r : req) {
    std::sort(r.begin(), r.end());
    r.erase(std::unique(r.begin(), r.end()), r.end());
  }
  return req;
}

// The position of id in its owner's sorted request list.
size_t position(const std::vector<int64_t>& sorted, int64_t id) {
  return static_cast<size_t>(std::lower_bound(sorted.begin(), sorted.end(), id) - sorted.begin());
}

}  // namespace

BipartiteGraph::BipartiteGraph(Comm& comm, const Sharding& users, const Sharding& items,
                               std::span<const int64_t> ptr, std::span<const int32_t> item)
    : world_(comm.size()), me_(comm.rank()) {
  const int n = world_;
  const int64_t L = users.local_rows(me_);
  if (static_cast<int64_t>(ptr.size()) != L + 1)
    fail("graph: " + std::to_string(ptr.size()) + " user offsets for " + std::to_string(L) + " local users");
  // This rank's users: their distinct items, ascending (the summation order of a user's row).
  std::vector<std::vector<int64_t>> u_items(L);
  std::vector<std::vector<int64_t>> pairs(n);  // (item, user) for the items' owners
  std::vector<int64_t> all_items;
  for (int64_t l = 0; l < L; ++l) {
    auto& v = u_items[l];
    for (int64_t e = ptr[l]; e < ptr[l + 1]; ++e) {
      const int64_t i = item[e];
      if (i < 0 || i >= items.rows())
        fail("graph: item id " + std::to_string(i) + " outside the item table (" + std::to_string(items.rows()) +
             " rows)");
      v.push_back(i);
    }
    std::sort(v.begin(), v.end());
    v.erase(std::unique(v.begin(), v.end()), v.end());
    const int64_t u = users.global_id(me_, l);
    for (int64_t i : v) {
      pairs[items.owner(i)].push_back(i);
      pairs[items.owner(i)].push_back(u);
      all_items.push_back(i);
    }
  }
  su_.resize(L);
  for (int64_t l = 0; l < L; ++l) su_[l] = inv_sqrt_degree(static_cast<int64_t>(u_items[l].size()));

  // The items' owners: each local item's users, ascending.
  const auto got = all_to_all(comm, pairs);
  const int64_t I = items.local_rows(me_);
  std::vector<int64_t> cnt(I + 1, 0);
  for (const auto& g : got)
    for (size_t k = 0; k < g.size(); k += 2) ++cnt[items.local_index(g[k]) + 1];
  for (int64_t l = 0; l < I; ++l) cnt[l + 1] += cnt[l];
  std::vector<int64_t> i_users(cnt[I]);
  std::vector<int64_t> fill(cnt.begin(), cnt.end() - 1);
  for (const auto& g : got)
    for (size_t k = 0; k < g.size(); k += 2) i_users[fill[items.local_index(g[k])]++] = g[k + 1];
  for (int64_t l = 0; l < I; ++l) std::sort(i_users.begin() + cnt[l], i_users.begin() + cnt[l + 1]);
  si_.resize(I);
  for (int64_t l = 0; l < I; ++l) si_[l] = inv_sqrt_degree(cnt[l + 1] - cnt[l]);

  // The halo: the rows our edges need, asked of their owners; the owners answer in that order.
  const auto req_items = requests(all_items, items, n);
  const auto req_users = requests(i_users, users, n);
  const auto ask_items = all_to_all(comm, req_items);
  const auto ask_users = all_to_all(comm, req_users);
  serve_items_.assign(n, {});
  serve_users_.assign(n, {});
  for (int q = 0; q < n; ++q) {
    for (int64_t id : ask_items[q]) serve_items_[q].push_back(items.local_index(id));
    for (int64_t id : ask_users[q]) serve_users_[q].push_back(users.local_index(id));
    if (q != me_) halo_out_ += static_cast<int64_t>(ask_items[q].size() + ask_users[q].size());
  }
  recv_rows_.assign(n, 0);
  std::vector<size_t> base(n + 1, 0);
  for (int q = 0; q < n; ++q) {
    recv_rows_[q] = req_items[q].size() + req_users[q].size();
    base[q + 1] = base[q] + recv_rows_[q];
    if (q != me_) halo_in_ += static_cast<int64_t>(recv_rows_[q]);
  }
  if (base[n] > std::numeric_limits<uint32_t>::max()) fail("graph: more than 2^32 halo rows on one rank");

  u_ptr_.assign(L + 1, 0);
  for (int64_t l = 0; l < L; ++l) {
    u_ptr_[l + 1] = u_ptr_[l] + static_cast<int64_t>(u_items[l].size());
    for (int64_t i : u_items[l]) {
      const int q = items.owner(i);
      u_nbr_.push_back(static_cast<uint32_t>(base[q] + position(req_items[q], i)));
    }
  }
  i_ptr_ = cnt;
  i_nbr_.resize(i_users.size());
  for (size_t e = 0; e < i_users.size(); ++e) {
    const int q = users.owner(i_users[e]);
    i_nbr_[e] = static_cast<uint32_t>(base[q] + req_items[q].size() + position(req_users[q], i_users[e]));
  }
}

void BipartiteGraph::multiply(Comm& comm, const float* xu, const float* xi, float* ou, float* oi, int dim,
                              ThreadPool* pool) {
  const int n = world_;
  std::vector<size_t> out_rows(n);
  for (int q = 0; q < n; ++q) out_rows[q] = serve_items_[q].size() + serve_users_[q].size();
  const RowLayout lay(out_rows, recv_rows_, static_cast<size_t>(dim) * sizeof(float));
  // What we send is our rows times their d^-1/2, so a receiver only sums.
  float* send = send_.get(lay.send_total / sizeof(float));
  float* s = send;
  for (int q = 0; q < n; ++q) {
    for (int64_t l : serve_items_[q]) {
      const float c = si_[l];
      const float* x = xi + l * dim;
      for (int k = 0; k < dim; ++k) s[k] = c * x[k];
      s += dim;
    }
    for (int64_t l : serve_users_[q]) {
      const float c = su_[l];
      const float* x = xu + l * dim;
      for (int k = 0; k < dim; ++k) s[k] = c * x[k];
      s += dim;
    }
  }
  // One rank receives exactly what it sends, in the same order: no copy.
  float* recv = send;
  if (n > 1) {
    recv = recv_.get(lay.recv_total / sizeof(float));
    comm.alltoallv(send, lay.send_bytes.data(), lay.send_displs.data(), recv, lay.recv_bytes.data(),
                   lay.recv_displs.data());
  }
  const size_t U = su_.size(), I = si_.size();
  parallel(pool, U + I, [&](size_t lo, size_t hi, int) {
    if (lo < U) kernels::csr_scaled_row_sums(recv, u_ptr_.data(), u_nbr_.data(), su_.data(), ou, dim, lo, std::min(hi, U));
    if (hi > U)
      kernels::csr_scaled_row_sums(recv, i_ptr_.data(), i_nbr_.data(), si_.data(), oi, dim, std::max(lo, U) - U, hi - U);
  });
}

size_t BipartiteGraph::memory_bytes(int dim) const {
  size_t rows_out = 0, rows_in = 0;
  for (int q = 0; q < world_; ++q) {
    rows_out += serve_items_[q].size() + serve_users_[q].size();
    rows_in += recv_rows_[q];
  }
  return (su_.size() + si_.size()) * sizeof(float) + (u_ptr_.size() + i_ptr_.size()) * sizeof(int64_t) +
         (u_nbr_.size() + i_nbr_.size()) * sizeof(uint32_t) + rows_out * sizeof(int64_t) +
         (rows_out + rows_in) * static_cast<size_t>(dim) * sizeof(float);
}

}  // namespace shardrec::dist
