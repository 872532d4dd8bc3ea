// The GPU backend of a build without CUDA (SHARDREC_CUDA=OFF, or no toolkit found).
#include "base/error.h"
#include "core/gpu_backend.h"
#include "core/gpu_pointwise.h"

namespace shardrec {

std::string resolve_device(const std::string& requested) {
  if (requested == "cpu" || requested == "auto") return "cpu";
  if (requested == "cuda")
    fail("option --device cuda: this shardrec was built without the CUDA backend (configure with "
         "-DSHARDREC_CUDA=ON on a machine with the CUDA toolkit)");
  fail("option --device: '" + requested + "' (expected cpu, cuda or auto)");
}

int cuda_device_count() { return 0; }

void gpu_score_topk(const float*, size_t, const float*, const int64_t*, size_t, int, const std::vector<int64_t>&,
                    const std::vector<int64_t>&, int, float*, int64_t*) {
  resolve_device("cuda");
}
int local_device_index(int) { return 0; }
int local_rank_count() { return 0; }

std::unique_ptr<GpuBackend> GpuBackend::create(const TrainConfig&, MFModel&, const io::DataShard&, dist::Comm&) {
  resolve_device("cuda");
  return nullptr;
}

std::unique_ptr<GpuPointwise> GpuPointwise::create(const TrainConfig&, NcfModel&, const io::DataShard&, dist::Comm&) {
  resolve_device("cuda");
  return nullptr;
}

}  // namespace shardrec
