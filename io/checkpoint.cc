#include "io/checkpoint.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cinttypes>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <map>
#include <sstream>

#include "core/error.h"
#include "core/rng.h"
#include "dist/mpi_comm.h"
#include "io/hdf5_util.h"

namespace shardrec::io {

namespace fs = std::filesystem;

namespace {

double now_s() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

// Runs fn on every rank; if it failed anywhere, every rank throws the first failing rank's
// message, so that no rank goes on alone into a collective.
void agree(dist::Comm& comm, const std::function<void()>& fn) {
  std::string err;
  try {
    fn();
  } catch (const std::exception& e) {
    err = e.what();
    if (err.empty()) err = "unknown error";
  }
  std::vector<uint64_t> lens(comm.size());
  comm.allgather_u64(err.size(), lens.data());
  for (int k = 0; k < comm.size(); ++k) {
    if (lens[k] == 0) continue;
    std::string msg(lens[k], '\0');
    if (comm.rank() == k) msg = err;
    comm.broadcast(msg.data(), msg.size(), k);
    fail(msg);
  }
}

// One dataset of the checkpoint and this rank's rows of it: ids first, first + stride, ...
struct Block {
  std::string name;
  int64_t rows = 0, cols = 0;  // cols 0: a vector
  bool replicated = false;     // identical on every rank (VBPR's projection): rank 0 writes it
  int64_t first = 0, stride = 1, count = 0;
  float* data = nullptr;
  int64_t width() const { return cols > 0 ? cols : 1; }
};

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
void add_table(std::vector<Block>& out, dist::ShardedEmbedding& tb, int rank, std::vector<float>* best) {
  Block b;
  b.rows = tb.rows();
  b.cols = tb.dim();
  local_progression(tb.sharding(), rank, &b.first, &b.stride, &b.count);
  const std::string g = "/tables/" + tb.name();
  auto add = [&](const std::string& name, int64_t cols, std::vector<float>& v) {
    Block x = b;
    x.name = name;
    x.cols = cols;
    x.data = v.data();
    out.push_back(x);
  };
  add(g + "/embedding", tb.dim(), tb.local_data());
  RowOptimizer& o = tb.optimizer();
  const bool adagrad = o.config().kind == OptimizerConfig::Kind::kAdagrad;
  if (!o.state_m().empty()) add(g + "/adam_m", tb.dim(), o.state_m());
  if (!o.state_v().empty()) add(g + (adagrad ? "/adagrad_sum" : "/adam_v"), adagrad ? 0 : tb.dim(), o.state_v());
  if (best) add("/best/" + tb.name(), tb.dim(), *best);
}

// A block every rank holds the same of: rank 0 writes it, every rank reads it.
void add_replicated(std::vector<Block>& out, const std::string& name, int64_t rows, int64_t cols, float* data,
                    int rank, bool reading) {
  Block x;
  x.name = name;
  x.rows = rows;
  x.cols = cols;
  x.replicated = true;
  x.count = reading || rank == 0 ? rows : 0;
  x.data = data;
  out.push_back(x);
}

// A replicated parameter's optimizer state (rows x cols parameters): "<name>_adam_m" and
// "<name>_adam_v", or "<name>_adagrad_sum" (one per row).
void add_replicated_state(std::vector<Block>& out, const std::string& name, int64_t rows, int64_t cols,
                          RowOptimizer& opt, int rank, bool reading) {
  if (!opt.state_m().empty()) add_replicated(out, name + "_adam_m", rows, cols, opt.state_m().data(), rank, reading);
  if (opt.state_v().empty()) return;
  if (opt.config().kind != OptimizerConfig::Kind::kAdagrad)
    add_replicated(out, name + "_adam_v", rows, cols, opt.state_v().data(), rank, reading);
  else
    add_replicated(out, name + "_adagrad_sum", rows, 0, opt.state_v().data(), rank, reading);
}

// The state text's values, read with errors that name the file.
class State {
 public:
  State(std::map<std::string, std::string> kv, std::string where) : kv_(std::move(kv)), where_(std::move(where)) {}
  const std::string& str(const std::string& key) const {
    auto it = kv_.find(key);
    if (it == kv_.end()) fail(where_ + "state has no '" + key + "'");
    return it->second;
  }
  int64_t i64(const std::string& key) const { return static_cast<int64_t>(std::stoll(str(key))); }
  double dbl(const std::string& key) const { return std::strtod(str(key).c_str(), nullptr); }
  const std::string& where() const { return where_; }

 private:
  std::map<std::string, std::string> kv_;
  std::string where_;
};

// What one trainer contributes to a checkpoint; the file layout, checksums, the parallel write,
// loading by id and the compatibility checks are shared (save/load below).
class Source {
 public:
  virtual ~Source() = default;
  virtual const TrainConfig& config() = 0;
  virtual const DatasetInfo& info() = 0;
  virtual TrainProgress& progress() = 0;
  virtual int64_t global_step() = 0;
  virtual void to_host() = 0;
  virtual void to_device() = 0;
  // HDF5 groups of the layout, and the datasets (reading: sized by prepare() first).
  virtual std::vector<const char*> groups() = 0;
  virtual std::vector<Block> blocks(int rank, bool reading) = 0;
  // State lines: where training stands (a collective: the partial loss sums are summed over
  // ranks), and the optimizers' step counters. Each line starts with "\n" except the first.
  virtual std::string position(dist::Comm& comm) = 0;
  virtual std::string opt_steps() = 0;
  // Loading: checks the stored position against this trainer and sizes buffers for blocks().
  virtual void prepare(const State& st) = 0;
  // Loading, after the rows: position, partial sums and step counters.
  virtual void restore(const State& st, dist::Comm& comm) = 0;
  // Bytes of the kept best parameters, which appear once validation has run.
  virtual int64_t best_bytes() = 0;
};

void check_position(const State& st, int64_t epoch, int64_t step, int64_t steps, int64_t global,
                    int64_t steps_per_epoch) {
  if (epoch < 1 || step < 0 || step > steps || global != st.i64("global_step"))
    fail(st.where() + "its position (epoch " + std::to_string(epoch) + ", step " + std::to_string(step) +
         ") does not fit this dataset and batch (" + std::to_string(steps_per_epoch) + " steps per epoch)");
}

void resize_best(TrainProgress& p, dist::ShardedEmbedding& user, dist::ShardedEmbedding& item) {
  p.best_user.resize(user.local_data().size());
  p.best_item.resize(item.local_data().size());
}

int64_t table_bytes(dist::ShardedEmbedding& tb) { return tb.rows() * tb.dim() * 4; }

// The parts every trainer provides alike.
template <class TrainerT>
class SourceOf : public Source {
 public:
  explicit SourceOf(TrainerT& t) : t_(t) {}
  const TrainConfig& config() override { return t_.config(); }
  const DatasetInfo& info() override { return t_.data_info(); }
  TrainProgress& progress() override { return t_.progress(); }
  int64_t global_step() override { return t_.global_step(); }
  void to_host() override { t_.sync_state_to_host(); }
  void to_device() override { t_.sync_state_to_device(); }

 protected:
  TrainerT& t_;
};

// MF and VBPR.
class TrainerSource final : public SourceOf<Trainer> {
 public:
  using SourceOf::SourceOf;
  std::vector<const char*> groups() override { return {"/tables", "/tables/user", "/tables/item", "/best", "/dense"}; }

  std::vector<Block> blocks(int rank, bool reading) override {
    MFModel& m = t_.model();
    TrainProgress& p = t_.progress();
    std::vector<Block> out;
    add_table(out, m.user, rank, p.has_best ? &p.best_user : nullptr);
    add_table(out, m.item, rank, p.has_best ? &p.best_item : nullptr);
    if (m.vbpr()) {
      const int64_t d = m.item_dim(), F = m.feat_dim();
      add_replicated(out, "/dense/W", d, F, m.W.data(), rank, reading);
      add_replicated(out, "/dense/b", d, 0, m.b.data(), rank, reading);
      add_replicated_state(out, "/dense/W", d, F, *m.optimizer_W(), rank, reading);
      add_replicated_state(out, "/dense/b", 1, d, *m.optimizer_b(), rank, reading);
      if (p.has_best) {
        add_replicated(out, "/best/W", d, F, p.best_W.data(), rank, reading);
        add_replicated(out, "/best/b", d, 0, p.best_b.data(), rank, reading);
      }
    }
    return out;
  }

  std::string position(dist::Comm& comm) override {
    // The epoch's loss sum so far, over all ranks (each holds its own samples' part).
    int64_t loss_total = t_.epoch_loss().raw(0);
    comm.allreduce_sum(&loss_total, 1);
    const TrainProgress& p = t_.progress();
    return "epoch = " + std::to_string(p.epoch) + "\nstep = " + std::to_string(p.step) +
           "\nglobal_step = " + std::to_string(t_.global_step()) + "\nepoch_loss = " + std::to_string(loss_total);
  }

  std::string opt_steps() override {
    MFModel& m = t_.model();
    std::string o = "\nopt_step.user = " + std::to_string(m.user.optimizer().step()) +
                    "\nopt_step.item = " + std::to_string(m.item.optimizer().step());
    if (m.vbpr())
      o += "\nopt_step.W = " + std::to_string(m.optimizer_W()->step()) +
           "\nopt_step.b = " + std::to_string(m.optimizer_b()->step());
    return o;
  }

  void prepare(const State& st) override {
    const int64_t S = t_.steps_per_epoch();
    const int64_t epoch = st.i64("epoch"), step = st.i64("step");
    check_position(st, epoch, step, S, (epoch - 1) * S + step, S);
    TrainProgress& p = t_.progress();
    MFModel& m = t_.model();
    if (!p.has_best) return;
    resize_best(p, m.user, m.item);
    p.best_W.resize(m.W.size());
    p.best_b.resize(m.b.size());
  }

  void restore(const State& st, dist::Comm& comm) override {
    MFModel& m = t_.model();
    m.user.optimizer().set_step(st.i64("opt_step.user"));
    m.item.optimizer().set_step(st.i64("opt_step.item"));
    if (m.vbpr()) {
      m.optimizer_W()->set_step(st.i64("opt_step.W"));
      m.optimizer_b()->set_step(st.i64("opt_step.b"));
    }
    TrainProgress& p = t_.progress();
    p.epoch = static_cast<int>(st.i64("epoch"));
    p.step = st.i64("step");
    // The loss sum so far counts once: rank 0 carries it, whatever the number of ranks.
    t_.epoch_loss() = dist::ExactSums(1, 24);
    t_.epoch_loss().set_raw(0, comm.rank() == 0 ? st.i64("epoch_loss") : 0);
  }

  int64_t best_bytes() override { return table_bytes(t_.model().user) + table_bytes(t_.model().item); }
};

// GMF and NeuMF (plain and Inverse Gradient training).
class PointwiseSource final : public SourceOf<PointwiseTrainer> {
 public:
  using SourceOf::SourceOf;
  std::vector<const char*> groups() override {
    return {"/tables", "/tables/user", "/tables/item", "/best", "/dense", "/ig"};
  }

  std::vector<Block> blocks(int rank, bool reading) override {
    NcfModel& m = t_.model();
    PointwiseProgress& p = t_.progress();
    const int64_t D = static_cast<int64_t>(m.dense.size());
    std::vector<Block> out;
    add_table(out, m.user, rank, p.has_best ? &p.best_user : nullptr);
    add_table(out, m.item, rank, p.has_best ? &p.best_item : nullptr);
    add_replicated(out, "/dense/ncf", 1, D, m.dense.data(), rank, reading);
    add_replicated_state(out, "/dense/ncf", 1, D, m.dense_optimizer(), rank, reading);
    if (p.has_best) add_replicated(out, "/best/ncf", 1, D, p.best_dense.data(), rank, reading);
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

  std::string position(dist::Comm& comm) override {
    const PointwiseProgress& p = t_.progress();
    int64_t loss[2] = {p.phase_loss.raw(0), p.phase_loss.raw(1)};
    comm.allreduce_sum(loss, 2);
    const IgStats& ig = t_.ig_stats();
    return "epoch = " + std::to_string(p.epoch) + "\nphase = " + std::to_string(p.phase) +
           "\nstep = " + std::to_string(p.step) + "\nglobal_step = " + std::to_string(t_.global_step()) +
           "\nphase_loss.0 = " + std::to_string(loss[0]) + "\nphase_loss.1 = " + std::to_string(loss[1]) +
           "\nepoch_sum = " + hexfloat(p.epoch_sum) + "\nepoch_terms = " + std::to_string(p.epoch_terms) +
           "\nig.forward = " + std::to_string(ig.forward) + "\nig.inverse = " + std::to_string(ig.inverse) +
           "\nig.mid = " + std::to_string(ig.mid) + "\nig.decisions = " + std::to_string(ig.decisions.size());
  }

  std::string opt_steps() override {
    NcfModel& m = t_.model();
    return "\nopt_step.user = " + std::to_string(m.user.optimizer().step()) +
           "\nopt_step.item = " + std::to_string(m.item.optimizer().step()) +
           "\nopt_step.dense = " + std::to_string(m.dense_optimizer().step());
  }

  void prepare(const State& st) override {
    const int64_t epoch = st.i64("epoch"), phase = st.i64("phase"), step = st.i64("step");
    const int64_t S = t_.steps_per_epoch();
    if (phase < 0 || phase >= t_.num_phases())
      fail(st.where() + "phase " + std::to_string(phase) + " does not exist with strategy " + t_.config().strategy);
    const int64_t S0 = phase == 1 ? t_.phase_steps(0) : 0;
    check_position(st, epoch, step, t_.phase_steps(static_cast<int>(phase)), (epoch - 1) * S + S0 + step, S);
    const int64_t n = st.i64("ig.decisions");
    if (n < 0) fail(st.where() + "ig.decisions is negative");
    decisions_.assign(static_cast<size_t>(n), 0.0f);
    PointwiseProgress& p = t_.progress();
    NcfModel& m = t_.model();
    if (!p.has_best) return;
    resize_best(p, m.user, m.item);
    p.best_dense.resize(m.dense.size());
  }

  void restore(const State& st, dist::Comm& comm) override {
    NcfModel& m = t_.model();
    m.user.optimizer().set_step(st.i64("opt_step.user"));
    m.item.optimizer().set_step(st.i64("opt_step.item"));
    m.dense_optimizer().set_step(st.i64("opt_step.dense"));
    PointwiseProgress& p = t_.progress();
    p.epoch = static_cast<int>(st.i64("epoch"));
    p.phase = static_cast<int>(st.i64("phase"));
    p.step = st.i64("step");
    // The phase's loss sums so far count once: rank 0 carries them, whatever the number of ranks.
    p.phase_loss = dist::ExactSums(2, 24);
    for (int k = 0; k < 2; ++k) p.phase_loss.set_raw(k, comm.rank() == 0 ? st.i64("phase_loss." + std::to_string(k)) : 0);
    p.epoch_sum = st.dbl("epoch_sum");
    p.epoch_terms = st.i64("epoch_terms");
    IgStats& ig = t_.ig_stats();
    ig.forward = st.i64("ig.forward");
    ig.inverse = st.i64("ig.inverse");
    ig.mid = st.i64("ig.mid");
    ig.decisions.assign(decisions_.begin(), decisions_.end());
  }

  int64_t best_bytes() override {
    return table_bytes(t_.model().user) + table_bytes(t_.model().item) +
           static_cast<int64_t>(t_.model().dense.size()) * 4;
  }

 private:
  std::vector<float> decisions_;  // IgStats::decisions as floats, for their dataset
};

// XOR over this rank's rows of hash(id, row bytes): independent of which rank holds which row.
uint64_t rows_hash(const Block& b) {
  uint64_t h = 0;
  const int64_t w = b.width();
  for (int64_t k = 0; k < b.count; ++k) {
    const int64_t id = b.first + k * b.stride;
    const float* row = b.data + k * w;
    uint64_t r = hash64(0x636b7074, static_cast<uint64_t>(id), static_cast<uint64_t>(w));
    int64_t c = 0;
    for (; c + 1 < w; c += 2) {  // two floats per mix
      uint64_t word;
      std::memcpy(&word, row + c, 8);
      r = mix64(r ^ word);
    }
    if (c < w) {
      uint32_t x;
      std::memcpy(&x, row + c, 4);
      r = mix64(r ^ x);
    }
    h ^= r;
  }
  return h;
}

// The same XOR over all ranks (a replicated block counts once, from rank 0).
uint64_t global_hash(const Block& b, dist::Comm& comm) {
  const uint64_t mine = b.replicated && comm.rank() != 0 ? 0 : rows_hash(b);
  std::vector<uint64_t> all(comm.size());
  comm.allgather_u64(mine, all.data());
  uint64_t h = 0;
  for (auto x : all) h ^= x;
  return h;
}

uint64_t text_hash(const std::string& s) {
  uint64_t h = hash64(0x74657874, s.size());
  for (size_t i = 0; i < s.size(); i += 8) {
    uint64_t w = 0;
    std::memcpy(&w, s.data() + i, std::min<size_t>(8, s.size() - i));
    h = mix64(h ^ w);
  }
  return h;
}

std::map<std::string, std::string> key_values(const std::string& text) {
  std::map<std::string, std::string> kv;
  std::istringstream in(text);
  std::string line;
  while (std::getline(in, line)) {
    const auto eq = line.find('=');
    if (eq == std::string::npos) continue;
    auto trim = [](std::string s) {
      s.erase(0, s.find_first_not_of(' '));
      s.erase(s.find_last_not_of(' ') + 1);
      return s;
    };
    kv[trim(line.substr(0, eq))] = trim(line.substr(eq + 1));
  }
  return kv;
}

// The state text: progress, optimizer steps, epoch loss and the dataset's identity (collective).
std::string state_text(Source& src, dist::Comm& comm) {
  const TrainProgress& p = src.progress();
  const DatasetInfo& info = src.info();
  std::ostringstream o;
  o << src.position(comm) << "\nepochs_done = " << p.epochs_done << "\nbest = " << hexfloat(p.best)
    << "\nsince_best = " << p.since_best << "\nbest_epoch = " << p.best_epoch
    << "\nbest_valid = " << hexfloat(p.best_valid) << "\nhas_best = " << (p.has_best ? 1 : 0)
    << "\nelapsed = " << hexfloat(p.elapsed) << src.opt_steps();
  o << "\nnum_users = " << info.num_users << "\nnum_items = " << info.num_items
    << "\ntrain_rows = " << info.rows[0] << "\nvalid_rows = " << info.rows[1]
    << "\ntest_rows = " << info.rows[2] << "\n";
  return o.str();
}

void write_layout(H5File& f, const std::string& config, const std::string& state,
                  const std::string& model, const std::vector<const char*>& groups,
                  const std::vector<Block>& blocks, const std::vector<uint64_t>& hashes) {
  f.write_attr_str("/", "format", kCheckpointFormat);
  f.write_attr<int32_t>("/", "version", kCheckpointVersion);
  f.write_attr_str("/", "model", model);
  f.write_attr_str("/", "config", config);
  f.write_attr_str("/", "state", state);
  f.write_attr<int64_t>("/", "checksum", static_cast<int64_t>(text_hash(config + "\n--\n" + state)));
  for (const char* g : groups) f.create_group(g);
  for (size_t i = 0; i < blocks.size(); ++i) {
    f.create_dataset<float>(blocks[i].name, blocks[i].rows, blocks[i].cols);
    f.write_attr<int64_t>(blocks[i].name, "checksum", static_cast<int64_t>(hashes[i]));
  }
}

void write_rows(H5File& f, const std::vector<Block>& blocks) {
  for (const auto& b : blocks) f.write_rows_strided<float>(b.name, b.first, b.stride, b.count, b.data);
}

std::string zero_padded(int64_t v) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%010" PRId64, v);
  return buf;
}

void save(const std::string& path, Source& t, dist::Comm& comm) {
  auto* mpi = dynamic_cast<dist::MpiComm*>(&comm);
  // The GPU backend's state lives on the device: bring it into the host tables written below.
  agree(comm, [&] { t.to_host(); });
  const std::string config = t.config().to_ini();
  const std::string state = state_text(t, comm);
  const auto blocks = t.blocks(comm.rank(), false);
  const auto groups = t.groups();
  std::vector<uint64_t> hashes;
  for (const auto& b : blocks) hashes.push_back(global_hash(b, comm));
  const std::string tmp = path + ".tmp";
  if (mpi) {
    // Parallel HDF5: the layout is collective, every rank then writes its own rows.
    agree(comm, [&] {
      H5File f = H5File::create_parallel(tmp, mpi->native_handle());
      write_layout(f, config, state, t.config().model, groups, blocks, hashes);
      write_rows(f, blocks);
      f.close();
    });
  } else {
    // Ranks are threads of one process: one writer at a time (HDF5 is not thread-safe).
    agree(comm, [&] {
      if (comm.rank() != 0) return;
      H5File f = H5File::create(tmp);
      write_layout(f, config, state, t.config().model, groups, blocks, hashes);
      f.close();
    });
    for (int k = 0; k < comm.size(); ++k)
      agree(comm, [&] {
        if (comm.rank() != k) return;
        H5File f = H5File::open_rw(tmp);
        write_rows(f, blocks);
        f.close();
      });
  }
  agree(comm, [&] {
    if (comm.rank() != 0) return;
    // On disk before it replaces anything: a crash after the rename must not find it half there.
    const int fd = ::open(tmp.c_str(), O_RDONLY);
    if (fd < 0 || ::fsync(fd) != 0) {
      if (fd >= 0) ::close(fd);
      std::remove(tmp.c_str());
      fail(tmp + ": cannot sync the checkpoint to disk (" + std::strerror(errno) + ")");
    }
    ::close(fd);
    std::error_code ec;
    fs::rename(tmp, path, ec);
    if (ec) {
      std::remove(tmp.c_str());
      fail(path + ": cannot move the finished checkpoint into place: " + ec.message());
    }
  });
}

void load(const std::string& path, Source& t, const TrainConfig& cfg, const DatasetInfo& info,
          dist::Comm& comm) {
  auto* mpi = dynamic_cast<dist::MpiComm*>(&comm);
  const std::string where = "checkpoint " + path + ": ";
  H5File f;
  std::string config, state;
  // Open and check the header on every rank (each reads the same, so all reach the same verdict).
  agree(comm, [&] {
    if (!fs::exists(path)) fail(where + "no such file");
    try {
      f = H5File::open_read(path, mpi ? mpi->native_handle() : nullptr);
    } catch (const Error& e) {
      fail(where + "cannot be opened (truncated or not HDF5?): " + e.what());
    }
    std::string fmt;
    try {
      fmt = f.read_attr_str("/", "format");
    } catch (const Error&) {
    }
    if (fmt != kCheckpointFormat)
      fail(where + "not a shardrec checkpoint (root attribute 'format' is '" + fmt + "', expected '" +
           kCheckpointFormat + "')");
    const int version = f.read_attr<int32_t>("/", "version");
    if (version != kCheckpointVersion)
      fail(where + "format version " + std::to_string(version) + ", this shardrec reads version " +
           std::to_string(kCheckpointVersion));
    config = f.read_attr_str("/", "config");
    state = f.read_attr_str("/", "state");
    const auto sum = static_cast<uint64_t>(f.read_attr<int64_t>("/", "checksum"));
    if (sum != text_hash(config + "\n--\n" + state))
      fail(where + "the config/state attributes fail their checksum (the file is corrupted)");
  });
  const State st(key_values(state), where);
  // The checkpoint must come from the same model, dataset and training config; only the number
  // of epochs (and the dataset's path) may change on resume, and where training runs: the state
  // is the same on both backends (a device change continues within their tolerance, not bitwise).
  const auto was = key_values(config), now = key_values(cfg.to_ini());
  std::string diff;
  for (const auto& [k, v] : now) {
    if (k == "data" || k == "epochs" || k == "device" || k == "gpu-comm" || k == "eval-device") continue;
    auto it = was.find(k);
    const std::string old = it == was.end() ? "(absent)" : it->second;
    if (old != v) diff += (diff.empty() ? "" : "; ") + k + " = " + old + " there, " + v + " here";
  }
  if (!diff.empty())
    fail(where + "written with an incompatible configuration: " + diff +
         " (only --epochs, --data, --device, --gpu-comm and --eval-device may change on resume)");
  const std::pair<const char*, int64_t> ident[] = {{"num_users", info.num_users}, {"num_items", info.num_items},
                                                   {"train_rows", info.rows[0]}, {"valid_rows", info.rows[1]},
                                                   {"test_rows", info.rows[2]}};
  for (const auto& [key, v] : ident)
    if (st.i64(key) != v)
      fail(where + "written for another dataset: " + key + " = " + std::to_string(st.i64(key)) + " there, " +
           std::to_string(v) + " in " + cfg.data);
  TrainProgress& p = t.progress();
  p.has_best = st.i64("has_best") != 0;
  t.prepare(st);
  const auto blocks = t.blocks(comm.rank(), true);
  std::vector<uint64_t> stored(blocks.size());
  agree(comm, [&] {
    for (size_t i = 0; i < blocks.size(); ++i) {
      const Block& b = blocks[i];
      const auto shape = f.shape(b.name);
      const std::vector<int64_t> want = b.cols > 0 ? std::vector<int64_t>{b.rows, b.cols} : std::vector<int64_t>{b.rows};
      if (shape != want) {
        std::string have;
        for (auto x : shape) have += (have.empty() ? "" : "x") + std::to_string(x);
        fail(where + "dataset " + b.name + " has shape " + have + ", this model needs " +
             std::to_string(b.rows) + (b.cols > 0 ? "x" + std::to_string(b.cols) : ""));
      }
      stored[i] = static_cast<uint64_t>(f.read_attr<int64_t>(b.name, "checksum"));
      try {
        f.read_rows_strided<float>(b.name, b.first, b.stride, b.count, b.data);
      } catch (const Error& e) {
        fail(where + "cannot read " + b.name + " (truncated or corrupted file?): " + e.what());
      }
    }
  });
  for (size_t i = 0; i < blocks.size(); ++i)
    if (global_hash(blocks[i], comm) != stored[i])
      fail(where + "dataset " + blocks[i].name + " fails its checksum (the file is corrupted)");
  f.close();
  t.restore(st, comm);
  p.epochs_done = static_cast<int>(st.i64("epochs_done"));
  p.best = st.dbl("best");
  p.since_best = static_cast<int>(st.i64("since_best"));
  p.best_epoch = static_cast<int>(st.i64("best_epoch"));
  p.best_valid = st.dbl("best_valid");
  p.elapsed = st.dbl("elapsed");
  // The GPU backend continues from the restored host tables.
  agree(comm, [&] { t.to_device(); });
}

int64_t bytes_of(Source& t, dist::Comm& comm) {
  int64_t bytes = 1 << 20;  // metadata and attributes
  for (const auto& b : t.blocks(comm.rank(), true)) bytes += b.rows * b.width() * 4;
  // The kept best parameters appear once validation has run: count them ahead.
  if (!t.progress().has_best && t.config().keep_best && t.config().eval_every > 0) bytes += t.best_bytes();
  return bytes;
}


// One adapter per trainer type.
TrainerSource source_of(Trainer& t) { return TrainerSource(t); }
PointwiseSource source_of(PointwiseTrainer& t) { return PointwiseSource(t); }

template <class TrainerT>
void save_as(const std::string& path, TrainerT& t, dist::Comm& comm) {
  auto src = source_of(t);
  save(path, src, comm);
}

template <class TrainerT>
void load_as(const std::string& path, TrainerT& t, const TrainConfig& cfg, const DatasetInfo& data, dist::Comm& comm) {
  auto src = source_of(t);
  load(path, src, cfg, data, comm);
}

template <class TrainerT>
int64_t bytes_as(TrainerT& t, dist::Comm& comm) {
  auto src = source_of(t);
  return bytes_of(src, comm);
}

}  // namespace

void save_checkpoint(const std::string& path, Trainer& t, dist::Comm& comm) { save_as(path, t, comm); }
void save_checkpoint(const std::string& path, PointwiseTrainer& t, dist::Comm& comm) { save_as(path, t, comm); }

void load_checkpoint(const std::string& path, Trainer& t, const TrainConfig& cfg, const DatasetInfo& data,
                     dist::Comm& comm) {
  load_as(path, t, cfg, data, comm);
}
void load_checkpoint(const std::string& path, PointwiseTrainer& t, const TrainConfig& cfg,
                     const DatasetInfo& data, dist::Comm& comm) {
  load_as(path, t, cfg, data, comm);
}

int64_t checkpoint_bytes(Trainer& t, dist::Comm& comm) { return bytes_as(t, comm); }
int64_t checkpoint_bytes(PointwiseTrainer& t, dist::Comm& comm) { return bytes_as(t, comm); }

std::vector<std::string> list_checkpoints(const std::string& dir) {
  std::vector<std::pair<int64_t, std::string>> found;
  std::error_code ec;
  for (const auto& e : fs::directory_iterator(dir, ec)) {
    const std::string name = e.path().filename().string();
    if (name.size() < 9 || name.rfind("ckpt-", 0) != 0 || name.substr(name.size() - 3) != ".h5") continue;
    const std::string digits = name.substr(5, name.size() - 8);
    if (digits.empty() || digits.find_first_not_of("0123456789") != std::string::npos) continue;
    found.push_back({std::stoll(digits), e.path().string()});
  }
  std::sort(found.begin(), found.end());
  std::vector<std::string> out;
  for (auto& [s, p] : found) out.push_back(p);
  return out;
}

void parse_checkpoint_every(const std::string& text, int64_t* steps, double* minutes) {
  *steps = 0;
  *minutes = 0;
  size_t used = 0;
  double v = 0;
  try {
    v = std::stod(text, &used);
  } catch (const std::logic_error&) {
    used = 0;
  }
  const std::string unit = text.substr(used);
  if (used > 0 && v > 0 && (unit.empty() || unit == "steps")) {
    if (v != static_cast<double>(static_cast<int64_t>(v)))
      fail("option --checkpoint-every: '" + text + "': a number of steps must be an integer");
    *steps = static_cast<int64_t>(v);
    return;
  }
  if (used > 0 && v > 0 && (unit == "m" || unit == "min")) {
    *minutes = v;
    return;
  }
  fail("option --checkpoint-every: '" + text + "': expected steps (e.g. 500) or minutes (e.g. 30m)");
}

Checkpointer::Checkpointer(CheckpointPolicy policy, dist::Comm& comm)
    : p_(std::move(policy)), comm_(comm), last_time_(now_s()) {}

bool Checkpointer::operator()(Trainer& t) {
  return tick(t.global_step(), [&] { write(t); });
}

bool Checkpointer::operator()(PointwiseTrainer& t) {
  return tick(t.global_step(), [&] { write(t); });
}

bool Checkpointer::tick(int64_t global_step, const std::function<void()>& write_now) {
  bool due = p_.every_steps > 0 && global_step % p_.every_steps == 0;
  bool stop = false;
  if (p_.every_minutes > 0 || p_.signal_flag) {
    double flags[2] = {p_.signal_flag && *p_.signal_flag ? 1.0 : 0.0,
                       p_.every_minutes > 0 && now_s() - last_time_ >= p_.every_minutes * 60 ? 1.0 : 0.0};
    comm_.allreduce_max(flags, 2);
    stop = flags[0] > 0;
    due = due || stop || flags[1] > 0;
  }
  if (due) write_now();
  return stop;
}

std::string Checkpointer::write(Trainer& t) {
  return write_as(t.global_step(), [&](const std::string& path) { save_checkpoint(path, t, comm_); });
}

std::string Checkpointer::write(PointwiseTrainer& t) {
  return write_as(t.global_step(), [&](const std::string& path) { save_checkpoint(path, t, comm_); });
}

std::string Checkpointer::write_as(int64_t global_step, const std::function<void(const std::string&)>& save_to) {
  const std::string path = p_.dir + "/ckpt-" + zero_padded(global_step) + ".h5";
  agree(comm_, [&] {
    if (comm_.rank() != 0) return;
    std::error_code ec;
    fs::create_directories(p_.dir, ec);
    if (ec) fail("checkpoint directory " + p_.dir + ": " + ec.message());
  });
  save_to(path);
  last_ = path;
  last_time_ = now_s();
  if (comm_.rank() == 0 && p_.keep > 0) {
    auto all = list_checkpoints(p_.dir);
    for (size_t i = 0; i + p_.keep < all.size(); ++i) std::remove(all[i].c_str());
  }
  comm_.barrier();
  return path;
}

}  // namespace shardrec::io
