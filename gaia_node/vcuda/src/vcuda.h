/* What the parts of libvcuda share with each other (not an interface of the library). */
#ifndef VCUDA_INTERNAL_H
#define VCUDA_INTERNAL_H

#include "config.h"
#include "cuda_types.h"

#define VCUDA_EXPORT __attribute__((visibility("default")))

/* libc's dlsym, never the override in hooks.c (resolved with dlvsym on first use). */
typedef void *(*vcuda_dlsym_fn)(void *handle, const char *name);
vcuda_dlsym_fn vcuda_real_dlsym(void);

/* The real driver's definition of a name (never a hook): what throttle.c calls the driver with.
 * Safe during vcuda_throttle_init (the driver is loaded by then). */
void *vcuda_real_symbol(const char *name);

/* Loads the config and opens the region once (no driver needed: NVML-only processes too). */
const struct vcuda_config *vcuda_init_config(void);

/* NVML hooks (nvml.c), listed in hooks.c's table so dlsym hands them out. */
VCUDA_EXPORT nvmlReturn_t nvmlDeviceGetMemoryInfo(nvmlDevice_t device, nvmlMemory_t *memory);
VCUDA_EXPORT nvmlReturn_t nvmlDeviceGetMemoryInfo_v2(nvmlDevice_t device, nvmlMemory_v2_t *memory);

/* "GPU-8hex-4hex-4hex-4hex-12hex" (NVML's UUID text) -> the 16 bytes cuDeviceGetUuid gives;
 * 0, or -1 when it is not that form. */
int vcuda_parse_uuid(const char *text, unsigned char out[16]);

#endif
