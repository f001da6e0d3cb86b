build/src/main.o: src/main.c include/ocn/fixture.h include/ocn/arrays.h \
 include/ocn/error.h include/ocn/game.h include/ocn/harness.h \
 include/ocn/reference.h
include/ocn/fixture.h:
include/ocn/arrays.h:
include/ocn/error.h:
include/ocn/game.h:
include/ocn/harness.h:
include/ocn/reference.h:
