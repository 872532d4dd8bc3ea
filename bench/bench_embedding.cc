// Micro-benchmarks of the per-step pieces on one rank (Google Benchmark). The end-to-end
// throughput comparison with `implicit` is bench/compare_implicit.py.
#include <benchmark/benchmark.h>

#include <vector>

#include "base/rng.h"
#include "dist/inproc_comm.h"
#include "dist/sharded_embedding.h"
#include "kernels/embedding_ops.h"

namespace {
using namespace shardrec;

void BM_Dot(benchmark::State& st) {
  const int d = static_cast<int>(st.range(0));
  std::vector<float> a(d, 0.5f), b(d, 0.25f);
  for (auto _ : st) benchmark::DoNotOptimize(kernels::dot(a.data(), b.data(), d));
  st.SetItemsProcessed(st.iterations());
}
BENCHMARK(BM_Dot)->Arg(32)->Arg(64)->Arg(128);

// route + gather + apply of one batch on a single rank (the all-to-all is a local copy).
void BM_EmbeddingStep(benchmark::State& st) {
  const int64_t rows = 100000, batch = st.range(0);
  const int d = 64;
  OptimizerConfig opt;
  opt.kind = static_cast<OptimizerConfig::Kind>(st.range(1));
  dist::run_ranks(1, [&](dist::Comm& comm) {
    dist::ShardedEmbedding t("item", 1, rows, d, dist::Sharding::modulo(rows, 1), 0, 1, {}, opt);
    std::vector<int64_t> ids(batch);
    std::vector<uint64_t> keys(batch);
    CounterRng r(3, 0);
    for (int64_t i = 0; i < batch; ++i) { ids[i] = r.below(rows); keys[i] = i; }
    std::vector<float> out(batch * d), g(batch * d, 1e-3f);
    for (auto _ : st) {
      auto rt = t.route(comm, ids);
      t.gather(comm, rt, out.data());
      t.apply(comm, rt, keys, g.data());
    }
    st.SetItemsProcessed(st.iterations() * batch);
  });
}
BENCHMARK(BM_EmbeddingStep)->Args({4096, 0})->Args({4096, 1})->Args({4096, 2})->Args({4096, 3});

}  // namespace

BENCHMARK_MAIN();
