#include "core/landscape.h"

#include <cmath>

#include "base/error.h"
#include "base/rng.h"
#include "core/mf_model.h"

namespace shardrec {

namespace {

// One filter-normalised random direction for every table of the model (local rows only).
struct Direction {
  std::vector<float> user, item;
};

std::vector<float> table_direction(const dist::ShardedEmbedding& t, uint64_t seed, uint64_t dir,
                                   uint64_t table) {
  const int d = t.dim();
  std::vector<float> out(t.local_rows() * d);
  for (int64_t l = 0; l < t.local_rows(); ++l) {
    const int64_t id = t.sharding().global_id(t.rank(), l);
    CounterRng rng(seed, 0xd1ec + dir, table, static_cast<uint64_t>(id));
    double norm_d = 0, norm_w = 0;
    const float* w = t.local_row(l);
    float* v = &out[l * d];
    for (int k = 0; k < d; ++k) {
      v[k] = static_cast<float>(rng.normal());
      norm_d += static_cast<double>(v[k]) * v[k];
      norm_w += static_cast<double>(w[k]) * w[k];
    }
    const double scale = norm_d > 0 ? std::sqrt(norm_w / norm_d) : 0.0;
    for (int k = 0; k < d; ++k) v[k] = static_cast<float>(v[k] * scale);
  }
  return out;
}

Direction make_direction(const MFModel& m, uint64_t seed, uint64_t dir) {
  return {table_direction(m.user, seed, dir, 0), table_direction(m.item, seed, dir, 1)};
}

void set_point(std::vector<float>& w, const std::vector<float>& base, const std::vector<float>* d1,
               double a, const std::vector<float>* d2, double b) {
  for (size_t i = 0; i < w.size(); ++i) {
    double v = base[i];
    if (d1) v += a * (*d1)[i];
    if (d2) v += b * (*d2)[i];
    w[i] = static_cast<float>(v);
  }
}

// The landscape moves the tables that score (MF and VBPR); a graph model's params.h5 holds its
// propagated rows, not the tables its loss is a function of.
MFModel& scoring_model(Trainer& t) {
  auto* m = dynamic_cast<MFModel*>(&t.model());
  if (!m) fail("landscape: model " + t.config().model + " is not supported yet (mf and vbpr are)");
  return *m;
}

}  // namespace

std::vector<LandscapePoint> loss_surface(Trainer& t, int dims, int steps, double radius,
                                         uint64_t seed) {
  if (dims != 1 && dims != 2) fail("landscape: --dims must be 1 or 2");
  if (steps < 2) fail("landscape: --steps must be at least 2");
  MFModel& m = scoring_model(t);
  const auto base_u = m.user.local_data(), base_i = m.item.local_data();
  const Direction d1 = make_direction(m, seed, 1), d2 = make_direction(m, seed, 2);
  std::vector<LandscapePoint> out;
  for (int ia = 0; ia < steps; ++ia) {
    const double a = -radius + 2.0 * radius * ia / (steps - 1);
    for (int ib = 0; ib < (dims == 2 ? steps : 1); ++ib) {
      const double b = dims == 2 ? -radius + 2.0 * radius * ib / (steps - 1) : 0.0;
      set_point(m.user.local_data(), base_u, &d1.user, a, &d2.user, b);
      set_point(m.item.local_data(), base_i, &d1.item, a, &d2.item, b);
      out.push_back({a, b, t.training_loss()});
    }
  }
  m.user.local_data() = base_u;
  m.item.local_data() = base_i;
  return out;
}

Sharpness sharpness(Trainer& t, int directions, double radius, uint64_t seed) {
  if (directions < 1) fail("landscape: --sharpness-dirs must be positive");
  MFModel& m = scoring_model(t);
  const auto base_u = m.user.local_data(), base_i = m.item.local_data();
  Sharpness s;
  s.base_loss = t.training_loss();
  s.max_increase = -INFINITY;
  for (int k = 0; k < directions; ++k) {
    const Direction d = make_direction(m, seed, 100 + k);
    set_point(m.user.local_data(), base_u, &d.user, radius, nullptr, 0);
    set_point(m.item.local_data(), base_i, &d.item, radius, nullptr, 0);
    const double inc = t.training_loss() - s.base_loss;
    s.mean_increase += inc / directions;
    s.max_increase = std::max(s.max_increase, inc);
  }
  m.user.local_data() = base_u;
  m.item.local_data() = base_i;
  return s;
}

}  // namespace shardrec
