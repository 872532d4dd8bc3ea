// Small generated datasets for tests (no test depends on files outside the project).
#pragma once
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <functional>
#include <stdexcept>
#include <string>
#include <vector>

#include <cstring>

#include "base/rng.h"
#include "dist/comm.h"
#include "dist/sharded_embedding.h"
#include "core/ncf_model.h"
#include "core/trainer.h"
#include "dist/inproc_comm.h"
#include "core/checkpoint_state.h"
#include "io/dataset.h"
#include "io/features.h"
#include "io/interactions.h"

namespace shardrec::testing {

// Users and items in `groups` planted groups; each user has 4..4+spread items, mostly from its
// group; a per-user 70/15/15 split. Deterministic for the seed.
inline io::PreparedDataset planted_dataset(int users, int items, int groups, uint64_t seed,
                                           int spread = 12) {
  io::PreparedDataset d;
  // Appended, not "u" + to_string(u): GCC 12's -Wrestrict misfires on that (its bug 105651).
  for (int u = 0; u < users; ++u) d.user_raw.push_back(std::string("u").append(std::to_string(u)));
  for (int i = 0; i < items; ++i) d.item_raw.push_back(std::string("i").append(std::to_string(i)));
  io::Interactions* parts[3] = {&d.train, &d.valid, &d.test};
  for (int u = 0; u < users; ++u) {
    CounterRng r(seed, 1, u);
    const int n = std::min(4 + static_cast<int>(r.below(spread + 1)), items * 3 / 4);
    std::vector<int64_t> its;
    while (static_cast<int>(its.size()) < n) {
      int64_t it = r.uniform() < 0.8 ? (r.below(items / groups) * groups + u % groups) % items
                                     : static_cast<int64_t>(r.below(items));
      if (std::find(its.begin(), its.end(), it) == its.end()) its.push_back(it);
    }
    const int nt = std::max(1, n * 15 / 100), nv = std::max(1, n * 15 / 100);
    for (int k = 0; k < n; ++k) {
      const int s = k < n - nt - nv ? 0 : (k < n - nt ? 1 : 2);
      parts[s]->user.push_back(u);
      parts[s]->item.push_back(its[k]);
    }
  }
  return d;
}

// A planted dataset with ratings 1..5: a user's in-group items mostly rate high.
inline io::PreparedDataset labeled_dataset(int users, int items, int groups, uint64_t seed) {
  auto d = testing::planted_dataset(users, items, groups, seed);
  io::Interactions* parts[3] = {&d.train, &d.valid, &d.test};
  for (auto* p : parts)
    for (size_t r = 0; r < p->size(); ++r) {
      CounterRng g(seed, 77, static_cast<uint64_t>(p->user[r]), static_cast<uint64_t>(p->item[r]));
      const bool in_group = p->item[r] % groups == p->user[r] % groups;
      const double x = g.uniform();
      p->rating.push_back(static_cast<float>(in_group ? (x < 0.8 ? 4 + (x < 0.4) : 2) : (x < 0.6 ? 1 + (x < 0.3) : 3)));
    }
  d.label_threshold = 2.0;
  return d;
}


// The whole table in id order, on every rank (gathered from the owners).
inline std::vector<float> full_table(const dist::ShardedEmbedding& t, dist::Comm& comm) {
  std::vector<int64_t> ids;
  for (int64_t l = 0; l < t.local_rows(); ++l) ids.push_back(t.sharding().global_id(comm.rank(), l));
  auto all_ids = dist::allgather(comm, ids);
  auto all_rows = dist::allgather(comm, t.local_data());
  std::vector<float> out(t.rows() * t.dim());
  for (int k = 0; k < comm.size(); ++k)
    for (size_t i = 0; i < all_ids[k].size(); ++i)
      std::memcpy(&out[all_ids[k][i] * t.dim()], &all_rows[k][i * t.dim()], t.dim() * sizeof(float));
  return out;
}

// Rows of a table sharded by s (this rank's, local order) as the whole table in id order.
inline std::vector<float> whole(const dist::Sharding& s, int dim, const std::vector<float>& local, dist::Comm& comm) {
  OptimizerConfig sgd;
  sgd.kind = OptimizerConfig::Kind::kSgd;
  dist::ShardedEmbedding t("t", 0, s.rows(), dim, s, comm.rank(), 1, {}, sgd);
  t.local_data() = local;
  return full_table(t, comm);
}

// A value for row `id` of table `t`, column k, from the seed alone.
inline float value(uint64_t seed, int t, int64_t id, int k) {
  CounterRng r(seed, static_cast<uint64_t>(t), static_cast<uint64_t>(id), static_cast<uint64_t>(k));
  return static_cast<float>(r.uniform() * 2 - 1);
}

// This rank's rows of table t as value(3, key, id, column): a gradient that depends on the row's
// id only, not on where it lives.
inline std::vector<float> seeded_rows(const dist::ShardedEmbedding& t, int key, int rank) {
  std::vector<float> g(static_cast<size_t>(t.local_rows()) * t.dim());
  for (int64_t l = 0; l < t.local_rows(); ++l)
    for (int k = 0; k < t.dim(); ++k) g[l * t.dim() + k] = value(3, key, t.sharding().global_id(rank, l), k);
  return g;
}

// An exact sum over ranks of a double (fixed point at 1e-12: exact enough for differences of 1e-2).
inline double sum_over(dist::Comm& comm, double s) {
  int64_t fixed = std::llround(s * 1e12);
  comm.allreduce_sum(&fixed, 1);
  return static_cast<double>(fixed) * 1e-12;
}

// grad_u, grad_i (whole tables, id order) against central differences of f() at a few
// coordinates of each table, moved on their owners (every rank takes part in f()).
inline void expect_finite_differences(Model& m, dist::Comm& comm, const std::function<double()>& f,
                                      const std::vector<float>& grad_u, const std::vector<float>& grad_i, float h,
                                      double tol) {
  const int dim = m.user.dim();
  for (int64_t id : {0L, 7L, 16L}) {
    for (int which = 0; which < 2; ++which) {
      dist::ShardedEmbedding& t = which == 0 ? m.user : m.item;
      const int owner = t.sharding().owner(id);
      const int64_t l = t.sharding().local_index(id);
      const int k = static_cast<int>(id % dim);
      float saved = 0;
      if (comm.rank() == owner) saved = t.local_row(l)[k];
      if (comm.rank() == owner) t.local_row(l)[k] = saved + h;
      const double fp = f();
      if (comm.rank() == owner) t.local_row(l)[k] = saved - h;
      const double fm = f();
      if (comm.rank() == owner) t.local_row(l)[k] = saved;
      const double fd = (fp - fm) / (2.0 * h);
      const double an = (which == 0 ? grad_u : grad_i)[id * dim + k];
      EXPECT_NEAR(an, fd, tol * std::max(1.0, std::abs(fd))) << (which ? "item " : "user ") << id;
      EXPECT_GT(std::abs(an), 1e-6) << "a zero gradient would pass trivially";
    }
  }
}

// A path in the tests' temporary folder `dir`, with no file left there from an earlier run.
std::string temp_dir(const std::string& name);
inline std::string fresh_path(const std::string& dir, const std::string& name) {
  const std::string d = temp_dir(dir);
  std::filesystem::create_directories(d);
  const std::string p = d + "/" + name;
  std::filesystem::remove(p);
  return p;
}

// The message of the exception f throws, or "(no error)".
inline std::string error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const std::exception& e) {
    return e.what();
  }
  return "(no error)";
}

inline std::string temp_dir(const std::string& name) {
#ifdef SHARDREC_TEST_TMP
  std::string base = SHARDREC_TEST_TMP;
#else
  std::string base = "/tmp/shardrec-tests";
#endif
  return base + "/" + name;
}

// A planted dataset with a "group" modality (one-hot of the item's group, 3 columns more of
// noise) written to HDF5.
inline std::string vbpr_dataset(const std::string& name, int users, int items, int groups, uint64_t seed) {
  auto d = testing::planted_dataset(users, items, groups, seed);
  const std::string path = fresh_path("vbpr", name + ".h5");
  const int64_t F = groups + 3;
  std::vector<float> feat(items * F, 0.0f);
  CounterRng r(seed, 9);
  for (int i = 0; i < items; ++i) {
    feat[i * F + i % groups] = 1.0f;
    for (int k = 0; k < 3; ++k) feat[i * F + groups + k] = static_cast<float>(r.normal() * 0.1);
  }
  io::write_dataset(d, path, "test_vbpr", [&](io::H5File& f) {
    io::write_modality(f, "group", feat, items, F, 0, "test");
  });
  return path;
}

// Resumes t from the checkpoint `load` (when given) and, with stop_at > 0, makes it write the
// checkpoint `save` at that global step and stop there (the tests' checkpoint/resume harness).
void checkpoint_and_resume(Trainer& t, const TrainConfig& c, const io::DatasetInfo& info, dist::Comm& comm,
                           const std::string& load, int64_t stop_at, const std::string& save) {
  if (!load.empty()) load_checkpoint(load, t, c, info, comm);
  if (stop_at > 0)
    t.set_step_hook([&comm, stop_at, save](Trainer& tr) {
      if (tr.global_step() != stop_at) return false;
      save_checkpoint(save, tr, comm);
      return true;
    });
}

