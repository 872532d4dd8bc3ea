// shardrec prep: raw interactions (and item features) into a shardrec HDF5 dataset.
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <string_view>

#include "base/error.h"
#include "io/dataset.h"
#include "io/features.h"
#include "io/input.h"
#include "io/parallel_prep.h"
#include "io/prep.h"
#include "launch/cli_util.h"
#include "launch/commands.h"
#include "launch/options.h"

namespace shardrec::cli {
namespace {


// Every option as resolved (defaults included), and what each input file was: prep_config.
std::string config_json(const Options& opts, const io::PrepReport& rep) {
  std::string s = "{\"command\": \"prep\", \"options\": {";
  // How the run used memory is not what it made: the budget and spill directory are left out, so
  // that the file's bytes do not depend on them.
  bool first = true;
  for (const auto& opt : opts) {
    if (opt.name == "memory-budget" || opt.name == "tmp-dir") continue;
    s += (first ? "" : ", ") + json_str(opt.name) + ": " + json_str(opt.value());
    first = false;
  }
  s += "}, \"inputs\": [";
  for (size_t k = 0; k < rep.inputs.size(); ++k) {
    const auto& in = rep.inputs[k];
    s += std::string(k ? ", " : "") + "{\"path\": " + json_str(in.path) +
         ", \"split\": " + json_str(in.split) + ", \"format\": " + json_str(io::format_name(in.format)) +
         ", \"bytes\": " + std::to_string(in.bytes) + ", \"fnv64_blocks\": " + json_str(io::Fnv64{in.hash}.hex()) +
         ", \"rows\": " + std::to_string(in.rows) + "}";
  }
  return s + "]}";
}

using Clock = std::chrono::steady_clock;
double seconds_since(Clock::time_point t) { return std::chrono::duration<double>(Clock::now() - t).count(); }

}  // namespace

int cmd_prep(int argc, char** argv) {
  io::PrepOptions o;
  o.seed = 2020;
  std::string out, format = "auto", sep = ",", split = "ratio", rating_range, unknown = "error",
              presplit, json_duplicates = "error";
  std::vector<std::string> feature_specs;
  double progress = 5, budget_mib = 0;
  std::string tmp_dir;
  bool json = false;
  const Options opts = {
      Option("input", o.inputs, "input file(s), concatenated; with --split presplit: train [valid [test]], or any files with --presplit").abbrev('i'),
      Option("out", out, "output dataset (.h5)").abbrev('o').required(),
      Option("format", format,
             "auto (from the extension and content; csv when --sep or --header is given), ml-dat "
             "(ratings.dat, '::'), ml-udata (u.data, tab), recbole (.inter), csv (.tsv: tab), adjacency, json, "
             "jsonl (one record per line; a json array of records reads the same)"),
      Option("sep", sep, "csv: separator (a character, 'tab' or 'space')"),
      Option("header", o.header, "csv: the first line names the columns"),
      Option("user-col", o.user_column, "user column (index, header name or jsonl field)"),
      Option("item-col", o.item_column, "item column"),
      Option("rating-col", o.rating_column, "rating column"),
      Option("time-col", o.timestamp_column, "timestamp column"),
      Option("split", split, "ratio, loo (leave-one-out by time) or presplit"),
      Option("presplit", presplit,
             "presplit: the split of each input file in order, e.g. train,test or train,train,test (a split "
             "named again has several files; needed for two files; three default to train,valid,test)"),
      Option("json-duplicates", json_duplicates, "json: a user key given twice is an error, or merge its lists")
          .choices({"error", "merge"}),
      Option("ratios", o.ratios, "ratio split: train,valid,test").at_least(0),
      Option("seed", o.seed, "seed of the ratio split"),
      Option("threshold", o.rating_threshold, "keep rows with rating >= this (implicit feedback)"),
      Option("label-threshold", o.label_threshold,
             "labeled rows (gmf/neumf): keep every row, label = rating > this (Inverse Learning: 2)"),
      Option("rating-range", rating_range, "ratings must lie in LO:HI (e.g. 1:5)"),
      Option("dedup", o.dedup, "drop repeated (user, item) pairs"),
      Option("user-core", o.user_core, "k-core: minimum rows per user").at_least(0),
      Option("item-core", o.item_core, "k-core: minimum rows per item").at_least(0),
      Option("features", feature_specs,
             "item features, repeatable: NAME=PATH (.npy, .csv, .tsv, .h5), NAME=PATH:FORMAT or "
             "NAME=PATH:recbole:COLUMN (multi-hot from a RecBole .item file)"),
      Option("memory-budget", budget_mib,
             "MiB a rank may hold for rows (0 = no budget: rows in memory); with a budget, rows spill to "
             "unnamed files in --tmp-dir. Ids and their raw strings are not counted")
          .at_least(0),
      Option("tmp-dir", tmp_dir, "directory of the spill files with --memory-budget (default: the output's directory)"),
      Option("progress", progress, "seconds between progress lines on stderr while reading (0 = none)").at_least(0),
      Option("json", json, "print a machine-readable summary (one JSON object) on stdout instead of the text one")
          .flag(),
      Option("features-unknown", unknown,
             "feature rows of raw item ids the dataset lacks (e.g. removed by k-core): error or skip")
          .choices({"error", "skip"}),
  };
  const Args args = parse(argc, argv, "usage: shardrec prep --input FILE... --out DATA.h5 [options]", opts);
  if (args.help) return 0;
  // The csv-only options say what the file is.
  if (!args.has("format") && (args.has("sep") || args.has("header"))) format = "csv";
  if (o.inputs.empty()) fail("option --input: at least one input file is required");
  o.format = io::parse_format(format);
  o.separator = io::parse_separator(sep);
  o.split = io::parse_split_mode(split);
  o.json_merge_duplicates = json_duplicates == "merge";
  for (size_t a = 0, b; !presplit.empty() && a <= presplit.size(); a = b + 1) {
    b = std::min(presplit.find(',', a), presplit.size());
    o.presplit_roles.push_back(presplit.substr(a, b - a));
  }
  if (!rating_range.empty()) {
    std::replace(rating_range.begin(), rating_range.end(), ':', ',');
    std::vector<double> lo_hi;
    const Option range("rating-range", lo_hi, "");
    range.set({rating_range});
    if (lo_hi.size() != 2) range.bad("expected LO:HI, e.g. 1:5");
    o.rating_range = std::make_pair(lo_hi[0], lo_hi[1]);
  }
  // Specs are checked before the (slow) preparation, so a typo fails at once.
  std::vector<io::FeatureSpec> features;
  for (const auto& text : feature_specs) {
      try {
        features.push_back(io::parse_feature_spec(text));
      } catch (const Error& e) {
        fail(std::string("option --features: ") + e.what());
      }
      for (size_t k = 0; k + 1 < features.size(); ++k)
        if (features[k].name == features.back().name)
          fail("option --features: modality '" + features.back().name + "' is given twice");
    }
  for (auto& spec : features) spec.unknown = unknown == "skip" ? io::UnknownIds::kSkip : io::UnknownIds::kError;
  return run_mpi(
      [&](dist::Comm& comm) {
        const Log log(args.log_level, comm.rank() == 0);
        const auto start = Clock::now();
        if (progress > 0 && log.info()) {
          // The stored bytes of every input, for the time left; files are read in the order given
          // (each rank reads its share; the line is rank 0's).
          std::vector<uint64_t> before;  // stored bytes of the inputs before input k
          uint64_t total = 0;
          for (const auto& path : o.inputs) {
            before.push_back(total);
            std::error_code ec;
            if (!path.empty()) total += std::filesystem::file_size(path, ec) * !ec;
          }
          const double share = 1.0 / comm.size();
          o.progress = [&, before, total, share, throttle = Throttle(progress)](const std::string& file, uint64_t bytes,
                                                                                int64_t rows) mutable {
            if (!throttle.due()) return;
            const auto k = std::find(o.inputs.begin(), o.inputs.end(), file) - o.inputs.begin();
            const uint64_t done = (static_cast<size_t>(k) < before.size() ? before[k] : 0) + bytes;
            const double mb = static_cast<double>(bytes) / (1 << 20), s = seconds_since(start);
            const double rate = static_cast<double>(done) / (1 << 20) / s;  // over every input so far
            std::string left;
            const double all = static_cast<double>(total) * (comm.size() > 1 ? share : 1.0);
            if (all >= static_cast<double>(done) && done > 0)
              left = ", " + format_number(std::round(s * (all - static_cast<double>(done)) / static_cast<double>(done))) +
                     " s left reading";
            std::fprintf(stderr, "prep: %s: %lld rows, %.0f MiB read, %.1f MiB/s%s\n", file.c_str(), (long long)rows,
                         mb, rate, left.c_str());
          };
        }
        io::PrepReport rep;
        // SHARDREC_PREP_PIECE_BYTES: the least bytes of a rank's piece of a file (tests cut small
        // files into pieces with it).
        uint64_t piece_bytes = 4 << 20;
        if (const char* e = std::getenv("SHARDREC_PREP_PIECE_BYTES")) piece_bytes = std::max<uint64_t>(1, std::strtoull(e, nullptr, 10));
        io::PrepMemory memory;
        memory.budget_bytes = static_cast<uint64_t>(budget_mib * 1024 * 1024);
        memory.tmp_dir = tmp_dir;
        if (memory.tmp_dir.empty()) {
          memory.tmp_dir = std::filesystem::path(out).parent_path().string();
          if (memory.tmp_dir.empty()) memory.tmp_dir = ".";
        }
        const io::PreparedShard data = io::prepare_parallel(comm, o, &rep, piece_bytes, memory);
        const auto write_start = Clock::now();
        // The source line names the format as read (the detected one when --format was auto).
        if (format == "auto" && !rep.inputs.empty()) {
          format = io::format_name(rep.inputs[0].format);
          for (const auto& in : rep.inputs)
            if (io::format_name(in.format) != format) format = "auto";
        }
        std::string source = "shardrec prep --format " + format;
        for (auto& f : o.inputs) source += " " + f;
        // Modalities are built one at a time (one matrix in memory) inside the atomic write, so a
        // bad feature file leaves no dataset behind.
        std::FILE* text_out = json ? stderr : stdout;  // --json: stdout holds only the summary
        const std::string fingerprint = io::write_dataset_parallel(
            comm, data, out, source, [&](io::H5File& f, const std::vector<std::string>& item_raw) {
              f.write_attr_str("/", "prep_config", config_json(opts, rep));
              for (const auto& spec : features) {
                int64_t fill = 0, dim = 0, skipped = 0;
                std::vector<std::string> columns;
                const auto values = io::build_modality(spec, item_raw, &fill, &dim, &skipped, &columns);
                if (skipped > 0 && log.warn())
                  std::fprintf(stderr, "warning: modality %s: skipped %lld rows whose raw item id is not in the dataset\n",
                               spec.name.c_str(), (long long)skipped);
                if (fill > 0 && log.warn())
                  std::fprintf(stderr, "warning: modality %s: %lld of %lld items had no row and got the mean\n",
                               spec.name.c_str(), (long long)fill, (long long)data.num_items);
                io::write_modality(f, spec.name, values, data.num_items, dim, fill, spec.describe(), columns);
                if (json ? log.info() : log.summary())
                  std::fprintf(text_out, "modality %s: %lld x %lld from %s\n", spec.name.c_str(),
                               (long long)data.num_items, (long long)dim, spec.describe().c_str());
              }
            });
        io::add_phase(comm, rep, "write", seconds_since(write_start));
        if (log.debug())
          for (const auto& ph : rep.phases)
            std::fprintf(stderr, "prep: phase %s: %.2f s, peak memory %.0f MiB (fullest rank)\n", ph.name.c_str(),
                         ph.seconds, ph.peak_mib);
        // Rows per split, and labeled rows per split, over every rank.
        int64_t rows[6] = {0, 0, 0, 0, 0, 0};
        for (int k = 0; k < 3; ++k) {
          rows[k] = data.rows(k);
          rows[3 + k] = data.positives[k];
        }
        comm.allreduce_sum(rows, 6);
        if (comm.rank() != 0) return 0;
        if (json) {
          std::string s = "{\"out\": " + json_str(out) + ", \"users\": " + std::to_string(data.num_users) +
                          ", \"items\": " + std::to_string(data.num_items);
          for (int k = 0; k < 3; ++k) s += ", \"" + std::string(io::kSplitNames[k]) + "\": " + std::to_string(rows[k]);
          s += ", \"rows_read\": " + std::to_string(rep.rows_read) + ", \"after_threshold\": " +
               std::to_string(rep.after_threshold) + ", \"after_dedup\": " + std::to_string(rep.after_dedup) +
               ", \"after_kcore\": " + std::to_string(rep.after_kcore) + ", \"kcore_rounds\": " +
               std::to_string(rep.kcore_rounds) + ", \"fingerprint\": " + json_str(fingerprint) +
               ", \"ranks\": " + std::to_string(comm.size()) + ", \"seconds\": " + format_number(seconds_since(start)) +
               ", \"phases\": [";
          for (size_t k = 0; k < rep.phases.size(); ++k) {
            s += k ? ", {\"name\": " : "{\"name\": ";
            s += json_str(rep.phases[k].name);
            s += ", \"seconds\": ";
            s += format_number(std::round(rep.phases[k].seconds * 1000) / 1000);
            s += ", \"peak_rss_mib\": ";
            s += format_number(std::round(rep.phases[k].peak_mib));
            s += "}";
          }
          s += "], \"config\": " + config_json(opts, rep) + "}";
          std::printf("%s\n", s.c_str());
          return 0;
        }
        if (!log.summary()) return 0;
        std::printf("read %lld rows; after threshold %lld, dedup %lld, k-core %lld\n", (long long)rep.rows_read,
                    (long long)rep.after_threshold, (long long)rep.after_dedup, (long long)rep.after_kcore);
        std::printf("wrote %s: %lld users, %lld items, train %lld, valid %lld, test %lld\n", out.c_str(),
                    (long long)data.num_users, (long long)data.num_items, (long long)rows[0], (long long)rows[1],
                    (long long)rows[2]);
        if (o.label_threshold)
          std::printf("labels (rating > %g): positive train %lld/%lld, valid %lld/%lld, test %lld/%lld\n",
                      *o.label_threshold, (long long)rows[3], (long long)rows[0], (long long)rows[4],
                      (long long)rows[1], (long long)rows[5], (long long)rows[2]);
        return 0;
      },
      argc, argv);
}

}  // namespace shardrec::cli
