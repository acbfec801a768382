/* fuzz_conf.c - libFuzzer harness for the config loader: arbitrary bytes as a
 * YAML (or JSON) document. The loader must either return a snapshot or a
 * non-empty error list, each "name:line:col: message", and never crash or leak. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "conf/conf.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct conf_errors errs = {0};
    struct conf *c = conf_load_buffer("f.yaml", (const char *)data, size, &errs);
    if (c) {
        if (errs.n)
            __builtin_trap();
        conf_unref(c);
    } else {
        if (errs.n == 0)
            __builtin_trap();
        for (size_t i = 0; i < errs.n; i++)
            if (strncmp(errs.msgs[i], "f.yaml:", 7) != 0)
                __builtin_trap();
    }
    conf_errors_free(&errs);
    return 0;
}
