#include "dist/item_graph.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <string>

#include "base/error.h"
#include "kernels/embedding_ops.h"
#include "kernels/graph_ops.h"

namespace shardrec::dist {

namespace {
// Terms sorted by column, repeated columns added (in the order given: a fixed order).
void canonical(std::vector<std::pair<int64_t, float>>& r) {
  std::stable_sort(r.begin(), r.end(), [](const auto& a, const auto& b) { return a.first < b.first; });
  size_t o = 0;
  for (size_t k = 0; k < r.size(); ++k) {
    if (o > 0 && r[o - 1].first == r[k].first) {
      r[o - 1].second += r[k].second;
    } else {
      r[o++] = r[k];
    }
  }
  r.resize(o);
}
}  // namespace

std::vector<std::vector<int64_t>> knn_items(Comm& comm, const Sharding& items, const float* features, int F, int k,
                                            ThreadPool* pool) {
  const int me = comm.rank(), n = comm.size();
  const int64_t L = items.local_rows(me), I = items.rows();
  if (k < 1 || k > I) fail("knn: k = " + std::to_string(k) + " for " + std::to_string(I) + " items");
  // Every item's normalised row, in id order.
  std::vector<float> mine(static_cast<size_t>(L) * F);
  for (int64_t l = 0; l < L; ++l) {
    const float* f = features + l * F;
    const float nrm = std::sqrt(kernels::sum_squares(f, F));
    const float inv = nrm > 0.0f ? 1.0f / nrm : 0.0f;
    for (int c = 0; c < F; ++c) mine[l * F + c] = f[c] * inv;
  }
  const auto got = allgather(comm, mine);
  std::vector<float> z(static_cast<size_t>(I) * F);
  for (int q = 0; q < n; ++q)
    for (int64_t l = 0; l < items.local_rows(q); ++l)
      std::memcpy(&z[static_cast<size_t>(items.global_id(q, l)) * F], &got[q][static_cast<size_t>(l) * F],
                  sizeof(float) * F);
  std::vector<std::vector<int64_t>> out(static_cast<size_t>(L));
  parallel(pool, static_cast<size_t>(L), [&](size_t lo, size_t hi, int) {
    std::vector<float> s(static_cast<size_t>(I));
    std::vector<int64_t> idx(static_cast<size_t>(I));
    for (size_t l = lo; l < hi; ++l) {
      const int64_t id = items.global_id(me, static_cast<int64_t>(l));
      kernels::dot_rows(z.data(), I, &z[static_cast<size_t>(id) * F], F, s.data());
      for (int64_t j = 0; j < I; ++j) idx[j] = j;
      std::partial_sort(idx.begin(), idx.begin() + k, idx.end(),
                        [&](int64_t a, int64_t b) { return s[a] > s[b] || (s[a] == s[b] && a < b); });
      out[l].assign(idx.begin(), idx.begin() + k);
      std::sort(out[l].begin(), out[l].end());
    }
  });
  return out;
}

ItemGraph::ItemGraph(Comm& comm, const Sharding& items, const SparseRows& rows) {
  const int me = comm.rank(), n = comm.size();
  const int64_t L = items.local_rows(me);
  if (static_cast<int64_t>(rows.size()) != L)
    fail("item graph: " + std::to_string(rows.size()) + " rows for " + std::to_string(L) + " local items");
  SparseRows fwd = rows;
  // A^T: each term (i, j, w) becomes row j's term (i, w), at j's owner.
  std::vector<std::vector<int64_t>> ids(n);
  std::vector<std::vector<float>> ws(n);
  for (int64_t l = 0; l < L; ++l) {
    canonical(fwd[l]);
    const int64_t i = items.global_id(me, l);
    for (const auto& [j, w] : fwd[l]) {
      if (j < 0 || j >= items.rows())
        fail("item graph: column " + std::to_string(j) + " outside the item table (" + std::to_string(items.rows()) +
             " rows)");
      ids[items.owner(j)].push_back(j);
      ids[items.owner(j)].push_back(i);
      ws[items.owner(j)].push_back(w);
    }
  }
  const auto gi = all_to_all(comm, ids);
  const auto gw = all_to_all(comm, ws);
  SparseRows bwd(static_cast<size_t>(L));
  for (int q = 0; q < n; ++q)
    for (size_t t = 0; t < gw[q].size(); ++t)
      bwd[items.local_index(gi[q][2 * t])].emplace_back(gi[q][2 * t + 1], gw[q][t]);
  for (auto& r : bwd) canonical(r);  // each (row, column) once: no additions, the order is by id
  fwd_.build(comm, items, fwd);
  bwd_.build(comm, items, bwd);
}

void ItemGraph::Product::build(Comm& comm, const Sharding& items, const SparseRows& rows) {
  const int n = comm.size();
  std::vector<std::vector<int64_t>> req(n);
  for (const auto& r : rows)
    for (const auto& t : r) req[items.owner(t.first)].push_back(t.first);
  for (auto& r : req) {
    std::sort(r.begin(), r.end());
    r.erase(std::unique(r.begin(), r.end()), r.end());
  }
  const auto ask = all_to_all(comm, req);
  serve.assign(n, {});
  for (int q = 0; q < n; ++q)
    for (int64_t id : ask[q]) serve[q].push_back(items.local_index(id));
  recv_rows.assign(n, 0);
  std::vector<size_t> base(n + 1, 0);
  for (int q = 0; q < n; ++q) {
    recv_rows[q] = req[q].size();
    base[q + 1] = base[q] + recv_rows[q];
  }
  if (base[n] > std::numeric_limits<uint32_t>::max()) fail("item graph: more than 2^32 halo rows on one rank");
  ptr.assign(rows.size() + 1, 0);
  nbr.clear();
  w.clear();
  for (size_t l = 0; l < rows.size(); ++l) {
    ptr[l + 1] = ptr[l] + static_cast<int64_t>(rows[l].size());
    for (const auto& [j, wt] : rows[l]) {
      const int q = items.owner(j);
      const auto& r = req[q];
      nbr.push_back(static_cast<uint32_t>(base[q] + (std::lower_bound(r.begin(), r.end(), j) - r.begin())));
      w.push_back(wt);
    }
  }
}

void ItemGraph::Product::apply(Comm& comm, const float* x, float* out, int dim, ThreadPool* pool) {
  const int n = comm.size();
  const size_t row = static_cast<size_t>(dim) * sizeof(float);
  std::vector<size_t> out_rows(n);
  for (int q = 0; q < n; ++q) out_rows[q] = serve[q].size();
  const RowLayout lay(out_rows, recv_rows, row);
  float* s = send.get(lay.send_total / sizeof(float));
  float* p = s;
  for (int q = 0; q < n; ++q)
    for (int64_t l : serve[q]) {
      std::memcpy(p, x + l * dim, row);
      p += dim;
    }
  float* r = recv.get(lay.recv_total / sizeof(float));
  comm.alltoallv(s, lay.send_bytes.data(), lay.send_displs.data(), r, lay.recv_bytes.data(), lay.recv_displs.data());
  parallel(pool, ptr.size() - 1, [&](size_t lo, size_t hi, int) {
    kernels::csr_weighted_row_sums(r, ptr.data(), nbr.data(), w.data(), out, dim, lo, hi);
  });
}

}  // namespace shardrec::dist
