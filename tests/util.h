/* Helpers shared by the Criterion tests. */
#ifndef OCN_TEST_UTIL_H
#define OCN_TEST_UTIL_H

#include <criterion/criterion.h>
#include "ocn/fixture.h"
#include "ocn/game.h"
#include "ocn/harness.h"
#include "ocn/reference.h"

/* A fresh temporary directory (under /tmp); caller removes it with rm_rf. */
void tu_tmpdir(char *out, size_t n);
void tu_rm_rf(const char *dir);
/* Runs a shell command; returns its exit status, output in out (may be NULL). */
int tu_sh(char *out, size_t n, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
/* Runs cmd: expects exit 2, one line of output naming `want`, and that
 * `not_written` (may be NULL) does not exist afterwards. */
void tu_expect_exit2(const char *cmd, const char *want, const char *not_written);
/* ocn_check_fixture over every shipped fixture, f32 and f64, on `backend`;
 * expects no FAILED row; returns the number of rows compared. */
int tu_check_all(const char *backend);
/* Loads a game from a JSON string; asserts success. */
ocn_game *tu_game(const char *json);
/* The §12 example with the given optimizer JSON object inserted. */
extern const char *TU_RESBLOCK;
/* Runs the theorems over a list of fixture directories, returns the report. */
ocn_report *tu_theorems(const char *const *dirs, int n, ocn_fault fault);
const char *const *tu_fixtures(int *n);

#endif
