#include "core/config.h"

#include <algorithm>
#include <cmath>
#include <sstream>

#include "base/error.h"
#include "core/model_kind.h"

namespace shardrec {

namespace {
const char* init_name(dist::InitSpec::Kind k) {
  switch (k) {
    case dist::InitSpec::Kind::kNormal: return "normal";
    case dist::InitSpec::Kind::kXavierNormal: return "xavier_normal";
    case dist::InitSpec::Kind::kUniform: return "uniform";
    case dist::InitSpec::Kind::kNone: return "none";
  }
  return "?";
}
}  // namespace

std::string TrainConfig::to_ini() const {
  std::ostringstream o;
  o.precision(9);
  std::string ks;
  for (size_t i = 0; i < eval.ks.size(); ++i) ks.append(i ? "," : "").append(std::to_string(eval.ks[i]));
  o << "data = " << data << "\n"
    << "model = " << model << "\n"
    << "features = " << features << "\n"
    << "dim = " << dim << "\n"
    << "loss = " << loss << "\n"
    << "negatives = " << negatives << "\n"
    << "batch = " << batch << "\n"
    << "epochs = " << epochs << "\n"
    << "seed = " << seed << "\n"
    << "optimizer = " << OptimizerConfig::kind_name(opt.kind) << "\n"
    << "lr = " << opt.lr << "\n"
    << "beta1 = " << opt.beta1 << "\n"
    << "beta2 = " << opt.beta2 << "\n"
    << "eps = " << opt.eps << "\n"
    << "weight-decay = " << opt.weight_decay << "\n"
    << "l2 = " << l2 << "\n"
    << "init = " << init_name(init.kind) << "\n"
    << "init-scale = " << init.scale << "\n"
    << "item-sharding = " << item_sharding << "\n"
    << "eval-every = " << eval_every << "\n"
    << "valid-metric = " << valid_metric << "\n"
    << "patience = " << patience << "\n"
    << "keep-best = " << (keep_best ? "true" : "false") << "\n"
    << "ks = " << ks << "\n"
    << "mask-valid = " << (eval.mask_valid_in_test ? "true" : "false") << "\n"
    << "pointwise = " << (eval.pointwise ? "true" : "false") << "\n"
    << "eval-seed = " << eval.seed << "\n"
    << "eval-device = " << eval.device << "\n"
    << "strategy = " << strategy << "\n"
    << "mg-alpha1 = " << mg_alpha1 << "\n"
    << "mg-alpha2 = " << mg_alpha2 << "\n"
    << "mg-beta = " << mg_beta << "\n"
    << "device = " << device << "\n"
    << "gpu-comm = " << gpu_comm << "\n";
  if (graph_model()) o << "graph-layers = " << graph_layers << "\n";
  if (contrastive_model())
    o << "cl-lambda = " << cl_lambda << "\n"
      << "cl-eps = " << cl_eps << "\n"
      << "cl-layer = " << cl_layer << "\n"
      << "cl-tau = " << cl_tau << "\n";
  if (item_graph_model())
    o << "freedom-prune = " << freedom_prune << "\n"
      << "freedom-knn = " << freedom_knn << "\n"
      << "freedom-item-layers = " << freedom_item_layers << "\n"
      << "freedom-feature-weight = " << freedom_feature_weight << "\n"
      << "freedom-weights = " << freedom_weights << "\n";
  if (pointwise_model())
    o << "mlp-layers = " << mlp_layers << "\n"
      << "label-threshold = " << label_threshold << "\n"
      << "il-unlabeled = " << il_unlabeled << "\n"
      << "ig-sample-lr = " << ig_sample_lr << "\n"
      << "ig-train-ratio = " << ig_train_ratio << "\n"
      << "il-reference = " << (il_reference ? "true" : "false") << "\n"
      << "gauc-impressions = " << (eval.gauc_impressions ? "true" : "false") << "\n";
  return o.str();
}

bool TrainConfig::pointwise_model() const { return model_kind(model).pointwise; }
bool TrainConfig::graph_model() const { return model_kind(model).graph; }
bool TrainConfig::contrastive_model() const { return model_kind(model).contrastive; }
bool TrainConfig::item_graph_model() const { return model_kind(model).item_graph; }

void TrainConfig::validate() const {
  auto need = [](bool ok, const std::string& field, const std::string& what) {
    if (!ok) fail("option --" + field + ": " + what);
  };
  need(!data.empty(), "data", "a dataset file is required");
  const ModelKind& kind = model_kind(model);
  need(dim > 0 && dim <= 4096, "dim", "must be in 1..4096");
  auto takes = [&](const std::vector<std::string>& list, const std::string& v, const char* field) {
    std::string all;
    for (const auto& x : list) all += (all.empty() ? "" : ", ") + x;
    need(std::find(list.begin(), list.end(), v) != list.end(), field, "'" + v + "': " + model + " takes " + all);
  };
  takes(kind.losses, loss, "loss");
  takes(kind.strategies, strategy, "strategy");
  kind.validate(*this, need);
  need(negatives >= 1 && negatives <= 1000, "negatives", "must be in 1..1000");
  need(batch >= 1, "batch", "must be positive");
  need(epochs >= 0, "epochs", "must not be negative");
  need(opt.lr > 0, "lr", "must be positive");
  need(opt.beta1 >= 0 && opt.beta1 < 1, "beta1", "must be in [0, 1)");
  need(opt.beta2 >= 0 && opt.beta2 < 1, "beta2", "must be in [0, 1)");
  need(opt.eps > 0, "eps", "must be positive");
  need(l2 >= 0, "l2", "must not be negative");
  need(eval_every >= 0, "eval-every", "must not be negative");
  need(patience >= 0, "patience", "must not be negative");
  need(!eval.ks.empty(), "ks", "at least one cutoff");
  need(mg_beta >= 1, "mg-beta", "must be a positive integer");
  need(device == "cpu" || device == "cuda" || device == "auto", "device", "'" + device + "': expected cpu, cuda or auto");
  need(gpu_comm == "auto" || gpu_comm == "nccl" || gpu_comm == "host", "gpu-comm",
       "'" + gpu_comm + "': expected auto, nccl or host");
  for (int k : eval.ks) need(k >= 1, "ks", "cutoffs must be >= 1");
  // The early-stopping metric must be one that validation computes.
  std::vector<std::string> known;
  for (const char* m : {"recall", "ndcg", "precision", "hit", "mrr", "map"})
    for (int k : eval.ks) known.push_back(std::string(m) + "@" + std::to_string(k));
  const bool labeled = kind.pointwise;
  if (eval.pointwise || labeled) known.insert(known.end(), {"auc", "gauc", "logloss"});
  if (labeled) known.push_back("mrr");
  if (eval_every > 0 && std::find(known.begin(), known.end(), valid_metric) == known.end()) {
    std::string list;
    for (auto& k : known) list += (list.empty() ? "" : ", ") + k;
    fail("option --valid-metric: '" + valid_metric + "' is not computed with these --ks (" + list + ")");
  }
}

}  // namespace shardrec
