/* libvcuda's driver entry points: LD_PRELOADed (or named in /etc/ld.so.preload) into every process
 * of a GPU container, it defines the CUDA driver functions that allocate, free, report memory or
 * launch work, and forwards each to the real libcuda.so.1 after accounting / throttling.
 *
 * A program reaches the driver three ways and all three land here:
 *   - linked with -lcuda: the preloaded definitions come first in symbol resolution;
 *   - dlopen("libcuda.so.1") + dlsym: dlsym itself is overridden and hands out these hooks for
 *     the names in the table below (the CUDA runtime finds cuGetProcAddress this way);
 *   - cuGetProcAddress / cuGetProcAddress_v2 (CUDA 11.3+ / 12+ entry-point lookup, how cudart 12
 *     and 13 get every driver function): the real lookup runs, and a pointer to a function we
 *     interpose is swapped for our hook of the same ABI variant (_v2, _v3, _ptsz).
 * Initialisation happens on whichever entry point is called first (pthread_once).
 * With no config file every hook forwards untouched. */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <limits.h>
#include <link.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "cuda_types.h"
#include "memory.h"
#include "throttle.h"
#include "vcuda.h"

/* ---- the real driver ---- */
#define REAL(ret, name, params) static ret(*real_##name) params;
REAL(CUresult, cuInit, (unsigned int))
REAL(CUresult, cuGetProcAddress, (const char *, void **, int, cuuint64_t))
REAL(CUresult, cuGetProcAddress_v2, (const char *, void **, int, cuuint64_t, CUdriverProcAddressQueryResult *))
REAL(CUresult, cuMemAlloc, (CUdeviceptr_v1 *, unsigned int))
REAL(CUresult, cuMemAlloc_v2, (CUdeviceptr *, size_t))
REAL(CUresult, cuMemAllocPitch, (CUdeviceptr_v1 *, unsigned int *, unsigned int, unsigned int, unsigned int))
REAL(CUresult, cuMemAllocPitch_v2, (CUdeviceptr *, size_t *, size_t, size_t, unsigned int))
REAL(CUresult, cuMemAllocManaged, (CUdeviceptr *, size_t, unsigned int))
REAL(CUresult, cuMemFree, (CUdeviceptr_v1))
REAL(CUresult, cuMemFree_v2, (CUdeviceptr))
REAL(CUresult, cuArrayCreate, (CUarray *, const CUDA_ARRAY_DESCRIPTOR_v1 *))
REAL(CUresult, cuArrayCreate_v2, (CUarray *, const CUDA_ARRAY_DESCRIPTOR *))
REAL(CUresult, cuArray3DCreate, (CUarray *, const CUDA_ARRAY3D_DESCRIPTOR_v1 *))
REAL(CUresult, cuArray3DCreate_v2, (CUarray *, const CUDA_ARRAY3D_DESCRIPTOR *))
REAL(CUresult, cuArrayDestroy, (CUarray))
REAL(CUresult, cuMipmappedArrayCreate, (CUmipmappedArray *, const CUDA_ARRAY3D_DESCRIPTOR *, unsigned int))
REAL(CUresult, cuMipmappedArrayDestroy, (CUmipmappedArray))
REAL(CUresult, cuMemCreate, (CUmemGenericAllocationHandle *, size_t, const CUmemAllocationProp *, unsigned long long))
REAL(CUresult, cuMemRelease, (CUmemGenericAllocationHandle))
REAL(CUresult, cuMemMap, (CUdeviceptr, size_t, size_t, CUmemGenericAllocationHandle, unsigned long long))
REAL(CUresult, cuMemUnmap, (CUdeviceptr, size_t))
REAL(CUresult, cuMemAllocAsync, (CUdeviceptr *, size_t, CUstream))
REAL(CUresult, cuMemAllocAsync_ptsz, (CUdeviceptr *, size_t, CUstream))
REAL(CUresult, cuMemAllocFromPoolAsync, (CUdeviceptr *, size_t, CUmemoryPool, CUstream))
REAL(CUresult, cuMemAllocFromPoolAsync_ptsz, (CUdeviceptr *, size_t, CUmemoryPool, CUstream))
REAL(CUresult, cuMemFreeAsync, (CUdeviceptr, CUstream))
REAL(CUresult, cuMemFreeAsync_ptsz, (CUdeviceptr, CUstream))
REAL(CUresult, cuMemPoolCreate, (CUmemoryPool *, const CUmemPoolProps *))
REAL(CUresult, cuMemPoolDestroy, (CUmemoryPool))
REAL(CUresult, cuIpcGetMemHandle, (CUipcMemHandle *, CUdeviceptr))
REAL(CUresult, cuIpcOpenMemHandle, (CUdeviceptr *, CUipcMemHandle, unsigned int))
REAL(CUresult, cuIpcOpenMemHandle_v2, (CUdeviceptr *, CUipcMemHandle, unsigned int))
REAL(CUresult, cuIpcCloseMemHandle, (CUdeviceptr))
REAL(CUresult, cuMemGetInfo, (unsigned int *, unsigned int *))
REAL(CUresult, cuMemGetInfo_v2, (size_t *, size_t *))
REAL(CUresult, cuDeviceTotalMem, (unsigned int *, CUdevice))
REAL(CUresult, cuDeviceTotalMem_v2, (size_t *, CUdevice))
REAL(CUresult, cuLaunchKernel, (CUfunction, unsigned, unsigned, unsigned, unsigned, unsigned, unsigned, unsigned, CUstream, void **, void **))
REAL(CUresult, cuLaunchKernel_ptsz, (CUfunction, unsigned, unsigned, unsigned, unsigned, unsigned, unsigned, unsigned, CUstream, void **, void **))
REAL(CUresult, cuLaunchKernelEx, (const CUlaunchConfig *, CUfunction, void **, void **))
REAL(CUresult, cuLaunchKernelEx_ptsz, (const CUlaunchConfig *, CUfunction, void **, void **))
REAL(CUresult, cuLaunchCooperativeKernel, (CUfunction, unsigned, unsigned, unsigned, unsigned, unsigned, unsigned, unsigned, CUstream, void **))
REAL(CUresult, cuLaunchCooperativeKernel_ptsz, (CUfunction, unsigned, unsigned, unsigned, unsigned, unsigned, unsigned, unsigned, CUstream, void **))
REAL(CUresult, cuGraphLaunch, (CUgraphExec, CUstream))
REAL(CUresult, cuGraphLaunch_ptsz, (CUgraphExec, CUstream))
/* not interposed, used by the accounting */
REAL(CUresult, cuCtxGetDevice, (CUdevice *))
REAL(CUresult, cuDeviceGetUuid, (CUuuid *, CUdevice))
REAL(CUresult, cuDeviceGetUuid_v2, (CUuuid *, CUdevice))
REAL(CUresult, cuMemGetAddressRange_v2, (CUdeviceptr *, size_t *, CUdeviceptr))

/* ---- the hooks, declared for the table ---- */
#define HOOK(ret, name, params) VCUDA_EXPORT ret name params;
HOOK(CUresult, cuInit, (unsigned int))
HOOK(CUresult, cuGetProcAddress, (const char *, void **, int, cuuint64_t))
HOOK(CUresult, cuGetProcAddress_v2, (const char *, void **, int, cuuint64_t, CUdriverProcAddressQueryResult *))
HOOK(CUresult, cuMemAlloc, (CUdeviceptr_v1 *, unsigned int))
HOOK(CUresult, cuMemAlloc_v2, (CUdeviceptr *, size_t))
HOOK(CUresult, cuMemAllocPitch, (CUdeviceptr_v1 *, unsigned int *, unsigned int, unsigned int, unsigned int))
HOOK(CUresult, cuMemAllocPitch_v2, (CUdeviceptr *, size_t *, size_t, size_t, unsigned int))
HOOK(CUresult, cuMemAllocManaged, (CUdeviceptr *, size_t, unsigned int))
HOOK(CUresult, cuMemFree, (CUdeviceptr_v1))
HOOK(CUresult, cuMemFree_v2, (CUdeviceptr))
HOOK(CUresult, cuArrayCreate, (CUarray *, const CUDA_ARRAY_DESCRIPTOR_v1 *))
HOOK(CUresult, cuArrayCreate_v2, (CUarray *, const CUDA_ARRAY_DESCRIPTOR *))
HOOK(CUresult, cuArray3DCreate, (CUarray *, const CUDA_ARRAY3D_DESCRIPTOR_v1 *))
HOOK(CUresult, cuArray3DCreate_v2, (CUarray *, const CUDA_ARRAY3D_DESCRIPTOR *))
HOOK(CUresult, cuArrayDestroy, (CUarray))
HOOK(CUresult, cuMipmappedArrayCreate, (CUmipmappedArray *, const CUDA_ARRAY3D_DESCRIPTOR *, unsigned int))
HOOK(CUresult, cuMipmappedArrayDestroy, (CUmipmappedArray))
HOOK(CUresult, cuMemCreate, (CUmemGenericAllocationHandle *, size_t, const CUmemAllocationProp *, unsigned long long))
HOOK(CUresult, cuMemRelease, (CUmemGenericAllocationHandle))
HOOK(CUresult, cuMemMap, (CUdeviceptr, size_t, size_t, CUmemGenericAllocationHandle, unsigned long long))
HOOK(CUresult, cuMemUnmap, (CUdeviceptr, size_t))
HOOK(CUresult, cuMemAllocAsync, (CUdeviceptr *, size_t, CUstream))
HOOK(CUresult, cuMemAllocAsync_ptsz, (CUdeviceptr *, size_t, CUstream))
HOOK(CUresult, cuMemAllocFromPoolAsync, (CUdeviceptr *, size_t, CUmemoryPool, CUstream))
HOOK(CUresult, cuMemAllocFromPoolAsync_ptsz, (CUdeviceptr *, size_t, CUmemoryPool, CUstream))
HOOK(CUresult, cuMemFreeAsync, (CUdeviceptr, CUstream))
HOOK(CUresult, cuMemFreeAsync_ptsz, (CUdeviceptr, CUstream))
HOOK(CUresult, cuMemPoolCreate, (CUmemoryPool *, const CUmemPoolProps *))
HOOK(CUresult, cuMemPoolDestroy, (CUmemoryPool))
HOOK(CUresult, cuIpcGetMemHandle, (CUipcMemHandle *, CUdeviceptr))
HOOK(CUresult, cuIpcOpenMemHandle, (CUdeviceptr *, CUipcMemHandle, unsigned int))
HOOK(CUresult, cuIpcOpenMemHandle_v2, (CUdeviceptr *, CUipcMemHandle, unsigned int))
HOOK(CUresult, cuIpcCloseMemHandle, (CUdeviceptr))
HOOK(CUresult, cuMemGetInfo, (unsigned int *, unsigned int *))
HOOK(CUresult, cuMemGetInfo_v2, (size_t *, size_t *))
HOOK(CUresult, cuDeviceTotalMem, (unsigned int *, CUdevice))
HOOK(CUresult, cuDeviceTotalMem_v2, (size_t *, CUdevice))
HOOK(CUresult, cuLaunchKernel, (CUfunction, unsigned, unsigned, unsigned, unsigned, unsigned, unsigned, unsigned, CUstream, void **, void **))
HOOK(CUresult, cuLaunchKernel_ptsz, (CUfunction, unsigned, unsigned, unsigned, unsigned, unsigned, unsigned, unsigned, CUstream, void **, void **))
HOOK(CUresult, cuLaunchKernelEx, (const CUlaunchConfig *, CUfunction, void **, void **))
HOOK(CUresult, cuLaunchKernelEx_ptsz, (const CUlaunchConfig *, CUfunction, void **, void **))
HOOK(CUresult, cuLaunchCooperativeKernel, (CUfunction, unsigned, unsigned, unsigned, unsigned, unsigned, unsigned, unsigned, CUstream, void **))
HOOK(CUresult, cuLaunchCooperativeKernel_ptsz, (CUfunction, unsigned, unsigned, unsigned, unsigned, unsigned, unsigned, unsigned, CUstream, void **))
HOOK(CUresult, cuGraphLaunch, (CUgraphExec, CUstream))
HOOK(CUresult, cuGraphLaunch_ptsz, (CUgraphExec, CUstream))

/* Every interposed entry point: its exported name, the base name cuGetProcAddress is asked for,
 * the CUDA version that introduced this ABI variant (cudaTypedefs.h's PFN_<name>_v<version>),
 * and whether it is the per-thread-default-stream variant. */
struct hook {
    const char *name;
    const char *family;
    int version;
    int ptsz;
    void *hook;
    void **real;
};

