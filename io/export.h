// Trained tables as an HDF5 file (docs/data-format.md, "Parameters"): for each table
// /<name>/embedding (rows x dim, float32, in id order) and /<name>/raw_id (the dataset's raw ids).
// Written by rank 0 in chunks of rows gathered from their owners, so the file is byte-identical
// whatever the number of ranks; loaded back by every rank reading only its own rows.
#pragma once
#include <string>
#include <vector>

#include "dist/comm.h"
#include "dist/sharded_embedding.h"

namespace shardrec::io {

inline constexpr const char* kParamsFormat = "shardrec-params";

// dataset: the dataset file whose /mapping gives raw ids (raw id = dense id when it has none).
// kinds[t] names the id space of tables[t] ("user" or "item").
void export_tables(const std::string& path, const std::vector<const dist::ShardedEmbedding*>& tables,
                   const std::vector<std::string>& kinds, const std::string& dataset,
                   dist::Comm& comm, int64_t chunk_rows = 1 << 16);

// Fills each table's local rows from a parameters file; errors name the file and the mismatch.
void load_tables(const std::string& path, const std::vector<dist::ShardedEmbedding*>& tables);

}  // namespace shardrec::io
