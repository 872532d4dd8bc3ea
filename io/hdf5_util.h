// Thin RAII layer over the HDF5 C API, and typed helpers for 1-D and 2-D datasets.
// The HDF5 library keeps process-wide state and the Debian parallel build is not thread-safe, so
// every call from shardrec holds hdf5_mutex(): in-process tests run several ranks as threads.
#pragma once
#include <hdf5.h>

#include <cstdint>
#include <mutex>
#include <string>
#include <vector>

#include "base/atomic_file.h"

namespace shardrec::io {

std::recursive_mutex& hdf5_mutex();

// HDF5 1.10 cannot recover from a close whose flush failed (a full disk): the file stays half
// closed and the library's exit handler (or MPI_Finalize's) crashes on it. True once that
// happened: the process must then end with _exit after its message (launch/main.cc).
bool hdf5_close_failed();

// Owns one hid_t and closes it with the matching H5*close.
class H5Handle {
 public:
  using Closer = herr_t (*)(hid_t);
  H5Handle() = default;
  H5Handle(hid_t id, Closer closer) : id_(id), closer_(closer) {}
  ~H5Handle() { reset(); }
  H5Handle(H5Handle&& o) noexcept : id_(o.id_), closer_(o.closer_) { o.id_ = -1; }
  H5Handle& operator=(H5Handle&& o) noexcept {
    if (this != &o) { reset(); id_ = o.id_; closer_ = o.closer_; o.id_ = -1; }
    return *this;
  }
  H5Handle(const H5Handle&) = delete;
  H5Handle& operator=(const H5Handle&) = delete;
  hid_t get() const { return id_; }
  bool valid() const { return id_ >= 0; }
  hid_t release() { const hid_t id = id_; id_ = -1; return id; }
  void reset() {
    std::lock_guard<std::recursive_mutex> lk(hdf5_mutex());
    if (id_ >= 0 && closer_) closer_(id_);
    id_ = -1;
  }

 private:
  hid_t id_ = -1;
  Closer closer_ = nullptr;
};

template <class T> hid_t h5_type();
template <> inline hid_t h5_type<int32_t>() { return H5T_NATIVE_INT32; }
template <> inline hid_t h5_type<int64_t>() { return H5T_NATIVE_INT64; }
template <> inline hid_t h5_type<uint8_t>() { return H5T_NATIVE_UINT8; }
template <> inline hid_t h5_type<float>() { return H5T_NATIVE_FLOAT; }
template <> inline hid_t h5_type<double>() { return H5T_NATIVE_DOUBLE; }

// An open HDF5 file. `mpi_comm` (a pointer to an MPI_Comm, see MpiComm::native_handle) selects the
// MPI-IO driver; opening is then collective over that communicator.
class H5File {
 public:
  static H5File open_read(const std::string& path, const void* mpi_comm = nullptr);
  // Truncates; serial (sec2) driver. `shown`: the name errors give (an output's target, when path
  // is its temporary).
  static H5File create(const std::string& path, const std::string& shown = {});
  static H5File open_rw(const std::string& path);
  // Creates (truncates) a file with the MPI-IO driver: collective over *mpi_comm, and so is every
  // later call that changes the file's structure (datasets, attributes); row writes are
  // independent. Without parallel HDF5 this is create().
  static H5File create_parallel(const std::string& path, const void* mpi_comm);
  H5File() = default;
  H5File(H5File&&) = default;
  H5File& operator=(H5File&& o) noexcept;
  // A writable file destroyed without close() is an abandoned output (an error is unwinding).
  ~H5File() { abandon(); }
  hid_t id() const { return file_.get(); }
  const std::string& path() const { return path_; }
  // Closes the file; a write that HDF5 only finishes here (metadata on a full disk) fails, naming it.
  void close();

  bool exists(const std::string& name) const;
  void create_group(const std::string& name);
  std::vector<int64_t> shape(const std::string& dataset) const;

  template <class T> void write_attr(const std::string& obj, const std::string& name, T value);
  void write_attr_str(const std::string& obj, const std::string& name, const std::string& value);
  template <class T> T read_attr(const std::string& obj, const std::string& name) const;
  std::string read_attr_str(const std::string& obj, const std::string& name) const;
  bool has_attr(const std::string& obj, const std::string& name) const;

  // Creates a dataset of shape {rows} or {rows, cols}; chunked (so it can grow) when extendible.
  template <class T>
  void create_dataset(const std::string& name, int64_t rows, int64_t cols = 0,
                      bool extendible = false);
  // Writes a block of rows starting at row `start` (growing an extendible dataset as needed).
  template <class T>
  void write_rows(const std::string& name, int64_t start, const T* data, int64_t rows);
  template <class T>
  void read_rows(const std::string& name, int64_t start, int64_t rows, T* out) const;
  // Rows start, start + stride, ... (count of them) of a 1-D or 2-D dataset.
  template <class T>
  void read_rows_strided(const std::string& name, int64_t start, int64_t stride, int64_t count,
                         T* out) const;
  template <class T> std::vector<T> read_all(const std::string& name) const;
  // Writes rows start, start + stride, ... (count of them) of an existing 1-D or 2-D dataset.
  template <class T>
  void write_rows_strided(const std::string& name, int64_t start, int64_t stride, int64_t count,
                          const T* data);

  void write_strings(const std::string& name, const std::vector<std::string>& values);
  // A variable-length string dataset of n entries, filled block by block with write_string_rows
  // (so that a writer never holds every string at once).
  void create_strings(const std::string& name, int64_t n);
  void write_string_rows(const std::string& name, int64_t start, const std::vector<std::string>& values);
  std::vector<std::string> read_strings(const std::string& name, int64_t start, int64_t count) const;

 private:
  H5Handle file_;
  std::string path_;
  bool writable_ = false;
  void abandon() noexcept;
  H5Handle open_dataset(const std::string& name) const;
  // A dataset with rows start, start + stride, ... (count) selected in its file space, and the
  // matching memory space: what strided reads and writes share.
  struct StridedRows {
    H5Handle ds, file_space, mem_space;
  };
  StridedRows select_rows_strided(const std::string& name, int64_t start, int64_t stride, int64_t count) const;
};

}  // namespace shardrec::io
