// Parsers for raw interaction logs. Each turns one file into rows of (raw user id, raw item id,
// optional rating, optional timestamp) in input order; raw ids stay strings so that nothing about
// their form is assumed before `prepare` picks the dense-id order.
//
// Every error is a shardrec::Error whose message starts with "<file>:<line>: " (1-based line) or,
// for problems with the whole file, "<file>: ".
#pragma once
#include <cstdint>
#include <functional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

namespace shardrec::io {

enum class Format {
  MlDat,      // "ml-dat": MovieLens ratings.dat, `user::item::rating::timestamp`
  MlUdata,    // "ml-udata": MovieLens u.data, `user<TAB>item<TAB>rating<TAB>timestamp`
  RecBole,    // "recbole": RecBole atomic .inter, typed header `user_id:token<TAB>item_id:token...`
  Csv,        // "csv": generic delimited text, see ParseOptions
  Adjacency,  // "adjacency": `user item item ...`, one user per line, whitespace separated
  Json,       // "json": `{"user": [item, item, ...], ...}`, or an array of records like jsonl's
  JsonLines,  // "jsonl": JSON Lines, one record per line `{"user_id": "u", "item_id": 7, ...}`
  Auto,       // "auto": detected per file, see detect_format
};

// Format from its command-line name (listed above); unknown names throw, listing the known ones.
Format parse_format(const std::string& name);
std::string format_name(Format format);

// The format of a file from its name (without a .gz / .zst suffix) and first bytes: ".json" ->
// json, ".jsonl" / ".ndjson" -> jsonl, ".inter" -> recbole; else by content: a whole object on
// the first line and '{' starting the next -> jsonl, a document starting with '{' (or an array
// of objects) -> json, a typed
// RecBole header (`user_id:token<TAB>...`) -> recbole, `a::b::c::d` -> ml-dat, four
// tab-separated numbers -> ml-udata, anything else -> csv.
Format detect_format(const std::string& path, std::string_view head);

// Separator from a command-line spelling: any single character, or "tab"/"\t" (backslash t),
// "space", "comma", "semicolon", "pipe".
char parse_separator(const std::string& text);

// How to read one file. The column fields apply to csv, recbole and records (jsonl, a json array)
// only; leave them empty for the format's default. Setting one with another format is an error
// (those formats have fixed columns).
struct ParseOptions {
  // Auto: detect_format per file; a .tsv (or .tab) detected as csv whose first line has a tab is
  // read with a tab separator (tab-separated content under another name could be adjacency lists:
  // --sep or --format say).
  // Any other format is checked against the file's first line: a
  // file that plainly is something else (a JSON document read as csv, a csv read as ml-dat, ...)
  // is an error naming the file and the format it looks like, not a dataset of nonsense.
  Format format = Format::Csv;

  // csv: field separator. ' ' means "runs of spaces and tabs". Fields follow RFC 4180: trimmed
  // of surrounding spaces and tabs, or in double quotes, inside which the separator, line breaks
  // and "" (one quote) belong to the field. An unterminated quoted field, text after a closing
  // quote, or a quote inside an unquoted field is an error naming the line.
  char separator = ',';
  // csv: the first line names the columns (columns may then be chosen by name).
  bool header = false;

  // csv: a 0-based column index, or a header name (needs header = true). Defaults: user "0",
  //      item "1", no rating, no timestamp.
  // jsonl, and a json array of records: a field name of the records. Defaults: "user_id", "item_id", and "rating" /
  //      "timestamp" when the first record has them. Every record needs the fields chosen (by
  //      name or by the first record); other fields are skipped, whatever their value.
  // recbole: a field name from the header (the part before ':'). Defaults: "user_id", "item_id",
  //      and "rating" / "timestamp" when the header has them. A name given explicitly must exist.
  std::string user_column, item_column, rating_column, timestamp_column;

  // json: a user key that appears twice is an error naming both lines, unless its lists merge.
  bool json_merge_duplicates = false;

  // Called after every block read (about 1 MiB) with the file, its stored bytes read so far and
  // the rows parsed so far (progress reports).
  std::function<void(const std::string& file, uint64_t bytes, int64_t rows)> progress;
};

// Raw ids numbered first seen first, across parses (one rank's pieces). An id spelled as a plain
// decimal integer (digits only, no leading zero, below 2^32 - 1) is looked up by its value in a
// flat table of 8-byte slots, any other by its text: logs of integer ids, the usual case, then intern without hashing
// or comparing strings. The spelling decides which table, so "7" and "007" stay two ids.
class IdDict {
 public:
  // The id of raw id s, numbered next when new.
  int64_t intern(std::string_view s) {
    uint64_t v;
    if (plain_integer(s, v)) return intern_value(v, s);
    if (auto it = text_.find(s); it != text_.end()) return it->second;
    const auto id = static_cast<int64_t>(names.size());
    names.emplace_back(s);
    text_.emplace(names.back(), id);
    return id;
  }
  // The distinct raw ids, in the order they were numbered.
  std::vector<std::string> names;

