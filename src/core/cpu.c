/* CPUID-based feature detection; see cpu.h. */
#include "core/cpu.h"

#include <cpuid.h>
#include <stdlib.h>
#include <string.h>

static unsigned detect(void)
{
    unsigned a, b, c, d, found = 0;
    if (!__get_cpuid(1, &a, &b, &c, &d))
        return 0;
    int osxsave = (c >> 27) & 1, fma = (c >> 12) & 1, f16c = (c >> 29) & 1;
    if (!osxsave)
        return 0;
    unsigned xcr0_lo, xcr0_hi;
    __asm__("xgetbv" : "=a"(xcr0_lo), "=d"(xcr0_hi) : "c"(0));
    int ymm_saved = (xcr0_lo & 0x6) == 0x6, zmm_saved = (xcr0_lo & 0xe6) == 0xe6;
    if (!ymm_saved)
        return 0;
    if (fma)
        found |= TS_CPU_FMA;
    if (f16c)
        found |= TS_CPU_F16C;
    if (__get_cpuid_count(7, 0, &a, &b, &c, &d)) {
        if ((b >> 5) & 1)
            found |= TS_CPU_AVX2;
        if (zmm_saved && ((b >> 16) & 1))
            found |= TS_CPU_AVX512F;
        if (zmm_saved && ((b >> 30) & 1))
            found |= TS_CPU_AVX512BW;
        if (zmm_saved && ((c >> 11) & 1))
            found |= TS_CPU_AVX512VNNI;
    }
    if (zmm_saved && __get_cpuid_count(7, 1, &a, &b, &c, &d) && ((a >> 5) & 1))
        found |= TS_CPU_AVX512BF16;
    const char *cap = getenv("TESSERA_CPU");
    if (cap && strcmp(cap, "scalar") == 0)
        found = 0;
    else if (cap && strcmp(cap, "avx2") == 0)
        found &= TS_CPU_AVX2 | TS_CPU_FMA | TS_CPU_F16C;
    return found;
}

static unsigned features(void)
{
    static int ready;
    static unsigned cached;
    if (!ready) {
        cached = detect();
        ready = 1;
    }
    return cached;
}

int ts_cpu_has(unsigned mask) { return (features() & mask) == mask; }

const char *ts_cpu_level(void)
{
    if (ts_cpu_has(TS_CPU_AVX512F))
        return "avx512";
    if (ts_cpu_has(TS_CPU_AVX2 | TS_CPU_FMA))
        return "avx2";
    return "scalar";
}
