// Parameters files (params.h5 of a run): writing them, and loading a model shaped like one.
#pragma once
#include <memory>
#include <string>
#include <vector>

#include "base/thread_pool.h"
#include "core/config.h"
#include "core/model.h"
#include "io/dataset.h"
#include "io/export.h"

namespace shardrec::cli {

// params.h5: the model's tables, its dense parameters and the attributes that name the model.
void save_params(const std::string& path, const TrainConfig& c, Model& m, dist::Comm& comm);
// The model's configuration from a parameters file (written by save_params): its name (files
// without one hold MF parameters), features, dim (the "dim" attribute, else the item rows' width),
// mlp_layers and graph_layers where the file has them.
void read_model_config(const std::string& params, TrainConfig& c);

// Any model of a parameters file, built through the registry (core/model_kind.h) from the file's
// attributes and the dataset (its shapes; vbpr's features, lightgcn's graph), sharded over this
// job's ranks (items by mod), with the file's tables in Model::params_tables() and its dense
// parameters. Never trained: the tables keep no optimizer state. `threads` (per rank) split the
// scoring and selection of eval, recommend and similar-items, and a graph model's propagation;
// the results are the same for any number. Collective.
struct LoadedParams {
  TrainConfig cfg;
  io::DataShard data;
  std::unique_ptr<ThreadPool> pool;  // before the model: it outlives the model's pointers to it
  std::unique_ptr<Model> model;
};
LoadedParams load_params(const std::string& data_path, const std::string& params, dist::Comm& comm,
                         int threads = 1);

}  // namespace shardrec::cli
