#include "dist/inproc_comm.h"

#include <algorithm>
#include <condition_variable>
#include <exception>
#include <mutex>
#include <stdexcept>
#include <thread>
#include <vector>

namespace shardrec::dist {

class InProcGroup {
 public:
  explicit InProcGroup(int n) : slots_(n), aux_(n), n_(n) {}
  int size() const { return n_; }

  // Generation barrier; throws once any rank has aborted, so no thread waits forever.
  void sync() {
    std::unique_lock lk(mu_);
    if (aborted_) throw std::runtime_error("in-process group aborted by another rank");
    const uint64_t gen = gen_;
    if (++arrived_ == n_) {
      arrived_ = 0;
      ++gen_;
      cv_.notify_all();
      return;
    }
    cv_.wait(lk, [&] { return gen_ != gen || aborted_; });
    if (gen_ == gen) throw std::runtime_error("in-process group aborted by another rank");
  }
  void abort() {
    std::lock_guard lk(mu_);
    aborted_ = true;
    cv_.notify_all();
  }

  // Each rank publishes pointers here between two syncs.
  std::vector<const void*> slots_;
  std::vector<const size_t*> aux_;

 private:
  int n_;
  std::mutex mu_;
  std::condition_variable cv_;
  int arrived_ = 0;
  uint64_t gen_ = 0;
  bool aborted_ = false;
};

InProcComm::InProcComm(std::shared_ptr<InProcGroup> group, int rank)
    : group_(std::move(group)), rank_(rank) {}

int InProcComm::size() const { return group_->size(); }

void InProcComm::do_alltoallv(const void* send, const size_t* /*send_bytes*/, const size_t* send_displs,
                             void* recv, const size_t* recv_bytes, const size_t* recv_displs, Memory) {
  // Publish the send buffer and its displacements; peers copy out what is theirs.
  group_->slots_[rank_] = send;
  group_->aux_[rank_] = send_displs;
  group_->sync();
  for (int k = 0; k < size(); ++k) {
    if (!recv_bytes[k]) continue;
    const char* src = static_cast<const char*>(group_->slots_[k]) + group_->aux_[k][rank_];
    std::copy_n(src, recv_bytes[k], static_cast<char*>(recv) + recv_displs[k]);
  }
  group_->sync();
}

void InProcComm::do_alltoall_u64(const uint64_t* send, uint64_t* recv) {
  group_->slots_[rank_] = send;
  group_->sync();
  for (int k = 0; k < size(); ++k) recv[k] = static_cast<const uint64_t*>(group_->slots_[k])[rank_];
  group_->sync();
}

void InProcComm::do_allreduce_sum(int64_t* data, size_t n, Memory) {
  std::vector<int64_t> mine(data, data + n);
  group_->slots_[rank_] = mine.data();
  group_->sync();
  for (size_t i = 0; i < n; ++i) {
    int64_t s = 0;
    for (int k = 0; k < size(); ++k) s += static_cast<const int64_t*>(group_->slots_[k])[i];
    data[i] = s;
  }
  group_->sync();
}

void InProcComm::do_allreduce_max(double* data, size_t n, Memory) {
  std::vector<double> mine(data, data + n);
  group_->slots_[rank_] = mine.data();
  group_->sync();
  for (size_t i = 0; i < n; ++i) {
    double m = static_cast<const double*>(group_->slots_[0])[i];
    for (int k = 1; k < size(); ++k) m = std::max(m, static_cast<const double*>(group_->slots_[k])[i]);
    data[i] = m;
  }
  group_->sync();
}

void InProcComm::do_allgatherv(const void* send, size_t send_bytes, void* recv, const size_t* recv_bytes, Memory) {
  (void)send_bytes;
  group_->slots_[rank_] = send;
  group_->sync();
  size_t off = 0;
  for (int k = 0; k < size(); ++k) {
    std::copy_n(static_cast<const char*>(group_->slots_[k]), recv_bytes[k],
                static_cast<char*>(recv) + off);
    off += recv_bytes[k];
  }
  group_->sync();
}

void InProcComm::do_allgather_u64(uint64_t value, uint64_t* recv) {
  group_->slots_[rank_] = &value;
  group_->sync();
  for (int k = 0; k < size(); ++k) recv[k] = *static_cast<const uint64_t*>(group_->slots_[k]);
  group_->sync();
}

void InProcComm::do_broadcast(void* data, size_t bytes, int root, Memory) {
  group_->slots_[rank_] = data;
  group_->sync();
  if (rank_ != root)
    std::copy_n(static_cast<const char*>(group_->slots_[root]), bytes, static_cast<char*>(data));
  group_->sync();
}

void InProcComm::do_barrier() { group_->sync(); }

void run_ranks(int world, const std::function<void(Comm&)>& fn) {
  auto group = std::make_shared<InProcGroup>(world);
  std::vector<std::exception_ptr> errors(world);
  std::vector<std::thread> threads;
  for (int r = 0; r < world; ++r) {
    threads.emplace_back([&, r] {
      InProcComm comm(group, r);
      try {
        fn(comm);
      } catch (...) {
        errors[r] = std::current_exception();
        group->abort();
      }
    });
  }
  for (auto& t : threads) t.join();
  // The first failure that is not just the echo of another rank's abort.
  std::exception_ptr first;
  for (auto& e : errors) {
    if (!e) continue;
    try {
      std::rethrow_exception(e);
    } catch (const std::runtime_error& ex) {
      if (std::string(ex.what()).find("aborted by another rank") == std::string::npos) {
        std::rethrow_exception(e);
      }
      if (!first) first = e;
    } catch (...) {
      std::rethrow_exception(e);
    }
  }
  if (first) std::rethrow_exception(first);
}

}  // namespace shardrec::dist
