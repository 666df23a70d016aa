/*
 * The table of golden runners: family name (case.json "family") -> the function
 * that reproduces it.  A family missing here is reported as "not implemented".
 */
#include <string.h>

#include "golden/golden.h"

int golden_run_clip_tokenizer(golden_case *gc);
int golden_run_t5_tokenizer(golden_case *gc);

static const struct {
    const char *family;
    golden_runner_fn run;
} runners[] = {
    {"clip_tokenizer", golden_run_clip_tokenizer},
    {"t5_tokenizer", golden_run_t5_tokenizer},
    {NULL, NULL},
};

golden_runner_fn golden_runner_for(const char *family)
{
    for (size_t i = 0; runners[i].family; i++)
        if (strcmp(runners[i].family, family) == 0)
            return runners[i].run;
    return NULL;
}
