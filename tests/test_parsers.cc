#include "io/parsers.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <stdlib.h>

#include <filesystem>
#include <fstream>
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
    std::string tmpl = (fs::path(kTmpBase) / "shardrec_parsers_XXXXXX").string();
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

ParseOptions opts(Format format) {
  ParseOptions o;
  o.format = format;
  return o;
}

using Row = std::tuple<std::string, std::string>;
std::vector<Row> pairs(const RawInteractions& r) {
  std::vector<Row> out;
  for (size_t i = 0; i < r.size(); ++i) out.emplace_back(r.raw_user(i), r.raw_item(i));
  return out;
}

// The logical data every format below spells: (user, item, rating, timestamp), grouped by user
// so that adjacency and JSON can express the same row order.
const std::vector<Row> kPairs = {{"1", "10"}, {"1", "20"}, {"2", "10"}, {"3", "30"}};
const std::vector<float> kRatings = {4, 5, 3, 1.5f};
const std::vector<double> kTimes = {100, 150, 200, 50};

TEST(ParseFormat, NamesRoundTrip) {
  for (const char* name : {"ml-dat", "ml-udata", "recbole", "csv", "adjacency", "json", "jsonl", "auto"})
    EXPECT_EQ(format_name(parse_format(name)), name);
  EXPECT_THAT(error_of([] { parse_format("parquet"); }),
              AllOf(HasSubstr("'parquet'"), HasSubstr("ml-dat"), HasSubstr("json")));
}

TEST(ParseFormat, DetectedFromNameAndContent) {
  EXPECT_EQ(detect_format("a/train.json", "1,2\n"), Format::Json);  // the extension first
  EXPECT_EQ(detect_format("train.JSON.gz", ""), Format::Json);
  EXPECT_EQ(detect_format("ml-100k.inter.zst", ""), Format::RecBole);
  EXPECT_EQ(detect_format("x.txt", "\n  {\"0\": [5809, 1]}"), Format::Json);
  EXPECT_EQ(detect_format("x.txt", "user_id:token\titem_id:token\n1\t2\n"), Format::RecBole);
  EXPECT_EQ(detect_format("ratings.dat", "1::1193::5::978300760\n"), Format::MlDat);
  EXPECT_EQ(detect_format("u.data", "196\t242\t3\t881250949\n"), Format::MlUdata);
  EXPECT_EQ(detect_format("u.data", "\r\n196\t242\t3.5\t881250949\r\n"), Format::MlUdata);
  EXPECT_EQ(detect_format("log.tsv", "a\tb\t3\t4\n"), Format::Csv);  // ids are not numbers
  EXPECT_EQ(detect_format("log.csv", "user,item\n1,2\n"), Format::Csv);
  EXPECT_EQ(detect_format("log", ""), Format::Csv);
  // JSON Lines: by name, or one whole object on the first line and another after it.
  EXPECT_EQ(detect_format("reviews.jsonl.gz", ""), Format::JsonLines);
  EXPECT_EQ(detect_format("reviews.NDJSON", ""), Format::JsonLines);
  EXPECT_EQ(detect_format("x.txt", "{\"u\": 1, \"i\": \"{\"}\r\n\n{\"u\": 2}\n"), Format::JsonLines);
  EXPECT_EQ(detect_format("x.txt", "{\"u\": [1, 2]}\n"), Format::Json);           // one line, one document
  EXPECT_EQ(detect_format("x.txt", "{\"u\": [1, 2],\n \"v\": [3]}\n"), Format::Json);  // pretty-printed
  EXPECT_EQ(detect_format("x.txt", "{\n\"u\": [1]\n}\n"), Format::Json);
}

TEST(Parsers, TsvByNameIsTabSeparated) {
  ParseOptions o = opts(Format::Auto);
  const RawInteractions r = parse_text("1\t10\t2\n2\t11\t3\n", "log.TSV.gz", o);
  EXPECT_EQ(r.format, Format::Csv);
  EXPECT_EQ(pairs(r), (std::vector<Row>{{"1", "10"}, {"2", "11"}}));
  // Under another name tab-separated text could be adjacency lists: the message says both ways.
  EXPECT_THAT(error_of([&] { parse_text("1\t10\t2\n", "log.txt", o); }),
              AllOf(HasSubstr("log.txt: "), HasSubstr("--sep tab"), HasSubstr("--format adjacency")));
  EXPECT_THAT(error_of([&] { parse_text("1 10 2\n", "log.txt", o); }),
              AllOf(HasSubstr("--sep space"), HasSubstr("--format adjacency")));
  // A .tsv with commas and no tab is read as before (comma), not refused.
  EXPECT_EQ(pairs(parse_text("1,10\n2,11\n", "odd.tsv", o)), (std::vector<Row>{{"1", "10"}, {"2", "11"}}));
  // A separator given (format csv) is kept whatever the name.
  ParseOptions comma = opts(Format::Csv);
  EXPECT_EQ(pairs(parse_text("1,10\n", "odd.tsv", comma)), (std::vector<Row>{{"1", "10"}}));
}

