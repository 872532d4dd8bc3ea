// Graph models: the sharded propagation (dist/graph.h) against a dense reference, bitwise the same
// on 1-4 ranks; LightGCN's backward against finite differences; LightGCN training bitwise
// world-size (and thread) invariant, plain and with Mirror Gradient; equal to MF with K = 0;
// learning on planted data; resumed from a checkpoint on another number of ranks.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <functional>
#include <map>
#include <set>
#include <tuple>

#include "base/error.h"
#include "base/rng.h"
#include "core/checkpoint_state.h"
#include "core/lightgcn_model.h"
#include "core/mf_model.h"
#include "core/xsimgcl.h"
#include "core/trainer.h"
#include "dist/graph.h"
#include "dist/item_graph.h"
#include "dist/inproc_comm.h"
#include "fixtures.h"
#include "kernels/embedding_ops.h"
#include "kernels/graph_ops.h"

namespace shardrec {
namespace {

using testing::expect_finite_differences;
using testing::expect_same_run;
using testing::full_table;
using testing::seeded_rows;
using testing::value;
using testing::whole;

// The dense A = D^-1/2 [[0,R],[R^T,0]] D^-1/2 of the training split, over users then items.
struct Dense {
  int64_t U, I;
  std::vector<std::set<int64_t>> nbr;  // of each node (items offset by U)
  explicit Dense(const io::PreparedDataset& d) : U(d.user_raw.size()), I(d.item_raw.size()), nbr(U + I) {
    for (size_t r = 0; r < d.train.size(); ++r) {
      nbr[d.train.user[r]].insert(U + d.train.item[r]);
      nbr[U + d.train.item[r]].insert(d.train.user[r]);
    }
  }
  std::vector<double> multiply(const std::vector<double>& x, int dim) const {
    std::vector<double> y(x.size(), 0.0);
    for (int64_t a = 0; a < U + I; ++a)
      for (int64_t b : nbr[a]) {
        const double w = 1.0 / std::sqrt(static_cast<double>(nbr[a].size()) * static_cast<double>(nbr[b].size()));
        for (int k = 0; k < dim; ++k) y[a * dim + k] += w * x[b * dim + k];
      }
    return y;
  }
};

// One multiply on `world` ranks of the rows value(seed, ...): the result in id order (users, then items).
std::vector<float> multiply_on(int world, const io::PreparedDataset& d, int dim, const std::string& item_sharding,
                               int threads = 1) {
  std::vector<float> out;
  dist::run_ranks(world, [&](dist::Comm& comm) {
    auto shard = io::shard_from_memory(d, comm);
    const auto items = dist::Sharding::parse(item_sharding, shard.info.num_items, world);
    dist::BipartiteGraph g(comm, shard.users, items, shard.train().ptr, shard.train().item);
    const int64_t L = shard.users.local_rows(comm.rank()), M = items.local_rows(comm.rank());
    std::vector<float> xu(L * dim), xi(M * dim), ou(L * dim), oi(M * dim);
    for (int64_t l = 0; l < L; ++l)
      for (int k = 0; k < dim; ++k) xu[l * dim + k] = value(7, 0, shard.users.global_id(comm.rank(), l), k);
    for (int64_t l = 0; l < M; ++l)
      for (int k = 0; k < dim; ++k) xi[l * dim + k] = value(7, 1, items.global_id(comm.rank(), l), k);
    ThreadPool pool(threads);
    g.multiply(comm, xu.data(), xi.data(), ou.data(), oi.data(), dim, threads > 1 ? &pool : nullptr);
    auto fu = whole(shard.users, dim, ou, comm), fi = whole(items, dim, oi, comm);
    if (comm.rank() == 0) {
      out = fu;
      out.insert(out.end(), fi.begin(), fi.end());
    }
  });
  return out;
}

TEST(Graph, MultiplyMatchesDenseReferenceAndIsBitwiseTheSameFor1To4Ranks) {
  const auto d = testing::planted_dataset(41, 23, 3, 11);
  const int dim = 5;
  const Dense A(d);
  std::vector<double> x((A.U + A.I) * dim);
  for (int64_t u = 0; u < A.U; ++u)
    for (int k = 0; k < dim; ++k) x[u * dim + k] = value(7, 0, u, k);
  for (int64_t i = 0; i < A.I; ++i)
    for (int k = 0; k < dim; ++k) x[(A.U + i) * dim + k] = value(7, 1, i, k);
  const auto want = A.multiply(x, dim);
  const auto ref = multiply_on(1, d, dim, "mod");
  ASSERT_EQ(ref.size(), want.size());
  double worst = 0;
  for (size_t k = 0; k < want.size(); ++k) worst = std::max(worst, std::abs(ref[k] - want[k]));
  EXPECT_LT(worst, 1e-5);
  // Not trivially zero: every node of the planted set has edges.
  double norm = 0;
  for (double v : want) norm += v * v;
  EXPECT_GT(norm, 1.0);
  for (const char* sharding : {"mod", "range", "table:0"})
    for (int world = 1; world <= 4; ++world)
      for (int threads : {1, 3}) {
        const auto got = multiply_on(world, d, dim, sharding, threads);
        ASSERT_EQ(got.size(), ref.size());
        EXPECT_EQ(0, std::memcmp(got.data(), ref.data(), ref.size() * sizeof(float)))
            << world << " ranks, items " << sharding << ", " << threads << " threads";
      }
}

TEST(Graph, DuplicateEdgesCountOnceAndIsolatedRowsStayZero) {
  // One rank: users 0..2, items 0..3; user 0 lists item 1 twice, user 2 and item 3 have no edges.
  dist::run_ranks(1, [&](dist::Comm& comm) {
    const auto users = dist::Sharding::range({0, 3});
    const auto items = dist::Sharding::modulo(4, 1);
    const std::vector<int64_t> ptr = {0, 3, 5, 5};
    const std::vector<int32_t> item = {1, 0, 1, 2, 1};
    dist::BipartiteGraph g(comm, users, items, ptr, item);
    EXPECT_EQ(g.local_edges(), 2 * 4);
    std::vector<float> xu = {1, 2, 3}, xi = {10, 20, 30, 40}, ou(3), oi(4);
    g.multiply(comm, xu.data(), xi.data(), ou.data(), oi.data(), 1);
    // deg: u0 2, u1 2, u2 0; i0 1, i1 2, i2 1, i3 0.
    EXPECT_NEAR(ou[0], 10 / std::sqrt(2.0) + 20 / std::sqrt(4.0), 1e-5);
    EXPECT_NEAR(ou[1], 20 / std::sqrt(4.0) + 30 / std::sqrt(2.0), 1e-5);
    EXPECT_EQ(ou[2], 0.0f);
    EXPECT_NEAR(oi[1], 1 / std::sqrt(4.0) + 2 / std::sqrt(4.0), 1e-5);
    EXPECT_EQ(oi[3], 0.0f);
  });
}

// The largest difference between m's clean propagation and the mean of A^k E0 over k = first..K
// in double (LightGCN: first 0; XSimGCL: first 1).
double propagation_error(LightGcnModel& m, const Dense& A, dist::Comm& comm, int first) {
  const int dim = m.user.dim(), K = m.layers();
  const auto u0 = full_table(m.user, comm), i0 = full_table(m.item, comm);
  std::vector<double> cur(u0.begin(), u0.end());
  cur.insert(cur.end(), i0.begin(), i0.end());
  std::vector<double> acc(cur.size(), 0.0);
  for (int k = 0; k <= K; ++k) {
    if (k > 0) cur = A.multiply(cur, dim);
    if (k >= first)
      for (size_t j = 0; j < acc.size(); ++j) acc[j] += cur[j];
  }
  m.propagate(comm);
  auto e = full_table(m.rows_user(), comm), ei = full_table(m.rows_item(), comm);
  e.insert(e.end(), ei.begin(), ei.end());
  double worst = 0;
  for (size_t j = 0; j < acc.size(); ++j) worst = std::max(worst, std::abs(e[j] - acc[j] / (K + 1 - first)));
  return worst;
}

TrainConfig gcn_config() {
  TrainConfig c;
  c.data = "<memory>";
  c.model = "lightgcn";
  c.dim = 8;
  c.batch = 50;  // does not divide the rows: the last step is partial
  c.epochs = 3;
  c.eval_every = 0;
  c.opt.lr = 0.01f;
  c.eval.ks = {5, 10};
  c.graph_layers = 3;
  return c;
}

// LightGCN's forward and backward: E = mean_k A^k E0 against the dense reference, and
// f(E0) = <C, E(E0)> differentiated by backward() against central differences.
TEST(LightGcn, PropagationAndBackwardMatchReferenceAndFiniteDifferences) {
  const auto d = testing::planted_dataset(30, 17, 3, 4);
  const Dense A(d);
  TrainConfig c = gcn_config();
  const int dim = c.dim;
  for (int world : {1, 3}) {
    dist::run_ranks(world, [&](dist::Comm& comm) {
      auto shard = io::shard_from_memory(d, comm);
      LightGcnModel m(c, shard, comm.rank());
      // Forward against sum_k A^k E0 / (K+1) in double.
      EXPECT_LT(propagation_error(m, A, comm, 0), 1e-5) << world << " ranks";
      // Backward: G = C on this rank's rows; the result is d<C, E>/dE0.
      const int64_t L = m.user.local_rows(), M = m.item.local_rows();
      const std::vector<float> gu = seeded_rows(m.user, 0, comm.rank()), gi = seeded_rows(m.item, 1, comm.rank());
      auto f = [&]() {  // <C, E> over all ranks
        m.propagate(comm);
        double s = 0;
        for (int64_t l = 0; l < L * dim; ++l)
          s += static_cast<double>(gu[l]) * m.rows_user().local_data()[l];
        for (int64_t l = 0; l < M * dim; ++l)
          s += static_cast<double>(gi[l]) * m.rows_item().local_data()[l];
        return testing::sum_over(comm, s);
      };
      std::vector<float> bu = gu, bi = gi;
      m.backward(comm, bu.data(), bi.data());
      const auto grad_u = whole(m.user.sharding(), dim, bu, comm);
      const auto grad_i = whole(m.item.sharding(), dim, bi, comm);
      // A few coordinates of each table, on their owners (every rank takes part in f()).
      expect_finite_differences(m, comm, f, grad_u, grad_i, 1e-2f, 2e-3);
    });
  }
}

using RunOut = testing::TrainRun;

RunOut train_on(int world, const TrainConfig& cfg, const io::PreparedDataset& d, const std::string& load = "",
                int64_t stop_at = 0, const std::string& save = "") {
  RunOut out;
  testing::train_ranks(out, world, cfg, &d, {}, load, stop_at, save);
  return out;
}

// The run `ref` (1 rank, 1 thread) again on 2-4 ranks and with 2 threads: the same bits.
void expect_invariant(const TrainConfig& c, const io::PreparedDataset& d, const RunOut& ref, const std::string& name) {
  for (const auto& [world, threads] : {std::pair{2, 1}, {3, 1}, {4, 1}, {1, 2}, {3, 2}}) {
    TrainConfig ct = c;
    ct.threads = threads;
    expect_same_run(train_on(world, ct, d), ref,
                name + " on " + std::to_string(world) + " ranks x " + std::to_string(threads));
  }
}

TEST(LightGcn, TrainingIsBitwiseIdenticalFor1To4RanksAndThreads) {
  const auto d = testing::planted_dataset(37, 29, 4, 5);
  struct V {
    const char* name;
    OptimizerConfig::Kind opt;
    const char* strategy;
    float l2;
    const char* items;
  };
  for (const V v : {V{"adam_dense", OptimizerConfig::Kind::kAdamDense, "plain", 1e-3f, "mod"},
                    V{"sgd_mirror", OptimizerConfig::Kind::kSgd, "mirror", 1e-2f, "mod"},
                    V{"adam_lazy_range", OptimizerConfig::Kind::kAdam, "plain", 0.0f, "range"}}) {
    TrainConfig c = gcn_config();
    c.opt.kind = v.opt;
    c.strategy = v.strategy;
    c.mg_beta = 2;
    c.l2 = v.l2;
    c.item_sharding = v.items;
    const RunOut ref = train_on(1, c, d);
    TrainConfig c0 = c;
    c0.epochs = 0;
    EXPECT_NE(train_on(1, c0, d).item, ref.item) << v.name << ": training moved nothing";
    expect_invariant(c, d, ref, v.name);
  }
}

TEST(LightGcn, WithNoLayersTrainsExactlyAsMf) {
  const auto d = testing::planted_dataset(37, 29, 4, 5);
  for (auto kind : {OptimizerConfig::Kind::kSgd, OptimizerConfig::Kind::kAdamDense, OptimizerConfig::Kind::kAdam}) {
    TrainConfig c = gcn_config();
    c.graph_layers = 0;
    c.opt.kind = kind;
    TrainConfig mf = c;
    mf.model = "mf";
    const RunOut a = train_on(2, c, d), b = train_on(2, mf, d);
    expect_same_run(a, b, "optimizer " + OptimizerConfig::kind_name(kind));
    // With layers the model is another one.
    TrainConfig c1 = c;
    c1.graph_layers = 1;
    EXPECT_NE(train_on(2, c1, d).item, b.item);
  }
  // L2 is on the layer-0 rows, once per occurrence, as MF's: the same steps up to rounding (MF
  // adds it to each occurrence's gradient before the sum, LightGCN once per row after).
  TrainConfig c = gcn_config();
  c.graph_layers = 0;
  c.opt.kind = OptimizerConfig::Kind::kSgd;
  c.opt.lr = 0.05f;
  c.l2 = 0.5f;
  TrainConfig mf = c;
  mf.model = "mf";
  TrainConfig no_l2 = c;
  no_l2.l2 = 0;
  const RunOut a = train_on(1, c, d), b = train_on(1, mf, d), z = train_on(1, no_l2, d);
  double diff = 0, moved = 0;
  for (size_t k = 0; k < a.item.size(); ++k) {
    diff = std::max(diff, static_cast<double>(std::abs(a.item[k] - b.item[k])));
    moved = std::max(moved, static_cast<double>(std::abs(a.item[k] - z.item[k])));
  }
  EXPECT_LT(diff, 1e-5);
  EXPECT_GT(moved, 1e-3) << "L2 must change the result for the comparison to mean something";
}

TEST(LightGcn, LearnsThePlantedGroupsAndPropagationHelpsOnSparseUsers) {
  const auto d = testing::planted_dataset(300, 120, 4, 21, 4);
  TrainConfig c = gcn_config();
  c.dim = 16;
  c.batch = 128;
  c.epochs = 15;
  c.opt.lr = 0.01f;
  c.l2 = 1e-4f;
  TrainConfig c0 = c;
  c0.epochs = 0;
  const double before = train_on(2, c0, d).test.get("recall@10");
  const double after = train_on(2, c, d).test.get("recall@10");
  TrainConfig flat = c;
  flat.graph_layers = 0;
  const double mf = train_on(2, flat, d).test.get("recall@10");
  std::printf("recall@10: initial %.4f, K=0 %.4f, K=3 %.4f\n", before, mf, after);
  EXPECT_GT(after, before + 0.1);
  EXPECT_GT(after, mf);
}

TEST(LightGcn, ResumesBitwiseOnAnotherNumberOfRanks) {
  const auto d = testing::planted_dataset(37, 29, 4, 5);
  TrainConfig c = gcn_config();
  c.strategy = "mirror";
  c.mg_beta = 2;
  c.l2 = 1e-3f;
  const RunOut ref = train_on(2, c, d);
  const std::string ck = testing::fresh_path("lightgcn", "ck.h5");
  const RunOut stopped = train_on(2, c, d, "", 7, ck);
  EXPECT_NE(stopped.item, ref.item);
  RunOut resumed = train_on(3, c, d, ck);
  EXPECT_EQ(resumed.losses.size(), 2u) << "the resumed run starts in epoch 2";
  resumed.losses = ref.losses;  // the epochs before the stop were the first run's
  expect_same_run(resumed, ref, "resumed on 3 ranks");
}

}  // namespace
}  // namespace shardrec

namespace shardrec {
namespace {

// The vectorised row sums give the scalar loop's bits at every width (blocks of 64, 16, 8, rest).
TEST(GraphKernel, RowSumsAreTheScalarLoopsBitsAtEveryWidth) {
  for (int dim : {1, 7, 8, 16, 24, 64, 75, 80, 130}) {
    const int rows = 13;
    std::vector<float> x(rows * dim);
    for (size_t k = 0; k < x.size(); ++k) x[k] = value(5, 2, static_cast<int64_t>(k), dim);
    const std::vector<int64_t> ptr = {0, 3, 3, 9, 10};
    const std::vector<uint32_t> nbr = {4, 0, 12, 1, 2, 3, 5, 7, 11, 6};
    const std::vector<float> s = {0.3f, 1.0f, 0.7071f, 0.11f};
    std::vector<float> got(4 * dim, -1.0f), want(4 * dim);
    kernels::csr_scaled_row_sums(x.data(), ptr.data(), nbr.data(), s.data(), got.data(), dim, 0, 4);
    for (int r = 0; r < 4; ++r)
      for (int k = 0; k < dim; ++k) {
        float a = 0.0f;
        for (int64_t e = ptr[r]; e < ptr[r + 1]; ++e) a += x[nbr[e] * dim + k];
        want[r * dim + k] = a * s[r];
      }
    EXPECT_EQ(0, std::memcmp(got.data(), want.data(), want.size() * sizeof(float))) << "dim " << dim;
  }
}

}  // namespace
}  // namespace shardrec

