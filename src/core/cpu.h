/*
 * CPU feature detection for run-time kernel dispatch.
 *
 * Read once with CPUID and XGETBV (a feature counts only when the OS also saves the
 * registers it needs), so one binary picks AVX-512, AVX2+FMA or scalar code on
 * whatever machine runs it.  Written with <cpuid.h> rather than
 * __builtin_cpu_supports because clang 14 does not know every feature name.
 */
#ifndef TS_CORE_CPU_H
#define TS_CORE_CPU_H

typedef enum {
    TS_CPU_AVX2 = 1 << 0,
    TS_CPU_FMA = 1 << 1,
    TS_CPU_F16C = 1 << 2,
    TS_CPU_AVX512F = 1 << 3,
    TS_CPU_AVX512BW = 1 << 4,
    TS_CPU_AVX512VNNI = 1 << 5,
    TS_CPU_AVX512BF16 = 1 << 6,
} ts_cpu_feature;

/* True when every feature in the mask is usable. TESSERA_CPU=scalar|avx2 in the
 * environment caps what is reported, to test the fallbacks on a bigger machine. */
int ts_cpu_has(unsigned features);
/* "avx512", "avx2" or "scalar": the widest path the kernels will take. */
const char *ts_cpu_level(void);

#endif