// What tests compare of a training on thread ranks (rank 0's copy; tables in id order).
struct TrainRun {
  std::vector<float> user, item;
  std::vector<double> losses;  // of the epochs this run completed
  EvalResult test;             // split 2, after training
};

// Trains c on `world` thread ranks into out: on d (null: the dataset file c.data), through
// checkpoint_and_resume; keep (when given) reads what else a test compares from rank 0's trainer.
inline void train_ranks(TrainRun& out, int world, const TrainConfig& c, const io::PreparedDataset* d = nullptr,
                        const std::function<void(Trainer&)>& keep = {}, const std::string& load = "",
                        int64_t stop_at = 0, const std::string& save = "") {
  dist::run_ranks(world, [&](dist::Comm& comm) {
    auto shard = d ? io::shard_from_memory(*d, comm) : io::load_shard(c.data, comm);
    Trainer t(c, shard, comm);
    checkpoint_and_resume(t, c, shard.info, comm, load, stop_at, save);
    auto fit = t.fit();
    auto u = full_table(t.model().user, comm);
    auto i = full_table(t.model().item, comm);
    auto test = t.evaluate(2);
    if (comm.rank() != 0) return;
    out.user = u;
    out.item = i;
    for (auto& e : fit.epochs) out.losses.push_back(e.loss);
    out.test = test;
    if (keep) keep(t);
  });
}

// The same bits of two trainings' tables, losses and test metrics.
inline void expect_same_run(const TrainRun& got, const TrainRun& ref, const std::string& what) {
  ASSERT_EQ(got.user.size(), ref.user.size()) << what;
  EXPECT_EQ(0, std::memcmp(got.user.data(), ref.user.data(), ref.user.size() * sizeof(float))) << what << ": user";
  EXPECT_EQ(0, std::memcmp(got.item.data(), ref.item.data(), ref.item.size() * sizeof(float))) << what << ": item";
  EXPECT_EQ(got.losses, ref.losses) << what;
  EXPECT_EQ(got.test.values, ref.test.values) << what;
}

// A GMF/NeuMF training on `world` thread ranks through checkpoint_and_resume, and what tests
// compare of it (rank 0's copy; tables in id order, with the device state brought to the host).
struct PointwiseRun {
  std::vector<float> user, item, dense, dense_m, dense_v;
  IgStats ig;
  std::vector<double> losses;  // of the epochs this run completed
  int best_epoch = 0;
  bool interrupted = false;
  int64_t steps_per_epoch = 0, phase0_steps = 0;
};

inline PointwiseRun run_pointwise(int world, const TrainConfig& c, const io::PreparedDataset& d,
                                  const std::string& load = "", int64_t stop_at = 0, const std::string& save = "") {
  PointwiseRun out;
  dist::run_ranks(world, [&](dist::Comm& comm) {
    auto shard = io::shard_from_memory(d, comm);
    Trainer t(c, shard, comm);
    checkpoint_and_resume(t, c, shard.info, comm, load, stop_at, save);
    auto fit = t.fit();
    t.sync_state_to_host();
    auto u = full_table(t.model().user, comm);
    auto i = full_table(t.model().item, comm);
    if (comm.rank() != 0) return;
    RowOptimizer& o = t.model_as<NcfModel>().dense_optimizer();
    out = {u, i, t.model_as<NcfModel>().dense, o.state_m(), o.state_v(), t.ig_stats(), {}, fit.best_epoch, fit.interrupted,
           t.steps_per_epoch(), t.phase_steps(0)};
    for (auto& e : fit.epochs) out.losses.push_back(e.loss);
  });
  return out;
}

}  // namespace shardrec::testing
