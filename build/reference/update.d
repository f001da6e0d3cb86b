build/reference/update.o: reference/update.c reference/update.h \
 reference/ref.h include/ocn/reference.h include/ocn/arrays.h \
 include/ocn/error.h include/ocn/game.h
reference/update.h:
reference/ref.h:
include/ocn/reference.h:
include/ocn/arrays.h:
include/ocn/error.h:
include/ocn/game.h:
