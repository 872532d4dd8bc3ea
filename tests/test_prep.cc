#include "io/prep.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <stdlib.h>

#include <algorithm>
#include <array>
#include <filesystem>
#include <fstream>
#include <map>
#include <set>
#include <string>
#include <tuple>
#include <vector>

#include "base/error.h"

namespace shardrec::io {
namespace {

namespace fs = std::filesystem;
using ::testing::AllOf;
using ::testing::ElementsAre;
using ::testing::HasSubstr;

#ifdef SHARDREC_TEST_TMP
constexpr const char* kTmpBase = SHARDREC_TEST_TMP;
#else
constexpr const char* kTmpBase = "/tmp";
#endif

// A fresh directory per test, removed afterwards.
class TempDir {
 public:
  TempDir() {
    fs::create_directories(kTmpBase);
    std::string tmpl = (fs::path(kTmpBase) / "shardrec_prep_XXXXXX").string();
    if (!mkdtemp(tmpl.data())) throw std::runtime_error("mkdtemp failed in " + tmpl);
    dir_ = tmpl;
  }
  ~TempDir() {
    std::error_code ec;
    fs::remove_all(dir_, ec);
  }
  std::string write(const std::string& name, const std::string& content) const {
    const std::string path = (dir_ / name).string();
    std::ofstream(path, std::ios::binary) << content;
    return path;
  }