#define H(name, family, version, ptsz) {#name, family, version, ptsz, (void *)name, (void **)&real_##name}
static void *g_no_real; /* NVML entries: nvml.c resolves the real ones itself */
static const struct hook g_hooks[] = {
    H(cuInit, "cuInit", 2000, 0),
    H(cuGetProcAddress, "cuGetProcAddress", 11030, 0),
    H(cuGetProcAddress_v2, "cuGetProcAddress", 12000, 0),
    H(cuMemAlloc, "cuMemAlloc", 2000, 0),
    H(cuMemAlloc_v2, "cuMemAlloc", 3020, 0),
    H(cuMemAllocPitch, "cuMemAllocPitch", 2000, 0),
    H(cuMemAllocPitch_v2, "cuMemAllocPitch", 3020, 0),
    H(cuMemAllocManaged, "cuMemAllocManaged", 6000, 0),
    H(cuMemFree, "cuMemFree", 2000, 0),
    H(cuMemFree_v2, "cuMemFree", 3020, 0),
    H(cuArrayCreate, "cuArrayCreate", 2000, 0),
    H(cuArrayCreate_v2, "cuArrayCreate", 3020, 0),
    H(cuArray3DCreate, "cuArray3DCreate", 2000, 0),
    H(cuArray3DCreate_v2, "cuArray3DCreate", 3020, 0),
    H(cuArrayDestroy, "cuArrayDestroy", 2000, 0),
    H(cuMipmappedArrayCreate, "cuMipmappedArrayCreate", 5000, 0),
    H(cuMipmappedArrayDestroy, "cuMipmappedArrayDestroy", 5000, 0),
    H(cuMemCreate, "cuMemCreate", 10020, 0),
    H(cuMemRelease, "cuMemRelease", 10020, 0),
    H(cuMemMap, "cuMemMap", 10020, 0),
    H(cuMemUnmap, "cuMemUnmap", 10020, 0),
    H(cuMemAllocAsync, "cuMemAllocAsync", 11020, 0),
    H(cuMemAllocAsync_ptsz, "cuMemAllocAsync", 11020, 1),
    H(cuMemAllocFromPoolAsync, "cuMemAllocFromPoolAsync", 11020, 0),
    H(cuMemAllocFromPoolAsync_ptsz, "cuMemAllocFromPoolAsync", 11020, 1),
    H(cuMemFreeAsync, "cuMemFreeAsync", 11020, 0),
    H(cuMemFreeAsync_ptsz, "cuMemFreeAsync", 11020, 1),
    H(cuMemPoolCreate, "cuMemPoolCreate", 11020, 0),
    H(cuMemPoolDestroy, "cuMemPoolDestroy", 11020, 0),
    H(cuIpcGetMemHandle, "cuIpcGetMemHandle", 4010, 0),
    H(cuIpcOpenMemHandle, "cuIpcOpenMemHandle", 4010, 0),
    H(cuIpcOpenMemHandle_v2, "cuIpcOpenMemHandle", 11000, 0),
    H(cuIpcCloseMemHandle, "cuIpcCloseMemHandle", 4010, 0),
    H(cuMemGetInfo, "cuMemGetInfo", 2000, 0),
    H(cuMemGetInfo_v2, "cuMemGetInfo", 3020, 0),
    H(cuDeviceTotalMem, "cuDeviceTotalMem", 2000, 0),
    H(cuDeviceTotalMem_v2, "cuDeviceTotalMem", 3020, 0),
    H(cuLaunchKernel, "cuLaunchKernel", 4000, 0),
    H(cuLaunchKernel_ptsz, "cuLaunchKernel", 7000, 1),
    H(cuLaunchKernelEx, "cuLaunchKernelEx", 11060, 0),
    H(cuLaunchKernelEx_ptsz, "cuLaunchKernelEx", 11060, 1),
    H(cuLaunchCooperativeKernel, "cuLaunchCooperativeKernel", 9000, 0),
    H(cuLaunchCooperativeKernel_ptsz, "cuLaunchCooperativeKernel", 9000, 1),
    H(cuGraphLaunch, "cuGraphLaunch", 10000, 0),
    H(cuGraphLaunch_ptsz, "cuGraphLaunch", 10000, 1),
    /* NVML: handed out by dlsym only (NVML has no cuGetProcAddress); nvml.c resolves its own */
    {"nvmlDeviceGetMemoryInfo", "", 0, 0, (void *)nvmlDeviceGetMemoryInfo, &g_no_real},
    {"nvmlDeviceGetMemoryInfo_v2", "", 0, 0, (void *)nvmlDeviceGetMemoryInfo_v2, &g_no_real},
};
#define N_HOOKS (sizeof(g_hooks) / sizeof(g_hooks[0]))

static const struct hook *hook_named(const char *name)
{
    if (name == NULL || !((name[0] == 'c' && name[1] == 'u') || (name[0] == 'n' && name[1] == 'v')))
        return NULL;
    for (size_t i = 0; i < N_HOOKS; i++)
        if (strcmp(g_hooks[i].name, name) == 0)
            return &g_hooks[i];
    return NULL;
}

static const struct hook *hook_at(const void *fn)
{
    for (size_t i = 0; i < N_HOOKS; i++)
        if (g_hooks[i].hook == fn)
            return &g_hooks[i];
    return NULL;
}

/* ---- dlsym ---- */
static vcuda_dlsym_fn g_real_dlsym;

vcuda_dlsym_fn vcuda_real_dlsym(void)
{
    vcuda_dlsym_fn fn = __atomic_load_n(&g_real_dlsym, __ATOMIC_ACQUIRE);
    if (fn == NULL) {
        /* libc's own (glibc >= 2.34 keeps it in libc, older ones in libdl at the architecture's
         * base version: GLIBC_2.2.5 on x86_64, GLIBC_2.17 on aarch64 and ppc64le, GLIBC_2.0 on
         * i386; without these, an older aarch64 glibc found none and aborted the program) */
        static const char *const versions[] = {"GLIBC_2.34", "GLIBC_2.2.5", "GLIBC_2.17", "GLIBC_2.0"};
        for (size_t i = 0; fn == NULL && i < sizeof(versions) / sizeof(versions[0]); i++)
            fn = (vcuda_dlsym_fn)dlvsym(RTLD_NEXT, "dlsym", versions[i]);
        if (fn == NULL) {
            fprintf(stderr, "gaia vcuda: cannot find libc's dlsym\n");
            abort();
        }
        __atomic_store_n(&g_real_dlsym, fn, __ATOMIC_RELEASE);
    }
    return fn;
}

