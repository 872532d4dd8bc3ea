// Item features ("modalities"): dense float matrices with one row per dense item id, stored in the
// dataset as /features/<name> (schema in docs/data-format.md). `shardrec prep --features` builds
// them from side files whose rows are keyed by raw item id; training reads only the rows of the
// items a rank owns, so a modality is sharded exactly like the item embedding table.
//
// Every error is a shardrec::Error naming the file and, where there is one, the line (text files,
// 1-based) or the row (arrays, 0-based), the column and the offending raw id or value.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "dist/sharding.h"
#include "io/hdf5_util.h"

namespace shardrec::io {

// One --features value: `NAME=PATH`, `NAME=PATH:FORMAT` or `NAME=PATH:recbole:COLUMN`.
// Formats: "npy", "csv", "tsv", "h5" (alias "hdf5"), "recbole". Without one the format comes from
// the extension: .npy, .csv, .tsv, .h5/.hdf5 (a RecBole file always needs ":recbole:COLUMN").
// What to do with a feature row whose raw item id is not an item of the dataset (for example an
// item that k-core filtering removed): stop with an error naming the row, or skip and count it.
enum class UnknownIds { kError, kSkip };

struct FeatureSpec {
  std::string name, path, format;
  UnknownIds unknown = UnknownIds::kError;
  std::string column;  // recbole: the token / token_seq column to encode
  // "PATH:FORMAT[:COLUMN]": stored as the modality's `source` attribute.
  std::string describe() const;
};

FeatureSpec parse_feature_spec(const std::string& text);

// The modality for the dataset's items (item_raw[d] = raw id of dense item d), row-major
// [item_raw.size(), *dim]. Rows are matched through raw ids:
//   csv / tsv: first column = raw item id, the others = values; a first line whose second field
//              is not a number is a header and skipped.
//   h5:        datasets `ids` (strings or integers, [n]) and `values` (floats, [n, dim]).
//   npy:       a 2-D float32/float64 C-order array; row r belongs to the item whose raw id is the
//              integer r (so every raw item id must be a non-negative integer; "07" is row 7).
//              Rows that no item of the dataset uses are ignored.
//   recbole:   see build_multi_hot.
// An item without a row gets the column mean of the rows that were matched; *fill_count says
// how many. A row whose raw id is not an item of the dataset is an error (csv, tsv, h5, recbole),
// as are NaN/Inf values, rows of different widths, duplicate ids and an empty file.
// skipped (when given) receives the number of rows skipped under UnknownIds::kSkip.
// columns (when given) receives the names of the dim columns where the input has them (a csv /
// tsv header's value fields, a RecBole column's tokens), else stays empty.
std::vector<float> build_modality(const FeatureSpec& spec, const std::vector<std::string>& item_raw,
                                  int64_t* fill_count, int64_t* dim, int64_t* skipped = nullptr,
                                  std::vector<std::string>* columns = nullptr);

// Categorical side information from a RecBole atomic .item file (tab separated, typed header such
// as `item_id:token<TAB>class:token_seq`, ids in the `item_id` field): a token_seq column (tokens
// separated by spaces) becomes multi-hot, a token column one-hot, one column per distinct token in
// byte order (*tokens, when given, receives them). Missing items get the mean, as above.
std::vector<float> build_multi_hot(const std::string& path, const std::string& column,
                                   const std::vector<std::string>& item_raw, int64_t* fill_count,
                                   int64_t* dim, std::vector<std::string>* tokens = nullptr,
                                   UnknownIds unknown = UnknownIds::kError, int64_t* skipped = nullptr);

// Writes /features/<name> (float32 [rows, dim]) with attributes fill_count and source, creating
// the group when needed, and the column names (when given: dim of them) as the strings
// /feature_columns/<name>. When the file has a num_items root attribute, rows must equal it.
void write_modality(H5File& f, const std::string& name, const std::vector<float>& values,
                    int64_t rows, int64_t dim, int64_t fill_count, const std::string& source,
                    const std::vector<std::string>& columns = {});

// The column names of a modality (empty when the file has none for it).
std::vector<std::string> modality_columns(const H5File& f, const std::string& name);

// Names of the modalities in the file (empty when it has no /features group), in byte order.
std::vector<std::string> modality_names(const H5File& f);

// This rank's rows of /features/<name>, in local order (row l = item items.global_id(rank, l)),
// read without touching other ranks' rows: a strided selection for mod sharding, one slab for
// range, everything on the owner for table.
std::vector<float> load_modality_rows(const H5File& f, const std::string& name,
                                      const dist::Sharding& items, int rank, int64_t* dim);

}  // namespace shardrec::io
