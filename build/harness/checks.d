build/harness/checks.o: harness/checks.c harness/check.h \
 include/ocn/harness.h include/ocn/arrays.h include/ocn/error.h \
 include/ocn/fixture.h include/ocn/game.h include/ocn/reference.h
harness/check.h:
include/ocn/harness.h:
include/ocn/arrays.h:
include/ocn/error.h:
include/ocn/fixture.h:
include/ocn/game.h:
include/ocn/reference.h:
