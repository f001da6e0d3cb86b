/* .npy I/O (SPEC §11).  Strict: anything we do not understand is an error
 * naming the file and what is wrong, never a guess. */
#include "ocn/npy.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

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

/* Item size of a dtype this reader knows: '<f8', '<f4' always; with `ints`
 * also the integer dtypes NumPy writes for data sets ('|u1', '|i1', '<u2',
 * '<i2', '<u4', '<i4', '<u8', '<i8') and '|b1'.  0 = unknown. */
static size_t dtype_item(const char *dt, int ints)
{
    if (!strcmp(dt, "<f8")) return 8;
    if (!strcmp(dt, "<f4")) return 4;
    if (!ints) return 0;
    if (!strcmp(dt, "|u1") || !strcmp(dt, "|i1") || !strcmp(dt, "|b1")) return 1;
    if (!strcmp(dt, "<u2") || !strcmp(dt, "<i2")) return 2;
    if (!strcmp(dt, "<u4") || !strcmp(dt, "<i4")) return 4;
    if (!strcmp(dt, "<u8") || !strcmp(dt, "<i8")) return 8;
    return 0;
}

static int parse_header(const char *h, size_t hl, const char *where, int ints, char dtype[8], int *ndim,
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
    if (dtype[0] == '>' && dtype_item((char[]){'<', dtype[1], dtype[2], dtype[3]}, ints))
        return ocn_fail(err, OCN_EINVAL, "%s: dtype '%s' is big-endian; only little-endian is read ('<%s')", where, dtype,
                        dtype + 1);
    if (!dtype_item(dtype, ints))
        return ocn_fail(err, OCN_EINVAL, "%s: dtype '%s' not supported (need %s)", where, dtype,
                        ints ? "'<f8', '<f4', or an integer dtype: '|u1', '|i1', '|b1', '<u2', '<i2', '<u4', '<i4', '<u8', '<i8'"
                             : "'<f8' or '<f4'");
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

/* Little-endian element i of an item-byte dtype, as a double (integers up to
 * 2^53 are exact; larger ones are refused by the caller). */
static double element(const unsigned char *p, size_t i, const char *dt, size_t item, int *inexact)
{
    uint64_t u = 0;
    for (int b = (int)item - 1; b >= 0; b--) u = u << 8 | p[item * i + (size_t)b];
    if (dt[1] == 'f') {
        if (item == 8) {
            double x;
            memcpy(&x, &u, 8);
            return x;
        }
        uint32_t v = (uint32_t)u;
        float x;
        memcpy(&x, &v, 4);
        return x;
    }
    if (dt[1] == 'b') return u != 0;
    if (dt[1] == 'i' && item < 8 && (u >> (8 * item - 1)) & 1) u |= ~(uint64_t)0 << (8 * item); /* sign-extend */
    if (dt[1] == 'i') {
        int64_t s = (int64_t)u;
        if (s > (INT64_C(1) << 53) || s < -(INT64_C(1) << 53)) *inexact = 1;
        return (double)s;
    }
    if (u > (UINT64_C(1) << 53)) *inexact = 1;
    return (double)u;
}

static int parse(const unsigned char *buf, size_t len, const char *where, int ints, ocn_arrayset *set,
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
    int rc = parse_header((const char *)buf + pre, hl, where, ints, dtype, &ndim, shape, err);
    if (rc) return rc;
    size_t item = dtype_item(dtype, ints), count = 1;
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
    int inexact = 0;
    for (size_t i = 0; i < count; i++) {
        a->data[i] = element(p, i, dtype, item, &inexact);
        if (inexact) {
            ocn_arrayset_remove(set, name);
            return ocn_fail(err, OCN_EINVAL, "%s: element %zu does not fit a double exactly (|value| > 2^53)", where, i);
        }
    }
    if (dtype_out) memcpy(dtype_out, dtype, 8);
    return OCN_OK;
}

int ocn_npy_parse(const unsigned char *buf, size_t len, const char *where, ocn_arrayset *set,
                  const char *name, char dtype_out[8], ocn_error *err)
{
    return parse(buf, len, where, 0, set, name, dtype_out, err);
}

int ocn_npy_parse_numeric(const unsigned char *buf, size_t len, const char *where, ocn_arrayset *set,
                          const char *name, char dtype_out[8], ocn_error *err)
{
    return parse(buf, len, where, 1, set, name, dtype_out, err);
}

int ocn_read_regular_at(int dirfd, const char *name, const char *where, size_t max, unsigned char **buf_out,
                        size_t *len_out, ocn_error *err)
{
    *buf_out = NULL, *len_out = 0;
    /* O_NONBLOCK: opening a FIFO without a writer returns at once (and is then
     * refused below) instead of blocking forever */
    int fd = openat(dirfd, name, O_RDONLY | O_NONBLOCK | O_NOCTTY | O_CLOEXEC);
    if (fd < 0) {
        int code = errno == ENOMEM ? OCN_ENOMEM : errno == EIO ? OCN_EIO : OCN_EINVAL;
        if (errno == ENAMETOOLONG) return ocn_fail(err, code, "%s: path too long for the system (PATH_MAX %d)", where, PATH_MAX);
        return ocn_fail(err, code, "%s: cannot open: %s", where, strerror(errno));
    }
    struct stat st;
    int rc = OCN_OK;
    unsigned char *buf = NULL;
    size_t got = 0;
    if (fstat(fd, &st)) rc = ocn_fail(err, OCN_EIO, "%s: cannot stat: %s", where, strerror(errno));
    else if (!S_ISREG(st.st_mode))
        rc = ocn_fail(err, OCN_EINVAL, "%s: not a regular file (%s)", where,
                      S_ISDIR(st.st_mode) ? "a directory" : S_ISFIFO(st.st_mode) ? "a FIFO" :
                      S_ISCHR(st.st_mode) || S_ISBLK(st.st_mode) ? "a device" : S_ISSOCK(st.st_mode) ? "a socket" : "not a file");
    else if (st.st_size < 0 || (uint64_t)st.st_size > (uint64_t)max)
        rc = ocn_fail(err, OCN_EINVAL, "%s: file too large (%lld bytes; at most %zu)", where, (long long)st.st_size, max);
    else if (fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) & ~O_NONBLOCK))
        rc = ocn_fail(err, OCN_EIO, "%s: cannot read: %s", where, strerror(errno));
    else if (!(buf = malloc((size_t)st.st_size + 1)))
        rc = ocn_fail(err, OCN_ENOMEM, "%s: out of memory (%lld bytes)", where, (long long)st.st_size);
    /* never more than the size fstat gave: a file growing under us is cut there */
    while (!rc && got < (size_t)st.st_size) {
        ssize_t k = read(fd, buf + got, (size_t)st.st_size - got);
        if (k < 0 && errno == EINTR) continue;
        if (k < 0) rc = ocn_fail(err, OCN_EIO, "%s: read error: %s", where, strerror(errno));
        else if (k == 0) rc = ocn_fail(err, OCN_EIO, "%s: file shrank while being read (%zu of %lld bytes)", where, got,
                                       (long long)st.st_size);
        else got += (size_t)k;
    }
    close(fd);
    if (rc) {
        free(buf);
        return rc;
    }
    buf[got] = 0;
    *buf_out = buf, *len_out = got;
    return OCN_OK;
}

int ocn_npy_read_at(int dirfd, const char *name, const char *where, ocn_arrayset *set, const char *vname,
                    char dtype_out[8], ocn_error *err)
{
    unsigned char *buf;
    size_t len;
    int rc = ocn_read_regular_at(dirfd, name, where, NPY_MAX_FILE, &buf, &len, err);
    if (rc) return rc;
    rc = ocn_npy_parse(buf, len, where, set, vname, dtype_out, err);
    free(buf);
    return rc;
}

int ocn_npy_read(const char *path, ocn_arrayset *set, const char *name, char dtype_out[8], ocn_error *err)
{
    return ocn_npy_read_at(AT_FDCWD, path, path, set, name, dtype_out, err);
}

int ocn_npy_read_numeric(const char *path, ocn_arrayset *set, const char *name, char dtype_out[8], ocn_error *err)
{
    unsigned char *buf;
    size_t len;
    int rc = ocn_read_regular_at(AT_FDCWD, path, path, NPY_MAX_FILE, &buf, &len, err);
    if (rc) return rc;
    rc = ocn_npy_parse_numeric(buf, len, path, set, name, dtype_out, err);
    free(buf);
    return rc;
}

/* Writes all n bytes (partial writes and EINTR retried); -1 with errno set. */
static int write_all(int fd, const void *p, size_t n)
{
    const unsigned char *b = p;
    while (n) {
        ssize_t k = write(fd, b, n);
        if (k < 0 && errno == EINTR) continue;
        if (k < 0) return -1;
        if (k == 0) {
            errno = EIO;
            return -1;
        }
        b += k, n -= (size_t)k;
    }
    return 0;
}

int ocn_write_file_at(int dirfd, const char *name, const char *where, const void *data, size_t len, ocn_error *err)
{
    int fd = openat(dirfd, name, O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW | O_CLOEXEC, 0666);
    if (fd < 0) return ocn_fail(err, OCN_EIO, "%s: cannot create: %s", where, strerror(errno));
    int bad = write_all(fd, data, len);
    int e = errno;
    if (close(fd) && !bad) bad = 1, e = errno;
    if (bad) return ocn_fail(err, OCN_EIO, "%s: write failed: %s", where, strerror(e));
    return OCN_OK;
}

int ocn_npy_write_at(int dirfd, const char *name, const char *where, const ocn_array *a, ocn_error *err)
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
    int fd = openat(dirfd, name, O_WRONLY | O_CREAT | O_TRUNC | O_NOCTTY | O_CLOEXEC, 0666);
    if (fd < 0) return ocn_fail(err, OCN_EIO, "%s: cannot create: %s", where, strerror(errno));
    unsigned char pre[10] = {0x93, 'N', 'U', 'M', 'P', 'Y', 1, 0, (unsigned char)(hl & 0xff), (unsigned char)(hl >> 8)};
    unsigned char b[1 << 16]; /* little-endian bytes, written a block at a time */
    int bad = write_all(fd, pre, 10) || write_all(fd, header, (size_t)hl);
    for (size_t i = 0; !bad && i < a->size;) {
        size_t k = 0;
        for (; i < a->size && k + 8 <= sizeof b; i++, k += 8) {
            uint64_t u;
            memcpy(&u, &a->data[i], 8);
            for (int j = 0; j < 8; j++) b[k + (size_t)j] = (unsigned char)(u >> (8 * j));
        }
        bad = write_all(fd, b, k);
    }
    int e = errno;
    if (close(fd) && !bad) bad = 1, e = errno;
    if (bad) return ocn_fail(err, OCN_EIO, "%s: write failed: %s", where, strerror(e));
    return OCN_OK;
}

int ocn_npy_write(const char *path, const ocn_array *a, ocn_error *err)
{
    return ocn_npy_write_at(AT_FDCWD, path, path, a, err);
}
