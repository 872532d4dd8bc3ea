// GPU benchmarks (needs a GPU; built with the CUDA backend). One run prints, as tab-separated lines:
//   copy      device-to-device cudaMemcpy bandwidth (bytes read + written per second): the ceiling
//   lookup    DeviceEmbedding route + gather of a batch of random ids, and each fused update
//             (sgd, adagrad, adam), as useful bytes per second and as a fraction of the ceiling
//   e2e       MF-BPR training samples/s on one GPU (Trainer, --device cuda, lazy Adam) on a
//             synthetic skewed data set, whose interactions are written to --dump for the PyTorch
//             peer (bench/torch_peer.py) to train on the same data
// Usage: bench_gpu [--rows N] [--ids N] [--dim D] [--users N] [--items N] [--interactions N]
//                  [--batch N] [--epochs N] [--dump PATH]
#include <cuda_runtime.h>

#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <string>
#include <vector>

#include "core/gpu_backend.h"
#include "base/rng.h"
#include "core/trainer.h"
#include "dist/cuda_comm.h"
#include "dist/device_embedding.h"
#include "dist/inproc_comm.h"
#include "io/dataset.h"

using namespace shardrec;

namespace {

double now() { return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count(); }

long long arg(int argc, char** argv, const char* name, long long dflt) {
  for (int i = 1; i + 1 < argc; ++i)
    if (!std::strcmp(argv[i], name)) return std::atoll(argv[i + 1]);
  return dflt;
}
std::string sarg(int argc, char** argv, const char* name, const std::string& dflt) {
  for (int i = 1; i + 1 < argc; ++i)
    if (!std::strcmp(argv[i], name)) return argv[i + 1];
  return dflt;
}

double copy_bandwidth() {
  const size_t bytes = size_t{1} << 30;
  shardrec::cuda::DeviceBuffer<char> a(bytes), b(bytes);
  cudaMemset(a.data(), 1, bytes);
  cudaEvent_t e0, e1;
  cudaEventCreate(&e0);
  cudaEventCreate(&e1);
  cudaMemcpy(b.data(), a.data(), bytes, cudaMemcpyDeviceToDevice);
  cudaEventRecord(e0);
  const int reps = 10;
  for (int r = 0; r < reps; ++r) cudaMemcpy(b.data(), a.data(), bytes, cudaMemcpyDeviceToDevice);
  cudaEventRecord(e1);
  cudaEventSynchronize(e1);
  float ms = 0;
  cudaEventElapsedTime(&ms, e0, e1);
  return 2.0 * bytes * reps / (ms / 1e3);  // read + write
}

void lookup_update(int64_t rows, size_t n, int dim, double ceiling) {
  dist::run_ranks(1, [&](dist::Comm& host) {
    cudaSetDevice(0);
    dist::CudaAwareComm comm(host, nullptr);
    shardrec::cuda::Stream st;
    std::vector<int64_t> ids(n);
    std::vector<uint64_t> keys(n);
    CounterRng r(1, 2, 3);
    for (size_t i = 0; i < n; ++i) {
      ids[i] = static_cast<int64_t>(r.below(static_cast<uint64_t>(rows)));
      keys[i] = i;
    }
    shardrec::cuda::DeviceBuffer<int64_t> d_ids(n);
    shardrec::cuda::DeviceBuffer<uint64_t> d_keys(n);
    shardrec::cuda::DeviceBuffer<float> out(n * dim), grads(n * dim);
    cudaMemcpy(d_ids.data(), ids.data(), n * 8, cudaMemcpyHostToDevice);
    cudaMemcpy(d_keys.data(), keys.data(), n * 8, cudaMemcpyHostToDevice);
    cudaMemset(grads.data(), 0, n * dim * 4);
    cudaDeviceSynchronize();  // pageable uploads land before the table's stream reads them
    for (const char* name : {"sgd", "adagrad", "adam"}) {
      OptimizerConfig opt;
      opt.kind = OptimizerConfig::parse_kind(name);
      // A host table only to initialise the device one (uniform init is cheap).
      dist::InitSpec init;
      init.kind = dist::InitSpec::Kind::kUniform;
      dist::ShardedEmbedding h("bench", 1, rows, dim, dist::Sharding::modulo(rows, 1), 0, 1, init, opt);
      dist::DeviceEmbedding t(h, st.get());
      dist::DeviceRouting rt;
      // Route as a remote table would (sort + unique) even on one rank: the multi-rank path.
      auto run = [&](int reps, double& t_lookup, double& t_update) {
        t_lookup = t_update = 0;
        for (int k = 0; k < reps; ++k) {
          st.sync();
          const double a = now();
          t.route(comm, d_ids.data(), n, false, rt);
          t.gather(comm, rt, out.data());
          st.sync();
          const double b = now();
          t.apply(comm, rt, d_keys.data(), grads.data());
          st.sync();
          t_update += now() - b;
          t_lookup += b - a;
        }
      };
      double tl, tu;
      run(2, tl, tu);  // warm-up: allocations
      const int reps = 10;
      run(reps, tl, tu);
      tl /= reps;
      tu /= reps;
      const double row = static_cast<double>(dim) * 4;
      // Useful bytes: lookup reads and writes n rows; an update reads the gradient and the row's
      // state and writes the state back (sgd: w; adagrad: w + 1 accumulator; adam: w, m, v).
      const double lookup_bytes = 2.0 * n * row;
      const double states = opt.kind == OptimizerConfig::Kind::kSgd ? 1 : opt.kind == OptimizerConfig::Kind::kAdam ? 3 : 1;
      const double update_bytes = n * row * (1 + 2 * states);
      std::printf("lookup\t%s\trows=%lld\tids=%zu\tdim=%d\tlookup_ms=%.3f\tlookup_GBps=%.1f\tlookup_frac=%.3f\t"
                  "update_ms=%.3f\tupdate_GBps=%.1f\tupdate_frac=%.3f\n",
                  name, static_cast<long long>(rows), n, dim, tl * 1e3, lookup_bytes / tl / 1e9,
                  lookup_bytes / tl / ceiling, tu * 1e3, update_bytes / tu / 1e9, update_bytes / tu / ceiling);
      std::fflush(stdout);
    }
  });
}

// Users uniform, items skewed (popularity ~ rank^-0.7, roughly), no duplicate pairs per user draw.
io::PreparedDataset synthetic(int64_t users, int64_t items, int64_t n) {
  io::PreparedDataset d;
  d.user_raw.resize(users);
  d.item_raw.resize(items);
  for (int64_t u = 0; u < users; ++u) d.user_raw[u] = std::to_string(u);
  for (int64_t i = 0; i < items; ++i) d.item_raw[i] = std::to_string(i);
  const int64_t per = std::max<int64_t>(1, n / users);
  for (int64_t u = 0; u < users; ++u) {
    CounterRng r(9, 4, static_cast<uint64_t>(u));
    for (int64_t k = 0; k < per; ++k) {
      const double x = r.uniform();
      const int64_t it = std::min<int64_t>(items - 1, static_cast<int64_t>(std::pow(x, 3.0) * items));
      d.train.user.push_back(u);
      d.train.item.push_back(it);
    }
    d.valid.user.push_back(u);
    d.valid.item.push_back(static_cast<int64_t>(r.below(static_cast<uint64_t>(items))));
  }
  return d;
}

}  // namespace

