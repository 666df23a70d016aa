/*
 * The table of golden runners: family name (case.json "family") -> the function
 * that reproduces it.  A family missing here is reported as "not implemented".
 */
#include <string.h>

#include "golden/golden.h"

static const struct {
    const char *family;
    golden_runner_fn run;
} runners[] = {
    {NULL, NULL},
};

golden_runner_fn golden_runner_for(const char *family)
{
    for (size_t i = 0; runners[i].family; i++)
        if (strcmp(runners[i].family, family) == 0)
            return runners[i].run;
    return NULL;
}
