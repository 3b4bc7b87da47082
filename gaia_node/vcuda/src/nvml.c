/* NVML's memory info, made to agree with cuMemGetInfo: total = the container's limit, used = what
 * the container's processes hold on that GPU (found by UUID in the region, so whichever CUDA
 * ordinal the allocating process knew it by), free = total - used. Without a limit NVML's own
 * figures pass through. NVML is loaded only when a program calls one of these. */
#define _GNU_SOURCE
#include <ctype.h>
#include <dlfcn.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>

#include "memory.h"
#include "vcuda.h"

static nvmlReturn_t (*real_get_memory_info)(nvmlDevice_t, nvmlMemory_t *);
static nvmlReturn_t (*real_get_memory_info_v2)(nvmlDevice_t, nvmlMemory_v2_t *);
static nvmlReturn_t (*real_get_uuid)(nvmlDevice_t, char *, unsigned int);
static pthread_once_t g_nvml_once = PTHREAD_ONCE_INIT;
enum { NVML_ERROR_UNINITIALIZED = 1, NVML_ERROR_LIBRARY_NOT_FOUND = 12 };

static void init_nvml(void)
{
    vcuda_init_config();
    void *lib = dlopen("libnvidia-ml.so.1", RTLD_LAZY | RTLD_LOCAL);
    if (lib == NULL)
        return;
    vcuda_dlsym_fn rd = vcuda_real_dlsym();
    real_get_memory_info = (nvmlReturn_t(*)(nvmlDevice_t, nvmlMemory_t *))rd(lib, "nvmlDeviceGetMemoryInfo");
    real_get_memory_info_v2 =
        (nvmlReturn_t(*)(nvmlDevice_t, nvmlMemory_v2_t *))rd(lib, "nvmlDeviceGetMemoryInfo_v2");
    real_get_uuid = (nvmlReturn_t(*)(nvmlDevice_t, char *, unsigned int))rd(lib, "nvmlDeviceGetUUID");
}

static int hexval(int c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    c = tolower(c);
    return c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
}

int vcuda_parse_uuid(const char *text, unsigned char out[16])
{
    if (strncmp(text, "GPU-", 4) != 0)
        return -1;
    const char *p = text + 4;
    for (int i = 0; i < 16; i++) {
        if (*p == '-' && (i == 4 || i == 6 || i == 8 || i == 10))
            p++;
        int hi = hexval((unsigned char)p[0]), lo = hi < 0 ? -1 : hexval((unsigned char)p[1]);
        if (hi < 0 || lo < 0)
            return -1;
        out[i] = (unsigned char)(hi << 4 | lo);
        p += 2;
    }
    return *p == '\0' ? 0 : -1;
}

/* The container's use on this NVML device: 0 when no process of it registered the GPU yet. */
static unsigned long long used_on(nvmlDevice_t device, unsigned long long real_total,
                                  unsigned long long *total)
{
    char text[96];
    unsigned char uuid[16];
    int rdev = -1;
    if (real_get_uuid != NULL && real_get_uuid(device, text, sizeof(text)) == NVML_SUCCESS &&
        vcuda_parse_uuid(text, uuid) == 0)
        rdev = vcuda_mem_find_rdev(uuid);
    unsigned long long used;
    vcuda_mem_reclaim_dead();
    vcuda_mem_info(rdev, real_total, &used, total);
    return used;
}

nvmlReturn_t nvmlDeviceGetMemoryInfo(nvmlDevice_t device, nvmlMemory_t *memory)
{
    pthread_once(&g_nvml_once, init_nvml);
    if (real_get_memory_info == NULL)
        return NVML_ERROR_UNINITIALIZED;
    nvmlReturn_t rc = real_get_memory_info(device, memory);
    if (rc == NVML_SUCCESS && memory != NULL && vcuda_mem_limit() > 0) {
        unsigned long long total, used = used_on(device, memory->total, &total);
        memory->total = total;
        memory->used = used;
        memory->free = total > used ? total - used : 0;
    }
    return rc;
}

nvmlReturn_t nvmlDeviceGetMemoryInfo_v2(nvmlDevice_t device, nvmlMemory_v2_t *memory)
{
    pthread_once(&g_nvml_once, init_nvml);
    if (real_get_memory_info_v2 == NULL)
        return NVML_ERROR_UNINITIALIZED;
    nvmlReturn_t rc = real_get_memory_info_v2(device, memory);
    if (rc == NVML_SUCCESS && memory != NULL && vcuda_mem_limit() > 0) {
        unsigned long long total, used = used_on(device, memory->total, &total);
        memory->total = total;
        memory->reserved = 0; /* the driver's reservation is outside the container's budget */
        memory->used = used;
        memory->free = total > used ? total - used : 0;
    }
    return rc;
}