  // Whether s is a plain decimal integer below 2^32 - 1 (its value in v).
  static bool plain_integer(std::string_view s, uint64_t& v) {
    if (s.empty() || s.size() > 10 || (s[0] == '0' && s.size() > 1)) return false;
    v = 0;
    for (char c : s) {
      const unsigned d = static_cast<unsigned char>(c) - '0';
      if (d > 9) return false;
      v = v * 10 + d;
    }
    return v < 0xFFFFFFFFull;
  }

 private:
  int64_t intern_value(uint64_t v, std::string_view s);
  void grow();
  struct Hash {
    using is_transparent = void;
    size_t operator()(std::string_view s) const { return std::hash<std::string_view>{}(s); }
  };
  std::unordered_map<std::string, int64_t, Hash, std::equal_to<>> text_;
  // Open addressing, linear probing, at most half full; a slot's key and id side by side (one
  // cache miss a lookup), 8 bytes so that a table of millions of ids stays mostly in cache.
  struct Slot {
    uint32_t key;  // value + 1; 0: empty
    uint32_t id;
  };
  std::vector<Slot> slots_;
  size_t used_ = 0;
};

// The rows of one file. Raw ids are interned: `user[r]` indexes `user_ids`, in first-seen order.
struct RawInteractions {
  std::string source;                          // file name, for messages
  Format format = Format::Csv;                 // as read (never Auto)
  uint64_t file_bytes = 0, file_hash = 0;      // the file as stored: size and Fnv64 (io/input.h)
  std::vector<std::string> user_ids, item_ids;  // distinct raw ids, first-seen order
  std::vector<int64_t> user, item;              // per row
  std::vector<float> rating;                    // per row when has_rating, else empty
  std::vector<double> timestamp;                // per row when has_timestamp, else empty
  bool has_rating = false, has_timestamp = false;

  size_t size() const { return user.size(); }
  const std::string& raw_user(size_t row) const { return user_ids[user[row]]; }
  const std::string& raw_item(size_t row) const { return item_ids[item[row]]; }
};

// Reads and parses a whole file, block by block. A file without any interaction is an error ("empty file").
RawInteractions parse_file(const std::string& path, const ParseOptions& options);

// Parses text already in memory; `source` names it in messages. Same rules as parse_file.
RawInteractions parse_text(std::string_view text, const std::string& source,
                           const ParseOptions& options);

// A file read in pieces by several ranks (io/parallel_prep.h): how the whole file is read, and what
// its first record fixes for the rest (the columns, the optional fields), so that a piece further
// on reads as it would within the whole file.
struct FileLayout {
  std::string path;
  ParseOptions options;  // the format resolved (never Auto), the separator as read
  uint64_t size = 0;     // bytes as stored
  // Line-oriented records (ml-dat, ml-udata, recbole, csv, adjacency) in a plain regular file:
  // pieces may start at any record boundary. JSON and compressed files are read whole.
  bool splittable = false;
  // Where the first record (header, or the first row) ends: every piece but the first starts at
  // or after it. Records are lines, or for csv lines joined while a quoted field is open.
  uint64_t first_record_end = 0;
  bool has_rating = false, has_timestamp = false;
  // csv / recbole: the columns the first record chose; csv: the line it was on.
  size_t count = 0;
  int user = -1, item = -1, rating = -1, timestamp = -1;
  int64_t first_record_line = 0;
};

// Reads the start of the file: the format (detected or checked as parse_file does, with the same
// errors) and the first record. Every rank may call it.
FileLayout file_layout(const std::string& path, const ParseOptions& options);

// The rows of bytes [begin, end) of a splittable file, a piece that starts at a record boundary
// and whose first line is line `first_line` of the file (messages name the file's lines). The
// piece at 0 reads the first record itself. No rows is not an error here.
// `users` / `items`: dictionaries kept across pieces (one rank's): the piece's ids are numbered in
// them, and its user_ids / item_ids stay empty (a new piece does not intern its ids anew).
RawInteractions parse_piece(const FileLayout& layout, uint64_t begin, uint64_t end, int64_t first_line,
                            IdDict* users = nullptr, IdDict* items = nullptr);

// The same for a whole file of any kind (read by one rank): parse_file, except that no rows is
// not an error.
RawInteractions parse_whole(const FileLayout& layout);

}  // namespace shardrec::io
