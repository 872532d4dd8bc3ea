#include "launch/ranked_lists.h"

#include <algorithm>
#include <fstream>
#include <unordered_map>

#include "base/error.h"
#include "io/text.h"
#include "launch/cli_util.h"

namespace shardrec::cli {

std::vector<int64_t> listed_ids(const std::string& option, const std::string& path, const std::vector<std::string>& raw,
                                const std::string& kind) {
  std::unordered_map<std::string, int64_t> dense;
  for (size_t i = 0; i < raw.size(); ++i) dense.emplace(raw[i], static_cast<int64_t>(i));
  std::ifstream in(path);
  if (!in) fail("option --" + option + ": cannot read " + path);
  std::vector<int64_t> out;
  std::string line;
  for (int64_t n = 1; std::getline(in, line); ++n) {
    line.erase(line.find_last_not_of(" \t\r") + 1);
    line.erase(0, line.find_first_not_of(" \t"));
    if (line.empty() || line[0] == '#') continue;
    auto it = dense.find(line);
    if (it == dense.end()) io::text::fail_at(path, n, kind + " " + io::text::show(line) + " is not in the dataset");
    out.push_back(it->second);
  }
  std::sort(out.begin(), out.end());
  out.erase(std::unique(out.begin(), out.end()), out.end());
  return out;
}

TopKSink RankedLists::sink() {
  return [this](int64_t q, std::span<const int64_t> items, std::span<const float> s) {
    rows.push_back(q);
    rows.push_back(static_cast<int64_t>(items.size()));
    rows.insert(rows.end(), items.begin(), items.end());
    scores.insert(scores.end(), s.begin(), s.end());
  };
}

void write_ranked_lists(dist::Comm& comm, const RankedLists& mine, const ListColumns& cols,
                        const std::vector<std::string>& query_raw, const std::vector<std::string>& item_raw,
                        const std::string& fmt, const std::string& out) {
  const auto all_rows = dist::allgather(comm, mine.rows);
  const auto all_scores = dist::allgather(comm, mine.scores);
  if (comm.rank() != 0) return;
  const char sep = fmt == "csv" ? ',' : '\t';
  std::string text = fmt == "jsonl" ? ""
                                    : cols.query + sep + "rank" + sep + cols.result + sep + "score\n";
  // Appended rather than operator+ on a literal, which GCC 12 warns about (-Wrestrict).
  std::string query_key = "{", list_key = ", ";
  query_key.append(json_str(cols.query)).append(": ");
  list_key.append(json_str(cols.list)).append(": [");
  for (int r = 0; r < comm.size(); ++r) {
    const auto& rv = all_rows[r];
    const float* sv = all_scores[r].data();
    for (size_t at = 0; at < rv.size();) {
      const std::string& query = query_raw[rv[at]];
      const int64_t n = rv[at + 1];
      const int64_t* items = &rv[at + 2];
      if (fmt == "jsonl") {
        std::string it, sc;
        for (int64_t j = 0; j < n; ++j) {
          it.append(j ? ", " : "").append(json_str(item_raw[items[j]]));
          sc.append(j ? ", " : "").append(json_number(sv[j]));
        }
        text += query_key + json_str(query) + list_key + it + "], \"scores\": [" + sc + "]}\n";
      } else {
        for (int64_t j = 0; j < n; ++j)
          text.append(query).append(1, sep).append(std::to_string(j + 1)).append(1, sep)
              .append(item_raw[items[j]]).append(1, sep).append(json_number(sv[j])).append("\n");
      }
      sv += n;
      at += 2 + static_cast<size_t>(n);
    }
  }
  write_output(out, text);
}

}  // namespace shardrec::cli
