/*
 * Run-state files: what is saved comes back exactly (the latent and history bit for
 * bit, the generator so that it continues its stream), and every damaged or foreign
 * file is refused with a message instead of being half read.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/error.h"
#include "io/safetensors.h"
#include "pipeline/run_state.h"
#include "test.h"

enum { N = 1 * 4 * 3 * 5 };

/* The one scratch file these tests write, under TESSERA_TEST_TMP (or /tmp). */
static const char *state_path(void)
{
    static char path[512];
    if (!path[0]) {
        const char *dir = getenv("TESSERA_TEST_TMP");
        mkdir(dir && *dir ? dir : "/tmp", 0755);
        snprintf(path, sizeof path, "%s/test_run_state.state", dir && *dir ? dir : "/tmp");
    }
    return path;
}

static float x[N], prev[N];

/* A run at step 3 of 8 whose generator has drawn 40 normals. */
static ts_run_state sample_state(void)
{
    ts_run_state s = {.params = "{\"prompt\":\"a \\\"fox\\\"\",\"seed\":\"5\"}", .phase = "sample", .pass = 1,
                      .step = 3, .steps = 8, .shape = {1, 4, 3, 5}, .x = x, .prev = prev, .has_rng = 1};
    ts_rng r;
    ts_rng_init(&r, 3);
    ts_rng_normal(&r, x, N);
    ts_rng_normal(&r, prev, N);
    float drawn[40];
    ts_mt19937_seed(&s.rng, 6);
    ts_torch_randn(&s.rng, drawn, 40);
    return s;
}

static void test_round_trip(void)
{
    ts_run_state s = sample_state(), back;
    const char *path = state_path();
    CHECK(ts_run_state_save(path, &s) == 0);
    char tmp[600];
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    CHECK(access(tmp, F_OK) != 0);
    CHECK(ts_run_state_load(path, &back) == 0);
    CHECK(strcmp(back.params, s.params) == 0);
    CHECK(strcmp(back.phase, "sample") == 0);
    CHECK(back.pass == 1 && back.step == 3 && back.steps == 8);
    CHECK(memcmp(back.shape, s.shape, sizeof s.shape) == 0);
    CHECK(ts_run_state_numel(&back) == N);
    CHECK(memcmp(back.x, x, sizeof x) == 0);
    CHECK(back.prev && memcmp(back.prev, prev, sizeof prev) == 0);
    /* The restored generator continues the stream where the saved one stood. */
    CHECK(back.has_rng && back.rng.index == s.rng.index);
    float want[32], got[32];
    ts_torch_randn(&s.rng, want, 32);
    ts_torch_randn(&back.rng, got, 32);
    CHECK(memcmp(want, got, sizeof want) == 0);
    ts_run_state_free(&back);
    CHECK(back.x == NULL && back.params == NULL);

    /* After sampling: the latent alone. */
    ts_run_state d = {.phase = "decode", .step = 8, .steps = 8, .shape = {1, 4, 3, 5}, .x = x};
    CHECK(ts_run_state_save(path, &d) == 0);
    CHECK(ts_run_state_load(path, &back) == 0);
    CHECK(strcmp(back.phase, "decode") == 0 && back.step == 8 && !back.prev && !back.has_rng);
    CHECK(strcmp(back.params, "{}") == 0);
    CHECK(memcmp(back.x, x, sizeof x) == 0);
    ts_run_state_free(&back);
    CHECK(ts_run_state_save("/nonexistent-dir/x.state", &d) == TS_ERR_IO);
}

/* The bytes of sample_state() saved to a file (malloc'd). */
static unsigned char *saved_bytes(size_t *len)
{
    ts_run_state s = sample_state();
    CHECK(ts_run_state_save(state_path(), &s) == 0);
    FILE *f = fopen(state_path(), "rb");
    CHECK(f != NULL);
    fseek(f, 0, SEEK_END);
    *len = (size_t)ftell(f);
    rewind(f);
    unsigned char *buf = malloc(*len);
    CHECK(buf && fread(buf, 1, *len, f) == *len);
    fclose(f);
    return buf;
}

/* Every proper prefix of a state file is refused, with a message, leaving s empty. */
static void test_truncations_refused(void)
{
    ts_run_state back;
    size_t len;
    unsigned char *buf = saved_bytes(&len);
    CHECK(ts_run_state_load_memory(buf, len, &back) == 0);
    ts_run_state_free(&back);
    for (size_t cut = 0; cut < len; cut++) {
        ts_clear_error();
        int rc = ts_run_state_load_memory(buf, cut, &back);
        CHECK_MSG(rc < 0 && ts_error_message()[0] && !back.x && !back.params, "prefix of %zu bytes", cut);
    }
    free(buf);
}

/* Zero bytes for tensor i of the array ctx. */
static int fill_zeros(void *ctx, size_t i, FILE *f)
{
    static const unsigned char zeros[4096];
    const ts_out_tensor *t = ctx;
    uint64_t bytes;
    int rc = ts_out_tensor_bytes(&t[i], &bytes);
    while (rc == 0 && bytes > 0) {
        size_t k = bytes < sizeof zeros ? (size_t)bytes : sizeof zeros;
        rc = ts_write_bytes(f, zeros, k);
        bytes -= k;
    }
    return rc;
}

#define X {"x", TS_DTYPE_F32, 4, {1, 4, 3, 5}}
#define PREV {"prev", TS_DTYPE_F32, 4, {1, 4, 3, 5}}
#define RNG {"rng.mt19937", TS_DTYPE_U32, 1, {625}}
#define META(format, version, phase, step, steps, params) {format, version, phase, "0", step, steps, params}
#define GOOD_META META("tessera-run-state", "1", "sample", "3", "8", "{}")

/* Files that are valid safetensors but not valid run states: each refused with its
 * status, and the state left empty. */
static void test_bad_fields_refused(void)
{
    static const struct {
        const char *what;
        const char *meta[7]; /* format, version, phase, pass, step, steps, parameters; NULL: absent */
        ts_out_tensor t[4];
        size_t n;
        int want;
    } cases[] = {
        {"valid", GOOD_META, {X, PREV, RNG}, 3, 0},
        {"no format", META(NULL, "1", "sample", "3", "8", "{}"), {X, PREV, RNG}, 3, TS_ERR_FORMAT},
        {"foreign format", META("gguf", "1", "sample", "3", "8", "{}"), {X, PREV, RNG}, 3, TS_ERR_FORMAT},
        {"newer version", META("tessera-run-state", "2", "sample", "3", "8", "{}"), {X, PREV, RNG}, 3,
         TS_ERR_UNSUPPORTED},
        {"no version", META("tessera-run-state", NULL, "sample", "3", "8", "{}"), {X, PREV, RNG}, 3,
         TS_ERR_UNSUPPORTED},
        {"phase name", META("tessera-run-state", "1", "Sample!", "3", "8", "{}"), {X, PREV, RNG}, 3, TS_ERR_FORMAT},
        {"empty phase", META("tessera-run-state", "1", "", "3", "8", "{}"), {X, PREV, RNG}, 3, TS_ERR_FORMAT},
        {"step past steps", META("tessera-run-state", "1", "sample", "9", "8", "{}"), {X, PREV, RNG}, 3,
         TS_ERR_FORMAT},
        {"step not a number", META("tessera-run-state", "1", "sample", "3x", "8", "{}"), {X, PREV, RNG}, 3,
         TS_ERR_FORMAT},
        {"no steps", META("tessera-run-state", "1", "sample", "0", "0", "{}"), {X, PREV, RNG}, 3, TS_ERR_FORMAT},
        {"parameters an array", META("tessera-run-state", "1", "sample", "3", "8", "[1]"), {X, PREV, RNG}, 3,
         TS_ERR_FORMAT},
        {"parameters cut", META("tessera-run-state", "1", "sample", "3", "8", "{\"a\":"), {X, PREV, RNG}, 3,
         TS_ERR_FORMAT},
        {"no parameters", META("tessera-run-state", "1", "sample", "3", "8", NULL), {X, PREV, RNG}, 3,
         TS_ERR_FORMAT},
        {"no x", GOOD_META, {PREV, RNG}, 2, TS_ERR_FORMAT},
        {"x in f16", GOOD_META, {{"x", TS_DTYPE_F16, 4, {1, 4, 3, 5}}, RNG}, 2, TS_ERR_FORMAT},
        {"x 3-d", GOOD_META, {{"x", TS_DTYPE_F32, 3, {4, 3, 5}}, RNG}, 2, TS_ERR_FORMAT},
        {"x empty", GOOD_META, {{"x", TS_DTYPE_F32, 4, {1, 4, 0, 5}}, RNG}, 2, TS_ERR_FORMAT},
        {"prev shape", GOOD_META, {X, {"prev", TS_DTYPE_F32, 4, {1, 4, 3, 4}}, RNG}, 3, TS_ERR_FORMAT},
        {"rng length", GOOD_META, {X, PREV, {"rng.mt19937", TS_DTYPE_U32, 1, {624}}}, 3, TS_ERR_FORMAT},
        {"rng dtype", GOOD_META, {X, PREV, {"rng.mt19937", TS_DTYPE_I32, 1, {625}}}, 3, TS_ERR_FORMAT},
        {"extra tensor", GOOD_META, {X, PREV, RNG, {"y", TS_DTYPE_F32, 1, {2}}}, 4, TS_ERR_FORMAT},
    };
    const char *path = state_path();
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        static const char *const keys[] = {"format", "version", "phase", "pass", "step", "steps", "parameters"};
        const char *k[7], *v[7];
        size_t m = 0;
        for (size_t i = 0; i < 7; i++)
            if (cases[c].meta[i]) {
                k[m] = keys[i];
                v[m++] = cases[c].meta[i];
            }
        CHECK(ts_st_write(path, k, v, m, cases[c].t, cases[c].n, fill_zeros, (void *)cases[c].t) == 0);
        ts_run_state s;
        ts_clear_error();
        int rc = ts_run_state_load(path, &s);
        CHECK_MSG(rc == cases[c].want, "%s: status %d, expected %d (%s)", cases[c].what, rc, cases[c].want,
                  ts_error_message());
        CHECK_MSG(rc == 0 || (strstr(ts_error_message(), path) && !s.x && !s.params), "%s: %s", cases[c].what,
                  ts_error_message());
        ts_run_state_free(&s);
    }
}

/* A generator index outside the MT19937 state is refused rather than used. */
static void test_bad_generator_index_refused(void)
{
    ts_run_state back;
    size_t len;
    unsigned char *buf = saved_bytes(&len);
    uint32_t index = 625; /* the last word of the file is the index */
    memcpy(buf + len - 4, &index, 4);
    CHECK(ts_run_state_load_memory(buf, len, &back) == TS_ERR_FORMAT);
    CHECK(strstr(ts_error_message(), "generator index 625") != NULL);
    index = 624;
    memcpy(buf + len - 4, &index, 4);
    CHECK(ts_run_state_load_memory(buf, len, &back) == 0 && back.rng.index == 624);
    ts_run_state_free(&back);
    free(buf);
}

TEST_MAIN(TEST(test_round_trip), TEST(test_truncations_refused), TEST(test_bad_fields_refused),
          TEST(test_bad_generator_index_refused))
