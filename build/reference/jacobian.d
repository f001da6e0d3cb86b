build/reference/jacobian.o: reference/jacobian.c reference/ref.h \
 include/ocn/reference.h include/ocn/arrays.h include/ocn/error.h \
 include/ocn/game.h
reference/ref.h:
include/ocn/reference.h:
include/ocn/arrays.h:
include/ocn/error.h:
include/ocn/game.h:
