#include "io/export.h"

#include <algorithm>
#include <bit>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <functional>
#include <memory>

#include "base/atomic_file.h"
#include "base/error.h"
#include "io/checkpoint.h"
#include "io/dataset.h"
#include "io/hdf5_util.h"
#include "io/text.h"

namespace shardrec::io {

namespace {

// Rank 0's error (empty: none), thrown on every rank, so that an output rank 0 cannot write
// stops every rank together instead of leaving them waiting in a collective.
void share_root_error(dist::Comm& comm, std::string error) {
  uint64_t len = error.size();
  comm.broadcast(&len, sizeof len, 0);
  if (!len) return;
  error.resize(len);
  comm.broadcast(error.data(), len, 0);
  throw AgreedError(error);
}

// Runs fn on rank 0, keeping its error for share_root_error.
void on_root(dist::Comm& comm, std::string& error, const std::function<void()>& fn) {
  if (comm.rank() != 0 || !error.empty()) return;
  try {
    fn();
  } catch (const std::exception& e) {
    error = e.what();
  }
}

// Rank 0 receives every table's rows in id order, a chunk at a time, and hands them to sink(t,
// first id, rows, data). Collective; a sink error (kept in `error`) stops the writing, not the
// exchange, so that no rank is left in a collective.
void gather_rows(const std::vector<const dist::ShardedEmbedding*>& tables, dist::Comm& comm, int64_t chunk_rows,
                 std::string& error, const std::function<void(size_t, int64_t, int64_t, const float*)>& sink,
                 Progress* progress) {
  const int n = comm.size(), me = comm.rank();
  int64_t total = 0, done = 0;  // rows of every table, for the progress line
  for (const auto* tb : tables) total += tb->rows();
  if (progress) progress->begin(total);
  for (size_t t = 0; t < tables.size(); ++t) {
    const auto* tb = tables[t];
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
      done += c1 - c0;
      if (me != 0) continue;
      std::vector<float> block((c1 - c0) * d);
      for (int k = 0; k < n; ++k)
        for (size_t i = 0; i < ids[k].size(); ++i)
          std::memcpy(&block[(ids[k][i] - c0) * d], &rows[k][i * d], d * sizeof(float));
      on_root(comm, error, [&] { sink(t, c0, c1 - c0, block.data()); });
      if (progress) progress->update(done);
    }
  }
}

// Rows [first, first + count) of a dataset as a checksum block.
StateBlock block_of(int64_t rows, int64_t cols, int64_t first, int64_t count, const float* data) {
  StateBlock b;
  b.rows = rows;
  b.cols = cols;
  b.first = first;
  b.count = count;
  b.data = const_cast<float*>(data);
  return b;
}

}  // namespace

void export_tables(const std::string& path, const std::vector<const dist::ShardedEmbedding*>& tables,
                   const std::vector<std::string>& kinds, const std::string& dataset,
                   dist::Comm& comm, int64_t chunk_rows, const std::vector<DenseParam>& dense,
                   const std::vector<std::pair<std::string, std::string>>& attrs, Progress* progress) {
  std::unique_ptr<AtomicFile> out;
  H5File file, ds;
  DatasetInfo info;
  std::vector<uint64_t> sums(tables.size(), 0);
  std::string error;
  on_root(comm, error, [&] {
    out = std::make_unique<AtomicFile>(path);
    file = H5File::create(out->tmp_path(), path);
    ds = H5File::open_read(dataset);
    info = read_info(ds);
    file.write_attr_str("/", "format", kParamsFormat);
    for (const auto& [k, v] : attrs) file.write_attr_str("/", k, v);
    // Which dataset these rows belong to: eval, export and landscape refuse another one.
    if (!info.fingerprint.empty()) file.write_attr_str("/", "dataset_fingerprint", info.fingerprint);
    if (!dense.empty()) file.create_group("/dense");
    for (const auto& p : dense) {  // replicated: rank 0's copy is everyone's
      const std::string name = "/dense/" + p.name;
      file.create_dataset<float>(name, p.rows, p.cols);
      file.write_rows<float>(name, 0, p.data->data(), p.rows);
      file.write_attr<int64_t>(name, "checksum",
                               static_cast<int64_t>(rows_hash(block_of(p.rows, p.cols, 0, p.rows, p.data->data()))));
    }
    for (const auto* tb : tables) {
      file.create_group("/" + tb->name());
      file.write_attr<int64_t>("/" + tb->name(), "rows", tb->rows());
      file.write_attr<int32_t>("/" + tb->name(), "dim", tb->dim());
      file.create_dataset<float>("/" + tb->name() + "/embedding", tb->rows(), tb->dim());
    }
  });
  share_root_error(comm, error);
  gather_rows(tables, comm, chunk_rows, error, [&](size_t t, int64_t c0, int64_t n, const float* rows) {
    file.write_rows<float>("/" + tables[t]->name() + "/embedding", c0, rows, n);
    sums[t] ^= rows_hash(block_of(tables[t]->rows(), tables[t]->dim(), c0, n, rows));
  }, progress);
  on_root(comm, error, [&] {
    for (size_t t = 0; t < tables.size(); ++t) {
      file.write_attr<int64_t>("/" + tables[t]->name() + "/embedding", "checksum", static_cast<int64_t>(sums[t]));
      // Raw ids in blocks: rank 0 never holds a whole table's ids.
      const std::string name = "/" + tables[t]->name() + "/raw_id";
      const int64_t rows = tables[t]->rows();
      file.create_strings(name, rows);
      for (int64_t c0 = 0; c0 < rows; c0 += chunk_rows)
        file.write_string_rows(name, c0, read_raw_ids(ds, info, kinds[t], c0, std::min(chunk_rows, rows - c0)));
    }
    file.close();
    out->commit();
  });
  share_root_error(comm, error);
}

void export_tsv(const std::string& prefix, const std::vector<const dist::ShardedEmbedding*>& tables,
                const std::vector<std::string>& kinds, const std::string& dataset, dist::Comm& comm,
                int64_t chunk_rows, Progress* progress) {
  AtomicFiles files;
  std::vector<AtomicFile*> parts;
  H5File ds;
  DatasetInfo info;
  std::string error;
  on_root(comm, error, [&] {
    for (const auto& kind : kinds) parts.push_back(&files.add(prefix + "." + kind + ".tsv"));
    ds = H5File::open_read(dataset);
    info = read_info(ds);
  });
  share_root_error(comm, error);
  gather_rows(tables, comm, chunk_rows, error, [&](size_t t, int64_t c0, int64_t n, const float* rows) {
    const int d = tables[t]->dim();
    const auto ids = read_raw_ids(ds, info, kinds[t], c0, n);
    std::string text;
    if (c0 == 0) {  // the header: the id space, then v1..vd
      text = kinds[t];
      for (int c = 1; c <= d; ++c) text.append("\tv").append(std::to_string(c));
      text += "\n";
    }
    for (int64_t r = 0; r < n; ++r) {
      text += ids[r];
      for (int c = 0; c < d; ++c) {
        char buf[32];
        std::snprintf(buf, sizeof buf, "\t%.9g", rows[r * d + c]);
        text += buf;
      }
      text += "\n";
    }
    parts[t]->write(text);
  }, progress);
  on_root(comm, error, [&] { files.commit(); });
  share_root_error(comm, error);
}

namespace {

// The header of a version 1.0 .npy file: magic, version, header length, then the header dict
// padded with spaces to a multiple of 64 bytes and ended by a newline (NumPy's format).
std::string npy_header(const std::string& descr, const std::vector<int64_t>& shape) {
  // Built by append: operator+ on literals here trips GCC 12's -Wrestrict false positive.
  std::string dict = "{'descr': '";
  dict.append(descr).append("', 'fortran_order': False, 'shape': (");
  for (size_t k = 0; k < shape.size(); ++k) dict.append(k ? ", " : "").append(std::to_string(shape[k]));
  if (shape.size() == 1) dict += ",";  // a 1-tuple
  dict.append("), }");
  const size_t total = (10 + dict.size() + 1 + 63) / 64 * 64;
  dict.append(total - 10 - dict.size() - 1, ' ').append("\n");
  std::string h("\x93NUMPY\x01\x00", 8);
  h += static_cast<char>(dict.size() & 0xff);
  h += static_cast<char>(dict.size() >> 8);
  return h + dict;
}

// Code points of a UTF-8 string; ids that are not UTF-8 cannot be a NumPy unicode string.
std::u32string utf32(const std::string& s, const std::string& kind) {
  std::u32string out;
  for (size_t i = 0; i < s.size();) {
    const auto c = static_cast<unsigned char>(s[i]);
    const int n = c < 0x80 ? 1 : (c >> 5) == 6 ? 2 : (c >> 4) == 14 ? 3 : (c >> 3) == 30 ? 4 : 0;
    if (n == 0 || i + n > s.size())
      fail("export --format npy: raw " + kind + " id " + text::show(s) + " is not UTF-8 (use --format tsv or h5)");
    char32_t cp = n == 1 ? c : c & (0x7f >> n);
    for (int k = 1; k < n; ++k) {
      const auto x = static_cast<unsigned char>(s[i + k]);
      if ((x >> 6) != 2)
        fail("export --format npy: raw " + kind + " id " + text::show(s) + " is not UTF-8 (use --format tsv or h5)");
      cp = (cp << 6) | (x & 0x3f);
    }
    out += cp;
    i += n;
  }
  return out;
}

void put_le32(std::string& b, uint32_t v) {
  for (int k = 0; k < 4; ++k) b += static_cast<char>((v >> (8 * k)) & 0xff);
}

}  // namespace

std::vector<std::string> npy_paths(const std::string& prefix, const std::vector<std::string>& kinds, bool faiss) {
  std::vector<std::string> out;
  for (const auto& kind : kinds) {
    out.push_back(prefix + "." + kind + (faiss && &kind == &kinds.back() ? ".faiss" : ".npy"));
    out.push_back(prefix + "." + kind + "_ids.npy");
  }
  return out;
}

void export_npy(const std::string& prefix, const std::vector<const dist::ShardedEmbedding*>& tables,
                const std::vector<std::string>& kinds, const std::string& dataset, dist::Comm& comm,
                int64_t chunk_rows, const FaissSpec* faiss, Progress* progress) {
  static_assert(std::endian::native == std::endian::little, "the .npy files are written little-endian");
  const size_t indexed = faiss ? tables.size() - 1 : tables.size();  // the table that goes to FAISS
  std::vector<float> index_rows;  // rank 0: its vectors, all of them, for the index
  AtomicFiles files;
  std::vector<AtomicFile*> parts;
  H5File ds;
  DatasetInfo info;
  std::string error;
  on_root(comm, error, [&] {
    const auto paths = npy_paths(prefix, kinds, faiss != nullptr);
    for (const auto& p : paths) parts.push_back(&files.add(p));
    ds = H5File::open_read(dataset);
    info = read_info(ds);
    for (size_t t = 0; t < tables.size(); ++t) {
      const auto* tb = tables[t];
      if (t != indexed) parts[2 * t]->write(npy_header("<f4", {tb->rows(), tb->dim()}));
      // The ids as fixed-width UTF-32 ('<U' + the longest id), NumPy's own string arrays.
      std::vector<std::u32string> ids;
      size_t w = 1;
      for (const auto& id : read_raw_ids(ds, info, kinds[t], 0, tb->rows())) {
        ids.push_back(utf32(id, kinds[t]));
        w = std::max(w, ids.back().size());
      }
      std::string b = npy_header("<U" + std::to_string(w), {tb->rows()});
      for (const auto& id : ids) {
        for (char32_t cp : id) put_le32(b, cp);
        for (size_t k = id.size(); k < w; ++k) put_le32(b, 0);
      }
      parts[2 * t + 1]->write(b);
    }
  });
  share_root_error(comm, error);
  gather_rows(tables, comm, chunk_rows, error, [&](size_t t, int64_t, int64_t n, const float* rows) {
    const size_t count = static_cast<size_t>(n) * tables[t]->dim();
    if (t == indexed) index_rows.insert(index_rows.end(), rows, rows + count);
    else parts[2 * t]->write({reinterpret_cast<const char*>(rows), count * sizeof(float)});
  }, progress);
  on_root(comm, error, [&] {
    if (faiss)  // FAISS writes the file by name: the temporary that commit() renames
      write_faiss_index(parts[2 * indexed]->tmp_path(), index_rows.data(), tables[indexed]->rows(),
                        tables[indexed]->dim(), *faiss);
    files.commit();
  });
  share_root_error(comm, error);
}

