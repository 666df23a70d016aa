/*
 * tessera seams IMAGE --grid TW[xTH] [--offset X[,Y]] [--max R]: scores how visible a
 * tile grid is in an image (src/pipeline/seams.h), for checking tiled outputs and as
 * a benchmark figure.  With --max it is a pass/fail gate for scripts.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/commands.h"
#include "core/error.h"
#include "io/image.h"
#include "pipeline/seams.h"

static void seams_usage(FILE *f)
{
    fprintf(f, "usage: tessera seams IMAGE --grid TW[xTH] [--offset X[,Y]] [--reference REF] [--max R]\n\n"
               "Scores the seams a tile grid leaves in IMAGE (PNG or JPEG): the mean absolute\n"
               "difference of neighbouring pixels across the grid's boundary lines divided by\n"
               "the mean over all other neighbours.  About 1.0: no visible grid; above ~1.1: seams.\n\n"
               "  --grid TW[xTH]    tile pitch in image pixels (square when TH is left out)\n"
               "  --offset X[,Y]    where one boundary line lies (default 0,0: the image corner)\n"
               "  --reference REF   score IMAGE - REF instead (REF: the same picture made untiled):\n"
               "                    the seams tiling added, even where the picture is busy texture\n"
               "  --max R           exit 1 when the ratio is above R\n");
}

/* "A" or "AsepB" with positive (or, when allow_zero, non-negative) ints. */
static int parse_pair(const char *s, char sep, int allow_zero, int *a, int *b)
{
    char *end;
    long x = strtol(s, &end, 10), y = x;
    if (*end == sep)
        y = strtol(end + 1, &end, 10);
    if (end == s || *end || x < !allow_zero || y < !allow_zero || x > 1 << 20 || y > 1 << 20)
        return -1;
    *a = (int)x;
    *b = (int)y;
    return 0;
}

/* The colour planes of path as [channels, h, w] in [0, 1] (alpha is not part of the
 * picture), malloc'd. */
static int read_planar(const char *path, float **planar, int *channels, int *width, int *height)
{
    ts_image img = {0}, color = {0}, alpha = {0};
    int rc = ts_image_read(path, &img);
    const ts_image *use = &img;
    if (!rc && (img.channels == 2 || img.channels == 4)) {
        rc = ts_image_split_alpha(&img, &color, &alpha);
        use = &color;
    }
    *planar = rc ? NULL : malloc(ts_image_bytes(use) / ts_image_sample_size(use) * sizeof(float));
    if (!rc && !*planar)
        rc = ts_fail(TS_ERR_NOMEM, "%s: no memory for %dx%d pixels", path, use->width, use->height);
    if (!rc) {
        ts_image_to_planar(use, TS_RANGE_UNIT, *planar);
        *channels = use->channels;
        *width = use->width;
        *height = use->height;
    }
    ts_image_free(&alpha);
    ts_image_free(&color);
    ts_image_free(&img);
    return rc;
}

static int score_file(const char *path, const char *reference, const ts_seam_grid *grid, ts_seam_score *out)
{
    float *image = NULL, *ref = NULL;
    int c, w, h, rc_, rw, rh;
    int rc = read_planar(path, &image, &c, &w, &h);
    if (!rc && reference) {
        rc = read_planar(reference, &ref, &rc_, &rw, &rh);
        if (!rc && (rc_ != c || rw != w || rh != h))
            rc = ts_fail(TS_ERR_ARG, "%s is %dx%d with %d channels, the reference %dx%d with %d", path, w, h, c, rw,
                         rh, rc_);
        for (size_t i = 0; !rc && i < (size_t)c * w * h; i++)
            image[i] -= ref[i];
    }
    rc = rc ? rc : ts_seam_measure(image, c, w, h, grid, out);
    free(image);
    free(ref);
    return rc;
}

int cmd_seams(int argc, char **argv)
{
    const char *path = NULL, *reference = NULL;
    ts_seam_grid grid = {0};
    double max = 0.0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
            seams_usage(stdout);
            return 0;
        }
        int bad = 0;
        if (strcmp(a, "--grid") == 0)
            bad = !v || parse_pair(v, 'x', 0, &grid.tile_w, &grid.tile_h);
        else if (strcmp(a, "--offset") == 0)
            bad = !v || parse_pair(v, ',', 1, &grid.offset_x, &grid.offset_y);
        else if (strcmp(a, "--reference") == 0)
            bad = !(reference = v);
        else if (strcmp(a, "--max") == 0)
            bad = !v || (max = strtod(v, NULL)) <= 0.0;
        else if (a[0] == '-' || path)
            bad = 1;
        else
            path = a;
        if (bad) {
            fprintf(stderr, "tessera seams: bad argument '%s%s%s'\n", a, v && a[0] == '-' ? " " : "",
                    v && a[0] == '-' ? v : "");
            seams_usage(stderr);
            return 2;
        }
        i += a[0] == '-';
    }
    if (!path || grid.tile_w == 0) {
        seams_usage(stderr);
        return 2;
    }
    ts_seam_score s;
    if (score_file(path, reference, &grid, &s)) {
        fprintf(stderr, "tessera seams: %s\n", ts_error_message());
        return 1;
    }
    printf("seam ratio %.4f  (boundary %.6g over %lld pairs, interior %.6g over %lld pairs; grid %dx%d at %d,%d)\n",
           s.ratio, s.boundary, (long long)s.boundary_pairs, s.interior, (long long)s.interior_pairs, grid.tile_w,
           grid.tile_h, grid.offset_x, grid.offset_y);
    if (max > 0.0 && s.ratio > max) {
        printf("above the limit %.4g\n", max);
        return 1;
    }
    return 0;
}
