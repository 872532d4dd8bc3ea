#include "io/features.h"

#include <algorithm>
#include <cctype>
#include <cfloat>
#include <charconv>
#include <cmath>
#include <cstring>
#include <fstream>
#include <map>
#include <string_view>
#include <unordered_map>

#include "base/error.h"
#include "io/text.h"

namespace shardrec::io {
namespace {

using Lock = std::lock_guard<std::recursive_mutex>;
using Fields = std::vector<std::string_view>;
using text::fail_at;
using text::for_each_line;
using text::show;

void split(std::string_view line, char sep, Fields& out) {
  text::split(line, std::string_view(&sep, 1), out);
}

std::string_view trim(std::string_view s) {
  auto space = [](char c) { return c == ' ' || c == '\t' || c == '\r' || c == '\n'; };
  while (!s.empty() && space(s.front())) s.remove_prefix(1);
  while (!s.empty() && space(s.back())) s.remove_suffix(1);
  return s;
}

std::string_view unquote(std::string_view s) {
  if (s.size() >= 2 && s.front() == '"' && s.back() == '"') return s.substr(1, s.size() - 2);
  return s;
}

std::string read_text(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) fail(path + ": cannot be read");
  std::string text((std::istreambuf_iterator<char>(in)), {});
  if (text.compare(0, 3, "\xEF\xBB\xBF") == 0) text.erase(0, 3);  // UTF-8 byte-order mark
  if (trim(text).empty()) fail(path + ": empty file");
  return text;
}

bool parse_double(std::string_view s, double* v) {
  const auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), *v);
  return !s.empty() && ec == std::errc() && end == s.data() + s.size();
}

// Why a value cannot be stored as float32, or nullptr when it can.
const char* unfit(double v) {
  if (std::isnan(v)) return "is NaN";
  if (std::isinf(v)) return "is infinite";
  if (std::fabs(v) > FLT_MAX) return "does not fit in float32";
  return nullptr;
}

bool valid_name(const std::string& n) {
  if (n.empty() || n[0] == '.') return false;
  for (char c : n)
    if (!std::isalnum(static_cast<unsigned char>(c)) && c != '_' && c != '-' && c != '.')
      return false;
  return true;
}

// Collects rows keyed by raw item id into the dense [items, dim] matrix, then mean-fills the
// items that got none.
class Assembler {
 public:
  Assembler(const std::string& path, const std::vector<std::string>& item_raw,
            UnknownIds unknown = UnknownIds::kError, int64_t* skipped = nullptr)
      : path_(path), n_(static_cast<int64_t>(item_raw.size())), where_(n_, -1), unknown_(unknown),
        skipped_(skipped) {
    if (skipped_) *skipped_ = 0;
    index_.reserve(item_raw.size());
    for (size_t d = 0; d < item_raw.size(); ++d) index_.emplace(item_raw[d], static_cast<int64_t>(d));
  }
  int64_t dim() const { return dim_; }
  void set_dim(int64_t dim) {
    dim_ = dim;
    values_.assign(static_cast<size_t>(n_ * dim), 0.f);
  }
  // Dense id of a raw id, or -1.
  int64_t find(std::string_view raw) const {
    auto it = index_.find(raw);
    return it == index_.end() ? -1 : it->second;
  }
  // Row storage of the item with raw id `raw`, first seen at `where` (a line or a row, described
  // by `where_text` in messages).
  float* claim(std::string_view raw, int64_t where, const std::string& where_text,
               const char* unit) {
    const int64_t d = find(raw);
    if (d < 0 && unknown_ == UnknownIds::kSkip) {
      // The row is read into a scratch row and dropped.
      if (skipped_) ++*skipped_;
      scratch_.assign(dim_, 0.0f);
      return scratch_.data();
    }
    if (d < 0)
      fail(where_text + ": raw item id " + show(raw) +
           " is not an item of the dataset (not in the interactions, or removed by filtering)");
    return claim(d, raw, where, where_text, unit);
  }
  float* claim(int64_t d, std::string_view raw, int64_t where, const std::string& where_text,
               const char* unit) {
    if (where_[d] >= 0)
      fail(where_text + ": raw item id " + show(raw) + " already had a row (" + unit + " " +
           std::to_string(where_[d]) + ")");
    where_[d] = where;
    return values_.data() + d * dim_;
  }
  std::vector<float> finish(int64_t* fill_count, int64_t* dim) {
    std::vector<double> mean(dim_, 0.0);
    int64_t have = 0;
    for (int64_t d = 0; d < n_; ++d) {
      if (where_[d] < 0) continue;
      ++have;
      for (int64_t c = 0; c < dim_; ++c) mean[c] += values_[d * dim_ + c];
    }
    // With no match at all there is no mean, and the ids are almost surely of another kind.
    if (have == 0)
      fail(path_ + ": none of the " + std::to_string(n_) +
           " items of the dataset has a row (are the ids raw item ids?)");
    for (auto& m : mean) m /= static_cast<double>(have);
    for (int64_t d = 0; d < n_; ++d)
      if (where_[d] < 0)
        for (int64_t c = 0; c < dim_; ++c) values_[d * dim_ + c] = static_cast<float>(mean[c]);
    if (fill_count) *fill_count = n_ - have;
    if (dim) *dim = dim_;
    return std::move(values_);
  }

 private:
  std::string path_;
  int64_t n_, dim_ = 0;
  std::unordered_map<std::string_view, int64_t> index_;  // views into the caller's item_raw
  std::vector<int64_t> where_;                           // line or row of each item's row; -1 none
  std::vector<float> values_;
  UnknownIds unknown_;
  int64_t* skipped_;
  std::vector<float> scratch_;
};

// ---- csv / tsv ----------------------------------------------------------------------------------

std::vector<float> read_delimited(const std::string& path, char sep,
                                  const std::vector<std::string>& item_raw, int64_t* fill_count,
                                  int64_t* dim, UnknownIds unknown, int64_t* skipped,
                                  std::vector<std::string>* columns) {
  const std::string text = read_text(path);
  Assembler a(path, item_raw, unknown, skipped);
  std::vector<std::string> names;  // the header's value fields
  Fields f;
  bool first = true;
  int64_t width_line = 0;
  for_each_line(text, [&](std::string_view line, int64_t n) {
    split(line, sep, f);
    for (auto& x : f) x = trim(x);
    double v = 0;
    if (first) {
      first = false;
      // A header names the columns; data has a number after the id.
      if (f.size() >= 2 && !parse_double(f[1], &v)) {
        for (size_t c = 1; c < f.size(); ++c) names.emplace_back(unquote(f[c]));
        return;
      }
    }
    if (f.size() < 2)
      fail_at(path, n, "expected a raw item id and at least one value, found " +
                           std::to_string(f.size()) + " field");
    if (a.dim() == 0) {
      a.set_dim(static_cast<int64_t>(f.size()) - 1);
      width_line = n;
    } else if (static_cast<int64_t>(f.size()) - 1 != a.dim()) {
      fail_at(path, n, std::to_string(f.size() - 1) + " values, expected " +
                           std::to_string(a.dim()) + " (as on line " + std::to_string(width_line) +
                           ")");
    }
    float* row = a.claim(unquote(f[0]), n, path + ":" + std::to_string(n), "line");
    for (size_t c = 1; c < f.size(); ++c) {
      const std::string where = "column " + std::to_string(c + 1) + ": value " + show(f[c]);
      if (!parse_double(f[c], &v)) fail_at(path, n, where + " is not a number");
      if (const char* why = unfit(v)) fail_at(path, n, where + " " + why);
      row[c - 1] = static_cast<float>(v);
    }
  });
  if (a.dim() == 0) fail(path + ": empty file (no rows after the header)");
  if (!names.empty() && static_cast<int64_t>(names.size()) != a.dim())
    fail_at(path, 1, "the header names " + std::to_string(names.size()) + " value columns, the rows have " +
                         std::to_string(a.dim()));
  if (columns) *columns = std::move(names);
  return a.finish(fill_count, dim);
}

// ---- npy ----------------------------------------------------------------------------------------

struct NpyHeader {
  int itemsize = 0;      // 4 or 8
  bool swap = false;     // stored big-endian
  int64_t rows = 0, cols = 0;
  size_t data_offset = 0;
};

// The value after `'key':` in the header's Python dict literal.
std::string_view npy_value(std::string_view h, const std::string& key, const std::string& path) {
  size_t k = h.find("'" + key + "'");
  if (k == std::string_view::npos) k = h.find("\"" + key + "\"");
  if (k == std::string_view::npos) fail(path + ": npy header has no '" + key + "' entry");
  size_t colon = h.find(':', k + key.size() + 2);
  if (colon == std::string_view::npos) fail(path + ": npy header is malformed near '" + key + "'");
  return trim(h.substr(colon + 1));
}

