// Inverse Learning: the Inverse Dual Loss against hand-computed values, GMF/NeuMF gradients
// against finite differences, the labeled-protocol metrics by hand, the Inverse Gradient meta-step
// (zero sample rate = plain training, one decision on every rank, world-size invariance on 1-4
// ranks), GMF/NeuMF retrieval (GMF's vectors against its logit, NeuMF's exact ranking on 1 and 3
// ranks against a brute force), labeled datasets and their bad input.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <map>
#include <filesystem>
#include <fstream>

#include "core/idl_loss.h"
#include "core/labeled_metrics.h"
#include "core/model.h"
#include "core/ncf_model.h"
#include "dist/inproc_comm.h"
#include "fixtures.h"
#include "io/dataset.h"
#include "io/prep.h"

namespace shardrec {
namespace {

using ::testing::HasSubstr;
using testing::error_of;
using testing::full_table;

// ---- Inverse Dual Loss -------------------------------------------------------------------------

TEST(Idl, WeightsAndLossByHand) {
  // y = 0: both losses are log 2, so the weights are 1/2 and the gradient vanishes.
  auto w0 = idl::dual_weights(0.0);
  EXPECT_DOUBLE_EQ(w0.pos, 0.5);
  EXPECT_DOUBLE_EQ(w0.neg, 0.5);
  double dy = 1;
  EXPECT_NEAR(idl::dual(0.0, &dy), std::log(2.0), 1e-15);
  EXPECT_NEAR(dy, 0.0, 1e-15);
  // y = 1: Lp = log(1 + e^-1) = 0.313262, Ln = log(1 + e) = 1.313262 (by hand, then python).
  auto w1 = idl::dual_weights(1.0);
  EXPECT_NEAR(w1.pos, 0.9461633370220951, 1e-13);
  EXPECT_NEAR(w1.neg, 1.0 - 0.9461633370220951, 1e-13);
  EXPECT_NEAR(idl::dual(1.0, &dy), 0.3670983504961277, 1e-13);
  EXPECT_NEAR(dy, -0.2151047583920902, 1e-13);  // sigmoid(1) - w_pos
  // y = -2: the negative loss is the small one, so the row is mostly labeled negative.
  auto w2 = idl::dual_weights(-2.0);
  EXPECT_NEAR(w2.pos, 0.003548668729086807, 1e-13);
  EXPECT_NEAR(idl::dual(-2.0, &dy), 0.1340253485011461, 1e-13);
  EXPECT_NEAR(dy, 0.11565425329303074, 1e-13);
  // The reference's form with its 1e-9 guards gives the same weights.
  for (double y : {-5.0, -0.3, 0.0, 0.7, 4.0}) {
    const double lp = idl::softplus(-y), ln = idl::softplus(y);
    const double a = ln / (lp + 1e-9), b = lp / (ln + 1e-9);
    EXPECT_NEAR(idl::dual_weights(y).pos, a / (a + b), 1e-8) << y;
  }
}

TEST(Idl, MixedBatchByHand) {
  // Labeled (0.5, 1), labeled (-1, 0), unlabeled 1, unlabeled -2: the mean of
  // softplus(-0.5), softplus(-1), dual(1), dual(-2).
  const std::vector<float> y{0.5f, -1.0f, 1.0f, -2.0f};
  const std::vector<int8_t> label{1, 0, -1, -1};
  std::vector<double> g(4);
  EXPECT_NEAR(idl::batch_loss(y, label, g), 0.3221155926739008, 1e-13);
  EXPECT_NEAR(g[2], -0.2151047583920902 / 4, 1e-13);
  EXPECT_NEAR(g[0], (1.0 / (1.0 + std::exp(-0.5)) - 1.0) / 4, 1e-13);
}

TEST(Idl, LabeledOnlyBatchEqualsBce) {
  const std::vector<float> y{0.3f, -1.7f, 2.5f, 0.0f, -0.2f};
  const std::vector<int8_t> label{1, 0, 0, 1, 1};
  std::vector<double> g(y.size()), gb(y.size());
  const double inv = 1.0 / static_cast<double>(y.size());
  double bce = 0;
  for (size_t r = 0; r < y.size(); ++r) {
    double d = 0;
    bce += idl::bce(y[r], label[r], &d);
    gb[r] = d * inv;
  }
  EXPECT_EQ(idl::batch_loss(y, label, g), bce * inv);
  EXPECT_EQ(g, gb);
}

// ---- Labeled-protocol metrics ------------------------------------------------------------------

TEST(LabeledMetrics, ByHand) {
  metrics::LabeledRows r;
  auto add = [&](int64_t u, int64_t i, uint8_t l, float s) {
    r.user.push_back(u);
    r.item.push_back(i);
    r.label.push_back(l);
    r.logit.push_back(s);
  };
  // User 0 ranks 1, 0, 1; user 1 ranks 0, 1; user 2 has positives only (left out per user).
  add(0, 10, 1, 0.9f);
  add(0, 11, 0, 0.8f);
  add(0, 12, 1, 0.1f);
  add(1, 10, 0, 0.7f);
  add(1, 13, 1, 0.2f);
  add(2, 11, 1, 0.5f);
  const std::vector<int> ks{1, 10};
  auto m = metrics::labeled_metrics(r, ks);
  EXPECT_DOUBLE_EQ(m["users"], 2);
  EXPECT_DOUBLE_EQ(m["gauc"], (0.5 + 0.0) / 2);
  EXPECT_DOUBLE_EQ(m["mrr"], (1.0 + 0.5) / 2);
  const double ndcg_u0 = 1.5 / (1.0 + 1.0 / std::log2(3.0)), ndcg_u1 = 1.0 / std::log2(3.0);
  EXPECT_NEAR(m["ndcg@10"], (ndcg_u0 + ndcg_u1) / 2, 1e-15);
  EXPECT_DOUBLE_EQ(m["ndcg@1"], 0.5);
  // Pooled AUC: positives {0.9, 0.1, 0.2, 0.5} vs negatives {0.8, 0.7}: only 0.9 beats them
  // (2 of 8 pairs).
  EXPECT_DOUBLE_EQ(m["auc"], 2.0 / 8.0);
  // Impression-weighted GAUC: weights 3 and 2.
  auto w = metrics::labeled_metrics(r, ks, metrics::GaucWeight::kImpressions);
  EXPECT_DOUBLE_EQ(w["gauc"], (3 * 0.5 + 2 * 0.0) / 5);
}

// ---- Data --------------------------------------------------------------------------------------

using testing::labeled_dataset;

TrainConfig il_config(const std::string& model) {
  TrainConfig c;
  c.data = "<memory>";
  c.model = model;
  c.dim = 4;
  c.mlp_layers = 2;
  c.loss = "idl";
  c.strategy = "ig";
  c.batch = 23;
  c.epochs = 2;
  c.eval_every = 0;
  c.opt.lr = 0.01f;
  c.ig_sample_lr = 0.05f;
  c.ig_train_ratio = 0.6f;
  c.eval.ks = {3};
  return c;
}

struct Out {
  std::vector<float> user, item, dense;
  IgStats ig;
  EvalResult test;
};

Out run(int world, const TrainConfig& c, const io::PreparedDataset& d, bool meta_disabled = false,
        std::vector<std::vector<uint8_t>>* decisions = nullptr) {
  Out out;
  if (decisions) decisions->assign(world, {});
  dist::run_ranks(world, [&](dist::Comm& comm) {
    auto shard = io::shard_from_memory(d, comm);
    Trainer t(c, shard, comm);
    t.set_meta_disabled(meta_disabled);
    t.fit();
    auto u = full_table(t.model().user, comm);
    auto i = full_table(t.model().item, comm);
    auto test = t.evaluate(2);
    if (decisions) (*decisions)[comm.rank()] = t.ig_stats().decisions;
    if (comm.rank() == 0) out = {u, i, t.model_as<NcfModel>().dense, t.ig_stats(), test};
  });
  return out;
}

// ---- Models ------------------------------------------------------------------------------------

TEST(Ncf, GradientsMatchFiniteDifferences) {
  for (const char* model : {"gmf", "neumf"}) {
    TrainConfig c = il_config(model);
    dist::run_ranks(1, [&](dist::Comm& comm) {
      NcfModel m(c, dist::Sharding::range({0, 3}), 5, comm.rank());
      const int R = m.row_dim();
      std::vector<float> u(R), it(R), act(m.act_size());
      CounterRng g(3, 4);
      for (int k = 0; k < R; ++k) {
        u[k] = static_cast<float>(g.normal() * 0.5);
        it[k] = static_cast<float>(g.normal() * 0.5);
      }
      std::vector<float> gu(R, 0.0f), gi(R, 0.0f), gd(m.dense.size());
      DenseGradAccum acc(m.dense.size());
      m.forward(u.data(), it.data(), m.dense.data(), act.data());
      m.backward(1.0f, u.data(), it.data(), m.dense.data(), act.data(), gu.data(), gi.data(), acc);
      acc.allreduce(comm, gd.data());
      // Central differences in double of the logit (float forward, so loose tolerances).
      auto logit = [&](std::vector<float>& v, size_t k, float h) {
        const float keep = v[k];
        v[k] = keep + h;
        const double y = m.forward(u.data(), it.data(), m.dense.data(), act.data());
        v[k] = keep;
        return y;
      };
      const float h = 1e-2f;
      for (int k = 0; k < R; ++k) {
        EXPECT_NEAR(gu[k], (logit(u, k, h) - logit(u, k, -h)) / (2 * h), 2e-3) << model << " u " << k;
        EXPECT_NEAR(gi[k], (logit(it, k, h) - logit(it, k, -h)) / (2 * h), 2e-3) << model << " i " << k;
      }
      for (size_t k = 0; k < m.dense.size(); k += 7)
        EXPECT_NEAR(gd[k], (logit(m.dense, k, h) - logit(m.dense, k, -h)) / (2 * h), 2e-3) << model << " w " << k;
    });
  }
}

// Retrieval: GMF's vectors reproduce its logit up to b_p; NeuMF has no dot form and ranks by its
// forward pass, the same lists on 1 and 3 ranks and the lists of a brute force over forward().
TEST(Ncf, RetrievalFormAndExactRanking) {
  const auto d = labeled_dataset(30, 17, 3, 4);
  for (const char* model : {"gmf", "neumf"}) {
    TrainConfig c = il_config(model);
    c.item_sharding = "mod";
    std::map<int, std::map<int64_t, std::vector<int64_t>>> lists;  // world -> user -> list
    for (int world : {1, 3}) {
      std::vector<std::map<int64_t, std::vector<int64_t>>> got(world);
      dist::run_ranks(world, [&](dist::Comm& comm) {
        auto shard = io::shard_from_memory(d, comm);
        auto m = make_model(c, shard, comm.rank());
        auto& ncf = dynamic_cast<NcfModel&>(*m);
        // Larger rows than the initial N(0, 0.01), so that the scores spread; a function of the id.
        std::string why;
        const int R = ncf.row_dim();
        for (auto* t : {&m->user, &m->item})
          for (int64_t l = 0; l < t->local_rows(); ++l)
            for (int k = 0; k < R; ++k)
              t->local_row(l)[k] = static_cast<float>(
                  std::sin(1.7 * (t->sharding().global_id(comm.rank(), l) * R + k) + (t == &m->user ? 0 : 0.5)));
        std::vector<float> act(ncf.act_size());
        if (ncf.neumf()) {
          EXPECT_FALSE(m->dot_form(&why));
          EXPECT_THAT(why, HasSubstr("MLP"));
          EXPECT_THAT(error_of([&] { m->retrieval_vectors(); }), HasSubstr("no dot-product form"));
        } else {
          EXPECT_TRUE(m->dot_form(&why));
          const RetrievalVectors v = m->retrieval_vectors();
          ASSERT_EQ(v.dim, R);
          EXPECT_EQ(v.offset, ncf.dense.back());
          for (int64_t u = 0; u < m->user.local_rows(); ++u)
            for (int64_t i = 0; i < m->item.local_rows(); ++i) {
              double dot = v.offset;
              for (int k = 0; k < R; ++k) dot += static_cast<double>(v.user[u * R + k]) * v.item[i * R + k];
              const float y = ncf.forward(m->user.local_row(u), m->item.local_row(i), ncf.dense.data(), act.data());
              EXPECT_NEAR(dot, y, 1e-5 * std::max(1.0f, std::fabs(y)));
            }
        }
        // score_block is forward(), bit for bit.
        const float* U[2] = {m->user.local_row(0), m->user.local_row(1)};
        std::vector<float> out(2 * m->item.local_rows());
        m->score_block(U, 2, m->item.local_data().data(), m->item.local_rows(), out.data());
        for (int u = 0; u < 2; ++u)
          for (int64_t i = 0; i < m->item.local_rows(); ++i)
            EXPECT_EQ(out[u * m->item.local_rows() + i],
                      ncf.forward(U[u], m->item.local_row(i), ncf.dense.data(), act.data()));
        std::vector<int64_t> mine;
        for (int64_t u = shard.train().user_lo; u < shard.train().user_hi; ++u) mine.push_back(u);
        EvalConfig ec;
        model_top_k(*m, shard, mine, 5, false, ec, comm,
                    [&](int64_t u, std::span<const int64_t> items, std::span<const float>) {
                      got[comm.rank()][u].assign(items.begin(), items.end());
                    });
        if (world == 1 && ncf.neumf()) {  // the brute force over every item
          for (int64_t u : mine) {
            std::vector<std::pair<float, int64_t>> all;
            auto train = shard.train().items_of(u);
            for (int64_t i = 0; i < m->item.rows(); ++i)
              if (std::find(train.begin(), train.end(), i) == train.end())
                all.push_back({-ncf.forward(m->user.local_row(u), m->item.local_row(i), ncf.dense.data(), act.data()), i});
            std::sort(all.begin(), all.end());
            std::vector<int64_t> want;
            for (size_t j = 0; j < 5 && j < all.size(); ++j) want.push_back(all[j].second);
            EXPECT_EQ(got[0][u], want) << "user " << u;
          }
        }
      });
      for (auto& g : got) lists[world].insert(g.begin(), g.end());
    }
    EXPECT_EQ(lists[1].size(), 30u) << model;
    EXPECT_EQ(lists[1], lists[3]) << model;
  }
}

// ---- Inverse Gradient --------------------------------------------------------------------------

TEST(InverseGradient, ZeroSampleRateEqualsPlainTrainingStepForStep) {
  const auto d = labeled_dataset(40, 30, 3, 5);
  for (const char* model : {"gmf", "neumf"}) {
    TrainConfig c = il_config(model);
    c.ig_sample_lr = 0.0f;
    for (int world : {1, 3}) {
      const Out ig = run(world, c, d);
      const Out plain = run(world, c, d, /*meta_disabled=*/true);
      EXPECT_EQ(ig.ig.mid, static_cast<int64_t>(ig.ig.decisions.size())) << model;
      EXPECT_GT(ig.ig.mid, 0) << model;
      EXPECT_EQ(ig.user, plain.user) << model << " " << world;
      EXPECT_EQ(ig.item, plain.item) << model << " " << world;
      EXPECT_EQ(ig.dense, plain.dense) << model << " " << world;
    }
  }
}

TEST(InverseGradient, DecisionIsIdenticalOnEveryRank) {
  const auto d = labeled_dataset(50, 40, 4, 8);
  TrainConfig c = il_config("neumf");
  std::vector<std::vector<uint8_t>> one, four;
  run(1, c, d, false, &one);
  run(4, c, d, false, &four);
  ASSERT_FALSE(one[0].empty());
  for (int k = 0; k < 4; ++k) EXPECT_EQ(four[k], one[0]) << "rank " << k;
  // The meta-step does choose candidates (not always mid) at this sample rate.
  EXPECT_GT(std::count_if(one[0].begin(), one[0].end(), [](uint8_t x) { return x != 0; }), 0);
}

TEST(InverseGradient, FullRunIsBitwiseIdenticalFor1To4Ranks) {
  const auto d = labeled_dataset(45, 33, 3, 4);
  for (const char* model : {"gmf", "neumf"})
    for (bool ref : {false, true})
      for (const char* strategy : {"plain", "ig"}) {
        TrainConfig c = il_config(model);
        c.il_reference = ref;
        c.strategy = strategy;
        if (ref && std::string(strategy) == "plain") continue;
        const Out base = run(1, c, d);
        TrainConfig c0 = c;
        c0.epochs = 0;
        EXPECT_NE(run(1, c0, d).dense, base.dense);  // it trains
        for (int world = 2; world <= 4; ++world) {
          const Out got = run(world, c, d);
          const std::string what = std::string(model) + " " + strategy + (ref ? " ref " : " ") + std::to_string(world);
          EXPECT_EQ(got.user, base.user) << what;
          EXPECT_EQ(got.item, base.item) << what;
          EXPECT_EQ(got.dense, base.dense) << what;
          EXPECT_EQ(got.ig.decisions, base.ig.decisions) << what;
          EXPECT_EQ(got.test.values, base.test.values) << what;
        }
      }
}

// Threads inside a rank at a size where their ranges overlap: GMF/NeuMF with IDL and Inverse
// Gradient give the bits of one thread (the dense gradients' per-thread parts sum exactly).
TEST(InverseGradient, ThreadsGiveTheBitsOfOneThread) {
  const auto d = labeled_dataset(500, 200, 4, 7);
  for (const char* model : {"gmf", "neumf"})
    for (const char* strategy : {"plain", "ig"}) {
      TrainConfig c = il_config(model);
      c.strategy = strategy;
      c.dim = 16;
      c.batch = 1500;
      c.il_unlabeled = 2;
      const Out base = run(1, c, d);
      for (const auto& [world, threads] : {std::pair{1, 2}, std::pair{1, 3}, std::pair{2, 2}}) {
        TrainConfig ct = c;
        ct.threads = threads;
        const Out got = run(world, ct, d);
        const std::string what = std::string(model) + " " + strategy + " " + std::to_string(world) + " ranks x " +
                                 std::to_string(threads) + " threads";
        EXPECT_EQ(got.user, base.user) << what;
        EXPECT_EQ(got.item, base.item) << what;
        EXPECT_EQ(got.dense, base.dense) << what;
        EXPECT_EQ(got.ig.decisions, base.ig.decisions) << what;
        EXPECT_EQ(got.test.values, base.test.values) << what;
      }
    }
}

TEST(InverseGradient, ReferenceQuirksChangeTheResult) {
  const auto d = labeled_dataset(40, 30, 3, 6);
  TrainConfig c = il_config("gmf");
  const Out paper = run(1, c, d);
  c.il_reference = true;
  const Out ref = run(1, c, d);
  EXPECT_NE(paper.dense, ref.dense);
}

TEST(Pointwise, BceIgnoresUnlabeledDrawsAndIdlUsesThem) {
  const auto d = labeled_dataset(40, 30, 3, 9);
  TrainConfig c = il_config("gmf");
  c.strategy = "plain";
  c.loss = "bce";
  const Out bce = run(2, c, d);
  c.loss = "idl";
  const Out idl = run(2, c, d);
  EXPECT_NE(bce.item, idl.item);
  // The second baseline: draws as negatives. Also world-size invariant.
  c.loss = "bce-neg";
  const Out neg = run(1, c, d);
  EXPECT_NE(neg.item, idl.item);
  EXPECT_EQ(run(3, c, d).item, neg.item);
  EXPECT_EQ(run(3, c, d).dense, neg.dense);
}

TEST(Pointwise, UnlabeledDrawsAvoidTrainingItems) {
  const auto d = labeled_dataset(30, 20, 2, 3);
  TrainConfig c = il_config("gmf");
  dist::run_ranks(1, [&](dist::Comm& comm) {
    auto shard = io::shard_from_memory(d, comm);
    Trainer t(c, shard, comm);
    const auto& tr = shard.train();
    for (int64_t u = 0; u < 30; ++u) {
      auto seen = tr.items_of(u);
      for (int k = 0; k < 20; ++k) {
        const int64_t j = t.sampler().unlabeled(1, u, k, seen);
        EXPECT_FALSE(std::binary_search(seen.begin(), seen.end(), static_cast<int32_t>(j)));
        EXPECT_EQ(j, t.sampler().unlabeled(1, u, k, seen));  // a pure function of its arguments
      }
    }
  });
}

// ---- Labeled data and bad input ----------------------------------------------------------------

std::string write_file(const std::string& name, const std::string& text) {
  const std::string p = testing::fresh_path("inverse", name);
  std::ofstream(p) << text;
  return p;
}

io::PrepOptions tab_options(std::vector<std::string> inputs) {
  io::PrepOptions o;
  o.format = io::Format::Csv;
  o.separator = '\t';
  o.rating_column = "2";
  o.inputs = std::move(inputs);
  o.split = io::SplitMode::Ratio;
  o.ratios = {0.6, 0.2, 0.2};
  o.label_threshold = 2.0;
  o.rating_range = std::make_pair(1.0, 5.0);
  return o;
}

TEST(LabeledData, TwoFilesAreOneDataSetWithLabels) {
  std::string a, b;
  for (int u = 1; u <= 6; ++u)
    for (int i = 1; i <= 5; ++i) (i % 2 ? a : b) += std::to_string(u) + "\t" + std::to_string(i) + "\t" + std::to_string(1 + (u + i) % 5) + "\n";
  const auto d = io::prepare(tab_options({write_file("a.tsv", a), write_file("b.tsv", b)}));
  EXPECT_EQ(d.train.size() + d.valid.size() + d.test.size(), 30u);
  EXPECT_EQ(d.label_threshold, 2.0);
  const std::string out = testing::fresh_path("inverse", "labeled.h5");
  io::write_dataset(d, out, "test");
  dist::run_ranks(2, [&](dist::Comm& comm) {
    auto shard = io::load_shard(out, comm);
    EXPECT_EQ(shard.info.label_threshold, 2.0);
    EXPECT_TRUE(shard.info.has_rating[0]);
  });
  // An implicit-feedback dataset (no threshold) still loads, with no threshold.
  auto implicit = testing::planted_dataset(10, 8, 2, 1);
  const std::string old = testing::fresh_path("inverse", "implicit.h5");
  io::write_dataset(implicit, old, "test");
  dist::run_ranks(1, [&](dist::Comm& comm) {
    auto shard = io::load_shard(old, comm);
    EXPECT_TRUE(std::isnan(shard.info.label_threshold));
    // ... but a pointwise model cannot train on it: it has no ratings to label.
    TrainConfig c = il_config("gmf");
    EXPECT_THAT(error_of([&] { Trainer t(c, shard, comm); }),
                HasSubstr("has no ratings"));
  });
}

TEST(LabeledData, BadInputGivesAClearError) {
  const std::string bad = write_file("bad.tsv", "1\t1\t4\n1\t2\t7\n2\t1\t3\n");
  EXPECT_THAT(error_of([&] { io::prepare(tab_options({bad})); }),
              ::testing::AllOf(HasSubstr("bad.tsv"), HasSubstr("data row 2"), HasSubstr("field rating"),
                               HasSubstr("outside the rating range [1, 5]")));
  // A threshold needs a rating column.
  const std::string two = write_file("two.tsv", "1\t1\n1\t2\n");
  auto o = tab_options({two});
  o.rating_column = "";
  o.rating_range.reset();
  EXPECT_THAT(error_of([&] { io::prepare(o); }),
              ::testing::AllOf(HasSubstr("two.tsv"), HasSubstr("field rating"), HasSubstr("needs a rating column")));
  // A bad threshold and a reversed range are refused before any parsing.
  o = tab_options({bad});
  o.label_threshold = NAN;
  EXPECT_THAT(error_of([&] { io::prepare(o); }), HasSubstr("label threshold"));
  o = tab_options({bad});
  o.rating_range = std::make_pair(5.0, 1.0);
  EXPECT_THAT(error_of([&] { io::prepare(o); }), HasSubstr("rating range"));
}

TEST(LabeledData, ConfigErrorsNameTheOption) {
  TrainConfig c = il_config("gmf");
  c.loss = "bpr";
  EXPECT_THAT(error_of([&] { c.validate(); }), HasSubstr("option --loss"));
  c = il_config("neumf");
  c.loss = "bce";
  EXPECT_THAT(error_of([&] { c.validate(); }), HasSubstr("--loss idl"));
  c = il_config("gmf");
  c.strategy = "mirror";
  EXPECT_THAT(error_of([&] { c.validate(); }), HasSubstr("option --strategy"));
  c = il_config("gmf");
  c.ig_train_ratio = 1.0f;
  EXPECT_THAT(error_of([&] { c.validate(); }), HasSubstr("option --ig-train-ratio"));
}

}  // namespace
}  // namespace shardrec