TEST(Parsers, JsonLinesRecords) {
  ParseOptions o = opts(Format::Auto);
  // Other fields, nested or not, are skipped; fields in any order; ids as strings or numbers.
  const std::string text =
      "{\"user_id\": \"u1\", \"item_id\": 10, \"rating\": 4, \"timestamp\": 100,"
      " \"review\": {\"text\": \"a, \\\"b\\\" }\", \"tags\": [1, null, true, {\"x\": []}]}}\n"
      "{\"timestamp\": 150, \"item_id\": \"20\", \"rating\": 5, \"user_id\": \"u1\"}\n"
      "\n"
      "{\"user_id\": \"u2\", \"item_id\": 10, \"rating\": \"3\", \"timestamp\": 200, \"helpful\": false}\n";
  RawInteractions r = parse_text(text, "reviews.jsonl", o);
  EXPECT_EQ(r.format, Format::JsonLines);
  EXPECT_EQ(pairs(r), (std::vector<Row>{{"u1", "10"}, {"u1", "20"}, {"u2", "10"}}));
  EXPECT_EQ(r.rating, (std::vector<float>{4, 5, 3}));
  EXPECT_EQ(r.timestamp, (std::vector<double>{100, 150, 200}));
  // Fields named by the column options (an Amazon reviews dump), detected by content.
  ParseOptions named = opts(Format::Auto);
  named.user_column = "reviewerID";
  named.item_column = "asin";
  named.rating_column = "overall";
  r = parse_text("{\"reviewerID\": \"A\", \"asin\": \"B1\", \"overall\": 5.0, \"rating\": 1}\n"
                 "{\"reviewerID\": \"C\", \"asin\": \"B2\", \"overall\": 2.5}\n",
                 "dump.txt", named);
  EXPECT_EQ(r.format, Format::JsonLines);
  EXPECT_EQ(pairs(r), (std::vector<Row>{{"A", "B1"}, {"C", "B2"}}));
  EXPECT_EQ(r.rating, (std::vector<float>{5, 2.5f}));
  EXPECT_FALSE(r.has_timestamp);

  // Errors name the line.
  EXPECT_THAT(error_of([&] { parse_text("{\"user_id\": 1, \"item_id\": 2, \"rating\": 3}\n{\"user_id\": 1, \"item_id\": 3}\n",
                                        "r.jsonl", o); }),
              HasSubstr("r.jsonl:2: the record has no field 'rating' (fields: user_id, item_id)"));
  EXPECT_THAT(error_of([&] { parse_text("{\"uid\": 1, \"iid\": 2}\n", "r.jsonl", o); }),
              AllOf(HasSubstr("r.jsonl:1: the record has no field 'user_id'"), HasSubstr("--user-col")));
  EXPECT_THAT(error_of([&] { parse_text("{\"user_id\": 1, \"item_id\": 2}\n{\"user_id\": 1, \"user_id\": 5, \"item_id\": 2}\n",
                                        "r.jsonl", o); }),
              HasSubstr("r.jsonl:2: field 'user_id' appears twice in the record"));
  EXPECT_THAT(error_of([&] { parse_text("{\"user_id\": 1, \"item_id\": 2}\n{\"user_id\": 1, \"item_id\": 2, \"x\": nul}\n",
                                        "r.jsonl", o); }),
              HasSubstr("r.jsonl:2: JSON syntax error"));
  EXPECT_THAT(error_of([&] { parse_text("{\"user_id\": 1, \"item_id\": 2, \"rating\": \"good\"}\n", "r.jsonl", o); }),
              HasSubstr("r.jsonl:1: the rating 'good' is not a finite number"));
  EXPECT_THAT(error_of([&] { parse_text("{\"user_id\": 1, \"item_id\": null}\n", "r.jsonl", o); }),
              HasSubstr("r.jsonl:1: JSON syntax error: expected a string or a number, found 'n'"));
  // A JSON array of records (pandas' to_json(orient="records")), pretty-printed or not.
  const std::string array =
      "[\n  {\"user_id\": \"u1\", \"item_id\": 10, \"extra\": [1, {}]},\n"
      "  {\"user_id\": \"u2\", \"item_id\": 11}\n]\n";
  for (Format given : {Format::Auto, Format::Json}) {
    r = parse_text(array, "records.json", opts(given));
    EXPECT_EQ(r.format, Format::Json);
    EXPECT_EQ(pairs(r), (std::vector<Row>{{"u1", "10"}, {"u2", "11"}}));
  }
  ParseOptions by_name = opts(Format::Auto);
  by_name.item_column = "extra_id";
  EXPECT_EQ(pairs(parse_text("[{\"user_id\": 1, \"extra_id\": 5, \"item_id\": 6}]", "x.txt", by_name)),
            (std::vector<Row>{{"1", "5"}}));
  EXPECT_THAT(error_of([&] { parse_text("[{\"user_id\": 1, \"item_id\": 2}\n{\"user_id\": 3}]", "a.json", o); }),
              HasSubstr("a.json:2: JSON syntax error: expected ',' or ']' after a record, found '{'"));
  EXPECT_THAT(error_of([&] { parse_text("[{\"user_id\": 1, \"item_id\": 2}] []", "a.json", o); }),
              HasSubstr("a.json:1: JSON syntax error: expected the end of the document after the closing ']'"));
  EXPECT_THAT(error_of([&] { parse_text("[]", "a.json", o); }), HasSubstr("a.json: empty file"));
  // Column options still do not apply to the user -> items object.
  EXPECT_THAT(error_of([&] { parse_text("{\"u\": [1]}", "d.json", by_name); }),
              HasSubstr("does not look like format csv but like a JSON document"));
  ParseOptions dict_named = opts(Format::Json);
  dict_named.item_column = "x";
  EXPECT_THAT(error_of([&] { parse_text("{\"u\": [1]}", "d.json", dict_named); }),
              HasSubstr("column options apply to"));

  // JSON Lines read as a JSON document (or csv) is a mismatch, not a parse error at line 2.
  const std::string two = "{\"user_id\": 1, \"item_id\": 2}\n{\"user_id\": 3, \"item_id\": 4}\n";
  for (Format given : {Format::Json, Format::Csv})
    EXPECT_THAT(error_of([&] { parse_text(two, "r.txt", opts(given)); }),
                AllOf(HasSubstr("r.txt: the content does not look like format " + format_name(given)),
                      HasSubstr("--format jsonl")));
}

TEST(Parsers, AutoFormatReadsWhatItDetects) {
  ParseOptions o = opts(Format::Auto);
  RawInteractions r = parse_text("{\"u\": [\"a\", \"b\"]}", "x.txt", o);
  EXPECT_EQ(r.format, Format::Json);
  EXPECT_EQ(pairs(r), (std::vector<Row>{{"u", "a"}, {"u", "b"}}));
  r = parse_text("1::2::3::4\n", "ratings.dat", o);
  EXPECT_EQ(r.format, Format::MlDat);
  EXPECT_TRUE(r.has_timestamp);
  o.rating_column = "2";  // column options: csv unless the file is recbole
  r = parse_text("1,2,3\n", "x.txt", o);
  EXPECT_EQ(r.format, Format::Csv);
  EXPECT_EQ(r.rating, std::vector<float>{3});
}

// A format given that the content plainly contradicts: an error naming the file and the format
// the content looks like (the issue: csv on a JSON file wrote "1 users, 1 items" and exit 0).
TEST(ParserErrors, FormatContradictsTheContent) {
  struct Case {
    Format given;
    std::string file, text, likely;
  };
  const std::vector<Case> cases = {
      {Format::Csv, "train.json", "{\"0\": [5809, 1], \"1\": [3]}", "--format json"},
      {Format::Csv, "ratings.dat", "1::1193::5::978300760\n", "--format ml-dat"},
      {Format::Csv, "u.data", "196\t242\t3\t881250949\n", "--format ml-udata"},
      {Format::Csv, "log.csv", "a;b;3\n", "has no separator ','"},
      {Format::MlDat, "u.data", "196\t242\t3\t881250949\n", "--format ml-udata"},
      {Format::MlUdata, "log.csv", "1,2,3,4\n", "--format csv"},
      {Format::RecBole, "log.csv", "user,item\n1,2\n", "--format csv"},
      {Format::Json, "log.csv", "1,2\n", "--format csv"},
      {Format::Adjacency, "train.json", "{\"0\": [1]}", "--format json"},
      {Format::Adjacency, "log.csv", "1,2,3\n", "--format csv"},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(format_name(c.given) + " on " + c.text);
    EXPECT_THAT(error_of([&] { parse_text(c.text, c.file, opts(c.given)); }),
                AllOf(HasSubstr(c.file + ": "), HasSubstr(c.likely),
                      HasSubstr(c.given == Format::Csv && c.file == "log.csv"
                                    ? "give the right one with --sep"
                                    : "does not look like format " + format_name(c.given))));
  }
  // What fits is read as before: csv with a tab separator on u.data, adjacency on numbers.
  ParseOptions tab = opts(Format::Csv);
  tab.separator = '\t';
  EXPECT_EQ(parse_text("196\t242\t3\t881250949\n", "u.data", tab).size(), 1u);
  EXPECT_EQ(parse_text("1 2 3\n", "a.txt", opts(Format::Adjacency)).size(), 2u);
}

TEST(ParseSeparator, Spellings) {
  EXPECT_EQ(parse_separator(","), ',');
  EXPECT_EQ(parse_separator("\t"), '\t');
  EXPECT_EQ(parse_separator("\\t"), '\t');
  EXPECT_EQ(parse_separator("tab"), '\t');
  EXPECT_EQ(parse_separator("space"), ' ');
  EXPECT_EQ(parse_separator("semicolon"), ';');
  EXPECT_THAT(error_of([] { parse_separator("::"); }), HasSubstr("'::'"));
}

TEST(Parsers, EveryFormatReadsTheSameData) {
  TempDir dir;
  struct Case {
    std::string file, text;
    ParseOptions options;
    bool rated;
  };
  ParseOptions csv_named = opts(Format::Csv);
  csv_named.header = true;
  csv_named.user_column = "uid";
  csv_named.item_column = "iid";
  csv_named.rating_column = "stars";
  csv_named.timestamp_column = "when";
  ParseOptions tsv_index = opts(Format::Csv);
  tsv_index.separator = '\t';
  tsv_index.user_column = "1";
  tsv_index.item_column = "0";
  tsv_index.rating_column = "3";
  tsv_index.timestamp_column = "2";
  const std::vector<Case> cases = {
      {"ratings.dat", "1::10::4::100\n1::20::5::150\n2::10::3::200\n3::30::1.5::50\n",
       opts(Format::MlDat), true},
      {"u.data", "1\t10\t4\t100\n1\t20\t5\t150\n2\t10\t3\t200\n3\t30\t1.5\t50\n",
       opts(Format::MlUdata), true},
      {"x.inter",
       "item_id:token\tuser_id:token\ttimestamp:float\ttags:token_seq\trating:float\n"
       "10\t1\t100\ta b\t4\n20\t1\t150\t\t5\n10\t2\t200\tc\t3\n30\t3\t50\td e f\t1.5\n",
       opts(Format::RecBole), true},
      {"named.csv", "when,iid,extra,uid,stars\n100,10,x,1,4\n150,20,y,1,5\n200,10,z,2,3\n"
                    "50,30,w,3,1.5\n",
       csv_named, true},
      {"index.tsv", "10\t1\t100\t4\n20\t1\t150\t5\n10\t2\t200\t3\n30\t3\t50\t1.5\n", tsv_index,
       true},
      {"adj.txt", "1 10 20\n2\t10\n3   30\n", opts(Format::Adjacency), false},
      {"lists.json", "{\"1\": [10, \"20\"],\n \"2\":[\"10\"] , \"3\" : [ 30 ]}\n",
       opts(Format::Json), false},
      {"records.jsonl",
       "{\"user_id\": 1, \"item_id\": 10, \"rating\": 4, \"timestamp\": 100}\n"
       "{\"item_id\": \"20\", \"user_id\": \"1\", \"timestamp\": 150, \"rating\": 5}\n"
       "{\"user_id\": 2, \"item_id\": 10, \"rating\": 3, \"timestamp\": 200}\n"
       "{\"user_id\": 3, \"item_id\": 30, \"rating\": 1.5, \"timestamp\": 50}\n",
       opts(Format::JsonLines), true},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.file);
    const RawInteractions r = parse_file(dir.write(c.file, c.text), c.options);
    EXPECT_EQ(pairs(r), kPairs);
    EXPECT_EQ(r.has_rating, c.rated);
    EXPECT_EQ(r.has_timestamp, c.rated);
    if (c.rated) {
      EXPECT_EQ(r.rating, kRatings);
      EXPECT_EQ(r.timestamp, kTimes);
    } else {
      EXPECT_TRUE(r.rating.empty());
      EXPECT_TRUE(r.timestamp.empty());
    }
    EXPECT_THAT(r.user_ids, ElementsAre("1", "2", "3"));  // interned in first-seen order
    EXPECT_THAT(r.item_ids, ElementsAre("10", "20", "30"));
    EXPECT_THAT(r.source, HasSubstr(c.file));
  }
}

TEST(Parsers, RecBoleConfigurableNamesAndOptionalColumns) {
  const std::string text = "uid:token\tiid:token\tlabel:float\nu1\ti1\t1\nu2\ti2\t0\n";
  ParseOptions o = opts(Format::RecBole);
  o.user_column = "uid";
  o.item_column = "iid";
  RawInteractions r = parse_text(text, "a.inter", o);
  EXPECT_EQ(pairs(r), (std::vector<Row>{{"u1", "i1"}, {"u2", "i2"}}));
  EXPECT_FALSE(r.has_rating);  // no field called "rating": not an error unless asked for
  EXPECT_FALSE(r.has_timestamp);
  o.rating_column = "label";
  r = parse_text(text, "a.inter", o);
  EXPECT_TRUE(r.has_rating);
  EXPECT_EQ(r.rating, (std::vector<float>{1, 0}));
}

TEST(Parsers, CsvDetails) {
  // BOM, CRLF, blank lines, spaces around fields, quotes, a header name that looks like an index.
  const std::string text =
      "\xEF\xBB\xBF" "\"user\", 0 ,rating\r\n"
      "\r\n"
      " \"a\" , x , 2.5 \r\n"
      "b,y,3\r\n\n";
  ParseOptions o = opts(Format::Csv);
  o.header = true;
  o.user_column = "user";
  o.item_column = "0";  // the header name "0", i.e. column 1, not column 0
  o.rating_column = "2";
  const RawInteractions r = parse_text(text, "d.csv", o);
  EXPECT_EQ(pairs(r), (std::vector<Row>{{"a", "x"}, {"b", "y"}}));
  EXPECT_EQ(r.rating, (std::vector<float>{2.5f, 3}));

  ParseOptions ws = opts(Format::Csv);
  ws.separator = ' ';  // runs of blanks
  EXPECT_EQ(pairs(parse_text("a   x\nb \t y\n", "w.txt", ws)),
            (std::vector<Row>{{"a", "x"}, {"b", "y"}}));
}

TEST(Parsers, CsvQuotedFieldsFollowRfc4180) {
  // Separators, line breaks and "" inside quotes; spaces around quotes (not inside) trimmed.
  const std::string text =
      "1,\"Title 10, The\",10,2\n"
      "2,\"He said \"\"hi\"\"\",11,3\r\n"
      "3,\"two\r\nlines, and \"\"more\"\"\",12,4\n"
      "4,  \" x \"  ,13,5\n"
      "5,plain,14,1\n";
  ParseOptions o = opts(Format::Csv);
  o.item_column = "2";
  o.rating_column = "3";
  const RawInteractions r = parse_text(text, "q.csv", o);
  EXPECT_EQ(pairs(r), (std::vector<Row>{{"1", "10"}, {"2", "11"}, {"3", "12"}, {"4", "13"},
                                        {"5", "14"}}));
  EXPECT_EQ(r.rating, (std::vector<float>{2, 3, 4, 5, 1}));
  // The quoted column itself, as a value: quotes undone, the line break kept as "\n".
  o.item_column = "1";
  o.rating_column.clear();
  EXPECT_THAT(parse_text(text, "q.csv", o).item_ids,
              ElementsAre("Title 10, The", "He said \"hi\"", "two\nlines, and \"more\"", " x ",
                          "plain"));
  // The same with a header naming the columns, and with a tab separator.
  ParseOptions h = opts(Format::Csv);
  h.header = true;
  h.user_column = "user";
  h.item_column = "movie";
  EXPECT_EQ(parse_text("user,\"title, long\",movie\n1,\"A, B\",7\n", "h.csv", h).item_ids,
            std::vector<std::string>{"7"});
  ParseOptions t = opts(Format::Csv);
  t.separator = '\t';
  EXPECT_EQ(pairs(parse_text("\"a\tb\"\tx\n", "t.tsv", t)), (std::vector<Row>{{"a\tb", "x"}}));
}

