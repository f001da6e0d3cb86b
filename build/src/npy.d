build/src/npy.o: src/npy.c include/ocn/npy.h include/ocn/arrays.h \
 include/ocn/error.h
include/ocn/npy.h:
include/ocn/arrays.h:
include/ocn/error.h:
