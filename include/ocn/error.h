/* Status codes and error messages of the ocn_ library.
 * Every fallible function returns an int status (OCN_OK on success) and, on
 * failure, fills the caller's ocn_error with a one-line message that names the
 * file, field, stage or player at fault.  No global state, no exit(). */
#ifndef OCN_ERROR_H
#define OCN_ERROR_H

enum {
    OCN_OK = 0,
    OCN_EINVAL = 2,      /* bad input: file, field, dimension, value */
    OCN_EIO = 3,         /* could not read or write a file */
    OCN_ENOMEM = 4,      /* allocation failed */
    OCN_ENUMERIC = 5,    /* a factorisation or numerical step failed */
    OCN_EUNSUPPORTED = 6 /* a valid request this build does not compute */
};

typedef struct ocn_error {
    int code;
    char msg[1024];
} ocn_error;

/* Records code and a printf-style message; returns code for `return ocn_fail(...)`. */
int ocn_fail(ocn_error *e, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* Prepends "prefix: " to the message already in e (adds context on the way up). */
int ocn_error_prefix(ocn_error *e, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
const char *ocn_error_message(const ocn_error *e);
const char *ocn_status_string(int code);

#endif
