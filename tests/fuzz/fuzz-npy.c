/* libFuzzer target: the .npy header parser of the score tool (cli/images.c) on arbitrary bytes
 * must never crash or read outside the buffer; an array it accepts must have a data part of
 * exactly count * itemsize bytes inside the buffer, every value of which can be read.
 * Seeds in corpus-npy/ (float32, float64, uint8, int16 and int64 arrays, versions 1.0 and
 * 2.0). Built with -Dfuzz=true; see tests/fuzz/meson.build. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "images.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char err[300];
    cli_npy a;
    /* a copy of exactly `size` bytes, so that AddressSanitizer sees any read past the end */
    uint8_t *buf = malloc(size ? size : 1);
    if (buf == NULL)
        return 0;
    memcpy(buf, data, size);
    if (cli_npy_parse(buf, size, "fuzz.npy", &a, err, sizeof err) == 0) {
        if (a.data < buf || a.count > size || (size_t)(a.data - buf) + a.count * a.itemsize != size ||
            a.ndim > CLI_NPY_MAX_DIMS)
            abort();
        double sum = 0;
        for (size_t i = 0; i < a.count; i++)
            sum += cli_npy_value(&a, i);
        if (sum == 12345.678)   /* keeps the reads */
            err[0] = 0;
    } else if (err[0] == '\0') {
        abort();   /* every refusal says why */
    }
    free(buf);
    return 0;
}
