/* NumPy .npy reader/writer (format v1.0 written; v1.0, v2.0, v3.0 read).
 * Reading validates magic, version, header, dtype ('<f8' or '<f4', C order),
 * shape, and that the file holds exactly the data the header promises. */
#ifndef OCN_NPY_H
#define OCN_NPY_H

#include <stdio.h>
#include "ocn/arrays.h"

/* Reads `path` into set under `name`; dtype_out (may be NULL) gets "<f8"/"<f4". */
int ocn_npy_read(const char *path, ocn_arrayset *set, const char *name, char dtype_out[8], ocn_error *err);
/* Parses an in-memory .npy image (the fuzz target and the file reader share it). */
int ocn_npy_parse(const unsigned char *buf, size_t len, const char *where, ocn_arrayset *set,
                  const char *name, char dtype_out[8], ocn_error *err);
/* Data sets (issue 13, `ocn train`): the same strict reader, also accepting
 * the little-endian integer dtypes '|u1', '|i1', '|b1', '<u2', '<i2', '<u4',
 * '<i4', '<u8', '<i8' (converted to double; a 64-bit value beyond 2^53 is
 * refused, naming the element).  Fixtures keep to ocn_npy_read (§11: '<f8'). */
int ocn_npy_read_numeric(const char *path, ocn_arrayset *set, const char *name, char dtype_out[8], ocn_error *err);
int ocn_npy_parse_numeric(const unsigned char *buf, size_t len, const char *where, ocn_arrayset *set,
                          const char *name, char dtype_out[8], ocn_error *err);
/* Writes a v1.0 '<f8' C-order file.  A failure names the path and the
 * system's reason (strerror). */
int ocn_npy_write(const char *path, const ocn_array *a, ocn_error *err);

/* The same, relative to an open directory (dirfd may be AT_FDCWD): `name` is
 * opened with openat, `where` is what messages call the file (the user's
 * path, never a temporary one). */
int ocn_npy_read_at(int dirfd, const char *name, const char *where, ocn_arrayset *set, const char *vname,
                    char dtype_out[8], ocn_error *err);
int ocn_npy_write_at(int dirfd, const char *name, const char *where, const ocn_array *a, ocn_error *err);

/* Reads the whole of dirfd/name, which must be a regular file of at most `max`
 * bytes, into a malloc'd NUL-terminated buffer.  Opened O_NONBLOCK and checked
 * with fstat first, so a FIFO, a device (/dev/zero) or a directory is refused
 * at once (OCN_EINVAL, "not a regular file"), never read; at most the size
 * fstat reported is read.  Messages name `where`. */
int ocn_read_regular_at(int dirfd, const char *name, const char *where, size_t max, unsigned char **buf,
                        size_t *len, ocn_error *err);
/* Creates (or truncates) dirfd/name, never through a symlink, and writes len
 * bytes; a failure names `where` and strerror. */
int ocn_write_file_at(int dirfd, const char *name, const char *where, const void *data, size_t len, ocn_error *err);

#endif
