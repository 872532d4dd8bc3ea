// Tests under real MPI (registered with ctest through mpiexec for 1..4 ranks): the MPI
// communicator, parallel-HDF5 reads of a rank's slab, and training whose parameters must equal
// a one-rank in-process reference bit for bit.
#include <gtest/gtest.h>

#include <chrono>
#include <cstring>
#include <filesystem>
#include <thread>

#include "core/mf_model.h"
#include "core/trainer.h"
#include "dist/inproc_comm.h"
#include "dist/mpi_comm.h"
#include "comm_conformance.h"
#include "fixtures.h"
#include "io/dataset.h"

namespace shardrec {
namespace {

dist::Comm* g_comm = nullptr;

using testing::full_table;

// A dataset file written by rank 0, named after the world size so parallel ctest runs differ.
std::string shared_dataset(const io::PreparedDataset& d, const std::string& name) {
  dist::Comm& comm = *g_comm;
  const std::string dir = testing::temp_dir("mpi");
  const std::string path = dir + "/" + name + "_np" + std::to_string(comm.size()) + ".h5";
  if (comm.rank() == 0) {
    std::filesystem::create_directories(dir);
    std::filesystem::remove(path);
    io::write_dataset(d, path, "test_mpi");
  }
  comm.barrier();
  return path;
}

TEST(Mpi, MpiBackendConforms) { testing::check_comm_conformance(*g_comm); }

// With a timeout the collectives run in their non-blocking form: the same results.
TEST(Mpi, MpiBackendConformsWithATimeout) {
  dist::MpiComm comm;
  comm.set_timeout(120);
  testing::check_comm_conformance(comm);
}

// A rank that does not arrive: the waiting rank gives up after the timeout with the collective,
// its rank and the context named, instead of hanging.
TEST(Mpi, ACollectiveThatTimesOutNamesItselfTheRankAndTheContext) {
  if (g_comm->size() < 2) GTEST_SKIP() << "needs a second rank that stays away";
  dist::MpiComm comm;
  comm.set_timeout(0.5);
  comm.set_context("epoch 3, step 7");
  if (comm.rank() == 0) {
    const auto t0 = std::chrono::steady_clock::now();
    std::string msg;
    try {
      comm.barrier();
    } catch (const dist::CommTimeout& e) {
      msg = e.what();
    }
    const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    EXPECT_NE(msg.find("MPI Barrier did not complete within 0.5 s on rank 0 of " + std::to_string(comm.size()) +
                       " (epoch 3, step 7)"),
              std::string::npos)
        << msg;
    EXPECT_GE(secs, 0.5);
    EXPECT_LT(secs, 2.5);  // the others arrive after 3 s
  } else {
    std::this_thread::sleep_for(std::chrono::seconds(3));
    comm.barrier();  // rank 0's barrier is posted: this one completes
  }
  g_comm->barrier();
}

TEST(Mpi, CollectivesDeliverTheRightBytes) {
  dist::Comm& comm = *g_comm;
  const int n = comm.size(), me = comm.rank();
  std::vector<std::vector<int32_t>> send(n);
  for (int k = 0; k < n; ++k) send[k].assign(me + k + 1, me * 10 + k);
  auto got = dist::all_to_all(comm, send);
  for (int k = 0; k < n; ++k) {
    ASSERT_EQ(got[k].size(), static_cast<size_t>(k + me + 1));
    for (auto v : got[k]) EXPECT_EQ(v, k * 10 + me);
  }
  auto all = dist::allgather(comm, std::vector<int64_t>(me, me));
  for (int k = 0; k < n; ++k) EXPECT_EQ(all[k], std::vector<int64_t>(k, k));
  int64_t s = me + 1;
  comm.allreduce_sum(&s, 1);
  EXPECT_EQ(s, n * (n + 1) / 2);
  EXPECT_GT(comm.stats().alltoallv_calls, 0u);
}

TEST(Mpi, EachRankReadsItsSlabWithParallelHdf5) {
  dist::Comm& comm = *g_comm;
  auto d = testing::planted_dataset(61, 37, 3, 8);
  const std::string path = shared_dataset(d, "slab");
  auto a = io::load_shard(path, comm);
  auto b = io::shard_from_memory(d, comm);
  for (int s = 0; s < 3; ++s) {
    EXPECT_EQ(a.split[s].user_lo, b.split[s].user_lo);
    EXPECT_EQ(a.split[s].ptr, b.split[s].ptr);
    EXPECT_EQ(a.split[s].item, b.split[s].item);
  }
  int64_t rows = a.train().rows();
  comm.allreduce_sum(&rows, 1);
  EXPECT_EQ(rows, static_cast<int64_t>(d.train.size()));
}

TEST(Mpi, TrainingMatchesTheOneRankReferenceBitwise) {
  dist::Comm& comm = *g_comm;
  auto d = testing::planted_dataset(71, 43, 4, 11);
  const std::string path = shared_dataset(d, "train");
  TrainConfig c;
  c.data = path;
  c.dim = 8;
  c.batch = 37;
  c.epochs = 2;
  c.eval_every = 1;
  c.patience = 0;
  c.negatives = 2;
  c.opt.lr = 0.01f;
  c.eval.ks = {5};
  c.valid_metric = "ndcg@5";
  auto shard = io::load_shard(path, comm);
  Trainer t(c, shard, comm);
  auto fit = t.fit();
  auto user = full_table(t.model().user, comm);
  auto item = full_table(t.model().item, comm);
  auto test = evaluate(t.model_as<MFModel>(), shard, 2, c.eval, comm);
  if (comm.rank() != 0) return;
  std::vector<float> ref_user, ref_item;
  EvalResult ref_test;
  double ref_loss = 0;
  dist::run_ranks(1, [&](dist::Comm& one) {
    auto s1 = io::shard_from_memory(d, one);
    Trainer r(c, s1, one);
    ref_loss = r.fit().epochs.back().loss;
    ref_user = full_table(r.model().user, one);
    ref_item = full_table(r.model().item, one);
    ref_test = evaluate(r.model_as<MFModel>(), s1, 2, c.eval, one);
  });
  EXPECT_EQ(0, std::memcmp(user.data(), ref_user.data(), user.size() * sizeof(float)));
  EXPECT_EQ(0, std::memcmp(item.data(), ref_item.data(), item.size() * sizeof(float)));
  EXPECT_EQ(fit.epochs.back().loss, ref_loss);
  EXPECT_EQ(test.values, ref_test.values);
}

}  // namespace
}  // namespace shardrec

int main(int argc, char** argv) {
  shardrec::dist::MpiEnv env(&argc, &argv);
  ::testing::InitGoogleTest(&argc, argv);
  int result = 0;
  {
    shardrec::dist::MpiComm comm;
    shardrec::g_comm = &comm;
    // Only rank 0 prints the gtest report; every rank's failures still set its exit code.
    if (comm.rank() != 0) {
      auto& listeners = ::testing::UnitTest::GetInstance()->listeners();
      delete listeners.Release(listeners.default_result_printer());
    }
    result = RUN_ALL_TESTS();
    int64_t failed = result != 0;
    comm.allreduce_sum(&failed, 1);
    result = failed ? 1 : 0;
  }
  return result;
}