 private:
  fs::path dir_;
};

template <class F>
std::string error_of(F&& f) {
  try {
    f();
  } catch (const Error& e) {
    return e.what();
  }
  ADD_FAILURE() << "expected a shardrec::Error";
  return "";
}

// csv `user,item,rating,timestamp`, whole dataset kept as train.
PrepOptions csv_options(const std::vector<std::string>& inputs, SplitMode split) {
  PrepOptions o;
  o.format = Format::Csv;
  o.rating_column = "2";
  o.timestamp_column = "3";
  o.inputs = inputs;
  o.split = split;
  return o;
}

using Row = std::tuple<std::string, std::string>;
std::vector<Row> raw_rows(const PreparedDataset& d, const Interactions& s) {
  std::vector<Row> out;
  for (size_t r = 0; r < s.size(); ++r)
    out.emplace_back(d.user_raw.at(s.user[r]), d.item_raw.at(s.item[r]));
  return out;
}

void expect_sorted_by_user(const Interactions& s) {
  EXPECT_TRUE(std::is_sorted(s.user.begin(), s.user.end()));
}

TEST(SplitMode, Names) {
  EXPECT_EQ(parse_split_mode("ratio"), SplitMode::Ratio);
  EXPECT_EQ(parse_split_mode("ro"), SplitMode::Ratio);
  EXPECT_EQ(parse_split_mode("loo"), SplitMode::LeaveOneOut);
  EXPECT_EQ(parse_split_mode("presplit"), SplitMode::Presplit);
  for (SplitMode m : {SplitMode::Ratio, SplitMode::LeaveOneOut, SplitMode::Presplit})
    EXPECT_EQ(parse_split_mode(split_mode_name(m)), m);
  EXPECT_THAT(error_of([] { parse_split_mode("random"); }), HasSubstr("'random'"));
}

TEST(Prep, RemapNumericOrderWhenAllIdsAreIntegers) {
  TempDir dir;
  const std::string f = dir.write("d.csv", "10,b,1,1\n9,a10,1,1\n100,a9,1,1\n-3,b,1,1\n07,b,1,1\n7,b,1,1\n");
  const PreparedDataset d = prepare(csv_options({f}, SplitMode::Presplit));
  EXPECT_THAT(d.user_raw, ElementsAre("-3", "07", "7", "9", "10", "100"));  // "07" ties "7": bytes
  EXPECT_THAT(d.item_raw, ElementsAre("a10", "a9", "b"));                   // byte order
  EXPECT_EQ(raw_rows(d, d.train),
            (std::vector<Row>{{"-3", "b"}, {"07", "b"}, {"7", "b"}, {"9", "a10"}, {"10", "b"},
                              {"100", "a9"}}));
  EXPECT_TRUE(d.valid.size() == 0 && d.test.size() == 0);
  EXPECT_EQ(d.train.rating.size(), d.train.size());
  EXPECT_EQ(d.train.timestamp.size(), d.train.size());
}

TEST(Prep, RemapByteOrderWhenAnyIdIsNotAnInteger) {
  TempDir dir;
  const std::string f = dir.write("d.csv", "10,1,1,1\n9,2,1,1\nx,3,1,1\n1e3,4,1,1\n");
  const PreparedDataset d = prepare(csv_options({f}, SplitMode::Presplit));
  EXPECT_THAT(d.user_raw, ElementsAre("10", "1e3", "9", "x"));
  EXPECT_THAT(d.item_raw, ElementsAre("1", "2", "3", "4"));
}

TEST(Prep, KCoreIteratesToAFixedPoint) {
  // Items c, d, e and user u4 fail first; dropping u3-d leaves u3 with one row, dropped next.
  TempDir dir;
  const std::string f = dir.write("k.csv",
                                  "u1,a,1,1\nu1,b,1,1\nu1,c,1,1\nu2,a,1,1\nu2,b,1,1\n"
                                  "u3,a,1,1\nu3,d,1,1\nu4,e,1,1\n");
  PrepOptions o = csv_options({f}, SplitMode::Presplit);
  o.user_core = 2;
  o.item_core = 2;
  PrepReport rep;
  const PreparedDataset d = prepare(o, &rep);
  EXPECT_THAT(d.user_raw, ElementsAre("u1", "u2"));
  EXPECT_THAT(d.item_raw, ElementsAre("a", "b"));
  EXPECT_EQ(raw_rows(d, d.train),
            (std::vector<Row>{{"u1", "a"}, {"u1", "b"}, {"u2", "a"}, {"u2", "b"}}));
  EXPECT_EQ(rep.rows_read, 8);
  EXPECT_EQ(rep.after_kcore, 4);
  EXPECT_EQ(rep.kcore_rounds, 2);

  // Users only: u1 (3 rows) survives alone.
  o.user_core = 3;
  o.item_core = 0;
  const PreparedDataset users_only = prepare(o);
  EXPECT_THAT(users_only.user_raw, ElementsAre("u1"));
  EXPECT_THAT(users_only.item_raw, ElementsAre("a", "b", "c"));

  // Asking for more than anyone has leaves nothing: error names the file and the filter.
  o.user_core = 4;
  EXPECT_THAT(error_of([&] { prepare(o); }),
              AllOf(HasSubstr(f), HasSubstr("k-core"), HasSubstr("user_core=4")));
}

TEST(Prep, RatingThresholdKeepsAtLeast) {
  TempDir dir;
  const std::string f = dir.write("t.csv", "1,a,3.5,1\n1,b,4,1\n2,a,5,1\n2,c,1,1\n3,c,2,1\n");
  PrepOptions o = csv_options({f}, SplitMode::Presplit);
  o.rating_threshold = 4;
  const PreparedDataset d = prepare(o);
  EXPECT_EQ(raw_rows(d, d.train), (std::vector<Row>{{"1", "b"}, {"2", "a"}}));
  EXPECT_EQ(d.train.rating, (std::vector<float>{4, 5}));
  EXPECT_THAT(d.user_raw, ElementsAre("1", "2"));  // user 3 and item c are gone entirely
  EXPECT_THAT(d.item_raw, ElementsAre("a", "b"));

  o.rating_threshold = 6;
  EXPECT_THAT(error_of([&] { prepare(o); }),
              AllOf(HasSubstr(f), HasSubstr("no rows left after the rating threshold"),
                    HasSubstr(">= 6")));
}

TEST(Prep, ThresholdWithoutRatingColumnIsAnError) {
  TempDir dir;
  const std::string adj = dir.write("g.adj", "1 2 3\n");
  PrepOptions o;
  o.format = Format::Adjacency;
  o.inputs = {adj};
  o.split = SplitMode::Presplit;
  o.rating_threshold = 1;
  EXPECT_THAT(error_of([&] { prepare(o); }),
              AllOf(HasSubstr(adj), HasSubstr("rating threshold needs a rating column")));
  const std::string csv = dir.write("g.csv", "1,2\n");
  o.format = Format::Csv;
  o.inputs = {csv};
  EXPECT_THAT(error_of([&] { prepare(o); }),
              AllOf(HasSubstr(csv), HasSubstr("rating column")));
}

TEST(Prep, DedupKeepsFirstOccurrence) {
  TempDir dir;
  const std::string f = dir.write("d.csv", "1,a,1,10\n1,b,2,20\n1,a,3,30\n2,a,4,40\n");
  PrepOptions o = csv_options({f}, SplitMode::Presplit);
  PreparedDataset d = prepare(o);
  EXPECT_EQ(raw_rows(d, d.train), (std::vector<Row>{{"1", "a"}, {"1", "b"}, {"2", "a"}}));
  EXPECT_EQ(d.train.rating, (std::vector<float>{1, 2, 4}));
  o.dedup = false;
  d = prepare(o);
  EXPECT_EQ(d.train.size(), 4u);
  EXPECT_EQ(d.train.rating, (std::vector<float>{1, 2, 3, 4}));
}

TEST(Prep, AdjacencyHasNoRatingsOrTimestamps) {
  TempDir dir;
  PrepOptions o;
  o.format = Format::Adjacency;
  o.inputs = {dir.write("g.adj", "2 5 6\n1 6\n")};
  o.split = SplitMode::Presplit;
  const PreparedDataset d = prepare(o);
  EXPECT_EQ(raw_rows(d, d.train), (std::vector<Row>{{"1", "6"}, {"2", "5"}, {"2", "6"}}));
  EXPECT_TRUE(d.train.rating.empty());
  EXPECT_TRUE(d.train.timestamp.empty());
}

// Users u0.. with the given row counts; item j of user u is "i<u>_<j>", timestamps ascend.
std::string ratio_fixture(const std::vector<int>& counts) {
  std::string text;
  int t = 0;
  for (size_t u = 0; u < counts.size(); ++u)
    for (int j = 0; j < counts[u]; ++j)
      text.append("u").append(std::to_string(u)).append(",i").append(std::to_string(u)).append("_")
          .append(std::to_string(j)).append(",1,").append(std::to_string(t++)).append("\n");
  return text;
}

TEST(Prep, RatioSplitCountsFollowRecBole) {
  TempDir dir;
  // n -> (train, valid, test) with {0.8, 0.1, 0.1}.
  const std::vector<int> counts = {10, 2, 1, 5, 20, 3};
  const std::vector<std::array<size_t, 3>> expected = {
      {8, 1, 1}, {1, 0, 1}, {1, 0, 0}, {3, 1, 1}, {16, 2, 2}, {1, 1, 1}};
  PrepOptions o = csv_options({dir.write("r.csv", ratio_fixture(counts))}, SplitMode::Ratio);
  o.seed = 7;
  const PreparedDataset d = prepare(o);
  ASSERT_EQ(d.num_users(), 6);
  for (const Interactions* s : {&d.train, &d.valid, &d.test}) {
    expect_sorted_by_user(*s);
    // Within a user, rows keep input order (timestamps ascend in the input).
    for (size_t r = 1; r < s->size(); ++r) {
      if (s->user[r] == s->user[r - 1]) {
        EXPECT_LT(s->timestamp[r - 1], s->timestamp[r]);
      }
    }
  }
  for (size_t u = 0; u < counts.size(); ++u) {
    SCOPED_TRACE("user u" + std::to_string(u));
    const auto dense = std::find(d.user_raw.begin(), d.user_raw.end(), "u" + std::to_string(u)) -
                       d.user_raw.begin();
    const auto n = [&](const Interactions& s) {
      return static_cast<size_t>(std::count(s.user.begin(), s.user.end(), dense));
    };
    EXPECT_EQ(n(d.train), expected[u][0]);
    EXPECT_EQ(n(d.valid), expected[u][1]);
    EXPECT_EQ(n(d.test), expected[u][2]);
  }

  // Two ratios mean train and test.
  o.ratios = {0.8, 0.2};
  const PreparedDataset two = prepare(o);
  EXPECT_EQ(two.valid.size(), 0u);
  EXPECT_EQ(two.train.size() + two.test.size(), 41u);
}

TEST(Prep, RatioSplitIsDeterministicDisjointAndCovering) {
  TempDir dir;
  const std::vector<int> counts(40, 25);
  PrepOptions o = csv_options({dir.write("r.csv", ratio_fixture(counts))}, SplitMode::Ratio);
  o.seed = 1;
  const PreparedDataset a = prepare(o);
  const PreparedDataset b = prepare(o);
  o.seed = 2;
  const PreparedDataset c = prepare(o);

  EXPECT_EQ(raw_rows(a, a.train), raw_rows(b, b.train));
  EXPECT_EQ(raw_rows(a, a.valid), raw_rows(b, b.valid));
  EXPECT_EQ(raw_rows(a, a.test), raw_rows(b, b.test));
  EXPECT_NE(raw_rows(a, a.test), raw_rows(c, c.test));
  EXPECT_EQ(a.test.size(), c.test.size());  // same counts, different rows

  for (const PreparedDataset* d : {&a, &c}) {
    std::set<Row> all;
    size_t total = 0;
    for (const Interactions* s : {&d->train, &d->valid, &d->test}) {
      const auto rows = raw_rows(*d, *s);
      all.insert(rows.begin(), rows.end());
      total += rows.size();
    }
    EXPECT_EQ(total, 1000u);
    EXPECT_EQ(all.size(), 1000u);  // disjoint and, with 1000 distinct input rows, covering
    EXPECT_EQ(d->train.size(), 40u * 21);  // n = 25: floor(2.5) = 2 each for valid and test
    EXPECT_EQ(d->valid.size(), 40u * 2);
    EXPECT_EQ(d->test.size(), 40u * 2);
  }
}

TEST(Prep, LeaveOneOutTakesTheLatest) {
  TempDir dir;
  // u1: timestamps out of order, ties at 50 broken by input order; u2: two rows; u3: one row.
  const std::string f = dir.write("l.csv",
                                  "u1,a,1,50\nu2,x,1,5\nu1,b,1,10\nu1,c,1,70\nu1,d,1,50\n"
                                  "u3,z,1,1\nu2,y,1,3\nu1,e,1,20\n");
  PrepOptions o = csv_options({f}, SplitMode::LeaveOneOut);
  const PreparedDataset d = prepare(o);
  EXPECT_EQ(raw_rows(d, d.train), (std::vector<Row>{{"u1", "b"}, {"u1", "e"}, {"u1", "a"},
                                                    {"u2", "y"}, {"u3", "z"}}));
  EXPECT_EQ(d.train.timestamp, (std::vector<double>{10, 20, 50, 3, 1}));  // chronological
  EXPECT_EQ(raw_rows(d, d.valid), (std::vector<Row>{{"u1", "d"}}));
  EXPECT_EQ(raw_rows(d, d.test), (std::vector<Row>{{"u1", "c"}, {"u2", "x"}}));
  for (const Interactions* s : {&d.train, &d.valid, &d.test}) expect_sorted_by_user(*s);

  const std::string no_time = dir.write("n.csv", "u1,a,1\n");
  o.inputs = {no_time};
  o.timestamp_column.clear();
  EXPECT_THAT(error_of([&] { prepare(o); }),
              AllOf(HasSubstr(no_time), HasSubstr("leave-one-out split needs a timestamp")));
}

TEST(Prep, PresplitKeepsEachFilesRows) {
  TempDir dir;
  const std::string train = dir.write("train.csv", "2,a,1,1\n1,b,1,2\n2,c,1,3\n1,a,1,4\n");
  const std::string test = dir.write("test.csv", "1,new_item,1,5\n3,a,1,6\n");
  PrepOptions o = csv_options({train, "", test}, SplitMode::Presplit);
  const PreparedDataset d = prepare(o);
  EXPECT_THAT(d.user_raw, ElementsAre("1", "2", "3"));  // ids from every split
  EXPECT_THAT(d.item_raw, ElementsAre("a", "b", "c", "new_item"));
  EXPECT_EQ(raw_rows(d, d.train),
            (std::vector<Row>{{"1", "b"}, {"1", "a"}, {"2", "a"}, {"2", "c"}}));
  EXPECT_EQ(d.train.timestamp, (std::vector<double>{2, 4, 1, 3}));
  EXPECT_EQ(d.valid.size(), 0u);
  EXPECT_EQ(raw_rows(d, d.test), (std::vector<Row>{{"1", "new_item"}, {"3", "a"}}));
  EXPECT_EQ(d.test.rating.size(), 2u);
}

// Two files: which is which must be said (the second used to become validation silently).
TEST(Prep, PresplitRolesAreExplicit) {
  TempDir dir;
  const std::string train = dir.write("train.csv", "1,a,1,1\n2,b,1,2\n");
  const std::string test = dir.write("test.csv", "1,b,1,3\n");
  PrepOptions o = csv_options({train, test}, SplitMode::Presplit);
  EXPECT_THAT(error_of([&] { prepare(o); }),
              AllOf(HasSubstr("option --presplit"), HasSubstr("train,test")));
  o.presplit_roles = {"train", "test"};
  PreparedDataset d = prepare(o);
  EXPECT_EQ(d.valid.size(), 0u);
  EXPECT_EQ(raw_rows(d, d.test), (std::vector<Row>{{"1", "b"}}));
  o.inputs = {test, train};  // any order
  o.presplit_roles = {"test", "train"};
  d = prepare(o);
  EXPECT_EQ(d.train.size(), 2u);
  EXPECT_EQ(d.test.size(), 1u);
  o.presplit_roles = {"train", "valid"};
  o.inputs = {train, test};
  EXPECT_EQ(prepare(o).valid.size(), 1u);
  for (auto [roles, what] : std::vector<std::pair<std::vector<std::string>, std::string>>{
           {{"train"}, "1 roles for 2 input files"},
           {{"train", "train", "test"}, "3 roles for 2 input files"},
           {{"test", "valid"}, "must be the train split"},
           {{"train", "tset"}, "unknown split 'tset'"}}) {
    o.presplit_roles = roles;
    EXPECT_THAT(error_of([&] { prepare(o); }), AllOf(HasSubstr("option --presplit"), HasSubstr(what)));
  }
  o = csv_options({train}, SplitMode::Ratio);
  o.presplit_roles = {"train"};
  EXPECT_THAT(error_of([&] { prepare(o); }), HasSubstr("applies to --split presplit only"));
}

// Several files per split: the files of a split are one table, the rows of each file in turn
// (dedup and k-core over the split, as for one file); leave-one-out takes several files too.
TEST(Prep, SeveralFilesPerSplit) {
  TempDir dir;
  const std::string a = dir.write("train_a.csv", "1,a,1,10\n2,b,1,20\n");
  const std::string b = dir.write("train_b.csv", "1,c,1,30\n1,a,1,40\n");  // (1, a) again
  const std::string t = dir.write("test.csv", "2,a,1,50\n");
  PrepOptions o = csv_options({a, t, b}, SplitMode::Presplit);
  o.presplit_roles = {"train", "test", "train"};
  PreparedDataset d = prepare(o);
  EXPECT_EQ(raw_rows(d, d.train), (std::vector<Row>{{"1", "a"}, {"1", "c"}, {"2", "b"}}));
  EXPECT_EQ(d.train.timestamp, (std::vector<double>{10, 30, 20}));  // the first (1, a) kept
  EXPECT_EQ(raw_rows(d, d.test), (std::vector<Row>{{"2", "a"}}));
  EXPECT_EQ(d.valid.size(), 0u);
  o.presplit_roles = {"train", "test", ""};
  EXPECT_THAT(error_of([&] { prepare(o); }), HasSubstr("unknown split ''"));
  o.inputs = {a, ""};
  o.presplit_roles = {"train", "test"};
  EXPECT_THAT(error_of([&] { prepare(o); }), HasSubstr("input 2 (test) is empty"));

  // Leave-one-out over two files: user 1's latest row (40, in the second file) is its test row.
  o = csv_options({a, b}, SplitMode::LeaveOneOut);
  o.dedup = false;
  d = prepare(o);
  EXPECT_EQ(raw_rows(d, d.test), (std::vector<Row>{{"1", "a"}}));
  EXPECT_EQ(d.test.timestamp, std::vector<double>{40});
  EXPECT_EQ(raw_rows(d, d.valid), (std::vector<Row>{{"1", "c"}}));
  EXPECT_EQ(raw_rows(d, d.train), (std::vector<Row>{{"1", "a"}, {"2", "b"}}));
}

TEST(Prep, PresplitKCoreCountsAllFiles) {
  TempDir dir;
  // Item b has one train row and one test row: with item_core = 2 it survives only because
  // the counts span both files; item c (one row) goes.
  const std::string train = dir.write("train.csv", "1,a,1,1\n2,a,1,1\n1,b,1,1\n2,c,1,1\n");
  const std::string valid = dir.write("valid.csv", "2,b,1,1\n");
  PrepOptions o = csv_options({train, valid}, SplitMode::Presplit);
  o.presplit_roles = {"train", "valid"};
  o.item_core = 2;
  const PreparedDataset d = prepare(o);
  EXPECT_THAT(d.item_raw, ElementsAre("a", "b"));
  EXPECT_EQ(raw_rows(d, d.train), (std::vector<Row>{{"1", "a"}, {"1", "b"}, {"2", "a"}}));
  EXPECT_EQ(raw_rows(d, d.valid), (std::vector<Row>{{"2", "b"}}));
  EXPECT_EQ(d.test.size(), 0u);
}

TEST(Prep, OptionErrors) {
  TempDir dir;
  const std::string f = dir.write("a.csv", "1,2,3,4\n");
  // Ratio and leave-one-out concatenate several inputs, but none may be "".
  PrepOptions o = csv_options({f, ""}, SplitMode::LeaveOneOut);
  EXPECT_THAT(error_of([&] { prepare(o); }), HasSubstr("split mode loo takes one or more input files"));
  o = csv_options({"", f}, SplitMode::Presplit);
  EXPECT_THAT(error_of([&] { prepare(o); }), HasSubstr("train"));
  o = csv_options({f, f, f, f}, SplitMode::Presplit);  // by position at most three
  EXPECT_THAT(error_of([&] { prepare(o); }), HasSubstr("several files per split need --presplit"));
  o = csv_options({f}, SplitMode::Ratio);
  o.ratios = {0.5, 0.2, 0.2, 0.1};
  EXPECT_THAT(error_of([&] { prepare(o); }), HasSubstr("split ratios"));
  o.ratios = {0.8, -0.1, 0.3};
  EXPECT_THAT(error_of([&] { prepare(o); }), HasSubstr("non-negative"));
  o.ratios = {0, 0, 0};
  EXPECT_THAT(error_of([&] { prepare(o); }), HasSubstr("all be zero"));
}

TEST(Prep, ParseErrorsReachTheCaller) {
  TempDir dir;
  const std::string f = dir.write("bad.dat", "1::2::3::4\n1::2::3::4\n1::2::x::4\n");
  PrepOptions o;
  o.format = Format::MlDat;
  o.inputs = {f};
  EXPECT_THAT(error_of([&] { prepare(o); }), AllOf(HasSubstr(f + ":3:"), HasSubstr("rating")));
  const std::string empty = dir.write("empty.dat", "");
  o.inputs = {empty};
  EXPECT_THAT(error_of([&] { prepare(o); }), AllOf(HasSubstr(empty), HasSubstr("empty file")));
}

}  // namespace
}  // namespace shardrec::io
