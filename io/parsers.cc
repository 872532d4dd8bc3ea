#include "io/parsers.h"

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <charconv>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <functional>
#include <unordered_map>

#include "base/error.h"
#include "io/input.h"
#include "io/text.h"

namespace shardrec::io {
namespace {

using Fields = std::vector<std::string_view>;
using text::fail_at;
using text::show;
using text::split;

std::string join(const Fields& fields) {
  std::string out;
  for (size_t i = 0; i < fields.size(); ++i) out += (i ? ", " : "") + std::string(fields[i]);
  return out;
}

bool is_space(char c) { return c == ' ' || c == '\t' || c == '\r' || c == '\n'; }

std::string_view trim(std::string_view s, char keep) {
  auto strip = [keep](char c) { return (c == ' ' || c == '\t') && c != keep; };
  while (!s.empty() && strip(s.front())) s.remove_prefix(1);
  while (!s.empty() && strip(s.back())) s.remove_suffix(1);
  return s;
}

// Splits on runs of spaces and tabs; no empty fields.
void split_ws(std::string_view line, Fields& out) {
  out.clear();
  size_t i = 0;
  while (i < line.size()) {
    while (i < line.size() && (line[i] == ' ' || line[i] == '\t')) ++i;
    const size_t start = i;
    while (i < line.size() && line[i] != ' ' && line[i] != '\t') ++i;
    if (i > start) out.push_back(line.substr(start, i - start));
  }
}

template <class T>
T number(std::string_view s, const char* what, const std::string& source, int64_t line) {
  T value{};
  const auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), value);
  if (s.empty() || ec != std::errc() || end != s.data() + s.size() || !std::isfinite(value))
    fail_at(source, line, "the " + std::string(what) + " " + show(s) + " is not a finite number");
  return value;
}

bool is_index(std::string_view s) {
  if (s.empty() || s.size() > 9) return false;
  for (char c : s)
    if (c < '0' || c > '9') return false;
  return true;
}

// Accumulates rows, interning raw ids so that later stages work on integers: into its own
// dictionaries (the result's user_ids / item_ids), or into the caller's (IdDict).
class Builder {
 public:
  Builder(const std::string& source, Format format, IdDict* users = nullptr, IdDict* items = nullptr)
      : users_(users ? users : &own_users_), items_(items ? items : &own_items_) {
    out_.source = source;
    out_.format = format;
  }
  void set_columns(bool rating, bool timestamp) {
    out_.has_rating = rating;
    out_.has_timestamp = timestamp;
    if (rating) out_.rating.reserve(expect_);
    if (timestamp) out_.timestamp.reserve(expect_);
  }
  // About how many rows will come (a piece of a large file): its vectors are allocated once
  // instead of grown by doubling, which at the end holds up to three times the rows.
  void expect(size_t rows) {
    expect_ = rows;
    out_.user.reserve(rows);
    out_.item.reserve(rows);
  }
  void add(std::string_view user, std::string_view item, int64_t line) {
    if (user.empty()) fail_at(out_.source, line, "empty user id");
    if (item.empty()) fail_at(out_.source, line, "empty item id");
    out_.user.push_back(intern(user, *users_));
    out_.item.push_back(intern(item, *items_));
  }
  int64_t rows() const { return static_cast<int64_t>(out_.size()); }
  void rating(float r) { out_.rating.push_back(r); }
  void timestamp(double t) { out_.timestamp.push_back(t); }
  RawInteractions finish(bool allow_empty = false) {
    if (out_.size() == 0 && !allow_empty) fail(out_.source + ": empty file: no interactions found");
    out_.user_ids = std::move(own_users_.names);
    out_.item_ids = std::move(own_items_.names);
    return std::move(out_);
  }

 private:
  static int64_t intern(std::string_view s, IdDict& d) { return d.intern(s); }
  RawInteractions out_;
  IdDict own_users_, own_items_;
  IdDict *users_, *items_;
  size_t expect_ = 0;
};

// ---- MovieLens: exactly four fields with a fixed separator ---------------------------------------

void parse_movielens(Input& in, std::string_view sep, const std::string& layout, Builder& b,
                     const std::string& source) {
  b.set_columns(true, true);
  Fields f;
  for_each_line(in, [&](std::string_view line, int64_t n) {
    split(line, sep, f);
    if (f.size() != 4)
      fail_at(source, n, "expected 4 fields (" + layout + "), found " + std::to_string(f.size()));
    b.add(f[0], f[1], n);
    b.rating(number<float>(f[2], "rating", source, n));
    b.timestamp(number<double>(f[3], "timestamp", source, n));
  });
}

// ---- Column-based formats (csv, recbole) ---------------------------------------------------------

struct Columns {
  size_t count = 0;  // fields per line
  int user = -1, item = -1, rating = -1, timestamp = -1;
};

// `f` holds the fields as values (trimmed, unquoted). `hint` ends a wrong field count's message.
void read_columns(const Fields& f, const Columns& c, Builder& b, const std::string& source,
                  int64_t n, const std::string& hint = "") {
  if (f.size() != c.count)
    fail_at(source, n, "expected " + std::to_string(c.count) + " fields, found " +
                           std::to_string(f.size()) + hint);
  b.add(f[c.user], f[c.item], n);
  if (c.rating >= 0) b.rating(number<float>(f[c.rating], "rating", source, n));
  if (c.timestamp >= 0) b.timestamp(number<double>(f[c.timestamp], "timestamp", source, n));
}

