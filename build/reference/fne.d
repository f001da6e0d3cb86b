build/reference/fne.o: reference/fne.c reference/fne.h reference/ref.h \
 include/ocn/reference.h include/ocn/arrays.h include/ocn/error.h \
 include/ocn/game.h
reference/fne.h:
reference/ref.h:
include/ocn/reference.h:
include/ocn/arrays.h:
include/ocn/error.h:
include/ocn/game.h:
