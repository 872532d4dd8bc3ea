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
  c.dim = static_cast<int>(f.shape("/item/embedding").at(1));
  c.model = "mf";
  try {
    c.model = f.read_attr_str("/", "model");
    c.features = f.read_attr_str("/", "features");
  } catch (const Error&) {
    // files without the attributes hold MF parameters
  }
}

bool is_pointwise_params(const std::string& params) {
  try {
    auto f = io::H5File::open_read(params);
    const std::string m = f.read_attr_str("/", "model");
    return model_kind(m).pointwise;
  } catch (const Error&) {
    return false;
  }
}

LoadedModel load_model(const std::string& data_path, const std::string& params,
                       const std::string& item_sharding, dist::Comm& comm) {
  LoadedModel m;
  m.data = io::load_shard(data_path, comm);
  m.cfg.data = data_path;
  read_model_config(params, m.cfg);
  m.cfg.item_sharding = item_sharding;
  m.model = std::make_unique<MFModel>(m.cfg, m.data.users, m.data.info.num_items, comm.rank(), data_path);
  io::load_tables(params, {&m.model->user, &m.model->item}, comm, m.model->exported_dense());
  return m;
}

}  // namespace shardrec::cli
