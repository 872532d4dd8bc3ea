// Every file shardrec writes lands through here. The bytes go to a unique temporary next to the
// target (mkstemp: two writers never share one), are synced to disk, and only then renamed over
// the target; on any failure, exceptions included, the temporary is removed and the target is as
// it was. A target that exists and is not a regular file (/dev/stdout, a directory, a fifo) is
// refused before any work: renaming over it would replace the device node (as root) or fail
// after the work is done. A symlink to a regular file is followed, so the link keeps pointing at
// the new content.
#pragma once
#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace shardrec {

// Fails (naming `path`) unless it is absent or a regular file; returns the path to write, with a
// symlink resolved.
std::string output_target(const std::string& path);

class AtomicFile {
 public:
  explicit AtomicFile(const std::string& path);
  ~AtomicFile();  // removes the temporary unless committed
  AtomicFile(const AtomicFile&) = delete;
  AtomicFile& operator=(const AtomicFile&) = delete;

  const std::string& path() const { return path_; }
  // Where the content goes until commit(); other writers (HDF5) may open it by name.
  const std::string& tmp_path() const { return tmp_; }
  // Appends to the temporary; a short write (a full disk) fails naming the target.
  void write(std::string_view data);
  // Syncs the temporary to disk (errors that a full disk reports late surface here).
  void sync();
  // sync() and rename into place.
  void commit();
  void rename_into_place();  // after sync(): what AtomicFiles does once every part is synced

 private:
  std::string path_, tmp_;
  int fd_ = -1;
  bool done_ = false;
};

// Outputs of several files: all are renamed once every part is complete and synced, or none is.
class AtomicFiles {
 public:
  AtomicFile& add(const std::string& path);
  void commit();

 private:
  std::vector<std::unique_ptr<AtomicFile>> parts_;
};

// The whole of `text` to `path`, atomically.
void write_file(const std::string& path, std::string_view text);

// Appends `text` to the regular file `path` and syncs it. On failure the file is cut back to its
// length before (no half line is left) and an error names the file: a line is never lost silently.
void append_file(const std::string& path, std::string_view text);

}  // namespace shardrec
