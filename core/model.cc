#include "core/model.h"

#include <cstring>

#include <cmath>

#include "base/error.h"
#include "core/config.h"
#include "core/model_kind.h"

namespace shardrec {

void Model::reset_optimizers() {
  user.reset_optimizer();
  item.reset_optimizer();
}

void Model::apply_rows(dist::Comm& comm, const dist::Routing& ur, std::span<const uint64_t> ukey, const float* gU,
                       const dist::Routing& ir, std::span<const uint64_t> ikey, const float* gI) {
  user.apply(comm, ur, ukey, gU);
  item.apply(comm, ir, ikey, gI);
}

void Model::set_threads(ThreadPool* pool) {
  user.set_pool(pool);
  item.set_pool(pool);
  if (dist::ShardedEmbedding* f = item_features()) f->set_pool(pool);
}

RetrievalVectors Model::retrieval_vectors() const {
  std::string why;
  if (!dot_form(&why)) fail("the model has no dot-product form: " + why);
  const dist::ShardedEmbedding &u = rows_user(), &i = rows_item();
  SHARDREC_CHECK(u.dim() == i.dim(), "retrieval_vectors: user and item rows of different widths");
  RetrievalVectors v;
  v.dim = u.dim();
  v.user = u.local_data();
  v.item = i.local_data();
  return v;
}

void Model::score_block(const float* const*, size_t, const float*, size_t, float*) const {
  fail("score_block: this model ranks by its retrieval vectors (it has a dot-product form)");
}

void model_top_k(const Model& m, const io::DataShard& data, const std::vector<int64_t>& users, int K,
                 bool mask_valid, const EvalConfig& cfg, dist::Comm& comm, const TopKSink& sink) {
  RankInput in;
  in.users = &m.rows_user().sharding();
  in.items = &m.rows_item().sharding();
  RetrievalVectors v;
  if (m.dot_form()) {
    v = m.retrieval_vectors();
    in.user_rows = v.user.data();
    in.item_rows = v.item.data();
    in.user_dim = in.item_dim = v.dim;
    in.offset = v.offset;
  } else {
    in.user_rows = m.rows_user().local_data().data();
    in.user_dim = m.rows_user().dim();
    in.item_rows = m.rows_item().local_data().data();
    in.item_dim = m.rows_item().dim();
    in.score = [&m](const float* const* U, size_t n, const float* I, size_t L, float* out) {
      m.score_block(U, n, I, L, out);
    };
  }
  in.pool = m.rows_item().pool();
  top_k(in, data, users, K, mask_valid, cfg, comm, sink);
}

double label_threshold(const TrainConfig& cfg, const io::DatasetInfo& info) {
  return std::isfinite(info.label_threshold) ? info.label_threshold : cfg.label_threshold;
}

std::unique_ptr<Model> make_model(const TrainConfig& cfg, const io::DataShard& data, int rank) {
  return model_kind(cfg.model).make(cfg, data, rank);
}

void reduce_row_grads(dist::Comm& comm, dist::ShardedEmbedding& t, const dist::Routing& r,
                      std::span<const uint64_t> keys, const float* g, std::vector<float>& out,
                      std::vector<uint32_t>& cnt) {
  const int d = t.dim();
  out.assign(t.local_data().size(), 0.0f);
  cnt.assign(static_cast<size_t>(t.local_rows()), 0);
  t.reduce_counted(comm, r, keys, g, [&](int64_t row, const float* sum, uint32_t c) {
    std::memcpy(&out[static_cast<size_t>(row) * d], sum, d * sizeof(float));
    cnt[row] = c;
  });
}

void update_rows(dist::ShardedEmbedding& t, std::vector<float>& grad, const std::vector<uint32_t>& cnt, float reg,
                 ThreadPool* pool) {
  const int d = t.dim();
  RowOptimizer& opt = t.optimizer();
  opt.begin_step();
  const bool dense = opt.config().dense();
  parallel(pool, static_cast<size_t>(t.local_rows()), [&](size_t lo, size_t hi, int) {
    for (size_t l = lo; l < hi; ++l) {
      float* g = &grad[l * d];
      float* w = t.local_row(static_cast<int64_t>(l));
      if (cnt[l] > 0 && reg != 0.0f) {
        const float c = reg * static_cast<float>(cnt[l]);
        for (int k = 0; k < d; ++k) g[k] += c * w[k];
      }
      bool touched = cnt[l] > 0;
      for (int k = 0; k < d && !touched; ++k) touched = g[k] != 0.0f;
      if (touched || dense) opt.update(static_cast<int64_t>(l), w, touched ? g : nullptr);
    }
  });
}

}  // namespace shardrec
