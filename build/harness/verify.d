build/harness/verify.o: harness/verify.c include/ocn/harness.h \
 include/ocn/arrays.h include/ocn/error.h include/ocn/fixture.h \
 include/ocn/game.h include/ocn/reference.h
include/ocn/harness.h:
include/ocn/arrays.h:
include/ocn/error.h:
include/ocn/fixture.h:
include/ocn/game.h:
include/ocn/reference.h:
