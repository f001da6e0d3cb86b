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
/* Writes a v1.0 '<f8' C-order file. */
int ocn_npy_write(const char *path, const ocn_array *a, ocn_error *err);

#endif
