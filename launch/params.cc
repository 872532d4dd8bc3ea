#include "launch/params.h"

#include "base/error.h"
#include "core/model_kind.h"

namespace shardrec::cli {

void save_params(const std::string& path, const TrainConfig& c, Model& m, dist::Comm& comm) {
  io::export_tables(path, m.exported_tables(comm), {"user", "item"}, c.data, comm, 1 << 16, m.exported_dense(),
                    m.export_attrs(c));
}

void read_model_config(const std::string& params, TrainConfig& c) {
  auto f = io::H5File::open_read(params);
  if (!f.exists("/item/embedding")) fail(params + ": no /item/embedding (not a shardrec parameters file?)");
  auto number = [&](const char* name, int& to) {
    if (!f.has_attr("/", name)) return;
    const std::string v = f.read_attr_str("/", name);
    size_t used = 0;
    try {
      to = std::stoi(v, &used);
    } catch (const std::exception&) {
      used = 0;
    }
    if (used == 0 || used != v.size()) fail(params + ": attribute " + name + " '" + v + "' is not a whole number");
  };
  c.dim = static_cast<int>(f.shape("/item/embedding").at(1));
  c.model = f.has_attr("/", "model") ? f.read_attr_str("/", "model") : "mf";  // files without it hold MF's
  c.features = f.has_attr("/", "features") ? f.read_attr_str("/", "features") : "";
  number("dim", c.dim);
  number("mlp_layers", c.mlp_layers);
  number("graph_layers", c.graph_layers);
}

LoadedParams load_params(const std::string& data_path, const std::string& params, dist::Comm& comm,
                         int threads) {
  LoadedParams m;
  m.data = io::load_shard(data_path, comm);
  m.cfg.data = data_path;
  read_model_config(params, m.cfg);
  m.cfg.item_sharding = "mod";
  m.cfg.opt.kind = OptimizerConfig::Kind::kSgd;  // never stepped; SGD keeps no state
  m.cfg.init.kind = dist::InitSpec::Kind::kNone;  // the tables are loaded below: no random rows first
  const ModelKind* kind = nullptr;
  for (const auto& k : model_kinds())
    if (k.name == m.cfg.model) kind = &k;
  if (!kind)
    fail(params + ": parameters of model '" + m.cfg.model + "', which this build does not have (it has: " +
         model_names() + ")");
  kind->validate(m.cfg, [&](bool ok, const std::string& option, const std::string& message) {
    if (!ok) fail(params + ": the parameters' " + option + " attribute: " + message);
  });
  m.model = kind->make(m.cfg, m.data, comm.rank());
  io::load_tables(params, m.model->params_tables(), comm, m.model->exported_dense());
  m.pool = std::make_unique<ThreadPool>(threads);
  m.model->set_threads(m.pool.get());
  return m;
}

}  // namespace shardrec::cli
