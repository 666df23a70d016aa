/* Name tables with aliases; see names.h. */
#include "sample/names.h"

#include <string.h>

int ts_name_index(const char *name, const char *const *names, int count, const char *const (*aliases)[2])
{
    for (int a = 0; aliases[a][0]; a++)
        if (strcmp(name, aliases[a][0]) == 0) {
            name = aliases[a][1];
            break;
        }
    for (int k = 0; k < count; k++)
        if (strcmp(name, names[k]) == 0)
            return k;
    return -1;
}
