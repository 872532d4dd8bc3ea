// One conformance suite for every communicator backend (in-process threads, MPI, the CUDA
// communicator over either): the same collectives with uneven and empty messages from every rank
// and root, and the traffic counters, which dist::Comm keeps alike for all of them. Call it on
// every rank of a communicator.
#pragma once
#include <gtest/gtest.h>

#include <cstdint>
#include <vector>

#include "base/error.h"
#include "dist/comm.h"

namespace shardrec::testing {

inline void check_comm_conformance(dist::Comm& comm) {
  const int n = comm.size(), me = comm.rank();
  comm.reset_stats();
  // alltoallv: rank me sends (me + k) % 3 values to rank k (some empty), its own share included.
  std::vector<size_t> sb(n), sd(n), rb(n), rd(n);
  size_t st = 0, rt = 0, remote = 0;
  for (int k = 0; k < n; ++k) {
    sb[k] = ((me + k) % 3) * sizeof(int32_t); sd[k] = st; st += sb[k];
    rb[k] = ((k + me) % 3) * sizeof(int32_t); rd[k] = rt; rt += rb[k];
    if (k != me) remote += sb[k];
  }
  std::vector<int32_t> send(st / 4 + 1), recv(rt / 4 + 1, -1);
  for (int k = 0; k < n; ++k)
    for (size_t j = 0; j < sb[k] / 4; ++j) send[sd[k] / 4 + j] = 1000 * me + 10 * k + static_cast<int32_t>(j);
  comm.alltoallv(send.data(), sb.data(), sd.data(), recv.data(), rb.data(), rd.data());
  for (int k = 0; k < n; ++k)
    for (size_t j = 0; j < rb[k] / 4; ++j)
      EXPECT_EQ(recv[rd[k] / 4 + j], 1000 * k + 10 * me + static_cast<int32_t>(j)) << "from rank " << k;
  EXPECT_EQ(comm.stats().alltoallv_calls, 1u);
  EXPECT_EQ(comm.stats().alltoallv_bytes_sent, remote);

  std::vector<uint64_t> s64(n), r64(n);
  for (int k = 0; k < n; ++k) s64[k] = 100u * me + k;
  comm.alltoall_u64(s64.data(), r64.data());
  for (int k = 0; k < n; ++k) EXPECT_EQ(r64[k], 100u * k + me);
  EXPECT_EQ(comm.stats().alltoall_calls, 1u);

  int64_t sum[3] = {me, -2 * me, int64_t{1} << 40};
  comm.allreduce_sum(sum, 3);
  EXPECT_EQ(sum[0], int64_t{n} * (n - 1) / 2);
  EXPECT_EQ(sum[1], -int64_t{n} * (n - 1));
  EXPECT_EQ(sum[2], int64_t{n} << 40);
  double mx[2] = {-1.0 - me, me == n - 1 ? 7.5 : 0.25};
  comm.allreduce_max(mx, 2);
  EXPECT_EQ(mx[0], -1.0);
  EXPECT_EQ(mx[1], 7.5);
  EXPECT_EQ(comm.stats().allreduce_calls, 2u);
  EXPECT_EQ(comm.stats().allreduce_bytes, 3 * sizeof(int64_t) + 2 * sizeof(double));

  // allgatherv with rank 0's part empty, after allgather_u64 of the sizes.
  const std::vector<int16_t> mine(me, static_cast<int16_t>(me));
  std::vector<uint64_t> counts(n);
  comm.allgather_u64(mine.size(), counts.data());
  std::vector<size_t> bytes(n);
  size_t total = 0;
  for (int k = 0; k < n; ++k) {
    EXPECT_EQ(counts[k], static_cast<uint64_t>(k));
    bytes[k] = counts[k] * sizeof(int16_t);
    total += bytes[k];
  }
  std::vector<int16_t> all(total / 2 + 1, -1);
  comm.allgatherv(mine.data(), mine.size() * sizeof(int16_t), all.data(), bytes.data());
  size_t off = 0;
  for (int k = 0; k < n; ++k)
    for (int j = 0; j < k; ++j) EXPECT_EQ(all[off++], k);
  EXPECT_EQ(comm.stats().allgather_calls, 2u);

  for (int root = 0; root < n; ++root) {
    uint64_t v = me == root ? 0xabc0 + root : 0;
    comm.broadcast(&v, sizeof v, root);
    EXPECT_EQ(v, 0xabc0u + root) << "root " << root;
  }
  EXPECT_EQ(comm.stats().bcast_calls, static_cast<uint64_t>(n));
  comm.barrier();
  EXPECT_EQ(comm.stats().barrier_calls, 1u);

  // A host-only backend refuses device buffers (before any transfer, so no rank is left waiting).
  if (!comm.handles_device_memory()) {
    int64_t x = 0;
    EXPECT_THROW(comm.allreduce_sum(&x, 1, dist::Memory::kDevice), Error);
    EXPECT_EQ(comm.stats().allreduce_calls, 2u);
  }
}

}  // namespace shardrec::testing
