// Loss landscape around trained parameters (Li et al., "Visualizing the Loss Landscape of Neural
// Nets", 2018): the training loss at theta + a*d1 + b*d2 for random directions d1, d2 that are
// filter-normalised (each embedding row of a direction is scaled to the norm of the same row of
// theta), and a sharpness number: the mean increase of the loss at radius r over k directions.
// Directions come from counter RNG keyed by (seed, direction, table, id): the same for any N.
#pragma once
#include <cstdint>
#include <vector>

#include "core/trainer.h"

namespace shardrec {

struct LandscapePoint {
  double a = 0, b = 0, loss = 0;
};

// dims 1: points a in [-radius, radius] (steps of them), b = 0; dims 2: the steps x steps grid.
// The model's parameters are restored afterwards.
std::vector<LandscapePoint> loss_surface(Trainer& t, int dims, int steps, double radius,
                                         uint64_t seed);

struct Sharpness {
  double base_loss = 0;
  double mean_increase = 0, max_increase = 0;  // over the directions, at the radius
};
Sharpness sharpness(Trainer& t, int directions, double radius, uint64_t seed);

}  // namespace shardrec
