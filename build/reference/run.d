build/reference/run.o: reference/run.c reference/fne.h reference/ref.h \
 include/ocn/reference.h include/ocn/arrays.h include/ocn/error.h \
 include/ocn/game.h reference/update.h
reference/fne.h:
reference/ref.h:
include/ocn/reference.h:
include/ocn/arrays.h:
include/ocn/error.h:
include/ocn/game.h:
reference/update.h:
