/* libFuzzer target: the .npy parser (SPEC §11) on arbitrary bytes. */
#include "ocn/npy.h"

#include <stddef.h>
#include <stdint.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    ocn_arrayset *s = ocn_arrayset_new();
    ocn_error e = {0};
    int rc = ocn_npy_parse(data, size, "fuzz.npy", s, "a", NULL, &e);
    if (!rc && s->count != 1) __builtin_trap(); /* success must store exactly one array */
    if (rc && s->count != 0) __builtin_trap();  /* failure must store nothing */
    ocn_arrayset_free(s);
    return 0;
}
