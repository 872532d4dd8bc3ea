// Trained tables as an HDF5 file (docs/data-format.md, "Parameters"): for each table
// /<name>/embedding (rows x dim, float32, in id order) and /<name>/raw_id (the dataset's raw ids).
// Written by rank 0 in chunks of rows gathered from their owners, so the file is byte-identical
// whatever the number of ranks; loaded back by every rank reading only its own rows. Every
// dataset of floats carries the checkpoints' row checksum (io/checkpoint.h) in its "checksum"
// attribute, verified on load.
#pragma once
#include <string>
#include <vector>

#include "base/log.h"
#include "dist/comm.h"
#include "dist/sharded_embedding.h"
#include "io/faiss_index.h"

namespace shardrec::io {

inline constexpr const char* kParamsFormat = "shardrec-params";

// A dense parameter replicated on every rank (VBPR's projection), stored as /dense/<name>.
struct DenseParam {
  std::string name;
  int64_t rows = 0, cols = 0;  // cols 0: a vector of rows entries
  std::vector<float>* data = nullptr;
};

// dataset: the dataset file whose /mapping gives raw ids (raw id = dense id when it has none).
// kinds[t] names the id space of tables[t] ("user" or "item"). attrs: root string attributes
// (model, features) that tell a reader which model the parameters belong to. Collective; an
// error on rank 0 (the writer) is thrown on every rank and leaves no file behind. progress (any
// of the writers; may be null) counts the rows of every table as rank 0 writes them.
void export_tables(const std::string& path, const std::vector<const dist::ShardedEmbedding*>& tables,
                   const std::vector<std::string>& kinds, const std::string& dataset,
                   dist::Comm& comm, int64_t chunk_rows = 1 << 16,
                   const std::vector<DenseParam>& dense = {},
                   const std::vector<std::pair<std::string, std::string>>& attrs = {},
                   Progress* progress = nullptr);

// The same tables as text: PREFIX.<kind>.tsv, a header (the kind, then v1..vd), then one line per
// row (raw id, then the values). Both
// files appear together once complete, or neither does.
void export_tsv(const std::string& prefix, const std::vector<const dist::ShardedEmbedding*>& tables,
                const std::vector<std::string>& kinds, const std::string& dataset, dist::Comm& comm,
                int64_t chunk_rows = 1 << 16, Progress* progress = nullptr);

// The same tables as NumPy arrays: PREFIX.<kind>.npy (float32 [rows, dim], in id order) and
// PREFIX.<kind>_ids.npy (the raw ids, a unicode string array '<Un' that np.load reads without
// pickle), the names npy_paths gives. All the files appear together once complete, or none does;
// a raw id that is not UTF-8 is an error naming it.
// With faiss, the last table's vectors go to a FAISS index PREFIX.<kind>.faiss instead (FAISS id
// = dense id; io/faiss_index.h), its ids still to PREFIX.<kind>_ids.npy.
void export_npy(const std::string& prefix, const std::vector<const dist::ShardedEmbedding*>& tables,
                const std::vector<std::string>& kinds, const std::string& dataset, dist::Comm& comm,
                int64_t chunk_rows = 1 << 16, const FaissSpec* faiss = nullptr, Progress* progress = nullptr);
std::vector<std::string> npy_paths(const std::string& prefix, const std::vector<std::string>& kinds,
                                   bool faiss = false);

// Collective. Fills each table's local rows (and the dense parameters) from a parameters file;
// errors name the file and the mismatch, a value that is not finite names the tensor and row,
// and a dataset that fails its checksum is refused.
void load_tables(const std::string& path, const std::vector<dist::ShardedEmbedding*>& tables, dist::Comm& comm,
                 const std::vector<DenseParam>& dense = {});

}  // namespace shardrec::io