// XSimGCL (core/xsimgcl.h): the kernels its contrast uses, the cross-layer InfoNCE against a double
// reference and finite differences, bitwise the same for 1-4 ranks and 1/3 threads; the noise;
// the noisy propagation's backward; training world-size invariant, resumed, and learning.
namespace shardrec {
namespace {

TEST(ContrastKernels, DotRowsAndWeightedRowsAreTheBitsOfDotAndAxpy) {
  for (int dim : {1, 5, 8, 13, 16, 24, 64, 72, 130}) {
    for (int64_t m : {1, 3, 4, 9}) {
      std::vector<float> rows(m * dim), b(dim), w(m);
      for (size_t k = 0; k < rows.size(); ++k) rows[k] = value(8, 0, static_cast<int64_t>(k), dim);
      for (int k = 0; k < dim; ++k) b[k] = value(8, 1, k, dim);
      for (int64_t k = 0; k < m; ++k) w[k] = value(8, 2, k, dim);
      std::vector<float> got(m), want(m);
      kernels::dot_rows(rows.data(), m, b.data(), dim, got.data());
      for (int64_t k = 0; k < m; ++k) want[k] = kernels::dot(rows.data() + k * dim, b.data(), dim);
      EXPECT_EQ(0, std::memcmp(got.data(), want.data(), m * sizeof(float))) << "dot_rows dim " << dim << " m " << m;
      std::vector<float> sum(dim, -1.0f), ref(dim, 0.0f);
      kernels::weighted_rows(rows.data(), w.data(), m, dim, sum.data());
      for (int64_t k = 0; k < m; ++k) kernels::axpy(w[k], rows.data() + k * dim, ref.data(), dim);
      EXPECT_EQ(0, std::memcmp(sum.data(), ref.data(), dim * sizeof(float))) << "weighted_rows dim " << dim;
    }
  }
}

TEST(ContrastKernels, ShiftedExpIsCloseToExpAndTheSameBitsElementwise) {
  std::vector<float> x;
  for (int k = -2000; k <= 60; ++k) x.push_back(static_cast<float>(k) * 0.0437f);
  x.push_back(-200.0f);
  const float c = 1.25f, w = 0.37f;
  std::vector<float> got(x.size()), each(x.size());
  kernels::exp_shifted(x.data(), c, w, static_cast<int64_t>(x.size()), got.data());
  const std::vector<float> cs(x.size(), c), ws(x.size(), w);
  kernels::exp_shifted_each(x.data(), cs.data(), ws.data(), static_cast<int64_t>(x.size()), each.data());
  EXPECT_EQ(got, each);
  for (size_t k = 0; k + 1 < x.size(); ++k) {
    const float shifted = x[k] - c;  // the kernel's argument, rounded as it rounds it
    const double want = std::exp(static_cast<double>(shifted)) * w;
    if (x[k] - c < -87.0f) continue;
    EXPECT_NEAR(got[k], want, 3e-7 * want) << x[k];
  }
  EXPECT_GE(got.back(), 0.0f);
  EXPECT_LT(got.back(), 1e-37f) << "far below: about e^-87";
}

// SELFRec's InfoNCE in double: mean over anchors a of logsumexp_b(s_ab) - s_aa, s = cos / tau.
double info_nce_reference(const std::vector<double>& v1, const std::vector<double>& v2, const std::vector<int64_t>& ids,
                          int dim, double tau) {
  const size_t N = ids.size();
  std::vector<double> z1(N * dim), z2(N * dim);
  for (size_t a = 0; a < N; ++a) {
    double n1 = 0, n2 = 0;
    for (int k = 0; k < dim; ++k) {
      n1 += v1[ids[a] * dim + k] * v1[ids[a] * dim + k];
      n2 += v2[ids[a] * dim + k] * v2[ids[a] * dim + k];
    }
    for (int k = 0; k < dim; ++k) {
      z1[a * dim + k] = v1[ids[a] * dim + k] / std::sqrt(n1);
      z2[a * dim + k] = v2[ids[a] * dim + k] / std::sqrt(n2);
    }
  }
  double total = 0;
  for (size_t a = 0; a < N; ++a) {
    std::vector<double> s(N);
    for (size_t b = 0; b < N; ++b) {
      double d = 0;
      for (int k = 0; k < dim; ++k) d += z1[a * dim + k] * z2[b * dim + k];
      s[b] = d / tau;
    }
    const double mx = *std::max_element(s.begin(), s.end());
    double e = 0;
    for (double x : s) e += std::exp(x - mx);
    total += mx + std::log(e) - s[a];
  }
  return total / static_cast<double>(N);
}

TEST(XSimGcl, ContrastMatchesADoubleReferenceAndIsBitwiseTheSameFor1To4RanksAndThreads) {
  const int64_t U = 23, I = 17;
  const float tau = 0.3f, coef = 0.7f;
  for (int dim : {8, 13}) {
    // Every table row's two views, from the seed; the ids each rank's samples bring overlap.
    std::vector<double> u1(U * dim), u2(U * dim), i1(I * dim), i2(I * dim);
    for (int64_t id = 0; id < U; ++id)
      for (int k = 0; k < dim; ++k) {
        u1[id * dim + k] = value(11, 0, id, k);
        u2[id * dim + k] = value(11, 1, id, k);
      }
    for (int64_t id = 0; id < I; ++id)
      for (int k = 0; k < dim; ++k) {
        i1[id * dim + k] = value(11, 2, id, k);
        i2[id * dim + k] = value(11, 3, id, k);
      }
    const std::vector<int64_t> user_ids = {0, 2, 3, 5, 8, 9, 11, 14, 15, 19, 22};
    const std::vector<int64_t> item_ids = {1, 2, 4, 6, 7, 10, 12, 13, 16};
    struct Out {
      std::vector<float> gu1, gu2, gi1, gi2;
      double loss = 0;
    };
    auto run = [&](int world, int threads, size_t keep = size_t{1} << 24) {
      Out out;
      dist::run_ranks(world, [&](dist::Comm& comm) {
        const int me = comm.rank();
        const dist::Sharding us = dist::Sharding::parse("range", U, world), is = dist::Sharding::modulo(I, world);
        auto local = [&](const dist::Sharding& s, const std::vector<double>& all) {
          std::vector<float> v;
          for (int64_t l = 0; l < s.local_rows(me); ++l)
            for (int k = 0; k < dim; ++k) v.push_back(static_cast<float>(all[s.global_id(me, l) * dim + k]));
          return v;
        };
        std::vector<float> lu1 = local(us, u1), lu2 = local(us, u2), li1 = local(is, i1), li2 = local(is, i2);
        std::vector<float> gu1(lu1.size(), 0.0f), gu2(lu1.size(), 0.0f), gi1(li1.size(), 0.0f), gi2(li1.size(), 0.0f);
        ContrastSide su, si;
        su.sharding = &us;
        si.sharding = &is;
        // Users: the ones this rank owns (samples run at their user's owner); items: any, repeated.
        for (int64_t id : user_ids)
          if (us.owner(id) == me) su.ids.push_back(id);
        for (size_t k = 0; k < item_ids.size(); ++k)
          if (static_cast<int>(k % world) == me || k % 3 == 0) si.ids.push_back(item_ids[k]);
        su.v1 = lu1.data();
        su.v2 = lu2.data();
        si.v1 = li1.data();
        si.v2 = li2.data();
        su.g1 = gu1.data();
        su.g2 = gu2.data();
        si.g1 = gi1.data();
        si.g2 = gi2.data();
        dist::ExactSums loss(1);
        ThreadPool pool(threads);
        cross_layer_info_nce(comm, su, si, dim, tau, coef, 2.0, &loss, 0, &pool, keep);
        EXPECT_EQ(su.anchors, static_cast<int64_t>(user_ids.size()));
        EXPECT_EQ(si.anchors, static_cast<int64_t>(item_ids.size()));
        loss.allreduce(comm);
        const auto a = whole(us, dim, gu1, comm), b = whole(us, dim, gu2, comm);
        const auto c = whole(is, dim, gi1, comm), d = whole(is, dim, gi2, comm);
        if (me == 0) out = Out{a, b, c, d, loss.value(0)};
      });
      return out;
    };
    const Out ref = run(1, 1);
    // The loss and the gradients against the double reference (central differences of it).
    const double lu = info_nce_reference(u1, u2, user_ids, dim, tau), li = info_nce_reference(i1, i2, item_ids, dim, tau);
    EXPECT_NEAR(ref.loss, 2.0 * (lu + li), 1e-5);
    const double h = 1e-5;
    int checked = 0;
    for (int view = 0; view < 4; ++view) {
      std::vector<double>& v = view == 0 ? u1 : view == 1 ? u2 : view == 2 ? i1 : i2;
      const std::vector<int64_t>& ids = view < 2 ? user_ids : item_ids;
      const std::vector<float>& g = view == 0 ? ref.gu1 : view == 1 ? ref.gu2 : view == 2 ? ref.gi1 : ref.gi2;
      auto f = [&]() {
        return view < 2 ? info_nce_reference(u1, u2, ids, dim, tau) : info_nce_reference(i1, i2, ids, dim, tau);
      };
      for (int64_t id : {ids[0], ids[3], ids.back()}) {
        const int k = static_cast<int>(id % dim);
        const double saved = v[id * dim + k];
        v[id * dim + k] = saved + h;
        const double fp = f();
        v[id * dim + k] = saved - h;
        const double fm = f();
        v[id * dim + k] = saved;
        const double fd = coef * (fp - fm) / (2 * h);
        EXPECT_NEAR(g[id * dim + k], fd, 1e-4 + 1e-3 * std::abs(fd)) << "view " << view << " id " << id;
        EXPECT_GT(std::abs(g[id * dim + k]), 1e-6) << "a zero gradient would pass trivially";
        ++checked;
      }
      // Rows that are no anchor get nothing.
      for (int64_t id = 0; id < (view < 2 ? U : I); ++id) {
        if (std::find(ids.begin(), ids.end(), id) != ids.end()) continue;
        for (int k = 0; k < dim; ++k) EXPECT_EQ(g[id * dim + k], 0.0f) << "view " << view << " id " << id;
      }
    }
    EXPECT_EQ(checked, 12);
    for (const auto& [world, threads, keep] : {std::tuple{2, 1, 1 << 24}, {3, 1, 1 << 24}, {4, 1, 1 << 24},
                                                {1, 3, 1 << 24}, {3, 2, 1 << 24}, {1, 1, 0}, {2, 2, 0}}) {
      const Out got = run(world, threads, static_cast<size_t>(keep));
      const std::string what = std::to_string(world) + " ranks x " + std::to_string(threads) + ", dim " +
                               std::to_string(dim) + (keep ? "" : ", nothing kept");
      EXPECT_EQ(got.gu1, ref.gu1) << what;
      EXPECT_EQ(got.gu2, ref.gu2) << what;
      EXPECT_EQ(got.gi1, ref.gi1) << what;
      EXPECT_EQ(got.gi2, ref.gi2) << what;
      EXPECT_EQ(got.loss, ref.loss) << what;
    }
  }
}

TEST(XSimGcl, NoiseIsAFunctionOfRowLayerAndPassOnlyWithMagnitudeEps) {
  const int64_t n = 19;
  const int dim = 9;
  const float eps = 0.2f;
  auto draw = [&](int world, const NoiseKey& key, int layer) {
    std::vector<float> all(n * dim);
    dist::run_ranks(world, [&](dist::Comm& comm) {
      const dist::Sharding s = dist::Sharding::modulo(n, world);
      std::vector<float> rows;
      for (int64_t l = 0; l < s.local_rows(comm.rank()); ++l)
        for (int k = 0; k < dim; ++k) {
          const int64_t id = s.global_id(comm.rank(), l);
          rows.push_back(k == 2 ? 0.0f : value(4, 0, id, k));  // a zero column stays zero
        }
      ThreadPool pool(2);
      add_layer_noise(key, layer, 1, s, comm.rank(), eps, rows.data(), s.local_rows(comm.rank()), dim, &pool);
      const auto w = whole(s, dim, rows, comm);
      if (comm.rank() == 0) all = w;
    });
    return all;
  };
  const NoiseKey key{7, 2, 5, 0};
  const auto ref = draw(1, key, 1);
  EXPECT_EQ(draw(3, key, 1), ref);
  EXPECT_NE(draw(1, NoiseKey{7, 2, 5, 1}, 1), ref) << "another pass draws other noise";
  EXPECT_NE(draw(1, key, 2), ref) << "another layer draws other noise";
  EXPECT_NE(draw(1, NoiseKey{7, 2, 6, 0}, 1), ref) << "another step draws other noise";
  for (int64_t id = 0; id < n; ++id) {
    double sq = 0;
    for (int k = 0; k < dim; ++k) {
      const double x = value(4, 0, id, k), y = ref[id * dim + k];
      if (k == 2) {
        EXPECT_EQ(y, 0.0f);
        continue;
      }
      EXPECT_GE((y - x) * (x > 0 ? 1 : -1), 0.0) << "the noise keeps the row's sign";
      sq += (y - x) * (y - x);
    }
    // The unit noise vector has all dim entries; the zero column's share is dropped.
    EXPECT_LE(std::sqrt(sq), eps * 1.0001) << id;
    EXPECT_GT(std::sqrt(sq), eps * 0.5) << id;
  }
}

TrainConfig xsim_config() {
  TrainConfig c = gcn_config();
  c.model = "xsimgcl";
  c.graph_layers = 3;
  c.cl_layer = 1;
  c.cl_lambda = 0.2f;
  c.cl_eps = 0.2f;
  c.cl_tau = 0.15f;
  return c;
}

// The scoring rows E = mean(E^(1..K)) of a noisy propagation (the noise is fixed by its key, so a
// constant of E0), and backward() with a gradient on layer l* as well, against central
// differences of f = <C, E> + <Cl, E^(l*)>.
TEST(XSimGcl, NoisyPropagationsBackwardMatchesFiniteDifferences) {
  const auto d = testing::planted_dataset(30, 17, 3, 4);
  const Dense A(d);
  TrainConfig c = xsim_config();
  c.cl_layer = 2;
  const int dim = c.dim;
  for (int world : {1, 3}) {
    dist::run_ranks(world, [&](dist::Comm& comm) {
      auto shard = io::shard_from_memory(d, comm);
      GraphVariant v{true, 0.2f, c.cl_layer, 0.2f, 0.15f};
      LightGcnModel m(c, shard, comm.rank(), v);
      // Without noise: the mean of layers 1..K against the dense reference.
      EXPECT_LT(propagation_error(m, A, comm, 1), 1e-5) << world << " ranks";
      const auto clean = full_table(m.rows_user(), comm);
      const NoiseKey key{3, 1, 4, 0};
      const int64_t L = m.user.local_rows(), M = m.item.local_rows();
      const std::vector<float> gu = seeded_rows(m.user, 0, comm.rank()), gi = seeded_rows(m.item, 1, comm.rank());
      const std::vector<float> lu = seeded_rows(m.user, 2, comm.rank()), li = seeded_rows(m.item, 3, comm.rank());
      auto f = [&]() {
        m.propagate(comm, &key);
        double s = 0;
        for (int64_t l = 0; l < L * dim; ++l)
          s += static_cast<double>(gu[l]) * m.rows_user().local_data()[l] +
               static_cast<double>(lu[l]) * m.layer_rows(0)[l];
        for (int64_t l = 0; l < M * dim; ++l)
          s += static_cast<double>(gi[l]) * m.rows_item().local_data()[l] +
               static_cast<double>(li[l]) * m.layer_rows(1)[l];
        return testing::sum_over(comm, s);
      };
      m.propagate(comm, &key);
      EXPECT_NE(full_table(m.rows_user(), comm), clean) << "the noisy rows differ from the clean ones";
      std::vector<float> bu = gu, bi = gi;
      m.backward(comm, bu.data(), bi.data(), lu.data(), li.data());
      const auto grad_u = whole(m.user.sharding(), dim, bu, comm);
      const auto grad_i = whole(m.item.sharding(), dim, bi, comm);
      expect_finite_differences(m, comm, f, grad_u, grad_i, 1e-3f, 3e-3);
    });
  }
}

TEST(XSimGcl, TrainingIsBitwiseIdenticalFor1To4RanksAndThreads) {
  const auto d = testing::planted_dataset(37, 29, 4, 5);
  struct V {
    const char* name;
    OptimizerConfig::Kind opt;
    const char* strategy;
    const char* items;
  };
  for (const V v : {V{"adam_dense", OptimizerConfig::Kind::kAdamDense, "plain", "mod"},
                    V{"sgd_mirror", OptimizerConfig::Kind::kSgd, "mirror", "mod"},
                    V{"adam_lazy_range", OptimizerConfig::Kind::kAdam, "plain", "range"}}) {
    TrainConfig c = xsim_config();
    c.opt.kind = v.opt;
    c.strategy = v.strategy;
    c.mg_beta = 2;
    c.l2 = 1e-3f;
    c.item_sharding = v.items;
    const RunOut ref = train_on(1, c, d);
    // The contrast and the noise each change the training.
    TrainConfig quiet = c;
    quiet.cl_lambda = 0.0f;
    EXPECT_NE(train_on(1, quiet, d).item, ref.item) << v.name << ": the contrast did nothing";
    TrainConfig calm = c;
    calm.cl_eps = 0.0f;
    EXPECT_NE(train_on(1, calm, d).item, ref.item) << v.name << ": the noise did nothing";
    expect_invariant(c, d, ref, v.name);
  }
}

TEST(XSimGcl, ResumesBitwiseOnAnotherNumberOfRanks) {
  const auto d = testing::planted_dataset(37, 29, 4, 5);
  TrainConfig c = xsim_config();
  c.strategy = "mirror";
  c.mg_beta = 2;
  const RunOut ref = train_on(2, c, d);
  const std::string ck = testing::fresh_path("xsimgcl", "ck.h5");
  const RunOut stopped = train_on(2, c, d, "", 7, ck);
  EXPECT_NE(stopped.item, ref.item);
  RunOut resumed = train_on(3, c, d, ck);
  EXPECT_EQ(resumed.losses.size(), 2u) << "the resumed run starts in epoch 2";
  resumed.losses = ref.losses;
  expect_same_run(resumed, ref, "resumed on 3 ranks");
}

TEST(XSimGcl, LearnsThePlantedGroups) {
  const auto d = testing::planted_dataset(300, 120, 4, 21, 4);
  TrainConfig c = xsim_config();
  c.dim = 16;
  c.batch = 128;
  c.epochs = 15;
  c.opt.lr = 0.01f;
  c.l2 = 1e-4f;
  TrainConfig c0 = c;
  c0.epochs = 0;
  const double before = train_on(2, c0, d).test.get("recall@10");
  const RunOut run = train_on(2, c, d);
  const double after = run.test.get("recall@10");
  std::printf("xsimgcl recall@10: initial %.4f, trained %.4f; loss %.4f -> %.4f\n", before, after,
              run.losses.front(), run.losses.back());
  EXPECT_GT(after, before + 0.1);
  EXPECT_LT(run.losses.back(), run.losses.front());
}

}  // namespace
}  // namespace shardrec

// The item-item graph (dist/item_graph.h, FREEDOM's frozen kNN graphs): the kNN lists against a
// brute force in double, the same on 1-4 ranks; the product and its transpose against the dense
// matrix, bitwise the same on 1-4 ranks and 1/3 threads.
namespace shardrec {
namespace {

// Every rank's rows of a per-item vector, as one list in id order (rank 0's copy).
template <class T>
std::vector<T> by_id(const dist::Sharding& s, const std::vector<T>& local, int width, dist::Comm& comm) {
  std::vector<T> mine(local);
  const auto got = dist::allgather(comm, mine);
  std::vector<T> all(static_cast<size_t>(s.rows()) * width);
  for (int q = 0; q < comm.size(); ++q)
    for (int64_t l = 0; l < s.local_rows(q); ++l)
      for (int c = 0; c < width; ++c) all[s.global_id(q, l) * width + c] = got[q][l * width + c];
  return all;
}

// Item 5 has no features; items 12-19 share one row (their similarities tie exactly).
float feature(int64_t id, int c) {
  if (id == 5) return 0.0f;
  return value(21, 4, id >= 12 && id <= 19 ? 12 : id, c);
}

TEST(ItemGraph, KnnMatchesABruteForceAndIsTheSameFor1To4Ranks) {
  const int64_t I = 41;
  const int F = 6, k = 5;
  std::vector<int64_t> ref;
  for (int world : {1, 2, 3, 4}) {
    std::vector<int64_t> all;
    dist::run_ranks(world, [&](dist::Comm& comm) {
      const dist::Sharding s = dist::Sharding::modulo(I, world);
      std::vector<float> f;
      for (int64_t l = 0; l < s.local_rows(comm.rank()); ++l)
        for (int c = 0; c < F; ++c) f.push_back(feature(s.global_id(comm.rank(), l), c));
      ThreadPool pool(2);
      const auto knn = dist::knn_items(comm, s, f.data(), F, k, &pool);
      std::vector<int64_t> flat;
      for (const auto& r : knn) {
        ASSERT_EQ(r.size(), static_cast<size_t>(k));
        flat.insert(flat.end(), r.begin(), r.end());
      }
      const auto a = by_id(s, flat, k, comm);
      if (comm.rank() == 0) all = a;
    });
    if (world == 1) {
      ref = all;
      continue;
    }
    EXPECT_EQ(all, ref) << world << " ranks";
  }
  // Against cosine similarities in double, where the k-th and the next differ clearly.
  int checked = 0;
  for (int64_t i = 0; i < I; ++i) {
    std::vector<std::pair<double, int64_t>> sims;
    auto norm = [&](int64_t a) {
      double q = 0;
      for (int c = 0; c < F; ++c) q += static_cast<double>(feature(a, c)) * feature(a, c);
      return std::sqrt(q);
    };
    for (int64_t j = 0; j < I; ++j) {
      double d = 0;
      for (int c = 0; c < F; ++c) d += static_cast<double>(feature(i, c)) * feature(j, c);
      const double nn = norm(i) * norm(j);
      sims.emplace_back(nn > 0 ? d / nn : 0.0, j);
    }
    std::sort(sims.begin(), sims.end(), [](const auto& a, const auto& b) {
      return a.first > b.first || (a.first == b.first && a.second < b.second);
    });
    const bool tied = i >= 12 && i <= 19;  // ties among the first k: the smallest ids
    if (i != 5 && !tied && sims[k - 1].first - sims[k].first < 1e-5) continue;
    std::vector<int64_t> want;
    for (int t = 0; t < k; ++t) want.push_back(sims[t].second);
    std::sort(want.begin(), want.end());
    EXPECT_EQ(std::vector<int64_t>(ref.begin() + i * k, ref.begin() + (i + 1) * k), want) << "item " << i;
    if (i != 5 && !tied) {
      EXPECT_TRUE(std::binary_search(want.begin(), want.end(), i)) << "an item is its own neighbour";
    }
    ++checked;
  }
  EXPECT_GT(checked, 35);
  EXPECT_EQ(std::vector<int64_t>(ref.begin() + 17 * k, ref.begin() + 18 * k),
            (std::vector<int64_t>{12, 13, 14, 15, 16}));
  EXPECT_EQ(std::vector<int64_t>(ref.begin() + 5 * k, ref.begin() + 6 * k), (std::vector<int64_t>{0, 1, 2, 3, 4}))
      << "a row without features ties with every item: the smallest ids";
}

TEST(ItemGraph, ProductAndTransposeMatchTheDenseMatrixBitwiseFor1To4RanksAndThreads) {
  const int64_t I = 29;
  const int dim = 19;  // a 16-wide block and a scalar tail
  // A: three terms per row, one of them twice (its weights add), and an empty row (item 7).
  auto terms = [](int64_t i) {
    std::vector<std::pair<int64_t, float>> r;
    if (i == 7) return r;
    r.emplace_back((i * 5 + 3) % I, 0.25f);
    r.emplace_back((i * 11 + 1) % I, 0.5f);
    r.emplace_back((i * 5 + 3) % I, 0.125f);
    r.emplace_back(i, 0.1f);
    return r;
  };
  std::vector<double> A(I * I, 0.0);
  for (int64_t i = 0; i < I; ++i)
    for (const auto& [j, w] : terms(i)) A[i * I + j] += w;
  auto x = [](int64_t id, int c) { return value(9, 5, id, c); };
  std::vector<float> ref_f, ref_t;
  for (const auto& [world, threads] : {std::pair{1, 1}, {2, 1}, {3, 3}, {4, 1}, {1, 3}}) {
    std::vector<float> yf, yt;
    dist::run_ranks(world, [&](dist::Comm& comm) {
      const dist::Sharding s = dist::Sharding::modulo(I, world);
      const int64_t L = s.local_rows(comm.rank());
      dist::SparseRows rows(L);
      std::vector<float> xl;
      for (int64_t l = 0; l < L; ++l) {
        rows[l] = terms(s.global_id(comm.rank(), l));
        for (int c = 0; c < dim; ++c) xl.push_back(x(s.global_id(comm.rank(), l), c));
      }
      dist::ItemGraph g(comm, s, rows);
      std::vector<float> of(L * dim, -1.0f), ot(L * dim, -1.0f);
      ThreadPool pool(threads);
      g.multiply(comm, xl.data(), of.data(), dim, &pool);
      g.multiply_transposed(comm, xl.data(), ot.data(), dim, &pool);
      const auto a = by_id(s, of, dim, comm), b = by_id(s, ot, dim, comm);
      if (comm.rank() == 0) {
        yf = a;
        yt = b;
      }
    });
    if (ref_f.empty()) {
      ref_f = yf;
      ref_t = yt;
      double worst = 0;
      for (int64_t i = 0; i < I; ++i)
        for (int c = 0; c < dim; ++c) {
          double f = 0, t = 0;
          for (int64_t j = 0; j < I; ++j) {
            f += A[i * I + j] * x(j, c);
            t += A[j * I + i] * x(j, c);
          }
          worst = std::max({worst, std::abs(f - yf[i * dim + c]), std::abs(t - yt[i * dim + c])});
        }
      EXPECT_LT(worst, 1e-5);
      for (int c = 0; c < dim; ++c) EXPECT_EQ(yf[7 * dim + c], 0.0f) << "an empty row gives zero";
      continue;
    }
    const std::string what = std::to_string(world) + " ranks x " + std::to_string(threads);
    EXPECT_EQ(yf, ref_f) << what;
    EXPECT_EQ(yt, ref_t) << what;
  }
}

TEST(GraphKernel, WeightedRowSumsAreTheScalarLoopsBitsAtEveryWidth) {
  for (int dim : {1, 7, 8, 16, 24, 64, 75, 80, 130}) {
    const int rows = 13;
    std::vector<float> x(rows * dim);
    for (size_t k = 0; k < x.size(); ++k) x[k] = value(6, 2, static_cast<int64_t>(k), dim);
    const std::vector<int64_t> ptr = {0, 3, 3, 9, 10};
    const std::vector<uint32_t> nbr = {4, 0, 12, 1, 2, 3, 5, 7, 11, 6};
    const std::vector<float> w = {0.3f, -1.0f, 0.7071f, 0.11f, 2.5f, 0.01f, -0.4f, 1.0f, 0.9f, 0.2f};
    std::vector<float> got(4 * dim, -1.0f), want(4 * dim);
    kernels::csr_weighted_row_sums(x.data(), ptr.data(), nbr.data(), w.data(), got.data(), dim, 0, 4);
    for (int r = 0; r < 4; ++r)
      for (int k = 0; k < dim; ++k) {
        float a = 0.0f;
        for (int64_t e = ptr[r]; e < ptr[r + 1]; ++e) a += w[e] * x[nbr[e] * dim + k];
        want[r * dim + k] = a;
      }
    EXPECT_EQ(0, std::memcmp(got.data(), want.data(), want.size() * sizeof(float))) << "dim " << dim;
  }
}

}  // namespace
}  // namespace shardrec
