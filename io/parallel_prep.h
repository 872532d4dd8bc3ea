// `shardrec prep` over the ranks of a communicator: each rank reads a share of the inputs, and
// the data ends up as contiguous blocks of users, one per rank; rank 0 writes the file.
//
// The result is prepare()'s (io/prep.h), for any number of ranks: the same dense ids, rows,
// splits and the same bytes in the file. How:
//  1. Pieces. A plain csv / tsv / recbole / ml-dat / ml-udata / adjacency file of more than
//     `piece_bytes` per rank is cut into pieces at record boundaries, at least one per rank (a
//     contiguous run each): each piece starts at the first line end after its nominal offset, outside quotes for csv (the quotes before
//     that offset are counted by the ranks and summed, so that an RFC 4180 field with line breaks
//     is never cut); the newlines before it give the piece's first line number. Other files
//     (JSON, compressed, small) are read whole by one rank, taken in turn. Of the errors the
//     ranks find, the first in input order (file, then piece) is reported, as one rank would.
//  2. Provisional ids: each distinct raw id goes to the rank its hash picks, which numbers it.
//  3. Rows go to their user's rank, in input order (pieces in order); the filters (threshold,
//     dedup per user, k-core with item counts summed over the ranks) run there.
//  4. Dense ids: the raw ids that remain are sorted over the ranks (a sample sort, in prepare()'s
//     order), so each rank holds a contiguous block of users and of items; rows move to their
//     user's block, where the split is made per user as prepare() does.
// Each stage streams: a file is cut into more pieces than ranks when a piece would exceed the
// memory budget's share, each rank parses its pieces one at a time; exchanges go in rounds; rows
// are grouped in buckets of users whose sizes are known beforehand (the row counts of each user
// are sent ahead), in memory or in spill files (PrepMemory). Rows carry their input position, so
// a user's rows are put back in input order however the rounds deliver them. The file is written
// by rank 0 alone (the other ranks send it their blocks in turn).
#pragma once
#include <cstdint>
#include <functional>
#include <limits>
#include <memory>
#include <string>
#include <vector>

#include "dist/comm.h"
#include "io/hdf5_util.h"
#include "io/prep.h"

namespace shardrec::io {

// This rank's part of a prepared dataset.
struct PreparedShard {
  int64_t num_users = 0, num_items = 0;
  int64_t user_begin = 0;             // this rank's users: [user_begin, user_begin + user_raw.size())
  std::vector<std::string> user_raw;  // their raw ids
  int64_t item_begin = 0;             // a block of items: [item_begin, item_begin + item_raw.size())
  std::vector<std::string> item_raw;
  bool has_rating = false, has_timestamp = false;  // every input has them (the same on every rank)
  int64_t positives[3] = {0, 0, 0};   // this rank's rows of each split with rating > label_threshold
  double label_threshold = std::numeric_limits<double>::quiet_NaN();

  // This rank's rows of a split (0 train, 1 valid, 2 test), grouped by user (dense ids); they
  // live in memory or in spill files (PrepMemory). split() reads them whole (tests, small data).
  int64_t rows(int split) const;
  Interactions split(int split) const;
  struct Parts;
  std::shared_ptr<Parts> parts;
};

// How much memory prep may hold. With a budget, every stage whose size grows with the rows
// (parsed pieces, the exchanges, the groupings, the splits) works in pieces, rounds and buckets
// sized from it and keeps its rows in unnamed files in `tmp_dir` (removed on any exit), about 5x
// the input's rows at 24-32 bytes each at the most at once; what grows with the distinct ids
// (their raw strings and id maps, one integer per item on every rank) is held in memory and not
// counted. No budget (0): the stages keep their rows in memory, in the same pieces, rounds and
// buckets, except that those are larger. The output is the same bytes either way.
struct PrepMemory {
  uint64_t budget_bytes = 0;
  std::string tmp_dir;  // with a budget; empty: the working directory
};

// Collective. `piece_bytes`: the least bytes a rank's piece of one file holds (smaller files are
// cut into fewer pieces, or read whole). `report`: the same on every rank.
PreparedShard prepare_parallel(dist::Comm& comm, const PrepOptions& options, PrepReport* report = nullptr,
                               uint64_t piece_bytes = 4 << 20, const PrepMemory& memory = {});

// Collective: appends phase `name` of `seconds` to rep.phases, with the fullest rank's peak
// resident memory so far (prepare_parallel marks its phases so; a caller adds its own after).
void add_phase(dist::Comm& comm, PrepReport& rep, const char* name, double seconds);

// Collective: the shards as one dataset, on every rank (tests; small data).
PreparedDataset gather_shards(dist::Comm& comm, const PreparedShard& shard);

// Collective: writes the dataset as write_dataset (io/dataset.h) writes the gathered shards, the
// same bytes. Rank 0 writes; `extra` runs there with every item's raw id (features, provenance).
// Returns the dataset fingerprint (on every rank).
std::string write_dataset_parallel(dist::Comm& comm, const PreparedShard& shard, const std::string& path,
                                   const std::string& source,
                                   const std::function<void(H5File&, const std::vector<std::string>& item_raw)>& extra);

}  // namespace shardrec::io
