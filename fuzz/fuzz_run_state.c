/*
 * libFuzzer harness for run-state files (`tessera generate --resume`).  Any byte
 * string must either be refused with a message, leaving the state empty, or give a
 * state that holds what the loader promises: a phase name, 0 <= step <= steps, x of
 * its shape (read end to end: ASan checks the bounds), prev likewise when present,
 * a generator index inside the MT19937 state, and parameters that are a JSON object.
 * Anything else is a bug, so it aborts.
 */
#include <cjson/cJSON.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "pipeline/run_state.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    ts_run_state s;
    if (ts_run_state_load_memory(data, size, &s) != 0) {
        if (s.x || s.prev || s.params || ts_error_message()[0] == '\0')
            abort();
        return 0;
    }
    if (!s.phase[0] || s.step < 0 || s.step > s.steps || s.pass < 0 || !s.x || !s.params)
        abort();
    if (s.has_rng && (s.rng.index < 0 || s.rng.index > 624))
        abort();
    volatile float sink = 0;
    size_t n = ts_run_state_numel(&s);
    sink += s.x[0] + s.x[n - 1];
    if (s.prev)
        sink += s.prev[0] + s.prev[n - 1];
    (void)sink;
    cJSON *params = cJSON_Parse(s.params);
    if (!cJSON_IsObject(params))
        abort();
    cJSON_Delete(params);
    ts_run_state_free(&s);
    return 0;
}
