/* ocnopt's version (issue 15).  One number for the library, the `ocn`
 * binary, ocnopt.pc and the Python package (python/pyproject.toml; a test
 * checks they agree), written into every manifest's producer (SPEC §11). */
#ifndef OCN_VERSION_H
#define OCN_VERSION_H

#define OCN_VERSION_MAJOR 0
#define OCN_VERSION_MINOR 1
#define OCN_VERSION_PATCH 0
#define OCN_VERSION "0.1.0"

/* The version of the library actually linked (OCN_VERSION of the header a
 * program was compiled with may differ when it runs against another
 * libocn.so). */
const char *ocn_version(void);

#endif
