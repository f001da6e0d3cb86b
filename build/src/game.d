build/src/game.o: src/game.c include/ocn/game.h include/ocn/error.h
include/ocn/game.h:
include/ocn/error.h:
