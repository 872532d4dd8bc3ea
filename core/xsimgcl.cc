#include "core/xsimgcl.h"

#include <algorithm>
#include <cmath>

#include "base/rng.h"
#include "core/config.h"
#include "core/lightgcn_model.h"
#include "core/model_kind.h"
#include "core/planner.h"
#include "kernels/embedding_ops.h"

namespace shardrec {

namespace {
constexpr uint64_t kNoiseSalt = 0x5c61a0;

// The anchors of one table over all ranks and this rank's share of them.
struct Anchors {
  std::vector<int64_t> id;      // ascending, distinct
  std::vector<int32_t> owner;   // per anchor
  std::vector<int64_t> mine;    // indices into id of this rank's anchors
  std::vector<float> n1, n2;    // their rows' norms (mine order)
  std::vector<float> z1, z2;    // every anchor's normalised rows, id order (N x dim)
  std::vector<float> mx, inv;   // every anchor's softmax shift and normaliser
  bool keep = false;            // p's rows of mine are kept (mine x N) for the columns
  std::vector<float> p;
};

float norm_of(const float* v, int dim) {
  return std::max(std::sqrt(kernels::sum_squares(v, dim)), 1e-12f);
}

// All N similarities s[k] = (z_k . b) / tau of row b against the rows of z (N x dim), id order.
void sim_row(const float* z, int64_t N, const float* b, int dim, float tau, float* s) {
  kernels::dot_rows(z, N, b, dim, s);
  for (int64_t k = 0; k < N; ++k) s[k] /= tau;
}

// g (a gradient on z = v / |v|) -> the gradient on v, scaled by c.
void through_normalise(const float* gz, const float* z, float norm, float c, float* gv, int dim) {
  const float p = kernels::dot(gz, z, dim);
  const float w = c / norm;
  for (int k = 0; k < dim; ++k) gv[k] += w * (gz[k] - p * z[k]);
}
}  // namespace

void add_layer_noise(const NoiseKey& key, int layer, int table, const dist::Sharding& sharding, int rank, float eps,
                     float* rows, int64_t n, int dim, ThreadPool* pool) {
  const uint64_t base = hash64(key.seed, kNoiseSalt, static_cast<uint64_t>(key.epoch), static_cast<uint64_t>(key.step),
                               (static_cast<uint64_t>(key.pass) << 16) | (static_cast<uint64_t>(layer) << 1) |
                                   static_cast<uint64_t>(table));
  parallel(pool, static_cast<size_t>(n), [&](size_t lo, size_t hi, int) {
    std::vector<float> u(static_cast<size_t>(dim));
    for (size_t l = lo; l < hi; ++l) {
      const uint64_t h = hash64(base, static_cast<uint64_t>(sharding.global_id(rank, static_cast<int64_t>(l))));
      // Two 24-bit uniforms per mix.
      for (int j = 0; j < dim; j += 2) {
        const uint64_t x = mix64(h + static_cast<uint64_t>(j));
        u[j] = static_cast<float>(x >> 40) * 0x1.0p-24f;
        if (j + 1 < dim) u[j + 1] = static_cast<float>((x >> 8) & 0xffffffu) * 0x1.0p-24f;
      }
      const float c = eps / norm_of(u.data(), dim);
      float* r = rows + l * static_cast<size_t>(dim);
      for (int j = 0; j < dim; ++j) {
        const float s = r[j] > 0.0f ? 1.0f : (r[j] < 0.0f ? -1.0f : 0.0f);
        r[j] += s * (u[j] * c);
      }
    }
  });
}

void cross_layer_info_nce(dist::Comm& comm, ContrastSide& users, ContrastSide& items, int dim, float tau, float coef,
                          double loss_coef, dist::ExactSums* loss, int slot, ThreadPool* pool,
                          size_t keep_floats) {
  const int world = comm.size(), me = comm.rank();
  ContrastSide* sides[2] = {&users, &items};
  Anchors an[2];
  // 1. The anchors: every rank's distinct ids, merged (one gather for both tables).
  std::vector<int64_t> mine;
  for (int t = 0; t < 2; ++t) {
    std::vector<int64_t>& ids = sides[t]->ids;
    std::sort(ids.begin(), ids.end());
    ids.erase(std::unique(ids.begin(), ids.end()), ids.end());
    mine.push_back(static_cast<int64_t>(ids.size()));
    mine.insert(mine.end(), ids.begin(), ids.end());
  }
  const std::vector<std::vector<int64_t>> all = dist::allgather(comm, mine);
  for (int t = 0; t < 2; ++t) {
    std::vector<int64_t>& id = an[t].id;
    for (const auto& r : all) {
      const size_t nu = static_cast<size_t>(r[0]);
      if (t == 0) id.insert(id.end(), r.begin() + 1, r.begin() + 1 + nu);
      else id.insert(id.end(), r.begin() + 2 + nu, r.end());
    }
    std::sort(id.begin(), id.end());
    id.erase(std::unique(id.begin(), id.end()), id.end());
    sides[t]->anchors = static_cast<int64_t>(id.size());
    an[t].owner.resize(id.size());
    for (size_t k = 0; k < id.size(); ++k) {
      an[t].owner[k] = sides[t]->sharding->owner(id[k]);
      if (an[t].owner[k] == me) an[t].mine.push_back(static_cast<int64_t>(k));
    }
  }
  // 2. Every anchor's normalised rows, from its owner (one gather for both tables).
  std::vector<float> rows;
  for (int t = 0; t < 2; ++t) {
    Anchors& a = an[t];
    for (int64_t k : a.mine) {
      const int64_t l = sides[t]->sharding->local_index(a.id[k]);
      for (int v = 0; v < 2; ++v) {
        const float* src = (v == 0 ? sides[t]->v1 : sides[t]->v2) + l * dim;
        const float nrm = norm_of(src, dim);
        (v == 0 ? a.n1 : a.n2).push_back(nrm);
        for (int j = 0; j < dim; ++j) rows.push_back(src[j] / nrm);
      }
    }
  }
  const std::vector<std::vector<float>> got = dist::allgather(comm, rows);
  std::vector<size_t> at(world, 0);
  for (int t = 0; t < 2; ++t) {
    Anchors& a = an[t];
    const size_t N = a.id.size();
    a.z1.resize(N * dim);
    a.z2.resize(N * dim);
    for (size_t k = 0; k < N; ++k) {
      const float* src = got[a.owner[k]].data() + at[a.owner[k]];
      std::copy(src, src + dim, &a.z1[k * dim]);
      std::copy(src + dim, src + 2 * dim, &a.z2[k * dim]);
      at[a.owner[k]] += 2 * static_cast<size_t>(dim);
    }
  }
  // 3. This rank's anchors' rows: the softmax's shift and normaliser (a sum in id order), the
  // loss, the gradient on view 1. p_ab = e^(s_ab - max_a) * inv_a, written so that the columns'
  // pass below recomputes every p_ab to the same bits.
  std::vector<double> terms[2];
  std::vector<float> my_norm;  // per anchor of mine: max_a, inv_a
  for (int t = 0; t < 2; ++t) {
    Anchors& a = an[t];
    const int64_t N = static_cast<int64_t>(a.id.size());
    if (N == 0) continue;
    const float c = coef / (static_cast<float>(N) * tau);
    terms[t].resize(a.mine.size());
    std::vector<float> norm(2 * a.mine.size());
    // This rank's rows of p, kept for the columns' pass when they fit (else recomputed there).
    a.keep = a.mine.size() * static_cast<size_t>(N) <= keep_floats;
    if (a.keep) a.p.resize(a.mine.size() * static_cast<size_t>(N));
    parallel(pool, a.mine.size(), [&](size_t lo, size_t hi, int) {
      std::vector<float> s(static_cast<size_t>(N)), e(static_cast<size_t>(N)), gz(static_cast<size_t>(dim));
      for (size_t m = lo; m < hi; ++m) {
        const int64_t ia = a.mine[m];
        sim_row(a.z2.data(), N, &a.z1[ia * dim], dim, tau, s.data());
        const float mx = *std::max_element(s.begin(), s.end());
        kernels::exp_shifted(s.data(), mx, 1.0f, N, e.data());
        double part[4] = {0, 0, 0, 0};  // four chains in a fixed order: not one long dependency
        int64_t b = 0;
        for (; b + 4 <= N; b += 4)
          for (int q = 0; q < 4; ++q) part[q] += e[b + q];
        double sum = (part[0] + part[1]) + (part[2] + part[3]);
        for (; b < N; ++b) sum += e[b];
        const float inv = static_cast<float>(1.0 / sum);
        norm[2 * m] = mx;
        norm[2 * m + 1] = inv;
        terms[t][m] = static_cast<double>(mx) + std::log(sum) - static_cast<double>(s[ia]);
        for (int64_t j = 0; j < N; ++j) e[j] *= inv;
        if (a.keep) std::copy(e.begin(), e.end(), a.p.begin() + static_cast<std::ptrdiff_t>(m * N));
        e[ia] -= 1.0f;
        kernels::weighted_rows(a.z2.data(), e.data(), N, dim, gz.data());
        const int64_t local = sides[t]->sharding->local_index(a.id[ia]);
        through_normalise(gz.data(), &a.z1[ia * dim], a.n1[m], c, sides[t]->g1 + local * dim, dim);
      }
    });
    my_norm.insert(my_norm.end(), norm.begin(), norm.end());
  }
  // 4. Every anchor's shift and normaliser, then this rank's anchors' columns: the gradient on view 2.
  const std::vector<std::vector<float>> norms = dist::allgather(comm, my_norm);
  std::fill(at.begin(), at.end(), 0);
  for (int t = 0; t < 2; ++t) {
    Anchors& a = an[t];
    a.mx.resize(a.id.size());
    a.inv.resize(a.id.size());
    for (size_t k = 0; k < a.id.size(); ++k) {
      a.mx[k] = norms[a.owner[k]][at[a.owner[k]]++];
      a.inv[k] = norms[a.owner[k]][at[a.owner[k]]++];
    }
  }
  for (int t = 0; t < 2; ++t) {
    Anchors& a = an[t];
    const int64_t N = static_cast<int64_t>(a.id.size());
    if (N == 0) continue;
    const float c = coef / (static_cast<float>(N) * tau);
    // The anchors of other ranks, as runs of consecutive indices (their p is recomputed), and
    // where each of this rank's anchors sits among its kept rows.
    std::vector<std::pair<int64_t, int64_t>> runs;
    std::vector<int64_t> row_of(static_cast<size_t>(N), -1);
    for (size_t m = 0; m < a.mine.size(); ++m) row_of[a.mine[m]] = static_cast<int64_t>(m);
    for (int64_t k = 0; k < N;) {
      if (a.keep && row_of[k] >= 0) {
        ++k;
        continue;
      }
      int64_t e = k;
      while (e < N && !(a.keep && row_of[e] >= 0)) ++e;
      runs.emplace_back(k, e);
      k = e;
    }
    parallel(pool, a.mine.size(), [&](size_t lo, size_t hi, int) {
      std::vector<float> s(static_cast<size_t>(N)), p(static_cast<size_t>(N)), gz(static_cast<size_t>(dim));
      for (size_t m = lo; m < hi; ++m) {
        const int64_t ib = a.mine[m];
        if (a.keep)
          for (size_t r = 0; r < a.mine.size(); ++r) p[a.mine[r]] = a.p[r * N + ib];
        for (const auto& [r0, r1] : runs) {
          sim_row(&a.z1[r0 * dim], r1 - r0, &a.z2[ib * dim], dim, tau, &s[r0]);
          kernels::exp_shifted_each(&s[r0], &a.mx[r0], &a.inv[r0], r1 - r0, &p[r0]);
        }
        p[ib] -= 1.0f;
        kernels::weighted_rows(a.z1.data(), p.data(), N, dim, gz.data());
        const int64_t local = sides[t]->sharding->local_index(a.id[ib]);
        through_normalise(gz.data(), &a.z2[ib * dim], a.n2[m], c, sides[t]->g2 + local * dim, dim);
      }
    });
    if (loss)
      for (double v : terms[t]) loss->add(static_cast<size_t>(slot), loss_coef * v / static_cast<double>(N));
  }
}

// LightGCN's entry (losses, strategies, its checks, its shape) with XSimGCL's variant on top.
ModelKind xsimgcl_kind() {
  ModelKind k = lightgcn_kind();
  k.name = "xsimgcl";
  k.summary = "XSimGCL: LightGCN's scoring with noisy layers in training and a cross-layer InfoNCE term";
  k.contrastive = true;
  k.validate = [gcn = k.validate](const TrainConfig& c, const Need& need) {
    gcn(c, need);
    need(c.graph_layers >= 1, "graph-layers", "must be in 1..16 for xsimgcl");
    need(c.cl_layer >= 1 && c.cl_layer <= c.graph_layers, "cl-layer", "must be in 1..graph-layers");
    need(c.cl_tau > 0, "cl-tau", "must be positive");
    need(c.cl_lambda >= 0, "cl-lambda", "must not be negative");
    need(c.cl_eps >= 0, "cl-eps", "must not be negative");
  };
  k.make = [](const TrainConfig& c, const io::DataShard& data, int rank) -> std::unique_ptr<Model> {
    GraphVariant v;
    v.from_layer1 = true;
    v.eps = c.cl_eps;
    v.cl_layer = c.cl_layer;
    v.cl_lambda = c.cl_lambda;
    v.cl_tau = c.cl_tau;
    return std::make_unique<LightGcnModel>(c, data, rank, v);
  };
  k.shape = [gcn = k.shape](const PlanInput& in) {
    ModelShape sh = gcn(in);
    sh.contrast = true;
    return sh;
  };
  return k;
}

}  // namespace shardrec
