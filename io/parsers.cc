#include "io/parsers.h"

#include <cerrno>
#include <charconv>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <unordered_map>

#include "base/error.h"
#include "io/text.h"

namespace shardrec::io {
namespace {

using Fields = std::vector<std::string_view>;
using text::fail_at;
using text::for_each_line;
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

struct StringHash {
  using is_transparent = void;
  size_t operator()(std::string_view s) const { return std::hash<std::string_view>{}(s); }
};

// Accumulates rows, interning raw ids so that later stages work on integers.
class Builder {
 public:
  explicit Builder(const std::string& source) { out_.source = source; }
  void set_columns(bool rating, bool timestamp) {
    out_.has_rating = rating;
    out_.has_timestamp = timestamp;
  }
  void add(std::string_view user, std::string_view item, int64_t line) {
    if (user.empty()) fail_at(out_.source, line, "empty user id");
    if (item.empty()) fail_at(out_.source, line, "empty item id");
    out_.user.push_back(intern(user, users_, out_.user_ids));
    out_.item.push_back(intern(item, items_, out_.item_ids));
  }
  void rating(float r) { out_.rating.push_back(r); }
  void timestamp(double t) { out_.timestamp.push_back(t); }
  RawInteractions finish() {
    if (out_.size() == 0) fail(out_.source + ": empty file: no interactions found");
    return std::move(out_);
  }

 private:
  using Index = std::unordered_map<std::string, int64_t, StringHash, std::equal_to<>>;
  static int64_t intern(std::string_view s, Index& index, std::vector<std::string>& names) {
    if (auto it = index.find(s); it != index.end()) return it->second;
    const auto id = static_cast<int64_t>(names.size());
    names.emplace_back(s);
    index.emplace(names.back(), id);
    return id;
  }
  RawInteractions out_;
  Index users_, items_;
};

// ---- MovieLens: exactly four fields with a fixed separator ---------------------------------------

void parse_movielens(std::string_view text, std::string_view sep, const std::string& layout,
                     Builder& b, const std::string& source) {
  b.set_columns(true, true);
  Fields f;
  for_each_line(text, [&](std::string_view line, int64_t n) {
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

// `keep`: a separator that trimming must leave alone; `unquote`: strip one pair of '"' (csv).
void read_columns(const Fields& f, const Columns& c, Builder& b, const std::string& source,
                  int64_t n, char keep, bool unquote) {
  if (f.size() != c.count)
    fail_at(source, n, "expected " + std::to_string(c.count) + " fields, found " +
                           std::to_string(f.size()));
  auto field = [&](int i) {
    std::string_view s = trim(f[i], keep);
    if (unquote && s.size() >= 2 && s.front() == '"' && s.back() == '"')
      s = s.substr(1, s.size() - 2);
    return s;
  };
  b.add(field(c.user), field(c.item), n);
  if (c.rating >= 0) b.rating(number<float>(field(c.rating), "rating", source, n));
  if (c.timestamp >= 0) b.timestamp(number<double>(field(c.timestamp), "timestamp", source, n));
}

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

void parse_csv(std::string_view text, const ParseOptions& o, Builder& b,
               const std::string& source) {
  const char sep = o.separator;
  const char keep = sep;  // trimming must not eat a tab or space separator
  Fields f, header_fields;
  Columns c;
  bool first = true;
  for_each_line(text, [&](std::string_view line, int64_t n) {
    if (sep == ' ')
      split_ws(line, f);
    else
      split(line, std::string_view(&sep, 1), f);
    if (first) {
      first = false;
      c.count = f.size();
      const Fields* header = nullptr;
      if (o.header) {
        for (auto s : f) header_fields.push_back(trim(s, keep));
        for (auto& s : header_fields)
          if (s.size() >= 2 && s.front() == '"' && s.back() == '"') s = s.substr(1, s.size() - 2);
        header = &header_fields;
      }
      auto column = [&](const std::string& spec, const char* dflt, const char* role) {
        const std::string s = spec.empty() ? std::string(dflt) : spec;
        return s.empty() ? -1 : csv_column(s, role, header, c.count, source, n);
      };
      c.user = column(o.user_column, "0", "user");
      c.item = column(o.item_column, "1", "item");
      c.rating = column(o.rating_column, "", "rating");
      c.timestamp = column(o.timestamp_column, "", "timestamp");
      b.set_columns(c.rating >= 0, c.timestamp >= 0);
      if (o.header) return;
    }
    read_columns(f, c, b, source, n, keep, true);
  });
}

void parse_recbole(std::string_view text, const ParseOptions& o, Builder& b,
                   const std::string& source) {
  Fields f, names;
  Columns c;
  bool first = true;
  for_each_line(text, [&](std::string_view line, int64_t n) {
    split(line, "\t", f);
    if (!first) {
      read_columns(f, c, b, source, n, '\t', false);
      return;
    }
    first = false;
    // Typed header: name:type, where the type is one of RecBole's four.
    for (auto field : f) {
      field = trim(field, '\t');
      const size_t colon = field.find(':');
      if (colon == std::string_view::npos)
        fail_at(source, n, "header field " + show(field) +
                               " has no ':type' (expected a RecBole header like user_id:token)");
      const std::string_view type = field.substr(colon + 1);
      if (type != "token" && type != "float" && type != "token_seq" && type != "float_seq")
        fail_at(source, n, "header field " + show(field) + " has unknown type " + show(type) +
                               " (expected token, float, token_seq or float_seq)");
      names.push_back(field.substr(0, colon));
    }
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
  });
}

// ---- Adjacency lists ------------------------------------------------------------------------------

void parse_adjacency(std::string_view text, Builder& b) {
  Fields f;
  for_each_line(text, [&](std::string_view line, int64_t n) {
    split_ws(line, f);
    for (size_t i = 1; i < f.size(); ++i) b.add(f[0], f[i], n);
  });
}

// ---- JSON: one object whose values are arrays of strings or numbers ------------------------------

class JsonParser {
 public:
  JsonParser(std::string_view text, Builder& b, const std::string& source)
      : p_(text.data()), end_(text.data() + text.size()), b_(b), source_(source) {}

  void parse() {
    ws();
    expect('{', "'{' at the start of the document");
    ws();
    if (peek() == '}') {
      ++p_;
    } else {
      for (;;) {
        ws();
        if (peek() != '"') error("a string key (user id)");
        const std::string user = string();
        ws();
        expect(':', "':' after the key");
        ws();
        expect('[', "'[' starting the item list");
        ws();
        if (peek() == ']') {
          ++p_;
        } else {
          for (;;) {
            ws();
            const int64_t line = line_;
            const std::string item = scalar();
            b_.add(user, item, line);
            ws();
            if (peek() == ']') {
              ++p_;
              break;
            }
            expect(',', "',' or ']' in the item list");
          }
        }
        ws();
        if (peek() == '}') {
          ++p_;
          break;
        }
        expect(',', "',' or '}' after an item list");
      }
    }
    ws();
    if (p_ != end_) error("the end of the document after the closing '}'");
  }

 private:
  char peek() const { return p_ < end_ ? *p_ : '\0'; }

  [[noreturn]] void error(const std::string& expected) const {
    std::string found = "end of file";
    if (p_ < end_) {
      const auto c = static_cast<unsigned char>(*p_);
      found = c >= 0x20 && c < 0x7f ? "'" + std::string(1, *p_) + "'"
                                    : "byte " + std::to_string(static_cast<int>(c));
    }
    fail_at(source_, line_, "JSON syntax error: expected " + expected + ", found " + found);
  }

  void expect(char c, const char* what) {
    if (peek() != c) error(what);
    ++p_;
  }

  void ws() {
    while (p_ < end_ && is_space(*p_)) {
      if (*p_ == '\n') ++line_;
      ++p_;
    }
  }

  std::string scalar() {
    if (peek() == '"') return string();
    if (peek() == '-' || (peek() >= '0' && peek() <= '9')) return number_text();
    error("an item id (string or number)");
  }

  // A JSON number, kept as its text: the raw id is what the file says.
  std::string number_text() {
    const char* start = p_;
    auto digits = [&] {
      const char* d = p_;
      while (p_ < end_ && *p_ >= '0' && *p_ <= '9') ++p_;
      if (p_ == d) error("a digit");
    };
    if (peek() == '-') ++p_;
    if (peek() == '0')
      ++p_;
    else
      digits();
    if (peek() == '.') {
      ++p_;
      digits();
    }
    if (peek() == 'e' || peek() == 'E') {
      ++p_;
      if (peek() == '+' || peek() == '-') ++p_;
      digits();
    }
    return std::string(start, p_);
  }

  unsigned hex4() {
    unsigned v = 0;
    for (int i = 0; i < 4; ++i) {
      const char c = peek();
      int d = c >= '0' && c <= '9'   ? c - '0'
              : c >= 'a' && c <= 'f' ? c - 'a' + 10
              : c >= 'A' && c <= 'F' ? c - 'A' + 10
                                     : -1;
      if (d < 0) error("4 hex digits after \\u");
      v = v * 16 + static_cast<unsigned>(d);
      ++p_;
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
    ++p_;  // opening quote
    std::string out;
    for (;;) {
      if (p_ == end_) error("'\"' closing the string");
      const char c = *p_;
      if (c == '"') {
        ++p_;
        return out;
      }
      if (static_cast<unsigned char>(c) < 0x20) error("'\"' closing the string");
      ++p_;
      if (c != '\\') {
        out += c;
        continue;
      }
      const char e = peek();
      ++p_;
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
            if (peek() != '\\' || p_ + 1 >= end_ || p_[1] != 'u') error("a low surrogate \\u");
            p_ += 2;
            const unsigned lo = hex4();
            if (lo < 0xDC00 || lo >= 0xE000) error("a low surrogate \\uDC00-\\uDFFF");
            cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
          } else if (cp >= 0xDC00 && cp < 0xE000) {
            error("a high surrogate before a low one");
          }
          utf8(cp, out);
          break;
        }
        default:
          --p_;
          error("a valid escape (\\\" \\\\ \\/ \\b \\f \\n \\r \\t \\uXXXX)");
      }
    }
  }

  const char* p_;
  const char* end_;
  Builder& b_;
  const std::string& source_;
  int64_t line_ = 1;
};

std::string read_whole_file(const std::string& path) {
  std::error_code ec;
  if (std::filesystem::is_directory(path, ec)) fail(path + ": is a directory, not a file");
  std::ifstream in(path, std::ios::binary);
  if (!in) fail(path + ": cannot open file: " + std::strerror(errno));
  in.seekg(0, std::ios::end);
  const std::streamoff size = in.tellg();
  if (size < 0) fail(path + ": cannot determine the file size");
  in.seekg(0, std::ios::beg);
  std::string text(static_cast<size_t>(size), '\0');
  if (!in.read(text.data(), size)) fail(path + ": read error");
  return text;
}

}  // namespace

Format parse_format(const std::string& name) {
  static constexpr Format kAll[] = {Format::MlDat,     Format::MlUdata, Format::RecBole,
                                    Format::Csv,       Format::Adjacency, Format::Json};
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

RawInteractions parse_text(std::string_view text, const std::string& source,
                           const ParseOptions& options) {
  if (text.substr(0, 3) == "\xEF\xBB\xBF") text.remove_prefix(3);  // UTF-8 byte-order mark
  const bool columns_set = !options.user_column.empty() || !options.item_column.empty() ||
                           !options.rating_column.empty() || !options.timestamp_column.empty();
  if (columns_set && options.format != Format::Csv && options.format != Format::RecBole)
    fail(source + ": column options apply to the csv and recbole formats only, not to " +
         format_name(options.format) + " (its columns are fixed)");

  Builder b(source);
  switch (options.format) {
    case Format::MlDat:
      parse_movielens(text, "::", "user::item::rating::timestamp", b, source);
      break;
    case Format::MlUdata:
      parse_movielens(text, "\t", "user<TAB>item<TAB>rating<TAB>timestamp", b, source);
      break;
    case Format::RecBole: parse_recbole(text, options, b, source); break;
    case Format::Csv: parse_csv(text, options, b, source); break;
    case Format::Adjacency: parse_adjacency(text, b); break;
    case Format::Json: JsonParser(text, b, source).parse(); break;
  }
  return b.finish();
}

RawInteractions parse_file(const std::string& path, const ParseOptions& options) {
  const std::string text = read_whole_file(path);
  return parse_text(text, path, options);
}

}  // namespace shardrec::io