// What a file's first record chose, for the pieces that start further on (FileLayout).
void keep_columns(FileLayout& l, const Columns& c, int64_t line) {
  l.count = c.count;
  l.user = c.user;
  l.item = c.item;
  l.rating = c.rating;
  l.timestamp = c.timestamp;
  l.first_record_line = line;
}

// ---- RFC 4180 records (csv) ----------------------------------------------------------------------

// Records of delimited text: fields separated by `sep` (' ' = runs of spaces and tabs), each
// trimmed of surrounding spaces and tabs, or in double quotes, inside which separators, line
// breaks and doubled quotes ("" for ") belong to the field. A record whose quoted field runs past
// the end of its line continues on the next lines (numbered by its first).
class CsvRecords {
 public:
  CsvRecords(Input& in, char sep) : in_(in), sep_(sep) {}

  // The next record that is not a blank line; false at the end. The views hold until the next call.
  bool next(Fields& out, int64_t& line) {
    std::string_view s;
    do {
      if (!in_.next_line(s, line)) return false;
    } while (s.find_first_not_of(" \t") == std::string_view::npos);
    if (scan(s, out, line)) return true;
    // A quoted field goes on: join the following lines (rescanned whole; such records are rare).
    joined_.assign(s);
    for (int64_t n; in_.next_line(s, n);) {
      joined_ += '\n';
      joined_ += s;
      if (scan(joined_, out, line)) return true;
    }
    fail_at(in_.name(), line,
            "unterminated quoted field: no closing '\"' before the end of the file (the field "
            "starts on this line; a quote inside a quoted field is written \"\")");
  }

 private:
  bool is_sep(char c) const { return sep_ == ' ' ? c == ' ' || c == '\t' : c == sep_; }
  bool is_trim(char c) const { return (c == ' ' || c == '\t') && !is_sep(c); }

  // Splits record text s into out; false when a quoted field is still open at its end.
  bool scan(std::string_view s, Fields& out, int64_t line) {
    pieces_.clear();
    unquoted_.clear();
    const size_t n = s.size();
    auto at = [&](size_t i) {  // the line of offset i
      return line + std::count(s.begin(), s.begin() + static_cast<std::ptrdiff_t>(i), '\n');
    };
    auto field_no = [&] { return "field " + std::to_string(pieces_.size() + 1); };
    size_t i = 0;
    if (sep_ == ' ')
      while (i < n && is_sep(s[i])) ++i;
    for (;;) {
      while (i < n && is_trim(s[i])) ++i;
      if (i < n && s[i] == '"') {
        const size_t begin = unquoted_.size();
        for (++i;;) {
          const size_t q = s.find('"', i);
          if (q == std::string_view::npos) return false;
          unquoted_.append(s.substr(i, q - i));
          i = q + 1;
          if (i < n && s[i] == '"') {
            unquoted_ += '"';
            ++i;
            continue;
          }
          break;
        }
        while (i < n && is_trim(s[i])) ++i;
        if (i < n && !is_sep(s[i]))
          fail_at(in_.name(), at(i),
                  field_no() + ": " + show(s.substr(i, 1)) +
                      " after the closing quote (a quote inside a quoted field is written \"\")");
        pieces_.push_back({true, begin, unquoted_.size() - begin});
      } else {
        size_t j = i;
        while (j < n && !is_sep(s[j])) ++j;
        size_t e = j;
        while (e > i && is_trim(s[e - 1])) --e;
        if (s.substr(i, e - i).find('"') != std::string_view::npos)
          fail_at(in_.name(), at(i),
                  field_no() + " " + show(s.substr(i, e - i)) +
                      " has a '\"' inside but does not start with one: quote the whole field, "
                      "with \"\" for each quote in it (RFC 4180)");
        pieces_.push_back({false, i, e - i});
        i = j;
      }
      if (i >= n) break;
      ++i;  // the separator
      if (sep_ == ' ') {
        while (i < n && is_sep(s[i])) ++i;
        if (i >= n) break;
      }
    }
    out.clear();
    for (const Piece& p : pieces_)
      out.push_back(p.quoted ? std::string_view(unquoted_).substr(p.begin, p.size)
                             : s.substr(p.begin, p.size));
    return true;
  }

  struct Piece {
    bool quoted;  // in unquoted_ (else in the record text)
    size_t begin, size;
  };
  Input& in_;
  char sep_;
  std::string joined_, unquoted_;
  std::vector<Piece> pieces_;
};

// A csv column: a header name first (names may look like numbers), else a 0-based index.
int csv_column(const std::string& spec, const char* role, const Fields* header, size_t count,
               const std::string& source, int64_t line) {
  if (header) {
    for (size_t i = 0; i < header->size(); ++i)
      if ((*header)[i] == spec) return static_cast<int>(i);
  }
  if (is_index(spec)) {
    const int index = std::stoi(spec);
    if (static_cast<size_t>(index) >= count)
      fail_at(source, line, std::string(role) + " column index " + spec +
                                " is out of range: the line has " + std::to_string(count) +
                                " fields");
    return index;
  }
  if (header)
    fail_at(source, line, std::string(role) + " column " + show(spec) +
                              " not found in the header (columns: " + join(*header) + ")");
  fail(source + ": " + role + " column " + show(spec) +
       " is not a 0-based index, and names need a header line (header = true)");
}

