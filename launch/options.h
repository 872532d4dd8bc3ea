// The command line's options, each declared once. A declaration binds a name to a variable (its
// value at declaration is the default) and carries the help text, the checks (choices, range) and
// whether a training's config.ini records it. From that one declaration come the parser
// (boost::program_options: flags, then a --config file), --help, the value checks (an error names
// the option) and config.ini.
#pragma once
#include <cstdint>
#include <functional>
#include <limits>
#include <optional>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "base/log.h"

namespace shardrec {
struct TrainConfig;
}

namespace shardrec::cli {

// The commands an option of the shared table (config_options) belongs to.
enum Command : unsigned { kTrain = 1, kEval = 2, kLandscape = 4, kPlan = 8, kExport = 16 };

// Whether a training's config.ini records the option.
enum class Ini { kNo, kYes, kPointwise /* only in gmf/neumf runs */, kGraph /* only in graph-model runs */,
                 kContrast /* only in contrastive-model runs */, kItemGraph /* only in freedom runs */ };

struct Option {
  using Setter = std::function<void(const Option&, const std::vector<std::string>&)>;

  // Numbers, booleans and text (T: int, int64_t, uint64_t, float, double, bool, std::string).
  template <class T>
  Option(std::string name, T& var, std::string help);
  Option(std::string name, std::vector<int>& var, std::string help);     // comma separated: 10,20
  Option(std::string name, std::vector<double>& var, std::string help);  // comma separated
  // Repeatable, and several values after one flag: --input a b, or --input a --input b.
  Option(std::string name, std::vector<std::string>& var, std::string help);
  Option(std::string name, std::optional<double>& var, std::string help);  // no default: set when given
  // An enum-like variable written as one of `names` (which are its choices).
  template <class E>
  static Option named(std::string name, E& var, std::vector<std::pair<std::string, E>> names, std::string help);

  Option& choices(std::vector<std::string> values) { return allowed = std::move(values), *this; }
  Option& range(double lo, double hi, bool lo_open = false, bool hi_open = false) {
    lo_ = lo, hi_ = hi, lo_open_ = lo_open, hi_open_ = hi_open;
    return *this;
  }
  Option& at_least(double lo) { return range(lo, kInf); }
  Option& positive() { return range(0, kInf, true); }
  Option& required(unsigned in_commands = ~0u) { return required_in = in_commands, *this; }
  Option& flag() { return is_flag = true, *this; }  // a bare --name means true
  Option& abbrev(char c) { return short_name = c, *this; }
  Option& ini(Ini i) { return record = i, *this; }
  Option& in(unsigned commands_mask) { return commands = commands_mask, *this; }
  Option& group(std::string g) { return heading = std::move(g), *this; }

  // Parses, checks and stores the tokens given; throws naming the option.
  void set(const std::vector<std::string>& tokens) const { setter_(*this, tokens); }
  std::string value() const { return getter_(); }  // as the user would write it
  void check_range(double v) const;                 // throws unless v is in the declared range
  void check_choice(const std::string& v) const;    // throws unless v is one of the choices
  [[noreturn]] void bad(const std::string& what) const;  // "option --name: what"

  static constexpr double kInf = std::numeric_limits<double>::infinity();
  // What the parser, --help and ini_text read; set through the modifiers above.
  std::string name, help, heading, default_text;
  char short_name = 0;
  unsigned commands = ~0u, required_in = 0;
  Ini record = Ini::kNo;
  bool is_flag = false, multi = false;
  std::vector<std::string> allowed;

 private:
  Option(std::string name, std::string help, Setter set, std::function<std::string()> get);
  Setter setter_;
  std::function<std::string()> getter_;
  double lo_ = -kInf, hi_ = kInf;
  bool lo_open_ = false, hi_open_ = false;
};

template <class E>
Option Option::named(std::string name, E& var, std::vector<std::pair<std::string, E>> names, std::string help) {
  auto get = [&var, names] {
    for (const auto& [n, v] : names)
      if (v == var) return n;
    return std::string("?");
  };
  Option o(std::move(name), std::move(help),
           [&var, names](const Option& self, const std::vector<std::string>& t) {
             self.check_choice(t.at(0));
             for (const auto& [n, v] : names)
               if (n == t[0]) var = v;
           },
           get);
  for (const auto& [n, v] : names) o.allowed.push_back(n);
  return o;
}

// The options of a command's command line, in --help order.
using Options = std::vector<Option>;

// What a command line gave.
struct Args {
  bool help = false;                // --help was printed; the command has nothing more to do
  LogLevel log_level = LogLevel::kInfo;  // --log-level, which parse adds to every command
  std::set<std::string> given;      // names set by the command line or the config file
  bool has(const std::string& name) const { return given.count(name) > 0; }
};

// Flags first, then an optional --config file (key = value, the same names without "--"): a value
// given on the command line wins. Unknown names (with a suggestion), prefixes of names and stray
// arguments are errors.
Args parse(int argc, char** argv, const std::string& usage, const Options& options);

// "name = value" per option that config.ini records, in declaration order.
std::string ini_text(const Options& options, const TrainConfig& c);

// The shared table: every TrainConfig option (model, optimizer, training, evaluation, ...) bound to
// `c`, for the commands named in each (option.commands). for_command keeps those of `cmd`, required
// where they are required in it; a command appends its own options.
Options config_options(TrainConfig& c);
Options for_command(Options all, Command cmd);
// --params, shared by eval, export and landscape.
Option params_option(std::string& params);

// The name of `names` nearest to `typed` by edit distance, or "" when none is near enough to
// suggest (the "did you mean" of unknown options and commands).
std::string nearest(const std::string& typed, const std::vector<std::string>& names);
// A model that trains on labeled rows (gmf, neumf): its loss defaults to BCE.
void default_pointwise_loss(TrainConfig& c, const Args& args);

// The number as it would be written: the shortest text that reads back to the same value.
std::string format_number(double v);
std::string format_number(float v);

}  // namespace shardrec::cli
