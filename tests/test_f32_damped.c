/* Issue 10 (docs/decisions.md "Float32 and damped factors"): where float32
 * cannot resolve a damped KFAC factor that the SPEC's float64 pseudo-inverse
 * inverts in full, the float32 path refuses (exit 2, a message) instead of
 * writing gains 1e11 off; float64 still computes the same game, and an
 * undamped factor (γ = 0, rank-revealing pseudo-inverse) is still computed. */
#include "util.h"

#include <string.h>

static void game_of(const char *kept, const char *dir, const char *sed)
{
    char out[4096];
    cr_assert_eq(tu_sh(out, sizeof out,
                       "/usr/bin/python3 -c \"import json,sys;json.dump(json.load(open('%s'))['game'],sys.stdout)\" %s > %s/g.json",
                       kept, sed, dir),
                 0, "%s", out);
}

Test(f32_damped, refused_in_f32_computed_in_f64)
{
    char dir[256], cmd[1024], out[8192];
    tu_tmpdir(dir, sizeof dir);
    /* kfac, γ = 1e-30 (√γ = 1e-15): the reference's k_t1_n1 is [-5e10, 0.125, 1.2e11]; float32 wrote [0, 0.125, 0] */
    game_of("tests/fuzz/regress-games/game-2f25f6936767ca83.json", dir, "");
    snprintf(cmd, sizeof cmd, "%s gen %s/g.json -o %s/f32 --backend cpu --precision f32", OCN_BIN, dir, dir);
    char f32dir[300];
    snprintf(f32dir, sizeof f32dir, "%s/f32", dir);
    tu_expect_exit2(cmd, "float32 cannot compute this step", f32dir);
    cr_expect_eq(tu_sh(out, sizeof out, "%s gen %s/g.json -o %s/ref && %s check --precision f64 %s/ref", OCN_BIN, dir, dir,
                       OCN_BIN, dir),
                 0, "float64 computes and agrees: %s", out);
    tu_rm_rf(dir);
}

Test(f32_damped, undamped_factors_still_computed)
{
    char out[8192];
    /* the shipped γ = 0 cut-off fixtures keep their float32 check */
    cr_expect_eq(tu_sh(out, sizeof out, "%s check --precision f32 fixtures/cutoff-kfac-gr fixtures/mlp-relu-mse-kfac", OCN_BIN), 0,
                 "%s", out);
    cr_expect(strstr(out, "float32 cannot") == NULL, "not refused: %s", out);
}

/* A float32 overflow that relu turned into a finite wrong answer (dx_t4 0.64
 * where the reference holds 8.7e38) is refused where it happens. */
Test(f32_damped, overflow_through_relu_refused)
{
    char dir[256], cmd[1024], f32dir[300];
    tu_tmpdir(dir, sizeof dir);
    game_of("tests/fuzz/regress-games/game-1bf23194402e1e5c.json", dir, "");
    snprintf(cmd, sizeof cmd, "%s gen %s/g.json -o %s/f32 --backend cpu --precision f32", OCN_BIN, dir, dir);
    snprintf(f32dir, sizeof f32dir, "%s/f32", dir);
    tu_expect_exit2(cmd, "overflows float32", f32dir);
    tu_rm_rf(dir);
}
