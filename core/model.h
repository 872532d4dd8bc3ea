// What the trainer asks of a model (core/trainer.h drives every model through this interface).
// A model owns a user and an item table (sharded rows with their optimizer state), optionally
// frozen item feature rows sharded like the items, and replicated dense parameters. One step's
// samples come to it as gathered rows: n users and n * per item slots (slot 0 the sample's own
// item, then per - 1 draws); the model computes its loss terms and the gradients of the scaled
// loss, and steps its dense parameters from their exactly summed gradient. It never routes,
// gathers or applies rows itself: the step engine does (core/step_engine.h), on the CPU or a GPU.
#pragma once
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <utility>
#include <vector>

#include "core/evaluator.h"
#include "core/model_state.h"
#include "dist/exact_sum.h"
#include "dist/sharded_embedding.h"
#include "io/dataset.h"
#include "io/export.h"

namespace shardrec {

struct TrainConfig;
class StepEngine;
class ThreadPool;

// One step's samples on this rank (built by the step engine from the epoch order).
struct StepBatch {
  int epoch = 0;
  int64_t step = 0;
  size_t n = 0;           // this rank's samples
  int per = 1;            // item slots per sample
  int64_t global_n = 0;   // the step's samples over all ranks
  bool meta = false;      // an Inverse Gradient meta-step: own-item and draw terms are separate means
  const uint8_t* label = nullptr;  // n labels (labeled models)
  const int64_t* row = nullptr;    // n dataset rows, for messages
  int rank = 0;
};

// Which terms of the samples a pass computes: all, only the own items', or only the draws'.
enum class Terms { kAll, kOwn, kDraws };

struct PassArgs {
  const float* U = nullptr;  // n user rows
  const float* I = nullptr;  // n * per item rows
  const float* F = nullptr;  // n * per frozen feature rows (models with item features)
  const float* w = nullptr;  // dense parameters to use (a tentative copy); null: the model's own
  float scale = 1.0f;        // multiplies the gradients only
  Terms terms = Terms::kAll;
  dist::ExactSums* loss = nullptr;  // unscaled losses: own-item terms to slot_own, draws to slot_draw
  int slot_own = 0, slot_draw = 1;
  // Gradients, overwritten (null: losses only): n rows of U's width, n * per of I's; the dense
  // gradient goes to the model's accumulator `grad` (0: the main step's, 1: a second one).
  float* gU = nullptr;
  float* gI = nullptr;
  int grad = 0;
  ThreadPool* pool = nullptr;  // threads that may split the samples (a model may ignore them)
};

// What a retrieval system ranks with (shardrec recommend, similar-items, export --format
// tsv|npy|faiss): vectors of this rank's users and items, in the local order of the user and item
// tables, whose dot product plus a constant of the model is the model's score.
struct RetrievalVectors {
  int dim = 0;
  std::vector<float> user, item;  // local rows x dim
  float offset = 0;               // score = user . item + offset (it moves every score alike)
  std::string note;               // what they are, for messages ("": the scoring rows themselves)
};

// How a sample's draw slots are filled: uniform over the items not in the user's training items,
// from one of two counter-RNG streams (core/sampler.h).
enum class DrawKind { kNegative, kUnlabeled };

class Model {
 public:
  virtual ~Model() = default;
  Model(const Model&) = delete;
  Model& operator=(const Model&) = delete;

  // The user table follows the data partition, so a sample's user row is local to its rank.
  dist::ShardedEmbedding user, item;

  // Trainable state by name: checkpoints, keep-best, the memory report.
  virtual ModelState state() = 0;
  // Frozen rows gathered through the item routing once per step (null: none).
  virtual dist::ShardedEmbedding* item_features() { return nullptr; }

  // Data and sampling.
  virtual bool labeled() const { return false; }  // trains on labels (rating > threshold)
  virtual DrawKind draw_kind() const = 0;
  // Draw slots per sample in a phase's steps (meta: Inverse Gradient's meta phase).
  virtual int draws(const TrainConfig& cfg, bool meta) const = 0;
  // Loss terms per sample that the epoch's mean loss divides by.
  virtual double terms_per_sample(const TrainConfig& cfg) const = 0;
  // Salt of the data order's key (hash64(seed, salt + phase, epoch)).
  virtual uint64_t order_salt() const = 0;

  // The step's maths over gathered rows.
  virtual void pass(const StepBatch& b, const PassArgs& a) = 0;
  // Where a step's rows come from and where their gradients go. Most models score with their
  // table rows: the defaults gather those and apply the gradients to the tables. A graph model
  // scores with rows that are a function of every table row (propagation): refresh_rows()
  // recomputes them before each gather of step b (collective), rows_user()/rows_item() hold them, and
  // apply_rows() takes their gradients back through the propagation to the tables (collective;
  // it advances the tables' optimizer step like ShardedEmbedding::apply).
  virtual void refresh_rows(dist::Comm& /*comm*/, const StepBatch& /*b*/) {}
  virtual const dist::ShardedEmbedding& rows_user() const { return user; }
  virtual const dist::ShardedEmbedding& rows_item() const { return item; }
  virtual void apply_rows(dist::Comm& comm, const dist::Routing& ur, std::span<const uint64_t> ukey, const float* gU,
                          const dist::Routing& ir, std::span<const uint64_t> ikey, const float* gI);
  // Threads of the step engine for the tables' work (null: none).
  virtual void set_threads(ThreadPool* pool);
  // One optimizer step on the dense parameters from accumulator 0 (summed over ranks; collective).
  virtual void apply_dense(dist::Comm& comm) = 0;
  // Inverse Gradient's moves on the dense parameters: one flat vector (null: the model has none),
  // an accumulator summed over ranks into out, and fresh optimizer state for tables and dense.
  virtual std::vector<float>* flat_dense() { return nullptr; }
  virtual void reduce_dense_grad(int /*grad*/, dist::Comm& /*comm*/, float* /*out*/) {}
  virtual void reset_optimizers();

  // Validation and final metrics of split 1 (valid) or 2 (test), identical on every rank.
  virtual EvalResult evaluate(const io::DataShard& data, int split, const TrainConfig& cfg, dist::Comm& comm) = 0;
  // The same for a model whose params_tables() were just loaded from params.h5 (eval): the rows
  // as loaded, not recomputed from tables the file does not hold (a graph model's layer 0).
  virtual EvalResult evaluate_params(const io::DataShard& data, int split, const TrainConfig& cfg, dist::Comm& comm) {
    return evaluate(data, split, cfg, comm);
  }
  // The modalities of item_features() (name, width), in column order (empty: none).
  virtual std::vector<std::pair<std::string, int>> feature_modalities() const { return {}; }
  // What params.h5 holds besides the tables: dense parameters and root attributes.
  virtual std::vector<io::DenseParam> exported_dense() { return {}; }
  // The tables params.h5 holds (kinds "user", "item"): the scoring rows, which for a graph model
  // are the propagated ones (collective).
  virtual std::vector<const dist::ShardedEmbedding*> exported_tables(dist::Comm& /*comm*/) { return {&user, &item}; }
  virtual std::vector<std::pair<std::string, std::string>> export_attrs(const TrainConfig& cfg) const = 0;
  // Where params.h5's tables load back: the tables exported_tables writes, without recomputing them
  // (a graph model's propagated rows, not its layer-0 tables).
  virtual std::vector<dist::ShardedEmbedding*> params_tables() { return {&user, &item}; }

  // Retrieval, from the rows params_tables() holds (as loaded, or after exported_tables).
  // Whether the score is a dot product of a user vector and an item vector (plus a constant); when
  // not, *why (if given) says why, for messages, and the model ranks with score_block instead.
  virtual bool dot_form(std::string* /*why*/ = nullptr) const { return true; }
  // This rank's retrieval vectors. The default: the scoring rows (rows_user(), rows_item()).
  // Fails for a model without a dot form.
  virtual RetrievalVectors retrieval_vectors() const;
  // The model's own score (its forward pass) of nu user rows U[u] (the user table's width) against
  // n consecutive item rows I (the item table's width): out[u * n + l]. Models without a dot form
  // must give it (full ranking by exact scoring); the default fails.
  virtual void score_block(const float* const* U, size_t nu, const float* I, size_t n, float* out) const;

  // The GPU step engine of this model (CUDA builds; others fail with the reason). labels: the
  // training rows' labels for labeled models (the trainer's, borrowed), else null.
  virtual std::unique_ptr<StepEngine> cuda_engine(const TrainConfig& cfg, const io::DataShard& data,
                                                  dist::Comm& comm, const uint8_t* labels) = 0;

 protected:
  Model(dist::ShardedEmbedding u, dist::ShardedEmbedding i) : user(std::move(u)), item(std::move(i)) {}
};

// The graph models' row step (LightGCN, XSimGCL, FREEDOM), whose gradients reach the table rows
// through a backward propagation rather than straight from the samples:
// reduce_row_grads: dL/dE on the rows this rank owns, summed in key order (zero on the rows no
// sample scored), with each row's number of contributions;
// update_rows: L2 (reg) on the samples' layer-0 rows, once per occurrence, then the optimizer on
// every row that has a gradient (dense optimizers: every row), as ShardedEmbedding::apply does.
void reduce_row_grads(dist::Comm& comm, dist::ShardedEmbedding& t, const dist::Routing& r,
                      std::span<const uint64_t> keys, const float* g, std::vector<float>& out,
                      std::vector<uint32_t>& cnt);
void update_rows(dist::ShardedEmbedding& t, std::vector<float>& grad, const std::vector<uint32_t>& cnt, float reg,
                 ThreadPool* pool);

// Labeled models: label = rating > this threshold (the dataset's own, else the configured one).
double label_threshold(const TrainConfig& cfg, const io::DatasetInfo& info);

// The top K items of `users` (this rank's) for any model, as core/evaluator.h's top_k: by the dot
// products of its retrieval vectors (plus its constant) when it has a dot form, else by
// score_block over every item (exact scoring, brute force). Collective.
void model_top_k(const Model& m, const io::DataShard& data, const std::vector<int64_t>& users, int K,
                 bool mask_valid, const EvalConfig& cfg, dist::Comm& comm, const TopKSink& sink);

// The model `cfg.model` for this rank's shard (core/model_kind.h's registry).
std::unique_ptr<Model> make_model(const TrainConfig& cfg, const io::DataShard& data, int rank);

}  // namespace shardrec
