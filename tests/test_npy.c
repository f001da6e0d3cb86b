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

/* Issue 13: integer dtypes for data sets (ocn_npy_parse_numeric); values
 * checked against the bytes written here, little-endian, sign-extended. */
static int parse_num(const char *descr, const char *shape, const unsigned char *payload, size_t n, ocn_arrayset *s,
                     ocn_error *e)
{
    char header[128];
    snprintf(header, sizeof header, "{'descr': '%s', 'fortran_order': False, 'shape': %s, }", descr, shape);
    unsigned char buf[512];
    size_t len = build(buf, 1, header, n);
    memcpy(buf + len - n, payload, n);
    return ocn_npy_parse_numeric(buf, len, "d.npy", s, "d", NULL, e);
}

Test(npy, integer_dtypes)
{
    ocn_arrayset *s = ocn_arrayset_new();
    ocn_error e = {0};
    const unsigned char u1[3] = {0, 16, 255};
    cr_assert_eq(parse_num("|u1", "(3,)", u1, 3, s, &e), OCN_OK, "%s", e.msg);
    ocn_array *a = ocn_arrayset_find(s, "d");
    cr_expect(a->data[0] == 0 && a->data[1] == 16 && a->data[2] == 255);
    const unsigned char i1[2] = {0xff, 0x80};
    cr_assert_eq(parse_num("|i1", "(2,)", i1, 2, s, &e), OCN_OK, "%s", e.msg);
    a = ocn_arrayset_find(s, "d");
    cr_expect(a->data[0] == -1 && a->data[1] == -128, "%g %g", a->data[0], a->data[1]);
    const unsigned char i4[8] = {0x39, 0x05, 0, 0, 0xfe, 0xff, 0xff, 0xff}; /* 1337, -2 */
    cr_assert_eq(parse_num("<i4", "(2,)", i4, 8, s, &e), OCN_OK, "%s", e.msg);
    a = ocn_arrayset_find(s, "d");
    cr_expect(a->data[0] == 1337 && a->data[1] == -2, "%g %g", a->data[0], a->data[1]);
    const unsigned char u2[2] = {0xff, 0xff};
    cr_assert_eq(parse_num("<u2", "(1,)", u2, 2, s, &e), OCN_OK, "%s", e.msg);
    cr_expect(ocn_arrayset_find(s, "d")->data[0] == 65535);
    const unsigned char i8[8] = {0xfd, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff};
    cr_assert_eq(parse_num("<i8", "(1,)", i8, 8, s, &e), OCN_OK, "%s", e.msg);
    cr_expect(ocn_arrayset_find(s, "d")->data[0] == -3);
    const unsigned char b1[2] = {0, 7};
    cr_assert_eq(parse_num("|b1", "(2,)", b1, 2, s, &e), OCN_OK, "%s", e.msg);
    cr_expect(ocn_arrayset_find(s, "d")->data[1] == 1);
    /* a 64-bit integer a double cannot hold exactly is refused, naming the element */
    const unsigned char big[8] = {1, 0, 0, 0, 0, 0, 0x20, 0}; /* 2^53 + 1 */
    ocn_arrayset_remove(s, "d");
    cr_expect_eq(parse_num("<u8", "(1,)", big, 8, s, &e), OCN_EINVAL);
    cr_expect(strstr(e.msg, "d.npy: element 0") != NULL, "%s", e.msg);
    cr_expect_null(ocn_arrayset_find(s, "d"), "nothing stored on failure");
    cr_expect_eq(parse_num(">i4", "(2,)", i4, 8, s, &e), OCN_EINVAL);
    cr_expect(strstr(e.msg, "big-endian") != NULL, "%s", e.msg);
    cr_expect_eq(parse_num("<c16", "(1,)", i4, 8, s, &e), OCN_EINVAL);
    cr_expect(strstr(e.msg, "d.npy: dtype '<c16' not supported") != NULL, "%s", e.msg);
    cr_expect_eq(parse_num("<i4", "(3,)", i4, 8, s, &e), OCN_EINVAL); /* 8 bytes for 3 x 4 */
    cr_expect(strstr(e.msg, "truncated") != NULL, "%s", e.msg);
    /* fixtures stay '<f8'/'<f4' only (§11): the strict parser refuses integers */
    unsigned char buf[512];
    size_t len = build(buf, 1, "{'descr': '|u1', 'fortran_order': False, 'shape': (3,), }", 3);
    cr_expect_eq(ocn_npy_parse(buf, len, "f.npy", s, "f", NULL, &e), OCN_EINVAL);
    cr_expect(strstr(e.msg, "need '<f8' or '<f4'") != NULL, "%s", e.msg);
    ocn_arrayset_free(s);
}