NpyHeader parse_npy_header(std::ifstream& in, const std::string& path) {
  char magic[8];
  if (!in.read(magic, 8) || std::memcmp(magic, "\x93NUMPY", 6) != 0)
    fail(path + ": not an .npy file (bad magic string)");
  const int major = static_cast<unsigned char>(magic[6]);
  size_t len = 0;
  unsigned char b[4] = {0, 0, 0, 0};
  const int len_bytes = major == 1 ? 2 : 4;
  if (major < 1 || major > 3) fail(path + ": npy format version " + std::to_string(major) + " is not supported");
  if (!in.read(reinterpret_cast<char*>(b), len_bytes)) fail(path + ": truncated npy header");
  for (int i = len_bytes - 1; i >= 0; --i) len = len * 256 + b[i];
  std::string header(len, '\0');
  if (!in.read(header.data(), static_cast<std::streamsize>(len))) fail(path + ": truncated npy header");
  NpyHeader h;
  h.data_offset = 8 + len_bytes + len;

  std::string_view descr = npy_value(header, "descr", path);
  if (descr.empty() || (descr[0] != '\'' && descr[0] != '"'))
    fail(path + ": npy dtype " + show(descr.substr(0, descr.find(','))) +
         " is not supported (float32 or float64 expected)");
  descr = descr.substr(1, descr.find(descr[0], 1) - 1);
  if (descr == "<f4" || descr == "=f4") h.itemsize = 4;
  else if (descr == "<f8" || descr == "=f8") h.itemsize = 8;
  else if (descr == ">f4") h.itemsize = 4, h.swap = true;
  else if (descr == ">f8") h.itemsize = 8, h.swap = true;
  else fail(path + ": npy dtype " + show(descr) + " is not supported (float32 or float64 expected)");

  if (npy_value(header, "fortran_order", path).substr(0, 4) == "True")
    fail(path + ": Fortran-order arrays are not supported (save np.ascontiguousarray(x))");

  std::string_view shape = npy_value(header, "shape", path);
  const size_t close = shape.find(')');
  if (shape.empty() || shape[0] != '(' || close == std::string_view::npos)
    fail(path + ": npy header has a malformed shape");
  Fields dims;
  split(shape.substr(1, close - 1), ',', dims);
  std::vector<int64_t> d;
  for (auto x : dims) {
    x = trim(x);
    if (x.empty()) continue;  // the trailing comma of a 1-tuple
    int64_t v = 0;
    const auto [end, ec] = std::from_chars(x.data(), x.data() + x.size(), v);
    if (ec != std::errc() || end != x.data() + x.size() || v < 0)
      fail(path + ": npy header has a malformed shape " + show(shape.substr(0, close + 1)));
    d.push_back(v);
  }
  if (d.size() != 2)
    fail(path + ": expected a 2-D array [rows, dim], got shape " + std::string(shape.substr(0, close + 1)));
  h.rows = d[0];
  h.cols = d[1];
  if (h.rows == 0 || h.cols == 0) fail(path + ": empty file (array of shape " + std::string(shape.substr(0, close + 1)) + ")");
  return h;
}

