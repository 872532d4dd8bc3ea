#include "io/checkpoint.h"


#include <algorithm>
#include <chrono>
#include <cinttypes>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <map>
#include <memory>
#include <sstream>

#include "base/atomic_file.h"
#include "base/error.h"
#include "base/rng.h"
#include "dist/mpi_comm.h"
#include "io/hdf5_util.h"

namespace shardrec::io {

namespace fs = std::filesystem;

namespace {

double now_s() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

}  // namespace

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
    throw AgreedError(msg);
  }
}

const std::string& StateValues::str(const std::string& key) const {
  auto it = kv_.find(key);
  if (it == kv_.end()) fail(where_ + "state has no '" + key + "'");
  return it->second;
}

// XOR over this rank's rows of hash(id, row bytes): independent of which rank holds which row.
uint64_t rows_hash(const StateBlock& b) {
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
uint64_t global_hash(const StateBlock& b, dist::Comm& comm) {
  const uint64_t mine = b.replicated && comm.rank() != 0 ? 0 : rows_hash(b);
  std::vector<uint64_t> all(comm.size());
  comm.allgather_u64(mine, all.data());
  uint64_t h = 0;
  for (auto x : all) h ^= x;
  return h;
}

namespace {

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

// The state text: the training's own key-values, then the dataset's identity (collective).
std::string state_text(StateDict& src, dist::Comm& comm) {
  const DatasetInfo& info = src.dataset();
  std::ostringstream o;
  o << src.state(comm);
  o << "\nnum_users = " << info.num_users << "\nnum_items = " << info.num_items
    << "\ntrain_rows = " << info.rows[0] << "\nvalid_rows = " << info.rows[1]
    << "\ntest_rows = " << info.rows[2] << "\n";
  if (!info.fingerprint.empty()) o << "fingerprint = " << info.fingerprint << "\n";
  return o.str();
}

void write_layout(H5File& f, const std::string& config, const std::string& state,
                  const std::string& model, const std::vector<std::string>& groups,
                  const std::vector<StateBlock>& blocks, const std::vector<uint64_t>& hashes) {
  f.write_attr_str("/", "format", kCheckpointFormat);
  f.write_attr<int32_t>("/", "version", kCheckpointVersion);
  f.write_attr_str("/", "model", model);
  f.write_attr_str("/", "config", config);
  f.write_attr_str("/", "state", state);
  f.write_attr<int64_t>("/", "checksum", static_cast<int64_t>(text_hash(config + "\n--\n" + state)));
  for (const auto& g : groups) f.create_group(g);
  for (size_t i = 0; i < blocks.size(); ++i) {
    f.create_dataset<float>(blocks[i].name, blocks[i].rows, blocks[i].cols);
    f.write_attr<int64_t>(blocks[i].name, "checksum", static_cast<int64_t>(hashes[i]));
  }
}

void write_rows(H5File& f, const std::vector<StateBlock>& blocks) {
  for (const auto& b : blocks) f.write_rows_strided<float>(b.name, b.first, b.stride, b.count, b.data);
}

std::string zero_padded(int64_t v) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%010" PRId64, v);
  return buf;
}

void save(const std::string& path, StateDict& t, dist::Comm& comm) {
  auto* mpi = dynamic_cast<dist::MpiComm*>(&comm);
  // The GPU backend's state lives on the device: bring it into the host tables written below.
  agree(comm, [&] { t.to_host(); });
  const std::string config = t.config_text();
  const std::string state = state_text(t, comm);
  const auto blocks = t.blocks(comm.rank(), false);
  const auto groups = t.groups();
  std::vector<uint64_t> hashes;
  for (const auto& b : blocks) hashes.push_back(global_hash(b, comm));
  // Rank 0 owns the temporary (base/atomic_file.h): removed on any failure, renamed when whole.
  std::unique_ptr<AtomicFile> out;
  agree(comm, [&] {
    if (comm.rank() == 0) out = std::make_unique<AtomicFile>(path);
  });
  std::string tmp = out ? out->tmp_path() : std::string();
  uint64_t len = tmp.size();
  comm.broadcast(&len, sizeof len, 0);
  tmp.resize(len);
  comm.broadcast(tmp.data(), len, 0);
  if (mpi) {
    // Parallel HDF5: the layout is collective, every rank then writes its own rows. MPI-IO waits
    // on the other ranks outside the communicator's collectives: the region bounds it.
    dist::BlockingRegion region(comm, "writing checkpoint " + path + " (parallel HDF5)");
    agree(comm, [&] {
      H5File f = H5File::create_parallel(tmp, mpi->native_handle());
      write_layout(f, config, state, t.model(), groups, blocks, hashes);
      write_rows(f, blocks);
      f.close();
    });
  } else {
    // Ranks are threads of one process: one writer at a time (HDF5 is not thread-safe).
    agree(comm, [&] {
      if (comm.rank() != 0) return;
      H5File f = H5File::create(tmp);
      write_layout(f, config, state, t.model(), groups, blocks, hashes);
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
  // On disk before it replaces anything: a crash after the rename must not find it half there.
  agree(comm, [&] {
    if (out) out->commit();
  });
}

void load(const std::string& path, StateDict& t, const std::string& config_now, const DatasetInfo& info,
          const std::string& data_path, dist::Comm& comm) {
  auto* mpi = dynamic_cast<dist::MpiComm*>(&comm);
  const std::string where = "checkpoint " + path + ": ";
  dist::BlockingRegion region(comm, "reading checkpoint " + path + " (parallel HDF5)");
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
  const StateValues st(key_values(state), where);
  // The checkpoint must come from the same model, dataset and training config; only the number
  // of epochs (and the dataset's path) may change on resume, and where training runs: the state
  // is the same on both backends (a device change continues within their tolerance, not bitwise).
  const auto was = key_values(config), now = key_values(config_now);
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
           std::to_string(v) + " in " + data_path);
  // Same shape is not the same data: the dataset fingerprint (prep), where both sides have one.
  if (st.has("fingerprint") && !info.fingerprint.empty() && st.str("fingerprint") != info.fingerprint)
    fail(where + "written for another dataset: fingerprint " + st.str("fingerprint") + " there, " +
         info.fingerprint + " in " + data_path);
  t.prepare(st);
  const auto blocks = t.blocks(comm.rank(), true);
  std::vector<uint64_t> stored(blocks.size());
  agree(comm, [&] {
    for (size_t i = 0; i < blocks.size(); ++i) {
      const StateBlock& b = blocks[i];
      const auto shape = f.shape(b.name);
      const std::vector<int64_t> want = b.cols > 0 ? std::vector<int64_t>{b.rows, b.cols} : std::vector<int64_t>{b.rows};
      if (shape != want) {
        std::string have;
        for (auto x : shape) have.append(have.empty() ? "" : "x").append(std::to_string(x));
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
  // The GPU backend continues from the restored host tables.
  agree(comm, [&] { t.to_device(); });
}

int64_t bytes_of(StateDict& t, dist::Comm& comm) {
  int64_t bytes = 1 << 20;  // metadata and attributes
  for (const auto& b : t.blocks(comm.rank(), true)) bytes += b.rows * b.width() * 4;
  return bytes + t.later_bytes();
}

}  // namespace

void save_checkpoint(const std::string& path, StateDict& t, dist::Comm& comm) { save(path, t, comm); }

void load_checkpoint(const std::string& path, StateDict& t, const std::string& config_now, const DatasetInfo& data,
                     const std::string& data_path, dist::Comm& comm) {
  load(path, t, config_now, data, data_path, comm);
}

int64_t checkpoint_bytes(StateDict& t, dist::Comm& comm) { return bytes_of(t, comm); }

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

bool Checkpointer::operator()(StateDict& t) {
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

std::string Checkpointer::write(StateDict& t) {
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
