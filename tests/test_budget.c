/* Issue 9: the shipped fixtures stay within their 20 MB budget (trajectory
 * and convolution fixtures come next), and every shipped fixture is a
 * format-v2 fixture whose manifest carries the measured c (SPEC §10 rev. 2). */
#include <criterion/criterion.h>
#include <ftw.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "ocn/fixture.h"

static long long total_bytes;

static int add_size(const char *path, const struct stat *st, int type, struct FTW *ftw)
{
    (void)path, (void)ftw;
    if (type == FTW_F) total_bytes += st->st_size;
    return 0;
}

Test(fixtures, within_20_MB_budget)
{
    total_bytes = 0;
    cr_assert_eq(nftw("fixtures", add_size, 16, FTW_PHYS), 0, "cannot walk fixtures/");
    cr_assert(total_bytes > 0, "no fixtures found");
    cr_assert(total_bytes <= 20LL * 1024 * 1024, "fixtures/ holds %lld bytes, over the 20 MB budget", total_bytes);
}

Test(fixtures, every_shipped_fixture_is_v2_with_measured_c)
{
    FILE *p = popen("ls -d fixtures/*/", "r");
    cr_assert_not_null(p);
    char dir[4096];
    int n = 0;
    while (fgets(dir, sizeof dir, p)) {
        dir[strcspn(dir, "\n")] = 0;
        ocn_fixture *f = NULL;
        ocn_error e = {0};
        cr_assert_eq(ocn_fixture_read(dir, &f, &e), OCN_OK, "%s", e.msg);
        cr_expect_eq(f->version, 2, "%s: version %d", dir, f->version);
        cr_expect(f->c_measured, "%s: no measured c (§10 rev. 2)", dir);
        for (int i = 0; i < f->arrays->count; i++)
            if (!ocn_array_is_input(f->arrays->a[i].name))
                cr_expect(f->arrays->a[i].cond > 0, "%s: %s has no c", dir, f->arrays->a[i].name);
        ocn_fixture_free(f);
        n++;
    }
    pclose(p);
    cr_assert(n >= 30, "only %d fixtures", n);
}
