/* This C target exists only to share include/losskit.h (through the symlink in include/) with
 * the Swift target, so that `@c @implementation` checks every Swift entry point against its
 * declaration in the public header. It has no code of its own. */
#include "losskit.h"
