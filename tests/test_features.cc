// Item features ("modalities"): spec parsing, the readers, mean fill, multi-hot side information,
// error messages, and per-rank loading that matches the item table's sharding.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <limits>

#include "base/error.h"
#include "dist/inproc_comm.h"
#include "fixtures.h"
#include "io/dataset.h"
#include "io/features.h"

namespace shardrec {
namespace {
namespace fs = std::filesystem;
using ::testing::HasSubstr;

std::string fresh(const std::string& name) { return testing::fresh_path("features", name); }

std::string write_text(const std::string& name, const std::string& text) {
  const std::string p = fresh(name);
  std::ofstream(p, std::ios::binary) << text;
  return p;
}

using testing::error_of;

// A minimal .npy writer (format 1.0, C order), as numpy.save would produce.
template <class T>
std::string write_npy(const std::string& name, const std::vector<T>& v, int64_t rows, int64_t cols,
                      const std::string& descr = sizeof(T) == 4 ? "<f4" : "<f8",
                      const std::string& shape = "") {
  std::string dict = "{'descr': '" + descr + "', 'fortran_order': False, 'shape': " +
                     (shape.empty() ? "(" + std::to_string(rows) + ", " + std::to_string(cols) + ")"
                                    : shape) +
                     ", }";
  while ((10 + dict.size() + 1) % 64) dict += ' ';
  dict += '\n';
  std::string bytes = "\x93NUMPY";
  bytes += '\x01';
  bytes += '\x00';
  bytes += static_cast<char>(dict.size() & 0xff);
  bytes += static_cast<char>(dict.size() >> 8);
  bytes += dict;
  bytes.append(reinterpret_cast<const char*>(v.data()), v.size() * sizeof(T));
  return write_text(name, bytes);
}

struct Built {
  std::vector<float> values;
  int64_t fill = -1, dim = -1;
};

Built build(const std::string& spec, const std::vector<std::string>& item_raw) {
  Built b;
  b.values = io::build_modality(io::parse_feature_spec(spec), item_raw, &b.fill, &b.dim);
  return b;
}

// Dataset items in an order unlike any feature file below.
const std::vector<std::string> kItems = {"i3", "i1", "i4", "i2"};

TEST(FeatureSpec, ParsesNamePathAndFormat) {
  auto s = io::parse_feature_spec("img=/data/img.npy");
  EXPECT_EQ(s.name, "img");
  EXPECT_EQ(s.path, "/data/img.npy");
  EXPECT_EQ(s.format, "npy");
  EXPECT_EQ(io::parse_feature_spec("t=a.TSV").format, "tsv");
  EXPECT_EQ(io::parse_feature_spec("t=a.hdf5").format, "h5");
  s = io::parse_feature_spec("t=dir.v2/vectors.txt:csv");
  EXPECT_EQ(s.path, "dir.v2/vectors.txt");
  EXPECT_EQ(s.format, "csv");
  EXPECT_EQ(io::parse_feature_spec("t=x.bin:hdf5").format, "h5");
  s = io::parse_feature_spec("genre=ml-100k.item:recbole:class");
  EXPECT_EQ(s.path, "ml-100k.item");
  EXPECT_EQ(s.format, "recbole");
  EXPECT_EQ(s.column, "class");
  EXPECT_EQ(s.describe(), "ml-100k.item:recbole:class");
  // A column may be named like a format.
  EXPECT_EQ(io::parse_feature_spec("g=a.item:recbole:csv").column, "csv");
  // ':' inside a path is kept when the suffix is not a format.
  EXPECT_EQ(io::parse_feature_spec("t=/mnt/a:b/x.csv").path, "/mnt/a:b/x.csv");
}

TEST(FeatureSpec, BadSyntaxIsExplained) {
  EXPECT_THAT(error_of([] { io::parse_feature_spec("img.npy"); }),
              HasSubstr("feature spec 'img.npy': expected NAME=PATH"));
  EXPECT_THAT(error_of([] { io::parse_feature_spec("=x.npy"); }), HasSubstr("modality name ''"));
  EXPECT_THAT(error_of([] { io::parse_feature_spec("a/b=x.npy"); }), HasSubstr("modality name 'a/b'"));
  EXPECT_THAT(error_of([] { io::parse_feature_spec("t=x.parquet"); }),
              HasSubstr("cannot tell the format of 'x.parquet'"));
  EXPECT_THAT(error_of([] { io::parse_feature_spec("t=x.bin:parquet"); }),
              HasSubstr("unknown format 'parquet'"));
  EXPECT_THAT(error_of([] { io::parse_feature_spec("g=a.item:recbole"); }),
              HasSubstr("needs a column"));
  EXPECT_THAT(error_of([] { io::parse_feature_spec("g=a.item:recbole:"); }),
              HasSubstr("needs a column"));
  EXPECT_THAT(error_of([] { io::parse_feature_spec("t=:csv"); }), HasSubstr("no file given"));
}

TEST(Features, CsvWithHeaderMatchesRawIdsAndFillsTheMean) {
  // i2 has no row: it gets the mean of the three given rows.
  const auto p = write_text("h.csv", "item,a,b\ni1,1,10\ni4, 4 ,40\r\n\ni3,7,70\n");
  auto b = build("f=" + p, kItems);
  EXPECT_EQ(b.dim, 2);
  EXPECT_EQ(b.fill, 1);
  EXPECT_EQ(b.values, (std::vector<float>{7, 70, 1, 10, 4, 40, 4, 40}));
}

TEST(Features, CsvWithoutHeaderAndTsv) {
  const auto csv = write_text("nh.csv", "\"i2\",0.5\ni1,-1e-3\ni3,2\ni4,3\n");
  auto b = build("f=" + csv, kItems);
  EXPECT_EQ(b.dim, 1);
  EXPECT_EQ(b.fill, 0);
  EXPECT_EQ(b.values, (std::vector<float>{2, -1e-3f, 3, 0.5f}));
  const auto tsv = write_text("v.tsv", "id\tx\ty\n");  // a header only
  EXPECT_THAT(error_of([&] { build("f=" + tsv, kItems); }), HasSubstr("empty file"));
  const auto tsv2 = write_text("v2.tsv", "id\tx\ty\ni4\t1\t2\ni2\t3\t4\n");
  b = build("f=" + tsv2, kItems);
  EXPECT_EQ(b.dim, 2);
  EXPECT_EQ(b.fill, 2);
  EXPECT_EQ(b.values, (std::vector<float>{2, 3, 2, 3, 1, 2, 3, 4}));
}

TEST(Features, NpyRowsAreIndexedByTheIntegerRawId) {
  const std::vector<std::string> items = {"2", "0", "07", "9"};  // 9: past the last row
  std::vector<float> v32(8 * 2);
  for (int r = 0; r < 8; ++r) v32[2 * r] = r, v32[2 * r + 1] = 100 + r;
  auto b = build("e=" + write_npy("f32.npy", v32, 8, 2), items);
  EXPECT_EQ(b.dim, 2);
  EXPECT_EQ(b.fill, 1);
  // Mean of the used rows 2, 0 and 7, not of all eight.
  EXPECT_EQ(b.values, (std::vector<float>{2, 102, 0, 100, 7, 107, 3, 103}));

  std::vector<double> v64 = {0.25, 1.5, 2.75, 4};
  b = build("e=" + write_npy("f64.npy", v64, 4, 1), {"3", "1"});
  EXPECT_EQ(b.fill, 0);
  EXPECT_EQ(b.values, (std::vector<float>{4, 1.5f}));

  // Big-endian float64, as numpy writes for dtype '>f8'.
  std::vector<double> be = {1.0, 2.0};
  for (auto& x : be) {
    auto* p = reinterpret_cast<unsigned char*>(&x);
    std::reverse(p, p + 8);
  }
  b = build("e=" + write_npy("be.npy", be, 2, 1, ">f8"), {"1", "0"});
  EXPECT_EQ(b.values, (std::vector<float>{2, 1}));
}

TEST(Features, NpyErrors) {
  std::vector<float> v = {1, 2, 3, 4};
  EXPECT_THAT(error_of([&] { build("e=" + write_npy("s.npy", v, 2, 2), {"0", "x7"}); }),
              HasSubstr("item 'x7' (dense id 1) is not a non-negative integer"));
  EXPECT_THAT(error_of([&] { build("e=" + write_npy("i.npy", v, 2, 2, "<i4"), {"0"}); }),
              HasSubstr("dtype '<i4' is not supported"));
  EXPECT_THAT(error_of([&] { build("e=" + write_npy("d1.npy", v, 4, 0, "<f4", "(4,)"), {"0"}); }),
              HasSubstr("expected a 2-D array [rows, dim], got shape (4,)"));
  EXPECT_THAT(error_of([&] { build("e=" + write_npy("z.npy", std::vector<float>{}, 0, 3), {"0"}); }),
              HasSubstr("z.npy: empty file"));
  EXPECT_THAT(error_of([&] { build("e=" + write_npy("t.npy", v, 3, 2), {"0"}); }),
              HasSubstr("t.npy: truncated"));
  v[3] = std::numeric_limits<float>::quiet_NaN();
  EXPECT_THAT(error_of([&] { build("e=" + write_npy("n.npy", v, 2, 2), {"0"}); }),
              HasSubstr("n.npy: row 1, column 1: value is NaN"));
  EXPECT_THAT(error_of([&] { build("e=" + write_text("bad.npy", "not numpy"), {"0"}); }),
              HasSubstr("bad.npy: not an .npy file"));
}

TEST(Features, Hdf5WithStringOrIntegerIds) {
  const std::string p = fresh("s.h5");
  {
    auto f = io::H5File::create(p);
    f.write_strings("/ids", {"i4", "i3", "i1"});
    f.create_dataset<double>("/values", 3, 2);
    const std::vector<double> v = {4, 40, 3, 30, 1, 10};
    f.write_rows<double>("/values", 0, v.data(), 3);
  }
  auto b = build("f=" + p, kItems);
  EXPECT_EQ(b.dim, 2);
  EXPECT_EQ(b.fill, 1);
  EXPECT_EQ(b.values, (std::vector<float>{3, 30, 1, 10, 4, 40, (4 + 3 + 1) / 3.f, (40 + 30 + 10) / 3.f}));

  const std::string q = fresh("int.h5");
  {
    auto f = io::H5File::create(q);
    f.create_dataset<int64_t>("/ids", 2);
    const int64_t ids[2] = {20, 10};
    f.write_rows<int64_t>("/ids", 0, ids, 2);
    f.create_dataset<float>("/values", 2, 1);
    const float v[2] = {2, 1};
    f.write_rows<float>("/values", 0, v, 2);
  }
  b = build("f=" + q + ":hdf5", {"10", "20"});
  EXPECT_EQ(b.values, (std::vector<float>{1, 2}));

  // ids and values of different lengths.
  const std::string r = fresh("mismatch.h5");
  {
    auto f = io::H5File::create(r);
    f.write_strings("/ids", {"i1", "i2"});
    f.create_dataset<float>("/values", 3, 1);
  }
  EXPECT_THAT(error_of([&] { build("f=" + r, kItems); }),
              HasSubstr("mismatch.h5: dataset ids has 2 entries but values has 3 rows"));
  const std::string nan = fresh("nan.h5");
  {
    auto f = io::H5File::create(nan);
    f.write_strings("/ids", {"i1", "i2"});
    f.create_dataset<float>("/values", 2, 2);
    const float v[4] = {0, 1, std::numeric_limits<float>::infinity(), 2};
    f.write_rows<float>("/values", 0, v, 2);
  }
  EXPECT_THAT(error_of([&] { build("f=" + nan, kItems); }),
              HasSubstr("nan.h5: row 1, column 0: value is infinite"));
  const std::string unknown = fresh("unknown.h5");
  {
    auto f = io::H5File::create(unknown);
    f.write_strings("/ids", {"i1", "i9"});
    f.create_dataset<float>("/values", 2, 1);
  }
  EXPECT_THAT(error_of([&] { build("f=" + unknown, kItems); }),
              HasSubstr("unknown.h5: row 1: raw item id 'i9' is not an item of the dataset"));
}

TEST(Features, TextErrorsNameFileLineAndColumn) {
  auto err = [](const std::string& name, const std::string& text) {
    const auto p = write_text(name, text);
    return error_of([&] { build("f=" + p, kItems); });
  };
  EXPECT_THAT(err("width.csv", "i1,1,2\ni2,3\n"),
              HasSubstr("width.csv:2: 1 values, expected 2 (as on line 1)"));
  EXPECT_THAT(err("width2.csv", "id,a\ni1,1\n\ni2,3,4\n"),
              HasSubstr("width2.csv:4: 2 values, expected 1 (as on line 2)"));
  EXPECT_THAT(err("nan.csv", "i1,1,2\ni2,3,nan\n"), HasSubstr("nan.csv:2: column 3: value 'nan' is NaN"));
  EXPECT_THAT(err("inf.tsv", "i1\t-inf\n"), HasSubstr("inf.tsv:1: column 2: value '-inf' is infinite"));
  EXPECT_THAT(err("big.csv", "i1,1e39\n"), HasSubstr("big.csv:1: column 2: value '1e39' does not fit in float32"));
  EXPECT_THAT(err("word.csv", "i1,1\ni2,abc\n"), HasSubstr("word.csv:2: column 2: value 'abc' is not a number"));
  EXPECT_THAT(err("unknown.csv", "i1,1\ni7,2\n"),
              HasSubstr("unknown.csv:2: raw item id 'i7' is not an item of the dataset"));
  EXPECT_THAT(err("dup.csv", "i1,1\ni2,2\ni1,3\n"),
              HasSubstr("dup.csv:3: raw item id 'i1' already had a row (line 1)"));
  EXPECT_THAT(err("onecol.csv", "i1\n"), HasSubstr("onecol.csv:1: expected a raw item id and at least one value"));
  EXPECT_THAT(err("empty.csv", ""), HasSubstr("empty.csv: empty file"));
  EXPECT_THAT(err("blank.csv", "\n  \n"), HasSubstr("blank.csv: empty file"));
  EXPECT_THAT(err("other_ids.csv", "x1,1\n"), HasSubstr("raw item id 'x1' is not an item"));
  EXPECT_THAT(error_of([] { build("f=/nonexistent/f.csv", kItems); }),
              HasSubstr("/nonexistent/f.csv: cannot be read"));
}

const char* kRecBoleItem =
    "item_id:token\tmovie_title:token_seq\trelease_year:token\tclass:token_seq\n"
    "i1\tToy Story\t1995\tAnimation Children's Comedy\n"
    "i3\tFour Rooms\t1995\tThriller\n"
    "i4\tNo Genre\t\t\n"
    "i2\tGet Shorty\t1996\tComedy  Drama Action\n";

TEST(Features, MultiHotFromRecBoleItemFile) {
  const auto p = write_text("ml.item", kRecBoleItem);
  std::vector<std::string> tokens;
  int64_t fill = -1, dim = -1;
  auto v = io::build_multi_hot(p, "class", kItems, &fill, &dim, &tokens);
  EXPECT_EQ(tokens, (std::vector<std::string>{"Action", "Animation", "Children's", "Comedy", "Drama",
                                              "Thriller"}));
  EXPECT_EQ(dim, 6);
  EXPECT_EQ(fill, 0);
  // Rows in dataset order i3, i1, i4, i2; i4 has an empty class (a row of zeros, not filled).
  EXPECT_EQ(v, (std::vector<float>{0, 0, 0, 0, 0, 1,  //
                                   0, 1, 1, 1, 0, 0,  //
                                   0, 0, 0, 0, 0, 0,  //
                                   1, 0, 0, 1, 1, 0}));
  // Per-token counts over the items.
  std::vector<float> count(dim, 0);
  for (size_t i = 0; i < v.size(); ++i) count[i % dim] += v[i];
  EXPECT_EQ(count, (std::vector<float>{1, 1, 1, 2, 1, 1}));

  // A token column is one-hot; the spec form goes through build_modality. i5 has no row.
  auto b = build("year=" + p + ":recbole:release_year", {"i1", "i2", "i3", "i4", "i5"});
  EXPECT_EQ(b.dim, 2);
  EXPECT_EQ(b.fill, 1);
  EXPECT_EQ(b.values, (std::vector<float>{1, 0, 0, 1, 1, 0, 0, 0, 0.5f, 0.25f}));
}

TEST(Features, MultiHotErrors) {
  const auto p = write_text("e.item", kRecBoleItem);
  auto err = [&](const std::string& path, const std::string& column) {
    return error_of([&] {
      int64_t fill, dim;
      io::build_multi_hot(path, column, kItems, &fill, &dim);
    });
  };
  EXPECT_THAT(err(p, "genre"), HasSubstr("e.item:1: column 'genre' not found in the header (fields: "
                                         "item_id, movie_title, release_year, class)"));
  EXPECT_THAT(err(write_text("f.item", "item_id:token\tprice:float\ni1\t2.5\n"), "price"),
              HasSubstr("f.item:1: column 'price' has type 'float'"));
  EXPECT_THAT(err(write_text("n.item", "id:token\tclass:token_seq\ni1\tA\n"), "class"),
              HasSubstr("n.item:1: no item_id field"));
  EXPECT_THAT(err(write_text("w.item", "item_id:token\tclass:token_seq\ni1\tA\ni2\n"), "class"),
              HasSubstr("w.item:3: 1 tab-separated fields, the header has 2"));
  EXPECT_THAT(err(write_text("u.item", "item_id:token\tclass:token_seq\ni1\tA\ni8\tB\n"), "class"),
              HasSubstr("u.item:3: raw item id 'i8' is not an item of the dataset"));
  EXPECT_THAT(err(write_text("h.item", "item_id:token\tclass:token_seq\n"), "class"),
              HasSubstr("h.item: empty file"));
  EXPECT_THAT(err(write_text("z.item", "item_id:token\tclass:token_seq\ni1\t\n"), "class"),
              HasSubstr("z.item: column 'class' has no tokens"));
}

// Writes a [rows, 3] modality whose row i is (i, 10 i, 100 i).
std::string write_numbered(const std::string& name, int64_t rows) {
  const std::string p = fresh(name);
  std::vector<float> v(rows * 3);
  for (int64_t i = 0; i < rows; ++i) v[3 * i] = i, v[3 * i + 1] = 10 * i, v[3 * i + 2] = 100 * i;
  auto f = io::H5File::create(p);
  io::write_modality(f, "num", v, rows, 3, 2, "test");
  return p;
}

TEST(Features, EachRankLoadsExactlyTheRowsItOwns) {
  const int64_t rows = 11;
  const std::string p = write_numbered("sharded.h5", rows);
  {
    auto f = io::H5File::open_read(p);
    EXPECT_EQ(f.read_attr<int64_t>("/features/num", "fill_count"), 2);
    EXPECT_EQ(f.read_attr_str("/features/num", "source"), "test");
    EXPECT_EQ(io::modality_names(f), (std::vector<std::string>{"num"}));
  }
  for (int world : {1, 2, 3, 4}) {
    for (const auto& kind : std::vector<std::string>{"mod", "range", "table:" + std::to_string(world - 1)}) {
      dist::run_ranks(world, [&](dist::Comm& comm) {
        const auto items = dist::Sharding::parse(kind, rows, world);
        auto f = io::H5File::open_read(p);
        int64_t dim = 0;
        const auto got = io::load_modality_rows(f, "num", items, comm.rank(), &dim);
        EXPECT_EQ(dim, 3);
        std::vector<float> want;
        for (int64_t l = 0; l < items.local_rows(comm.rank()); ++l) {
          const float g = static_cast<float>(items.global_id(comm.rank(), l));
          want.insert(want.end(), {g, 10 * g, 100 * g});
        }
        EXPECT_EQ(got, want) << kind << " world " << world << " rank " << comm.rank();
        // Together the ranks hold every row once.
        int64_t n = static_cast<int64_t>(got.size() / 3);
        comm.allreduce_sum(&n, 1);
        EXPECT_EQ(n, rows);
      });
    }
  }
  auto f = io::H5File::open_read(p);
  EXPECT_THAT(error_of([&] { io::load_modality_rows(f, "num", dist::Sharding::modulo(12, 2), 0, nullptr); }),
              HasSubstr("/features/num must be [num_items = 12, dim]"));
  EXPECT_THAT(error_of([&] { io::load_modality_rows(f, "text", dist::Sharding::modulo(11, 2), 0, nullptr); }),
              HasSubstr("no modality 'text'"));
}

TEST(Features, WriteChecksShapeNameAndDuplicates) {
  const std::string p = fresh("checks.h5");
  auto f = io::H5File::create(p);
  f.write_attr<int64_t>("/", "num_items", 4);
  const std::vector<float> v(8, 1.f);
  EXPECT_THAT(error_of([&] { io::write_modality(f, "m", v, 2, 4, 0, "t"); }),
              HasSubstr("2 rows, the dataset has 4 items"));
  EXPECT_THAT(error_of([&] { io::write_modality(f, "m", v, 4, 3, 0, "t"); }),
              HasSubstr("8 values do not make 4 rows of 3"));
  EXPECT_THAT(error_of([&] { io::write_modality(f, "a/b", v, 4, 2, 0, "t"); }),
              HasSubstr("modality 'a/b'"));
  io::write_modality(f, "m", v, 4, 2, 0, "t");
  EXPECT_THAT(error_of([&] { io::write_modality(f, "m", v, 4, 2, 0, "t"); }),
              HasSubstr("modality 'm' is already in the file"));
}

// Columns keep their names where the input has them: a csv header's value fields, a RecBole
// column's tokens (one-hot / multi-hot); a csv without a header has none.
TEST(Features, ColumnNamesAreKept) {
  const auto named = write_text("named.csv", "item,\"red\",blue\ni1,1,0\ni2,0,1\ni3,1,1\ni4,0,0\n");
  const auto bare = write_text("bare.csv", "i1,1,0\ni2,0,1\ni3,1,1\ni4,0,0\n");
  const auto item = write_text("c.item", kRecBoleItem);
  struct Case { std::string spec; std::vector<std::string> columns; };
  const std::vector<Case> cases = {
      {"color=" + named, {"red", "blue"}},
      {"plain=" + bare, {}},
      {"year=" + item + ":recbole:release_year", {"1995", "1996"}},
  };
  const std::string p = fresh("columns.h5");
  auto f = io::H5File::create(p);
  for (const Case& c : cases) {
    SCOPED_TRACE(c.spec);
    const auto spec = io::parse_feature_spec(c.spec);
    int64_t fill = 0, dim = 0;
    std::vector<std::string> columns{"stale"};
    const auto v = io::build_modality(spec, kItems, &fill, &dim, nullptr, &columns);
    EXPECT_EQ(columns, c.columns);
    io::write_modality(f, spec.name, v, 4, dim, fill, spec.describe(), columns);
    EXPECT_EQ(io::modality_columns(f, spec.name), c.columns);
  }
  // The names live outside /features, whose members are the modalities.
  EXPECT_EQ(io::modality_names(f), (std::vector<std::string>{"color", "plain", "year"}));
  const std::vector<float> v(8, 0);
  EXPECT_THAT(error_of([&] { io::write_modality(f, "m", v, 4, 2, 0, "t", {"only one"}); }),
              HasSubstr("1 column names for 2 columns"));
  EXPECT_THAT(error_of([&] { build("w=" + write_text("w.csv", "item,a\ni1,1,2\n"), kItems); }),
              HasSubstr("w.csv:1: the header names 1 value columns, the rows have 2"));
}

TEST(Features, WrittenInsideTheDatasetAtomically) {
  auto d = testing::planted_dataset(20, 9, 3, 7);
  // Item features in reverse item order, two items missing.
  std::string csv = "item,x,y\n";
  for (int i = 8; i >= 2; --i) csv += "i" + std::to_string(i) + "," + std::to_string(i) + ",1\n";
  const auto feat = write_text("planted.csv", csv);
  const std::string p = fresh("with_features.h5");
  io::write_dataset(d, p, "test", [&](io::H5File& f) {
    int64_t fill = 0, dim = 0;
    const auto spec = io::parse_feature_spec("vec=" + feat);
    const auto v = io::build_modality(spec, d.item_raw, &fill, &dim);
    EXPECT_EQ(fill, 2);
    io::write_modality(f, spec.name, v, d.num_items(), dim, fill, spec.describe());
  });
  {
    auto f = io::H5File::open_read(p);
    auto info = io::read_info(f);  // the optional group does not disturb the schema check
    EXPECT_EQ(info.num_items, 9);
    EXPECT_EQ(io::modality_names(f), (std::vector<std::string>{"vec"}));
    EXPECT_EQ(f.shape("/features/vec"), (std::vector<int64_t>{9, 2}));
    EXPECT_EQ(f.read_attr<int64_t>("/features/vec", "fill_count"), 2);
    EXPECT_EQ(f.read_attr_str("/features/vec", "source"), feat + ":csv");
    const auto v = f.read_all<float>("/features/vec");
    EXPECT_EQ(v[0], 5.f);  // i0: mean of 2..8
    EXPECT_EQ(v[2 * 7], 7.f);
    EXPECT_EQ(v[2 * 7 + 1], 1.f);
  }
  // A file without features is still a valid dataset with no modalities.
  const std::string plain = fresh("plain.h5");
  io::write_dataset(d, plain, "test");
  {
    auto f = io::H5File::open_read(plain);
    EXPECT_NO_THROW(io::read_info(f));
    EXPECT_TRUE(io::modality_names(f).empty());
  }
  // h5dump (when installed) shows the modality.
  if (std::system("h5dump --version >/dev/null 2>&1") == 0) {
    std::string out;
    if (FILE* pipe = popen(("h5dump -H -d /features/vec " + p).c_str(), "r")) {
      char buf[512];
      while (fgets(buf, sizeof buf, pipe)) out += buf;
      EXPECT_EQ(pclose(pipe), 0);
    }
    EXPECT_THAT(out, HasSubstr("DATASET \"/features/vec\""));
    EXPECT_THAT(out, HasSubstr("H5T_IEEE_F32LE"));
    EXPECT_THAT(out, HasSubstr("( 9, 2 )"));
    EXPECT_THAT(out, HasSubstr("ATTRIBUTE \"fill_count\""));
  }
  // A failing feature leaves neither the dataset nor its temporary file.
  const std::string never = fresh("never_features.h5");
  const auto bad = write_text("bad_feature.csv", "i1,1\ni1,2\n");
  EXPECT_THAT(error_of([&] {
                io::write_dataset(d, never, "test", [&](io::H5File& f) {
                  int64_t fill = 0, dim = 0;
                  const auto v = io::build_modality(io::parse_feature_spec("b=" + bad), d.item_raw,
                                                    &fill, &dim);
                  io::write_modality(f, "b", v, d.num_items(), dim, fill, "t");
                });
              }),
              HasSubstr("bad_feature.csv:2: raw item id 'i1' already had a row (line 1)"));
  EXPECT_FALSE(fs::exists(never));
  for (auto& e : fs::directory_iterator(fs::path(never).parent_path()))
    EXPECT_THAT(e.path().string(), ::testing::Not(HasSubstr("never_features.h5.tmp")));
}

}  // namespace
}  // namespace shardrec
