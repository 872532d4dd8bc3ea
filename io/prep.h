// The in-memory preparation pipeline behind `shardrec prep`: parse raw logs, filter, give users
// and items dense ids, and split into train / valid / test.
//
// Steps, in this order:
//  1. Parse every input (io/parsers.h). Rows keep their input order.
//     In ratio and loo mode several inputs are concatenated (in the given order) into one data
//     set, e.g. the two rated files of the Inverse Learning ML-1M release; in presplit mode the
//     files given the same split are concatenated into that split.
//     With rating_range set, every rating must lie in it; with label_threshold set, every input
//     needs a rating column and the dataset records the threshold (labels = rating > threshold).
//  2. Rating threshold (optional): keep rows with rating >= threshold, as RecBole's
//     `val_interval` / implicit-feedback threshold does. Needs a rating column.
//  3. Dedup (default on): of repeated (user, item) pairs keep the first row in input order. In
//     presplit mode each split is deduplicated on its own (a pair may appear in train and test).
//  4. k-core (user_core / item_core, 0 = off): repeatedly drop rows whose user has fewer than
//     user_core rows or whose item has fewer than item_core rows, until every remaining user and
//     item passes. Counts are over all rows (all files in presplit mode), before splitting. The
//     result is the unique largest subset that passes, whatever the order of removal.
//  5. Dense ids, separately for users and items: sorted by raw id, in numeric order when every
//     remaining raw id of that kind is an integer (ties such as "7" and "07" by bytes), otherwise
//     in byte order. In presplit mode the ids cover those in any file.
//  6. Split:
//     - ratio ("ratio", alias "ro"; RecBole's RO split): per user with n rows, ratios r (2 or 3
//       entries: train, [valid,] test) are normalised to sum 1 and the counts are exactly
//       RecBole's `_calcu_split_ids`:
//         cnt[k] = floor(r[k] * n) for k >= 1;  cnt[0] = n - sum(cnt[1:]);
//         then for k = last .. 1: stop if cnt[0] <= 1; if 0 < r[k] * n < 1, move one row from
//         train to part k (so a small user still gets a test row when it can spare one).
//       e.g. {0.8,0.1,0.1}: n=10 -> 8/1/1, n=2 -> 1/0/1, n=1 -> 1/0/0, n=5 -> 3/1/1.
//       Which rows go where: the user's rows (input order) are shuffled by
//       Permutation(n, hash64(seed, tag, user dense id)); the first cnt[0] shuffled rows are
//       train, then valid, then test. A pure function of (seed, data).
//     - leave-one-out ("loo"): per user, rows ordered by (timestamp, input order); the last goes to
//       test and the second last to valid when the user has >= 3 rows; with 2 rows the last goes
//       to test; a single row stays in train. Needs a timestamp column.
//     - presplit ("presplit"): inputs are [train, valid, test]; valid and test may be "" (absent).
//       Which file is which is said by `presplit_roles` (e.g. {"train", "test"}, or
//       {"train", "train", "test"}: a split named again gets several files); without it three
//       inputs are train, valid, test, and two files are an error (train,valid or train,test?).
//  7. Each split is sorted by user, stably: a user's rows keep input order (ratio, presplit) or
//     chronological order (loo). Ratings / timestamps are filled when every input has them.
//
// Errors are shardrec::Error naming the file (and line, for parse errors) or the option.
#pragma once
#include <cstdint>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "io/interactions.h"
#include "io/parsers.h"

namespace shardrec::io {

enum class SplitMode {
  Ratio,        // "ratio" (alias "ro"): random per-user ratio split
  LeaveOneOut,  // "loo": latest row -> test, second latest -> valid
  Presplit,     // "presplit": the files are already train / valid / test
};

SplitMode parse_split_mode(const std::string& name);
std::string split_mode_name(SplitMode mode);

// All knobs of `shardrec prep`. The parsing fields (format, separator, header, *_column) come from
// ParseOptions and apply to every input file.
struct PrepOptions : ParseOptions {
  // ratio / loo: one or more files (concatenated). presplit without roles: [train] or
  // [train, valid] or [train, valid, test], an empty string meaning that split is absent; with
  // roles: any number of files, none empty.
  std::vector<std::string> inputs;
  SplitMode split = SplitMode::Ratio;
  // presplit: the split of each input ("train", "valid" or "test"; train required; a split named
  // more than once has several files), as many as inputs. Empty: by position, except that two
  // files must say.
  std::vector<std::string> presplit_roles;
  // ratio split: {train, valid, test} or {train, test}; non-negative, normalised by their sum.
  std::vector<double> ratios{0.8, 0.1, 0.1};
  uint64_t seed = 0;  // ratio split randomness
  // Keep rows with rating >= threshold (implicit feedback). Unset = keep all.
  std::optional<double> rating_threshold;
  // Labeled rows (Inverse Learning): keep every row, with label = rating > label_threshold
  // (stored as the dataset's label_threshold attribute). Needs a rating column.
  std::optional<double> label_threshold;
  // Ratings must lie in [lo, hi] (checked when set); a row outside stops prep naming it.
  std::optional<std::pair<double, double>> rating_range;
  bool dedup = true;       // drop repeated (user, item) pairs, keeping the first
  int64_t user_core = 0;   // k-core: minimum rows per user (0 = off)
  int64_t item_core = 0;   // k-core: minimum rows per item (0 = off)
};

// Row counts after each step, for the command's log.
struct PrepReport {
  int64_t rows_read = 0;
  int64_t after_threshold = 0;
  int64_t after_dedup = 0;
  int64_t after_kcore = 0;
  int kcore_rounds = 0;  // filtering passes that removed something
  // Each file read, in reading order (provenance: the dataset's prep_config attribute).
  struct InputFile {
    std::string path, split;  // split: "train", "valid" or "test" (presplit), else "all"
    Format format = Format::Csv;
    uint64_t bytes = 0, hash = 0;  // as stored; hash = Fnv64 (io/input.h)
    int64_t rows = 0;
  };
  std::vector<InputFile> inputs;
  // Where the time and memory went (the parallel prep, in order; the caller may add its own):
  // seconds of the phase, and the peak resident memory of the fullest rank at its end (a
  // high-water mark, so the phase where it grows is the one that needs it).
  struct Phase {
    std::string name;
    double seconds = 0;
    double peak_mib = 0;
  };
  std::vector<Phase> phases;
};

PreparedDataset prepare(const PrepOptions& options, PrepReport* report = nullptr);

// The steps prepare() and the parallel prep (io/parallel_prep.h) share, so that both give the same
// data.
namespace prep_steps {
constexpr const char* kSplitRoles[3] = {"train", "valid", "test"};
// Checks the options (the messages name them).
void validate(const PrepOptions& o);
// Each input file with its split (0 train, 1 valid, 2 test), in the order read; ratio and loo:
// every file is split 0, the data set that is then split.
std::vector<std::pair<std::string, int>> input_slots(const PrepOptions& o);
// A number as messages show it (no trailing zeros).
std::string fmt(double v);
bool parse_integer(const std::string& s, int64_t& v);
// The dense-id order of raw ids: by value (ties by bytes) when every id is an integer, else bytes.
struct RawIdLess {
  bool numeric;
  bool operator()(const std::string& a, const std::string& b) const;
};
// The ratio split's parts (0 train, 1 valid, 2 test) of a user's n rows in input order; `ratios`
// as given (2 or 3 values).
class RatioSplit {
 public:
  RatioSplit(const std::vector<double>& ratios, uint64_t seed);
  void parts(int64_t user, int64_t n, int* part) const;

 private:
  std::vector<double> ratios_;  // normalised
  uint64_t seed_;
};
// Leave-one-out: `order` gets the rows 0..n-1 by (timestamp, input order) and part[k] the part of
// order[k].
void loo_parts(const double* timestamp, size_t n, std::vector<size_t>& order, int* part);
}  // namespace prep_steps

}  // namespace shardrec::io
