// The option table of the command line (launch/options.h): config.ini from the table says what
// TrainConfig::to_ini() (the text a checkpoint is checked against) says, and reads back to the
// same configuration; values print as written; names are matched exactly.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <fstream>
#include <map>
#include <sstream>

#include "core/config.h"
#include "fixtures.h"
#include "launch/options.h"

namespace shardrec::cli {
namespace {

using testing::error_of;
using ::testing::HasSubstr;

std::map<std::string, std::string> keys_of(const std::string& ini) {
  std::map<std::string, std::string> kv;
  std::istringstream in(ini);
  for (std::string line; std::getline(in, line);) {
    const auto eq = line.find(" = ");
    if (eq != std::string::npos) kv[line.substr(0, eq)] = line.substr(eq + 3);
  }
  return kv;
}

// Parses a command line for train into c; returns what was given.
Args parse_train(TrainConfig& c, std::vector<std::string> words, Options* keep = nullptr) {
  Options opts = for_command(config_options(c), kTrain);
  words.insert(words.begin(), "train");
  std::vector<char*> argv;
  for (auto& w : words) argv.push_back(w.data());
  const Args a = parse(static_cast<int>(argv.size()), argv.data(), "usage", opts);
  if (keep) *keep = std::move(opts);
  return a;
}

// config.ini of c as the table writes it, read back through --config: the same config.
void expect_round_trip(TrainConfig& c) {
  const std::string ini = ini_text(for_command(config_options(c), kTrain), c);
  const auto table = keys_of(ini), core = keys_of(c.to_ini());
  std::vector<std::string> table_keys, core_keys;
  for (const auto& [k, v] : table) table_keys.push_back(k);
  for (const auto& [k, v] : core) core_keys.push_back(k);
  EXPECT_EQ(table_keys, core_keys) << ini;
  const std::string path = testing::fresh_path("options", "config.ini");
  std::ofstream(path) << ini;
  TrainConfig back;
  Options opts;
  parse_train(back, {"--config", path}, &opts);
  EXPECT_EQ(back.to_ini(), c.to_ini());
  EXPECT_EQ(ini_text(opts, back), ini);
}

TEST(Options, ConfigIniMatchesToIniAndReadsBack) {
  TrainConfig mf;
  mf.data = "d.h5";
  expect_round_trip(mf);
  TrainConfig odd;
  odd.data = "il.h5";
  odd.model = "neumf";
  odd.loss = "idl";
  odd.strategy = "ig";
  odd.opt.kind = OptimizerConfig::Kind::kSgd;
  odd.opt.lr = 0.0123f;
  odd.opt.eps = 3e-7f;
  odd.init.kind = dist::InitSpec::Kind::kUniform;
  odd.init.scale = 0.1 + 0.2;  // 0.30000000000000004: needs every digit
  odd.label_threshold = 2.123456789012;
  odd.ig_train_ratio = 0.7f;
  odd.il_reference = true;
  odd.keep_best = false;
  odd.eval.ks = {5, 10, 50};
  odd.eval.gauc_impressions = true;
  expect_round_trip(odd);
}

TEST(Options, ValuesPrintAsWritten) {
  TrainConfig c;
  c.data = "d.h5";
  const auto kv = keys_of(ini_text(for_command(config_options(c), kTrain), c));
  EXPECT_EQ(kv.at("lr"), "0.001");
  EXPECT_EQ(kv.at("beta2"), "0.999");
  EXPECT_EQ(kv.at("mg-alpha2"), "0.2");
  EXPECT_EQ(kv.at("keep-best"), "true");
  EXPECT_EQ(kv.at("ks"), "10,20");
  EXPECT_EQ(kv.at("optimizer"), "adam_dense");
  EXPECT_EQ(format_number(0.1f), "0.1");
  EXPECT_EQ(format_number(0.1 + 0.2), "0.30000000000000004");
}

TEST(Options, CommandLineWinsOverConfigFile) {
  const std::string path = testing::fresh_path("options", "wins.ini");
  std::ofstream(path) << "dim = 8\nlr = 0.5\n";
  TrainConfig c;
  const Args a = parse_train(c, {"--data", "d.h5", "--config", path, "--dim", "16"});
  EXPECT_EQ(c.dim, 16);
  EXPECT_FLOAT_EQ(c.opt.lr, 0.5f);
  EXPECT_TRUE(a.has("lr"));
  EXPECT_FALSE(a.has("loss"));
}

TEST(Options, NamesAndValuesAreChecked) {
  TrainConfig c;
  EXPECT_THAT(error_of([&] { parse_train(c, {"--data", "d.h5", "--negat", "2"}); }),
              HasSubstr("did you mean --negatives?"));
  EXPECT_THAT(error_of([&] { parse_train(c, {"--data", "d.h5", "--negatvies", "2"}); }),
              HasSubstr("did you mean --negatives?"));
  EXPECT_THAT(error_of([&] { parse_train(c, {"--data", "d.h5", "extra"}); }), HasSubstr("unexpected argument 'extra'"));
  EXPECT_THAT(error_of([&] { parse_train(c, {"--data", "d.h5", "--beta1", "1"}); }),
              HasSubstr("option --beta1: must be in [0, 1), not 1"));
  EXPECT_THAT(error_of([&] { parse_train(c, {"--data", "d.h5", "--lr", "nan"}); }), HasSubstr("option --lr"));
  EXPECT_THAT(error_of([&] { parse_train(c, {"--data", "d.h5", "--ks", "10,0"}); }), HasSubstr("option --ks"));
  EXPECT_THAT(error_of([&] { parse_train(c, {"--data", "d.h5", "--optimizer", "adamw"}); }),
              HasSubstr("option --optimizer: 'adamw': expected sgd, adagrad, adam or adam_dense"));
  EXPECT_THAT(error_of([&] { parse_train(c, {"--data", "d.h5", "--seed", "-1"}); }), HasSubstr("not an integer"));
  const std::string path = testing::fresh_path("options", "bad.ini");
  std::ofstream(path) << "dim = wide\n";
  EXPECT_THAT(error_of([&] { parse_train(c, {"--data", "d.h5", "--config", path}); }),
              HasSubstr("config file " + path + ": option --dim: 'wide' is not an integer"));
}

}  // namespace
}  // namespace shardrec::cli
