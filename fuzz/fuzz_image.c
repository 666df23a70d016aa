/*
 * libFuzzer harness for the image decoders: every input goes through
 * ts_image_decode_memory, the same path ts_image_read takes after mapping a file.
 * The pixel budget is lowered so a header that claims a large (but legal) image
 * cannot push the fuzzer past its memory limit; bounds themselves are unit-tested.
 * A decoded image is converted, which reads every sample, so a pixel buffer whose
 * size disagrees with the header it came with shows up under ASan.
 */
#include <stddef.h>
#include <stdint.h>

#include "io/image.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    ts_image img, rgb;
    ts_image_read_opts opts = {.max_pixels = (int64_t)1 << 20};
    if (ts_image_decode_memory(data, size, &opts, &img) != 0)
        return 0;
    if (ts_image_convert(&img, 3, 8, &rgb) == 0)
        ts_image_free(&rgb);
    ts_image_free(&img);
    return 0;
}
