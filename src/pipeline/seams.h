/*
 * Seam measurement for tiled generation and decoding.
 *
 * A visible seam is a line where neighbouring pixels differ more than they do
 * elsewhere.  The score is the mean absolute difference between neighbours that
 * straddle a tile boundary divided by the mean absolute difference between all other
 * neighbours (horizontal and vertical, all channels): about 1.0 when the grid
 * leaves no trace, clearly above when it does (a constant step of a few percent
 * across boundaries of a natural image already gives > 1.1).  It needs no reference
 * image, so it scores any output, including real-size runs nobody can compute untiled.
 */
#ifndef TS_PIPELINE_SEAMS_H
#define TS_PIPELINE_SEAMS_H

#include <stdint.h>

typedef struct {
    int tile_w, tile_h;     /* grid pitch in pixels */
    int offset_x, offset_y; /* position of one boundary line (0: the grid starts at the image corner) */
} ts_seam_grid;

typedef struct {
    double ratio;              /* boundary / interior; 1.0 for a perfectly flat image */
    double boundary, interior; /* mean absolute neighbour differences */
    int64_t boundary_pairs, interior_pairs;
} ts_seam_score;

/* Scores a planar [channels, height, width] image.  Fails (TS_ERR_ARG) on a bad grid
 * or when no boundary line falls inside the image. */
int ts_seam_measure(const float *image, int channels, int width, int height, const ts_seam_grid *grid,
                    ts_seam_score *out);

#endif
