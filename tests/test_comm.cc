#include <gtest/gtest.h>

#include <numeric>

#include "base/error.h"
#include "comm_conformance.h"
#include "dist/exact_sum.h"
#include "dist/inproc_comm.h"
#include "dist/sharding.h"
#include "shardrec_config.h"
#if SHARDREC_HAVE_CUDA
#include "dist/cuda_comm.h"
#endif

namespace shardrec::dist {

class CommTest : public ::testing::TestWithParam<int> {};

TEST_P(CommTest, InProcessBackendConforms) {
  run_ranks(GetParam(), [&](Comm& comm) { testing::check_comm_conformance(comm); });
}

#if SHARDREC_HAVE_CUDA
// The CUDA communicator with host buffers (no GPU needed): the host path and its counters.
TEST_P(CommTest, CudaCommunicatorOnHostBuffersConforms) {
  run_ranks(GetParam(), [&](Comm& host) {
    CudaAwareComm comm(host, nullptr);
    testing::check_comm_conformance(comm);
  });
}
#endif

TEST_P(CommTest, ExchangeDeliversEachRanksMessages) {
  const int world = GetParam();
  run_ranks(world, [&](Comm& comm) {
    std::vector<std::vector<int64_t>> send(world);
    // Rank r sends k+1 copies of 100*r+k to rank k.
    for (int k = 0; k < world; ++k) send[k].assign(k + 1, 100 * comm.rank() + k);
    auto got = all_to_all(comm, send);
    for (int k = 0; k < world; ++k) {
      ASSERT_EQ(got[k].size(), static_cast<size_t>(comm.rank() + 1));
      for (auto v : got[k]) EXPECT_EQ(v, 100 * k + comm.rank());
    }
  });
}

TEST_P(CommTest, AllgatherReduceBroadcast) {
  const int world = GetParam();
  run_ranks(world, [&](Comm& comm) {
    std::vector<int> mine(comm.rank(), comm.rank());
    auto all = allgather(comm, mine);
    for (int k = 0; k < world; ++k) EXPECT_EQ(all[k], std::vector<int>(k, k));
    int64_t s[2] = {comm.rank(), 1};
    comm.allreduce_sum(s, 2);
    EXPECT_EQ(s[0], world * (world - 1) / 2);
    EXPECT_EQ(s[1], world);
    double m = comm.rank() * 1.5;
    comm.allreduce_max(&m, 1);
    EXPECT_EQ(m, (world - 1) * 1.5);
    int v = comm.rank() == world - 1 ? 42 : 0;
    comm.broadcast(&v, sizeof v, world - 1);
    EXPECT_EQ(v, 42);
  });
}

TEST_P(CommTest, ExactSumsDoNotDependOnGrouping) {
  const int world = GetParam();
  // 1000 awkward terms split over ranks in contiguous blocks: the total is the same bits for any
  // world size, while a float sum in rank order generally is not.
  std::vector<double> terms(1000);
  for (int i = 0; i < 1000; ++i) terms[i] = 1.0 / (i + 3) * (i % 2 ? -1 : 1) * 1e3;
  ExactSums ref(1);
  for (double t : terms) ref.add(0, t);
  run_ranks(world, [&](Comm& comm) {
    ExactSums s(1);
    for (int i = comm.rank(); i < 1000; i += world) s.add(0, terms[i]);
    s.allreduce(comm);
    EXPECT_EQ(s.raw(0), ref.raw(0));
  });
}

TEST_P(CommTest, FailureOnOneRankDoesNotHangTheOthers) {
  const int world = GetParam();
  EXPECT_THROW(run_ranks(world,
                         [&](Comm& comm) {
                           if (comm.rank() == world - 1) fail("boom");
                           comm.barrier();
                           comm.barrier();
                         }),
               Error);
}

INSTANTIATE_TEST_SUITE_P(Worlds, CommTest, ::testing::Values(1, 2, 3, 4));

TEST(Sharding, ModuloRangeAndTableAreConsistent) {
  for (int world : {1, 2, 3, 4}) {
    const int64_t rows = 17;
    std::vector<Sharding> all = {Sharding::modulo(rows, world), Sharding::parse("range", rows, world),
                                 Sharding::table(rows, world, world - 1)};
    for (const auto& s : all) {
      int64_t total = 0;
      for (int r = 0; r < world; ++r) {
        total += s.local_rows(r);
        for (int64_t l = 0; l < s.local_rows(r); ++l) {
          const int64_t id = s.global_id(r, l);
          EXPECT_EQ(s.owner(id), r) << s.describe();
          EXPECT_EQ(s.local_index(id), l) << s.describe();
        }
      }
      EXPECT_EQ(total, rows) << s.describe();
    }
  }
  EXPECT_THROW(Sharding::parse("table:9", 10, 2), Error);
  EXPECT_THROW(Sharding::parse("diagonal", 10, 2), Error);
}

TEST(Sharding, BalancedBoundsSplitInteractionsEvenly) {
  // 10 users; user u has u+1 rows: ptr = 0,1,3,6,...,55.
  std::vector<int64_t> ptr(11, 0);
  for (int u = 0; u < 10; ++u) ptr[u + 1] = ptr[u] + u + 1;
  auto b = balanced_bounds(10, 2, [&](int64_t u) { return ptr[u]; });
  ASSERT_EQ(b.size(), 3u);
  EXPECT_EQ(b[0], 0);
  EXPECT_EQ(b[2], 10);
  // First user whose offset reaches ceil(55/2) = 28 is user 7 (ptr[7] = 28).
  EXPECT_EQ(b[1], 7);
  auto b4 = balanced_bounds(10, 4, [&](int64_t u) { return ptr[u]; });
  for (size_t i = 1; i < b4.size(); ++i) EXPECT_GE(b4[i], b4[i - 1]);
}

}  // namespace shardrec::dist
