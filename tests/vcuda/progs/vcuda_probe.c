/* A scriptable CUDA driver client for the vCUDA tests: runs the commands on its command line in
 * order and prints one JSON line per command. It reaches the driver the way --mode says:
 *   dlsym   dlopen("libcuda.so.1") + dlsym(name)       (this binary is not linked with libcuda)
 *   gpa     cuGetProcAddress_v2(base, version, flags)   (CUDA 12+ lookup; itself found by dlsym)
 *   gpa1    cuGetProcAddress(base, version, flags)      (the CUDA 11.3 lookup)
 *   direct  the linked symbols (vcuda_probe_direct, built from this file with PROBE_DIRECT)
 * Options: --mode M, --device N (the context's device), --version V (cudaVersion asked of
 * cuGetProcAddress, default 13000; below 3020 selects the pre-3.2 ABI), --ptds (per-thread default
 * stream variants: _ptsz names / the flag).
 *
 * Commands (SIZE in bytes; ID is the number an allocation printed):
 *   mem SIZE | mem1 SIZE | managed SIZE | async SIZE | pool SIZE
 *   pitch W H | pitch1 W H                      (4-byte elements)
 *   array W H FMT CH | array1 W H FMT CH | array3d W H D FMT CH FLAGS | array3d1 W H D FMT CH
 *   mipmap W H D FMT CH LEVELS FLAGS
 *   vmm SIZE (create + reserve + map) | vmm_create SIZE | map ID | unmap ID | release ID
 *   export ID (prints the IPC handle as hex) | import HEX | free ID | freeall
 *   fill CHUNK (cuMemAlloc_v2 until it fails: prints count and bytes) | info | resolve BASE
 *   bench N SIZE (ns per cuMemAlloc_v2 and per cuMemFree_v2, batches of 1000)
 *   wait FILE | touch FILE | sleep MS | hold | kill (SIGKILL itself) | exit CODE
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cuda_types.h"

typedef struct { int type; CUmemLocation location; unsigned long long flags; } access_desc;

#define API(X) \
    X(cuInit, (unsigned)) \
    X(cuDeviceGet, (CUdevice *, int)) \
    X(cuCtxCreate_v2, (CUcontext *, unsigned, CUdevice)) \
    X(cuDeviceGetUuid_v2, (CUuuid *, CUdevice)) \
    X(cuMemAlloc, (CUdeviceptr_v1 *, unsigned)) \
    X(cuMemAlloc_v2, (CUdeviceptr *, size_t)) \
    X(cuMemAllocPitch, (CUdeviceptr_v1 *, unsigned *, unsigned, unsigned, unsigned)) \
    X(cuMemAllocPitch_v2, (CUdeviceptr *, size_t *, size_t, size_t, unsigned)) \
    X(cuMemAllocManaged, (CUdeviceptr *, size_t, unsigned)) \
    X(cuMemFree, (CUdeviceptr_v1)) \
    X(cuMemFree_v2, (CUdeviceptr)) \
    X(cuArrayCreate, (CUarray *, const CUDA_ARRAY_DESCRIPTOR_v1 *)) \
    X(cuArrayCreate_v2, (CUarray *, const CUDA_ARRAY_DESCRIPTOR *)) \
    X(cuArray3DCreate, (CUarray *, const CUDA_ARRAY3D_DESCRIPTOR_v1 *)) \
    X(cuArray3DCreate_v2, (CUarray *, const CUDA_ARRAY3D_DESCRIPTOR *)) \
    X(cuArrayDestroy, (CUarray)) \
    X(cuMipmappedArrayCreate, (CUmipmappedArray *, const CUDA_ARRAY3D_DESCRIPTOR *, unsigned)) \
    X(cuMipmappedArrayDestroy, (CUmipmappedArray)) \
    X(cuMemCreate, (CUmemGenericAllocationHandle *, size_t, const CUmemAllocationProp *, unsigned long long)) \
    X(cuMemRelease, (CUmemGenericAllocationHandle)) \
    X(cuMemAddressReserve, (CUdeviceptr *, size_t, size_t, CUdeviceptr, unsigned long long)) \
    X(cuMemMap, (CUdeviceptr, size_t, size_t, CUmemGenericAllocationHandle, unsigned long long)) \
    X(cuMemUnmap, (CUdeviceptr, size_t)) \
    X(cuMemSetAccess, (CUdeviceptr, size_t, const access_desc *, size_t)) \
    X(cuMemAllocAsync, (CUdeviceptr *, size_t, CUstream)) \
    X(cuMemAllocFromPoolAsync, (CUdeviceptr *, size_t, CUmemoryPool, CUstream)) \
    X(cuMemFreeAsync, (CUdeviceptr, CUstream)) \
    X(cuMemPoolCreate, (CUmemoryPool *, const CUmemPoolProps *)) \
    X(cuMemPoolDestroy, (CUmemoryPool)) \
    X(cuIpcGetMemHandle, (CUipcMemHandle *, CUdeviceptr)) \
    X(cuIpcOpenMemHandle_v2, (CUdeviceptr *, CUipcMemHandle, unsigned)) \
    X(cuIpcCloseMemHandle, (CUdeviceptr)) \
    X(cuMemGetInfo, (unsigned *, unsigned *)) \
    X(cuMemGetInfo_v2, (size_t *, size_t *)) \
    X(cuDeviceTotalMem, (unsigned *, CUdevice)) \
    X(cuDeviceTotalMem_v2, (size_t *, CUdevice)) \
    X(cuGetProcAddress, (const char *, void **, int, cuuint64_t)) \
    X(cuGetProcAddress_v2, (const char *, void **, int, cuuint64_t, CUdriverProcAddressQueryResult *))

#ifdef PROBE_DIRECT
#define DECLARE(name, params) CUresult name params;
API(DECLARE)
#endif

#define MEMBER(name, params) CUresult(*name) params;
static struct { API(MEMBER) } api;

enum { MODE_DLSYM, MODE_GPA, MODE_GPA1, MODE_DIRECT };
#ifdef PROBE_DIRECT
#define DEFAULT_MODE MODE_DIRECT
#else
#define DEFAULT_MODE MODE_DLSYM
#endif
static int g_mode = DEFAULT_MODE, g_version = 13000, g_ptds, g_device;
static void *g_lib;
/* the lookups as found by dlsym (as the CUDA runtime finds them); api.cuGetProcAddress* are what the
 * lookups themselves hand out for their names, which for "cuGetProcAddress" is the _v2 ABI */
static CUresult (*g_gpa)(const char *, void **, int, cuuint64_t);
static CUresult (*g_gpa2)(const char *, void **, int, cuuint64_t, CUdriverProcAddressQueryResult *);

/* the base name cuGetProcAddress is asked for: the exported name without _v2/_v3 */
static void base_of(const char *name, char *out, size_t len)
{
    snprintf(out, len, "%s", name);
    char *v = strstr(out, "_v");
    if (v && v[2] >= '0' && v[2] <= '9')
        *v = '\0';
}

static int has_ptsz(const char *base)
{
    return strcmp(base, "cuMemAllocAsync") == 0 || strcmp(base, "cuMemAllocFromPoolAsync") == 0 ||
           strcmp(base, "cuMemFreeAsync") == 0;
}

static void *lookup(const char *name)
{
    char base[128], buf[160];
    base_of(name, base, sizeof(base));
    void *fn = NULL;
    cuuint64_t flags = g_ptds ? CU_GET_PROC_ADDRESS_PER_THREAD_DEFAULT_STREAM : CU_GET_PROC_ADDRESS_LEGACY_STREAM;
    /* the pre-3.2 entry points are only reachable by asking for an old version */
    int version = strcmp(name, base) == 0 && (strcmp(base, "cuMemAlloc") == 0 || strcmp(base, "cuMemFree") == 0 ||
                                               strcmp(base, "cuMemAllocPitch") == 0 || strcmp(base, "cuArrayCreate") == 0 ||
                                               strcmp(base, "cuArray3DCreate") == 0 || strcmp(base, "cuMemGetInfo") == 0 ||
                                               strcmp(base, "cuDeviceTotalMem") == 0)
                      ? 3010 : g_version;
    if (strcmp(name, "cuCtxCreate_v2") == 0 && version >= 12050)
        version = 12040; /* CUDA 12.5 made "cuCtxCreate" the _v4 ABI (with CUctxCreateParams) */
    switch (g_mode) {
    case MODE_DLSYM:
        snprintf(buf, sizeof(buf), g_ptds && has_ptsz(base) ? "%s_ptsz" : "%s", name);
        fn = dlsym(g_lib, buf);
        break;
    case MODE_GPA:
        if (g_gpa2(base, &fn, version, flags, NULL) != CUDA_SUCCESS)
            fn = NULL;
        break;
    case MODE_GPA1:
        if (g_gpa(base, &fn, version, flags) != CUDA_SUCCESS)
            fn = NULL;
        break;
    }
    return fn;
}

