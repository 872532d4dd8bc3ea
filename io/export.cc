#include "io/export.h"

#include <cstring>
#include <memory>

#include "base/error.h"
#include "io/dataset.h"
#include "io/hdf5_util.h"

namespace shardrec::io {

void export_tables(const std::string& path, const std::vector<const dist::ShardedEmbedding*>& tables,
                   const std::vector<std::string>& kinds, const std::string& dataset,
                   dist::Comm& comm, int64_t chunk_rows, const std::vector<DenseParam>& dense,
                   const std::vector<std::pair<std::string, std::string>>& attrs) {
  const bool root = comm.rank() == 0;
  std::unique_ptr<AtomicOutput> out;
  H5File file, ds;
  DatasetInfo info;
  // Rank 0 opens everything first and tells the others whether it worked, so that an
  // unwritable path stops every rank instead of leaving them waiting in a collective.
  std::string error;
  if (root) {
    try {
      out = std::make_unique<AtomicOutput>(path);
      file = H5File::create(out->tmp_path());
      ds = H5File::open_read(dataset);
      info = read_info(ds);
      file.write_attr_str("/", "format", kParamsFormat);
      for (const auto& [k, v] : attrs) file.write_attr_str("/", k, v);
      if (!dense.empty()) file.create_group("/dense");
      for (const auto& p : dense) {  // replicated: rank 0's copy is everyone's
        file.create_dataset<float>("/dense/" + p.name, p.rows, p.cols);
        file.write_rows<float>("/dense/" + p.name, 0, p.data->data(), p.rows);
      }
      for (size_t t = 0; t < tables.size(); ++t) {
        const auto& tb = *tables[t];
        file.create_group("/" + tb.name());
        file.write_attr<int64_t>("/" + tb.name(), "rows", tb.rows());
        file.write_attr<int32_t>("/" + tb.name(), "dim", tb.dim());
        file.create_dataset<float>("/" + tb.name() + "/embedding", tb.rows(), tb.dim());
      }
    } catch (const std::exception& e) {
      error = e.what();
    }
  }
  uint64_t len = error.size();
  comm.broadcast(&len, sizeof len, 0);
  if (len) {
    error.resize(len);
    comm.broadcast(error.data(), len, 0);
    fail(error);
  }
  const int n = comm.size(), me = comm.rank();
  for (const auto* tb : tables) {
    const int d = tb->dim();
    for (int64_t c0 = 0; c0 < tb->rows(); c0 += chunk_rows) {
      const int64_t c1 = std::min(tb->rows(), c0 + chunk_rows);
      // Owners send (id, row) pairs of the chunk to rank 0.
      std::vector<std::vector<float>> send(n);
      std::vector<std::vector<int64_t>> send_ids(n);
      for (int64_t l = 0; l < tb->local_rows(); ++l) {
        const int64_t id = tb->sharding().global_id(me, l);
        if (id < c0 || id >= c1) continue;
        send_ids[0].push_back(id);
        send[0].insert(send[0].end(), tb->local_row(l), tb->local_row(l) + d);
      }
      auto ids = dist::all_to_all(comm, send_ids);
      auto rows = dist::all_to_all(comm, send);
      if (!root) continue;
      std::vector<float> block((c1 - c0) * d);
      for (int k = 0; k < n; ++k)
        for (size_t i = 0; i < ids[k].size(); ++i)
          std::memcpy(&block[(ids[k][i] - c0) * d], &rows[k][i * d], d * sizeof(float));
      file.write_rows<float>("/" + tb->name() + "/embedding", c0, block.data(), c1 - c0);
    }
  }
  if (root) {
    try {
      // Raw ids in blocks: rank 0 never holds a whole table's ids.
      for (size_t t = 0; t < tables.size(); ++t) {
        const std::string name = "/" + tables[t]->name() + "/raw_id";
        const int64_t rows = tables[t]->rows();
        file.create_strings(name, rows);
        for (int64_t c0 = 0; c0 < rows; c0 += chunk_rows)
          file.write_string_rows(name, c0, read_raw_ids(ds, info, kinds[t], c0, std::min(chunk_rows, rows - c0)));
      }
      file.close();
      out->commit();
    } catch (const std::exception& e) {
      error = e.what();
    }
  }
  len = error.size();
  comm.broadcast(&len, sizeof len, 0);
  if (len) {
    error.resize(len);
    comm.broadcast(error.data(), len, 0);
    fail(error);
  }
}

void load_tables(const std::string& path, const std::vector<dist::ShardedEmbedding*>& tables,
                 const std::vector<DenseParam>& dense) {
  H5File f = H5File::open_read(path);
  std::string fmt;
  try {
    fmt = f.read_attr_str("/", "format");
  } catch (const Error&) {
  }
  if (fmt != kParamsFormat)
    fail(path + ": not a shardrec parameters file (root attribute 'format' is '" + fmt + "')");
  for (auto* tb : tables) {
    const std::string ds = "/" + tb->name() + "/embedding";
    const auto shape = f.shape(ds);
    if (shape.size() != 2 || shape[0] != tb->rows() || shape[1] != tb->dim())
      fail(path + ": dataset " + ds + " has shape " +
           (shape.size() == 2 ? std::to_string(shape[0]) + "x" + std::to_string(shape[1]) : "?") +
           ", the model needs " + std::to_string(tb->rows()) + "x" + std::to_string(tb->dim()));
    const auto& sh = tb->sharding();
    const int me = tb->rank();
    const int64_t L = tb->local_rows();
    if (L == 0) continue;
    const int64_t first = sh.global_id(me, 0);
    const int64_t stride = L > 1 ? sh.global_id(me, 1) - first : 1;
    f.read_rows_strided<float>(ds, first, stride, L, tb->local_data().data());
  }
  for (const auto& p : dense) {
    const std::string ds = "/dense/" + p.name;
    const auto shape = f.shape(ds);
    const std::vector<int64_t> want = p.cols > 0 ? std::vector<int64_t>{p.rows, p.cols} : std::vector<int64_t>{p.rows};
    if (shape != want)
      fail(path + ": dataset " + ds + " does not have the shape the model needs (" + std::to_string(p.rows) +
           (p.cols > 0 ? "x" + std::to_string(p.cols) : "") + ")");
    f.read_rows<float>(ds, 0, p.rows, p.data->data());
  }
}

}  // namespace shardrec::io
