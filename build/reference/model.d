build/reference/model.o: reference/model.c reference/ref.h \
 include/ocn/reference.h include/ocn/arrays.h include/ocn/error.h \
 include/ocn/game.h
reference/ref.h:
include/ocn/reference.h:
include/ocn/arrays.h:
include/ocn/error.h:
include/ocn/game.h:
