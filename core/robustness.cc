#include "core/robustness.h"

#include <cmath>
#include <cstring>
#include <sstream>

#include "base/error.h"
#include "base/rng.h"
#include "dist/exact_sum.h"

namespace shardrec {

std::vector<Perturbation> parse_perturbations(const std::string& spec, uint64_t seed) {
  const auto colon = spec.find(':');
  const std::string kind = spec.substr(0, colon);
  if (colon == std::string::npos || (kind != "noise" && kind != "adjust"))
    fail("perturbation '" + spec + "': expected noise:S1,S2,... or adjust:P1,P2,...");
  std::vector<Perturbation> out;
  std::stringstream ss(spec.substr(colon + 1));
  std::string tok;
  while (std::getline(ss, tok, ',')) {
    double v;
    try {
      size_t used = 0;
      v = std::stod(tok, &used);
      if (used != tok.size()) throw std::invalid_argument(tok);
    } catch (const std::logic_error&) {
      fail("perturbation '" + spec + "': '" + tok + "' is not a number");
    }
    if (v < 0 || (kind == "adjust" && v > 1)) fail("perturbation '" + spec + "': strength " + tok + " out of range");
    out.push_back({kind, v, seed});
  }
  if (out.empty()) fail("perturbation '" + spec + "': no strengths");
  return out;
}

void perturb_features(Model& m, const Perturbation& p, dist::Comm& comm) {
  if (!m.item_features()) fail("feature perturbations need a model with item features (vbpr)");
  auto& f = *m.item_features();
  const std::vector<std::pair<std::string, int>> modalities = m.feature_modalities();
  const int F = f.dim();
  const int64_t L = f.local_rows();
  if (p.kind == "noise") {
    // Each modality's scale: its standard deviation over every item and column.
    dist::ExactSums sums(2 * modalities.size(), 24);
    int col = 0;
    for (size_t k = 0; k < modalities.size(); ++k) {
      for (int64_t l = 0; l < L; ++l)
        for (int c = col; c < col + modalities[k].second; ++c) {
          const double v = f.local_row(l)[c];
          sums.add(2 * k, v);
          sums.add(2 * k + 1, v * v);
        }
      col += modalities[k].second;
    }
    sums.allreduce(comm);
    col = 0;
    for (size_t k = 0; k < modalities.size(); ++k) {
      const int w = modalities[k].second;
      const double n = static_cast<double>(f.rows()) * w;
      const double mean = sums.value(2 * k) / n;
      const double scale = std::sqrt(std::max(0.0, sums.value(2 * k + 1) / n - mean * mean));
      for (int64_t l = 0; l < L; ++l) {
        const int64_t id = f.sharding().global_id(f.rank(), l);
        for (int c = col; c < col + w; ++c) {
          CounterRng rng(p.seed, 0x401, static_cast<uint64_t>(id), static_cast<uint64_t>(c));
          f.local_row(l)[c] += static_cast<float>(p.strength * scale * rng.normal());
        }
      }
      col += w;
    }
    return;
  }
  // Information adjustment: selected items fetch a source item's features from its owner.
  std::vector<int64_t> local_rows, sources;
  for (int64_t l = 0; l < L; ++l) {
    const int64_t id = f.sharding().global_id(f.rank(), l);
    if (to_unit(hash64(p.seed, 0xad, static_cast<uint64_t>(id))) >= p.strength) continue;
    local_rows.push_back(l);
    sources.push_back(static_cast<int64_t>(to_range(hash64(p.seed, 0xae, static_cast<uint64_t>(id)),
                                                    static_cast<uint64_t>(f.rows()))));
  }
  auto r = f.route(comm, sources);
  std::vector<float> rows(sources.size() * F);
  f.gather(comm, r, rows.data());  // every rank reads the unperturbed rows before any write
  comm.barrier();
  for (size_t k = 0; k < local_rows.size(); ++k)
    std::memcpy(f.local_row(local_rows[k]), &rows[k * F], F * sizeof(float));
}

}  // namespace shardrec
