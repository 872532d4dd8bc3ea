#include "core/checkpoint_state.h"

#include <cstdio>
#include <sstream>

#include "base/error.h"

namespace shardrec {

namespace {

void local_progression(const dist::Sharding& sh, int rank, int64_t* first, int64_t* stride, int64_t* count) {
  *count = sh.local_rows(rank);
  *first = *count > 0 ? sh.global_id(rank, 0) : 0;
  *stride = *count > 1 ? sh.global_id(rank, 1) - *first : 1;
}

std::string hexfloat(double v) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "%a", v);
  return buf;
}

// A table's rows with their optimizer state (and the kept best rows when `best` is given).
void add_table(std::vector<io::StateBlock>& out, dist::ShardedEmbedding& tb, int rank, std::vector<float>* best) {
  io::StateBlock b;
  b.rows = tb.rows();
  b.cols = tb.dim();
  local_progression(tb.sharding(), rank, &b.first, &b.stride, &b.count);
  const std::string g = "/tables/" + tb.name();
  auto add = [&](const std::string& name, int64_t cols, std::vector<float>& v) {
    io::StateBlock x = b;
    x.name = name;
    x.cols = cols;
    x.data = v.data();
    out.push_back(x);
  };
  add(g + "/embedding", tb.dim(), tb.local_data());
  RowOptimizer& o = tb.optimizer();
  const OptimizerTraits& t = traits_of(o.config().kind);
  if (t.m_name) add(g + "/" + t.m_name, tb.dim(), o.state_m());
  if (t.v_name) add(g + "/" + t.v_name, t.v_per_row ? 0 : tb.dim(), o.state_v());
  if (best) add("/best/" + tb.name(), tb.dim(), *best);
}

// A block every rank holds the same of: rank 0 writes it, every rank reads it.
void add_replicated(std::vector<io::StateBlock>& out, const std::string& name, int64_t rows, int64_t cols, float* data,
                    int rank, bool reading) {
  io::StateBlock x;
  x.name = name;
  x.rows = rows;
  x.cols = cols;
  x.replicated = true;
  x.count = reading || rank == 0 ? rows : 0;
  x.data = data;
  out.push_back(x);
}

// A replicated parameter's optimizer state (rows x cols parameters): "<name>_<m name>" and
// "<name>_<v name>" (OptimizerTraits; a row-wise v has one float per row).
void add_replicated_state(std::vector<io::StateBlock>& out, const std::string& name, int64_t rows, int64_t cols,
                          RowOptimizer& opt, int rank, bool reading) {
  const OptimizerTraits& t = traits_of(opt.config().kind);
  if (t.m_name) add_replicated(out, name + "_" + t.m_name, rows, cols, opt.state_m().data(), rank, reading);
  if (t.v_name) add_replicated(out, name + "_" + t.v_name, rows, t.v_per_row ? 0 : cols, opt.state_v().data(), rank, reading);
}

// The early-stopping state (TrainProgress).
std::string progress_text(const TrainProgress& p) {
  std::ostringstream o;
  o << "\nepochs_done = " << p.epochs_done << "\nbest = " << hexfloat(p.best) << "\nsince_best = " << p.since_best
    << "\nbest_epoch = " << p.best_epoch << "\nbest_valid = " << hexfloat(p.best_valid)
    << "\nhas_best = " << (p.has_best ? 1 : 0) << "\nelapsed = " << hexfloat(p.elapsed);
  return o.str();
}

void restore_progress(const io::StateValues& st, TrainProgress& p) {
  p.epochs_done = static_cast<int>(st.i64("epochs_done"));
  p.best = st.dbl("best");
  p.since_best = static_cast<int>(st.i64("since_best"));
  p.best_epoch = static_cast<int>(st.i64("best_epoch"));
  p.best_valid = st.dbl("best_valid");
  p.elapsed = st.dbl("elapsed");
}

void check_position(const io::StateValues& st, int64_t epoch, int64_t step, int64_t steps, int64_t global,
                    int64_t steps_per_epoch) {
  if (epoch < 1 || step < 0 || step > steps || global != st.i64("global_step"))
    fail(st.where() + "its position (epoch " + std::to_string(epoch) + ", step " + std::to_string(step) +
         ") does not fit this dataset and batch (" + std::to_string(steps_per_epoch) + " steps per epoch)");
}

// The trainer's state: the model's tables and dense blocks (core/model_state.h) with their
// optimizer state and kept best copies, the position in the epoch's phases with the partial loss
// sums, the early-stopping state, the step counters and the Inverse Gradient decisions.
class TrainerSource final : public io::StateDict {
 public:
  explicit TrainerSource(Trainer& t) : t_(t) {}
  std::string model() override { return t_.config().model; }
  std::string config_text() override { return t_.config().to_ini(); }
  const io::DatasetInfo& dataset() override { return t_.data_info(); }
  int64_t global_step() override { return t_.global_step(); }
  void to_host() override { t_.sync_state_to_host(); }
  void to_device() override { t_.sync_state_to_device(); }

  std::vector<std::string> groups() override {
    std::vector<std::string> g = {"/tables"};
    for (auto* tb : t_.model().state().tables) g.push_back("/tables/" + tb->name());
    g.insert(g.end(), {"/best", "/dense", "/ig"});
    return g;
  }

  std::vector<io::StateBlock> blocks(int rank, bool reading) override {
    const ModelState m = t_.model().state();
    TrainProgress& p = t_.progress();
    std::vector<io::StateBlock> out;
    for (auto* tb : m.tables) add_table(out, *tb, rank, p.has_best ? &p.best_params.values[tb->name()] : nullptr);
    for (const auto& d : m.dense) add_replicated(out, "/dense/" + d.name, d.rows, d.cols, d.values->data(), rank, reading);
    for (const auto& d : m.dense)
      add_replicated_state(out, "/dense/" + d.name, d.opt->rows(), d.opt->dim(), *d.opt, rank, reading);
    if (p.has_best)
      for (const auto& d : m.dense)
        add_replicated(out, "/best/" + d.name, d.rows, d.cols, p.best_params.values[d.name].data(), rank, reading);
    if (!reading) {
      const auto& d = t_.ig_stats().decisions;
      decisions_.assign(d.begin(), d.end());
    }
    // In step order, all epochs: 0 mid, 1 forward, 2 inverse (exact as floats).
    if (!decisions_.empty())
      add_replicated(out, "/ig/decisions", static_cast<int64_t>(decisions_.size()), 0, decisions_.data(), rank,
                     reading);
    return out;
  }

  std::string state(dist::Comm& comm) override {
    const TrainProgress& p = t_.progress();
    // The phase's loss sums so far, over all ranks (each holds its own samples' part).
    int64_t loss[2] = {p.phase_loss.raw(0), p.phase_loss.raw(1)};
    comm.allreduce_sum(loss, 2);
    const IgStats& ig = t_.ig_stats();
    std::string s = "epoch = " + std::to_string(p.epoch) + "\nphase = " + std::to_string(p.phase) +
                    "\nstep = " + std::to_string(p.step) + "\nglobal_step = " + std::to_string(t_.global_step()) +
                    "\nphase_loss.0 = " + std::to_string(loss[0]) + "\nphase_loss.1 = " + std::to_string(loss[1]) +
                    "\nepoch_sum = " + hexfloat(p.epoch_sum) + "\nepoch_terms = " + std::to_string(p.epoch_terms) +
                    "\nig.forward = " + std::to_string(ig.forward) + "\nig.inverse = " + std::to_string(ig.inverse) +
                    "\nig.mid = " + std::to_string(ig.mid) + "\nig.decisions = " + std::to_string(ig.decisions.size()) +
                    progress_text(p);
    const ModelState m = t_.model().state();
    for (auto* tb : m.tables) s += "\nopt_step." + tb->name() + " = " + std::to_string(tb->optimizer().step());
    for (const auto& d : m.dense) s += "\nopt_step." + d.step_name + " = " + std::to_string(d.opt->step());
    return s;
  }

  void prepare(const io::StateValues& st) override {
    TrainProgress& p = t_.progress();
    p.has_best = st.i64("has_best") != 0;
    // Checkpoints of MF/VBPR from before the one trainer have no phase (one phase, epoch_loss).
    const int64_t epoch = st.i64("epoch"), phase = st.has("phase") ? st.i64("phase") : 0, step = st.i64("step");
    const int64_t S = t_.steps_per_epoch();
    if (phase < 0 || phase >= t_.num_phases())
      fail(st.where() + "phase " + std::to_string(phase) + " does not exist with strategy " + t_.config().strategy);
    const int64_t S0 = phase == 1 ? t_.phase_steps(0) : 0;
    check_position(st, epoch, step, t_.phase_steps(static_cast<int>(phase)), (epoch - 1) * S + S0 + step, S);
    const int64_t n = st.has("ig.decisions") ? st.i64("ig.decisions") : 0;
    if (n < 0) fail(st.where() + "ig.decisions is negative");
    decisions_.assign(static_cast<size_t>(n), 0.0f);
    if (p.has_best) p.best_params.size_like(t_.model().state());
  }

  void restore(const io::StateValues& st, dist::Comm& comm) override {
    const ModelState m = t_.model().state();
    for (auto* tb : m.tables) tb->optimizer().set_step(st.i64("opt_step." + tb->name()));
    for (const auto& d : m.dense) d.opt->set_step(st.i64("opt_step." + d.step_name));
    TrainProgress& p = t_.progress();
    const bool old = !st.has("phase");
    p.epoch = static_cast<int>(st.i64("epoch"));
    p.phase = old ? 0 : static_cast<int>(st.i64("phase"));
    p.step = st.i64("step");
    // The phase's loss sums so far count once: rank 0 carries them, whatever the number of ranks.
    p.phase_loss = dist::ExactSums(2, 24);
    for (int k = 0; k < 2; ++k) {
      const std::string key = old ? (k == 0 ? "epoch_loss" : "") : "phase_loss." + std::to_string(k);
      p.phase_loss.set_raw(k, comm.rank() == 0 && !key.empty() ? st.i64(key) : 0);
    }
    p.epoch_sum = old ? 0 : st.dbl("epoch_sum");
    p.epoch_terms = old ? 0 : st.i64("epoch_terms");
    IgStats& ig = t_.ig_stats();
    ig.forward = old ? 0 : st.i64("ig.forward");
    ig.inverse = old ? 0 : st.i64("ig.inverse");
    ig.mid = old ? 0 : st.i64("ig.mid");
    ig.decisions.assign(decisions_.begin(), decisions_.end());
    restore_progress(st, p);
  }

  int64_t later_bytes() override {
    const TrainConfig& c = t_.config();
    if (t_.progress().has_best || !c.keep_best || c.eval_every == 0) return 0;
    int64_t bytes = 0;  // the best copies of every table and dense block
    const ModelState m = t_.model().state();
    for (auto* tb : m.tables) bytes += tb->rows() * tb->dim() * 4;
    for (const auto& d : m.dense) bytes += static_cast<int64_t>(d.values->size()) * 4;
    return bytes;
  }

 private:
  Trainer& t_;
  std::vector<float> decisions_;  // IgStats::decisions as floats, for their dataset
};

}  // namespace

std::unique_ptr<io::StateDict> state_dict(Trainer& t) { return std::make_unique<TrainerSource>(t); }

}  // namespace shardrec