/* dlsym(RTLD_NEXT, name) means "after the CALLER in load order"; called from here it would mean
 * after libvcuda, which is wrong for every library loaded after it (a wrapper of puts loaded later
 * would find itself and recurse). So walk the link map from the caller's object onwards, taking the
 * first object that itself defines the name. A link_map is not a usable dlsym handle for objects
 * loaded at startup (no search list yet), so each is opened by name with RTLD_NOLOAD. */
static void *dlsym_next(const void *caller, const char *name)
{
    vcuda_dlsym_fn rd = vcuda_real_dlsym();
    Dl_info info;
    struct link_map *caller_map = NULL;
    if (dladdr1(caller, &info, (void **)&caller_map, RTLD_DL_LINKMAP) == 0 || caller_map == NULL)
        return rd(RTLD_NEXT, name);
    for (struct link_map *m = caller_map->l_next; m != NULL; m = m->l_next) {
        if (m->l_name == NULL || m->l_name[0] == '\0')
            continue;
        void *handle = dlopen(m->l_name, RTLD_LAZY | RTLD_NOLOAD);
        if (handle == NULL)
            continue; /* the vDSO */
        void *sym = rd(handle, name);
        dlclose(handle);
        if (sym == NULL)
            continue;
        struct link_map *owner = NULL;
        if (dladdr1(sym, &info, (void **)&owner, RTLD_DL_LINKMAP) != 0 && owner == m)
            return sym;
    }
    return NULL;
}

VCUDA_EXPORT void *dlsym(void *handle, const char *name)
{
    void *sym;
    if (handle == RTLD_NEXT)
        sym = dlsym_next(__builtin_return_address(0), name);
    else
        sym = vcuda_real_dlsym()(handle, name);
    if (sym != NULL) {
        const struct hook *h = hook_named(name);
        if (h != NULL)
            return h->hook;
    }
    return sym;
}

/* ---- initialisation ---- */
static pthread_once_t g_config_once = PTHREAD_ONCE_INIT;
static pthread_once_t g_cuda_once = PTHREAD_ONCE_INIT;
static struct vcuda_config g_cfg;
static void *g_libcuda;

static CUresult drv_ctx_get_device(CUdevice *dev)
{
    return real_cuCtxGetDevice ? real_cuCtxGetDevice(dev) : CUDA_ERROR_NOT_INITIALIZED;
}

static CUresult drv_device_get_uuid(CUuuid *uuid, CUdevice dev)
{
    if (real_cuDeviceGetUuid_v2)
        return real_cuDeviceGetUuid_v2(uuid, dev);
    return real_cuDeviceGetUuid ? real_cuDeviceGetUuid(uuid, dev) : CUDA_ERROR_NOT_FOUND;
}

static void init_config(void)
{
    vcuda_config_load(&g_cfg);
    struct vcuda_mem_driver drv = {drv_ctx_get_device, drv_device_get_uuid};
    vcuda_mem_init(&g_cfg, &drv);
}

const struct vcuda_config *vcuda_init_config(void)
{
    pthread_once(&g_config_once, init_config);
    return &g_cfg;
}

void *vcuda_real_symbol(const char *name)
{
    void *lib = g_libcuda;
    if (lib == NULL)
        lib = dlopen("libcuda.so.1", RTLD_LAZY | RTLD_NOLOAD);
    return lib != NULL ? vcuda_real_dlsym()(lib, name) : NULL;
}

#define RESOLVE(name) \
    if (real_##name == NULL) \
        real_##name = rd(g_libcuda, #name);

static void init_cuda(void)
{
    vcuda_init_config();
    const char *path = secure_getenv("GAIA_VCUDA_LIBCUDA"); /* the driver's path when not libcuda.so.1 */
    g_libcuda = dlopen(path && *path ? path : "libcuda.so.1", RTLD_LAZY | RTLD_LOCAL);
    if (g_libcuda == NULL) {
        fprintf(stderr, "gaia vcuda: %s\n", dlerror());
        return;
    }
    vcuda_dlsym_fn rd = vcuda_real_dlsym();
    for (size_t i = 0; i < N_HOOKS; i++)
        if (g_hooks[i].family[0] != '\0' && *g_hooks[i].real == NULL)
            *g_hooks[i].real = rd(g_libcuda, g_hooks[i].name);
    RESOLVE(cuCtxGetDevice)
    RESOLVE(cuDeviceGetUuid)
    RESOLVE(cuDeviceGetUuid_v2)
    RESOLVE(cuMemGetAddressRange_v2)
    if (g_cfg.enabled)
        vcuda_throttle_init(&g_cfg);
}

__attribute__((destructor)) static void fini(void)
{
    vcuda_mem_exit(); /* what this process still holds goes back to the container */
}

#define NEED(name) \
    do { \
        pthread_once(&g_cuda_once, init_cuda); \
        if (real_##name == NULL) \
            return CUDA_ERROR_NOT_INITIALIZED; \
    } while (0)

/* ---- accounting helpers ---- */
/* A free: out of the table first (a concurrent allocation may get the same address the moment
 * the driver frees it), back in when the driver refused. */
#define FREE_CALL(kind, id, call) \
    do { \
        if (!vcuda_mem_active()) \
            return call; \
        struct vcuda_alloc a_; \
        int known_ = vcuda_mem_untrack(kind, id, &a_) == 0; \
        CUresult rc_ = call; \
        if (known_) { \
            if (rc_ == CUDA_SUCCESS) { \
                if (kind == VCUDA_PTR && a_.aux != 0) \
                    vcuda_mem_ipc_forget(a_.aux); \
                vcuda_mem_unreserve(a_.rdev, a_.bytes); \
            } else { \
                vcuda_mem_track(kind, id, a_.rdev, a_.bytes, a_.aux); \
            } \
        } \
        return rc_; \
    } while (0)

/* An allocation of a size known before the call: reserve, call, roll back or record. */
#define ALLOC_CALL(kind, rdev_expr, bytes_expr, call, id_expr) \
    do { \
        if (!vcuda_mem_active()) \
            return call; \
        int rdev_ = (rdev_expr); \
        /* a size_t past 2^63 stays huge (refused), never a negative that charges nothing */ \
        unsigned long long ubytes_ = (unsigned long long)(bytes_expr); \
        long long bytes_ = ubytes_ > (unsigned long long)LLONG_MAX ? LLONG_MAX : (long long)ubytes_; \
        CUresult rc_ = vcuda_mem_reserve(rdev_, bytes_); \
        if (rc_ != CUDA_SUCCESS) \
            return rc_; \
        rc_ = call; \
        if (rc_ != CUDA_SUCCESS) { \
            vcuda_mem_unreserve(rdev_, bytes_); \
            return rc_; \
        } \
        vcuda_mem_track(kind, (uint64_t)(id_expr), rdev_, bytes_, 0); \
        return rc_; \
    } while (0)

/* ---- entry points ---- */
CUresult cuInit(unsigned int flags)
{
    NEED(cuInit);
    return real_cuInit(flags);
}

CUresult cuMemAlloc(CUdeviceptr_v1 *dptr, unsigned int bytesize)
{
    NEED(cuMemAlloc);
    ALLOC_CALL(VCUDA_PTR, vcuda_mem_current_rdev(), bytesize, real_cuMemAlloc(dptr, bytesize), *dptr);
}

CUresult cuMemAlloc_v2(CUdeviceptr *dptr, size_t bytesize)
{
    NEED(cuMemAlloc_v2);
    ALLOC_CALL(VCUDA_PTR, vcuda_mem_current_rdev(), bytesize, real_cuMemAlloc_v2(dptr, bytesize), *dptr);
}

CUresult cuMemAllocManaged(CUdeviceptr *dptr, size_t bytesize, unsigned int flags)
{
    /* managed memory may migrate to the host, but it can all be resident on the device at once:
     * it is charged to the current device in full */
    NEED(cuMemAllocManaged);
    ALLOC_CALL(VCUDA_PTR, vcuda_mem_current_rdev(), bytesize,
               real_cuMemAllocManaged(dptr, bytesize, flags), *dptr);
}

/* Pitch: reserve WidthInBytes rounded up to VCUDA_PITCH_ALIGN x Height, then settle on the
 * driver's pitch x Height (more: reserve the difference or undo the allocation; less: give the
 * difference back). */
static CUresult settle_pitch(int rdev, long long reserved, long long actual, CUdeviceptr ptr, int v1)
{
    if (actual > reserved && vcuda_mem_reserve(rdev, actual - reserved) != CUDA_SUCCESS) {
        if (v1)
            real_cuMemFree((CUdeviceptr_v1)ptr);
        else
            real_cuMemFree_v2(ptr);
        vcuda_mem_unreserve(rdev, reserved);
        return CUDA_ERROR_OUT_OF_MEMORY;
    }
    if (actual < reserved)
        vcuda_mem_unreserve(rdev, reserved - actual);
    vcuda_mem_track(VCUDA_PTR, ptr, rdev, actual, 0);
    return CUDA_SUCCESS;
}

static long long pitch_estimate(size_t width, size_t height)
{
    /* saturating (LLONG_MAX is refused by the reserve): a wrapped product would charge nothing */
    unsigned long long pitch = (width / VCUDA_PITCH_ALIGN + (width % VCUDA_PITCH_ALIGN != 0)) *
                               (unsigned long long)VCUDA_PITCH_ALIGN, bytes;
    if (__builtin_mul_overflow(pitch, (unsigned long long)(height ? height : 1), &bytes) ||
        bytes > (unsigned long long)LLONG_MAX)
        return LLONG_MAX;
    return (long long)bytes;
}

/* The driver's pitch x height, saturating like pitch_estimate. */
static long long pitch_bytes(size_t pitch, size_t height)
{
    unsigned long long bytes;
    if (__builtin_mul_overflow((unsigned long long)pitch, (unsigned long long)height, &bytes) ||
        bytes > (unsigned long long)LLONG_MAX)
        return LLONG_MAX;
    return (long long)bytes;
}

CUresult cuMemAllocPitch_v2(CUdeviceptr *dptr, size_t *pitch, size_t width, size_t height,
                            unsigned int elem)
{
    NEED(cuMemAllocPitch_v2);
    if (!vcuda_mem_active())
        return real_cuMemAllocPitch_v2(dptr, pitch, width, height, elem);
    int rdev = vcuda_mem_current_rdev();
    long long est = pitch_estimate(width, height);
    CUresult rc = vcuda_mem_reserve(rdev, est);
    if (rc != CUDA_SUCCESS)
        return rc;
    rc = real_cuMemAllocPitch_v2(dptr, pitch, width, height, elem);
    if (rc != CUDA_SUCCESS) {
        vcuda_mem_unreserve(rdev, est);
        return rc;
    }
    return settle_pitch(rdev, est, pitch_bytes(*pitch, height), *dptr, 0);
}

CUresult cuMemAllocPitch(CUdeviceptr_v1 *dptr, unsigned int *pitch, unsigned int width,
                         unsigned int height, unsigned int elem)
{
    NEED(cuMemAllocPitch);
    if (!vcuda_mem_active())
        return real_cuMemAllocPitch(dptr, pitch, width, height, elem);
    int rdev = vcuda_mem_current_rdev();
    long long est = pitch_estimate(width, height);
    CUresult rc = vcuda_mem_reserve(rdev, est);
    if (rc != CUDA_SUCCESS)
        return rc;
    rc = real_cuMemAllocPitch(dptr, pitch, width, height, elem);
    if (rc != CUDA_SUCCESS) {
        vcuda_mem_unreserve(rdev, est);
        return rc;
    }
    return settle_pitch(rdev, est, pitch_bytes(*pitch, height), *dptr, 1);
}

CUresult cuMemFree(CUdeviceptr_v1 dptr)
{
    NEED(cuMemFree);
    FREE_CALL(VCUDA_PTR, dptr, real_cuMemFree(dptr));
}

CUresult cuMemFree_v2(CUdeviceptr dptr)
{
    NEED(cuMemFree_v2);
    FREE_CALL(VCUDA_PTR, dptr, real_cuMemFree_v2(dptr));
}

/* ---- arrays (sizes: memory.h) ---- */
CUresult cuArrayCreate(CUarray *handle, const CUDA_ARRAY_DESCRIPTOR_v1 *d)
{
    NEED(cuArrayCreate);
    if (d == NULL)
        return real_cuArrayCreate(handle, d);
    ALLOC_CALL(VCUDA_ARRAY, vcuda_mem_current_rdev(),
               vcuda_array_bytes(d->Format, d->NumChannels, d->Width, d->Height, 1),
               real_cuArrayCreate(handle, d), *handle);
}

CUresult cuArrayCreate_v2(CUarray *handle, const CUDA_ARRAY_DESCRIPTOR *d)
{
    NEED(cuArrayCreate_v2);
    if (d == NULL)
        return real_cuArrayCreate_v2(handle, d);
    ALLOC_CALL(VCUDA_ARRAY, vcuda_mem_current_rdev(),
               vcuda_array_bytes(d->Format, d->NumChannels, d->Width, d->Height, 1),
               real_cuArrayCreate_v2(handle, d), *handle);
}

CUresult cuArray3DCreate(CUarray *handle, const CUDA_ARRAY3D_DESCRIPTOR_v1 *d)
{
    NEED(cuArray3DCreate);
    if (d == NULL)
        return real_cuArray3DCreate(handle, d);
    CUDA_ARRAY3D_DESCRIPTOR wide = {d->Width, d->Height, d->Depth, d->Format, d->NumChannels, d->Flags};
    ALLOC_CALL(VCUDA_ARRAY, vcuda_mem_current_rdev(), vcuda_array3d_bytes(&wide),
               real_cuArray3DCreate(handle, d), *handle);
}

CUresult cuArray3DCreate_v2(CUarray *handle, const CUDA_ARRAY3D_DESCRIPTOR *d)
{
    NEED(cuArray3DCreate_v2);
    if (d == NULL)
        return real_cuArray3DCreate_v2(handle, d);
    ALLOC_CALL(VCUDA_ARRAY, vcuda_mem_current_rdev(), vcuda_array3d_bytes(d),
               real_cuArray3DCreate_v2(handle, d), *handle);
}

CUresult cuArrayDestroy(CUarray handle)
{
    NEED(cuArrayDestroy);
    FREE_CALL(VCUDA_ARRAY, (uint64_t)(uintptr_t)handle, real_cuArrayDestroy(handle));
}

CUresult cuMipmappedArrayCreate(CUmipmappedArray *handle, const CUDA_ARRAY3D_DESCRIPTOR *d,
                                unsigned int levels)
{
    NEED(cuMipmappedArrayCreate);
    if (d == NULL)
        return real_cuMipmappedArrayCreate(handle, d, levels);
    ALLOC_CALL(VCUDA_MIPMAP, vcuda_mem_current_rdev(), vcuda_mipmap_bytes(d, levels),
               real_cuMipmappedArrayCreate(handle, d, levels), *handle);
}

CUresult cuMipmappedArrayDestroy(CUmipmappedArray handle)
{
    NEED(cuMipmappedArrayDestroy);
    FREE_CALL(VCUDA_MIPMAP, (uint64_t)(uintptr_t)handle, real_cuMipmappedArrayDestroy(handle));
}

/* ---- virtual memory management: charged at create, given back at release + last unmap ---- */
CUresult cuMemCreate(CUmemGenericAllocationHandle *handle, size_t size,
                     const CUmemAllocationProp *prop, unsigned long long flags)
{
    NEED(cuMemCreate);
    if (!vcuda_mem_active() || prop == NULL || prop->location.type != CU_MEM_LOCATION_TYPE_DEVICE)
        return real_cuMemCreate(handle, size, prop, flags); /* host memory is not the GPU's */
    ALLOC_CALL(VCUDA_VMM, vcuda_mem_rdev(prop->location.id), size,
               real_cuMemCreate(handle, size, prop, flags), *handle);
}

CUresult cuMemRelease(CUmemGenericAllocationHandle handle)
{
    NEED(cuMemRelease);
    CUresult rc = real_cuMemRelease(handle);
    if (rc == CUDA_SUCCESS && vcuda_mem_active())
        vcuda_mem_vmm_release(handle);
    return rc;
}

CUresult cuMemMap(CUdeviceptr ptr, size_t size, size_t offset, CUmemGenericAllocationHandle handle,
                  unsigned long long flags)
{
    NEED(cuMemMap);
    CUresult rc = real_cuMemMap(ptr, size, offset, handle, flags);
    if (rc == CUDA_SUCCESS && vcuda_mem_active())
        vcuda_mem_vmm_map(ptr, size, handle);
    return rc;
}

CUresult cuMemUnmap(CUdeviceptr ptr, size_t size)
{
    NEED(cuMemUnmap);
    CUresult rc = real_cuMemUnmap(ptr, size);
    if (rc == CUDA_SUCCESS && vcuda_mem_active())
        vcuda_mem_vmm_unmap(ptr, size);
    return rc;
}

/* ---- stream-ordered allocation and pools: charged when asked for, given back when freed ---- */
static int pool_rdev(CUmemoryPool pool)
{
    struct vcuda_alloc a;
    if (vcuda_mem_lookup(VCUDA_POOL, (uint64_t)(uintptr_t)pool, &a) == 0)
        return a.rdev;
    return vcuda_mem_current_rdev(); /* a device's default pool */
}

CUresult cuMemAllocAsync(CUdeviceptr *dptr, size_t bytesize, CUstream stream)
{
    NEED(cuMemAllocAsync);
    ALLOC_CALL(VCUDA_PTR, vcuda_mem_current_rdev(), bytesize,
               real_cuMemAllocAsync(dptr, bytesize, stream), *dptr);
}

CUresult cuMemAllocAsync_ptsz(CUdeviceptr *dptr, size_t bytesize, CUstream stream)
{
    NEED(cuMemAllocAsync_ptsz);
    ALLOC_CALL(VCUDA_PTR, vcuda_mem_current_rdev(), bytesize,
               real_cuMemAllocAsync_ptsz(dptr, bytesize, stream), *dptr);
}

CUresult cuMemAllocFromPoolAsync(CUdeviceptr *dptr, size_t bytesize, CUmemoryPool pool, CUstream stream)
{
    NEED(cuMemAllocFromPoolAsync);
    ALLOC_CALL(VCUDA_PTR, pool_rdev(pool), bytesize,
               real_cuMemAllocFromPoolAsync(dptr, bytesize, pool, stream), *dptr);
}

CUresult cuMemAllocFromPoolAsync_ptsz(CUdeviceptr *dptr, size_t bytesize, CUmemoryPool pool,
                                      CUstream stream)
{
    NEED(cuMemAllocFromPoolAsync_ptsz);
    ALLOC_CALL(VCUDA_PTR, pool_rdev(pool), bytesize,
               real_cuMemAllocFromPoolAsync_ptsz(dptr, bytesize, pool, stream), *dptr);
}

CUresult cuMemFreeAsync(CUdeviceptr dptr, CUstream stream)
{
    NEED(cuMemFreeAsync);
    FREE_CALL(VCUDA_PTR, dptr, real_cuMemFreeAsync(dptr, stream));
}

CUresult cuMemFreeAsync_ptsz(CUdeviceptr dptr, CUstream stream)
{
    NEED(cuMemFreeAsync_ptsz);
    FREE_CALL(VCUDA_PTR, dptr, real_cuMemFreeAsync_ptsz(dptr, stream));
}

CUresult cuMemPoolCreate(CUmemoryPool *pool, const CUmemPoolProps *props)
{
    NEED(cuMemPoolCreate);
    CUresult rc = real_cuMemPoolCreate(pool, props);
    if (rc == CUDA_SUCCESS && vcuda_mem_active() && props != NULL &&
        props->location.type == CU_MEM_LOCATION_TYPE_DEVICE)
        vcuda_mem_track(VCUDA_POOL, (uint64_t)(uintptr_t)*pool, vcuda_mem_rdev(props->location.id), 0, 0);
    return rc;
}

CUresult cuMemPoolDestroy(CUmemoryPool pool)
{
    NEED(cuMemPoolDestroy);
    CUresult rc = real_cuMemPoolDestroy(pool);
    struct vcuda_alloc a;
    if (rc == CUDA_SUCCESS && vcuda_mem_active())
        vcuda_mem_untrack(VCUDA_POOL, (uint64_t)(uintptr_t)pool, &a);
    return rc;
}

/* ---- IPC: an import of memory exported inside the container is free (the exporter is charged);
 * an import from outside is charged to this container. ---- */
CUresult cuIpcGetMemHandle(CUipcMemHandle *handle, CUdeviceptr ptr)
{
    NEED(cuIpcGetMemHandle);
    CUresult rc = real_cuIpcGetMemHandle(handle, ptr);
    if (rc == CUDA_SUCCESS && vcuda_mem_active())
        vcuda_mem_ipc_exported(ptr, vcuda_ipc_key(handle));
    return rc;
}

static CUresult ipc_open(CUresult (*open)(CUdeviceptr *, CUipcMemHandle, unsigned int),
                         CUdeviceptr *pdptr, CUipcMemHandle handle, unsigned int flags)
{
    if (!vcuda_mem_active())
        return open(pdptr, handle, flags);
    int here = vcuda_mem_ipc_exported_here(vcuda_ipc_key(&handle));
    CUresult rc = open(pdptr, handle, flags);
    if (rc != CUDA_SUCCESS || here) {
        if (rc == CUDA_SUCCESS)
            vcuda_mem_track(VCUDA_IPC, *pdptr, -1, 0, 0);
        return rc;
    }
    CUdeviceptr base = 0;
    size_t size = 0;
    if (real_cuMemGetAddressRange_v2 == NULL ||
        real_cuMemGetAddressRange_v2(&base, &size, *pdptr) != CUDA_SUCCESS)
        size = 0; /* unknown size: nothing to charge */
    int rdev = vcuda_mem_current_rdev();
    if (vcuda_mem_reserve(rdev, (long long)size) != CUDA_SUCCESS) {
        real_cuIpcCloseMemHandle(*pdptr);
        *pdptr = 0;
        return CUDA_ERROR_OUT_OF_MEMORY;
    }
    vcuda_mem_track(VCUDA_IPC, *pdptr, rdev, (long long)size, 0);
    return CUDA_SUCCESS;
}

CUresult cuIpcOpenMemHandle(CUdeviceptr *pdptr, CUipcMemHandle handle, unsigned int flags)
{
    NEED(cuIpcOpenMemHandle);
    return ipc_open(real_cuIpcOpenMemHandle, pdptr, handle, flags);
}

CUresult cuIpcOpenMemHandle_v2(CUdeviceptr *pdptr, CUipcMemHandle handle, unsigned int flags)
{
    NEED(cuIpcOpenMemHandle_v2);
    return ipc_open(real_cuIpcOpenMemHandle_v2, pdptr, handle, flags);
}

CUresult cuIpcCloseMemHandle(CUdeviceptr dptr)
{
    NEED(cuIpcCloseMemHandle);
    FREE_CALL(VCUDA_IPC, dptr, real_cuIpcCloseMemHandle(dptr));
}

/* ---- memory info: total = the limit, used = the container's use, free = total - used ---- */
static int limited(void)
{
    return vcuda_mem_limit() > 0;
}

static void limited_info(unsigned long long real_total, unsigned long long *free_out,
                         unsigned long long *total_out)
{
    unsigned long long used, total;
    vcuda_mem_reclaim_dead();
    vcuda_mem_info(vcuda_mem_current_rdev(), real_total, &used, &total);
    *total_out = total;
    *free_out = total > used ? total - used : 0;
}

CUresult cuMemGetInfo_v2(size_t *free_out, size_t *total_out)
{
    NEED(cuMemGetInfo_v2);
    CUresult rc = real_cuMemGetInfo_v2(free_out, total_out);
    if (rc == CUDA_SUCCESS && limited() && free_out != NULL && total_out != NULL) {
        unsigned long long f, t;
        limited_info(*total_out, &f, &t);
        *free_out = f;
        *total_out = t;
    }
    return rc;
}

CUresult cuMemGetInfo(unsigned int *free_out, unsigned int *total_out)
{
    NEED(cuMemGetInfo);
    CUresult rc = real_cuMemGetInfo(free_out, total_out);
    if (rc == CUDA_SUCCESS && limited() && free_out != NULL && total_out != NULL) {
        unsigned long long f, t;
        limited_info(*total_out, &f, &t);
        *free_out = f > UINT_MAX ? UINT_MAX : (unsigned int)f;
        *total_out = t > UINT_MAX ? UINT_MAX : (unsigned int)t;
    }
    return rc;
}

CUresult cuDeviceTotalMem_v2(size_t *bytes, CUdevice dev)
{
    NEED(cuDeviceTotalMem_v2);
    CUresult rc = real_cuDeviceTotalMem_v2(bytes, dev);
    if (rc == CUDA_SUCCESS && limited() && bytes != NULL)
        *bytes = (size_t)vcuda_mem_limit();
    return rc;
}

CUresult cuDeviceTotalMem(unsigned int *bytes, CUdevice dev)
{
    NEED(cuDeviceTotalMem);
    CUresult rc = real_cuDeviceTotalMem(bytes, dev);
    if (rc == CUDA_SUCCESS && limited() && bytes != NULL)
        *bytes = vcuda_mem_limit() > UINT_MAX ? UINT_MAX : (unsigned int)vcuda_mem_limit();
    return rc;
}

/* ---- launches: the compute-share throttle (throttle.c) around each ---- */
/* In a _ptsz entry point a NULL stream is the calling thread's default stream: the throttle records
 * its event there (CU_STREAM_PER_THREAD), not on the legacy stream, which would wait for (and hold
 * up) every other blocking stream. (V2) */
#define PTSZ_STREAM(s) ((s) ? (s) : (CUstream)0x2)
#define LAUNCH(stream, call) \
    do { \
        if (!g_cfg.enabled) \
            return call; \
        vcuda_throttle_before_launch((void *)(stream)); \
        CUresult rc_ = call; \
        vcuda_throttle_after_launch((void *)(stream), rc_); \
        return rc_; \
    } while (0)

CUresult cuLaunchKernel(CUfunction f, unsigned gx, unsigned gy, unsigned gz, unsigned bx, unsigned by,
                        unsigned bz, unsigned shmem, CUstream s, void **params, void **extra)
{
    NEED(cuLaunchKernel);
    LAUNCH(s, real_cuLaunchKernel(f, gx, gy, gz, bx, by, bz, shmem, s, params, extra));
}

CUresult cuLaunchKernel_ptsz(CUfunction f, unsigned gx, unsigned gy, unsigned gz, unsigned bx,
                             unsigned by, unsigned bz, unsigned shmem, CUstream s, void **params,
                             void **extra)
{
    NEED(cuLaunchKernel_ptsz);
    LAUNCH(PTSZ_STREAM(s), real_cuLaunchKernel_ptsz(f, gx, gy, gz, bx, by, bz, shmem, s, params, extra));
}

CUresult cuLaunchKernelEx(const CUlaunchConfig *config, CUfunction f, void **params, void **extra)
{
    NEED(cuLaunchKernelEx);
    LAUNCH(config ? config->hStream : NULL, real_cuLaunchKernelEx(config, f, params, extra));
}

CUresult cuLaunchKernelEx_ptsz(const CUlaunchConfig *config, CUfunction f, void **params, void **extra)
{
    NEED(cuLaunchKernelEx_ptsz);
    LAUNCH(PTSZ_STREAM(config ? config->hStream : NULL), real_cuLaunchKernelEx_ptsz(config, f, params, extra));
}

CUresult cuLaunchCooperativeKernel(CUfunction f, unsigned gx, unsigned gy, unsigned gz, unsigned bx,
                                   unsigned by, unsigned bz, unsigned shmem, CUstream s, void **params)
{
    NEED(cuLaunchCooperativeKernel);
    LAUNCH(s, real_cuLaunchCooperativeKernel(f, gx, gy, gz, bx, by, bz, shmem, s, params));
}

CUresult cuLaunchCooperativeKernel_ptsz(CUfunction f, unsigned gx, unsigned gy, unsigned gz,
                                        unsigned bx, unsigned by, unsigned bz, unsigned shmem,
                                        CUstream s, void **params)
{
    NEED(cuLaunchCooperativeKernel_ptsz);
    LAUNCH(PTSZ_STREAM(s), real_cuLaunchCooperativeKernel_ptsz(f, gx, gy, gz, bx, by, bz, shmem, s, params));
}

CUresult cuGraphLaunch(CUgraphExec exec, CUstream s)
{
    NEED(cuGraphLaunch);
    LAUNCH(s, real_cuGraphLaunch(exec, s));
}

CUresult cuGraphLaunch_ptsz(CUgraphExec exec, CUstream s)
{
    NEED(cuGraphLaunch_ptsz);
    LAUNCH(PTSZ_STREAM(s), real_cuGraphLaunch_ptsz(exec, s));
}

/* ---- cuGetProcAddress ---- */

/* The hook to hand out for what the real lookup returned for `symbol`: the variant whose real
 * pointer it is; failing that (a driver whose lookup returns an address it does not export), the
 * variant the version and flags select, as the driver documents them. NULL: not ours. */
static void *substitute(const char *symbol, void *fn, int cuda_version, cuuint64_t flags)
{
    if (hook_at(fn) != NULL)
        return fn; /* already ours (a driver that resolved through the global scope) */
    const struct hook *best = NULL, *best_ptsz = NULL;
    for (size_t i = 0; i < N_HOOKS; i++) {
        const struct hook *h = &g_hooks[i];
        if (strcmp(h->family, symbol) != 0)
            continue;
        if (*h->real == fn)
            return h->hook;
        if (h->version > cuda_version)
            continue;
        const struct hook **slot = h->ptsz ? &best_ptsz : &best;
        if (*slot == NULL || h->version > (*slot)->version)
            *slot = h;
    }
    const char *env = getenv("CUDA_API_PER_THREAD_DEFAULT_STREAM");
    int per_thread = (flags & CU_GET_PROC_ADDRESS_PER_THREAD_DEFAULT_STREAM) ||
                     (flags == CU_GET_PROC_ADDRESS_DEFAULT && env != NULL && atoi(env) == 1);
    const struct hook *h = per_thread && best_ptsz ? best_ptsz : best;
    if (h == NULL)
        return NULL;
    if (*h->real == NULL)
        *h->real = fn;
    return h->hook;
}

CUresult cuGetProcAddress(const char *symbol, void **pfn, int cuda_version, cuuint64_t flags)
{
    NEED(cuGetProcAddress);
    CUresult rc = real_cuGetProcAddress(symbol, pfn, cuda_version, flags);
    if (rc == CUDA_SUCCESS && symbol != NULL && pfn != NULL && *pfn != NULL) {
        void *hook = substitute(symbol, *pfn, cuda_version, flags);
        if (hook != NULL)
            *pfn = hook;
    }
    return rc;
}

CUresult cuGetProcAddress_v2(const char *symbol, void **pfn, int cuda_version, cuuint64_t flags,
                             CUdriverProcAddressQueryResult *status)
{
    pthread_once(&g_cuda_once, init_cuda);
    CUresult rc;
    if (real_cuGetProcAddress_v2 != NULL) {
        rc = real_cuGetProcAddress_v2(symbol, pfn, cuda_version, flags, status);
    } else if (real_cuGetProcAddress != NULL) {
        /* a driver older than CUDA 12 behind a newer runtime: the 11.3 lookup answers */
        rc = real_cuGetProcAddress(symbol, pfn, cuda_version, flags);
        if (status != NULL)
            *status = rc == CUDA_SUCCESS ? CU_GET_PROC_ADDRESS_SUCCESS : CU_GET_PROC_ADDRESS_SYMBOL_NOT_FOUND;
    } else {
        return CUDA_ERROR_NOT_INITIALIZED;
    }
    if (rc == CUDA_SUCCESS && symbol != NULL && pfn != NULL && *pfn != NULL) {
        void *hook = substitute(symbol, *pfn, cuda_version, flags);
        if (hook != NULL)
            *pfn = hook;
    }
    return rc;
}
