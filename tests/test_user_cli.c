/* A new user's bad invocations (helper "user", session 6): each is exit 2
 * (README's exit-status table) with one line naming the option, value or
 * missing argument at fault. Before, every one of these printed the whole
 * usage block and nothing said what was wrong; `detect --max-power abc`
 * read 0 (atof) and failed every fixture "over the limit". */
#include "util.h"
#include <criterion/criterion.h>
#include <string.h>

static void bad(const char *args, const char *want)
{
    char out[16384];
    int rc = tu_sh(out, sizeof out, "%s %s 2>&1", OCN_BIN, args);
    cr_assert_eq(rc, 2, "ocn %s: exit %d, want 2: %s", args, rc, out);
    cr_assert(strstr(out, want) != NULL, "ocn %s: no '%s' in: %s", args, want, out);
    cr_assert(strstr(out, "exit status:") == NULL, "ocn %s: the whole usage block again: %s", args, out);
}

Test(user_cli, bad_invocation_names_what_is_wrong)
{
    bad("gen", "ocn gen: no GAME.json given");
    bad("gen games/mlp-tanh-ce.json", "no output directory given (-o DIR)");
    bad("gen games/mlp-tanh-ce.json -o", "-o needs a value");
    bad("gen games/mlp-tanh-ce.json -o /nonexistent/x --backend nope", "--backend takes reference or an optimized backend (cpu), not 'nope'");
    bad("gen games/mlp-tanh-ce.json -o /nonexistent/x --precision f16", "--precision takes f64 or f32, not 'f16'");
    bad("gen games/mlp-tanh-ce.json games/mlp-tanh-ce.json -o /nonexistent/x", "unexpected argument 'games/mlp-tanh-ce.json'");
    bad("verify", "ocn verify: no fixture directory given");
    bad("verify fixtures/mlp-tanh-ce --filter", "--filter needs a value");
    bad("theorems fixtures/mlp-tanh-ce --bogus", "ocn theorems: unknown option '--bogus'");
    bad("check fixtures/mlp-tanh-ce --backend nope", "--backend takes cpu, checking, cuda or all, not 'nope'");
    bad("check fixtures/mlp-tanh-ce --precision f16", "--precision takes f64, f32 or both, not 'f16'");
    bad("check", "ocn check: no fixture directory given");
    bad("compare fixtures/mlp-tanh-ce", "needs two fixture directories, DIR_A DIR_B; one given");
    bad("compare fixtures/mlp-tanh-ce fixtures/mlp-tanh-ce extra", "unexpected argument 'extra'");
    bad("detect", "ocn detect: no fixture directory given");
    bad("detect --max-power abc fixtures/mlp-tanh-ce", "--max-power: 'abc' is not a number >= 0");
    bad("detect --max-weak", "--max-weak needs a value");
    bad("normalise", "ocn normalise: no GAME.json given");
    bad("normalise games/mlp-tanh-ce.json extra", "unexpected argument 'extra'");
}

/* the good paths still work: a valid threshold parsed, not the 0 of a bad one */
Test(user_cli, detect_threshold_is_parsed)
{
    char out[16384];
    cr_assert_eq(tu_sh(out, sizeof out, "%s detect --max-power 1e-6 fixtures/mlp-tanh-ce 2>&1", OCN_BIN), 0, "%s", out);
    cr_assert_eq(tu_sh(out, sizeof out, "%s detect --max-power 1e-30 fixtures/mlp-tanh-ce 2>&1", OCN_BIN), 1, "%s", out);
}
