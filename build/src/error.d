build/src/error.o: src/error.c include/ocn/error.h
include/ocn/error.h:
