/* Reports (SPEC §10): rows of verdicts, per-fixture detection power, arrays
 * on one side only; printed as a table, JSON or JUnit XML. */
#include "ocn/harness.h"

#include <errno.h>
#include <fcntl.h>
#include <float.h>
#include <jansson.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

const char *ocn_verdict_name(ocn_verdict v)
{
    static const char *const n[] = {"ok", "marginal", "FAILED", "measured", "weak", "SKIP"};
    return (unsigned)v < sizeof n / sizeof *n ? n[v] : "?";
}

ocn_report *ocn_report_new(void) { return calloc(1, sizeof(ocn_report)); }

void ocn_report_free(ocn_report *r)
{
    if (!r) return;
    free(r->rows);
    free(r->fix);
    free(r->one);
    free(r);
}

static ocn_row *add_row(ocn_report *r, const char *id, const char *fixture, const char *quantity)
{
    if (r->count == r->cap) {
        int nc = r->cap ? 2 * r->cap : 64;
        ocn_row *nr = realloc(r->rows, (size_t)nc * sizeof *nr);
        if (!nr) return NULL;
        r->rows = nr;
        r->cap = nc;
    }
    ocn_row *w = &r->rows[r->count++];
    memset(w, 0, sizeof *w);
    snprintf(w->id, sizeof w->id, "%s", id);
    snprintf(w->fixture, sizeof w->fixture, "%s", fixture);
    snprintf(w->quantity, sizeof w->quantity, "%s", quantity);
    return w;
}

void ocn_report_add(ocn_report *r, const char *id, const char *fixture, const char *quantity, double err, double ratio)
{
    ocn_row *w = add_row(r, id, fixture, quantity);
    if (!w) return;
    w->err = err;
    w->ratio = ratio;
    w->verdict = isfinite(err) ? ocn_verdict_of(ratio) : OCN_FAILED;
}

void ocn_report_add_c(ocn_report *r, const char *id, const char *fixture, const char *quantity, double err, double u,
                      double c)
{
    double ratio = ocn_ratio(err, u, c);
    ocn_row *w = add_row(r, id, fixture, quantity);
    if (!w) return;
    w->err = err;
    w->ratio = ratio;
    w->c = c;
    w->verdict = isfinite(err) ? ocn_verdict_of(ratio) : OCN_FAILED;
    if (w->verdict != OCN_FAILED && !ocn_informative(c, u)) w->verdict = OCN_WEAK;
    /* docs/decisions.md "No digit determined": where 300·u·c ≥ 1 the §10
     * FAILED threshold itself allows a 100% error — the measured sensitivity
     * leaves no digit of the array determined (and the 8 runs' c is only a
     * lower bound there: fuzz games with u·c = 0.3..1 had ports 1e3–1e9 off), so
     * no finite answer can be called wrong (nor passed): weak.  A NaN/Inf
     * answer still fails. */
    if (isfinite(err) && OCN_FAIL_RATIO * u * c >= 1.0) w->verdict = OCN_WEAK;
}

void ocn_report_skip(ocn_report *r, const char *id, const char *fixture, const char *reason)
{
    ocn_row *w = add_row(r, id, fixture, "-");
    if (!w) return;
    w->ratio = -1;
    w->verdict = OCN_SKIP;
    snprintf(w->reason, sizeof w->reason, "%s", reason);
    r->skipped++;
}

void ocn_report_fixture_info(ocn_report *r, const ocn_fixture_info *info)
{
    if (r->nfix == r->capfix) {
        int nc = r->capfix ? 2 * r->capfix : 16;
        ocn_fixture_info *n = realloc(r->fix, (size_t)nc * sizeof *n);
        if (!n) return;
        r->fix = n, r->capfix = nc;
    }
    r->fix[r->nfix++] = *info;
}

void ocn_report_one_side(ocn_report *r, const char *fixture, const char *name, const char *side)
{
    if (r->none == r->capone) {
        int nc = r->capone ? 2 * r->capone : 16;
        ocn_one_side *n = realloc(r->one, (size_t)nc * sizeof *n);
        if (!n) return;
        r->one = n, r->capone = nc;
    }
    ocn_one_side *o = &r->one[r->none++];
    snprintf(o->fixture, sizeof o->fixture, "%s", fixture);
    snprintf(o->name, sizeof o->name, "%s", name);
    snprintf(o->side, sizeof o->side, "%s", side);
}

int ocn_report_weak(const ocn_report *r)
{
    int n = 0;
    for (int i = 0; i < r->count; i++) n += r->rows[i].verdict == OCN_WEAK;
    return n;
}

int ocn_report_compared(const ocn_report *r)
{
    int n = 0;
    /* §10: only a verdict compares (ok / marginal / FAILED); measured sizes and
     * weak rows ("not informative, never passed") judged nothing, so a run of
     * only those is no pass (before: `ocn theorems F --filter BATCH`, six
     * measured rows, exited 0 with "0 passed, 0 failed"). */
    for (int i = 0; i < r->count; i++)
        n += r->rows[i].verdict == OCN_OK_V || r->rows[i].verdict == OCN_MARGINAL || r->rows[i].verdict == OCN_FAILED;
    return n;
}

void ocn_report_measured(ocn_report *r, const char *id, const char *fixture, const char *quantity, double value)
{
    ocn_row *w = add_row(r, id, fixture, quantity);
    if (!w) return;
    w->err = value;
    w->ratio = -1;
    w->verdict = OCN_MEASURED;
}

int ocn_report_failures(const ocn_report *r)
{
    int n = 0;
    for (int i = 0; i < r->count; i++) n += r->rows[i].verdict == OCN_FAILED;
    return n;
}

int ocn_report_passes(const ocn_report *r)
{
    int n = 0;
    for (int i = 0; i < r->count; i++) n += r->rows[i].verdict == OCN_OK_V || r->rows[i].verdict == OCN_MARGINAL;
    return n;
}

/* The ratio a judged row stands for: a NaN/Inf err (FAILED whatever ratio was
 * passed) counts as a NaN/Inf ratio. */
static double eff_ratio(const ocn_row *w) { return isfinite(w->err) ? w->ratio : fabs(w->err); }

/* Fixture info i repeats an earlier entry (the same fixture checked at two
 * precisions or backends records it twice): printed and written once. */
static int fix_repeated(const ocn_report *r, int i)
{
    const ocn_fixture_info *x = &r->fix[i];
    for (int j = 0; j < i; j++) {
        const ocn_fixture_info *y = &r->fix[j];
        if (!strcmp(x->fixture, y->fixture) && x->weak == y->weak && x->total == y->total &&
            x->fit_for_ports == y->fit_for_ports &&
            (x->detection == y->detection || (isnan(x->detection) && isnan(y->detection))))
            return 1;
    }
    return 0;
}

/* ---- grouping: one fixture × check family (row id) --------------------- */

#define NVERDICT 6

typedef struct {
    const char *fixture, *id;
    int n, v[NVERDICT]; /* rows, rows per verdict */
    int judged;         /* rows with a ratio (neither measured nor SKIP) */
    double worst;       /* largest judged ratio; NaN when one is NaN */
} group;

static int in_group(const group *g, const ocn_row *w)
{
    return !strcmp(g->id, w->id) && !strcmp(g->fixture, w->fixture);
}

/* Groups in first-appearance order; *of (may be NULL) gets each row's group.
 * Returns the number of groups, -1 when out of memory. */
static int make_groups(const ocn_report *r, group **out, int **of)
{
    group *g = NULL;
    int n = 0, cap = 0, last = -1, *idx = NULL;
    *out = NULL;
    if (of) {
        *of = NULL;
        if (r->count && !(idx = malloc((size_t)r->count * sizeof *idx))) return -1;
    }
    for (int i = 0; i < r->count; i++) {
        const ocn_row *w = &r->rows[i];
        int k = last >= 0 && in_group(&g[last], w) ? last : -1;
        for (int j = 0; k < 0 && j < n; j++)
            if (in_group(&g[j], w)) k = j;
        if (k < 0) {
            if (n == cap) {
                int nc = cap ? 2 * cap : 16;
                group *ng = realloc(g, (size_t)nc * sizeof *ng);
                if (!ng) {
                    free(g), free(idx);
                    return -1;
                }
                g = ng, cap = nc;
            }
            memset(&g[n], 0, sizeof *g);
            g[n].fixture = w->fixture, g[n].id = w->id;
            k = n++;
        }
        last = k;
        group *q = &g[k];
        q->n++;
        if ((unsigned)w->verdict < NVERDICT) q->v[w->verdict]++;
        if (w->verdict != OCN_MEASURED && w->verdict != OCN_SKIP) {
            double x = eff_ratio(w);
            if (isnan(x)) q->worst = NAN;
            else if (!q->judged || x > q->worst) q->worst = x; /* NaN stays */
            q->judged++;
        }
        if (idx) idx[i] = k;
    }
    *out = g;
    if (of) *of = idx;
    return n;
}

/* ---- text ----------------------------------------------------------------- */

#define WIDTH 100 /* the text report fits in 100 columns */

/* Length of the valid UTF-8 sequence at s (1..4), 0 if invalid. */
static int utf8_len(const unsigned char *s)
{
    unsigned c = s[0];
    if (c < 0x80) return 1;
    int n = c >= 0xC2 && c <= 0xDF ? 2 : c >= 0xE0 && c <= 0xEF ? 3 : c >= 0xF0 && c <= 0xF4 ? 4 : 0;
    for (int i = 1; i < n; i++)
        if ((s[i] & 0xC0) != 0x80) return 0;
    if (n == 3 && ((c == 0xE0 && s[1] < 0xA0) || (c == 0xED && s[1] > 0x9F))) return 0; /* overlong, surrogate */
    if (n == 4 && ((c == 0xF0 && s[1] < 0x90) || (c == 0xF4 && s[1] > 0x8F))) return 0;
    return n;
}

/* s fitted into w columns (w ≥ 1), control characters shown as '?' (a name
 * cannot start a line of its own).  A long name keeps its head and its tail:
 * "coop-identity-coopkfac-undamped-gr" in 24 is "coop-identi..undamped-gr". */
static const char *fit(char *buf, size_t n, const char *s, int w)
{
    size_t len = strlen(s);
    if (w > (int)n - 1) w = (int)n - 1;
    size_t head = len, tail = 0;
    if (len > (size_t)w) {
        if (w < 6) head = (size_t)w;
        else {
            tail = (size_t)(w - 2) / 2;
            head = (size_t)w - 2 - tail;
            while (head > 0 && ((unsigned char)s[head] & 0xC0) == 0x80) head--; /* whole characters */
            while (tail > 0 && ((unsigned char)s[len - tail] & 0xC0) == 0x80) tail--;
        }
    }
    size_t o = 0;
    for (size_t i = 0; i < head; i++) buf[o++] = (unsigned char)s[i] < 0x20 || s[i] == 0x7f ? '?' : s[i];
    if (tail) {
        memcpy(buf + o, "..", 2), o += 2;
        for (size_t i = len - tail; i < len; i++) buf[o++] = (unsigned char)s[i] < 0x20 || s[i] == 0x7f ? '?' : s[i];
    }
    buf[o] = 0;
    return buf;
}

static int imin(int a, int b) { return a < b ? a : b; }
static int imax(int a, int b) { return a > b ? a : b; }

/* Prints lead, then text word by word, wrapped at WIDTH; continuation lines
 * are indented by `indent` spaces. */
static void wrapped(FILE *f, const char *lead, const char *text, int indent)
{
    int col = fprintf(f, "%s", lead);
    const char *p = text;
    int first = 1;
    for (;;) {
        while (*p == ' ' || (unsigned char)*p < 0x20) {
            if (!*p) break;
            p++;
        }
        if (!*p) break;
        size_t wl = 0;
        while (p[wl] && p[wl] != ' ' && (unsigned char)p[wl] >= 0x20) wl++;
        if (!first && col + 1 + (int)wl > WIDTH) col = fprintf(f, "\n%*s", indent, "") - 1;
        else if (!first) col += fprintf(f, " ");
        col += fprintf(f, "%.*s", (int)wl, p);
        p += wl, first = 0;
    }
    fputc('\n', f);
}

static const char *fmt_num(char *b, size_t n, const char *fmt, double x)
{
    snprintf(b, n, fmt, x);
    return b;
}

static const char *fmt_ratio(char *b, size_t n, const ocn_row *w)
{
    if (w->verdict == OCN_MEASURED || w->verdict == OCN_SKIP || w->ratio < 0) return "-";
    return fmt_num(b, n, "%.3g", eff_ratio(w));
}

/* "reference only" → "only in reference"; other sides as given. */
static void side_label(char *b, size_t n, const char *side)
{
    size_t l = strlen(side);
    if (l > 5 && !strcmp(side + l - 5, " only")) snprintf(b, n, "only in %.*s", (int)(l - 5), side);
    else snprintf(b, n, "%s", side);
}

