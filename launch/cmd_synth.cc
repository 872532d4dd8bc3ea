// shardrec synth: a synthetic dataset with popularity skew and planted user/item groups.
#include <chrono>
#include <cstdio>

#include "io/synth.h"
#include "launch/commands.h"
#include "launch/options.h"

namespace shardrec::cli {

int cmd_synth(int argc, char** argv) {
  io::SynthConfig c;
  std::string out;
  const Options opts = {
      Option("out", out, "output dataset (.h5)").abbrev('o').required(),
      Option("users", c.users, "number of users").at_least(1),
      Option("items", c.items, "number of items").at_least(1),
      Option("interactions", c.interactions, "expected number of interactions").at_least(0),
      Option("zipf", c.zipf, "popularity exponent"),
      Option("activity-sigma", c.activity_sigma, "log-normal spread of user activity").at_least(0),
      Option("min-per-user", c.min_per_user, "fewest rows per user").at_least(0),
      Option("clusters", c.clusters, "planted user/item groups").at_least(1),
      Option("affinity", c.affinity, "probability that a draw comes from the user's group").range(0, 1),
      Option("valid", c.valid, "valid fraction per user").range(0, 1),
      Option("test", c.test, "test fraction per user").range(0, 1),
      Option("seed", c.seed, "seed"),
  };
  const Args args = parse(argc, argv, "usage: shardrec synth --out DATA.h5 [options]", opts);
  if (args.help) return 0;
  const auto t0 = std::chrono::steady_clock::now();
  const auto st = io::synthesize(c, out);
  const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  if (Log(args.log_level).summary())
    std::printf("wrote %s: %lld users, %lld items, train %lld, valid %lld, test %lld (%.1fs)\n",
                out.c_str(), (long long)c.users, (long long)c.items, (long long)st.rows[0],
                (long long)st.rows[1], (long long)st.rows[2], secs);
  return 0;
}

}  // namespace shardrec::cli
