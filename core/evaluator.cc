#include "core/evaluator.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>

#include "base/error.h"
#include "base/log.h"
#include "core/gpu_backend.h"
#include "core/metrics.h"
#include "base/rng.h"
#include "dist/exact_sum.h"

namespace shardrec {

double EvalResult::get(const std::string& name) const {
  auto it = values.find(name);
  if (it == values.end()) {
    std::string known;
    for (auto& [k, v] : values) known += (known.empty() ? "" : ", ") + k;
    fail("metric '" + name + "' is not computed (available: " + known + ")");
  }
  return it->second;
}

void top_k(const MFModel& model, const io::DataShard& data, const std::vector<int64_t>& users, int K,
           bool mask_valid, const EvalConfig& cfg, dist::Comm& comm, const TopKSink& sink) {
  // Scoring vectors of this rank's items (the rows themselves for MF; [e, W f + b] for VBPR).
  const std::vector<float> qloc = model.local_item_vectors();
  RankInput in;
  in.users = &model.user.sharding();
  in.user_rows = model.user.local_data().data();
  in.user_dim = model.dim();
  in.items = &model.item.sharding();
  in.item_rows = qloc.data();
  in.item_dim = model.dim();
  in.pool = model.item.pool();
  top_k(in, data, users, K, mask_valid, cfg, comm, sink);
}

void top_k(const RankInput& in, const io::DataShard& data, const std::vector<int64_t>& users, int K,
           bool mask_valid, const EvalConfig& cfg, dist::Comm& comm, const TopKSink& sink) {
  const int n = comm.size(), me = comm.rank();
  const int d = in.user_dim;  // the gathered users' width
  SHARDREC_CHECK(in.score || in.item_dim == d, "top_k: user and item vectors of different widths");
  const float* qloc = in.item_rows;
  auto qrow = [&](int64_t l) { return qloc + static_cast<size_t>(l) * in.item_dim; };
  const dist::Sharding& item_sharding = *in.items;
  const int64_t num_items = item_sharding.rows();

  // Users per rank per round so that all gathered users x local items fit the score budget.
  const int64_t per_round = std::max<int64_t>(1, cfg.score_budget / std::max<int64_t>(1, num_items));
  const int64_t chunk = std::max<int64_t>(1, per_round / n);
  // Every rank's count of users: the rounds are the most any rank needs, and the progress line
  // counts the users of all ranks done after each round (the rounds are collectives, so the ranks
  // move together and rank 0's line is the global fraction).
  std::vector<uint64_t> counts(n);
  comm.allgather_u64(users.size(), counts.data());
  int64_t rounds = 0, total = 0;
  for (const uint64_t v : counts) {
    rounds = std::max(rounds, (static_cast<int64_t>(v) + chunk - 1) / chunk);
    total += static_cast<int64_t>(v);
  }
  if (cfg.progress) cfg.progress->begin(total);

  std::vector<float> scores;

  for (int64_t round = 0; round < rounds; ++round) {
    const size_t b = std::min<size_t>(users.size(), round * chunk);
    const size_t e = std::min<size_t>(users.size(), b + chunk);
    std::vector<int64_t> mine(users.begin() + b, users.begin() + e);
    // Vectors of this round's users (this rank's own).
    std::vector<float> uvec(mine.size() * d);
    for (size_t i = 0; i < mine.size(); ++i) {
      SHARDREC_CHECK(in.users->owner(mine[i]) == me, "top_k: a user owned by another rank");
      std::memcpy(&uvec[i * d], in.user_rows + static_cast<size_t>(in.users->local_index(mine[i])) * d,
                  d * sizeof(float));
    }
    auto all_users = dist::allgather(comm, mine);
    auto all_vecs = dist::allgather(comm, uvec);
    std::vector<size_t> first(n + 1, 0);
    for (int k = 0; k < n; ++k) first[k + 1] = first[k] + all_users[k].size();
    const size_t g = first[n];
    std::vector<const float*> gvec(g);
    for (int k = 0; k < n; ++k)
      for (size_t i = 0; i < all_users[k].size(); ++i) gvec[first[k] + i] = &all_vecs[k][i * d];

    // Mask pairs (round-local user index, item) go to the item's owner.
    std::vector<std::vector<int64_t>> mask_send(n);
    for (size_t i = 0; i < mine.size(); ++i) {
      const int64_t gu = static_cast<int64_t>(first[me] + i);
      auto add = [&](std::span<const int32_t> its) {
        for (int32_t it : its) {
          auto& v = mask_send[item_sharding.owner(it)];
          v.push_back(gu);
          v.push_back(it);
        }
      };
      add(data.split[0].items_of(mine[i]));
      if (mask_valid) add(data.split[1].items_of(mine[i]));
    }
    auto mask_recv = dist::all_to_all(comm, mask_send);

    // Score the local item shard for every gathered user and keep a local top-K per user, sent
    // to that user's rank (padded with item -1).
    const int64_t L = item_sharding.local_rows(me);
    std::vector<std::vector<ScoredItem>> top_send(n);
    const float masked = -std::numeric_limits<float>::infinity();
    if (cfg.device == "cuda" && !in.score && in.offset == 0) {
      // On the GPU: the same scores (bit-identical dot products) and the same order, so the
      // same lists as the CPU path below.
      std::vector<std::vector<int64_t>> ex(g);
      for (auto& v : mask_recv)
        for (size_t i = 0; i + 1 < v.size(); i += 2) ex[v[i]].push_back(v[i + 1]);
      std::vector<int64_t> ex_ptr(g + 1, 0), ex_ids, local_ids(L);
      for (size_t u = 0; u < g; ++u) {
        std::sort(ex[u].begin(), ex[u].end());
        ex_ids.insert(ex_ids.end(), ex[u].begin(), ex[u].end());
        ex_ptr[u + 1] = static_cast<int64_t>(ex_ids.size());
      }
      for (int64_t l = 0; l < L; ++l) local_ids[l] = item_sharding.global_id(me, l);
      std::vector<float> uflat(g * d), ts(g * K);
      std::vector<int64_t> ti(g * K);
      for (size_t u = 0; u < g; ++u) std::memcpy(&uflat[u * d], gvec[u], d * sizeof(float));
      gpu_score_topk(uflat.data(), g, qloc, local_ids.data(), static_cast<size_t>(L), d, ex_ptr, ex_ids, K,
                     ts.data(), ti.data());
      for (int k = 0; k < n; ++k)
        for (size_t u = first[k]; u < first[k + 1]; ++u)
          for (int j = 0; j < K; ++j)
            top_send[k].push_back(ti[u * K + j] >= 0 ? ScoredItem{ts[u * K + j], ti[u * K + j]}
                                                     : ScoredItem{masked, -1});
    } else {
    scores.resize(g * L);  // every entry is written below
    if (in.score) {
      in.score(gvec.data(), g, qloc, static_cast<size_t>(L), scores.data());
    } else {
      // Four users at a time share each item row's loads (same bits as MFModel::score), and all
      // the round's users go over one tile of item rows while it is in cache: a large item table
      // streams from memory once a round, not once per four users.
      const int64_t tile = std::max<int64_t>(64, (int64_t{256} << 10) / (static_cast<int64_t>(d) * 4 + 1));
      const int64_t tiles = (L + tile - 1) / tile;
      const size_t groups = (g + 3) / 4;  // the last one holds 1 to 4 users
      auto score = [&](int64_t t0, int64_t t1, size_t g0, size_t g1) {
        for (int64_t t = t0; t < t1; ++t) {
          const int64_t l0 = t * tile, l1 = std::min(L, l0 + tile);
          for (size_t q = g0; q < g1; ++q) {
            const size_t gu = 4 * q;
            if (gu + 4 <= g) {
              const float* four[4] = {gvec[gu], gvec[gu + 1], gvec[gu + 2], gvec[gu + 3]};
              float out[4];
              for (int64_t l = l0; l < l1; ++l) {
                kernels::dot4(four, qrow(l), d, out);
                for (int k = 0; k < 4; ++k) scores[(gu + k) * L + l] = out[k];
              }
            } else {
              for (size_t u = gu; u < g; ++u)
                for (int64_t l = l0; l < l1; ++l) scores[u * L + l] = MFModel::score(gvec[u], qrow(l), d);
            }
          }
        }
      };
      const size_t nt = in.pool ? static_cast<size_t>(in.pool->size()) : 1;
      if (static_cast<size_t>(tiles) >= 4 * nt)  // split the items
        parallel(in.pool, static_cast<size_t>(tiles), [&](size_t lo, size_t hi, int) {
          score(static_cast<int64_t>(lo), static_cast<int64_t>(hi), 0, groups);
        });
      else  // few tiles: split the users
        parallel(in.pool, groups, [&](size_t lo, size_t hi, int) { score(0, tiles, lo, hi); });
      if (in.offset != 0)
        for (float& x : scores) x += in.offset;
    }
    for (auto& v : mask_recv)
      for (size_t i = 0; i + 1 < v.size(); i += 2)
        scores[v[i] * L + item_sharding.local_index(v[i + 1])] = masked;

    // The local top K of each user: a heap of the K best so far whose top is the K-th (ranks_before
    // is a total order over distinct items, so this is the set and order a full sort gives); most
    // scores fall below the K-th and cost one comparison. Users split over the threads.
    const size_t want = static_cast<size_t>(K);
    for (int k = 0; k < n; ++k) top_send[k].resize((first[k + 1] - first[k]) * want);
    parallel(in.pool, g, [&](size_t lo, size_t hi, int) {
      std::vector<ScoredItem> c;
      c.reserve(want);
      for (size_t gu = lo; gu < hi; ++gu) {
        c.clear();
        const float* row = &scores[gu * L];
        for (int64_t l = 0; want > 0 && l < L; ++l) {
          const float s = row[l];
          if (!(s > masked)) continue;  // a masked item, or a NaN (never ranked)
          if (c.size() == want) {
            if (s < c.front().score) continue;  // below the K-th
            const ScoredItem x{s, item_sharding.global_id(me, l)};
            if (!ranks_before(x, c.front())) continue;
            std::pop_heap(c.begin(), c.end(), ranks_before);
            c.back() = x;
          } else {
            c.push_back({s, item_sharding.global_id(me, l)});
          }
          std::push_heap(c.begin(), c.end(), ranks_before);
        }
        std::sort_heap(c.begin(), c.end(), ranks_before);
        c.resize(want, ScoredItem{masked, -1});
        const int k = static_cast<int>(std::upper_bound(first.begin(), first.end(), gu) - first.begin()) - 1;
        std::copy(c.begin(), c.end(), top_send[k].begin() + static_cast<std::ptrdiff_t>((gu - first[k]) * want));
      }
    });
    }
    auto top_recv = dist::all_to_all(comm, top_send);
    std::vector<ScoredItem> merged;
    std::vector<int64_t> topk;
    std::vector<float> topk_scores;
    for (size_t i = 0; i < mine.size(); ++i) {
      merged.clear();
      for (int k = 0; k < n; ++k)
        for (int j = 0; j < K; ++j) {
          const ScoredItem& x = top_recv[k][i * K + j];
          if (x.item >= 0) merged.push_back(x);
        }
      const size_t keep = std::min<size_t>(K, merged.size());
      std::partial_sort(merged.begin(), merged.begin() + keep, merged.end(), ranks_before);
      topk.clear();
      topk_scores.clear();
      for (size_t j = 0; j < keep; ++j) {
        topk.push_back(merged[j].item);
        topk_scores.push_back(merged[j].score);
      }
      sink(mine[i], topk, topk_scores);
    }
    if (cfg.progress) {
      int64_t done = 0;
      for (const uint64_t v : counts) done += std::min(static_cast<int64_t>(v), (round + 1) * chunk);
      cfg.progress->update(done);
    }
  }
}

namespace {

void ranking(const MFModel& model, const io::DataShard& data, int split, const EvalConfig& cfg,
             dist::Comm& comm, EvalResult& res) {
  const int K = *std::max_element(cfg.ks.begin(), cfg.ks.end());
  const io::UserSlice& target = data.split[split];
  std::vector<int64_t> users;  // local users with held-out items in this split
  for (int64_t u = target.user_lo; u < target.user_hi; ++u)
    if (!target.items_of(u).empty()) users.push_back(u);
  const size_t nks = cfg.ks.size();
  dist::ExactSums sums(metrics::kNumRankMetrics * nks + 1);
  std::vector<double> per_user(metrics::kNumRankMetrics * nks);
  std::vector<int64_t> relevant;
  top_k(model, data, users, K, split == 2 && cfg.mask_valid_in_test, cfg, comm,
        [&](int64_t user, std::span<const int64_t> topk, std::span<const float>) {
          auto rel = target.items_of(user);
          relevant.assign(rel.begin(), rel.end());
          std::sort(relevant.begin(), relevant.end());
          relevant.erase(std::unique(relevant.begin(), relevant.end()), relevant.end());
          std::fill(per_user.begin(), per_user.end(), 0.0);
          metrics::add_user_ranking(topk, relevant, cfg.ks, per_user.data());
          for (size_t m = 0; m < per_user.size(); ++m) sums.add(m, per_user[m]);
          sums.add(per_user.size(), 1.0);
        });
  sums.allreduce(comm);
  const double nu = sums.value(per_user.size());
  res.users = static_cast<int64_t>(std::llround(nu));
  for (int m = 0; m < metrics::kNumRankMetrics; ++m)
    for (size_t j = 0; j < nks; ++j)
      res.values[std::string(metrics::rank_metric_name(static_cast<metrics::RankMetric>(m))) + "@" +
                 std::to_string(cfg.ks[j])] =
          nu > 0 ? sums.value(metrics::rank_slot(static_cast<metrics::RankMetric>(m), j, nks)) / nu
                 : 0.0;
}

void pointwise(const MFModel& model, const io::DataShard& data, int split, const EvalConfig& cfg,
               dist::Comm& comm, EvalResult& res) {
  const int d = model.dim();
  const io::UserSlice& target = data.split[split];
  const int64_t num_items = model.item.rows();
  // Rows: every positive of the split, then one negative for it; grouped by user.
  std::vector<int64_t> row_user, row_item;
  std::vector<uint8_t> label;
  std::vector<int64_t> seen;
  for (int64_t u = target.user_lo; u < target.user_hi; ++u) {
    auto pos = target.items_of(u);
    if (pos.empty()) continue;
    seen.clear();
    for (int s = 0; s < 3; ++s)
      for (int32_t it : data.split[s].items_of(u)) seen.push_back(it);
    std::sort(seen.begin(), seen.end());
    seen.erase(std::unique(seen.begin(), seen.end()), seen.end());
    if (static_cast<int64_t>(seen.size()) >= num_items) continue;  // no negative exists
    for (size_t k = 0; k < pos.size(); ++k) {
      row_user.push_back(u);
      row_item.push_back(pos[k]);
      label.push_back(1);
      // The negative depends on (seed, split, dataset row index) only.
      CounterRng rng(cfg.seed, 0xe7a1, split, static_cast<uint64_t>(target.row_lo + target.ptr[u - target.user_lo] + k));
      int64_t j;
      do j = static_cast<int64_t>(rng.below(num_items));
      while (std::binary_search(seen.begin(), seen.end(), j));
      row_user.push_back(u);
      row_item.push_back(j);
      label.push_back(0);
    }
  }
  auto ur = model.user.route(comm, row_user);
  auto ir = model.item.route(comm, row_item);
  std::vector<float> uv(row_user.size() * d), iv(row_item.size() * model.item_dim());
  model.user.gather(comm, ur, uv.data());
  model.item.gather(comm, ir, iv.data());
  std::vector<float> fv(model.vbpr() ? row_item.size() * model.feat_dim() : 0), qv(row_item.size() * d);
  if (model.vbpr()) model.features->gather(comm, ir, fv.data());
  model.item_vectors(iv.data(), fv.data(), row_item.size(), qv.data());
  std::vector<float> logit(row_user.size());
  for (size_t r = 0; r < logit.size(); ++r) logit[r] = MFModel::score(&uv[r * d], &qv[r * d], d);

  dist::ExactSums sums(3);  // gauc weighted sum, gauc weight, log loss
  for (size_t a = 0; a < logit.size();) {
    size_t b = a;
    while (b < logit.size() && row_user[b] == row_user[a]) ++b;
    metrics::GaucAccum one;
    one.add_user(std::span(logit).subspan(a, b - a), std::span(label).subspan(a, b - a),
                 metrics::GaucWeight::kUnweighted);
    sums.add(0, one.weighted_sum);
    sums.add(1, one.weight);
    a = b;
  }
  for (size_t r = 0; r < logit.size(); ++r)  // per row: the exact sum must not see rank groupings
    sums.add(2, metrics::log_loss_sum(std::span(logit).subspan(r, 1), std::span(label).subspan(r, 1)));
  sums.allreduce(comm);
  // Pooled AUC needs every score in one place: rank 0 receives all (score, label) pairs.
  std::vector<std::vector<float>> ls(comm.size());
  std::vector<std::vector<uint8_t>> lb(comm.size());
  ls[0] = logit;
  lb[0] = label;
  auto got_logit = dist::all_to_all(comm, ls);
  auto got_label = dist::all_to_all(comm, lb);
  std::vector<float> pooled;
  std::vector<uint8_t> pooled_label;
  for (int k = 0; k < comm.size(); ++k) {
    pooled.insert(pooled.end(), got_logit[k].begin(), got_logit[k].end());
    pooled_label.insert(pooled_label.end(), got_label[k].begin(), got_label[k].end());
  }
  double auc = comm.rank() == 0 ? metrics::auc(pooled, pooled_label) : 0.0;
  comm.broadcast(&auc, sizeof auc, 0);
  int64_t rows = static_cast<int64_t>(logit.size());
  comm.allreduce_sum(&rows, 1);
  res.values["auc"] = auc;
  res.values["gauc"] = sums.value(1) > 0 ? sums.value(0) / sums.value(1) : std::nan("");
  res.values["logloss"] = rows > 0 ? sums.value(2) / static_cast<double>(rows) : std::nan("");
}

}  // namespace

EvalResult evaluate(const MFModel& model, const io::DataShard& data, int split,
                    const EvalConfig& cfg, dist::Comm& comm) {
  SHARDREC_CHECK(split == 1 || split == 2, "evaluate: split must be valid (1) or test (2)");
  EvalResult res;
  ranking(model, data, split, cfg, comm, res);
  if (cfg.pointwise) pointwise(model, data, split, cfg, comm, res);
  return res;
}

}  // namespace shardrec
