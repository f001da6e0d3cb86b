build/src/fixture.o: src/fixture.c include/ocn/fixture.h \
 include/ocn/arrays.h include/ocn/error.h include/ocn/game.h \
 include/ocn/npy.h
include/ocn/fixture.h:
include/ocn/arrays.h:
include/ocn/error.h:
include/ocn/game.h:
include/ocn/npy.h:
