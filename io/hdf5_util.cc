#include "io/hdf5_util.h"

#include <unistd.h>

#include <cstdio>
#include <filesystem>

#include "base/error.h"
#include "shardrec_config.h"
#ifdef H5_HAVE_PARALLEL
#include <mpi.h>
#endif

namespace shardrec::io {

std::recursive_mutex& hdf5_mutex() {
  // The HDF5 library is itself one process-wide resource; this lock mirrors it.
  static std::recursive_mutex m;
  return m;
}

namespace {
using Lock = std::lock_guard<std::recursive_mutex>;

void silence_hdf5() {
  // HDF5 prints its own error stack by default; shardrec reports errors itself.
  H5Eset_auto2(H5E_DEFAULT, nullptr, nullptr);
}

hid_t checked(hid_t id, const std::string& what) {
  if (id < 0) fail(what);
  return id;
}
void checked_rc(herr_t rc, const std::string& what) {
  if (rc < 0) fail(what);
}

// Creation properties without modification times, so identical content gives identical bytes.
H5Handle dataset_props(int rank, const hsize_t* chunk) {
  H5Handle dcpl(H5Pcreate(H5P_DATASET_CREATE), H5Pclose);
  H5Pset_obj_track_times(dcpl.get(), false);
  if (chunk) H5Pset_chunk(dcpl.get(), rank, chunk);
  return dcpl;
}
}  // namespace

H5File H5File::open_read(const std::string& path, const void* mpi_comm) {
  Lock lk(hdf5_mutex());
  silence_hdf5();
  if (!std::filesystem::exists(path)) fail(path + ": no such file");
  H5File f;
  f.path_ = path;
  H5Handle fapl(H5Pcreate(H5P_FILE_ACCESS), H5Pclose);
#ifdef H5_HAVE_PARALLEL
  if (mpi_comm) H5Pset_fapl_mpio(fapl.get(), *static_cast<const MPI_Comm*>(mpi_comm), MPI_INFO_NULL);
#else
  (void)mpi_comm;
#endif
  if (H5Fis_hdf5(path.c_str()) <= 0)
    fail(path + ": not an HDF5 file (or unreadable)");
  f.file_ = H5Handle(checked(H5Fopen(path.c_str(), H5F_ACC_RDONLY, fapl.get()),
                             path + ": cannot open HDF5 file"),
                     H5Fclose);
  return f;
}

H5File H5File::create(const std::string& path, const std::string& shown) {
  Lock lk(hdf5_mutex());
  silence_hdf5();
  H5File f;
  f.path_ = shown.empty() ? path : shown;
  H5Handle fcpl(H5Pcreate(H5P_FILE_CREATE), H5Pclose);
  H5Pset_obj_track_times(fcpl.get(), false);
  f.writable_ = true;
  f.file_ = H5Handle(checked(H5Fcreate(path.c_str(), H5F_ACC_TRUNC, fcpl.get(), H5P_DEFAULT),
                             f.path_ + ": cannot create HDF5 file"),
                     H5Fclose);
  return f;
}

H5File H5File::create_parallel(const std::string& path, const void* mpi_comm) {
#ifdef H5_HAVE_PARALLEL
  Lock lk(hdf5_mutex());
  silence_hdf5();
  H5File f;
  f.path_ = path;
  H5Handle fcpl(H5Pcreate(H5P_FILE_CREATE), H5Pclose);
  H5Pset_obj_track_times(fcpl.get(), false);
  H5Handle fapl(H5Pcreate(H5P_FILE_ACCESS), H5Pclose);
  H5Pset_fapl_mpio(fapl.get(), *static_cast<const MPI_Comm*>(mpi_comm), MPI_INFO_NULL);
  f.writable_ = true;
  f.file_ = H5Handle(checked(H5Fcreate(path.c_str(), H5F_ACC_TRUNC, fcpl.get(), fapl.get()),
                             path + ": cannot create HDF5 file"),
                     H5Fclose);
  return f;
#else
  (void)mpi_comm;
  return create(path);
#endif
}

H5File H5File::open_rw(const std::string& path) {
  Lock lk(hdf5_mutex());
  silence_hdf5();
  H5File f;
  f.path_ = path;
  f.writable_ = true;
  f.file_ = H5Handle(checked(H5Fopen(path.c_str(), H5F_ACC_RDWR, H5P_DEFAULT),
                             path + ": cannot open HDF5 file for writing"),
                     H5Fclose);
  return f;
}

namespace {
bool g_close_failed = false;

// Flushes and closes; on a failed flush, first gives the (abandoned) file's space back so that
// the close can write its metadata and HDF5 is left consistent.
bool flush_and_close(hid_t id, bool writable) {
  bool ok = !writable || H5Fflush(id, H5F_SCOPE_LOCAL) >= 0;
  if (!ok) {
    H5Handle fapl(H5Fget_access_plist(id), H5Pclose);
    void* vfd = nullptr;
    if (fapl.valid() && H5Pget_driver(fapl.get()) == H5FD_SEC2 && H5Fget_vfd_handle(id, H5P_DEFAULT, &vfd) >= 0 && vfd)
      if (::ftruncate(*static_cast<int*>(vfd), 0) != 0) { /* the close below reports it */ }
  }
  if (H5Fclose(id) < 0) {
    g_close_failed = true;
    ok = false;
  }
  return ok;
}
}  // namespace

bool hdf5_close_failed() { return g_close_failed; }

H5File& H5File::operator=(H5File&& o) noexcept {
  if (this != &o) {
    abandon();
    file_ = std::move(o.file_);
    path_ = std::move(o.path_);
    writable_ = o.writable_;
  }
  return *this;
}

void H5File::close() {
  Lock lk(hdf5_mutex());
  if (!file_.valid()) return;
  if (!flush_and_close(file_.release(), writable_)) fail(path_ + ": cannot finish writing the file (disk full?)");
}

void H5File::abandon() noexcept {
  Lock lk(hdf5_mutex());
  if (file_.valid()) flush_and_close(file_.release(), writable_);
}

bool H5File::exists(const std::string& name) const {
  Lock lk(hdf5_mutex());
  // Check each path component, since H5Lexists fails on a missing intermediate group.
  std::string cur;
  size_t pos = 0;
  while (pos < name.size()) {
    size_t next = name.find('/', pos + 1);
    if (next == std::string::npos) next = name.size();
    cur = name.substr(0, next);
    if (cur != "/" && H5Lexists(file_.get(), cur.c_str(), H5P_DEFAULT) <= 0) return false;
    pos = next;
  }
  return true;
}

void H5File::create_group(const std::string& name) {
  Lock lk(hdf5_mutex());
  H5Handle gcpl(H5Pcreate(H5P_GROUP_CREATE), H5Pclose);
  H5Pset_obj_track_times(gcpl.get(), false);
  H5Handle g(checked(H5Gcreate2(file_.get(), name.c_str(), H5P_DEFAULT, gcpl.get(), H5P_DEFAULT),
                     path_ + ": cannot create group " + name),
             H5Gclose);
}

H5Handle H5File::open_dataset(const std::string& name) const {
  if (!exists(name)) fail(path_ + ": dataset " + name + " is missing (not a shardrec file of this kind?)");
  return H5Handle(checked(H5Dopen2(file_.get(), name.c_str(), H5P_DEFAULT),
                          path_ + ": cannot open dataset " + name),
                  H5Dclose);
}

std::vector<int64_t> H5File::shape(const std::string& dataset) const {
  Lock lk(hdf5_mutex());
  H5Handle ds = open_dataset(dataset);
  H5Handle sp(H5Dget_space(ds.get()), H5Sclose);
  int nd = H5Sget_simple_extent_ndims(sp.get());
  std::vector<hsize_t> dims(nd > 0 ? nd : 0);
  if (nd > 0) H5Sget_simple_extent_dims(sp.get(), dims.data(), nullptr);
  return std::vector<int64_t>(dims.begin(), dims.end());
}

namespace {
H5Handle open_object(hid_t file, const std::string& path, const std::string& obj) {
  return H5Handle(checked(H5Oopen(file, obj.c_str(), H5P_DEFAULT), path + ": no object " + obj),
                  H5Oclose);
}
}  // namespace

template <class T>
void H5File::write_attr(const std::string& obj, const std::string& name, T value) {
  Lock lk(hdf5_mutex());
  H5Handle o = open_object(file_.get(), path_, obj);
  H5Handle sp(H5Screate(H5S_SCALAR), H5Sclose);
  H5Handle a(checked(H5Acreate2(o.get(), name.c_str(), h5_type<T>(), sp.get(), H5P_DEFAULT, H5P_DEFAULT),
                     path_ + ": cannot write attribute " + name),
             H5Aclose);
  checked_rc(H5Awrite(a.get(), h5_type<T>(), &value), path_ + ": cannot write attribute " + name);
}

void H5File::write_attr_str(const std::string& obj, const std::string& name,
                            const std::string& value) {
  Lock lk(hdf5_mutex());
  H5Handle o = open_object(file_.get(), path_, obj);
  H5Handle t(H5Tcopy(H5T_C_S1), H5Tclose);
  H5Tset_size(t.get(), value.empty() ? 1 : value.size());
  H5Tset_cset(t.get(), H5T_CSET_UTF8);
  H5Handle sp(H5Screate(H5S_SCALAR), H5Sclose);
  H5Handle a(checked(H5Acreate2(o.get(), name.c_str(), t.get(), sp.get(), H5P_DEFAULT, H5P_DEFAULT),
                     path_ + ": cannot write attribute " + name),
             H5Aclose);
  std::string v = value.empty() ? std::string(1, '\0') : value;
  checked_rc(H5Awrite(a.get(), t.get(), v.data()), path_ + ": cannot write attribute " + name);
}

template <class T>
T H5File::read_attr(const std::string& obj, const std::string& name) const {
  Lock lk(hdf5_mutex());
  H5Handle o = open_object(file_.get(), path_, obj);
  if (H5Aexists(o.get(), name.c_str()) <= 0)
    fail(path_ + ": attribute " + name + " of " + obj + " is missing (not a shardrec file?)");
  H5Handle a(H5Aopen(o.get(), name.c_str(), H5P_DEFAULT), H5Aclose);
  T v{};
  checked_rc(H5Aread(a.get(), h5_type<T>(), &v), path_ + ": cannot read attribute " + name);
  return v;
}

bool H5File::has_attr(const std::string& obj, const std::string& name) const {
  Lock lk(hdf5_mutex());
  H5Handle o = open_object(file_.get(), path_, obj);
  return H5Aexists(o.get(), name.c_str()) > 0;
}

std::string H5File::read_attr_str(const std::string& obj, const std::string& name) const {
  Lock lk(hdf5_mutex());
  H5Handle o = open_object(file_.get(), path_, obj);
  if (H5Aexists(o.get(), name.c_str()) <= 0)
    fail(path_ + ": attribute " + name + " of " + obj + " is missing (not a shardrec file?)");
  H5Handle a(H5Aopen(o.get(), name.c_str(), H5P_DEFAULT), H5Aclose);
  H5Handle t(H5Aget_type(a.get()), H5Tclose);
  if (H5Tget_class(t.get()) != H5T_STRING) fail(path_ + ": attribute " + name + " is not a string");
  if (H5Tis_variable_str(t.get()) > 0) {  // as h5py writes a Python str
    char* s = nullptr;
    H5Handle mt(H5Tcopy(H5T_C_S1), H5Tclose);
    H5Tset_size(mt.get(), H5T_VARIABLE);
    H5Tset_cset(mt.get(), H5Tget_cset(t.get()));  // HDF5 converts no character set to another
    checked_rc(H5Aread(a.get(), mt.get(), &s), path_ + ": cannot read attribute " + name);
    std::string out = s ? s : "";
    H5free_memory(s);
    return out;
  }
  size_t n = H5Tget_size(t.get());
  std::string out(n, '\0');
  checked_rc(H5Aread(a.get(), t.get(), out.data()), path_ + ": cannot read attribute " + name);
  while (!out.empty() && out.back() == '\0') out.pop_back();
  return out;
}

template <class T>
void H5File::create_dataset(const std::string& name, int64_t rows, int64_t cols, bool extendible) {
  Lock lk(hdf5_mutex());
  const int nd = cols > 0 ? 2 : 1;
  hsize_t dims[2] = {static_cast<hsize_t>(rows), static_cast<hsize_t>(cols)};
  hsize_t maxd[2] = {extendible ? H5S_UNLIMITED : dims[0], dims[1]};
  hsize_t chunk[2] = {static_cast<hsize_t>(cols > 0 ? std::max<int64_t>(1, (1 << 20) / (cols * sizeof(T))) : (1 << 18)),
                      static_cast<hsize_t>(cols)};
  H5Handle sp(H5Screate_simple(nd, dims, maxd), H5Sclose);
  H5Handle dcpl = dataset_props(nd, extendible ? chunk : nullptr);
  H5Handle ds(checked(H5Dcreate2(file_.get(), name.c_str(), h5_type<T>(), sp.get(), H5P_DEFAULT,
                                 dcpl.get(), H5P_DEFAULT),
                      path_ + ": cannot create dataset " + name),
              H5Dclose);
}

namespace {
// Selects rows [start, start+rows) of a 1-D or 2-D dataspace.
void select_rows(hid_t space, int64_t start, int64_t rows) {
  hsize_t dims[2] = {0, 0};
  int nd = H5Sget_simple_extent_dims(space, dims, nullptr);
  hsize_t off[2] = {static_cast<hsize_t>(start), 0};
  hsize_t cnt[2] = {static_cast<hsize_t>(rows), nd == 2 ? dims[1] : 1};
  H5Sselect_hyperslab(space, H5S_SELECT_SET, off, nullptr, cnt, nullptr);
}
}  // namespace

template <class T>
void H5File::write_rows(const std::string& name, int64_t start, const T* data, int64_t rows) {
  Lock lk(hdf5_mutex());
  H5Handle ds = open_dataset(name);
  H5Handle sp(H5Dget_space(ds.get()), H5Sclose);
  hsize_t dims[2] = {0, 0};
  int nd = H5Sget_simple_extent_dims(sp.get(), dims, nullptr);
  if (static_cast<hsize_t>(start + rows) > dims[0]) {
    dims[0] = start + rows;
    checked_rc(H5Dset_extent(ds.get(), dims), path_ + ": cannot grow dataset " + name);
    sp = H5Handle(H5Dget_space(ds.get()), H5Sclose);
  }
  if (rows == 0) return;
  select_rows(sp.get(), start, rows);
  hsize_t mdims[2] = {static_cast<hsize_t>(rows), nd == 2 ? dims[1] : 1};
  H5Handle ms(H5Screate_simple(nd, mdims, nullptr), H5Sclose);
  checked_rc(H5Dwrite(ds.get(), h5_type<T>(), ms.get(), sp.get(), H5P_DEFAULT, data),
             path_ + ": cannot write dataset " + name);
}

template <class T>
void H5File::read_rows(const std::string& name, int64_t start, int64_t rows, T* out) const {
  Lock lk(hdf5_mutex());
  H5Handle ds = open_dataset(name);
  H5Handle ftype(H5Dget_type(ds.get()), H5Tclose);
  H5T_class_t cls = H5Tget_class(ftype.get());
  const bool want_int = std::is_integral_v<T>;
  if ((want_int && cls != H5T_INTEGER) || (!want_int && cls != H5T_FLOAT))
    fail(path_ + ": dataset " + name + " has the wrong element type (expected " +
         (want_int ? "integers" : "floats") + ")");
  H5Handle sp(H5Dget_space(ds.get()), H5Sclose);
  hsize_t dims[2] = {0, 0};
  int nd = H5Sget_simple_extent_dims(sp.get(), dims, nullptr);
  if (start < 0 || static_cast<hsize_t>(start + rows) > dims[0])
    fail(path_ + ": dataset " + name + ": rows [" + std::to_string(start) + ", " +
         std::to_string(start + rows) + ") outside its " + std::to_string(dims[0]) + " rows");
  if (rows == 0) return;
  select_rows(sp.get(), start, rows);
  hsize_t mdims[2] = {static_cast<hsize_t>(rows), nd == 2 ? dims[1] : 1};
  H5Handle ms(H5Screate_simple(nd, mdims, nullptr), H5Sclose);
  checked_rc(H5Dread(ds.get(), h5_type<T>(), ms.get(), sp.get(), H5P_DEFAULT, out),
             path_ + ": cannot read dataset " + name);
}

H5File::StridedRows H5File::select_rows_strided(const std::string& name, int64_t start, int64_t stride,
                                                int64_t count) const {
  StridedRows r;
  r.ds = open_dataset(name);
  r.file_space = H5Handle(H5Dget_space(r.ds.get()), H5Sclose);
  hsize_t dims[2] = {0, 0};
  const int nd = H5Sget_simple_extent_dims(r.file_space.get(), dims, nullptr);
  if (start < 0 || stride < 1 || static_cast<hsize_t>(start + (count - 1) * stride) >= dims[0])
    fail(path_ + ": dataset " + name + ": row " + std::to_string(start + (count - 1) * stride) + " outside its " +
         std::to_string(dims[0]) + " rows");
  hsize_t off[2] = {static_cast<hsize_t>(start), 0};
  hsize_t str[2] = {static_cast<hsize_t>(stride), 1};
  hsize_t cnt[2] = {static_cast<hsize_t>(count), 1};
  hsize_t blk[2] = {1, nd == 2 ? dims[1] : 1};
  H5Sselect_hyperslab(r.file_space.get(), H5S_SELECT_SET, off, str, cnt, blk);
  hsize_t mdims[2] = {static_cast<hsize_t>(count), nd == 2 ? dims[1] : 1};
  r.mem_space = H5Handle(H5Screate_simple(nd, mdims, nullptr), H5Sclose);
  return r;
}

template <class T>
void H5File::read_rows_strided(const std::string& name, int64_t start, int64_t stride,
                               int64_t count, T* out) const {
  Lock lk(hdf5_mutex());
  if (count == 0) return;
  const StridedRows r = select_rows_strided(name, start, stride, count);
  checked_rc(H5Dread(r.ds.get(), h5_type<T>(), r.mem_space.get(), r.file_space.get(), H5P_DEFAULT, out),
             path_ + ": cannot read dataset " + name);
}

template <class T>
void H5File::write_rows_strided(const std::string& name, int64_t start, int64_t stride,
                                int64_t count, const T* data) {
  Lock lk(hdf5_mutex());
  if (count == 0) return;
  const StridedRows r = select_rows_strided(name, start, stride, count);
  checked_rc(H5Dwrite(r.ds.get(), h5_type<T>(), r.mem_space.get(), r.file_space.get(), H5P_DEFAULT, data),
             path_ + ": cannot write dataset " + name);
}

template <class T>
std::vector<T> H5File::read_all(const std::string& name) const {
  auto s = shape(name);
  int64_t n = 1;
  for (auto d : s) n *= d;
  std::vector<T> out(n);
  if (!s.empty()) read_rows<T>(name, 0, s[0], out.data());
  return out;
}

void H5File::create_strings(const std::string& name, int64_t n) {
  Lock lk(hdf5_mutex());
  H5Handle t(H5Tcopy(H5T_C_S1), H5Tclose);
  H5Tset_size(t.get(), H5T_VARIABLE);
  H5Tset_cset(t.get(), H5T_CSET_UTF8);
  hsize_t dims = static_cast<hsize_t>(n);
  H5Handle sp(H5Screate_simple(1, &dims, nullptr), H5Sclose);
  // Chunked so that huge id lists need no contiguous allocation in the file.
  hsize_t chunk = std::max<hsize_t>(1, std::min<hsize_t>(dims, 1 << 16));
  H5Handle dcpl = dataset_props(1, dims > 0 ? &chunk : nullptr);
  H5Handle ds(checked(H5Dcreate2(file_.get(), name.c_str(), t.get(), sp.get(), H5P_DEFAULT,
                                 dcpl.get(), H5P_DEFAULT),
                      path_ + ": cannot create dataset " + name),
              H5Dclose);
}

void H5File::write_string_rows(const std::string& name, int64_t start,
                               const std::vector<std::string>& values) {
  Lock lk(hdf5_mutex());
  if (values.empty()) return;
  H5Handle ds = open_dataset(name);
  H5Handle sp(H5Dget_space(ds.get()), H5Sclose);
  select_rows(sp.get(), start, static_cast<int64_t>(values.size()));
  hsize_t m = values.size();
  H5Handle ms(H5Screate_simple(1, &m, nullptr), H5Sclose);
  H5Handle t(H5Tcopy(H5T_C_S1), H5Tclose);
  H5Tset_size(t.get(), H5T_VARIABLE);
  H5Tset_cset(t.get(), H5T_CSET_UTF8);
  std::vector<const char*> ptrs(values.size());
  for (size_t i = 0; i < values.size(); ++i) ptrs[i] = values[i].c_str();
  checked_rc(H5Dwrite(ds.get(), t.get(), ms.get(), sp.get(), H5P_DEFAULT, ptrs.data()),
             path_ + ": cannot write dataset " + name);
}

void H5File::write_strings(const std::string& name, const std::vector<std::string>& values) {
  create_strings(name, static_cast<int64_t>(values.size()));
  write_string_rows(name, 0, values);
}

std::vector<std::string> H5File::read_strings(const std::string& name, int64_t start,
                                              int64_t count) const {
  Lock lk(hdf5_mutex());
  H5Handle ds = open_dataset(name);
  H5Handle sp(H5Dget_space(ds.get()), H5Sclose);
  hsize_t dims[1] = {0};
  H5Sget_simple_extent_dims(sp.get(), dims, nullptr);
  if (start < 0 || static_cast<hsize_t>(start + count) > dims[0])
    fail(path_ + ": dataset " + name + ": index " + std::to_string(start + count - 1) +
         " outside its " + std::to_string(dims[0]) + " entries");
  std::vector<std::string> out;
  if (count == 0) return out;
  select_rows(sp.get(), start, count);
  hsize_t m = count;
  H5Handle ms(H5Screate_simple(1, &m, nullptr), H5Sclose);
  H5Handle t(H5Tcopy(H5T_C_S1), H5Tclose);
  H5Tset_size(t.get(), H5T_VARIABLE);
  H5Tset_cset(t.get(), H5T_CSET_UTF8);
  std::vector<char*> ptrs(count, nullptr);
  checked_rc(H5Dread(ds.get(), t.get(), ms.get(), sp.get(), H5P_DEFAULT, ptrs.data()),
             path_ + ": cannot read strings of " + name);
  out.reserve(count);
  for (auto* p : ptrs) out.emplace_back(p ? p : "");
  H5Dvlen_reclaim(t.get(), ms.get(), H5P_DEFAULT, ptrs.data());
  return out;
}

#define SHARDREC_H5_INSTANTIATE(T)                                                              \
  template void H5File::write_attr<T>(const std::string&, const std::string&, T);               \
  template T H5File::read_attr<T>(const std::string&, const std::string&) const;                \
  template void H5File::create_dataset<T>(const std::string&, int64_t, int64_t, bool);          \
  template void H5File::write_rows<T>(const std::string&, int64_t, const T*, int64_t);          \
  template void H5File::read_rows<T>(const std::string&, int64_t, int64_t, T*) const;           \
  template std::vector<T> H5File::read_all<T>(const std::string&) const;                       \
  template void H5File::read_rows_strided<T>(const std::string&, int64_t, int64_t, int64_t, T*) const; \
  template void H5File::write_rows_strided<T>(const std::string&, int64_t, int64_t, int64_t, const T*);
SHARDREC_H5_INSTANTIATE(int32_t)
SHARDREC_H5_INSTANTIATE(int64_t)
SHARDREC_H5_INSTANTIATE(uint8_t)
SHARDREC_H5_INSTANTIATE(float)
SHARDREC_H5_INSTANTIATE(double)

}  // namespace shardrec::io
