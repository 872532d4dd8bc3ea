#include "core/model_kind.h"

#include "base/error.h"

namespace shardrec {

const std::vector<ModelKind>& model_kinds() {
  // One line per model.
  static const std::vector<ModelKind> kinds = {mf_kind(), vbpr_kind(), gmf_kind(), neumf_kind(), lightgcn_kind(),
                                                xsimgcl_kind(), freedom_kind()};
  return kinds;
}

std::string model_names() {
  std::string s;
  for (const auto& k : model_kinds()) s += (s.empty() ? "" : ", ") + k.name;
  return s;
}

const ModelKind& model_kind(const std::string& name, const std::string& option) {
  for (const auto& k : model_kinds())
    if (k.name == name) return k;
  fail("option --" + option + ": '" + name + "' is not available (this build has: " + model_names() + ")");
}

}  // namespace shardrec
