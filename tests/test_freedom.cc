// FREEDOM (core/freedom.h): the degree-sensitive pruning (the kept count, a pure key, the same
// edges on 1-4 ranks, the heavier edges kept more often), the propagation (LightGCN's mean over the
// user-item graph plus the item-item kNN graph) against a dense double reference and its backward
// against central differences, the modalities' projection gradient against central differences,
// training bitwise the same on 1-4 ranks and threads (plain and Mirror Gradient), and the refusals.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <map>
#include <set>

#include "base/error.h"
#include "base/rng.h"
#include "core/freedom.h"
#include "core/model_kind.h"
#include "core/trainer.h"
#include "dist/inproc_comm.h"
#include "fixtures.h"
#include "io/features.h"

namespace shardrec {
namespace {

using testing::expect_finite_differences;
using testing::expect_same_run;
using testing::full_table;
using testing::seeded_rows;
using testing::sum_over;
using testing::value;
using testing::whole;

// A planted dataset with two modalities: "image" (the item's group one-hot plus noise, 5 wide) and
// "text" (noise, 4 wide).
std::string freedom_dataset(const std::string& name, int users, int items, int groups, uint64_t seed) {
  auto d = testing::planted_dataset(users, items, groups, seed);
  const std::string path = testing::fresh_path("freedom", name + ".h5");
  const int64_t Fi = groups + 2, Ft = 4;
  std::vector<float> img(items * Fi, 0.0f), txt(items * Ft);
  CounterRng r(seed, 11);
  for (int i = 0; i < items; ++i) {
    img[i * Fi + i % groups] = 1.0f;
    for (int k = 0; k < 2; ++k) img[i * Fi + groups + k] = static_cast<float>(r.normal() * 0.3);
    for (int k = 0; k < Ft; ++k) txt[i * Ft + k] = static_cast<float>(r.normal());
  }
  io::write_dataset(d, path, "test_freedom", [&](io::H5File& f) {
    io::write_modality(f, "image", img, items, Fi, 0, "test");
    io::write_modality(f, "text", txt, items, Ft, 0, "test");
  });
  return path;
}

TrainConfig freedom_config(const std::string& data) {
  TrainConfig c;
  c.data = data;
  c.model = "freedom";
  c.features = "image,text";
  c.dim = 6;
  c.batch = 41;  // does not divide the rows: the last step is partial
  c.epochs = 3;
  c.eval_every = 0;
  c.opt.lr = 0.01f;
  c.eval.ks = {5};
  c.graph_layers = 2;
  c.freedom_knn = 4;
  c.freedom_feature_weight = 0.1f;  // large enough for the projections to move the user rows
  return c;
}

std::set<std::pair<int64_t, int64_t>> kept_on(int world, const io::PreparedDataset& d, double prune, uint64_t seed,
                                               int epoch, int64_t* total = nullptr, int64_t* kept = nullptr) {
  std::set<std::pair<int64_t, int64_t>> out;
  dist::run_ranks(world, [&](dist::Comm& comm) {
    auto shard = io::shard_from_memory(d, comm);
    const auto& tr = shard.train();
    const KeptEdges k =
        freedom_prune_edges(comm, shard.users, shard.info.num_items, tr.ptr, tr.item, prune, seed, epoch);
    std::vector<int64_t> mine;
    for (int64_t l = 0; l + 1 < static_cast<int64_t>(k.ptr.size()); ++l)
      for (int64_t e = k.ptr[l]; e < k.ptr[l + 1]; ++e) {
        mine.push_back(shard.users.global_id(comm.rank(), l));
        mine.push_back(k.item[e]);
      }
    const auto all = dist::allgather(comm, mine);
    if (comm.rank() == 0) {
      for (const auto& r : all)
        for (size_t j = 0; j < r.size(); j += 2) out.emplace(r[j], r[j + 1]);
      if (total) *total = k.edges_total;
      if (kept) *kept = k.kept_total;
    }
  });
  return out;
}

TEST(Freedom, PruningKeepsTheReferenceCountAsAPureFunctionOfSeedEpochAndEdge) {
  const auto d = testing::planted_dataset(40, 23, 3, 5);
  std::set<std::pair<int64_t, int64_t>> edges;
  std::map<int64_t, int64_t> du, di;
  for (size_t r = 0; r < d.train.size(); ++r) edges.emplace(d.train.user[r], d.train.item[r]);
  for (const auto& [u, i] : edges) ++du[u], ++di[i];
  const int64_t M = static_cast<int64_t>(edges.size());
  for (double prune : {0.8, 0.9, 0.5}) {
    int64_t total = 0, kept = 0;
    const auto ref = kept_on(1, d, prune, 7, 2, &total, &kept);
    EXPECT_EQ(total, M);
    EXPECT_EQ(kept, static_cast<int64_t>(static_cast<double>(M) * (1.0 - prune)));  // MMRec's int(nnz * (1 - p))
    EXPECT_EQ(static_cast<int64_t>(ref.size()), kept) << prune;
    for (const auto& e : ref) EXPECT_TRUE(edges.count(e)) << "a kept edge is a training edge";
    // The same edges for any number of ranks, and again for the same (seed, epoch).
    for (int world = 2; world <= 4; ++world) EXPECT_EQ(kept_on(world, d, prune, 7, 2), ref) << world << " ranks";
    EXPECT_EQ(kept_on(3, d, prune, 7, 2), ref);
    // Another epoch or seed draws other edges.
    EXPECT_NE(kept_on(1, d, prune, 7, 3), ref);
    EXPECT_NE(kept_on(1, d, prune, 8, 2), ref);
  }
  EXPECT_EQ(kept_on(2, d, 0.0, 7, 2), edges);  // nothing pruned
  // The key is a pure function of its inputs, and each input changes it.
  const double k0 = freedom_prune_key(7, 2, 5, 9, 0.25);
  EXPECT_EQ(k0, freedom_prune_key(7, 2, 5, 9, 0.25));
  for (double k : {freedom_prune_key(8, 2, 5, 9, 0.25), freedom_prune_key(7, 3, 5, 9, 0.25),
                   freedom_prune_key(7, 2, 6, 9, 0.25), freedom_prune_key(7, 2, 5, 10, 0.25)})
    EXPECT_NE(k, k0);
  EXPECT_EQ(freedom_prune_key(7, 2, 5, 9, 0.5), k0 / 2);  // rate w: the key scales by 1/w
  // Degree-sensitive: over many epochs the edges of low-degree ends (large 1/sqrt(d_u d_i)) are kept
  // more often than those of high-degree ends.
  std::map<std::pair<int64_t, int64_t>, int> times;
  for (int e = 0; e < 60; ++e)
    for (const auto& x : kept_on(1, d, 0.8, 7, e)) ++times[x];
  std::vector<std::pair<double, int>> by_w;
  for (const auto& e : edges)
    by_w.emplace_back(1.0 / std::sqrt(static_cast<double>(du[e.first] * di[e.second])), times[e]);
  std::sort(by_w.begin(), by_w.end());
  const size_t q = by_w.size() / 4;
  double low = 0, high = 0;
  for (size_t k = 0; k < q; ++k) low += by_w[k].second, high += by_w[by_w.size() - 1 - k].second;
  EXPECT_GT(high, 1.5 * low) << "the heaviest quarter of the edges is kept more often than the lightest";
}

TEST(Freedom, ModalityWeightsFollowTheReferenceOrTheOption) {
  EXPECT_EQ(freedom_modality_weights({"image", "text"}, ""), (std::vector<double>{0.1, 0.9}));
  EXPECT_EQ(freedom_modality_weights({"text", "image"}, ""), (std::vector<double>{0.9, 0.1}));
  EXPECT_EQ(freedom_modality_weights({"genre", "year"}, ""), (std::vector<double>{0.5, 0.5}));
  EXPECT_EQ(freedom_modality_weights({"genre"}, ""), (std::vector<double>{1.0}));
  EXPECT_EQ(freedom_modality_weights({"genre", "year"}, "0.3,0.7"), (std::vector<double>{0.3, 0.7}));
  for (const char* bad : {"0.3", "0.3,x", "0.3,-1"}) {
    try {
      freedom_modality_weights({"genre", "year"}, bad);
      ADD_FAILURE() << bad;
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find("--freedom-weights"), std::string::npos) << e.what();
    }
  }
}

// Dense double references of the scoring rows: LightGCN's mean over the full graph plus S^L E0
// with S the modalities' kNN graphs (brute force) mixed by weight.
struct DenseFreedom {
  int64_t U, I;
  std::vector<std::set<int64_t>> nbr;
  std::vector<std::vector<double>> S;  // I x I
  DenseFreedom(const io::PreparedDataset& d, const std::vector<float>& feat, const std::vector<int>& widths,
               const std::vector<double>& mw, int k)
      : U(d.user_raw.size()), I(d.item_raw.size()), nbr(U + I), S(I, std::vector<double>(I, 0.0)) {
    for (size_t r = 0; r < d.train.size(); ++r) {
      nbr[d.train.user[r]].insert(U + d.train.item[r]);
      nbr[U + d.train.item[r]].insert(d.train.user[r]);
    }
    int Ft = 0;
    for (int w : widths) Ft += w;
    int off = 0;
    for (size_t m = 0; m < widths.size(); ++m) {
      auto col = [&](int64_t i, int c) { return static_cast<double>(feat[i * Ft + off + c]); };
      for (int64_t a = 0; a < I; ++a) {
        std::vector<std::pair<double, int64_t>> s;
        double na = 0;
        for (int c = 0; c < widths[m]; ++c) na += col(a, c) * col(a, c);
        for (int64_t b = 0; b < I; ++b) {
          double nb = 0, dot = 0;
          for (int c = 0; c < widths[m]; ++c) nb += col(b, c) * col(b, c), dot += col(a, c) * col(b, c);
          s.emplace_back(-dot / std::sqrt(na * nb), b);
        }
        std::sort(s.begin(), s.end());
        for (int j = 0; j < k; ++j) S[a][s[j].second] += mw[m] / k;
      }
      off += widths[m];
    }
  }
  std::vector<double> scoring(const std::vector<double>& e0, int dim, int K, int L) const {
    std::vector<double> cur = e0, acc = e0;
    for (int k = 1; k <= K; ++k) {
      std::vector<double> y(cur.size(), 0.0);
      for (int64_t a = 0; a < U + I; ++a)
        for (int64_t b : nbr[a]) {
          const double w = 1.0 / std::sqrt(static_cast<double>(nbr[a].size() * nbr[b].size()));
          for (int c = 0; c < dim; ++c) y[a * dim + c] += w * cur[b * dim + c];
        }
      cur = y;
      for (size_t j = 0; j < acc.size(); ++j) acc[j] += cur[j];
    }
    for (auto& x : acc) x /= (K + 1);
    std::vector<double> h(e0.begin() + U * dim, e0.end());
    for (int l = 0; l < L; ++l) {
      std::vector<double> y(h.size(), 0.0);
      for (int64_t a = 0; a < I; ++a)
        for (int64_t b = 0; b < I; ++b)
          for (int c = 0; c < dim; ++c) y[a * dim + c] += S[a][b] * h[b * dim + c];
      h = y;
    }
    for (size_t j = 0; j < h.size(); ++j) acc[U * dim + j] += h[j];
    return acc;
  }
};

TEST(Freedom, PropagationMatchesADenseReferenceAndItsBackwardFiniteDifferences) {
  const auto d = testing::planted_dataset(30, 19, 3, 4);
  const std::string path = freedom_dataset("propagation", 30, 19, 3, 4);
  TrainConfig c = freedom_config(path);
  c.freedom_item_layers = 2;  // S twice: the transposed product's order matters
  const int dim = c.dim;
  for (int world : {1, 3}) {
    dist::run_ranks(world, [&](dist::Comm& comm) {
      auto shard = io::load_shard(path, comm);
      FreedomModel m(c, shard, comm.rank());
      // Forward on the full graph against the dense reference.
      const auto feat = full_table(*m.item_features(), comm);
      const DenseFreedom ref(d, feat, {5, 4}, m.modality_weights(), c.freedom_knn);
      EXPECT_EQ(m.modality_weights(), (std::vector<double>{0.1, 0.9}));
      const auto u0 = full_table(m.user, comm), i0 = full_table(m.item, comm);
      std::vector<double> e0(u0.begin(), u0.end());
      e0.insert(e0.end(), i0.begin(), i0.end());
      const auto want = ref.scoring(e0, dim, m.layers(), m.item_layers());
      m.propagate(comm, m.graph(comm));
      auto got = full_table(m.rows_user(), comm), gi = full_table(m.rows_item(), comm);
      got.insert(got.end(), gi.begin(), gi.end());
      double worst = 0;
      for (size_t j = 0; j < want.size(); ++j) worst = std::max(worst, std::abs(got[j] - want[j]));
      EXPECT_LT(worst, 1e-5) << world << " ranks";
      // Backward over the full graph and over epoch 1's pruned graph: f = <C, E(E0)>.
      for (int pruned = 0; pruned < 2; ++pruned) {
        dist::BipartiteGraph& g = pruned ? m.train_graph(comm, 1) : m.graph(comm);
        const std::vector<float> cu = seeded_rows(m.user, 0, comm.rank()), ci = seeded_rows(m.item, 1, comm.rank());
        auto f = [&]() {
          m.propagate(comm, g);
          double s = 0;
          for (size_t l = 0; l < cu.size(); ++l) s += static_cast<double>(cu[l]) * m.rows_user().local_data()[l];
          for (size_t l = 0; l < ci.size(); ++l) s += static_cast<double>(ci[l]) * m.rows_item().local_data()[l];
          return sum_over(comm, s);
        };
        f();  // the graph of the backward
        std::vector<float> bu = cu, bi = ci;
        m.backward(comm, bu.data(), bi.data());
        const auto grad_u = whole(m.user.sharding(), dim, bu, comm), grad_i = whole(m.item.sharding(), dim, bi, comm);
        expect_finite_differences(m, comm, f, grad_u, grad_i, 1e-2f, 2e-3);
      }
    });
  }
}

// The pass's gradients of (BPR + w * the modalities' BPR) / pairs on the user rows (the item rows
// get MF's) and on the projections (read back through one SGD step at lr 1) against central
// differences of the losses it reports.
TEST(Freedom, FeatureTermsGradientsMatchFiniteDifferences) {
  const std::string path = freedom_dataset("featgrad", 20, 13, 2, 6);
  TrainConfig c = freedom_config(path);
  c.opt.kind = OptimizerConfig::Kind::kSgd;
  c.opt.lr = 1.0f;
  c.negatives = 2;
  c.freedom_feature_weight = 0.7f;
  dist::run_ranks(1, [&](dist::Comm& comm) {
    auto shard = io::load_shard(path, comm);
    FreedomModel m(c, shard, 0);
    const int d = c.dim, per = 3, Ft = m.item_features()->dim();
    const size_t n = 3;
    const auto feat = full_table(*m.item_features(), comm);
    std::vector<float> U(n * d), I(n * per * d), F(n * per * Ft);
    for (size_t i = 0; i < n; ++i) {
      for (int k = 0; k < d; ++k) U[i * d + k] = value(5, 0, static_cast<int64_t>(i), k);
      for (int s = 0; s < per; ++s) {
        const size_t o = i * per + s, item = (i * 5 + s * 3) % 13;
        for (int k = 0; k < d; ++k) I[o * d + k] = value(5, 1, static_cast<int64_t>(o), k);
        std::copy(&feat[item * Ft], &feat[item * Ft] + Ft, &F[o * Ft]);
      }
    }
    const int64_t rows[3] = {0, 1, 2};
    StepBatch b;
    b.n = n;
    b.per = per;
    b.global_n = static_cast<int64_t>(n);
    b.row = rows;
    auto loss = [&]() {
      dist::ExactSums s(2);
      PassArgs a;
      a.U = U.data();
      a.I = I.data();
      a.F = F.data();
      a.loss = &s;
      m.pass(b, a);
      return s.value(0) / static_cast<double>(n * (per - 1));
    };
    std::vector<float> gU(U.size()), gI(I.size());
    PassArgs a;
    a.U = U.data();
    a.I = I.data();
    a.F = F.data();
    a.gU = gU.data();
    a.gI = gI.data();
    m.pass(b, a);
    const auto W0 = m.projections();
    m.apply_dense(comm);  // W -= 1 * dL/dW
    std::vector<std::vector<float>> gW = W0;
    for (size_t q = 0; q < gW.size(); ++q)
      for (size_t j = 0; j < gW[q].size(); ++j) gW[q][j] = W0[q][j] - m.projections()[q][j];
    m.projections() = W0;
    const float h = 1e-2f;
    for (size_t j : {0u, 4u, 11u, 17u}) {
      const float saved = U[j];
      U[j] = saved + h;
      const double fp = loss();
      U[j] = saved - h;
      const double fm = loss();
      U[j] = saved;
      EXPECT_NEAR(gU[j], (fp - fm) / (2 * h), 2e-4) << "user " << j;
    }
    for (size_t q = 0; q < gW.size(); ++q)
      for (size_t j : {0u, 3u, 7u, 13u}) {
        float& w = m.projections()[q][j];
        const float saved = w;
        w = saved + h;
        const double fp = loss();
        w = saved - h;
        const double fm = loss();
        w = saved;
        EXPECT_NEAR(gW[q][j], (fp - fm) / (2 * h), 2e-4) << "W of modality " << q << " at " << j;
        EXPECT_GT(std::abs(gW[q][j]), 1e-6);
      }
  });
}

struct Out : testing::TrainRun {
  std::vector<std::vector<float>> W;
};

Out train(int world, const TrainConfig& c) {
  Out out;
  testing::train_ranks(out, world, c, nullptr, [&out](Trainer& t) { out.W = t.model_as<FreedomModel>().projections(); });
  return out;
}

TEST(Freedom, TrainingIsBitwiseIdenticalFor1To4RanksAndThreads) {
  const std::string path = freedom_dataset("invariance", 37, 29, 4, 5);
  for (const char* strategy : {"plain", "mirror"}) {
    TrainConfig c = freedom_config(path);
    c.strategy = strategy;
    c.mg_beta = 2;
    c.l2 = 1e-3f;
    const Out ref = train(1, c);
    TrainConfig c0 = c;
    c0.epochs = 0;
    const Out init = train(1, c0);
    EXPECT_NE(init.W, ref.W) << "the projections train";
    EXPECT_NE(init.item, ref.item);
    ASSERT_EQ(ref.losses.size(), 3u);
    for (const auto& [world, threads] : {std::pair{2, 1}, {3, 1}, {4, 1}, {1, 2}, {3, 2}}) {
      TrainConfig ct = c;
      ct.threads = threads;
      const Out got = train(world, ct);
      const std::string what = std::string(strategy) + " on " + std::to_string(world) + " x " + std::to_string(threads);
      expect_same_run(got, ref, what);
      EXPECT_EQ(got.W, ref.W) << what;
    }
  }
}

TEST(Freedom, EachPieceChangesTraining) {
  // Pruning, the item graph and the feature terms each move the trained rows (none is dead code).
  const std::string path = freedom_dataset("pieces", 37, 29, 4, 5);
  const TrainConfig c = freedom_config(path);
  const Out ref = train(1, c);
  TrainConfig a = c, b = c, w = c;
  a.freedom_prune = 0.0;
  b.freedom_item_layers = 0;
  w.freedom_feature_weight = 0.0f;
  EXPECT_NE(train(1, a).user, ref.user) << "pruning";
  EXPECT_NE(train(1, b).item, ref.item) << "item graph";
  const Out nw = train(1, w);
  EXPECT_NE(nw.user, ref.user) << "feature terms";
  w.epochs = 0;
  EXPECT_EQ(nw.W, train(1, w).W) << "without their terms the projections do not move";
}

TEST(Freedom, RefusesWithoutFeaturesOnCudaAndWithBadWeights) {
  const std::string path = freedom_dataset("refusals", 20, 12, 2, 3);
  auto expect_fails = [](TrainConfig c, const std::string& what) {
    try {
      c.validate();
      ADD_FAILURE() << "expected a failure naming " << what;
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find(what), std::string::npos) << e.what();
    }
  };
  TrainConfig c = freedom_config(path);
  EXPECT_NO_THROW(c.validate());
  TrainConfig nf = c;
  nf.features = "";
  expect_fails(nf, "prep --features");
  TrainConfig cu = c;
  cu.device = "cuda";
  expect_fails(cu, "--device");
  TrainConfig bw = c;
  bw.freedom_weights = "1";
  expect_fails(bw, "--freedom-weights");
  TrainConfig bp = c;
  bp.freedom_prune = 1.0;
  expect_fails(bp, "--freedom-prune");
  // A modality the dataset lacks names the file and prep.
  TrainConfig nm = c;
  nm.features = "image,audio";
  dist::run_ranks(1, [&](dist::Comm& comm) {
    auto shard = io::load_shard(path, comm);
    try {
      make_model(nm, shard, 0);
      ADD_FAILURE();
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find("prep --features audio"), std::string::npos) << e.what();
    }
  });
}

}  // namespace
}  // namespace shardrec
