build/src/arrays.o: src/arrays.c include/ocn/arrays.h include/ocn/error.h
include/ocn/arrays.h:
include/ocn/error.h:
