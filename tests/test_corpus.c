/* Replays the fuzz corpus (tests/fuzz/corpus/, crash inputs included) through
 * the three parsers: every input either loads or fails with a message;
 * under `make test SANITIZE=1` any memory error fails the run. */
#include "util.h"
#include "ocn/npy.h"

#include <glob.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static unsigned char *slurp(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    cr_assert_not_null(f, "%s", path);
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    rewind(f);
    unsigned char *b = malloc((size_t)n + 1);
    cr_assert_eq(fread(b, 1, (size_t)n, f), (size_t)n);
    fclose(f);
    b[n] = 0;
    *len = (size_t)n;
    return b;
}

static int replay(const char *kind)
{
    char pat[256];
    snprintf(pat, sizeof pat, "tests/fuzz/corpus/%s/*", kind);
    glob_t gl;
    int n = 0;
    if (glob(pat, 0, NULL, &gl)) return 0;
    for (size_t i = 0; i < gl.gl_pathc; i++, n++) {
        size_t len;
        unsigned char *b = slurp(gl.gl_pathv[i], &len);
        ocn_error e = {0};
        int rc;
        if (!strcmp(kind, "npy")) {
            ocn_arrayset *s = ocn_arrayset_new();
            rc = ocn_npy_parse(b, len, gl.gl_pathv[i], s, "a", NULL, &e);
            cr_expect_eq(s->count, rc ? 0 : 1);
            ocn_arrayset_free(s);
        } else {
            ocn_game *g = NULL;
            rc = !strcmp(kind, "game") ? ocn_game_load_string((char *)b, gl.gl_pathv[i], &g, &e)
                                       : ocn_fixture_parse_manifest((char *)b, len, gl.gl_pathv[i], &g, NULL, &e);
            cr_expect_eq(rc != 0, g == NULL);
            ocn_game_free(g);
        }
        if (rc) cr_expect(e.msg[0] != 0, "%s: failure without a message", gl.gl_pathv[i]);
        free(b);
    }
    globfree(&gl);
    return n;
}

Test(corpus, npy_inputs) { cr_expect_gt(replay("npy"), 3); }
Test(corpus, manifest_inputs) { cr_expect_gt(replay("manifest"), 2); }
Test(corpus, game_inputs) { cr_expect_gt(replay("game"), 10); }
