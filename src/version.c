/* ocn_version(): the linked library's version (include/ocn/version.h). */
#include "ocn/version.h"

const char *ocn_version(void) { return OCN_VERSION; }