std::vector<float> read_npy(const std::string& path, const std::vector<std::string>& item_raw,
                            int64_t* fill_count, int64_t* dim) {
  std::ifstream in(path, std::ios::binary);
  if (!in) fail(path + ": cannot be read");
  const NpyHeader h = parse_npy_header(in, path);
  in.seekg(0, std::ios::end);
  const auto size = static_cast<uint64_t>(in.tellg());
  const uint64_t need = h.data_offset + static_cast<uint64_t>(h.rows * h.cols) * h.itemsize;
  if (size < need)
    fail(path + ": truncated: the header promises " + std::to_string(h.rows) + " x " +
         std::to_string(h.cols) + " values, the file is " + std::to_string(size) + " bytes");

  // Row r is the item whose raw id is the integer r; items are visited in row order so the file
  // is read once, front to back.
  std::vector<std::pair<int64_t, int64_t>> wanted;  // (row, dense id)
  for (size_t d = 0; d < item_raw.size(); ++d) {
    const std::string& raw = item_raw[d];
    int64_t r = -1;
    const auto [end, ec] = std::from_chars(raw.data(), raw.data() + raw.size(), r);
    if (raw.empty() || ec != std::errc() || end != raw.data() + raw.size() || r < 0)
      fail(path + ": .npy rows are indexed by integer raw item ids, but item " + show(raw) +
           " (dense id " + std::to_string(d) +
           ") is not a non-negative integer; give the features as csv, tsv or h5 with an id column");
    if (r < h.rows) wanted.emplace_back(r, static_cast<int64_t>(d));
  }
  std::sort(wanted.begin(), wanted.end());

  Assembler a(path, item_raw);
  a.set_dim(h.cols);
  in.seekg(static_cast<std::streamoff>(h.data_offset));
  std::vector<unsigned char> buf(h.cols * h.itemsize);
  std::vector<float> row(h.cols);
  size_t next = 0;
  // Every row is checked, used or not: a NaN anywhere means a broken export.
  for (int64_t r = 0; r < h.rows; ++r) {
    in.read(reinterpret_cast<char*>(buf.data()), static_cast<std::streamsize>(buf.size()));
    if (!in) fail(path + ": read error at row " + std::to_string(r));
    for (int64_t c = 0; c < h.cols; ++c) {
      unsigned char* p = buf.data() + c * h.itemsize;
      if (h.swap) std::reverse(p, p + h.itemsize);
      double v;
      if (h.itemsize == 4) {
        float x;
        std::memcpy(&x, p, 4);
        v = x;
      } else {
        std::memcpy(&v, p, 8);
      }
      if (const char* why = unfit(v))
        fail(path + ": row " + std::to_string(r) + ", column " + std::to_string(c) + ": value " + why);
      row[c] = static_cast<float>(v);
    }
    for (; next < wanted.size() && wanted[next].first == r; ++next) {
      const int64_t d = wanted[next].second;
      float* dst = a.claim(d, item_raw[d], r, path + ": row " + std::to_string(r), "row");
      std::copy(row.begin(), row.end(), dst);
    }
  }
  return a.finish(fill_count, dim);
}

// ---- h5 -----------------------------------------------------------------------------------------

// `ids` as strings: variable or fixed length, or integers.
std::vector<std::string> read_h5_ids(const H5File& f, int64_t n) {
  Lock lk(hdf5_mutex());
  H5Handle ds(H5Dopen2(f.id(), "/ids", H5P_DEFAULT), H5Dclose);
  if (!ds.valid()) fail(f.path() + ": cannot open dataset ids");
  H5Handle t(H5Dget_type(ds.get()), H5Tclose);
  const H5T_class_t cls = H5Tget_class(t.get());
  std::vector<std::string> ids;
  if (cls == H5T_INTEGER) {
    for (auto v : f.read_all<int64_t>("/ids")) ids.push_back(std::to_string(v));
    return ids;
  }
  if (cls != H5T_STRING) fail(f.path() + ": dataset ids must hold strings or integers");
  if (H5Tis_variable_str(t.get()) > 0) return f.read_strings("/ids", 0, n);
  // Fixed-length strings (h5py's default for numpy 'S' arrays): padded with NULs or spaces.
  const size_t len = H5Tget_size(t.get());
  std::string buf(len * n, '\0');
  if (n > 0 && H5Dread(ds.get(), t.get(), H5S_ALL, H5S_ALL, H5P_DEFAULT, buf.data()) < 0)
    fail(f.path() + ": cannot read dataset ids");
  for (int64_t i = 0; i < n; ++i) {
    std::string s = buf.substr(i * len, len);
    while (!s.empty() && (s.back() == '\0' || s.back() == ' ')) s.pop_back();
    ids.push_back(std::move(s));
  }
  return ids;
}

std::vector<float> read_h5(const std::string& path, const std::vector<std::string>& item_raw,
                           int64_t* fill_count, int64_t* dim, UnknownIds unknown, int64_t* skipped) {
  const H5File f = H5File::open_read(path);
  if (!f.exists("/ids") || !f.exists("/values"))
    fail(path + ": expected datasets 'ids' [n] and 'values' [n, dim]");
  const auto id_shape = f.shape("/ids");
  const auto shape = f.shape("/values");
  if (id_shape.size() != 1) fail(path + ": dataset ids must be 1-D");
  if (shape.size() != 2)
    fail(path + ": dataset values must be 2-D [n, dim], it has " + std::to_string(shape.size()) +
         " dimensions");
  if (shape[0] != id_shape[0])
    fail(path + ": dataset ids has " + std::to_string(id_shape[0]) + " entries but values has " +
         std::to_string(shape[0]) + " rows");
  if (shape[0] == 0 || shape[1] == 0) fail(path + ": empty file (values has no rows or no columns)");
  const std::vector<std::string> ids = read_h5_ids(f, id_shape[0]);
  const std::vector<double> values = f.read_all<double>("/values");
  Assembler a(path, item_raw, unknown, skipped);
  a.set_dim(shape[1]);
  for (int64_t r = 0; r < shape[0]; ++r) {
    const std::string where = path + ": row " + std::to_string(r);
    for (int64_t c = 0; c < shape[1]; ++c)
      if (const char* why = unfit(values[r * shape[1] + c]))
        fail(where + ", column " + std::to_string(c) + ": value " + why);
    float* dst = a.claim(ids[r], r, where, "row");
    for (int64_t c = 0; c < shape[1]; ++c) dst[c] = static_cast<float>(values[r * shape[1] + c]);
  }
  return a.finish(fill_count, dim);
}

bool has_root_attr(const H5File& f, const char* name) {
  Lock lk(hdf5_mutex());
  return H5Aexists(f.id(), name) > 0;
}

herr_t collect_name(hid_t, const char* name, const H5L_info_t*, void* out) {
  static_cast<std::vector<std::string>*>(out)->emplace_back(name);
  return 0;
}

}  // namespace

std::string FeatureSpec::describe() const {
  return path + ":" + format + (column.empty() ? "" : ":" + column);
}

FeatureSpec parse_feature_spec(const std::string& text) {
  auto bad = [&](const std::string& why) -> void { fail("feature spec " + show(text) + ": " + why); };
  const std::string usage = "expected NAME=PATH, NAME=PATH:FORMAT or NAME=PATH:recbole:COLUMN";
  const size_t eq = text.find('=');
  if (eq == std::string::npos) bad(usage);
  FeatureSpec s;
  s.name = text.substr(0, eq);
  if (!valid_name(s.name))
    bad("modality name " + show(s.name) +
        " must be non-empty and made of letters, digits, '_', '-' and '.' (not first)");
  std::string rest = text.substr(eq + 1);
  auto known = [](const std::string& f) {
    return f == "npy" || f == "csv" || f == "tsv" || f == "h5" || f == "hdf5";
  };
  // A suffix counts as a format only when it reads like one, so paths containing ':' still work.
  const size_t c = rest.rfind(':');
  if (c != std::string::npos) {
    const std::string tail = rest.substr(c + 1);
    const size_t c2 = c == 0 ? std::string::npos : rest.rfind(':', c - 1);
    const std::string mid = c2 == std::string::npos ? "" : rest.substr(c2 + 1, c - c2 - 1);
    if (mid == "recbole") {
      s.format = "recbole";
      s.column = tail;
      s.path = rest.substr(0, c2);
      if (s.column.empty()) bad("the recbole format needs a column: NAME=PATH:recbole:COLUMN");
    } else if (tail == "recbole") {
      bad("the recbole format needs a column: NAME=PATH:recbole:COLUMN");
    } else if (known(tail)) {
      s.format = tail == "hdf5" ? "h5" : tail;
      s.path = rest.substr(0, c);
    } else if (!tail.empty() && tail.find('/') == std::string::npos &&
               tail.find('.') == std::string::npos) {
      bad("unknown format " + show(tail) + " (expected npy, csv, tsv, h5, hdf5 or recbole:COLUMN)");
    }
  }
  if (s.format.empty()) {
    s.path = rest;
    const size_t dot = rest.rfind('.');
    std::string ext = dot == std::string::npos || rest.find('/', dot) != std::string::npos
                          ? ""
                          : rest.substr(dot + 1);
    std::transform(ext.begin(), ext.end(), ext.begin(), [](unsigned char ch) { return std::tolower(ch); });
    if (!known(ext))
      bad("cannot tell the format of " + show(rest) +
          " from its extension; append :npy, :csv, :tsv, :h5 or :recbole:COLUMN");
    s.format = ext == "hdf5" ? "h5" : ext;
  }
  if (s.path.empty()) bad("no file given after '='");
  return s;
}

std::vector<float> build_modality(const FeatureSpec& spec, const std::vector<std::string>& item_raw,
                                  int64_t* fill_count, int64_t* dim, int64_t* skipped,
                                  std::vector<std::string>* columns) {
  if (item_raw.empty()) fail("modality " + spec.name + ": the dataset has no items");
  if (skipped) *skipped = 0;
  if (columns) columns->clear();
  const UnknownIds u = spec.unknown;
  if (spec.format == "csv") return read_delimited(spec.path, ',', item_raw, fill_count, dim, u, skipped, columns);
  if (spec.format == "tsv") return read_delimited(spec.path, '\t', item_raw, fill_count, dim, u, skipped, columns);
  if (spec.format == "npy") return read_npy(spec.path, item_raw, fill_count, dim);  // rows by id: none unknown
  if (spec.format == "h5" || spec.format == "hdf5") return read_h5(spec.path, item_raw, fill_count, dim, u, skipped);
  if (spec.format == "recbole")
    return build_multi_hot(spec.path, spec.column, item_raw, fill_count, dim, columns, u, skipped);
  fail("modality " + spec.name + ": unknown format " + show(spec.format));
}

std::vector<float> build_multi_hot(const std::string& path, const std::string& column,
                                   const std::vector<std::string>& item_raw, int64_t* fill_count,
                                   int64_t* dim, std::vector<std::string>* tokens, UnknownIds unknown,
                                   int64_t* skipped) {
  const std::string text = read_text(path);
  Fields f, parts;
  size_t n_fields = 0;
  int id_col = -1, col = -1;
  bool seq = false;
  // Rows as token ids in first-seen order; renumbered to sorted order once all are known.
  std::map<std::string, int64_t> vocab;
  std::vector<std::string> seen;
  struct Row {
    std::string raw;
    int64_t line;
    std::vector<int64_t> tok;
  };
  std::vector<Row> rows;
  bool header = true;
  for_each_line(text, [&](std::string_view line, int64_t n) {
    split(line, '\t', f);
    if (header) {
      header = false;
      std::string names;
      for (size_t i = 0; i < f.size(); ++i) {
        const std::string_view field = trim(f[i]);
        const size_t colon = field.find(':');
        if (colon == std::string_view::npos)
          fail_at(path, n, "header field " + show(field) +
                               " has no ':type' (expected a RecBole header like item_id:token)");
        const std::string_view name = field.substr(0, colon), type = field.substr(colon + 1);
        names += (i ? ", " : "") + std::string(name);
        if (name == "item_id") id_col = static_cast<int>(i);
        if (name == column) {
          if (type != "token" && type != "token_seq")
            fail_at(path, n, "column " + show(column) + " has type " + show(type) +
                                 "; only token and token_seq columns become one-hot / multi-hot");
          col = static_cast<int>(i);
          seq = type == "token_seq";
        }
      }
      if (id_col < 0) fail_at(path, n, "no item_id field in the header (fields: " + names + ")");
      if (col < 0) fail_at(path, n, "column " + show(column) + " not found in the header (fields: " + names + ")");
      n_fields = f.size();
      return;
    }
    if (f.size() != n_fields)
      fail_at(path, n, std::to_string(f.size()) + " tab-separated fields, the header has " +
                           std::to_string(n_fields));
    Row r{std::string(trim(f[id_col])), n, {}};
    parts.clear();
    const std::string_view cell = trim(f[col]);
    if (seq) {
      for (size_t i = 0; i < cell.size();) {
        while (i < cell.size() && cell[i] == ' ') ++i;
        const size_t start = i;
        while (i < cell.size() && cell[i] != ' ') ++i;
        if (i > start) parts.push_back(cell.substr(start, i - start));
      }
    } else if (!cell.empty()) {
      parts.push_back(cell);
    }
    for (auto t : parts) {
      auto [it, added] = vocab.emplace(std::string(t), static_cast<int64_t>(seen.size()));
      if (added) seen.emplace_back(t);
      r.tok.push_back(it->second);
    }
    rows.push_back(std::move(r));
  });
  if (rows.empty()) fail(path + ": empty file (no rows after the header)");
  if (vocab.empty()) fail(path + ": column " + show(column) + " has no tokens in any row");

  std::vector<int64_t> rank(seen.size());  // first-seen id -> sorted position
  int64_t k = 0;
  for (auto& [tok, id] : vocab) rank[id] = k++;
  Assembler a(path, item_raw, unknown, skipped);
  a.set_dim(static_cast<int64_t>(vocab.size()));
  for (const Row& r : rows) {
    float* dst = a.claim(r.raw, r.line, path + ":" + std::to_string(r.line), "line");
    for (auto t : r.tok) dst[rank[t]] = 1.f;
  }
  if (tokens) {
    tokens->clear();
    for (auto& [tok, id] : vocab) tokens->push_back(tok);
  }
  return a.finish(fill_count, dim);
}

