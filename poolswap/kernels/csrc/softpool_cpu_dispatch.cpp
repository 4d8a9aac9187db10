// Picks the CPU kernels' instruction set once per process (softpool_cpu_dispatch.h).
#include "softpool_cpu_dispatch.h"

#include <cstdlib>
#include <stdexcept>
#include <string>

namespace poolswap {
namespace cpu {
namespace {

// What this CPU (and its OS, which must save the wide registers) can run.
bool cpu_has(const std::string& isa) {
#if (defined(__x86_64__) || defined(__i386__)) && (defined(__GNUC__) || defined(__clang__))
  __builtin_cpu_init();
  if (isa == "avx2")
    return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") && __builtin_cpu_supports("f16c");
  if (isa == "avx512")
    return cpu_has("avx2") && __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512vl") &&
           __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512dq");
#endif
  return isa == "baseline";
}

const IsaTable* table_of(const std::string& isa) {
  if (isa == "avx512") return isa_table_avx512();
  if (isa == "avx2") return isa_table_avx2();
  if (isa == "baseline") return isa_table_baseline();
  return nullptr;
}

const IsaTable& choose() {
  const char* forced = std::getenv("POOLSWAP_CPU_ISA");
  if (forced != nullptr && *forced != '\0') {
    const std::string isa(forced);
    if (isa != "baseline" && isa != "avx2" && isa != "avx512")
      throw std::runtime_error("POOLSWAP_CPU_ISA=" + isa + " is not an ISA; use baseline, avx2 or avx512");
    const IsaTable* table = table_of(isa);
    if (table == nullptr)
      throw std::runtime_error("POOLSWAP_CPU_ISA=" + isa + ": this build of poolswap's kernels has no " + isa +
                               " path (not an x86-64 build); unset it or use baseline");
    if (!cpu_has(isa))
      throw std::runtime_error("POOLSWAP_CPU_ISA=" + isa + ": this CPU does not support " + isa +
                               "; unset it or use baseline");
    return *table;
  }
  for (const char* isa : {"avx512", "avx2"}) {
    const IsaTable* table = table_of(isa);
    if (table != nullptr && cpu_has(isa)) return *table;
  }
  return *isa_table_baseline();
}

}  // namespace

const IsaTable& isa() {
  static const IsaTable& chosen = choose();  // a throw leaves it unset: the next call tries again
  return chosen;
}

}  // namespace cpu
}  // namespace poolswap
