/* vcuda_probe linked against the driver: every entry point is a direct call (--mode direct, the
 * default here), resolved by the dynamic linker, where LD_PRELOAD puts libvcuda first. */
#define PROBE_DIRECT
#include "vcuda_probe.c"