void load_tables(const std::string& path, const std::vector<dist::ShardedEmbedding*>& tables, dist::Comm& comm,
                 const std::vector<DenseParam>& dense) {
  // Every rank reads its rows and checks them; then the ranks agree, so that a bad file stops all.
  std::vector<StateBlock> blocks;
  std::vector<std::string> names;
  std::vector<int64_t> stored;
  std::vector<bool> has_sum;  // files written before params.h5 had checksums have none
  agree(comm, [&] {
    H5File f = H5File::open_read(path);
    std::string fmt;
    try {
      fmt = f.read_attr_str("/", "format");
    } catch (const Error&) {
    }
    if (fmt != kParamsFormat)
      fail(path + ": not a shardrec parameters file (root attribute 'format' is '" + fmt + "')");
    auto checked_block = [&](const std::string& ds, StateBlock b, bool replicated) {
      b.replicated = replicated;
      for (int64_t k = 0; k < b.count; ++k)
        for (int64_t c = 0; c < b.width(); ++c)
          if (!std::isfinite(b.data[k * b.width() + c]))
            fail(path + ": dataset " + ds + " row " + std::to_string(b.first + k * b.stride) + " holds " +
                 (std::isnan(b.data[k * b.width() + c]) ? "NaN" : "an infinity") +
                 " (parameters of a diverged training, or a damaged file)");
      const bool has = f.has_attr(ds, "checksum");
      names.push_back(ds);
      blocks.push_back(b);
      has_sum.push_back(has);
      stored.push_back(has ? f.read_attr<int64_t>(ds, "checksum") : 0);
    };
    for (auto* tb : tables) {
      const std::string ds = "/" + tb->name() + "/embedding";
      const auto shape = f.shape(ds);
      if (shape.size() != 2 || shape[0] != tb->rows() || shape[1] != tb->dim())
        fail(path + ": dataset " + ds + " has shape " +
             (shape.size() == 2 ? std::to_string(shape[0]) + "x" + std::to_string(shape[1]) : "?") +
             ", the model needs " + std::to_string(tb->rows()) + "x" + std::to_string(tb->dim()));
      const auto& sh = tb->sharding();
      const int64_t L = tb->local_rows();
      const int64_t first = L > 0 ? sh.global_id(tb->rank(), 0) : 0;
      const int64_t stride = L > 1 ? sh.global_id(tb->rank(), 1) - first : 1;
      if (L > 0) f.read_rows_strided<float>(ds, first, stride, L, tb->local_data().data());
      StateBlock b = block_of(tb->rows(), tb->dim(), first, L, tb->local_data().data());
      b.stride = stride;
      checked_block(ds, b, false);
    }
    for (const auto& p : dense) {
      const std::string ds = "/dense/" + p.name;
      const auto shape = f.shape(ds);
      const std::vector<int64_t> want = p.cols > 0 ? std::vector<int64_t>{p.rows, p.cols} : std::vector<int64_t>{p.rows};
      if (shape != want)
        fail(path + ": dataset " + ds + " does not have the shape the model needs (" + std::to_string(p.rows) +
             (p.cols > 0 ? "x" + std::to_string(p.cols) : "") + ")");
      f.read_rows<float>(ds, 0, p.rows, p.data->data());
      checked_block(ds, block_of(p.rows, p.cols, 0, p.rows, p.data->data()), true);
    }
  });
  for (size_t i = 0; i < blocks.size(); ++i) {
    if (!has_sum[i]) continue;  // written before params.h5 had checksums
    if (global_hash(blocks[i], comm) != static_cast<uint64_t>(stored[i]))
      throw AgreedError(path + ": dataset " + names[i] +
                        " fails its checksum (the file is damaged; train again or restore it)");
  }
}

}  // namespace shardrec::io
