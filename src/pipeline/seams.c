/*
 * Seam score; see seams.h.  Sums are in double: an 8192x8192 RGB image has 4e8
 * neighbour pairs, past what a float accumulator can add up without drifting.
 */
#include "pipeline/seams.h"

#include <math.h>
#include <string.h>

#include "core/error.h"

/* Is the pair (i - 1, i) along an axis cut by a boundary line of pitch `pitch` through `offset`? */
static int crosses(int i, int pitch, int offset) { return ((i - offset) % pitch + pitch) % pitch == 0; }

int ts_seam_measure(const float *image, int channels, int width, int height, const ts_seam_grid *grid,
                    ts_seam_score *out)
{
    memset(out, 0, sizeof *out);
    if (channels < 1 || width < 2 || height < 2 || grid->tile_w < 1 || grid->tile_h < 1)
        return ts_fail(TS_ERR_ARG, "seams: need an image of at least 2x2 and a grid of positive size");
    double sum[2] = {0.0, 0.0}; /* interior, boundary */
    int64_t count[2] = {0, 0};
    for (int c = 0; c < channels; c++)
        for (int y = 0; y < height; y++) {
            const float *row = image + ((int64_t)c * height + y) * width;
            int cut_y = y > 0 && crosses(y, grid->tile_h, grid->offset_y);
            for (int x = 0; x < width; x++) {
                if (x > 0) {
                    int b = crosses(x, grid->tile_w, grid->offset_x);
                    sum[b] += fabs((double)row[x] - row[x - 1]);
                    count[b]++;
                }
                if (y > 0) {
                    sum[cut_y] += fabs((double)row[x] - row[x - width]);
                    count[cut_y]++;
                }
            }
        }
    if (count[1] == 0 || count[0] == 0)
        return ts_fail(TS_ERR_ARG, "seams: a %dx%d grid at offset %d,%d has no boundary (or no interior) inside a "
                                   "%dx%d image",
                       grid->tile_w, grid->tile_h, grid->offset_x, grid->offset_y, width, height);
    out->interior = sum[0] / (double)count[0];
    out->boundary = sum[1] / (double)count[1];
    out->interior_pairs = count[0];
    out->boundary_pairs = count[1];
    out->ratio = out->interior > 0.0 ? out->boundary / out->interior : out->boundary > 0.0 ? INFINITY : 1.0;
    return 0;
}
