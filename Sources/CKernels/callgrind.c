// Valgrind's callgrind client requests, for `Scripts/bench-callgrind`: instruction counts of one
// bench step without the model's construction and warm-up. The requests are a few no-op
// instructions when the program does not run under valgrind; without valgrind's headers (the
// valgrind package) at build time they are not compiled in at all, and fkp_callgrind_hooks says so.
#include "CKernels.h"

#if defined(__has_include)
#if __has_include(<valgrind/callgrind.h>)
#include <valgrind/callgrind.h>
#define FKP_CALLGRIND 1
#endif
#endif

int fkp_callgrind_hooks(void) {
#ifdef FKP_CALLGRIND
    return 1;
#else
    return 0;
#endif
}

void fkp_callgrind_start(void) {
#ifdef FKP_CALLGRIND
    CALLGRIND_START_INSTRUMENTATION;
#endif
}

void fkp_callgrind_stop(void) {
#ifdef FKP_CALLGRIND
    CALLGRIND_STOP_INSTRUMENTATION;
#endif
}
