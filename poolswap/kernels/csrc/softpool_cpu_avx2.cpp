// The CPU kernels compiled for the avx2 ISA (see softpool_cpu_dispatch.h).
#define POOLSWAP_ISA avx2
#define POOLSWAP_ISA_NAMESPACE poolswap_isa_avx2
#if (defined(__x86_64__) || defined(__i386__)) && (defined(__GNUC__) || defined(__clang__))
#define POOLSWAP_ISA_TARGET "avx2,fma,f16c"
#define POOLSWAP_ISA_LEVEL 2
#include "softpool_cpu_isa.inc"
#else
#include "softpool_cpu_dispatch.h"
// Not an x86 build: this ISA does not exist here.
const poolswap::cpu::IsaTable* poolswap::cpu::isa_table_avx2() { return nullptr; }
#endif