int main(int argc, char** argv) {
  if (cuda_device_count() == 0) {
    std::fprintf(stderr, "bench_gpu: no GPU visible; nothing measured\n");
    return 2;
  }
  cudaDeviceProp prop{};
  cudaGetDeviceProperties(&prop, 0);
  std::printf("device\t%s\tsm_%d%d\t%.1f GiB\n", prop.name, prop.major, prop.minor, prop.totalGlobalMem / 1073741824.0);
  const double ceiling = copy_bandwidth();
  std::printf("copy\tGBps=%.1f\t(device-to-device, read + write)\n", ceiling / 1e9);
  const int dim = static_cast<int>(arg(argc, argv, "--dim", 64));
  lookup_update(arg(argc, argv, "--rows", 4'000'000), static_cast<size_t>(arg(argc, argv, "--ids", 1 << 20)), dim,
                ceiling);

  const int64_t users = arg(argc, argv, "--users", 200'000), items = arg(argc, argv, "--items", 100'000);
  const int64_t inter = arg(argc, argv, "--interactions", 10'000'000);
  const auto data = synthetic(users, items, inter);
  const std::string dump = sarg(argc, argv, "--dump", "");
  if (!dump.empty()) {  // int64 header (users, items, n), then int32 users, int32 items
    std::ofstream o(dump, std::ios::binary);
    const int64_t hdr[3] = {users, items, static_cast<int64_t>(data.train.user.size())};
    o.write(reinterpret_cast<const char*>(hdr), sizeof hdr);
    std::vector<int32_t> v(data.train.user.begin(), data.train.user.end());
    o.write(reinterpret_cast<const char*>(v.data()), v.size() * 4);
    v.assign(data.train.item.begin(), data.train.item.end());
    o.write(reinterpret_cast<const char*>(v.data()), v.size() * 4);
  }
  for (int64_t batch : {int64_t{arg(argc, argv, "--batch", 65536)}, int64_t{4096}}) {
    TrainConfig c;
    c.data = "<memory>";
    c.dim = dim;
    c.batch = batch;
    c.epochs = static_cast<int>(arg(argc, argv, "--epochs", 2));
    c.eval_every = 0;
    c.opt.kind = OptimizerConfig::Kind::kAdam;  // lazy, as PyTorch's SparseAdam
    c.opt.lr = 0.001f;
    c.device = "cuda";
    dist::run_ranks(1, [&](dist::Comm& comm) {
      auto shard = io::shard_from_memory(data, comm);
      Trainer t(c, shard, comm);
      auto fit = t.fit();
      const auto& last = fit.epochs.back();
      std::printf("e2e\tshardrec\tmf-bpr\tbatch=%lld\tdim=%d\tinteractions=%lld\tepochs=%zu\tlast_epoch_s=%.2f\t"
                  "samples_per_s=%.0f\tloss=%.5f\n",
                  static_cast<long long>(batch), dim, static_cast<long long>(data.train.user.size()), fit.epochs.size(),
                  last.seconds, last.samples_per_s, last.loss);
      std::fflush(stdout);
    });
  }
  return 0;
}
