/* .npy reader/writer (SPEC §11): round trip and one clear error per malformed file. */
#include "util.h"
#include "ocn/npy.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

Test(npy, round_trip_bitwise)
{
    char dir[256], path[512];
    tu_tmpdir(dir, sizeof dir);
    snprintf(path, sizeof path, "%s/a.npy", dir);
    ocn_arrayset *s = ocn_arrayset_new(), *r = ocn_arrayset_new();
    size_t shapes[3][3] = {{7, 0, 0}, {3, 4, 0}, {2, 3, 5}};
    for (int nd = 1; nd <= 3; nd++) {
        ocn_array *a = ocn_arrayset_add(s, "a", nd, shapes[nd - 1]);
        for (size_t i = 0; i < a->size; i++) a->data[i] = sin(1.0 + (double)i) * pow(10.0, (double)(i % 7) - 3);
        a->data[0] = -0.0;
        ocn_error e = {0};
        cr_assert_eq(ocn_npy_write(path, a, &e), OCN_OK, "%s", e.msg);
        char dt[8];
        cr_assert_eq(ocn_npy_read(path, r, "b", dt, &e), OCN_OK, "%s", e.msg);
        ocn_array *b = ocn_arrayset_find(r, "b");
        cr_assert_str_eq(dt, "<f8");
        cr_assert_eq(b->ndim, nd);
        for (int d = 0; d < nd; d++) cr_assert_eq(b->shape[d], a->shape[d]);
        cr_assert(memcmp(a->data, b->data, a->size * sizeof(double)) == 0, "round trip must be bitwise");
        FILE *f = fopen(path, "rb");
        unsigned char head[10];
        cr_assert_eq(fread(head, 1, 10, f), 10u);
        fclose(f);
        cr_assert_eq((10 + head[8] + 256 * head[9]) % 64, 0, "header padded to 64 bytes");
    }
    ocn_arrayset_free(s), ocn_arrayset_free(r);
    tu_rm_rf(dir);
}

/* Builds an in-memory .npy with the given version, header text and payload size. */
static size_t build(unsigned char *buf, int major, const char *header, size_t payload)
{
    size_t hl = strlen(header), pre = major == 1 ? 10 : 12;
    memcpy(buf, "\x93NUMPY", 6);
    buf[6] = (unsigned char)major, buf[7] = 0;
    buf[8] = (unsigned char)(hl & 0xff), buf[9] = (unsigned char)(hl >> 8);
    if (major != 1) buf[10] = buf[11] = 0;
    memcpy(buf + pre, header, hl);
    memset(buf + pre + hl, 0, payload);
    return pre + hl + payload;
}

static void expect(int major, const char *header, size_t payload, const char *want)
{
    unsigned char buf[4096];
    size_t len = build(buf, major, header, payload);
    ocn_arrayset *s = ocn_arrayset_new();
    ocn_error e = {0};
    int rc = ocn_npy_parse(buf, len, "x.npy", s, "x", NULL, &e);
    if (!want) {
        cr_assert_eq(rc, OCN_OK, "%s", e.msg);
    } else {
        cr_assert_eq(rc, OCN_EINVAL, "expected failure '%s'", want);
        cr_assert(strstr(e.msg, want) != NULL, "'%s' lacks '%s'", e.msg, want);
        cr_assert(strncmp(e.msg, "x.npy: ", 7) == 0, "must name the file: %s", e.msg);
        cr_assert_eq(s->count, 0, "nothing stored on failure");
    }
    ocn_arrayset_free(s);
}

Test(npy, versions_and_bad_files)
{
    const char *ok = "{'descr': '<f8', 'fortran_order': False, 'shape': (2, 3), }\n";
    expect(1, ok, 48, NULL);
    expect(2, ok, 48, NULL);
    expect(1, "{'descr': '<f4', 'fortran_order': False, 'shape': (5,), }\n", 20, NULL);
    expect(1, ok, 47, "truncated .npy data");
    expect(1, ok, 49, "trailing data");
    expect(1, "{'descr': '>f8', 'fortran_order': False, 'shape': (2, 3), }\n", 48, "big-endian");
    expect(1, "{'descr': '<i4', 'fortran_order': False, 'shape': (2, 3), }\n", 24, "dtype '<i4' not supported");
    expect(1, "{'descr': '<f8', 'fortran_order': True, 'shape': (2, 3), }\n", 48, "fortran_order");
    expect(1, "{'descr': '<f8', 'fortran_order': False, 'shape': (99999999999, 99999999999), }\n", 0, "too large");
    expect(1, "{'descr': '<f8', 'fortran_order': False, 'shape': (-2, 3), }\n", 0, "not a non-negative integer");
    expect(1, "{'descr': '<f8', 'fortran_order': False, }\n", 0, "no 'shape'");
    expect(7, ok, 48, "version 7.0 not supported");
    unsigned char junk[16] = "NOTNUMPYATALL..";
    ocn_arrayset *s = ocn_arrayset_new();
    ocn_error e = {0};
    cr_assert_eq(ocn_npy_parse(junk, sizeof junk, "j.npy", s, "j", NULL, &e), OCN_EINVAL);
    cr_assert(strstr(e.msg, "bad magic") != NULL);
    cr_assert_eq(ocn_npy_parse(junk, 0, "e.npy", s, "e", NULL, &e), OCN_EINVAL, "empty file");
    unsigned char trunc[12];
    build(trunc, 1, "", 0);
    trunc[8] = 200; /* header claims 200 bytes, file ends */
    cr_assert_eq(ocn_npy_parse(trunc, 10, "t.npy", s, "t", NULL, &e), OCN_EINVAL);
    cr_assert(strstr(e.msg, "truncated .npy header") != NULL, "%s", e.msg);
    ocn_arrayset_free(s);
}
