// Parameters files (params.h5 of a run): writing them, and loading a model shaped like one.
#pragma once
#include <memory>
#include <string>
#include <vector>

#include "core/config.h"
#include "core/mf_model.h"
#include "core/model.h"
#include "io/dataset.h"
#include "io/export.h"

namespace shardrec::cli {

// params.h5: the model's tables, its dense parameters and the attributes that name the model.
void save_params(const std::string& path, const TrainConfig& c, Model& m, dist::Comm& comm);
// Model type, features and width from a parameters file (written by save_params).
void read_model_config(const std::string& params, TrainConfig& c);
// Whether the file holds the parameters of a labeled model (gmf, neumf).
bool is_pointwise_params(const std::string& params);

// A model shaped like the parameters file, sharded over this job's ranks.
struct LoadedModel {
  TrainConfig cfg;
  io::DataShard data;
  std::unique_ptr<MFModel> model;
};
LoadedModel load_model(const std::string& data_path, const std::string& params, const std::string& item_sharding,
                       dist::Comm& comm);

}  // namespace shardrec::cli
