// What every part of the system asks of a model by its name, in one entry per model: its
// factory (core/model.h), whether it trains on labels, what it needs from the data, which losses and strategies it takes, its
// own configuration checks, and its shape for `shardrec plan`. Each model defines its entry in its
// own file; core/model_kind.cc lists them (one line per model). Nothing outside a model's files
// branches on its name.
#pragma once
#include <functional>
#include <memory>
#include <string>
#include <vector>

namespace shardrec {

struct TrainConfig;
struct PlanInput;
class Model;
namespace io {
struct DataShard;
}

// Row widths (floats) of the user and item tables and the frozen item features, item slots a
// sample scores, and replicated dense parameters.
struct ModelShape {
  double user_w = 0, item_w = 0, feat_w = 0, per = 1, dense = 0;
  int graph_layers = 0;  // graph models: products with the adjacency forward (and as many backward)
  bool contrast = false; // xsimgcl: an InfoNCE over the batch's distinct users and items
};

// need(ok, option, message): fails with "option --<option>: <message>" when !ok.
using Need = std::function<void(bool, const std::string&, const std::string&)>;

struct ModelKind {
  std::string name;
  std::string summary;            // one line for --help and docs
  bool pointwise = false;         // labeled rows and labeled metrics, else ranking with negatives
  bool item_features = false;     // needs the dataset's item modalities (--features)
  bool graph = false;             // propagates over the user-item graph (--graph-layers)
  bool contrastive = false;       // adds a contrastive term over noisy propagations (--cl-*)
  bool item_graph = false;        // kNN item-item graphs of the features, a pruned user-item graph (--freedom-*)
  std::vector<std::string> losses;      // the first is the default
  std::vector<std::string> strategies;  // the first is the default
  std::function<void(const TrainConfig&, const Need&)> validate;  // checks beyond the shared ones
  std::function<ModelShape(const PlanInput&)> shape;
  // The model for this rank's shard of the data (core/model.h).
  std::function<std::unique_ptr<Model>(const TrainConfig&, const io::DataShard&, int rank)> make;
};

// The registered models, in the order help texts list them.
const std::vector<ModelKind>& model_kinds();
// The entry of `name`; an unknown name fails naming `option` and the registered models.
const ModelKind& model_kind(const std::string& name, const std::string& option = "model");
// "mf, vbpr, gmf, neumf": for messages.
std::string model_names();

// Every model's entry, each defined in the model's own file.
ModelKind mf_kind();
ModelKind vbpr_kind();
ModelKind gmf_kind();
ModelKind neumf_kind();
ModelKind lightgcn_kind();
ModelKind xsimgcl_kind();
ModelKind freedom_kind();

}  // namespace shardrec
