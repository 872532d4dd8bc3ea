// Threads inside a rank for data-parallel loops. A loop over [0, n) is cut into size() contiguous
// ranges by index alone, so which thread computes an element never changes what is computed:
// a loop whose elements are independent (or whose sums are exact) gives the same bits for any
// number of threads. Workers never call MPI (the caller, thread 0, does).
#pragma once
#include <condition_variable>
#include <cstddef>
#include <exception>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

namespace shardrec {

class ThreadPool {
 public:
  explicit ThreadPool(int threads) : n_(threads < 1 ? 1 : threads) {
    for (int t = 1; t < n_; ++t) workers_.emplace_back([this, t] { work(t); });
  }
  ~ThreadPool() {
    {
      std::lock_guard<std::mutex> lock(mu_);
      stop_ = true;
    }
    cv_.notify_all();
    for (auto& w : workers_) w.join();
  }
  ThreadPool(const ThreadPool&) = delete;
  ThreadPool& operator=(const ThreadPool&) = delete;

  int size() const { return n_; }
  // Thread t's range of [0, n): [n * t / T, n * (t + 1) / T).
  static size_t begin(size_t n, int t, int threads) { return n * static_cast<size_t>(t) / static_cast<size_t>(threads); }

  // fn(begin, end, t) for each thread's range; returns when all are done, rethrowing the first
  // exception a range threw (after every range ended). Loops shorter than
  // `min_per_thread` per thread run on the caller alone (same results: the split is by index).
  void run(size_t n, const std::function<void(size_t, size_t, int)>& fn, size_t min_per_thread = 8) {
    if (n_ == 1 || n < min_per_thread * static_cast<size_t>(n_)) {
      fn(0, n, 0);
      return;
    }
    {
      std::lock_guard<std::mutex> lock(mu_);
      job_ = &fn;
      len_ = n;
      pending_ = n_ - 1;
      ++generation_;
    }
    cv_.notify_all();
    std::exception_ptr mine;
    try {
      fn(0, begin(n, 1, n_), 0);
    } catch (...) {
      mine = std::current_exception();
    }
    std::unique_lock<std::mutex> lock(mu_);
    done_.wait(lock, [this] { return pending_ == 0; });
    job_ = nullptr;
    std::exception_ptr e = mine ? mine : error_;
    error_ = nullptr;
    if (e) std::rethrow_exception(e);
  }

 private:
  void work(int t) {
    unsigned long seen = 0;
    for (;;) {
      const std::function<void(size_t, size_t, int)>* job;
      size_t n;
      {
        std::unique_lock<std::mutex> lock(mu_);
        cv_.wait(lock, [&] { return stop_ || generation_ != seen; });
        if (stop_) return;
        seen = generation_;
        job = job_;
        n = len_;
      }
      std::exception_ptr e;
      try {
        (*job)(begin(n, t, n_), begin(n, t + 1, n_), t);
      } catch (...) {
        e = std::current_exception();
      }
      std::lock_guard<std::mutex> lock(mu_);
      if (e && !error_) error_ = e;
      if (--pending_ == 0) done_.notify_one();
    }
  }

  int n_;
  std::vector<std::thread> workers_;
  std::mutex mu_;
  std::condition_variable cv_, done_;
  const std::function<void(size_t, size_t, int)>* job_ = nullptr;
  size_t len_ = 0;
  int pending_ = 0;
  unsigned long generation_ = 0;
  std::exception_ptr error_;
  bool stop_ = false;
};

// fn over [0, n) on the pool's threads, or on the caller when there is no pool.
inline void parallel(ThreadPool* pool, size_t n, const std::function<void(size_t, size_t, int)>& fn) {
  if (pool)
    pool->run(n, fn);
  else
    fn(0, n, 0);
}

}  // namespace shardrec
