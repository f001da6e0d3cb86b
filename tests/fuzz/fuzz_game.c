/* libFuzzer target: the game-description loader (SPEC §12). */
#include "ocn/game.h"

#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *text = malloc(size + 1);
    memcpy(text, data, size);
    text[size] = 0;
    ocn_game *g = NULL;
    ocn_error e = {0};
    int rc = ocn_game_load_string(text, "fuzz.json", &g, &e);
    if (rc && (g || !e.msg[0])) __builtin_trap();
    if (!rc) { /* a loaded game is consistent: every state dim matches its blocks */
        for (int t = 0; t <= g->T; t++) {
            int s = 0;
            for (int b = 0; b < g->nblocks; b++) s += g->block_dim[t][b];
            if (s != g->n[t]) __builtin_trap();
        }
    }
    ocn_game_free(g);
    free(text);
    return 0;
}
