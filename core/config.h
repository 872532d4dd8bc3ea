// Configuration of training and evaluation. The command line (launch/options.cc) fills these
// from flags or a config file; to_ini() writes the resolved values back into the run directory.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "kernels/row_optimizer.h"
#include "dist/sharded_embedding.h"

namespace shardrec {

class Progress;  // base/log.h

struct EvalConfig {
  std::vector<int> ks = {10, 20};
  bool mask_valid_in_test = true;  // RecBole's protocol: rank test items among non-train, non-valid
  bool pointwise = true;           // AUC, GAUC, log loss on positives + one sampled negative each
  int64_t score_budget = 1 << 24;  // floats of scores held at once per rank (users x local items)
  uint64_t seed = 2024;            // seed of the pointwise negatives
  std::string device = "cpu";      // where full ranking scores the item shards (cpu or cuda)
  bool gauc_impressions = false;   // labeled protocol (gmf/neumf): GAUC weighted by rows per user
  // Not an option: the command's progress line for full ranking's blocks (top_k); null: none.
  Progress* progress = nullptr;
};

struct TrainConfig {
  std::string data;     // dataset file (shardrec prep / synth)
  std::string run_dir;  // outputs; empty = write nothing
  std::string model = "mf";  // a registered model (core/model_kind.h)
  std::string features;      // vbpr: dataset modalities to use, comma separated
  int dim = 64;
  std::string loss = "bpr";  // bpr or bce
  int negatives = 1;
  int64_t batch = 2048;      // global batch, the same for any number of ranks
  int epochs = 100;
  uint64_t seed = 42;
  OptimizerConfig opt;
  float l2 = 0.0f;           // (l2/2)*||e||^2 per embedding occurrence, averaged like the loss
  dist::InitSpec init;
  std::string item_sharding = "mod";  // mod, range or table:R (users follow the data partition)
  // Validation and early stopping.
  int eval_every = 1;        // epochs between validations; 0 = never
  std::string valid_metric = "ndcg@10";
  int patience = 10;         // validations without improvement before stopping; 0 = off
  bool keep_best = true;     // restore the best validated parameters at the end
  EvalConfig eval;
  // Training strategy (core/strategy.h): plain, or mirror (Mirror Gradient).
  std::string strategy = "plain";
  float mg_alpha1 = 1.0f, mg_alpha2 = 0.2f;
  int mg_beta = 3;
  int threads = 1;  // threads inside a rank (the results do not depend on it); 0: the cores it may run on
  // Backend (core/gpu_backend.h): cpu (the reference), cuda, or auto (cuda when a GPU is visible).
  std::string device = "cpu";
  // GPU exchange: auto (NCCL when every rank has its own GPU), nccl, or host (staged through MPI).
  std::string gpu_comm = "auto";
  // Inverse Learning (models gmf / neumf; core/trainer.h, core/inverse_gradient.h).
  // Their losses are bce and idl, their strategies plain and ig; defaults are the reference's.
  int graph_layers = 3;  // lightgcn, xsimgcl: propagation layers K
  // xsimgcl: the contrast's weight lambda, the noise magnitude eps, the layer l* whose rows are
  // contrasted with the final rows, and the InfoNCE temperature tau (SELFRec's defaults).
  float cl_lambda = 0.2f, cl_eps = 0.2f, cl_tau = 0.15f;
  int cl_layer = 1;
  // freedom (MMRec's defaults): the fraction of the user-item edges pruned each epoch (MMRec's
  // dropout), the item-item kNN graphs' k, their propagation layers (n_mm_layers), the weight of
  // the modalities' BPR terms (reg_weight), and the modalities' mixing weights ("": image 0.1 /
  // text 0.9 for a pair named so, else equal; or one weight per --features entry).
  double freedom_prune = 0.8;
  int freedom_knn = 10;
  int freedom_item_layers = 1;
  float freedom_feature_weight = 1e-4f;
  std::string freedom_weights;
  int mlp_layers = 3;            // neumf: MLP depth (MLP embeddings dim * 2^(layers-1) wide)
  double label_threshold = 2.0;  // label = rating > this, for datasets without their own
  int il_unlabeled = 1;          // unlabeled rows drawn per labeled training row each epoch
  float ig_sample_lr = 0.001f;   // ig: rate of the candidate steps
  float ig_train_ratio = 0.9f;   // ig: share of labeled rows in training-train
  bool il_reference = false;     // ig: reproduce the reference code's optimizer quirks
  // The model trains on labeled rows (core/model_kind.h).
  bool pointwise_model() const;
  // The model propagates over the user-item graph (graph-layers applies).
  bool graph_model() const;
  // The model adds a contrastive term over noisy propagations (the cl-* options apply).
  bool contrastive_model() const;
  // The model builds item-item graphs from the features and prunes its graph (the freedom-* options).
  bool item_graph_model() const;

  std::string to_ini() const;
  void validate() const;     // throws Error naming the bad field
};

}  // namespace shardrec