// The log: a title with the separator, in quotes. Without a header the columns used to
// shift silently (most rows lost as duplicates); with one the row was refused without a word
// about quoting.
TEST(Parsers, CsvQuotedTitlesDoNotShiftColumns) {
  std::string text;
  for (int u = 1; u <= 4; ++u)
    for (int i = 1; i <= 6; ++i)
      text += std::to_string(u) + ",\"Title " + std::to_string(i) + ", The\"," +
              std::to_string(i) + "," + std::to_string(1 + (u + i) % 5) + "\n";
  ParseOptions o = opts(Format::Csv);
  o.item_column = "2";
  o.rating_column = "3";
  const RawInteractions r = parse_text(text, "movies.csv", o);
  EXPECT_EQ(r.size(), 24u);
  EXPECT_EQ(r.item_ids.size(), 6u);
  EXPECT_EQ(r.raw_item(5), "6");
  ParseOptions h = o;
  h.header = true;
  h.user_column = "user";
  h.item_column = "item";
  h.rating_column = "rating";
  EXPECT_EQ(parse_text("user,title,item,rating\n" + text, "movies.csv", h).size(), 24u);
  // Unquoted, the extra separator is an error that says what to do.
  EXPECT_THAT(error_of([&] { parse_text("user,title,item,rating\n1,Title 10, The,10,2\n",
                                        "m.csv", h); }),
              AllOf(HasSubstr("m.csv:2:"), HasSubstr("expected 4 fields, found 5"),
                    HasSubstr("header on line 1"), HasSubstr("must be in double quotes")));
  EXPECT_THAT(error_of([&] { parse_text("1,a,10,2\n1,Title 10, The,10,2\n", "m.csv", o); }),
              AllOf(HasSubstr("m.csv:2:"), HasSubstr("found 5"), HasSubstr("as on line 1"),
                    HasSubstr("double quotes")));
}

TEST(Parsers, JsonDetails) {
  const std::string text =
      "\n  {\n"
      "  \"u\\\"1\" :\n [ \"caf\\u00e9\", -0, 1.5e3, \"\\ud83d\\ude00\" ] ,\n"
      "  \"empty\": [],\n"
      "  \"u2\":[\"a\\/b\\\\c\\t\"]\n"
      "}\n\n";
  const RawInteractions r = parse_text(text, "j.json", opts(Format::Json));
  EXPECT_EQ(pairs(r), (std::vector<Row>{{"u\"1", "caf\xC3\xA9"},
                                        {"u\"1", "-0"},
                                        {"u\"1", "1.5e3"},  // numbers keep their text
                                        {"u\"1", "\xF0\x9F\x98\x80"},
                                        {"u2", "a/b\\c\t"}}));
  EXPECT_THAT(r.user_ids, ElementsAre("u\"1", "u2"));  // a user without items has no rows
}

TEST(Parsers, JsonDuplicateUserKeys) {
  const std::string text = "{\n\"a\": [1, 2],\n\"b\": [3],\n\"a\": [4]\n}";
  EXPECT_THAT(error_of([&] { parse_text(text, "d.json", opts(Format::Json)); }),
              AllOf(HasSubstr("d.json:4: user key 'a' appears again (first on line 2)"),
                    HasSubstr("--json-duplicates merge")));
  ParseOptions merge = opts(Format::Json);
  merge.json_merge_duplicates = true;
  EXPECT_EQ(pairs(parse_text(text, "d.json", merge)),
            (std::vector<Row>{{"a", "1"}, {"a", "2"}, {"b", "3"}, {"a", "4"}}));
}

TEST(Parsers, LargeInputKeepsOrder) {
  std::string text;
  const int n = 20000;
  for (int i = 0; i < n; ++i)
    text += std::to_string(i % 97) + "::" + std::to_string(i % 1013) + "::" +
            std::to_string(1 + i % 5) + "::" + std::to_string(1000000 + i) + "\n";
  const RawInteractions r = parse_text(text, "big.dat", opts(Format::MlDat));
  ASSERT_EQ(r.size(), static_cast<size_t>(n));
  EXPECT_EQ(r.user_ids.size(), 97u);
  EXPECT_EQ(r.item_ids.size(), 1013u);
  for (int i = 0; i < n; i += 997) {
    EXPECT_EQ(r.raw_user(i), std::to_string(i % 97));
    EXPECT_EQ(r.raw_item(i), std::to_string(i % 1013));
    EXPECT_EQ(r.rating[i], static_cast<float>(1 + i % 5));
    EXPECT_EQ(r.timestamp[i], 1000000.0 + i);
  }
}

// ---- Errors: each names the file and, where there is one, the 1-based line ---------------------

TEST(ParserErrors, WrongFieldCount) {
  TempDir dir;
  const std::string dat = dir.write("r.dat", "1::2::3::4\n\n1::2::3\n");
  EXPECT_THAT(error_of([&] { parse_file(dat, opts(Format::MlDat)); }),
              AllOf(HasSubstr(dat + ":3:"), HasSubstr("expected 4 fields"), HasSubstr("found 3")));
  const std::string udata = dir.write("u.data", "1\t2\t3\t4\n1\t2\t3\t4\t5\n");
  EXPECT_THAT(error_of([&] { parse_file(udata, opts(Format::MlUdata)); }),
              AllOf(HasSubstr(udata + ":2:"), HasSubstr("found 5")));
  const std::string csv = dir.write("c.csv", "a,b,c\nd,e,f\ng,h\n");
  EXPECT_THAT(error_of([&] { parse_file(csv, opts(Format::Csv)); }),
              AllOf(HasSubstr(csv + ":3:"), HasSubstr("expected 3 fields, found 2")));
  const std::string inter = dir.write("x.inter", "user_id:token\titem_id:token\n1\t2\n1\t2\t3\n");
  EXPECT_THAT(error_of([&] { parse_file(inter, opts(Format::RecBole)); }),
              AllOf(HasSubstr(inter + ":3:"), HasSubstr("expected 2 fields")));
}

TEST(ParserErrors, NonNumericRatingAndTimestamp) {
  TempDir dir;
  const std::string udata = dir.write("u.data", "1\t2\t3\t4\n1\t2\tgood\t4\n");
  EXPECT_THAT(error_of([&] { parse_file(udata, opts(Format::MlUdata)); }),
              AllOf(HasSubstr(udata + ":2:"), HasSubstr("rating 'good'")));
  const std::string dat = dir.write("r.dat", "1::2::3::4\n1::2::3::4\n1::2::3::12:30\n");
  EXPECT_THAT(error_of([&] { parse_file(dat, opts(Format::MlDat)); }),
              AllOf(HasSubstr(dat + ":3:"), HasSubstr("timestamp '12:30'")));
  ParseOptions o = opts(Format::Csv);
  o.rating_column = "2";
  const std::string csv = dir.write("c.csv", "a,b,nan\n");
  EXPECT_THAT(error_of([&] { parse_file(csv, o); }),
              AllOf(HasSubstr(csv + ":1:"), HasSubstr("not a finite number")));
}

TEST(ParserErrors, EmptyFiles) {
  TempDir dir;
  for (Format f : {Format::MlDat, Format::MlUdata, Format::Csv, Format::Adjacency}) {
    const std::string path = dir.write("empty_" + format_name(f), "\n  \n");
    EXPECT_THAT(error_of([&] { parse_file(path, opts(f)); }),
                AllOf(HasSubstr(path), HasSubstr("empty file")));
  }
  const std::string header_only = dir.write("h.inter", "user_id:token\titem_id:token\n");
  EXPECT_THAT(error_of([&] { parse_file(header_only, opts(Format::RecBole)); }),
              AllOf(HasSubstr(header_only), HasSubstr("empty file")));
  const std::string json = dir.write("e.json", "{ \"u\": [] }");
  EXPECT_THAT(error_of([&] { parse_file(json, opts(Format::Json)); }),
              AllOf(HasSubstr(json), HasSubstr("empty file")));
  const std::string users_only = dir.write("adj", "1\n2\n");
  EXPECT_THAT(error_of([&] { parse_file(users_only, opts(Format::Adjacency)); }),
              HasSubstr("empty file"));
}

TEST(ParserErrors, MissingFile) {
  EXPECT_THAT(error_of([] { parse_file("/nonexistent/dir/r.dat", opts(Format::MlDat)); }),
              AllOf(HasSubstr("/nonexistent/dir/r.dat"), HasSubstr("cannot open")));
}

TEST(ParserErrors, HeaderColumns) {
  TempDir dir;
  const std::string inter = dir.write("m.inter", "user_id:token\titem:token\n1\t2\n");
  EXPECT_THAT(error_of([&] { parse_file(inter, opts(Format::RecBole)); }),
              AllOf(HasSubstr(inter + ":1:"), HasSubstr("'item_id' not found"),
                    HasSubstr("user_id, item")));
  ParseOptions o = opts(Format::RecBole);
  o.timestamp_column = "ts";  // asked for explicitly, so it must exist
  const std::string inter2 = dir.write("n.inter", "user_id:token\titem_id:token\n1\t2\n");
  EXPECT_THAT(error_of([&] { parse_file(inter2, o); }),
              AllOf(HasSubstr(inter2 + ":1:"), HasSubstr("'ts' not found")));
  const std::string untyped = dir.write("t.inter", "user_id\titem_id:token\n1\t2\n");
  EXPECT_THAT(error_of([&] { parse_file(untyped, opts(Format::RecBole)); }),
              AllOf(HasSubstr(untyped + ":1:"), HasSubstr("no ':type'")));
  const std::string badtype = dir.write("b.inter", "user_id:int\titem_id:token\n1\t2\n");
  EXPECT_THAT(error_of([&] { parse_file(badtype, opts(Format::RecBole)); }),
              AllOf(HasSubstr(badtype + ":1:"), HasSubstr("unknown type 'int'")));

  ParseOptions c = opts(Format::Csv);
  c.header = true;
  c.user_column = "userId";
  const std::string csv = dir.write("h.csv", "\nuser,item\n1,2\n");
  EXPECT_THAT(error_of([&] { parse_file(csv, c); }),
              AllOf(HasSubstr(csv + ":2:"), HasSubstr("'userId' not found"),
                    HasSubstr("user, item")));
  c.header = false;
  EXPECT_THAT(error_of([&] { parse_file(csv, c); }),
              AllOf(HasSubstr(csv), HasSubstr("names need a header line")));
  ParseOptions idx = opts(Format::Csv);
  idx.timestamp_column = "7";
  EXPECT_THAT(error_of([&] { parse_file(csv, idx); }),
              AllOf(HasSubstr(csv + ":2:"), HasSubstr("index 7 is out of range")));
}

TEST(ParserErrors, CsvQuotes) {
  TempDir dir;
  struct Case {
    std::string text;
    int line;
    std::string what;
  };
  const std::vector<Case> cases = {
      // Unterminated at the end of the file: the line where the field starts.
      {"a,b\nc,\"d\ne,f\n", 2, "unterminated quoted field"},
      {"a,\"b\"\"\n", 1, "unterminated quoted field"},
      // A quote in the middle of an unquoted field.
      {"a,b\nc,d\"e\n", 2, "field 2 'd\"e' has a '\"' inside"},
      // Text after a closing quote, on the record's second line.
      {"a,\"b\nc\"x,d\n", 2, "field 2: 'x' after the closing quote"},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.text);
    const std::string path = dir.write("bad.csv", c.text);
    EXPECT_THAT(error_of([&] { parse_file(path, opts(Format::Csv)); }),
                AllOf(HasSubstr(path + ":" + std::to_string(c.line) + ":"), HasSubstr(c.what)));
  }
}

TEST(ParserErrors, ColumnOptionsOnFixedFormats) {
  ParseOptions o = opts(Format::MlDat);
  o.rating_column = "3";
  EXPECT_THAT(error_of([&] { parse_text("1::2::3::4\n", "r.dat", o); }),
              AllOf(HasSubstr("r.dat"), HasSubstr("csv, recbole and jsonl formats and JSON arrays of records only")));
}

TEST(ParserErrors, EmptyIds) {
  EXPECT_THAT(error_of([] { parse_text("1::2::3::4\n::2::3::4\n", "r.dat", opts(Format::MlDat)); }),
              AllOf(HasSubstr("r.dat:2:"), HasSubstr("empty user id")));
}

TEST(ParserErrors, JsonSyntax) {
  TempDir dir;
  struct Case {
    std::string text;
    int line;
    std::string what;
  };
  const std::vector<Case> cases = {
      {"{\n \"a\": [1, 2],\n \"b\": [3 4]\n}", 3, "expected ',' or ']'"},
      {"{\n \"a\": [1]\n \"b\": [2]\n}", 3, "expected ',' or '}'"},
      {"{\"a\": [1]}\n\n x", 3, "end of the document"},
      {"[1, 2]", 1, "expected '{'"},
      {"{\"a\": 1}", 1, "'['"},
      {"{\"a\": [true]}", 1, "string or number"},
      {"{\"a\": [{\"b\": 1}]}", 1, "string or number"},
      {"{a: [1]}", 1, "string key"},
      {"{\"a\": [1,]}", 1, "string or number"},
      {"{\"a\": [\"x\\q\"]}", 1, "valid escape"},
      {"{\"a\": [\"x\ny\"]}", 1, "closing the string"},
      {"{\n\"a\": [\"xy", 2, "found end of file"},
      {"{\"a\": [01]}", 1, "',' or ']'"},
      {"{\"a\": [1.]}", 1, "a digit"},
      {"{\"a\": [\"\\ud800x\"]}", 1, "low surrogate"},
      {"{\"a\": [1]", 1, "',' or '}'"},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.text);
    const std::string path = dir.write("bad.json", c.text);
    EXPECT_THAT(error_of([&] { parse_file(path, opts(Format::Json)); }),
                AllOf(HasSubstr(path + ":" + std::to_string(c.line) + ":"),
                      HasSubstr("JSON syntax error"), HasSubstr(c.what)));
  }
}

}  // namespace
}  // namespace shardrec::io
