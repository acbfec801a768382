/* fuzz_json.c - libFuzzer harness for the admin API's JSON parser
 * (conf_json.c): arbitrary bytes as a JSON document. The parser must accept
 * or refuse with one "invalid JSON at line L, column C (byte B): ..."
 * message; an accepted document must render to JSON that parses back and
 * renders the same; loading it as a config must give a snapshot or errors.
 * Never a crash or a leak. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "conf/conf.h"
#include "conf/conf_node.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *err = NULL;
    struct cnode *n = conf_json_parse((const char *)data, size, &err);
    if (!n) {
        if (!err || strncmp(err, "invalid JSON at line ", 21) != 0)
            __builtin_trap();
        free(err);
        return 0;
    }
    size_t len, len2;
    char *out = conf_json_render(n, &len);
    char *err2 = NULL;
    struct cnode *back = conf_json_parse(out, len, &err2);
    if (!back)
        __builtin_trap(); /* what we write, we read */
    char *out2 = conf_json_render(back, &len2);
    if (len != len2 || memcmp(out, out2, len) != 0)
        __builtin_trap();
    struct conf_errors errs = {0};
    struct conf *c = conf_load_json(NULL, out, len, &errs, NULL);
    if (c ? errs.n != 0 : errs.n == 0)
        __builtin_trap();
    conf_unref(c);
    conf_errors_free(&errs);
    free(out);
    free(out2);
    cnode_free(n);
    cnode_free(back);
    return 0;
}
