// Top-K lists as recommend and similar-items print them: the query ids a file lists, this rank's
// lists as core/evaluator.h's top_k hands them over, and one writer for every format.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "core/evaluator.h"
#include "dist/comm.h"

namespace shardrec::cli {

// Dense ids of the raw ids listed in `path` (one per line; blank lines and # comments skipped),
// sorted and unique. raw: the raw id of each dense id; kind ("user", "item") and option name the
// error: an id the dataset does not have is an error naming the file and line.
std::vector<int64_t> listed_ids(const std::string& option, const std::string& path, const std::vector<std::string>& raw,
                                const std::string& kind);

// This rank's lists, flattened in the order top_k gives them: query, count, then the items (rows)
// and their scores.
struct RankedLists {
  std::vector<int64_t> rows;
  std::vector<float> scores;
  TopKSink sink();
};

// The names of the columns: tsv/csv write QUERY, rank, RESULT, score (a header, then one line per
// list entry); jsonl writes {"QUERY": id, "LIST": [ids], "scores": [...]} (one query a line).
struct ListColumns {
  std::string query, result, list;
};

// Collective: rank 0 gathers every rank's lists and writes them to `out` ("-": standard output) in
// `fmt` (tsv, csv or jsonl). Ranks hold contiguous ranges of queries, so rank order is query
// order. query_raw and item_raw (the raw ids) are needed on rank 0 only.
void write_ranked_lists(dist::Comm& comm, const RankedLists& mine, const ListColumns& cols,
                        const std::vector<std::string>& query_raw, const std::vector<std::string>& item_raw,
                        const std::string& fmt, const std::string& out);

}  // namespace shardrec::cli
