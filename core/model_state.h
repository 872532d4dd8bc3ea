// What a model holds that training changes, by name: its sharded tables (rows with their
// optimizer state) and its replicated dense parameters with theirs. Checkpoints, keeping the best
// parameters, and saving go through this instead of knowing each model's members.
#pragma once
#include <map>
#include <string>
#include <vector>

#include "dist/sharded_embedding.h"
#include "kernels/row_optimizer.h"

namespace shardrec {

struct DenseBlock {
  std::string name;       // "/dense/<name>" in checkpoints
  std::string step_name;  // its optimizer's step counter: "opt_step.<step_name>"
  int64_t rows = 0, cols = 0;  // the values' shape (cols 0: a vector of rows)
  std::vector<float>* values = nullptr;
  RowOptimizer* opt = nullptr;  // state rows x dim: its own shape
};

struct ModelState {
  std::vector<dist::ShardedEmbedding*> tables;  // trainable tables (frozen feature rows are data)
  std::vector<DenseBlock> dense;
};

// A copy of this rank's parameters (tables' local rows, dense values) by name: the kept best.
struct ParamCopy {
  std::map<std::string, std::vector<float>> values;
  void take(const ModelState& m) {
    for (auto* t : m.tables) values[t->name()] = t->local_data();
    for (const auto& d : m.dense) values[d.name] = *d.values;
  }
  void restore(const ModelState& m) const {
    for (auto* t : m.tables) t->local_data() = values.at(t->name());
    for (const auto& d : m.dense) *d.values = values.at(d.name);
  }
  // Buffers of the right sizes, to be filled (a checkpoint's kept best).
  void size_like(const ModelState& m) {
    for (auto* t : m.tables) values[t->name()].resize(t->local_data().size());
    for (const auto& d : m.dense) values[d.name].resize(d.values->size());
  }
};

}  // namespace shardrec
