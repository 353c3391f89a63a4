// vlm::Flags: the input is split at '\n' into argv; parsing either succeeds or throws vlm::Error.
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "vlm/core/check.h"
#include "vlm/core/flags.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string text(reinterpret_cast<const char*>(data), size);
  std::vector<std::string> args;
  size_t start = 0;
  while (start <= text.size() && args.size() < 64) {
    size_t end = text.find('\n', start);
    if (end == std::string::npos) end = text.size();
    std::string a = text.substr(start, end - start);
    if (a == "--help" || a == "-h") a = "--h";  // keep usage() off stdout
    args.push_back(a);
    start = end + 1;
  }
  bool b = false;
  int i = 0;
  int64_t i64 = 0;
  uint64_t u64 = 0;
  float f = 0;
  double d = 0;
  std::string s;
  vlm::Flags flags("fuzz", "fuzz target");
  flags.add("b", &b, "bool").add("i", &i, "int").add("n", &i64, "int64").add("u", &u64, "uint64");
  flags.add("f", &f, "float").add("d", &d, "double").add("s", &s, "string");
  flags.add_preset("tiny", [&] { i = 1; }, "a preset");
  flags.allow_positional(!args.empty() && !args[0].empty() && args[0][0] == 'P');
  try {
    flags.parse(args);
    (void)flags.resolved();
    (void)flags.to_json().dump();
    (void)flags.usage();
  } catch (const vlm::Error&) {
  }
  return 0;
}
