/* Fake NVML (test code), built as libnvidia-ml.so.1: the physical devices of fake_cuda.c
 * (FAKE_CUDA_DEVICES, FAKE_CUDA_TOTAL_MEM; NVML ignores FAKE_CUDA_VISIBLE as it ignores
 * CUDA_VISIBLE_DEVICES) with the same UUIDs in NVML's text form, and memory info that reports
 * the whole device free (one process's fake device memory is not visible from another). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define EXPORT __attribute__((visibility("default")))
typedef int nvmlReturn_t;
enum { NVML_SUCCESS = 0, NVML_ERROR_INVALID_ARGUMENT = 2, NVML_ERROR_INSUFFICIENT_SIZE = 7 };

struct fake_nvml_device {
    int index;
};
typedef struct fake_nvml_device *nvmlDevice_t;
typedef struct {
    unsigned long long total, free, used;
} nvmlMemory_t;
typedef struct {
    unsigned int version;
    unsigned long long total, reserved, free, used;
} nvmlMemory_v2_t;

#define MAX_DEV 8
static struct fake_nvml_device g_devices[MAX_DEV];

static int count(void)
{
    const char *s = getenv("FAKE_CUDA_DEVICES");
    int n = s && atoi(s) > 0 ? atoi(s) : 2;
    return n > MAX_DEV ? MAX_DEV : n;
}

static unsigned long long total(void)
{
    const char *s = getenv("FAKE_CUDA_TOTAL_MEM");
    return s && *s ? strtoull(s, NULL, 10) : 16ULL << 30;
}

EXPORT nvmlReturn_t nvmlInit_v2(void) { return NVML_SUCCESS; }
EXPORT nvmlReturn_t nvmlInit(void) { return NVML_SUCCESS; }
EXPORT nvmlReturn_t nvmlInitWithFlags(unsigned int flags) { (void)flags; return NVML_SUCCESS; }
EXPORT nvmlReturn_t nvmlShutdown(void) { return NVML_SUCCESS; }
EXPORT const char *nvmlErrorString(nvmlReturn_t rc) { return rc == NVML_SUCCESS ? "Success" : "Fake error"; }

EXPORT nvmlReturn_t nvmlDeviceGetCount_v2(unsigned int *n)
{
    *n = (unsigned int)count();
    return NVML_SUCCESS;
}

EXPORT nvmlReturn_t nvmlDeviceGetHandleByIndex_v2(unsigned int i, nvmlDevice_t *dev)
{
    if ((int)i >= count())
        return NVML_ERROR_INVALID_ARGUMENT;
    g_devices[i].index = (int)i;
    *dev = &g_devices[i];
    return NVML_SUCCESS;
}

EXPORT nvmlReturn_t nvmlDeviceGetIndex(nvmlDevice_t dev, unsigned int *i)
{
    *i = (unsigned int)dev->index;
    return NVML_SUCCESS;
}

EXPORT nvmlReturn_t nvmlDeviceGetName(nvmlDevice_t dev, char *name, unsigned int len)
{
    snprintf(name, len, "Fake GPU %d", dev->index);
    return NVML_SUCCESS;
}

/* fake_cuda.c's cuDeviceGetUuid bytes: fa ce 12 13 .. 1e <index> */
EXPORT nvmlReturn_t nvmlDeviceGetUUID(nvmlDevice_t dev, char *uuid, unsigned int len)
{
    unsigned char b[16];
    for (int i = 0; i < 16; i++)
        b[i] = (unsigned char)(0x10 + i);
    b[0] = 0xfa;
    b[1] = 0xce;
    b[15] = (unsigned char)dev->index;
    char text[64];
    snprintf(text, sizeof(text),
             "GPU-%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x", b[0], b[1],
             b[2], b[3], b[4], b[5], b[6], b[7], b[8], b[9], b[10], b[11], b[12], b[13], b[14], b[15]);
    if (strlen(text) + 1 > len)
        return NVML_ERROR_INSUFFICIENT_SIZE;
    strcpy(uuid, text);
    return NVML_SUCCESS;
}

EXPORT nvmlReturn_t nvmlDeviceGetMemoryInfo(nvmlDevice_t dev, nvmlMemory_t *m)
{
    (void)dev;
    m->total = total();
    m->used = 0;
    m->free = m->total;
    return NVML_SUCCESS;
}

EXPORT nvmlReturn_t nvmlDeviceGetMemoryInfo_v2(nvmlDevice_t dev, nvmlMemory_v2_t *m)
{
    (void)dev;
    if (m->version != (unsigned int)(sizeof(nvmlMemory_v2_t) | (2 << 24)))
        return NVML_ERROR_INVALID_ARGUMENT;
    m->total = total();
    m->reserved = 256ULL << 20;
    m->used = m->reserved;
    m->free = m->total - m->used;
    return NVML_SUCCESS;
}
