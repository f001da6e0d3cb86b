/* .npy I/O (SPEC §11).  Strict: anything we do not understand is an error
 * naming the file and what is wrong, never a guess. */
#include "ocn/npy.h"

#include <ctype.h>
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define NPY_MAX_FILE ((size_t)1 << 34) /* 16 GiB: beyond this a header is lying */

static const char *skip_ws(const char *p, const char *end)
{
    while (p < end && (*p == ' ' || *p == '\t')) p++;
    return p;
}

/* Finds the value text following 'key': in the header dict. */
static const char *find_key(const char *h, const char *end, const char *key)
{
    size_t kl = strlen(key);
    for (const char *p = h; p + kl + 2 < end; p++)
        if ((*p == '\'' || *p == '"') && !strncmp(p + 1, key, kl) && p[kl + 1] == *p) {
            p = skip_ws(p + kl + 2, end);
            if (p < end && *p == ':') return skip_ws(p + 1, end);
            return NULL;
        }
    return NULL;
}

static int parse_header(const char *h, size_t hl, const char *where, char dtype[8], int *ndim,
                        size_t shape[OCN_MAX_NDIM], ocn_error *err)
{
    const char *end = h + hl;
    const char *v = find_key(h, end, "descr");
    if (!v || v >= end) return ocn_fail(err, OCN_EINVAL, "%s: .npy header has no 'descr'", where);
    char q = *v;
    if (q != '\'' && q != '"') return ocn_fail(err, OCN_EINVAL, "%s: .npy 'descr' is not a string", where);
    const char *ve = memchr(v + 1, q, (size_t)(end - v - 1));
    if (!ve || ve - v - 1 >= 8) return ocn_fail(err, OCN_EINVAL, "%s: .npy 'descr' unsupported", where);
    memcpy(dtype, v + 1, (size_t)(ve - v - 1));
    dtype[ve - v - 1] = 0;
    if (!strcmp(dtype, ">f8") || !strcmp(dtype, ">f4"))
        return ocn_fail(err, OCN_EINVAL, "%s: dtype '%s' is big-endian; fixtures are little-endian ('<f8')", where, dtype);
    if (strcmp(dtype, "<f8") && strcmp(dtype, "<f4"))
        return ocn_fail(err, OCN_EINVAL, "%s: dtype '%s' not supported (need '<f8' or '<f4')", where, dtype);
    v = find_key(h, end, "fortran_order");
    if (!v || end - v < 5) return ocn_fail(err, OCN_EINVAL, "%s: .npy header has no 'fortran_order'", where);
    if (!strncmp(v, "True", 4)) return ocn_fail(err, OCN_EINVAL, "%s: fortran_order arrays are not supported (C order only)", where);
    if (strncmp(v, "False", 5)) return ocn_fail(err, OCN_EINVAL, "%s: .npy 'fortran_order' is not a boolean", where);
    v = find_key(h, end, "shape");
    if (!v || v >= end || *v != '(') return ocn_fail(err, OCN_EINVAL, "%s: .npy header has no 'shape' tuple", where);
    v++;
    *ndim = 0;
    for (;;) {
        v = skip_ws(v, end);
        if (v >= end) return ocn_fail(err, OCN_EINVAL, "%s: .npy 'shape' tuple not closed", where);
        if (*v == ')') break;
        if (!isdigit((unsigned char)*v)) return ocn_fail(err, OCN_EINVAL, "%s: .npy shape entry is not a non-negative integer", where);
        if (*ndim == OCN_MAX_NDIM) return ocn_fail(err, OCN_EINVAL, "%s: .npy array has more than %d dimensions", where, OCN_MAX_NDIM);
        size_t x = 0;
        while (v < end && isdigit((unsigned char)*v)) {
            if (x > NPY_MAX_FILE / 10) return ocn_fail(err, OCN_EINVAL, "%s: .npy shape entry too large", where);
            x = x * 10 + (size_t)(*v++ - '0');
        }
        shape[(*ndim)++] = x;
        v = skip_ws(v, end);
        if (v < end && *v == ',') v++;
        else if (v < end && *v != ')') return ocn_fail(err, OCN_EINVAL, "%s: .npy 'shape' tuple malformed", where);
    }
    return OCN_OK;
}

int ocn_npy_parse(const unsigned char *buf, size_t len, const char *where, ocn_arrayset *set,
                  const char *name, char dtype_out[8], ocn_error *err)
{
    if (len < 10 || memcmp(buf, "\x93NUMPY", 6))
        return ocn_fail(err, OCN_EINVAL, "%s: not a .npy file (bad magic)", where);
    int major = buf[6];
    size_t hl, pre;
    if (major == 1) {
        hl = (size_t)buf[8] | (size_t)buf[9] << 8;
        pre = 10;
    } else if (major == 2 || major == 3) {
        if (len < 12) return ocn_fail(err, OCN_EINVAL, "%s: truncated .npy header", where);
        hl = (size_t)buf[8] | (size_t)buf[9] << 8 | (size_t)buf[10] << 16 | (size_t)buf[11] << 24;
        pre = 12;
    } else {
        return ocn_fail(err, OCN_EINVAL, "%s: .npy version %d.%d not supported", where, major, buf[7]);
    }
    if (hl > len - pre) return ocn_fail(err, OCN_EINVAL, "%s: truncated .npy header", where);
    char dtype[8];
    int ndim = 0;
    size_t shape[OCN_MAX_NDIM] = {0};
    int rc = parse_header((const char *)buf + pre, hl, where, dtype, &ndim, shape, err);
    if (rc) return rc;
    size_t item = dtype[2] == '8' ? 8 : 4, count = 1;
    for (int d = 0; d < ndim; d++) {
        if (shape[d] && count > NPY_MAX_FILE / item / shape[d])
            return ocn_fail(err, OCN_EINVAL, "%s: .npy shape too large", where);
        count *= shape[d];
    }
    size_t have = len - pre - hl;
    if (have < count * item) return ocn_fail(err, OCN_EINVAL, "%s: truncated .npy data (%zu of %zu bytes)", where, have, count * item);
    if (have > count * item) return ocn_fail(err, OCN_EINVAL, "%s: %zu bytes of trailing data after the array", where, have - count * item);
    ocn_array *a = ocn_arrayset_add(set, name, ndim, shape);
    if (!a) return ocn_fail(err, OCN_ENOMEM, "%s: cannot allocate array", where);
    const unsigned char *p = buf + pre + hl;
    for (size_t i = 0; i < count; i++) {
        if (item == 8) {
            uint64_t u = 0;
            for (int b = 7; b >= 0; b--) u = u << 8 | p[8 * i + (size_t)b];
            double x;
            memcpy(&x, &u, 8);
            a->data[i] = x;
        } else {
            uint32_t u = 0;
            for (int b = 3; b >= 0; b--) u = u << 8 | p[4 * i + (size_t)b];
            float x;
            memcpy(&x, &u, 4);
            a->data[i] = x;
        }
    }
    if (dtype_out) memcpy(dtype_out, dtype, 8);
    return OCN_OK;
}

int ocn_npy_read(const char *path, ocn_arrayset *set, const char *name, char dtype_out[8], ocn_error *err)
{
    FILE *f = fopen(path, "rb");
    if (!f) return ocn_fail(err, OCN_EINVAL, "%s: cannot open: %s", path, strerror(errno));
    if (fseek(f, 0, SEEK_END) || ftell(f) < 0) {
        fclose(f);
        return ocn_fail(err, OCN_EINVAL, "%s: cannot determine file size", path);
    }
    size_t len = (size_t)ftell(f);
    rewind(f);
    if (len > NPY_MAX_FILE) {
        fclose(f);
        return ocn_fail(err, OCN_EINVAL, "%s: file too large", path);
    }
    unsigned char *buf = malloc(len ? len : 1);
    if (!buf) {
        fclose(f);
        return ocn_fail(err, OCN_ENOMEM, "%s: out of memory", path);
    }
    size_t got = fread(buf, 1, len, f);
    fclose(f);
    int rc = got == len ? ocn_npy_parse(buf, len, path, set, name, dtype_out, err)
                        : ocn_fail(err, OCN_EIO, "%s: read error", path);
    free(buf);
    return rc;
}

int ocn_npy_write(const char *path, const ocn_array *a, ocn_error *err)
{
    char shape[200] = "";
    for (int d = 0; d < a->ndim; d++)
        snprintf(shape + strlen(shape), sizeof shape - strlen(shape), "%zu,%s", a->shape[d],
                 (d + 1 < a->ndim) ? " " : "");
    if (a->ndim > 1) shape[strlen(shape) - 1] = 0; /* (3,) for 1-d, (3, 2) otherwise */
    char header[512];
    int hl = snprintf(header, sizeof header, "{'descr': '<f8', 'fortran_order': False, 'shape': (%s), }", shape);
    int total = 10 + hl + 1;
    int pad = (64 - total % 64) % 64;
    memset(header + hl, ' ', (size_t)pad);
    header[hl + pad] = '\n';
    hl += pad + 1;
    FILE *f = fopen(path, "wb");
    if (!f) return ocn_fail(err, OCN_EIO, "%s: cannot create: %s", path, strerror(errno));
    unsigned char pre[10] = {0x93, 'N', 'U', 'M', 'P', 'Y', 1, 0, (unsigned char)(hl & 0xff), (unsigned char)(hl >> 8)};
    int ok = fwrite(pre, 1, 10, f) == 10 && fwrite(header, 1, (size_t)hl, f) == (size_t)hl;
    for (size_t i = 0; ok && i < a->size; i++) {
        uint64_t u;
        memcpy(&u, &a->data[i], 8);
        unsigned char b[8];
        for (int k = 0; k < 8; k++) b[k] = (unsigned char)(u >> (8 * k));
        ok = fwrite(b, 1, 8, f) == 8;
    }
    if (fclose(f) || !ok) return ocn_fail(err, OCN_EIO, "%s: write failed", path);
    return OCN_OK;
}
