/* lk_version and lk_version_number, made by the preprocessor from the header's LK_VERSION_*
 * macros, the one place the version is written (the Makefile, losskit.pc, the CMake package and
 * the Python package read it from there too). Plain C, compiled without the CPU-level flags of
 * the Swift code, so the baseline may ask a CPU-level build its version before using it. */
#include "losskit.h"
#include "losskit_internal.h"

const char *lk_version(void) { return LOSSKIT_VERSION_STRING; }

int32_t lk_version_number(void) { return LK_VERSION_NUMBER; }
