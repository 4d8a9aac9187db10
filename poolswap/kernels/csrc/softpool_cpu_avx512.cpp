// The CPU kernels compiled for the avx512 ISA (see softpool_cpu_dispatch.h).
#define POOLSWAP_ISA avx512
#define POOLSWAP_ISA_NAMESPACE poolswap_isa_avx512
#if (defined(__x86_64__) || defined(__i386__)) && (defined(__GNUC__) || defined(__clang__))
#define POOLSWAP_ISA_TARGET "avx512f,avx512vl,avx512bw,avx512dq,avx2,fma,f16c"
#define POOLSWAP_ISA_LEVEL 3
#include "softpool_cpu_isa.inc"
#else
#include "softpool_cpu_dispatch.h"
// Not an x86 build: this ISA does not exist here.
const poolswap::cpu::IsaTable* poolswap::cpu::isa_table_avx512() { return nullptr; }
#endif