static void load_api(void)
{
#ifdef PROBE_DIRECT
    if (g_mode == MODE_DIRECT) {
#define DIRECT(name, params) api.name = name;
        API(DIRECT)
        return;
    }
#endif
    g_lib = dlopen("libcuda.so.1", RTLD_NOW | RTLD_LOCAL);
    if (g_lib == NULL) {
        printf("{\"error\": \"dlopen: %s\"}\n", dlerror());
        exit(3);
    }
    g_gpa = dlsym(g_lib, "cuGetProcAddress");
    g_gpa2 = dlsym(g_lib, "cuGetProcAddress_v2");
#define LOOKUP(name, params) api.name = lookup(#name);
    API(LOOKUP)
}

/* ---- what the probe holds ---- */
enum { K_PTR = 1, K_PTR1, K_ARRAY, K_MIPMAP, K_VMM, K_IPC, K_POOLPTR, K_ASYNC };
#define MAX_IDS 65536
static struct {
    int kind;
    CUdeviceptr ptr;
    void *handle;
    CUmemGenericAllocationHandle vmm;
    CUdeviceptr va;
    size_t size;
    int mapped, released;
} ids[MAX_IDS];
static int n_ids;
static CUmemoryPool g_pool;

static int add(int kind)
{
    ids[n_ids].kind = kind;
    return n_ids++;
}

static void out_alloc(const char *cmd, CUresult rc, int id)
{
    if (rc != CUDA_SUCCESS)
        ids[id].kind = 0; /* nothing to free */
    printf("{\"cmd\": \"%s\", \"rc\": %d, \"id\": %d}\n", cmd, rc, rc == CUDA_SUCCESS ? id : -1);
}

static CUresult free_id(int i)
{
    CUresult rc = CUDA_SUCCESS;
    switch (ids[i].kind) {
    case K_PTR: rc = api.cuMemFree_v2(ids[i].ptr); break;
    case K_PTR1: rc = api.cuMemFree((CUdeviceptr_v1)ids[i].ptr); break;
    case K_ASYNC: case K_POOLPTR: rc = api.cuMemFreeAsync(ids[i].ptr, NULL); break;
    case K_ARRAY: rc = api.cuArrayDestroy(ids[i].handle); break;
    case K_MIPMAP: rc = api.cuMipmappedArrayDestroy(ids[i].handle); break;
    case K_IPC: rc = api.cuIpcCloseMemHandle(ids[i].ptr); break;
    case K_VMM:
        if (ids[i].mapped) {
            rc = api.cuMemUnmap(ids[i].va, ids[i].size);
            ids[i].mapped = 0;
        }
        if (!ids[i].released && rc == CUDA_SUCCESS) {
            rc = api.cuMemRelease(ids[i].vmm);
            ids[i].released = 1;
        }
        break;
    default: return CUDA_ERROR_INVALID_VALUE;
    }
    if (rc == CUDA_SUCCESS)
        ids[i].kind = 0;
    return rc;
}

static long long now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

static void info(void)
{
    size_t f2 = 0, t2 = 0, dt2 = 0;
    unsigned f1 = 0, t1 = 0, dt1 = 0;
    CUresult r2 = api.cuMemGetInfo_v2(&f2, &t2);
    CUresult r1 = api.cuMemGetInfo ? api.cuMemGetInfo(&f1, &t1) : -1;
    CUresult r3 = api.cuDeviceTotalMem_v2(&dt2, g_device);
    CUresult r4 = api.cuDeviceTotalMem ? api.cuDeviceTotalMem(&dt1, g_device) : -1;
    printf("{\"cmd\": \"info\", \"rc\": %d, \"free\": %zu, \"total\": %zu, \"rc_v1\": %d, \"free_v1\": %u, "
           "\"total_v1\": %u, \"device_total\": %zu, \"rc_device_total\": %d, \"device_total_v1\": %u, "
           "\"rc_device_total_v1\": %d",
           r2, f2, t2, r1, f1, t1, dt2, r3, dt1, r4);
    /* NVML: the device whose UUID is this context's device's */
    void *nvml = dlopen("libnvidia-ml.so.1", RTLD_NOW | RTLD_LOCAL);
    if (nvml) {
        int (*init)(void) = dlsym(nvml, "nvmlInit_v2");
        int (*count)(unsigned *) = dlsym(nvml, "nvmlDeviceGetCount_v2");
        int (*by_index)(unsigned, void **) = dlsym(nvml, "nvmlDeviceGetHandleByIndex_v2");
        int (*get_uuid)(void *, char *, unsigned) = dlsym(nvml, "nvmlDeviceGetUUID");
        int (*mem)(void *, nvmlMemory_t *) = dlsym(nvml, "nvmlDeviceGetMemoryInfo");
        int (*mem2)(void *, nvmlMemory_v2_t *) = dlsym(nvml, "nvmlDeviceGetMemoryInfo_v2");
        CUuuid u;
        char want[64];
        api.cuDeviceGetUuid_v2(&u, g_device);
        unsigned char *b = (unsigned char *)u.bytes;
        snprintf(want, sizeof(want), "GPU-%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x",
                 b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7], b[8], b[9], b[10], b[11], b[12], b[13], b[14], b[15]);
        unsigned n = 0;
        init();
        count(&n);
        for (unsigned i = 0; i < n; i++) {
            void *dev;
            char text[96];
            by_index(i, &dev);
            get_uuid(dev, text, sizeof(text));
            if (strcmp(text, want) != 0)
                continue;
            nvmlMemory_t m;
            nvmlMemory_v2_t m2;
            memset(&m2, 0, sizeof(m2));
            m2.version = (unsigned)(sizeof(m2) | (2 << 24));
            int rn = mem(dev, &m), rn2 = mem2(dev, &m2);
            printf(", \"nvml_index\": %u, \"rc_nvml\": %d, \"nvml_total\": %llu, \"nvml_used\": %llu, \"nvml_free\": %llu"
                   ", \"rc_nvml_v2\": %d, \"nvml_v2_total\": %llu, \"nvml_v2_used\": %llu, \"nvml_v2_free\": %llu"
                   ", \"nvml_v2_reserved\": %llu",
                   i, rn, m.total, m.used, m.free, rn2, m2.total, m2.used, m2.free, m2.reserved);
        }
    }
    printf("}\n");
}

static int next_int(char **argv, int *i)
{
    return atoi(argv[++*i]);
}

static unsigned long long next_ull(char **argv, int *i)
{
    return strtoull(argv[++*i], NULL, 0);
}

int main(int argc, char **argv)
{
    setvbuf(stdout, NULL, _IOLBF, 0);
    int i = 1;
    for (; i < argc && strncmp(argv[i], "--", 2) == 0; i++) {
        if (strcmp(argv[i], "--mode") == 0) {
            const char *m = argv[++i];
            g_mode = !strcmp(m, "gpa") ? MODE_GPA : !strcmp(m, "gpa1") ? MODE_GPA1 : !strcmp(m, "direct") ? MODE_DIRECT : MODE_DLSYM;
#ifndef PROBE_DIRECT
            if (g_mode == MODE_DIRECT) {
                printf("{\"error\": \"--mode direct needs vcuda_probe_direct\"}\n");
                return 2;
            }
#endif
        } else if (strcmp(argv[i], "--device") == 0) {
            g_device = atoi(argv[++i]);
        } else if (strcmp(argv[i], "--version") == 0) {
            g_version = atoi(argv[++i]);
        } else if (strcmp(argv[i], "--ptds") == 0) {
            g_ptds = 1;
        }
    }
    load_api();
    CUcontext ctx;
    CUdevice dev;
    if (api.cuInit(0) != CUDA_SUCCESS || api.cuDeviceGet(&dev, g_device) != CUDA_SUCCESS ||
        api.cuCtxCreate_v2(&ctx, 0, dev) != CUDA_SUCCESS) {
        printf("{\"error\": \"no context on device %d\"}\n", g_device);
        return 3;
    }
    for (; i < argc; i++) {
        const char *c = argv[i];
        CUresult rc;
        if (!strcmp(c, "mem")) {
            int id = add(K_PTR);
            ids[id].size = next_ull(argv, &i);
            out_alloc(c, rc = api.cuMemAlloc_v2(&ids[id].ptr, ids[id].size), id);
        } else if (!strcmp(c, "mem1")) {
            int id = add(K_PTR1);
            CUdeviceptr_v1 p = 0;
            out_alloc(c, rc = api.cuMemAlloc(&p, (unsigned)next_ull(argv, &i)), id);
            ids[id].ptr = p;
        } else if (!strcmp(c, "managed")) {
            int id = add(K_PTR);
            out_alloc(c, api.cuMemAllocManaged(&ids[id].ptr, next_ull(argv, &i), 1), id);
        } else if (!strcmp(c, "async")) {
            int id = add(K_ASYNC);
            out_alloc(c, api.cuMemAllocAsync(&ids[id].ptr, next_ull(argv, &i), NULL), id);
        } else if (!strcmp(c, "pool")) {
            if (g_pool == NULL) {
                CUmemPoolProps props;
                memset(&props, 0, sizeof(props));
                props.allocType = 1;
                props.location.type = CU_MEM_LOCATION_TYPE_DEVICE;
                props.location.id = g_device;
                api.cuMemPoolCreate(&g_pool, &props);
            }
            int id = add(K_POOLPTR);
            out_alloc(c, api.cuMemAllocFromPoolAsync(&ids[id].ptr, next_ull(argv, &i), g_pool, NULL), id);
        } else if (!strcmp(c, "pitch") || !strcmp(c, "pitch1")) {
            size_t w = next_ull(argv, &i), h = next_ull(argv, &i), pitch = 0;
            int id;
            if (c[5] == '1') {
                CUdeviceptr_v1 p = 0;
                unsigned p1 = 0;
                id = add(K_PTR1);
                rc = api.cuMemAllocPitch(&p, &p1, (unsigned)w, (unsigned)h, 4);
                ids[id].ptr = p;
                pitch = p1;
            } else {
                id = add(K_PTR);
                rc = api.cuMemAllocPitch_v2(&ids[id].ptr, &pitch, w, h, 4);
            }
            printf("{\"cmd\": \"%s\", \"rc\": %d, \"id\": %d, \"pitch\": %zu}\n", c, rc, rc ? -1 : id, pitch);
        } else if (!strcmp(c, "array") || !strcmp(c, "array1")) {
            int id = add(K_ARRAY);
            size_t w = next_ull(argv, &i), h = next_ull(argv, &i);
            int fmt = next_int(argv, &i), ch = next_int(argv, &i);
            if (c[5] == '1') {
                CUDA_ARRAY_DESCRIPTOR_v1 d = {(unsigned)w, (unsigned)h, fmt, (unsigned)ch};
                rc = api.cuArrayCreate((CUarray *)&ids[id].handle, &d);
            } else {
                CUDA_ARRAY_DESCRIPTOR d = {w, h, fmt, (unsigned)ch};
                rc = api.cuArrayCreate_v2((CUarray *)&ids[id].handle, &d);
            }
            out_alloc(c, rc, id);
        } else if (!strcmp(c, "array3d")) {
            int id = add(K_ARRAY);
            CUDA_ARRAY3D_DESCRIPTOR d;
            d.Width = next_ull(argv, &i);
            d.Height = next_ull(argv, &i);
            d.Depth = next_ull(argv, &i);
            d.Format = next_int(argv, &i);
            d.NumChannels = next_int(argv, &i);
            d.Flags = next_int(argv, &i);
            out_alloc(c, api.cuArray3DCreate_v2((CUarray *)&ids[id].handle, &d), id);
        } else if (!strcmp(c, "array3d1")) {
            int id = add(K_ARRAY);
            CUDA_ARRAY3D_DESCRIPTOR_v1 d;
            d.Width = next_int(argv, &i);
            d.Height = next_int(argv, &i);
            d.Depth = next_int(argv, &i);
            d.Format = next_int(argv, &i);
            d.NumChannels = next_int(argv, &i);
            d.Flags = 0;
            out_alloc(c, api.cuArray3DCreate((CUarray *)&ids[id].handle, &d), id);
        } else if (!strcmp(c, "mipmap")) {
            int id = add(K_MIPMAP);
            CUDA_ARRAY3D_DESCRIPTOR d;
            d.Width = next_ull(argv, &i);
            d.Height = next_ull(argv, &i);
            d.Depth = next_ull(argv, &i);
            d.Format = next_int(argv, &i);
            d.NumChannels = next_int(argv, &i);
            unsigned levels = next_int(argv, &i);
            d.Flags = next_int(argv, &i);
            out_alloc(c, api.cuMipmappedArrayCreate((CUmipmappedArray *)&ids[id].handle, &d, levels), id);
        } else if (!strcmp(c, "vmm") || !strcmp(c, "vmm_create")) {
            int id = add(K_VMM);
            CUmemAllocationProp prop;
            memset(&prop, 0, sizeof(prop));
            prop.type = 1;
            prop.location.type = CU_MEM_LOCATION_TYPE_DEVICE;
            prop.location.id = g_device;
            ids[id].size = next_ull(argv, &i);
            rc = api.cuMemCreate(&ids[id].vmm, ids[id].size, &prop, 0);
            if (rc == CUDA_SUCCESS && !strcmp(c, "vmm")) {
                access_desc a = {CU_MEM_LOCATION_TYPE_DEVICE, {CU_MEM_LOCATION_TYPE_DEVICE, g_device}, 3};
                api.cuMemAddressReserve(&ids[id].va, ids[id].size, 0, 0, 0);
                rc = api.cuMemMap(ids[id].va, ids[id].size, 0, ids[id].vmm, 0);
                api.cuMemSetAccess(ids[id].va, ids[id].size, &a, 1);
                ids[id].mapped = rc == CUDA_SUCCESS;
            }
            out_alloc(c, rc, id);
        } else if (!strcmp(c, "map")) {
            int id = next_int(argv, &i);
            if (ids[id].va == 0)
                api.cuMemAddressReserve(&ids[id].va, ids[id].size, 0, 0, 0);
            rc = api.cuMemMap(ids[id].va, ids[id].size, 0, ids[id].vmm, 0);
            ids[id].mapped = rc == CUDA_SUCCESS;
            printf("{\"cmd\": \"map\", \"rc\": %d}\n", rc);
        } else if (!strcmp(c, "unmap")) {
            int id = next_int(argv, &i);
            rc = api.cuMemUnmap(ids[id].va, ids[id].size);
            ids[id].mapped = 0;
            printf("{\"cmd\": \"unmap\", \"rc\": %d}\n", rc);
        } else if (!strcmp(c, "release")) {
            int id = next_int(argv, &i);
            rc = api.cuMemRelease(ids[id].vmm);
            ids[id].released = 1;
            if (!ids[id].mapped)
                ids[id].kind = 0;
            printf("{\"cmd\": \"release\", \"rc\": %d}\n", rc);
        } else if (!strcmp(c, "export")) {
            int id = next_int(argv, &i);
            CUipcMemHandle h;
            rc = api.cuIpcGetMemHandle(&h, ids[id].ptr);
            printf("{\"cmd\": \"export\", \"rc\": %d, \"handle\": \"", rc);
            for (int k = 0; k < CU_IPC_HANDLE_SIZE; k++)
                printf("%02x", (unsigned char)h.reserved[k]);
            printf("\"}\n");
        } else if (!strcmp(c, "import")) {
            const char *hex = argv[++i];
            CUipcMemHandle h;
            for (int k = 0; k < CU_IPC_HANDLE_SIZE; k++) {
                unsigned v;
                sscanf(hex + 2 * k, "%2x", &v);
                h.reserved[k] = (char)v;
            }
            int id = add(K_IPC);
            out_alloc(c, api.cuIpcOpenMemHandle_v2(&ids[id].ptr, h, 1), id);
        } else if (!strcmp(c, "free")) {
            int id = next_int(argv, &i);
            printf("{\"cmd\": \"free\", \"rc\": %d}\n", free_id(id));
        } else if (!strcmp(c, "freeall")) {
            int bad = 0;
            for (int k = 0; k < n_ids; k++)
                if (ids[k].kind && free_id(k) != CUDA_SUCCESS)
                    bad++;
            printf("{\"cmd\": \"freeall\", \"failed\": %d}\n", bad);
        } else if (!strcmp(c, "fill")) {
            size_t chunk = next_ull(argv, &i);
            long long count = 0;
            for (;;) {
                int id = add(K_PTR);
                if (n_ids >= MAX_IDS || api.cuMemAlloc_v2(&ids[id].ptr, chunk) != CUDA_SUCCESS) {
                    n_ids--;
                    ids[id].kind = 0;
                    break;
                }
                ids[id].size = chunk;
                count++;
            }
            printf("{\"cmd\": \"fill\", \"count\": %lld, \"bytes\": %lld}\n", count, count * (long long)chunk);
        } else if (!strcmp(c, "info")) {
            info();
        } else if (!strcmp(c, "resolve")) {
            const char *name = argv[++i];
            void *fn = lookup(name);
            Dl_info di;
            const char *lib = fn && dladdr(fn, &di) && di.dli_fname ? di.dli_fname : "";
            const char *slash = strrchr(lib, '/');
            printf("{\"cmd\": \"resolve\", \"name\": \"%s\", \"found\": %s, \"lib\": \"%s\", \"symbol\": \"%s\"}\n",
                   name, fn ? "true" : "false", slash ? slash + 1 : lib, fn && di.dli_sname ? di.dli_sname : "");
        } else if (!strcmp(c, "bench")) {
            long long n = next_ull(argv, &i);
            size_t size = next_ull(argv, &i);
            static CUdeviceptr batch[1000];
            long long t_alloc = 0, t_free = 0, done = 0, bad = 0;
            while (done < n) {
                int k, m = n - done < 1000 ? (int)(n - done) : 1000;
                long long t0 = now_ns();
                for (k = 0; k < m; k++)
                    bad += api.cuMemAlloc_v2(&batch[k], size) != CUDA_SUCCESS;
                long long t1 = now_ns();
                for (k = 0; k < m; k++)
                    api.cuMemFree_v2(batch[k]);
                t_free += now_ns() - t1;
                t_alloc += t1 - t0;
                done += m;
            }
            printf("{\"cmd\": \"bench\", \"n\": %lld, \"alloc_ns\": %.1f, \"free_ns\": %.1f, \"failed\": %lld}\n",
                   n, (double)t_alloc / n, (double)t_free / n, bad);
        } else if (!strcmp(c, "wait")) {
            const char *f = argv[++i];
            while (access(f, F_OK) != 0)
                usleep(1000);
            printf("{\"cmd\": \"wait\"}\n");
        } else if (!strcmp(c, "touch")) {
            FILE *f = fopen(argv[++i], "w");
            if (f)
                fclose(f);
            printf("{\"cmd\": \"touch\"}\n");
        } else if (!strcmp(c, "sleep")) {
            usleep((useconds_t)next_int(argv, &i) * 1000);
            printf("{\"cmd\": \"sleep\"}\n");
        } else if (!strcmp(c, "hold")) {
            printf("{\"cmd\": \"hold\", \"pid\": %d}\n", getpid());
            for (;;)
                pause();
        } else if (!strcmp(c, "kill")) {
            kill(getpid(), SIGKILL);
        } else if (!strcmp(c, "exit")) {
            exit(next_int(argv, &i));
        } else {
            printf("{\"error\": \"unknown command %s\"}\n", c);
            return 2;
        }
    }
    return 0;
}
