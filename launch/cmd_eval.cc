// shardrec eval: metrics of trained parameters on the valid or test split; for vbpr, also under
// shifted item features.
#include <chrono>
#include <cstdio>

#include "base/atomic_file.h"
#include "base/error.h"
#include "core/config.h"
#include "core/cpu_engine.h"
#include "core/evaluator.h"
#include "core/gpu_backend.h"
#include "core/robustness.h"
#include "dist/mpi_comm.h"
#include "io/dataset.h"
#include "launch/cli_util.h"
#include "launch/commands.h"
#include "launch/options.h"
#include "launch/params.h"

namespace shardrec::cli {

namespace {
// With --out - the JSON is standard output, so the readable tables go to standard error.
std::FILE* table_stream(const std::string& out) { return out == "-" ? stderr : stdout; }

// Whether rank 0 prints the tables: always when they are the output; when --out holds the
// metrics, at all levels but quiet on stdout, at info and up on stderr (--out -).
bool show_tables(const Log& log, const std::string& out) {
  return out.empty() ? log.root() : out == "-" ? log.info() : log.summary();
}

double seconds_since(std::chrono::steady_clock::time_point t) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t).count();
}

}  // namespace

int cmd_eval(int argc, char** argv) {
  TrainConfig c;  // its data and eval options
  c.threads = 0;  // the default: the cores the launcher gave the rank (cpu_threads)
  std::string params, split = "test", out;
  std::vector<std::string> perturb;
  uint64_t perturb_seed = 99;
  Options opts = for_command(config_options(c), kEval);
  opts.insert(opts.end(), {
      params_option(params),
      Option("split", split, "the split to evaluate").choices({"valid", "test"}),
      Option("out", out, "also write the metrics as JSON here (- for standard output; the tables then go to standard error)"),
      Option("perturb", perturb,
             "vbpr: also evaluate with shifted item features, e.g. noise:0.1,0.5 (Gaussian, relative to each "
             "modality's std) or adjust:0.1,0.3 (that fraction of items take another item's features)"),
      Option("perturb-seed", perturb_seed, "seed of the perturbations"),
  });
  const Args args =
      parse(argc, argv, "usage: [mpirun -np N] shardrec eval --data DATA.h5 --params PARAMS.h5 [options]", opts);
  if (args.help) return 0;
  if (!out.empty() && out != "-") output_target(out);  // a bad target fails before the evaluation
  std::vector<Perturbation> shifts;
  for (const auto& spec : perturb)
    for (const auto& p : parse_perturbations(spec, perturb_seed)) shifts.push_back(p);
  c.eval.device = resolve_device(c.eval.device);
  return run_mpi(
      [&](dist::Comm& comm) {
        check_inputs(comm, c.data, params);
        // Any model, built from the file through the registry; the evaluation's own options
        // (cutoffs, label threshold of labeled models) come from the command line.
        auto m = load_params(c.data, params, comm, cpu_threads(c));
        const Log log(args.log_level, comm.rank() == 0);
        debug_partition(log, m.data, comm);
        Progress progress = log.progress("eval " + split, "users");
        m.cfg.eval = c.eval;
        m.cfg.eval.progress = &progress;
        const bool tables = show_tables(log, out);
        m.cfg.label_threshold = c.label_threshold;
        if (!shifts.empty() && !m.model->item_features())
          fail("option --perturb: only for models with item features (vbpr); " + params + " holds " + m.cfg.model);
        const int sp = split == "valid" ? 1 : 2;
        auto t0 = std::chrono::steady_clock::now();
        const auto r = m.model->evaluate_params(m.data, sp, m.cfg, comm);
        if (log.debug()) std::fprintf(stderr, "debug: eval %s: %.3f s\n", split.c_str(), seconds_since(t0));
        std::string json = json_metrics(r);
        if (tables) print_metrics(split.c_str(), r, table_stream(out));
        if (!shifts.empty()) {
          // Each shift starts from the trained features; the drop is relative to the clean run.
          const auto clean = m.model->item_features() ? m.model->item_features()->local_data() : std::vector<float>{};
          if (tables) std::fprintf(table_stream(out), "\nfeature shift      strength  metric        value    drop\n");
          json = "{\"clean\": " + json + ", \"shifted\": [";
          for (size_t k = 0; k < shifts.size(); ++k) {
            perturb_features(*m.model, shifts[k], comm);
            progress.set_what("eval " + split + " " + shifts[k].kind + " " + format_number(shifts[k].strength));
            t0 = std::chrono::steady_clock::now();
            const auto q = m.model->evaluate_params(m.data, sp, m.cfg, comm);
            if (log.debug())
              std::fprintf(stderr, "debug: eval %s, %s %g: %.3f s\n", split.c_str(), shifts[k].kind.c_str(),
                           shifts[k].strength, seconds_since(t0));
            m.model->item_features()->local_data() = clean;
            json += std::string(k ? ", " : "") + "{\"kind\": \"" + shifts[k].kind + "\", \"strength\": " +
                    json_number(shifts[k].strength) + ", \"metrics\": " + json_metrics(q) + "}";
            if (tables)
              for (int kk : c.eval.ks)
                for (const char* name : {"recall", "ndcg"}) {
                  const std::string key = std::string(name) + "@" + std::to_string(kk);
                  std::fprintf(table_stream(out), "%-18s %8.3f  %-12s %.4f  %+.1f%%\n", shifts[k].kind.c_str(), shifts[k].strength,
                              key.c_str(), q.get(key), 100.0 * (q.get(key) / r.get(key) - 1.0));
                }
          }
          json += "]}";
        }
        if (comm.rank() == 0 && !out.empty())
          write_output(out, json + "\n");
        return 0;
      },
      argc, argv);
}

}  // namespace shardrec::cli
