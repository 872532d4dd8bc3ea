#include <gtest/gtest.h>

#include <cmath>
#include <numeric>

#include "base/error.h"
#include "base/rng.h"
#include "dist/dense_allreduce.h"
#include "dist/inproc_comm.h"

namespace shardrec::dist {
namespace {

// 1000 per-sample gradients of a 17-parameter layer, magnitudes from 1e-9 to 1e2.
std::vector<std::vector<float>> contributions() {
  std::vector<std::vector<float>> g(1000, std::vector<float>(17));
  CounterRng r(3, 1);
  for (auto& s : g)
    for (auto& x : s) x = static_cast<float>(r.normal() * std::pow(10.0, -9.0 + 11.0 * r.uniform()));
  return g;
}

TEST(ExactGradientSum, SameBitsForEveryWorldSizeAndSplit) {
  const auto g = contributions();
  std::vector<float> ref;
  for (int world : {1, 2, 3, 4}) {
    for (int split : {0, 1}) {  // round-robin or contiguous blocks of samples per rank
      run_ranks(world, [&](Comm& comm) {
        ExactGradientSum s(17);
        for (size_t k = 0; k < g.size(); ++k) {
          const int owner = split == 0 ? static_cast<int>(k % world)
                                       : static_cast<int>(k * world / g.size());
          if (owner == comm.rank()) s.add(g[k].data());
        }
        std::vector<float> out(17);
        s.allreduce(comm, out.data());
        if (comm.rank() != 0) return;
        if (ref.empty()) ref = out;
        else EXPECT_EQ(out, ref) << world << " ranks, split " << split;
      });
    }
  }
  // And it is accurate: against a double-precision sum, within float rounding.
  for (int i = 0; i < 17; ++i) {
    double exact = 0, mag = 0;
    for (auto& s : g) {
      exact += s[i];
      mag += std::abs(s[i]);
    }
    EXPECT_NEAR(ref[i], exact, 1e-6 * mag + 1e-9) << i;
  }
}

TEST(ExactGradientSum, OutOfRangeContributionsAreClearErrors) {
  ExactGradientSum s(2, 40, "mlp.w");
  const float bad[2] = {1.0f, std::nanf("")};
  try {
    s.add(bad);
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("gradient of mlp.w[1]"), std::string::npos) << e.what();
  }
  const float huge[2] = {1e30f, 0.0f};
  EXPECT_THROW(s.add(huge), Error);
}

}  // namespace
}  // namespace shardrec::dist
