#include "launch/options.h"

#include <boost/program_options.hpp>
#include <algorithm>
#include <charconv>
#include <cmath>
#include <fstream>
#include <iostream>
#include <sstream>

#include "core/config.h"
#include "core/model_kind.h"

namespace po = boost::program_options;

namespace shardrec::cli {

namespace {

template <class T>
std::string number_text(T v) {
  char buf[64];
  return std::string(buf, std::to_chars(buf, buf + sizeof buf, v).ptr);
}

template <class T>
std::string to_text(const T& v) {
  if constexpr (std::is_same_v<T, bool>) return v ? "true" : "false";
  else if constexpr (std::is_same_v<T, std::string>) return v;
  else return number_text(v);
}

template <class T>
T parse_value(const Option& o, const std::string& s) {
  if constexpr (std::is_same_v<T, std::string>) {
    o.check_choice(s);
    return s;
  } else if constexpr (std::is_same_v<T, bool>) {
    for (const char* t : {"true", "yes", "on", "1"})
      if (s == t) return true;
    for (const char* f : {"false", "no", "off", "0"})
      if (s == f) return false;
    o.bad("'" + s + "': expected true or false");
  } else {
    const char* first = s.data() + (!s.empty() && s[0] == '+');
    T v{};
    const auto [end, ec] = std::from_chars(first, s.data() + s.size(), v);
    if (ec != std::errc() || end != s.data() + s.size() || s.empty())
      o.bad("'" + s + "' is not " + (std::is_integral_v<T> ? "an integer" : "a number"));
    if constexpr (std::is_floating_point_v<T>)
      if (!std::isfinite(v)) o.bad("'" + s + "' is not a finite number");
    o.check_range(static_cast<double>(v));
    return v;
  }
}

template <class T>
std::string join(const std::vector<T>& v, const char* sep) {
  std::string s;
  for (const auto& x : v) {
    if (!s.empty()) s += sep;
    s += to_text(x);
  }
  return s;
}

template <class T>
Option::Setter list_setter(std::vector<T>& var) {
  return [&var](const Option& o, const std::vector<std::string>& t) {
    std::vector<T> out;
    std::stringstream ss(t.at(0));
    for (std::string tok; std::getline(ss, tok, ',');) out.push_back(parse_value<T>(o, tok));
    if (out.empty()) o.bad("empty list");
    var = std::move(out);
  };
}

// "a, b or c"
std::string or_list(const std::vector<std::string>& v) {
  std::string s;
  for (size_t k = 0; k < v.size(); ++k) s += (k == 0 ? "" : k + 1 == v.size() ? " or " : ", ") + v[k];
  return s;
}

size_t edit_distance(const std::string& a, const std::string& b) {
  std::vector<size_t> row(b.size() + 1);
  for (size_t j = 0; j <= b.size(); ++j) row[j] = j;
  for (size_t i = 1; i <= a.size(); ++i) {
    size_t diag = row[0];
    row[0] = i;
    for (size_t j = 1; j <= b.size(); ++j) {
      const size_t up = row[j];
      row[j] = std::min({row[j] + 1, row[j - 1] + 1, diag + (a[i - 1] != b[j - 1])});
      diag = up;
    }
  }
  return row[b.size()];
}

// "; did you mean --x?" for an unknown name: the options it is a prefix of (prefixes are not
// accepted, so as not to change meaning when an option is added), else the nearest name.
std::string suggestion(std::string typed, const Options& options, const char* dashes) {
  typed.erase(0, typed.find_first_not_of('-'));
  std::replace(typed.begin(), typed.end(), '_', '-');
  std::vector<std::string> names = {"help", "config"}, prefixed;
  for (const auto& o : options) names.push_back(o.name);
  // Names other trainers use for ours (PyTorch scripts, RecBole, implicit), when this command has ours.
  static const std::pair<const char*, const char*> kSynonyms[] = {
      {"learning-rate", "lr"},  {"batch-size", "batch"},      {"train-batch-size", "batch"},
      {"num-epochs", "epochs"}, {"n-epochs", "epochs"},       {"iterations", "epochs"},
      {"embedding-size", "dim"}, {"embedding-dim", "dim"},    {"factors", "dim"},
      {"regularization", "l2"}, {"reg", "l2"},                {"num-threads", "threads"},
      {"neg-samples", "negatives"}, {"num-negatives", "negatives"}, {"topk", "ks"}};
  for (const auto& [other, ours] : kSynonyms)
    if (typed == other && std::find(names.begin(), names.end(), ours) != names.end())
      return "; did you mean " + (dashes + std::string(ours)) + "?";
  for (const auto& n : names)
    if (n.rfind(typed, 0) == 0) prefixed.push_back(dashes + n);
  if (!typed.empty() && !prefixed.empty() && prefixed.size() <= 4) return "; did you mean " + or_list(prefixed) + "?";
  const std::string best = nearest(typed, names);
  return best.empty() ? "" : "; did you mean " + (dashes + best) + "?";
}

void add_option(po::options_description& desc, const Option& o) {
  const std::string key = o.name + (o.short_name ? std::string(",") + o.short_name : "");
  if (o.multi) {
    auto* v = po::value<std::vector<std::string>>()->multitoken();
    if (o.required_in) v->required();
    desc.add_options()(key.c_str(), v, o.help.c_str());
    return;
  }
  auto* v = po::value<std::string>();
  if (!o.default_text.empty()) v->default_value(o.default_text);
  if (o.is_flag) v->implicit_value("true");
  if (o.required_in) v->required();
  if (!o.allowed.empty()) v->value_name(join(o.allowed, "|"));
  desc.add_options()(key.c_str(), v, o.help.c_str());
}

constexpr const char* kStray = "stray-arguments";  // where boost puts positional arguments
constexpr const char* kGeneral = "general";        // --help's heading of --help, --config, --log-level

}  // namespace

std::string format_number(double v) { return number_text(v); }
std::string format_number(float v) { return number_text(v); }

Option::Option(std::string n, std::string h, Setter set, std::function<std::string()> get)
    : name(std::move(n)), help(std::move(h)), setter_(std::move(set)), getter_(std::move(get)) {
  default_text = getter_();
}

template <class T>
Option::Option(std::string n, T& var, std::string h)
    : Option(std::move(n), std::move(h),
             [&var](const Option& o, const std::vector<std::string>& t) { var = parse_value<T>(o, t.at(0)); },
             [&var] { return to_text(var); }) {}
template Option::Option(std::string, int&, std::string);
template Option::Option(std::string, int64_t&, std::string);
template Option::Option(std::string, uint64_t&, std::string);
template Option::Option(std::string, float&, std::string);
template Option::Option(std::string, double&, std::string);
template Option::Option(std::string, bool&, std::string);
template Option::Option(std::string, std::string&, std::string);

Option::Option(std::string n, std::vector<int>& var, std::string h)
    : Option(std::move(n), std::move(h), list_setter(var), [&var] { return join(var, ","); }) {}
Option::Option(std::string n, std::vector<double>& var, std::string h)
    : Option(std::move(n), std::move(h), list_setter(var), [&var] { return join(var, ","); }) {}
Option::Option(std::string n, std::vector<std::string>& var, std::string h)
    : Option(std::move(n), std::move(h), [&var](const Option&, const std::vector<std::string>& t) { var = t; },
             [&var] { return join(var, " "); }) {
  multi = true;
}
Option::Option(std::string n, std::optional<double>& var, std::string h)
    : Option(std::move(n), std::move(h),
             [&var](const Option& o, const std::vector<std::string>& t) { var = parse_value<double>(o, t.at(0)); },
             [&var] { return var ? format_number(*var) : std::string(); }) {}

void Option::bad(const std::string& what) const { throw po::error("option --" + name + ": " + what); }

void Option::check_choice(const std::string& v) const {
  if (!allowed.empty() && std::find(allowed.begin(), allowed.end(), v) == allowed.end())
    bad("'" + v + "': expected " + or_list(allowed));
}

void Option::check_range(double v) const {
  if ((lo_open_ ? v > lo_ : v >= lo_) && (hi_open_ ? v < hi_ : v <= hi_)) return;
  std::string want;
  if (hi_ == kInf) {
    want = lo_ == 0 ? (lo_open_ ? "must be positive" : "must not be negative")
                    : std::string("must be ") + (lo_open_ ? "above " : "at least ") + format_number(lo_);
  } else if (!lo_open_ && !hi_open_ && lo_ == std::floor(lo_) && hi_ == std::floor(hi_)) {
    want = "must be in " + format_number(lo_) + ".." + format_number(hi_);
  } else {
    want = std::string("must be in ") + (lo_open_ ? "(" : "[") + format_number(lo_) + ", " + format_number(hi_) +
           (hi_open_ ? ")" : "]");
  }
  bad(want + ", not " + format_number(v));
}

Args parse(int argc, char** argv, const std::string& usage, const Options& command_options) {
  Args args;
  // Every command's --log-level, declared here once; it is not in the command's table, so neither
  // config.ini nor prep's recorded options see it (the outputs do not depend on it).
  Options options = command_options;
  options.push_back(Option::named("log-level", args.log_level,
                                  {{"quiet", LogLevel::kQuiet},
                                   {"error", LogLevel::kError},
                                   {"warn", LogLevel::kWarn},
                                   {"info", LogLevel::kInfo},
                                   {"debug", LogLevel::kDebug}},
                                  "what is printed besides the results: quiet (errors only; no summary lines, no "
                                  "tables a file also holds), error (errors only on stderr), warn (and warnings), "
                                  "info (and progress lines), debug (and each rank's part of the data, timings)")
                        .group(kGeneral));
  // --help groups the options under their headings, in the order they first appear.
  std::vector<std::string> headings;
  for (const auto& o : options)
    if (o.heading != kGeneral && std::find(headings.begin(), headings.end(), o.heading) == headings.end())
      headings.push_back(o.heading);
  po::options_description visible, in_files;
  for (const auto& h : headings) {
    po::options_description g(h.empty() ? "options" : h);
    for (const auto& o : options)
      if (o.heading == h) add_option(g, o);
    visible.add(g);
  }
  for (const auto& o : options) add_option(in_files, o);
  po::options_description general(kGeneral);
  general.add_options()("help,h", "show this help")(
      "config", po::value<std::string>(), "read options from this file (key = value per line; the command line wins)");
  for (const auto& o : options)
    if (o.heading == kGeneral) add_option(general, o);
  visible.add(general);
  po::options_description all;
  all.add(visible).add_options()(kStray, po::value<std::vector<std::string>>());
  po::positional_options_description stray;
  stray.add(kStray, -1);

  po::variables_map vm;
  try {
    po::store(po::command_line_parser(argc, argv)
                  .options(all)
                  .positional(stray)
                  .style(po::command_line_style::default_style & ~po::command_line_style::allow_guessing)
                  .run(),
              vm);
  } catch (const po::unknown_option& e) {
    throw po::error(e.what() + suggestion(e.get_option_name(), options, "--"));
  }
  if (vm.count(kStray))
    throw po::error("unexpected argument '" + vm[kStray].as<std::vector<std::string>>().at(0) +
                    "' (every value follows its --option)");
  if (vm.count("help")) {
    std::cout << usage << "\n" << visible << "\n";
    args.help = true;
    return args;
  }
  std::set<std::string> on_command_line;
  for (const auto& o : options)
    if (vm.count(o.name) && !vm[o.name].defaulted()) on_command_line.insert(o.name);
  std::string file;
  if (vm.count("config")) {
    file = vm["config"].as<std::string>();
    std::ifstream in(file);
    if (!in) throw po::error("config file " + file + ": cannot be read");
    try {
      po::store(po::parse_config_file(in, in_files, false), vm);
    } catch (const po::unknown_option& e) {
      throw po::error("config file " + file + ": " + e.what() + suggestion(e.get_option_name(), options, ""));
    } catch (const po::error& e) {
      throw po::error("config file " + file + ": " + e.what());
    }
  }
  po::notify(vm);
  for (const auto& o : options) {
    if (!vm.count(o.name) || vm[o.name].defaulted()) continue;
    args.given.insert(o.name);
    try {
      o.set(o.multi ? vm[o.name].as<std::vector<std::string>>() : std::vector{vm[o.name].as<std::string>()});
    } catch (const po::error& e) {
      if (!on_command_line.count(o.name)) throw po::error("config file " + file + ": " + e.what());
      throw;
    }
  }
  return args;
}

std::string ini_text(const Options& options, const TrainConfig& c) {
  std::string s;
  for (const auto& o : options)
    if (o.record == Ini::kYes || (o.record == Ini::kPointwise && c.pointwise_model()) ||
        (o.record == Ini::kGraph && c.graph_model()) || (o.record == Ini::kContrast && c.contrastive_model()) ||
        (o.record == Ini::kItemGraph && c.item_graph_model()))
      s += o.name + " = " + o.value() + "\n";
  return s;
}

Options for_command(Options all, Command cmd) {
  Options out;
  for (auto& o : all)
    if (o.commands & cmd) {
      o.required_in = o.required_in & cmd ? ~0u : 0;
      out.push_back(std::move(o));
    }
  return out;
}

namespace {
// The registered models (core/model_kind.h) and what each is.
std::vector<std::string> model_choices() {
  std::vector<std::string> names;
  for (const auto& k : model_kinds()) names.push_back(k.name);
  return names;
}
std::string model_help() {
  std::string h;
  for (const auto& k : model_kinds())
    h += (h.empty() ? "" : "; ") + k.name + ": " + k.summary + (k.item_features ? " (needs --features)" : "");
  return h;
}
// The optimizers (kernels/row_optimizer.h's table).
std::vector<std::pair<std::string, OptimizerKind>> optimizer_names() {
  std::vector<std::pair<std::string, OptimizerKind>> v;
  for (const auto& t : optimizer_traits()) v.emplace_back(t.name, t.kind);
  return v;
}
std::string optimizer_help() {
  std::string h;
  for (const auto& t : optimizer_traits()) h += (h.empty() ? "" : "; ") + std::string(t.name) + ": " + t.help;
  return h;
}
}  // namespace

std::string nearest(const std::string& typed, const std::vector<std::string>& names) {
  const std::string* best = nullptr;
  size_t dist = 0;
  for (const auto& n : names)
    if (const size_t d = edit_distance(typed, n); !best || d < dist) best = &n, dist = d;
  return best && dist <= std::max<size_t>(2, typed.size() / 3) ? *best : "";
}

Option params_option(std::string& params) {
  return Option("params", params, "parameters (params.h5 of a run, or an export)").required();
}

void default_pointwise_loss(TrainConfig& c, const Args& args) {
  if (!args.has("loss")) c.loss = model_kind(c.model).losses.front();
}

Options config_options(TrainConfig& c) {
  using I = dist::InitSpec::Kind;
  const unsigned model = kTrain | kPlan, loss = kTrain | kLandscape | kPlan, eval = kTrain | kEval;
  const std::string m = "model", o = "optimizer", t = "training", e = "evaluation",
                    il = "Inverse Learning (gmf, neumf)", dev = "device";
  return {
      Option("data", c.data, "dataset (.h5); plan takes the table sizes and row counts from it")
          .in(kTrain | kEval | kLandscape | kPlan | kExport).required(kTrain | kEval | kLandscape | kExport).ini(Ini::kYes),
      Option("run-dir", c.run_dir, "directory for config.ini, metrics.jsonl, result.json and params.h5").in(kTrain),
      Option("model", c.model, model_help()).choices(model_choices()).in(model).group(m).ini(Ini::kYes),
      Option("features", c.features,
             "vbpr, freedom: the dataset's item modalities to use, comma separated (shardrec prep --features)")
          .in(kTrain).group(m).ini(Ini::kYes),
      Option("dim", c.dim, "embedding size").range(1, 4096).in(model).group(m).ini(Ini::kYes),
      Option("loss", c.loss,
             "bpr or bce; gmf/neumf: bce (labeled rows, their default), idl (+ inverse dual loss on unlabeled "
             "draws) or bce-neg (draws as negatives)")
          .choices({"bpr", "bce", "idl", "bce-neg"}).in(loss).group(m).ini(Ini::kYes),
      Option("negatives", c.negatives, "negatives per positive (mf, vbpr)").range(1, 1000).in(loss).group(m).ini(Ini::kYes),
      Option("batch", c.batch, "global batch size (any number of ranks)").at_least(1).in(loss).group(t).ini(Ini::kYes),
      Option("epochs", c.epochs, "maximum epochs").at_least(0).in(kTrain).group(t).ini(Ini::kYes),
      Option("seed", c.seed, "seed of init, shuffle and negatives").in(kTrain | kLandscape).group(t).ini(Ini::kYes),
      Option::named("optimizer", c.opt.kind, optimizer_names(), optimizer_help())
          .in(model).group(o).ini(Ini::kYes),
      Option("lr", c.opt.lr, "learning rate").positive().in(kTrain).group(o).ini(Ini::kYes),
      Option("beta1", c.opt.beta1, "Adam beta1").range(0, 1, false, true).in(kTrain).group(o).ini(Ini::kYes),
      Option("beta2", c.opt.beta2, "Adam beta2").range(0, 1, false, true).in(kTrain).group(o).ini(Ini::kYes),
      Option("eps", c.opt.eps, "Adam/Adagrad epsilon").positive().in(kTrain).group(o).ini(Ini::kYes),
      Option("weight-decay", c.opt.weight_decay, "L2 added to the gradient of updated rows (PyTorch's weight_decay)")
          .in(kTrain).group(o).ini(Ini::kYes),
      Option("l2", c.l2, "L2 regularisation of the batch's embeddings").at_least(0).in(kTrain).group(o).ini(Ini::kYes),
      Option::named("init", c.init.kind, {{"normal", I::kNormal}, {"xavier_normal", I::kXavierNormal}, {"uniform", I::kUniform}},
                    "initialisation of the tables")
          .in(kTrain).group(t).ini(Ini::kYes),
      Option("init-scale", c.init.scale, "std (normal) or half-width (uniform)").in(kTrain).group(t).ini(Ini::kYes),
      Option("item-sharding", c.item_sharding, "item table placement: mod, range or table:RANK")
          .in(kTrain).group(t).ini(Ini::kYes),
      Option("eval-every", c.eval_every, "epochs between validations (0 = none)").at_least(0).in(kTrain).group(t).ini(Ini::kYes),
      Option("valid-metric", c.valid_metric, "early-stopping metric, e.g. ndcg@10, recall@20, auc")
          .in(kTrain).group(t).ini(Ini::kYes),
      Option("patience", c.patience, "validations without improvement before stopping (0 = never stop early)")
          .at_least(0).in(kTrain).group(t).ini(Ini::kYes),
      Option("keep-best", c.keep_best, "end with the best validated parameters").in(kTrain).group(t).ini(Ini::kYes),
      Option("strategy", c.strategy,
             "plain, or mirror (Mirror Gradient: on every mg-beta-th batch a step on mg-alpha1 * L, then on "
             "-mg-alpha2 * L at the updated parameters); gmf/neumf: plain or ig (Inverse Gradient)")
          .choices({"plain", "mirror", "ig"}).in(model).group(t).ini(Ini::kYes),
      Option("mg-alpha1", c.mg_alpha1, "Mirror Gradient: descent scale").in(kTrain).group(t).ini(Ini::kYes),
      Option("mg-alpha2", c.mg_alpha2, "Mirror Gradient: mirror (ascent) scale").in(kTrain).group(t).ini(Ini::kYes),
      Option("mg-beta", c.mg_beta, "Mirror Gradient: interval in batches").at_least(1).in(model).group(t).ini(Ini::kYes),
      Option("threads", c.threads,
             "CPU threads per rank; the results are the same for any number (0: the cores the launcher gave the "
             "rank, shared out among the node's ranks when they are not bound to cores of their own)")
          .at_least(0).in(kTrain | kEval | kExport).group(dev).ini(Ini::kNo),
      Option("device", c.device,
             "cpu (the reference), cuda (one GPU per rank: the node-local rank picks it), or auto (cuda when a GPU "
             "is visible)")
          .choices({"cpu", "cuda", "auto"}).in(kTrain).group(dev).ini(Ini::kYes),
      Option("gpu-comm", c.gpu_comm,
             "GPU exchange: auto (NCCL when every rank has its own GPU), nccl, or host (staged through MPI)")
          .choices({"auto", "nccl", "host"}).in(kTrain).group(dev).ini(Ini::kYes),
      Option("graph-layers", c.graph_layers,
             "lightgcn, xsimgcl: propagation layers K (the scoring rows are the mean of layers 0..K; xsimgcl: 1..K)")
          .range(0, 16).in(model).group(t).ini(Ini::kGraph),
      Option("cl-lambda", c.cl_lambda, "xsimgcl: weight of the cross-layer InfoNCE term")
          .at_least(0).in(model).group(t).ini(Ini::kContrast),
      Option("cl-eps", c.cl_eps, "xsimgcl: magnitude of the noise added to each layer's rows in training")
          .at_least(0).in(model).group(t).ini(Ini::kContrast),
      Option("cl-layer", c.cl_layer, "xsimgcl: the layer l* whose rows are contrasted with the final rows (1..K)")
          .range(1, 16).in(model).group(t).ini(Ini::kContrast),
      Option("cl-tau", c.cl_tau, "xsimgcl: InfoNCE temperature").at_least(0).in(model).group(t).ini(Ini::kContrast),
      Option("freedom-prune", c.freedom_prune,
             "freedom: fraction of the user-item edges pruned each epoch, degree-sensitively (MMRec's dropout; "
             "0.8 keeps 20%; 0: none)")
          .range(0, 1, false, true).in(model).group(t).ini(Ini::kItemGraph),
      Option("freedom-knn", c.freedom_knn, "freedom: neighbours k of each item in the modalities' kNN graphs")
          .at_least(1).in(model).group(t).ini(Ini::kItemGraph),
      Option("freedom-item-layers", c.freedom_item_layers,
             "freedom: propagation layers over the item-item graph (MMRec's n_mm_layers)")
          .range(0, 8).in(model).group(t).ini(Ini::kItemGraph),
      Option("freedom-feature-weight", c.freedom_feature_weight,
             "freedom: weight of the modalities' BPR terms through their projections (MMRec's reg_weight)")
          .at_least(0).in(model).group(t).ini(Ini::kItemGraph),
      Option("freedom-weights", c.freedom_weights,
             "freedom: mixing weights of the modalities' item graphs, one per --features entry, comma separated "
             "(empty: 0.1 image / 0.9 text for modalities named image and text, as MMRec's mm_image_weight; "
             "otherwise equal)")
          .in(model).group(t).ini(Ini::kItemGraph),
      Option("mlp-layers", c.mlp_layers, "neumf: MLP layers (widths 2*dim*2^(L-1) -> ... -> dim)")
          .range(1, 8).in(model).group(il).ini(Ini::kPointwise),
      Option("label-threshold", c.label_threshold, "label = rating > this when the dataset records no threshold")
          .in(kTrain).group(il).ini(Ini::kPointwise),
      Option("il-unlabeled", c.il_unlabeled, "with idl or ig: unlabeled rows drawn per labeled row each epoch")
          .range(1, 1000).in(model).group(il).ini(Ini::kPointwise),
      Option("ig-sample-lr", c.ig_sample_lr, "Inverse Gradient: rate of the forward/inverse candidate steps")
          .at_least(0).in(kTrain).group(il).ini(Ini::kPointwise),
      Option("ig-train-ratio", c.ig_train_ratio,
             "Inverse Gradient: share of labeled rows in training-train (the rest drive the meta-steps)")
          .range(0, 1, true, true).in(model).group(il).ini(Ini::kPointwise),
      Option("il-reference", c.il_reference,
             "Inverse Gradient: reproduce the reference code's optimizer quirks (fresh Adam per candidate, "
             "re-created main Adam, candidate gradient kept for the main step)")
          .flag().in(kTrain).group(il).ini(Ini::kPointwise),
      Option("ks", c.eval.ks, "cutoffs K of the ranking metrics").at_least(1).in(eval).group(e).ini(Ini::kYes),
      Option("mask-valid", c.eval.mask_valid_in_test,
             "when ranking test items, also exclude the user's validation items (RecBole's protocol)")
          .in(eval).group(e).ini(Ini::kYes),
      Option("pointwise", c.eval.pointwise, "also compute AUC, GAUC and log loss on positives + one sampled negative each")
          .in(eval).group(e).ini(Ini::kYes),
      Option("eval-seed", c.eval.seed, "seed of the pointwise negatives").in(eval).group(e).ini(Ini::kYes),
      Option("score-budget", c.eval.score_budget, "scores held at once per rank during full ranking (4 bytes each)")
          .at_least(1).in(eval).group(e),
      Option("eval-device", c.eval.device, "where full ranking scores the item shards (the same lists)")
          .choices({"cpu", "cuda", "auto"}).in(eval).group(e).ini(Ini::kYes),
      Option("gauc-impressions", c.eval.gauc_impressions,
             "gmf/neumf (labeled protocol): weight each user's AUC in GAUC by the user's rows")
          .in(eval).group(e).ini(Ini::kPointwise),
  };
}

}  // namespace shardrec::cli