void write_modality(H5File& f, const std::string& name, const std::vector<float>& values,
                    int64_t rows, int64_t dim, int64_t fill_count, const std::string& source,
                    const std::vector<std::string>& columns) {
  const std::string what = f.path() + ": modality " + show(name);
  if (!valid_name(name)) fail(what + ": the name may only hold letters, digits, '_', '-' and '.'");
  if (rows <= 0 || dim <= 0 || static_cast<int64_t>(values.size()) != rows * dim)
    fail(what + ": " + std::to_string(values.size()) + " values do not make " +
         std::to_string(rows) + " rows of " + std::to_string(dim));
  if (has_root_attr(f, "num_items") && f.read_attr<int64_t>("/", "num_items") != rows)
    fail(what + ": " + std::to_string(rows) + " rows, the dataset has " +
         std::to_string(f.read_attr<int64_t>("/", "num_items")) + " items");
  if (!f.exists("/features")) f.create_group("/features");
  const std::string ds = "/features/" + name;
  if (f.exists(ds)) fail(what + " is already in the file");
  if (!columns.empty() && static_cast<int64_t>(columns.size()) != dim)
    fail(what + ": " + std::to_string(columns.size()) + " column names for " + std::to_string(dim) + " columns");
  f.create_dataset<float>(ds, rows, dim);
  f.write_rows<float>(ds, 0, values.data(), rows);
  f.write_attr<int64_t>(ds, "fill_count", fill_count);
  f.write_attr_str(ds, "source", source);
  // Names in their own group: /features holds only the modalities' matrices.
  if (!columns.empty()) {
    if (!f.exists("/feature_columns")) f.create_group("/feature_columns");
    f.write_strings("/feature_columns/" + name, columns);
  }
}

std::vector<std::string> modality_columns(const H5File& f, const std::string& name) {
  const std::string ds = "/feature_columns/" + name;
  return f.exists(ds) ? f.read_strings(ds, 0, f.shape(ds).at(0)) : std::vector<std::string>{};
}

std::vector<std::string> modality_names(const H5File& f) {
  std::vector<std::string> names;
  if (!f.exists("/features")) return names;
  Lock lk(hdf5_mutex());
  H5Handle g(H5Gopen2(f.id(), "/features", H5P_DEFAULT), H5Gclose);
  if (!g.valid()) fail(f.path() + ": cannot open group /features");
  hsize_t idx = 0;
  if (H5Literate(g.get(), H5_INDEX_NAME, H5_ITER_INC, &idx, collect_name, &names) < 0)
    fail(f.path() + ": cannot list group /features");
  return names;
}

std::vector<float> load_modality_rows(const H5File& f, const std::string& name,
                                      const dist::Sharding& items, int rank, int64_t* dim) {
  const std::string ds = "/features/" + name;
  if (!f.exists(ds))
    fail(f.path() + ": no modality " + show(name) + " (dataset " + ds + " is missing)");
  const auto shape = f.shape(ds);
  if (shape.size() != 2 || shape[0] != items.rows())
    fail(f.path() + ": dataset " + ds + " must be [num_items = " + std::to_string(items.rows()) +
         ", dim]");
  const int64_t d = shape[1];
  const int64_t local = items.local_rows(rank);
  std::vector<float> out(static_cast<size_t>(local * d));
  if (local > 0) {
    switch (items.kind()) {
      case dist::Sharding::Kind::kModulo:
        f.read_rows_strided<float>(ds, items.global_id(rank, 0), items.world(), local, out.data());
        break;
      case dist::Sharding::Kind::kRange:
      case dist::Sharding::Kind::kTable:
        f.read_rows<float>(ds, items.global_id(rank, 0), local, out.data());
        break;
    }
  }
  if (dim) *dim = d;
  return out;
}

}  // namespace shardrec::io
