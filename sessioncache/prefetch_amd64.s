#include "textflag.h"

// func prefetch(p unsafe.Pointer, n uintptr)
//
// It prefetches every cache line that [p, p+n) touches: p is rounded down to its line, so
// the last line of a range that starts part-way into one is not missed.
TEXT ·prefetch(SB), NOSPLIT, $0-16
	MOVQ p+0(FP), AX
	MOVQ n+8(FP), CX
	ADDQ AX, CX
	ANDQ $~63, AX
loop:
	PREFETCHT0 (AX)
	ADDQ $64, AX
	CMPQ AX, CX
	JB   loop
	RET