static void print_rows(const ocn_report *r, FILE *f, int verbose, int idw)
{
    int maxf = 7, maxq = 8, any = 0;
    for (int i = 0; i < r->count; i++) {
        const ocn_row *w = &r->rows[i];
        if (!verbose && (w->verdict == OCN_OK_V || w->verdict == OCN_MEASURED)) continue;
        maxf = imax(maxf, (int)strlen(w->fixture)), maxq = imax(maxq, (int)strlen(w->quantity)), any = 1;
    }
    if (!any) return;
    /* id  fixture  quantity  err(9) ratio(8) c(8)  verdict(8) */
    int avail = WIDTH - (idw + 2 + 2 + 10 + 9 + 9 + 2 + 8);
    int fw = maxf, qw = maxq;
    if (fw + 2 + qw > avail) {
        qw = imin(maxq, imax((avail - 2) / 2, avail - 2 - maxf));
        fw = imin(maxf, avail - 2 - qw);
    }
    fprintf(f, "\n%-*s  %-*s  %-*s %9s %8s %8s  %s\n", idw, "ID", fw, "fixture", qw, "quantity", "err", "ratio", "c",
            "verdict");
    char b1[512], b2[512], b3[512], e[32], ra[32], c[32];
    for (int i = 0; i < r->count; i++) {
        const ocn_row *w = &r->rows[i];
        if (!verbose && (w->verdict == OCN_OK_V || w->verdict == OCN_MEASURED)) continue;
        fprintf(f, "%-*s  %-*s  %-*s %9s %8s %8s  %s\n", idw, fit(b1, sizeof b1, w->id, idw), fw,
                fit(b2, sizeof b2, w->fixture, fw), qw, fit(b3, sizeof b3, w->quantity, qw),
                w->verdict == OCN_SKIP ? "-" : fmt_num(e, sizeof e, "%.2e", w->err), fmt_ratio(ra, sizeof ra, w),
                w->c > 0 ? fmt_num(c, sizeof c, "%.2g", w->c) : "-", ocn_verdict_name(w->verdict));
        if (w->verdict == OCN_SKIP || w->reason[0]) {
            char lead[64];
            snprintf(lead, sizeof lead, "%*sreason: ", idw + 2, "");
            wrapped(f, lead, w->reason[0] ? w->reason : "(none given)", idw + 2 + 8);
        }
    }
}

static void print_families(const ocn_report *r, FILE *f, int idw)
{
    group *g;
    int n = make_groups(r, &g, NULL);
    if (n < 0) {
        fprintf(f, "(out of memory: family summary left out)\n");
        return;
    }
    if (n == 0) {
        fprintf(f, "(no checks ran)\n");
        return;
    }
    int maxf = 7;
    for (int k = 0; k < n; k++) maxf = imax(maxf, (int)strlen(g[k].fixture));
    /* family  fixture rows(5) worst(11) 6 counts(5) */
    int fw = imin(maxf, WIDTH - (idw + 2 + 6 + 12 + 6 * 5));
    fprintf(f, "%-*s  %-*s %5s %11s%5s%5s%5s%5s%5s%5s\n", idw, "family", fw, "fixture", "rows", "worst ratio", "ok",
            "marg", "weak", "FAIL", "SKIP", "meas");
    char b1[512], b2[512], wr[32];
    for (int k = 0; k < n; k++) {
        const group *q = &g[k];
        fprintf(f, "%-*s  %-*s %5d %11s%5d%5d%5d%5d%5d%5d\n", idw, fit(b1, sizeof b1, q->id, idw), fw,
                fit(b2, sizeof b2, q->fixture, fw), q->n, q->judged ? fmt_num(wr, sizeof wr, "%.3g", q->worst) : "-",
                q->v[OCN_OK_V], q->v[OCN_MARGINAL], q->v[OCN_WEAK], q->v[OCN_FAILED], q->v[OCN_SKIP],
                q->v[OCN_MEASURED]);
    }
    free(g);
}

static void print_detection(const ocn_report *r, FILE *f)
{
    if (!r->nfix) return;
    int maxf = 7;
    for (int i = 0; i < r->nfix; i++) maxf = imax(maxf, (int)strlen(r->fix[i].fixture));
    int fw = imin(maxf, 40);
    char b[512], p[32];
    fputc('\n', f);
    for (int i = 0; i < r->nfix; i++) {
        const ocn_fixture_info *x = &r->fix[i];
        if (fix_repeated(r, i)) continue;
        /* power=none: the fixture has no informative gain/value array */
        fprintf(f, "detection  %-*s  power=%-8s weak=%d/%d%s\n", fw, fit(b, sizeof b, x->fixture, fw),
                x->detection == 0 ? "none" : fmt_num(p, sizeof p, "%.2g", x->detection), x->weak, x->total,
                x->fit_for_ports ? "" : "  not fit for ports");
    }
}

/* Arrays on one side only, grouped per fixture, then per side. */
static void print_one_side(const ocn_report *r, FILE *f)
{
    if (!r->none) return;
    char *done = calloc((size_t)r->none, 1);
    if (!done) {
        fprintf(f, "(out of memory: %d one-side arrays left out)\n", r->none);
        return;
    }
    fputc('\n', f);
    for (int i = 0; i < r->none; i++) {
        if (done[i]) continue;
        for (int j = i; j < r->none; j++) { /* each side of fixture i, first appearance first */
            if (done[j] || strcmp(r->one[j].fixture, r->one[i].fixture)) continue;
            char *text = NULL;
            size_t len = 0;
            FILE *m = open_memstream(&text, &len);
            if (!m) break;
            int first = 1;
            for (int k = j; k < r->none; k++) {
                if (done[k] || strcmp(r->one[k].fixture, r->one[j].fixture) || strcmp(r->one[k].side, r->one[j].side))
                    continue;
                char nb[256];
                fprintf(m, "%s%s", first ? "" : ", ", fit(nb, sizeof nb, r->one[k].name, 200));
                done[k] = 1, first = 0;
            }
            fclose(m);
            char label[64], lead[WIDTH], fb[512];
            side_label(label, sizeof label, r->one[j].side);
            snprintf(lead, sizeof lead, "%s  %s: ", label, fit(fb, sizeof fb, r->one[j].fixture, 40));
            wrapped(f, lead, text ? text : "", 4);
            free(text);
        }
    }
    free(done);
}

void ocn_report_print(const ocn_report *r, FILE *f, int verbose)
{
    int idw = 6;
    for (int i = 0; i < r->count; i++) idw = imax(idw, (int)strlen(r->rows[i].id));
    idw = imin(idw, 14);
    print_families(r, f, idw);
    print_rows(r, f, verbose, idw);
    print_detection(r, f);
    print_one_side(r, f);
    fprintf(f, "\nlegend: ratio = err/(u*c); ok < %.0f <= marginal < %.0f <= FAILED; weak: not informative, never "
               "passed\n",
            OCN_THRESHOLD, 10 * OCN_THRESHOLD);
    if (r->skipped) fprintf(f, "%d passed, %d failed, %d skipped\n", ocn_report_passes(r), ocn_report_failures(r), r->skipped);
    else fprintf(f, "%d passed, %d failed\n", ocn_report_passes(r), ocn_report_failures(r));
}

/* ---- writing a file safely ------------------------------------------------ */

static const char *file_kind(mode_t m)
{
    return S_ISLNK(m) ? "a symbolic link" : S_ISDIR(m) ? "a directory" : S_ISCHR(m) ? "a character device"
           : S_ISBLK(m) ? "a block device" : S_ISFIFO(m) ? "a FIFO" : S_ISSOCK(m) ? "a socket" : "not a regular file";
}

/* An existing target must be a regular file itself (lstat: a symlink is
 * refused, never followed); *mode gets the mode the new file takes. */
static int check_target(const char *path, const char *what, mode_t *mode, ocn_error *err)
{
    struct stat st;
    if (lstat(path, &st) == 0) {
        if (!S_ISREG(st.st_mode))
            return ocn_fail(err, OCN_EINVAL, "%s: is %s; refusing to write the %s report there (give a regular file)",
                            path, file_kind(st.st_mode), what);
        if (mode) *mode = st.st_mode & 0777;
        return OCN_OK;
    }
    if (errno != ENOENT) return ocn_fail(err, OCN_EIO, "%s: %s", path, strerror(errno));
    if (mode) {
        mode_t u = umask(022);
        umask(u);
        *mode = 0666 & ~u;
    }
    return OCN_OK;
}

/* Writes data to path: a temporary file (mkstemp) in the target's directory,
 * fsync, rename over the target.  Nothing is left behind on failure, and a
 * non-regular target (symlink, device, FIFO, directory) is refused. */
static int write_safely(const char *path, const char *data, size_t len, const char *what, ocn_error *err)
{
    if (!path || !*path) return ocn_fail(err, OCN_EINVAL, "%s report: empty output path", what);
    mode_t mode = 0644;
    int rc = check_target(path, what, &mode, err);
    if (rc) return rc;
    const char *slash = strrchr(path, '/'), *base = slash ? slash + 1 : path;
    if (!*base) return ocn_fail(err, OCN_EINVAL, "%s: names a directory; give a file for the %s report", path, what);
    size_t dlen = slash ? (size_t)(slash - path) + 1 : 0, blen = strlen(base);
    if (blen > 200) blen = 200; /* the temporary name stays within NAME_MAX */
    char *tmp = malloc(dlen + blen + 16);
    if (!tmp) return ocn_fail(err, OCN_ENOMEM, "%s: out of memory", path);
    snprintf(tmp, dlen + blen + 16, "%.*s.%.*s.XXXXXX", (int)dlen, path, (int)blen, base);
    int fd = mkstemp(tmp);
    if (fd < 0) {
        int e = errno;
        free(tmp);
        return ocn_fail(err, OCN_EIO, "%s: cannot create a temporary file next to it: %s", path, strerror(e));
    }
    int e = 0;
    for (size_t off = 0; off < len && !e;) {
        ssize_t w = write(fd, data + off, len - off);
        if (w > 0) off += (size_t)w;
        else if (w < 0 && errno == EINTR) continue;
        else e = w < 0 ? errno : EIO;
    }
    if (!e && fchmod(fd, mode)) e = errno;
    if (!e && fsync(fd)) e = errno;
    if (close(fd) && !e) e = errno;
    if (e) {
        unlink(tmp);
        free(tmp);
        return ocn_fail(err, OCN_EIO, "%s: cannot write the %s report: %s", path, what, strerror(e));
    }
    rc = check_target(path, what, NULL, err); /* again, just before the rename */
    if (!rc && rename(tmp, path)) {
        e = errno;
        rc = ocn_fail(err, OCN_EIO, "%s: cannot write the %s report: %s", path, what, strerror(e));
    }
    if (rc) {
        unlink(tmp);
        free(tmp);
        return rc;
    }
    free(tmp);
    /* the rename itself made durable (best effort) */
    char *dir = slash ? strndup(path, slash == path ? 1 : (size_t)(slash - path)) : strdup(".");
    if (dir) {
        int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (dfd >= 0) {
            (void)fsync(dfd);
            close(dfd);
        }
        free(dir);
    }
    return OCN_OK;
}

/* ---- JSON ----------------------------------------------------------------- */

static json_t *jnum(double x) { return isfinite(x) ? json_real(x) : json_null(); }

/* A JSON string; bytes that are not valid UTF-8 become '?'. */
static json_t *jstr(const char *s)
{
    json_t *j = json_string(s);
    if (j) return j;
    size_t n = strlen(s);
    char *c = malloc(n + 1);
    if (!c) return NULL;
    for (size_t i = 0; i < n;) {
        int l = utf8_len((const unsigned char *)s + i);
        if (l == 0) c[i++] = '?';
        else memcpy(c + i, s + i, (size_t)l), i += (size_t)l;
    }
    c[n] = 0;
    j = json_string(c);
    free(c);
    return j;
}

int ocn_report_write_json(const ocn_report *r, const char *path, ocn_error *err)
{
    json_t *root = json_object(), *rows = json_array(), *fix = json_array(), *one = json_array();
    if (!root || !rows || !fix || !one) {
        json_decref(root), json_decref(rows), json_decref(fix), json_decref(one);
        return ocn_fail(err, OCN_ENOMEM, "%s: out of memory", path ? path : "JSON report");
    }
    json_object_set_new(root, "schema", json_string("ocnopt-report"));
    json_object_set_new(root, "schema_version", json_integer(1));
    for (int i = 0; i < r->count; i++) {
        const ocn_row *w = &r->rows[i];
        json_t *o = json_object();
        json_object_set_new(o, "id", jstr(w->id));
        json_object_set_new(o, "fixture", jstr(w->fixture));
        json_object_set_new(o, "quantity", jstr(w->quantity));
        json_object_set_new(o, "err", w->verdict == OCN_SKIP ? json_null() : jnum(w->err));
        json_object_set_new(o, "ratio",
                            w->verdict == OCN_MEASURED || w->verdict == OCN_SKIP || w->ratio < 0 ? json_null()
                                                                                                   : jnum(eff_ratio(w)));
        json_object_set_new(o, "c", w->c > 0 ? jnum(w->c) : json_null());
        json_object_set_new(o, "verdict", json_string(ocn_verdict_name(w->verdict)));
        json_object_set_new(o, "skip_reason", w->verdict == OCN_SKIP ? jstr(w->reason) : json_null());
        json_array_append_new(rows, o);
    }
    json_object_set_new(root, "rows", rows);
    for (int i = 0; i < r->nfix; i++) {
        const ocn_fixture_info *x = &r->fix[i];
        if (fix_repeated(r, i)) continue;
        json_t *o = json_object();
        json_object_set_new(o, "fixture", jstr(x->fixture));
        json_object_set_new(o, "detection_power", jnum(x->detection));
        json_object_set_new(o, "weak", json_integer(x->weak));
        json_object_set_new(o, "total", json_integer(x->total));
        json_object_set_new(o, "fit_for_ports", json_boolean(x->fit_for_ports));
        json_array_append_new(fix, o);
    }
    json_object_set_new(root, "fixtures", fix);
    for (int i = 0; i < r->none; i++) {
        json_t *o = json_object();
        json_object_set_new(o, "fixture", jstr(r->one[i].fixture));
        json_object_set_new(o, "array", jstr(r->one[i].name));
        json_object_set_new(o, "side", jstr(r->one[i].side));
        json_array_append_new(one, o);
    }
    json_object_set_new(root, "one_side", one);
    json_object_set_new(root, "passed", json_integer(ocn_report_passes(r)));
    json_object_set_new(root, "failed", json_integer(ocn_report_failures(r)));
    json_object_set_new(root, "weak", json_integer(ocn_report_weak(r)));
    json_object_set_new(root, "skipped", json_integer(r->skipped));
    json_object_set_new(root, "threshold", json_integer((json_int_t)OCN_THRESHOLD));
    json_object_set_new(root, "fail_at", json_integer((json_int_t)(10 * OCN_THRESHOLD)));
    char *text = json_dumps(root, JSON_INDENT(1) | JSON_PRESERVE_ORDER);
    json_decref(root);
    if (!text) return ocn_fail(err, OCN_ENOMEM, "%s: out of memory", path ? path : "JSON report");
    size_t n = strlen(text);
    char *t2 = realloc(text, n + 2);
    if (!t2) {
        free(text);
        return ocn_fail(err, OCN_ENOMEM, "%s: out of memory", path ? path : "JSON report");
    }
    t2[n] = '\n', t2[n + 1] = 0;
    int rc = write_safely(path, t2, n + 1, "JSON", err);
    free(t2);
    return rc;
}

/* ---- JUnit XML ------------------------------------------------------------ */

/* XML-escaped s: markup characters as entities, control characters and bytes
 * that are not UTF-8 as '?' (attributes keep tab/newline as references). */
static void xml(FILE *m, const char *s, int attr)
{
    for (const unsigned char *p = (const unsigned char *)s; *p;) {
        int l = utf8_len(p);
        if (l == 0) {
            fputc('?', m), p++;
            continue;
        }
        if (l > 1) {
            fwrite(p, 1, (size_t)l, m), p += l;
            continue;
        }
        unsigned c = *p++;
        switch (c) {
        case '&': fputs("&amp;", m); break;
        case '<': fputs("&lt;", m); break;
        case '>': fputs("&gt;", m); break;
        case '"': fputs("&quot;", m); break;
        case '\'': fputs("&apos;", m); break;
        case '\n': fputs(attr ? "&#10;" : "\n", m); break;
        case '\t': fputs(attr ? "&#9;" : "\t", m); break;
        default: fputc(c < 0x20 ? '?' : (int)c, m);
        }
    }
}

static void junit_row(FILE *m, const ocn_row *w)
{
    char e[32], ra[32];
    xml(m, w->quantity, 0);
    if (w->verdict == OCN_MEASURED) fprintf(m, "  measured value=%.6g", w->err);
    else fprintf(m, "  %s err=%s ratio=%s", ocn_verdict_name(w->verdict), fmt_num(e, sizeof e, "%.3e", w->err),
                 fmt_ratio(ra, sizeof ra, w));
    if (w->c > 0) fprintf(m, " c=%.3g", w->c);
    fputc('\n', m);
}

static void junit_case(FILE *m, const ocn_report *r, const group *q, int k, const int *of)
{
    fputs("  <testcase classname=\"", m);
    xml(m, q->fixture, 1);
    fputs("\" name=\"", m);
    xml(m, q->id, 1);
    fputs("\">\n", m);
    if (q->v[OCN_FAILED]) {
        fprintf(m, "   <failure type=\"FAILED\" message=\"%d of %d rows FAILED: ", q->v[OCN_FAILED], q->n);
        int listed = 0;
        for (int i = 0; i < r->count; i++)
            if (of[i] == k && r->rows[i].verdict == OCN_FAILED) {
                if (listed == 20) {
                    fprintf(m, ", and %d more", q->v[OCN_FAILED] - listed);
                    break;
                }
                if (listed++) fputs(", ", m);
                xml(m, r->rows[i].quantity, 1);
            }
        fputs("\">", m);
        for (int i = 0; i < r->count; i++)
            if (of[i] == k && r->rows[i].verdict == OCN_FAILED) junit_row(m, &r->rows[i]);
        fputs("</failure>\n", m);
    } else if (q->v[OCN_SKIP] == q->n) {
        fputs("   <skipped message=\"", m);
        int first = 1;
        for (int i = 0; i < r->count; i++) { /* the distinct reasons */
            if (of[i] != k) continue;
            int seen = 0;
            for (int j = 0; j < i && !seen; j++) seen = of[j] == k && !strcmp(r->rows[j].reason, r->rows[i].reason);
            if (seen) continue;
            if (!first) fputs("; ", m);
            xml(m, r->rows[i].reason[0] ? r->rows[i].reason : "no reason given", 1), first = 0;
        }
        fputs("\"/>\n", m);
    }
    int other = q->v[OCN_WEAK] + q->v[OCN_MARGINAL] + q->v[OCN_MEASURED] + (q->v[OCN_SKIP] < q->n ? q->v[OCN_SKIP] : 0);
    if (other) {
        fputs("   <system-out>", m);
        if (q->v[OCN_WEAK])
            fprintf(m, "weak: %d array%s not informative (a small ratio is no evidence; not passed)\n", q->v[OCN_WEAK],
                    q->v[OCN_WEAK] == 1 ? "" : "s");
        if (q->v[OCN_MARGINAL]) fprintf(m, "marginal: %d row%s\n", q->v[OCN_MARGINAL], q->v[OCN_MARGINAL] == 1 ? "" : "s");
        for (int i = 0; i < r->count; i++) {
            const ocn_row *w = &r->rows[i];
            if (of[i] != k) continue;
            if (w->verdict == OCN_WEAK || w->verdict == OCN_MARGINAL || w->verdict == OCN_MEASURED) junit_row(m, w);
            else if (w->verdict == OCN_SKIP && q->v[OCN_SKIP] < q->n) {
                fputs("SKIP: ", m);
                xml(m, w->reason, 0);
                fputc('\n', m);
            }
        }
        fputs("</system-out>\n", m);
    }
    fputs("  </testcase>\n", m);
}

