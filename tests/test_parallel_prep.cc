// The parallel prep (io/parallel_prep.h) against prepare() (io/prep.h): the same data, reports,
// errors and file bytes for 1 to 4 ranks, with files cut into many small pieces.
#include "io/parallel_prep.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <iterator>
#include <mutex>
#include <string>
#include <vector>

#include "dist/inproc_comm.h"
#include "io/dataset.h"
#include "io/input.h"
#include "io/parsers.h"
#include "io/spill.h"
#include "tests/fixtures.h"

namespace shardrec::io {
namespace {

using ::testing::HasSubstr;
using shardrec::testing::error_of;
using shardrec::testing::fresh_path;

std::string write_file(const std::string& name, const std::string& text) {
  const std::string p = fresh_path("parallel_prep", name);
  std::ofstream(p, std::ios::binary) << text;
  return p;
}

std::string read_bytes(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(f), {});
}

uint64_t lcg(uint64_t& s) {
  s = s * 6364136223846793005ULL + 1442695040888963407ULL;
  return s >> 33;
}

// A csv log with a header: user,item,"title",rating,timestamp. Some titles hold the separator, a
// doubled quote or a line break; ids repeat (dedup) and some users and items are rare (k-core).
std::string csv_log(uint64_t seed, int rows, bool string_items) {
  std::string s = "user,item,title,rating,time\n";
  for (int r = 0; r < rows; ++r) {
    const uint64_t u = lcg(seed) % 40, i = lcg(seed) % 60, t = lcg(seed) % 5;
    s += std::to_string(100 + u * u % 97) + ",";
    if (string_items) s += "it";
    s += std::to_string(string_items ? i : i * 3);
    s += t == 0 ? ",\"A, comma\"" : t == 1 ? ",\"line\nbreak\"" : t == 2 ? ",\"say \"\"hi\"\"\"" : ",plain";
    s += "," + std::to_string(1 + lcg(seed) % 5) + "," + std::to_string(1000 + lcg(seed) % 50000) + "\n";
  }
  return s;
}

void expect_same(const Interactions& a, const Interactions& b, const char* what) {
  EXPECT_EQ(a.user, b.user) << what;
  EXPECT_EQ(a.item, b.item) << what;
  EXPECT_EQ(a.rating, b.rating) << what;
  EXPECT_EQ(a.timestamp, b.timestamp) << what;
}

void expect_same(const PreparedDataset& a, const PreparedDataset& b) {
  EXPECT_EQ(a.user_raw, b.user_raw);
  EXPECT_EQ(a.item_raw, b.item_raw);
  expect_same(a.train, b.train, "train");
  expect_same(a.valid, b.valid, "valid");
  expect_same(a.test, b.test, "test");
  EXPECT_EQ(std::isnan(a.label_threshold), std::isnan(b.label_threshold));
}

void expect_same(const PrepReport& a, const PrepReport& b) {
  EXPECT_EQ(a.rows_read, b.rows_read);
  EXPECT_EQ(a.after_threshold, b.after_threshold);
  EXPECT_EQ(a.after_dedup, b.after_dedup);
  EXPECT_EQ(a.after_kcore, b.after_kcore);
  EXPECT_EQ(a.kcore_rounds, b.kcore_rounds);
  ASSERT_EQ(a.inputs.size(), b.inputs.size());
  for (size_t k = 0; k < a.inputs.size(); ++k) {
    EXPECT_EQ(a.inputs[k].path, b.inputs[k].path);
    EXPECT_EQ(a.inputs[k].split, b.inputs[k].split);
    EXPECT_EQ(a.inputs[k].bytes, b.inputs[k].bytes);
    EXPECT_EQ(a.inputs[k].hash, b.inputs[k].hash) << a.inputs[k].path;
    EXPECT_EQ(a.inputs[k].rows, b.inputs[k].rows);
    EXPECT_EQ(a.inputs[k].format, b.inputs[k].format);
  }
}

// prepare_parallel on `world` in-process ranks, gathered; also each rank's block of users.
// With `budget` bytes (0: none) the rows spill to files in a fresh directory, which is empty again after.
PreparedDataset run_parallel(int world, const PrepOptions& o, PrepReport* rep, uint64_t piece_bytes, uint64_t budget = 0) {
  PreparedDataset out;
  std::mutex m;
  PrepMemory memory;
  memory.budget_bytes = budget;
  if (budget) {
    memory.tmp_dir = fresh_path("parallel_prep", "spill");
    std::filesystem::create_directories(memory.tmp_dir);
  }
  dist::run_ranks(world, [&](dist::Comm& comm) {
    PrepReport r;
    const PreparedShard shard = prepare_parallel(comm, o, &r, piece_bytes, memory);
    for (int s = 0; s < 3; ++s)
      for (int64_t u : shard.split(s).user) {
        EXPECT_GE(u, shard.user_begin);
        EXPECT_LT(u, shard.user_begin + static_cast<int64_t>(shard.user_raw.size()));
      }
    PreparedDataset d = gather_shards(comm, shard);
    if (comm.rank() == 0) {
      std::lock_guard<std::mutex> lock(m);
      out = std::move(d);
      if (rep) *rep = r;
    }
  });
  if (budget) {
    EXPECT_TRUE(std::filesystem::is_empty(memory.tmp_dir)) << "spill files left in " << memory.tmp_dir;
  }
  return out;
}

PrepOptions csv_options(std::vector<std::string> inputs) {
  PrepOptions o;
  o.format = Format::Csv;
  o.header = true;
  o.user_column = "user";
  o.item_column = "item";
  o.rating_column = "rating";
  o.timestamp_column = "time";
  o.inputs = std::move(inputs);
  return o;
}

TEST(ParallelPrep, SameDataAsPrepareForAnyRanks) {
  const std::string a = write_file("a.csv", csv_log(1, 900, false));
  const std::string b = write_file("b.csv", csv_log(2, 700, true));
  // Tab-separated u.data and adjacency lists: other splittable formats.
  std::string udata, adj;
  for (uint64_t s = 3, r = 0; r < 500; ++r)
    udata += std::to_string(lcg(s) % 30) + "\t" + std::to_string(lcg(s) % 50) + "\t" + std::to_string(1 + lcg(s) % 5) +
             "\t" + std::to_string(lcg(s) % 999) + "\n";
  for (uint64_t s = 4, u = 0; u < 60; ++u) {
    adj += 'u';
    adj += std::to_string(u);
    for (uint64_t k = 0; k < 1 + lcg(s) % 9; ++k) {
      adj += ' ';
      adj += std::to_string(lcg(s) % 40);
    }
    adj += "\n";
  }
  const std::string ud = write_file("u.data", udata), ad = write_file("adj.txt", adj);

  std::vector<std::pair<std::string, PrepOptions>> cases;
  {
    PrepOptions o = csv_options({a, b});
    o.seed = 7;
    cases.emplace_back("ratio, two files", o);
    o.ratios = {0.7, 0.3};
    o.user_core = 3;
    o.item_core = 4;
    cases.emplace_back("two-way ratio with k-core", o);
    o = csv_options({a});
    o.split = SplitMode::LeaveOneOut;
    o.rating_threshold = 3;
    cases.emplace_back("loo with threshold", o);
    o = csv_options({a, b, a});
    o.split = SplitMode::Presplit;
    o.presplit_roles = {"train", "train", "test"};
    o.dedup = false;
    cases.emplace_back("presplit, no dedup", o);
    o = csv_options({b});
    o.label_threshold = 2;
    o.rating_range = std::make_pair(1.0, 5.0);
    cases.emplace_back("labels", o);
  }
  {
    PrepOptions o;
    o.format = Format::MlUdata;
    o.inputs = {ud};
    o.user_core = 2;
    cases.emplace_back("ml-udata", o);
    o = PrepOptions{};
    o.format = Format::Adjacency;
    o.inputs = {ad};
    cases.emplace_back("adjacency", o);
    o.format = Format::Auto;
    o.inputs = {ud, ud};
    o.split = SplitMode::Presplit;
    o.presplit_roles = {"train", "valid"};
    cases.emplace_back("detected u.data, presplit", o);
  }
  for (const auto& [name, o] : cases) {
    PrepReport want_rep;
    const PreparedDataset want = prepare(o, &want_rep);
    ASSERT_GT(want.train.size(), 0u) << name;
    for (int world = 1; world <= 4; ++world)
      for (uint64_t piece : {uint64_t{1} << 30, uint64_t{64}}) {
        SCOPED_TRACE(name + ", " + std::to_string(world) + " ranks, pieces of " + std::to_string(piece));
        PrepReport rep;
        expect_same(run_parallel(world, o, &rep, piece), want);
        expect_same(rep, want_rep);
      }
    // A budget of 2 KiB: pieces of about 200 bytes (many a rank), exchanges of a few rows a round,
    // buckets of a few users, every stage's rows in spill files.
    for (int world : {1, 3}) {
      SCOPED_TRACE(name + ", " + std::to_string(world) + " ranks, a budget of 2 KiB");
      PrepReport rep;
      expect_same(run_parallel(world, o, &rep, 64, 2048), want);
      expect_same(rep, want_rep);
    }
  }
}

TEST(ParallelPrep, NumericOrderOnceTheOnlyNonIntegerIdIsFiltered) {
  // "x9" is the only non-integer item id; k-core removes it, so items sort by value (10 < 9?
  // no: 9 < 10 by value, while "10" < "9" by bytes).
  std::string s;
  for (int u = 0; u < 12; ++u)
    for (int i : {9, 10, 100}) s += std::to_string(u) + "," + std::to_string(i) + "\n";
  s += "0,x9\n";
  const std::string f = write_file("num.csv", s);
  PrepOptions o;
  o.format = Format::Csv;
  o.inputs = {f};
  o.item_core = 2;
  const PreparedDataset want = prepare(o);
  ASSERT_EQ(want.item_raw, (std::vector<std::string>{"9", "10", "100"}));
  for (int world = 1; world <= 3; ++world) expect_same(run_parallel(world, o, nullptr, 8), want);
}

TEST(ParallelPrep, TheFirstErrorInInputOrderIsReported) {
  std::string good;
  for (int r = 0; r < 400; ++r) good += std::to_string(r % 17) + "," + std::to_string(r % 23) + ",3\n";
  std::string bad = good;
  bad.insert(bad.find('\n', bad.size() * 3 / 4) + 1, "5,6,notanumber\n");  // in the last rank's piece
  bad.insert(bad.find('\n', bad.size() / 2) + 1, "1,2,3,4\n");            // earlier: wrong field count
  const std::string g = write_file("good.csv", good), b = write_file("bad.csv", bad);
  const std::string e = write_file("empty.csv", "\n\n");
  for (const auto& inputs : {std::vector<std::string>{g, b}, std::vector<std::string>{e, b}, std::vector<std::string>{b, e}}) {
    PrepOptions o;
    o.format = Format::Csv;
    o.rating_column = "2";
    o.inputs = inputs;
    const std::string want = error_of([&] { prepare(o); });
    ASSERT_THAT(want, HasSubstr(inputs[0] == g ? "bad.csv:" : inputs[0] == e ? "empty.csv" : "bad.csv:"));
    for (int world = 1; world <= 4; ++world)
      EXPECT_EQ(error_of([&] { run_parallel(world, o, nullptr, 32); }), want) << world << " ranks";
  }
  // A rating outside the range, found by a later piece: the file's row number.
  PrepOptions o;
  o.format = Format::Csv;
  o.rating_column = "2";
  std::string ranged = good;
  ranged.insert(ranged.find('\n', ranged.size() * 2 / 3) + 1, "5,6,9\n");
  o.inputs = {write_file("ranged.csv", ranged)};
  o.rating_range = std::make_pair(1.0, 5.0);
  const std::string want = error_of([&] { prepare(o); });
  ASSERT_THAT(want, HasSubstr("data row"));
  for (int world = 1; world <= 4; ++world) EXPECT_EQ(error_of([&] { run_parallel(world, o, nullptr, 32); }), want);
  // With a budget: many pieces a rank, the row still counted within the file.
  for (int world : {1, 2}) EXPECT_EQ(error_of([&] { run_parallel(world, o, nullptr, 32, 1024); }), want) << world;
}

TEST(ParallelPrep, WritesTheBytesOfWriteDataset) {
  const std::string a = write_file("w.csv", csv_log(5, 1500, false));
  PrepOptions o = csv_options({a});
  o.ratios = {0.8, 0.1, 0.1};
  const std::string ref = fresh_path("parallel_prep", "ref.h5");
  write_dataset(prepare(o), ref, "test source");
  const std::string want = read_bytes(ref);
  ASSERT_GT(want.size(), 1000u);
  const std::string fp_want = read_info(H5File::open_read(ref)).fingerprint;
  for (int world = 1; world <= 4; ++world) {
    const std::string out = fresh_path("parallel_prep", "out" + std::to_string(world) + ".h5");
    std::vector<std::string> fps(world);
    dist::run_ranks(world, [&](dist::Comm& comm) {
      const PreparedShard shard = prepare_parallel(comm, o, nullptr, 100);
      fps[comm.rank()] = write_dataset_parallel(comm, shard, out, "test source", nullptr);
    });
    EXPECT_EQ(read_bytes(out), want) << world << " ranks";
    for (const auto& fp : fps) EXPECT_EQ(fp, fp_want);
  }
  // Spilled split rows are written the same.
  const std::string dir = fresh_path("parallel_prep", "wspill");
  std::filesystem::create_directories(dir);
  const std::string out = fresh_path("parallel_prep", "out_budget.h5");
  dist::run_ranks(2, [&](dist::Comm& comm) {
    PrepMemory memory{4096, dir};
    const PreparedShard shard = prepare_parallel(comm, o, nullptr, 100, memory);
    write_dataset_parallel(comm, shard, out, "test source", nullptr);
  });
  EXPECT_EQ(read_bytes(out), want) << "with a budget";
}

TEST(ParsePiece, OneRanksDictionariesCarryAcrossItsPieces) {
  const std::string text = "user,item\na,x\nb,y\nb,x\nc,z\na,y\n";
  const std::string f = write_file("pieces.csv", text);
  PrepOptions o = csv_options({f});
  o.rating_column = o.timestamp_column = "";
  const FileLayout l = file_layout(f, o);
  const uint64_t mid = text.find("b,x");
  IdDict users, items;
  const RawInteractions p0 = parse_piece(l, 0, mid, 1, &users, &items);
  const RawInteractions p1 = parse_piece(l, mid, text.size(), 4, &users, &items);
  EXPECT_TRUE(p0.user_ids.empty() && p1.user_ids.empty() && p1.item_ids.empty());  // ids live in the dictionaries
  EXPECT_EQ(users.names, (std::vector<std::string>{"a", "b", "c"}));
  EXPECT_EQ(items.names, (std::vector<std::string>{"x", "y", "z"}));
  EXPECT_EQ(p0.user, (std::vector<int64_t>{0, 1}));
  EXPECT_EQ(p1.user, (std::vector<int64_t>{1, 2, 0}));  // b and a keep their numbers from the first piece
  EXPECT_EQ(p1.item, (std::vector<int64_t>{0, 2, 1}));
  // Without dictionaries a piece numbers its own ids.
  const RawInteractions alone = parse_piece(l, mid, text.size(), 4);
  EXPECT_EQ(alone.user_ids, (std::vector<std::string>{"b", "c", "a"}));
  EXPECT_EQ(alone.user, (std::vector<int64_t>{0, 1, 2}));
}

TEST(BlockHash, FourBlocksInStepHashAsOneAtATime) {
  // 9 blocks and 5 bytes: two groups of four in step, a whole block and a short one alone.
  const size_t B = BlockHash::kBlock;
  std::string data(9 * B + 5, '\0');
  uint64_t x = 88172645463325252ull;
  for (char& c : data) {
    x ^= x << 13, x ^= x >> 7, x ^= x << 17;
    c = static_cast<char>(x);
  }
  std::vector<uint64_t> got;
  BlockHash::hash_blocks(data.data(), data.size(), got);
  ASSERT_EQ(got.size(), 10u);
  for (size_t b = 0; b < got.size(); ++b) {
    Fnv64 f;
    f.add(data.data() + b * B, std::min(B, data.size() - b * B));
    EXPECT_EQ(got[b], f.h) << b;
  }
  BlockHash whole;
  whole.add(data.data(), data.size());
  EXPECT_EQ(BlockHash::combine(got.data(), got.size()), whole.value());
}

TEST(IdDict, IntegerAndTextIdsNumberedFirstSeenFirst) {
  IdDict d;
  // Plain integers go by value, anything else by text: "7" and "007" (or "+7", " 7") are
  // different raw ids, as the text says; 2^32 - 1 is past the integer table and still an id.
  const std::vector<std::string> seq = {"7",   "007", "x",  "0",  "7",  "+7", "00", "0",
                                        "4294967294", "4294967295", "x", "007"};
  std::vector<int64_t> got;
  for (const auto& s : seq) got.push_back(d.intern(s));
  EXPECT_EQ(got, (std::vector<int64_t>{0, 1, 2, 3, 0, 4, 5, 3, 6, 7, 2, 1}));
  EXPECT_EQ(d.names, (std::vector<std::string>{"7", "007", "x", "0", "+7", "00", "4294967294", "4294967295"}));
  EXPECT_EQ(d.intern("4294967295"), 7);  // found again, by its text
  EXPECT_EQ(d.intern("4294967294"), 6);  // by its value
  // Past the table's growth (it starts at 1024 slots): every id keeps its number.
  IdDict big;
  for (int round = 0; round < 2; ++round)
    for (int64_t v = 0; v < 100000; ++v)
      ASSERT_EQ(big.intern(std::to_string(v * 1000003 % 999983)), v) << v;
  EXPECT_EQ(big.names.size(), 100000u);
  EXPECT_EQ(big.names[5], std::to_string(5 * 1000003 % 999983));
}

TEST(Spill, MemoryAndFileHoldTheSameRecords) {
  const std::string dir = fresh_path("parallel_prep", "spilltest");
  std::filesystem::create_directories(dir);
  for (const std::string& d : {std::string(), dir}) {
    Spill<uint64_t> s(d);
    EXPECT_EQ(s.on_disk(), !d.empty());
    // Regions written out of order, across the 8 MiB memory blocks.
    const size_t n = (size_t{3} << 20) + 5;
    std::vector<uint64_t> a(n / 2), b(n - n / 2);
    for (size_t i = 0; i < n; ++i) (i < a.size() ? a[i] : b[i - a.size()]) = i * 2654435761u;
    s.write(a.size(), b.data(), b.size());
    s.write(0, a.data(), a.size());
    ASSERT_EQ(s.size(), n);
    std::vector<uint64_t> got;
    s.read(0, n, got);
    for (size_t i = 0; i < n; i += 4099) ASSERT_EQ(got[i], i * 2654435761u) << i;
    s.read(n - 3, 3, got);
    EXPECT_EQ(got[2], (n - 1) * 2654435761u);
    // Released blocks give their memory or disk space back; the rest still reads.
    const uint64_t held = s.held_bytes();
    EXPECT_GE(held, n * sizeof(uint64_t));
    s.release_before(size_t{2} << 20);  // the first 16 MiB: two blocks
    EXPECT_LE(s.held_bytes(), held - (uint64_t{16} << 20)) << (d.empty() ? "memory" : "file");
    s.read(size_t{2} << 20, 5, got);
    EXPECT_EQ(got[4], ((size_t{2} << 20) + 4) * 2654435761u);
    s.truncate(10);
    const uint64_t x = 7;
    s.append(&x, 1);
    EXPECT_EQ(s.size(), 11u);
    s.read(10, 1, got);
    EXPECT_EQ(got[0], 7u);
    EXPECT_TRUE(std::filesystem::is_empty(dir));  // the file has no name
  }
  EXPECT_THAT(error_of([&] { Spill<int> s(dir + "/missing"); }), HasSubstr("missing"));
}

}  // namespace
}  // namespace shardrec::io