// `use`: a piece further on in the file, whose columns the first record chose; `cap` records them.
void parse_csv(Input& in, const ParseOptions& o, Builder& b, const std::string& source,
               const FileLayout* use, FileLayout* cap) {
  const char sep = o.separator;
  const std::string sep_name = sep == '\t' ? "tab" : sep == ' ' ? "space" : show(std::string(1, sep));
  const std::string hint =
      sep == ' ' ? "" : " (a field that holds the separator " + sep_name + " must be in double quotes)";
  CsvRecords records(in, sep);
  Fields f;
  Columns c;
  int64_t n = 0;
  auto counted_for = [&](int64_t line) {
    return (o.header ? " (as in the header on line " : " (as on line ") + std::to_string(line) + ")" + hint;
  };
  if (use) {
    c = Columns{use->count, use->user, use->item, use->rating, use->timestamp};
    b.set_columns(c.rating >= 0, c.timestamp >= 0);
    const std::string counted = counted_for(use->first_record_line);
    while (records.next(f, n)) read_columns(f, c, b, source, n, counted);
    return;
  }
  if (!records.next(f, n)) return;  // empty: finish() says so
  {
    c.count = f.size();
    const Fields* header = o.header ? &f : nullptr;
    auto column = [&](const std::string& spec, const char* dflt, const char* role) {
      const std::string s = spec.empty() ? std::string(dflt) : spec;
      return s.empty() ? -1 : csv_column(s, role, header, c.count, source, n);
    };
    c.user = column(o.user_column, "0", "user");
    c.item = column(o.item_column, "1", "item");
    c.rating = column(o.rating_column, "", "rating");
    c.timestamp = column(o.timestamp_column, "", "timestamp");
    b.set_columns(c.rating >= 0, c.timestamp >= 0);
  }
  if (cap) keep_columns(*cap, c, n);
  const std::string counted = counted_for(n);
  if (!o.header) read_columns(f, c, b, source, n, counted);
  while (records.next(f, n)) read_columns(f, c, b, source, n, counted);
}

void parse_recbole(Input& in, const ParseOptions& o, Builder& b, const std::string& source,
                   const FileLayout* use, FileLayout* cap) {
  Fields f, names;
  std::vector<std::string> name_store;
  Columns c;
  bool first = !use;
  if (use) {
    c = Columns{use->count, use->user, use->item, use->rating, use->timestamp};
    b.set_columns(c.rating >= 0, c.timestamp >= 0);
  }
  for_each_line(in, [&](std::string_view line, int64_t n) {
    split(line, "\t", f);
    for (auto& field : f) field = trim(field, '\t');
    if (!first) {
      read_columns(f, c, b, source, n);
      return;
    }
    first = false;
    // Typed header: name:type, where the type is one of RecBole's four.
    for (auto field : f) {
      const size_t colon = field.find(':');
      if (colon == std::string_view::npos)
        fail_at(source, n, "header field " + show(field) +
                               " has no ':type' (expected a RecBole header like user_id:token)");
      const std::string_view type = field.substr(colon + 1);
      if (type != "token" && type != "float" && type != "token_seq" && type != "float_seq")
        fail_at(source, n, "header field " + show(field) + " has unknown type " + show(type) +
                               " (expected token, float, token_seq or float_seq)");
      name_store.emplace_back(field.substr(0, colon));
    }
    for (const auto& s : name_store) names.push_back(s);  // the line's view ends with this call
    c.count = names.size();
    auto column = [&](const std::string& spec, const char* dflt, bool required) {
      const std::string name = spec.empty() ? dflt : spec;
      for (size_t i = 0; i < names.size(); ++i)
        if (names[i] == name) return static_cast<int>(i);
      if (required || !spec.empty())
        fail_at(source, n, "column " + show(name) + " not found in the header (fields: " +
                               join(names) + ")");
      return -1;
    };
    c.user = column(o.user_column, "user_id", true);
    c.item = column(o.item_column, "item_id", true);
    c.rating = column(o.rating_column, "rating", false);
    c.timestamp = column(o.timestamp_column, "timestamp", false);
    b.set_columns(c.rating >= 0, c.timestamp >= 0);
    if (cap) keep_columns(*cap, c, n);
  });
}

// ---- Adjacency lists ------------------------------------------------------------------------------

void parse_adjacency(Input& in, Builder& b) {
  Fields f;
  for_each_line(in, [&](std::string_view line, int64_t n) {
    split_ws(line, f);
    for (size_t i = 1; i < f.size(); ++i) b.add(f[0], f[i], n);
  });
}

// ---- JSON: one object whose values are arrays of strings or numbers ------------------------------

class JsonParser {
 public:
  JsonParser(Input& in, Builder& b, const std::string& source, bool merge_duplicates)
      : in_(in), b_(b), source_(source), merge_(merge_duplicates) {}

  // Records: JSON Lines (one object per line), or with `array` one JSON array of objects (as
  // pandas' to_json(orient="records") writes). The fields named by the column options (defaults
  // user_id, item_id, and rating / timestamp when the first record has them) are the row, other
  // fields are skipped whatever their value.
  void parse_records(const ParseOptions& o, bool array) {
    const std::string user_key = o.user_column.empty() ? "user_id" : o.user_column;
    const std::string item_key = o.item_column.empty() ? "item_id" : o.item_column;
    std::string rating_key = o.rating_column, time_key = o.timestamp_column;
    bool first = true;
    if (array) {
      ws();
      expect('[', "'[' at the start of the document");
      ws();
    }
    for (bool done = array && peek() == ']'; !done;) {
      ws();
      if (!array && peek() < 0) break;
      const int64_t line = line_;
      expect('{', "'{' starting a record (JSON Lines: one object per line)");
      std::unordered_map<std::string, std::string> fields;  // the wanted fields' values as text
      std::string names;                                     // every field, for messages
      auto wanted = [&](const std::string& k) {
        return k == user_key || k == item_key || (!rating_key.empty() && k == rating_key) ||
               (!time_key.empty() && k == time_key) ||
               (first && ((o.rating_column.empty() && k == "rating") ||
                          (o.timestamp_column.empty() && k == "timestamp")));
      };
      ws();
      for (bool empty = peek() == '}'; !empty;) {
        ws();
        if (peek() != '"') error("a string key");
        const std::string key = string();
        names += (names.empty() ? "" : ", ") + key;
        ws();
        expect(':', "':' after the key");
        ws();
        if (wanted(key)) {
          const std::string value = scalar("a string or a number");
          if (!fields.emplace(key, value).second)
            fail_at(source_, line, "field " + show(key) + " appears twice in the record");
        } else {
          skip_value(0);
        }
        ws();
        if (peek() == '}') break;
        expect(',', "',' or '}' in the record");
      }
      in_.skip();  // the closing '}'
      if (first) {  // the first record decides the optional columns, as a header would
        if (rating_key.empty() && fields.count("rating")) rating_key = "rating";
        if (time_key.empty() && fields.count("timestamp")) time_key = "timestamp";
        b_.set_columns(!rating_key.empty(), !time_key.empty());
        first = false;
      }
      auto field = [&](const std::string& k) -> const std::string& {
        const auto it = fields.find(k);
        if (it == fields.end())
          fail_at(source_, line, "the record has no field " + show(k) + " (fields: " + names +
                                     "); name the columns with --user-col / --item-col / --rating-col / --time-col");
        return it->second;
      };
      const std::string& user = field(user_key);  // user first: the message names what is missing first
      b_.add(user, field(item_key), line);
      if (!rating_key.empty()) b_.rating(number<float>(field(rating_key), "rating", source_, line));
      if (!time_key.empty()) b_.timestamp(number<double>(field(time_key), "timestamp", source_, line));
      if (array) {
        ws();
        done = peek() == ']';
        if (!done) expect(',', "',' or ']' after a record");
      }
    }
    if (array) {
      in_.skip();  // the closing ']'
      ws();
      if (peek() >= 0) error("the end of the document after the closing ']'");
    }
  }

  void parse() {
    ws();
    expect('{', "'{' at the start of the document");
    ws();
    if (peek() == '}') {
      in_.skip();
    } else {
      for (;;) {
        ws();
        if (peek() != '"') error("a string key (user id)");
        const int64_t key_line = line_;
        const std::string user = string();
        if (auto [it, added] = keys_.try_emplace(user, key_line); !added && !merge_)
          fail_at(source_, key_line,
                  "user key " + show(user) + " appears again (first on line " +
                      std::to_string(it->second) +
                      "); give each user one key, or --json-duplicates merge to merge the lists");
        ws();
        expect(':', "':' after the key");
        ws();
        expect('[', "'[' starting the item list");
        ws();
        if (peek() == ']') {
          in_.skip();
        } else {
          for (;;) {
            ws();
            const int64_t line = line_;
            const std::string item = scalar();
            b_.add(user, item, line);
            ws();
            if (peek() == ']') {
              in_.skip();
              break;
            }
            expect(',', "',' or ']' in the item list");
          }
        }
        ws();
        if (peek() == '}') {
          in_.skip();
          break;
        }
        expect(',', "',' or '}' after an item list");
      }
    }
    ws();
    if (peek() >= 0) error("the end of the document after the closing '}'");
  }

 private:
  int peek(size_t k = 0) { return in_.peek(k); }

  [[noreturn]] void error(const std::string& expected) {
    std::string found = "end of file";
    if (const int c = peek(); c >= 0)
      found = c >= 0x20 && c < 0x7f ? "'" + std::string(1, static_cast<char>(c)) + "'"
                                    : "byte " + std::to_string(c);
    fail_at(source_, line_, "JSON syntax error: expected " + expected + ", found " + found);
  }

  void expect(char c, const char* what) {
    if (peek() != c) error(what);
    in_.skip();
  }

  void ws() {
    for (int c; (c = peek()) >= 0 && is_space(static_cast<char>(c)); in_.skip())
      if (c == '\n') ++line_;
  }

  // Any JSON value, read and dropped (a record's other fields).
  void skip_value(int depth) {
    if (depth > 64) error("a value nested at most 64 deep");
    const int c = peek();
    if (c == '"') {
      string();
    } else if (c == '-' || (c >= '0' && c <= '9')) {
      number_text();
    } else if (c == '{' || c == '[') {
      const char close = c == '{' ? '}' : ']';
      in_.skip();
      ws();
      if (peek() == close) {
        in_.skip();
        return;
      }
      for (;;) {
        ws();
        if (c == '{') {
          if (peek() != '"') error("a string key");
          string();
          ws();
          expect(':', "':' after the key");
          ws();
        }
        skip_value(depth + 1);
        ws();
        if (peek() == close) {
          in_.skip();
          return;
        }
        expect(',', c == '{' ? "',' or '}' in an object" : "',' or ']' in an array");
      }
    } else {
      for (const char* word : {"true", "false", "null"})
        if (c == word[0]) {
          for (const char* w = word; *w; ++w) expect(*w, word);
          return;
        }
      error("a JSON value");
    }
  }

  std::string scalar(const char* what = "an item id (string or number)") {
    if (peek() == '"') return string();
    if (peek() == '-' || (peek() >= '0' && peek() <= '9')) return number_text();
    error(what);
  }

  // A JSON number, kept as its text: the raw id is what the file says.
  std::string number_text() {
    std::string out;
    auto take = [&] {
      out += static_cast<char>(peek());
      in_.skip();
    };
    auto digits = [&] {
      const size_t d = out.size();
      while (peek() >= '0' && peek() <= '9') take();
      if (out.size() == d) error("a digit");
    };
    if (peek() == '-') take();
    if (peek() == '0')
      take();
    else
      digits();
    if (peek() == '.') {
      take();
      digits();
    }
    if (peek() == 'e' || peek() == 'E') {
      take();
      if (peek() == '+' || peek() == '-') take();
      digits();
    }
    return out;
  }

  unsigned hex4() {
    unsigned v = 0;
    for (int i = 0; i < 4; ++i) {
      const int c = peek();
      int d = c >= '0' && c <= '9'   ? c - '0'
              : c >= 'a' && c <= 'f' ? c - 'a' + 10
              : c >= 'A' && c <= 'F' ? c - 'A' + 10
                                     : -1;
      if (d < 0) error("4 hex digits after \\u");
      v = v * 16 + static_cast<unsigned>(d);
      in_.skip();
    }
    return v;
  }

  static void utf8(unsigned cp, std::string& out) {
    if (cp < 0x80) {
      out += static_cast<char>(cp);
    } else if (cp < 0x800) {
      out += static_cast<char>(0xC0 | (cp >> 6));
      out += static_cast<char>(0x80 | (cp & 0x3F));
    } else if (cp < 0x10000) {
      out += static_cast<char>(0xE0 | (cp >> 12));
      out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
      out += static_cast<char>(0x80 | (cp & 0x3F));
    } else {
      out += static_cast<char>(0xF0 | (cp >> 18));
      out += static_cast<char>(0x80 | ((cp >> 12) & 0x3F));
      out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
      out += static_cast<char>(0x80 | (cp & 0x3F));
    }
  }

  std::string string() {
    in_.skip();  // opening quote
    std::string out;
    for (;;) {
      if (peek() < 0) error("'\"' closing the string");
      const char c = static_cast<char>(peek());
      if (c == '"') {
        in_.skip();
        return out;
      }
      if (static_cast<unsigned char>(c) < 0x20) error("'\"' closing the string");
      in_.skip();
      if (c != '\\') {
        out += c;
        continue;
      }
      const int e = peek();
      if (e <= 0 || !std::strchr("\"\\/bfnrtu", e))
        error("a valid escape (\\\" \\\\ \\/ \\b \\f \\n \\r \\t \\uXXXX)");
      in_.skip();
      switch (e) {
        case '"': out += '"'; break;
        case '\\': out += '\\'; break;
        case '/': out += '/'; break;
        case 'b': out += '\b'; break;
        case 'f': out += '\f'; break;
        case 'n': out += '\n'; break;
        case 'r': out += '\r'; break;
        case 't': out += '\t'; break;
        case 'u': {
          unsigned cp = hex4();
          // A high surrogate must pair with a low one to form one code point.
          if (cp >= 0xD800 && cp < 0xDC00) {
            if (peek() != '\\' || peek(1) != 'u') error("a low surrogate \\u");
            in_.skip(2);
            const unsigned lo = hex4();
            if (lo < 0xDC00 || lo >= 0xE000) error("a low surrogate \\uDC00-\\uDFFF");
            cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
          } else if (cp >= 0xDC00 && cp < 0xE000) {
            error("a high surrogate before a low one");
          }
          utf8(cp, out);
          break;
        }
      }
    }
  }

  Input& in_;
  Builder& b_;
  const std::string& source_;
  const bool merge_;
  std::unordered_map<std::string, int64_t> keys_;  // user key -> line of its first appearance
  int64_t line_ = 1;
};

}  // namespace

Format parse_format(const std::string& name) {
  static constexpr Format kAll[] = {Format::MlDat, Format::MlUdata,   Format::RecBole,
                                    Format::Csv,   Format::Adjacency, Format::Json,
                                    Format::JsonLines, Format::Auto};
  std::string known;
  for (Format f : kAll) {
    if (name == format_name(f)) return f;
    known += (known.empty() ? "" : ", ") + format_name(f);
  }
  fail("unknown input format " + show(name) + " (known: " + known + ")");
}

std::string format_name(Format format) {
  switch (format) {
    case Format::MlDat: return "ml-dat";
    case Format::MlUdata: return "ml-udata";
    case Format::RecBole: return "recbole";
    case Format::Csv: return "csv";
    case Format::Adjacency: return "adjacency";
    case Format::Json: return "json";
    case Format::JsonLines: return "jsonl";
    case Format::Auto: return "auto";
  }
  return "?";
}

char parse_separator(const std::string& text) {
  if (text.size() == 1) return text[0];
  if (text == "tab" || text == "\\t") return '\t';
  if (text == "space") return ' ';
  if (text == "comma") return ',';
  if (text == "semicolon") return ';';
  if (text == "pipe") return '|';
  fail("separator " + show(text) +
       " must be one character or one of tab, \\t, space, comma, semicolon, pipe");
}

namespace {

constexpr size_t kHead = 1 << 16;  // bytes looked at to detect or check a format

// The first line of head that is not blank (without its line ending).
std::string_view first_line(std::string_view head) {
  for (;;) {
    const size_t nl = head.find('\n');
    std::string_view line = head.substr(0, nl);
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    if (line.find_first_not_of(" \t") != std::string_view::npos || nl == std::string_view::npos)
      return line;
    head.remove_prefix(nl + 1);
  }
}

bool is_number(std::string_view s) {
  double v;
  const auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  return !s.empty() && ec == std::errc() && end == s.data() + s.size();
}

// Whether the line holds one whole JSON object: its braces close at its end (outside strings).
bool whole_object(std::string_view line) {
  int depth = 0;
  bool in_string = false;
  for (size_t i = 0; i < line.size(); ++i) {
    const char c = line[i];
    if (in_string) {
      if (c == '\\') ++i;
      else if (c == '"') in_string = false;
    } else if (c == '"') {
      in_string = true;
    } else if (c == '{' || c == '[') {
      ++depth;
    } else if (c == '}' || c == ']') {
      if (--depth == 0) return trim(line.substr(i + 1), 0).find_first_not_of("\r") == std::string_view::npos;
    }
  }
  return false;
}

// A JSON document that is an array of objects (records), not the user -> items object.
bool array_of_records(std::string_view head) {
  const size_t a = head.find_first_not_of(" \t\r\n");
  if (a == std::string_view::npos || head[a] != '[') return false;
  const size_t b = head.find_first_not_of(" \t\r\n", a + 1);
  return b == std::string_view::npos || head[b] == '{' || head[b] == ']';
}

// What the content looks like, from its first line.
Format sniff(std::string_view head) {
  const size_t first = head.find_first_not_of(" \t\r\n");
  if (array_of_records(head)) return Format::Json;
  if (first != std::string_view::npos && head[first] == '{') {
    // A whole object on the first line and another '{' starting the next: JSON Lines.
    const std::string_view rest = head.substr(first);
    const size_t nl = rest.find('\n');
    const size_t next = nl == std::string_view::npos ? nl : rest.find_first_not_of(" \t\r\n", nl);
    if (next != std::string_view::npos && rest[next] == '{' && whole_object(rest.substr(0, nl)))
      return Format::JsonLines;
    return Format::Json;
  }
  const std::string_view line = first_line(head);
  Fields f;
  split(line, "\t", f);
  bool typed = !line.empty();
  for (auto field : f) {
    const size_t colon = field.find(':');
    const std::string_view type = colon == std::string_view::npos ? "" : trim(field, '\t').substr(colon + 1);
    typed = typed && (type == "token" || type == "float" || type == "token_seq" || type == "float_seq");
  }
  if (typed) return Format::RecBole;
  bool numbers = f.size() == 4;
  for (auto field : f) numbers = numbers && is_number(trim(field, '\t'));
  if (numbers) return Format::MlUdata;
  split(line, "::", f);
  if (f.size() == 4) return Format::MlDat;
  return Format::Csv;
}

std::string looks_like(Format f) {
  switch (f) {
    case Format::Json: return "a JSON document (it starts with '{')";
    case Format::JsonLines: return "JSON Lines (one object per line)";
    case Format::RecBole: return "a RecBole atomic file (typed header like user_id:token)";
    case Format::MlDat: return "MovieLens ratings.dat (fields separated by '::')";
    case Format::MlUdata: return "MovieLens u.data (four tab-separated numbers)";
    default: return "delimited text (csv)";
  }
}

// Whether content that sniffs as `seen` (first line `line`) can be read as `format`.
// Lenient where the format's own parser explains a bad file better (a RecBole header's types,
// JSON syntax).
bool fits(Format format, Format seen, std::string_view line, char sep) {
  const bool other = seen == Format::MlDat || seen == Format::MlUdata || seen == Format::RecBole;
  if (format == Format::Json) return seen == Format::Json || (!other && trim(line, 0).substr(0, 1) == "[");
  // One record is a JSON document too.
  if (format == Format::JsonLines) return seen == Format::JsonLines || seen == Format::Json;
  if (seen == Format::Json || seen == Format::JsonLines) return false;
  switch (format) {
    case Format::RecBole:
      return seen == format || (!other && line.find_first_of("\t:") != std::string_view::npos);
    case Format::MlDat: return seen == format;
    case Format::MlUdata: return line.find('\t') != std::string_view::npos;
    case Format::Adjacency:
      return seen != Format::RecBole && seen != Format::MlDat &&
             line.find(',') == std::string_view::npos;
    case Format::Csv:  // a user and an item column at least
      return sep == ' ' ? line.find_first_of(" \t") != std::string_view::npos
                        : line.find(sep) != std::string_view::npos;
    default: return true;
  }
}

// The options a file is read with: the format detected (or checked against the content), the
// separator of a .tsv; `records`: a JSON array of records.
ParseOptions resolve(Input& in, const ParseOptions& given, bool& records) {
  const std::string& source = in.name();
  ParseOptions options = given;
  const bool columns_set = !options.user_column.empty() || !options.item_column.empty() ||
                           !options.rating_column.empty() || !options.timestamp_column.empty();
  const std::string_view head = in.head(kHead);
  if (options.format == Format::Auto) {
    options.format = detect_format(source, head);
    // Column options are for csv, recbole and records (jsonl, a JSON array): with them, text
    // detected as anything else is csv.
    if (columns_set && options.format != Format::RecBole && options.format != Format::JsonLines &&
        !(options.format == Format::Json && array_of_records(head)))
      options.format = Format::Csv;
    // A .tsv is tab-separated columns by its name (tab-separated content alone could also be
    // adjacency lists, so it is not guessed); one without a tab on its first line keeps the
    // separator, as before detection.
    const std::string name = uncompressed_name(source);
    auto ends = [&](std::string_view ext) {
      return name.size() >= ext.size() &&
             std::equal(ext.begin(), ext.end(), name.end() - ext.size(),
                        [](char a, char b) { return a == std::tolower(static_cast<unsigned char>(b)); });
    };
    if (options.format == Format::Csv && (ends(".tsv") || ends(".tab")) &&
        first_line(head).find('\t') != std::string_view::npos)
      options.separator = '\t';
  }
  const Format seen = sniff(head);
  const std::string_view line = first_line(head);
  if (head.find_first_not_of(" \t\r\n") != std::string_view::npos &&
      !fits(options.format, seen, line, options.separator)) {
    if (options.format == Format::Csv && seen == Format::Csv) {
      const char* hint = line.find('\t') != std::string_view::npos
                             ? "give --sep tab (columns), or --format adjacency (lines of user item item ...)"
                         : line.find(' ') != std::string_view::npos
                             ? "give --sep space (columns), or --format adjacency (lines of user item item ...)"
                             : "give the right one with --sep";
      fail(source + ": the first line " + show(line) + " has no separator " +
           (options.separator == '\t' ? std::string("tab") : show(std::string(1, options.separator))) +
           ": " + hint);
    }
    fail(source + ": the content does not look like format " + format_name(options.format) +
         " but like " + looks_like(seen) + " (first line: " + show(line) + "); give --format " +
         format_name(seen) + ", or leave --format out to detect it");
  }
  records = options.format == Format::Json && array_of_records(head);
  if (columns_set && options.format != Format::Csv && options.format != Format::RecBole &&
      options.format != Format::JsonLines && !records)
    fail(source + ": column options apply to the csv, recbole and jsonl formats and JSON arrays of "
                  "records only, not to " +
         format_name(options.format) + " (its columns are fixed)");
  return options;
}

// Reads `in` with resolved options. `use` / `cap`: see parse_csv. `allow_empty`: no rows is no error.
RawInteractions parse_resolved(Input& in, const ParseOptions& options, bool records, const FileLayout* use,
                               FileLayout* cap, bool allow_empty, size_t expect_rows = 0, IdDict* users = nullptr,
                               IdDict* items = nullptr) {
  const std::string& source = in.name();
  Builder b(source, options.format, users, items);
  b.expect(expect_rows);
  if (options.progress)
    in.on_block([&](uint64_t bytes) { options.progress(source, bytes, b.rows()); });
  switch (options.format) {
    case Format::MlDat:
      parse_movielens(in, "::", "user::item::rating::timestamp", b, source);
      break;
    case Format::MlUdata:
      parse_movielens(in, "\t", "user<TAB>item<TAB>rating<TAB>timestamp", b, source);
      break;
    case Format::RecBole: parse_recbole(in, options, b, source, use, cap); break;
    case Format::Csv: parse_csv(in, options, b, source, use, cap); break;
    case Format::Adjacency: parse_adjacency(in, b); break;
    case Format::Json:
      if (records)
        JsonParser(in, b, source, false).parse_records(options, true);
      else
        JsonParser(in, b, source, options.json_merge_duplicates).parse();
      break;
    case Format::JsonLines: JsonParser(in, b, source, false).parse_records(options, false); break;
    case Format::Auto: break;  // resolved above
  }
  while (in.peek() >= 0) in.skip(kHead);  // the checksum covers the whole file
  RawInteractions out = b.finish(allow_empty);
  out.file_bytes = in.stored_bytes();
  out.file_hash = in.stored_hash();
  if (cap) {
    cap->has_rating = out.has_rating;
    cap->has_timestamp = out.has_timestamp;
  }
  return out;
}

RawInteractions parse(Input& in, const ParseOptions& given) {
  bool records = false;
  const ParseOptions options = resolve(in, given, records);
  return parse_resolved(in, options, records, nullptr, nullptr, false);
}

bool blank(char c) { return c == ' ' || c == '\t' || c == '\r' || c == '\n'; }

}  // namespace

Format detect_format(const std::string& path, std::string_view head) {
  const std::string name = uncompressed_name(path);
  auto has_ext = [&](const char* ext) {
    const size_t n = std::strlen(ext);
    if (name.size() < n) return false;
    for (size_t i = 0; i < n; ++i)
      if (std::tolower(static_cast<unsigned char>(name[name.size() - n + i])) != ext[i]) return false;
    return true;
  };
  if (has_ext(".json")) return Format::Json;
  if (has_ext(".jsonl") || has_ext(".ndjson")) return Format::JsonLines;
  if (has_ext(".inter")) return Format::RecBole;
  return sniff(head);
}

RawInteractions parse_text(std::string_view text, const std::string& source,
                           const ParseOptions& options) {
  Input in = Input::memory(text, source);
  return parse(in, options);
}

RawInteractions parse_file(const std::string& path, const ParseOptions& options) {
  Input in = Input::file(path);
  return parse(in, options);
}

FileLayout file_layout(const std::string& path, const ParseOptions& given) {
  FileLayout l;
  l.path = path;
  bool records = false;
  {
    Input in = Input::file(path);
    l.options = resolve(in, given, records);
  }
  l.options.progress = given.progress;
  std::error_code ec;
  l.size = std::filesystem::is_regular_file(path, ec) ? std::filesystem::file_size(path, ec) : 0;
  const Format f = l.options.format;
  l.splittable = std::filesystem::is_regular_file(path, ec) && uncompressed_name(path) == path &&
                 (f == Format::MlDat || f == Format::MlUdata || f == Format::RecBole || f == Format::Csv ||
                  f == Format::Adjacency);
  if (!l.splittable) return l;
  // The first record: from the first byte that is not blank to the end of its line, or for csv to
  // the first line end outside quotes.
  std::FILE* file = std::fopen(path.c_str(), "rb");
  if (!file) fail(path + ": cannot open file: " + std::strerror(errno));
  std::vector<char> buf(1 << 16);
  uint64_t at = 0;
  bool started = false, quoted = false, done = false;
  while (!done) {
    const size_t got = std::fread(buf.data(), 1, buf.size(), file);
    if (got == 0) break;
    for (size_t i = 0; i < got && !done; ++i, ++at) {
      const char c = buf[i];
      if (!started) {
        started = !blank(c);
        if (!started) continue;
      }
      if (f == Format::Csv && c == '"') quoted = !quoted;
      else if (c == '\n' && !quoted) done = true;
    }
  }
  std::fclose(file);
  l.first_record_end = at;
  // Read the first record as the whole file would, keeping what it chose.
  Input head(open_range(path, 0, at), path);
  parse_resolved(head, l.options, records, nullptr, &l, true);
  return l;
}

namespace {
// A multiplicative hash: the ids of a log are often consecutive, which a plain mask would cluster.
size_t slot_of(uint64_t key, size_t mask) { return (key * 0x9E3779B97F4A7C15ull) >> 24 & mask; }
}  // namespace

int64_t IdDict::intern_value(uint64_t v, std::string_view s) {
  if (2 * (used_ + 1) > slots_.size()) grow();
  const auto key = static_cast<uint32_t>(v + 1);
  const size_t mask = slots_.size() - 1;
  for (size_t i = slot_of(key, mask);; i = (i + 1) & mask) {
    Slot& slot = slots_[i];
    if (slot.key == key) return slot.id;
    if (slot.key == 0) {
      if (names.size() >= 0xFFFFFFFFull) fail("more than 2^32 - 1 distinct ids in one dictionary are not supported");
      slot = {key, static_cast<uint32_t>(names.size())};
      ++used_;
      names.emplace_back(s);
      return slot.id;
    }
  }
}

void IdDict::grow() {
  std::vector<Slot> slots(std::max<size_t>(1024, 2 * slots_.size()), Slot{0, 0});
  const size_t mask = slots.size() - 1;
  for (const Slot& old : slots_) {
    if (old.key == 0) continue;
    size_t i = slot_of(old.key, mask);
    while (slots[i].key != 0) i = (i + 1) & mask;
    slots[i] = old;
  }
  slots_.swap(slots);
}

RawInteractions parse_piece(const FileLayout& layout, uint64_t begin, uint64_t end, int64_t first_line, IdDict* users,
                            IdDict* items) {
  SHARDREC_CHECK(layout.splittable, layout.path + ": this file is read whole, not in pieces");
  // One row a line (all but adjacency lists): the rows from the line length of the first 64 KiB.
  size_t expect = 0;
  if (layout.options.format != Format::Adjacency && end - begin > (1 << 20)) {
    std::vector<char> head(1 << 16);
    if (std::FILE* f = std::fopen(layout.path.c_str(), "rb")) {
      size_t got = 0;
      if (std::fseek(f, static_cast<long>(begin), SEEK_SET) == 0) got = std::fread(head.data(), 1, head.size(), f);
      std::fclose(f);
      const auto lines = static_cast<double>(std::count(head.begin(), head.begin() + static_cast<std::ptrdiff_t>(got), '\n'));
      if (lines >= 16) expect = static_cast<size_t>(static_cast<double>(end - begin) * lines / static_cast<double>(got) * 1.02);
    }
  }
  Input in(open_range(layout.path, begin, end), layout.path, begin == 0 ? 1 : first_line);
  return parse_resolved(in, layout.options, false, begin == 0 ? nullptr : &layout, nullptr, true, expect, users, items);
}

RawInteractions parse_whole(const FileLayout& layout) {
  Input in = Input::file(layout.path);
  bool records = false;
  ParseOptions given = layout.options;
  const ParseOptions options = resolve(in, given, records);
  return parse_resolved(in, options, records, nullptr, nullptr, true);
}

}  // namespace shardrec::io