int ocn_report_write_junit(const ocn_report *r, const char *path, ocn_error *err)
{
    group *g;
    int *of;
    int n = make_groups(r, &g, &of);
    if (n < 0) return ocn_fail(err, OCN_ENOMEM, "%s: out of memory", path ? path : "JUnit report");
    int failures = 0, skipped = 0;
    for (int k = 0; k < n; k++) {
        failures += g[k].v[OCN_FAILED] > 0;
        skipped += !g[k].v[OCN_FAILED] && g[k].v[OCN_SKIP] == g[k].n;
    }
    char *text = NULL;
    size_t len = 0;
    FILE *m = open_memstream(&text, &len);
    if (!m) {
        free(g), free(of);
        return ocn_fail(err, OCN_ENOMEM, "%s: out of memory", path ? path : "JUnit report");
    }
    fprintf(m, "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
    fprintf(m, "<testsuites name=\"ocnopt\" tests=\"%d\" failures=\"%d\" errors=\"0\" skipped=\"%d\">\n", n, failures,
            skipped);
    fprintf(m, " <testsuite name=\"ocnopt\" tests=\"%d\" failures=\"%d\" errors=\"0\" skipped=\"%d\">\n", n, failures,
            skipped);
    fprintf(m, "  <properties>\n   <property name=\"threshold\" value=\"%.0f\"/>\n   <property name=\"fail_at\" "
               "value=\"%.0f\"/>\n",
            OCN_THRESHOLD, 10 * OCN_THRESHOLD);
    fprintf(m, "   <property name=\"summary\" value=\"%d passed, %d failed, %d weak, %d skipped\"/>\n",
            ocn_report_passes(r), ocn_report_failures(r), ocn_report_weak(r), r->skipped);
    for (int i = 0; i < r->nfix; i++) {
        const ocn_fixture_info *x = &r->fix[i];
        if (fix_repeated(r, i)) continue;
        fputs("   <property name=\"detection ", m);
        xml(m, x->fixture, 1);
        char p[32];
        fprintf(m, "\" value=\"power=%s weak=%d/%d%s\"/>\n",
                x->detection == 0 ? "none" : fmt_num(p, sizeof p, "%.2g", x->detection), x->weak, x->total,
                x->fit_for_ports ? "" : " not fit for ports");
    }
    fputs("  </properties>\n", m);
    for (int k = 0; k < n; k++) junit_case(m, r, &g[k], k, of);
    if (r->none) {
        fputs("  <system-out>", m);
        for (int i = 0; i < r->none; i++) {
            char label[64];
            side_label(label, sizeof label, r->one[i].side);
            xml(m, label, 0);
            fputs("  ", m);
            xml(m, r->one[i].fixture, 0);
            fputs(": ", m);
            xml(m, r->one[i].name, 0);
            fputc('\n', m);
        }
        fputs("</system-out>\n", m);
    }
    fputs(" </testsuite>\n</testsuites>\n", m);
    free(g), free(of);
    if (fclose(m) || !text) {
        free(text);
        return ocn_fail(err, OCN_ENOMEM, "%s: out of memory", path ? path : "JUnit report");
    }
    int rc = write_safely(path, text, len, "JUnit", err);
    free(text);
    return rc;
}
