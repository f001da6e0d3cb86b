/* libFuzzer target: the fixture manifest parser (SPEC §11 schema + §12 game). */
#include "ocn/fixture.h"

#include <stddef.h>
#include <stdint.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    ocn_game *g = NULL;
    ocn_error e = {0};
    int rc = ocn_fixture_parse_manifest((const char *)data, size, "fuzz/manifest.json", &g, NULL, &e);
    if (rc && (g || !e.msg[0])) __builtin_trap(); /* failure: no game, a message */
    ocn_game_free(g);
    return 0;
}
