// Distribution shifts of item features at evaluation time (the Mirror Gradient paper's
// robustness study), applied to a VBPR model's feature rows in place:
//   noise:  f += strength * scale_m * N(0, 1), scale_m = the standard deviation of modality m's
//           values over all items (exact sums across ranks), noise keyed by (seed, item, column);
//   adjust: "information adjustment": a fraction `strength` of the items (chosen by hash of
//           (seed, item)) take the features of another item (also chosen by hash).
// Every choice is a function of the seed and the ids, so results are the same for any N.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "core/model.h"
#include "dist/comm.h"

namespace shardrec {

struct Perturbation {
  std::string kind;  // "noise" or "adjust"
  double strength = 0;
  uint64_t seed = 99;
};

// Parses "noise:0.1,0.5" or "adjust:0.1,0.3" into one perturbation per strength.
std::vector<Perturbation> parse_perturbations(const std::string& spec, uint64_t seed);

// Applies p to the model's local feature rows (collective: every rank calls it).
void perturb_features(Model& m, const Perturbation& p, dist::Comm& comm);

}  // namespace shardrec
