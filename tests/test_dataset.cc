// The HDF5 dataset: write, validate, read a rank's part; parameters export and load.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <hdf5.h>

#include <filesystem>
#include <fstream>

#include "base/error.h"
#include "dist/inproc_comm.h"
#include "fixtures.h"
#include "io/dataset.h"
#include "io/export.h"
#include "io/synth.h"

namespace shardrec {
namespace {
namespace fs = std::filesystem;
using ::testing::HasSubstr;

std::string fresh(const std::string& name) { return testing::fresh_path("dataset", name); }

using testing::error_of;

TEST(Dataset, ShardsReadFromHdf5EqualShardsBuiltInMemory) {
  auto d = testing::planted_dataset(53, 31, 3, 2);
  const std::string p = fresh("planted.h5");
  io::write_dataset(d, p, "test");
  for (int world : {1, 2, 3, 4}) {
    dist::run_ranks(world, [&](dist::Comm& comm) {
      auto a = io::load_shard(p, comm);
      auto b = io::shard_from_memory(d, comm);
      EXPECT_EQ(a.info.num_users, 53);
      EXPECT_EQ(a.info.num_items, 31);
      EXPECT_TRUE(a.info.has_mapping);
      for (int s = 0; s < 3; ++s) {
        EXPECT_EQ(a.split[s].user_lo, b.split[s].user_lo);
        EXPECT_EQ(a.split[s].user_hi, b.split[s].user_hi);
        EXPECT_EQ(a.split[s].row_lo, b.split[s].row_lo);
        EXPECT_EQ(a.split[s].ptr, b.split[s].ptr);
        EXPECT_EQ(a.split[s].item, b.split[s].item);
      }
      // Only this rank's users, and together the ranks hold every training row once.
      int64_t rows = a.train().rows();
      comm.allreduce_sum(&rows, 1);
      EXPECT_EQ(rows, static_cast<int64_t>(d.train.size()));
    });
  }
  auto f = io::H5File::open_read(p);
  auto info = io::read_info(f);
  EXPECT_EQ(io::read_raw_ids(f, info, "item", 3, 2), (std::vector<std::string>{"i3", "i4"}));
}

TEST(Dataset, SynthStreamsAValidDatasetDeterministically) {
  io::SynthConfig c;
  c.users = 300;
  c.items = 120;
  c.interactions = 6000;
  const std::string a = fresh("synth_a.h5"), b = fresh("synth_b.h5");
  auto st = io::synthesize(c, a);
  io::synthesize(c, b);
  std::ifstream fa(a, std::ios::binary), fb(b, std::ios::binary);
  std::string ba((std::istreambuf_iterator<char>(fa)), {}), bb((std::istreambuf_iterator<char>(fb)), {});
  EXPECT_EQ(ba, bb);
  auto f = io::H5File::open_read(a);
  auto info = io::read_info(f);
  EXPECT_FALSE(info.has_mapping);
  EXPECT_EQ(info.rows[0], st.rows[0]);
  EXPECT_GT(st.rows[0] + st.rows[1] + st.rows[2], 4000);
  // Popularity skew: the most popular tenth of the items has far more than a tenth of the rows.
  auto items = f.read_all<int32_t>("/train/item");
  std::vector<int> count(c.items, 0);
  for (auto i : items) count[i]++;
  std::sort(count.rbegin(), count.rend());
  int64_t top = 0;
  for (int i = 0; i < c.items / 10; ++i) top += count[i];
  EXPECT_GT(static_cast<double>(top) / items.size(), 0.2);
}

TEST(Dataset, SchemaErrorsNameTheFileAndTheProblem) {
  EXPECT_THAT(error_of([] { io::H5File::open_read("/nonexistent/x.h5"); }),
              HasSubstr("/nonexistent/x.h5: no such file"));
  const std::string text = fresh("not_hdf5.h5");
  std::ofstream(text) << "user item\n1 2\n";
  EXPECT_THAT(error_of([&] { io::H5File::open_read(text); }), HasSubstr("not an HDF5 file"));

  const std::string other = fresh("other_schema.h5");
  {
    auto f = io::H5File::create(other);
    f.write_attr_str("/", "format", "something-else");
  }
  EXPECT_THAT(error_of([&] { io::read_info(io::H5File::open_read(other)); }),
              HasSubstr("'format' is 'something-else'"));

  // An item id outside the table, planted in a valid file, is caught when a rank reads it.
  auto d = testing::planted_dataset(10, 8, 2, 1);
  const std::string bad = fresh("bad_item.h5");
  io::write_dataset(d, bad, "test");
  {
    auto f = io::H5File::open_rw(bad);
    const int32_t oops = 99;
    f.write_rows<int32_t>("/train/item", 4, &oops, 1);
  }
  dist::run_ranks(1, [&](dist::Comm& comm) {
    EXPECT_THAT(error_of([&] { io::load_shard(bad, comm); }),
                HasSubstr("/train/item index 4: item id 99 outside the item table of 8 rows"));
  });
}

// Replaces a root string attribute by one of the given HDF5 string type (as h5py would write it),
// through the C API so that the test needs no Python.
void rewrite_root_attr(const std::string& path, const char* name, const std::string& value, bool vlen,
                       H5T_cset_t cset) {
  const hid_t file = H5Fopen(path.c_str(), H5F_ACC_RDWR, H5P_DEFAULT);
  ASSERT_GE(file, 0);
  ASSERT_GE(H5Adelete(file, name), 0);
  const hid_t type = H5Tcopy(H5T_C_S1);
  H5Tset_size(type, vlen ? H5T_VARIABLE : value.size());
  H5Tset_cset(type, cset);
  if (!vlen) H5Tset_strpad(type, H5T_STR_NULLPAD);  // numpy bytes: no terminating NUL
  const hid_t space = H5Screate(H5S_SCALAR);
  const hid_t attr = H5Acreate2(file, name, type, space, H5P_DEFAULT, H5P_DEFAULT);
  ASSERT_GE(attr, 0);
  const char* text = value.c_str();
  ASSERT_GE(H5Awrite(attr, type, vlen ? static_cast<const void*>(&text) : text), 0);
  H5Aclose(attr);
  H5Sclose(space);
  H5Tclose(type);
  H5Fclose(file);
}

TEST(Dataset, StringAttributesOfEveryHdf5StringTypeAreRead) {
  auto d = testing::planted_dataset(10, 8, 2, 1);
  const std::string fingerprint = io::dataset_fingerprint(d);
  struct Case { const char* file; bool vlen; H5T_cset_t cset; };
  // h5py writes a Python str as a variable-length UTF-8 string and numpy bytes as fixed-length.
  for (const Case c : {Case{"vlen_utf8.h5", true, H5T_CSET_UTF8}, Case{"vlen_ascii.h5", true, H5T_CSET_ASCII},
                       Case{"fixed_nullpad.h5", false, H5T_CSET_ASCII}}) {
    SCOPED_TRACE(c.file);
    const std::string p = fresh(c.file);
    io::write_dataset(d, p, "test");
    rewrite_root_attr(p, "format", io::kDatasetFormat, c.vlen, c.cset);
    rewrite_root_attr(p, "fingerprint", fingerprint, c.vlen, c.cset);
    const auto info = io::read_info(io::H5File::open_read(p));
    EXPECT_EQ(info.fingerprint, fingerprint);
    EXPECT_EQ(info.num_users, 10);
    rewrite_root_attr(p, "format", "something-else", c.vlen, c.cset);
    EXPECT_THAT(error_of([&] { io::read_info(io::H5File::open_read(p)); }),
                HasSubstr("'format' is 'something-else'"));
  }
}

TEST(Dataset, FailedWriteLeavesNoFile) {
  auto d = testing::planted_dataset(10, 8, 2, 1);
  d.test.item[0] = 1000;  // outside the item table
  const std::string p = fresh("never.h5");
  EXPECT_THAT(error_of([&] { io::write_dataset(d, p, "test"); }), HasSubstr("outside the table"));
  EXPECT_FALSE(fs::exists(p));
  for (auto& e : fs::directory_iterator(fs::path(p).parent_path()))
    EXPECT_THAT(e.path().string(), ::testing::Not(HasSubstr("never.h5.tmp")));
}

TEST(Export, ByteIdenticalForAnyWorldAndLoadsBack) {
  auto d = testing::planted_dataset(23, 19, 2, 4);
  const std::string data = fresh("exp_data.h5");
  io::write_dataset(d, data, "test");
  std::string first;
  OptimizerConfig opt;
  for (int world : {1, 2, 3}) {
    const std::string out = fresh("exp_" + std::to_string(world) + ".h5");
    dist::run_ranks(world, [&](dist::Comm& comm) {
      auto shard = io::load_shard(data, comm);
      dist::ShardedEmbedding u("user", 0, 23, 4, shard.users, comm.rank(), 5, {}, opt);
      dist::ShardedEmbedding i("item", 1, 19, 4, dist::Sharding::modulo(19, world), comm.rank(), 5, {}, opt);
      io::export_tables(out, {&u, &i}, {"user", "item"}, data, comm, 5);
      // Load into zeroed tables and compare.
      dist::ShardedEmbedding u2("user", 0, 23, 4, shard.users, comm.rank(), 6, {}, opt);
      dist::ShardedEmbedding i2("item", 1, 19, 4, dist::Sharding::modulo(19, world), comm.rank(), 6, {}, opt);
      io::load_tables(out, {&u2, &i2}, comm);
      EXPECT_EQ(u.local_data(), u2.local_data());
      EXPECT_EQ(i.local_data(), i2.local_data());
    });
    std::ifstream in(out, std::ios::binary);
    std::string bytes((std::istreambuf_iterator<char>(in)), {});
    if (world == 1) first = bytes;
    else EXPECT_TRUE(bytes == first) << "export with " << world << " ranks differs";
    auto f = io::H5File::open_read(out);
    EXPECT_EQ(f.read_strings("/item/raw_id", 0, 2), (std::vector<std::string>{"i0", "i1"}));
  }
  // A table of another shape is refused with the file and the shapes named.
  dist::run_ranks(1, [&](dist::Comm& comm) {
    dist::ShardedEmbedding wrong("user", 0, 23, 8, dist::Sharding::modulo(23, 1), 0, 5, {}, opt);
    EXPECT_THAT(error_of([&] { io::load_tables(testing::temp_dir("dataset") + "/exp_1.h5", {&wrong}, comm); }),
                HasSubstr("has shape 23x4, the model needs 23x8"));
  });
}

}  // namespace
}  // namespace shardrec
