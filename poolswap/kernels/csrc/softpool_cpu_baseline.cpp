// The CPU kernels compiled for the baseline ISA (see softpool_cpu_dispatch.h).
#define POOLSWAP_ISA baseline
#define POOLSWAP_ISA_NAMESPACE poolswap_isa_baseline
#include "softpool_cpu_isa.inc"
