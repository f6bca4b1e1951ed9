/* The C target shares include/losskit.h (through the symlink in include/) with the Swift target,
 * so that `@c @implementation` checks every Swift entry point against its declaration in the
 * public header. Its code is the CPU-level loader (internal.c) and the version (version.c). */
#include "losskit.h"
