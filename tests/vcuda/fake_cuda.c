/* Fake CUDA driver, device and memory side (test code): init, devices, contexts, every allocation
 * path libvcuda accounts, memory info and cuGetProcAddress(_v2). Linked with fake_cuda_exec.c
 * (launches, streams, events: V2) into one libcuda.so.1 by tests/vcuda/build.py, with -Bsymbolic so
 * that the fake's calls to itself never land in libvcuda's hooks (the real driver does not call
 * its exported entry points either).
 *
 * Device memory is host memory: malloc'd blocks with a header in front (size, kind), so frees and
 * cuMemGetAddressRange need no table. Each process sees FAKE_CUDA_DEVICES devices (default 2) of
 * FAKE_CUDA_TOTAL_MEM bytes (default 16 GiB) and tracks its own use of each (free = total - used,
 * what one process alone would see on a real GPU). FAKE_CUDA_VISIBLE="1,0" maps ordinals to
 * physical devices, as CUDA_VISIBLE_DEVICES does; UUIDs (cuDeviceGetUuid, and fake_nvml.c's
 * "GPU-..." strings) belong to the physical device. FAKE_CUDA_PITCH_ALIGN sets the pitch alignment
 * (default 256). Arrays and mipmapped arrays are small host structs and do not count as used.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "cuda_types.h" /* gaia_node/vcuda/src: the same ABI declarations the library uses */

#define EXPORT __attribute__((visibility("default")))
enum {
    CUDA_ERROR_INVALID_DEVICE = 101,
    CUDA_ERROR_INVALID_CONTEXT = 201,
    CUDA_ERROR_INVALID_HANDLE = 400,
};

#define MAX_DEV 8
static int g_ndev = 2, g_phys[MAX_DEV];
static unsigned long long g_total = 16ULL << 30;
static unsigned long long g_used[MAX_DEV];
static size_t g_pitch_align = 256;
static int g_initialised;
static pthread_mutex_t g_lock = PTHREAD_MUTEX_INITIALIZER;

struct fake_ctx {
    int magic;
    int dev;
};
#define CTX_MAGIC 0x637478
static struct fake_ctx g_primary[MAX_DEV];
static __thread struct fake_ctx *t_current;

static void read_env(void)
{
    const char *s = getenv("FAKE_CUDA_DEVICES");
    if (s && atoi(s) > 0 && atoi(s) <= MAX_DEV)
        g_ndev = atoi(s);
    for (int i = 0; i < MAX_DEV; i++)
        g_phys[i] = i;
    s = getenv("FAKE_CUDA_VISIBLE");
    if (s && *s) {
        int n = 0;
        char buf[256];
        snprintf(buf, sizeof(buf), "%s", s);
        for (char *save, *tok = strtok_r(buf, ",", &save); tok && n < MAX_DEV; tok = strtok_r(NULL, ",", &save))
            g_phys[n++] = atoi(tok);
        g_ndev = n;
    }
    s = getenv("FAKE_CUDA_TOTAL_MEM");
    if (s && *s)
        g_total = strtoull(s, NULL, 10);
    s = getenv("FAKE_CUDA_PITCH_ALIGN");
    if (s && atoi(s) > 0)
        g_pitch_align = (size_t)atoi(s);
}

EXPORT CUresult cuInit(unsigned int flags)
{
    (void)flags;
    pthread_mutex_lock(&g_lock);
    if (!g_initialised) {
        read_env();
        g_initialised = 1;
    }
    pthread_mutex_unlock(&g_lock);
    return CUDA_SUCCESS;
}

#define NEED_INIT() \
    do { \
        if (!g_initialised) \
            return CUDA_ERROR_NOT_INITIALIZED; \
    } while (0)

EXPORT CUresult cuDriverGetVersion(int *v)
{
    *v = 13000;
    return CUDA_SUCCESS;
}

EXPORT CUresult cuDeviceGetCount(int *n)
{
    NEED_INIT();
    *n = g_ndev;
    return CUDA_SUCCESS;
}

EXPORT CUresult cuDeviceGet(CUdevice *d, int ordinal)
{
    NEED_INIT();
    if (ordinal < 0 || ordinal >= g_ndev)
        return CUDA_ERROR_INVALID_DEVICE;
    *d = ordinal;
    return CUDA_SUCCESS;
}

EXPORT CUresult cuDeviceGetName(char *name, int len, CUdevice d)
{
    NEED_INIT();
    snprintf(name, (size_t)len, "Fake GPU %d", g_phys[d]);
    return CUDA_SUCCESS;
}

/* physical device p: fa ce 00 01 .. with the last byte p (fake_nvml.c prints the same bytes) */
EXPORT CUresult cuDeviceGetUuid(CUuuid *uuid, CUdevice d)
{
    NEED_INIT();
    if (d < 0 || d >= g_ndev)
        return CUDA_ERROR_INVALID_DEVICE;
    for (int i = 0; i < 16; i++)
        uuid->bytes[i] = (char)(0x10 + i);
    uuid->bytes[0] = (char)0xfa;
    uuid->bytes[1] = (char)0xce;
    uuid->bytes[15] = (char)g_phys[d];
    return CUDA_SUCCESS;
}

EXPORT CUresult cuDeviceGetUuid_v2(CUuuid *uuid, CUdevice d)
{
    return cuDeviceGetUuid(uuid, d);
}

EXPORT CUresult cuDeviceTotalMem_v2(size_t *bytes, CUdevice d)
{
    NEED_INIT();
    if (d < 0 || d >= g_ndev)
        return CUDA_ERROR_INVALID_DEVICE;
    *bytes = g_total;
    return CUDA_SUCCESS;
}

EXPORT CUresult cuDeviceTotalMem(unsigned int *bytes, CUdevice d)
{
    size_t b;
    CUresult rc = cuDeviceTotalMem_v2(&b, d);
    if (rc == CUDA_SUCCESS)
        *bytes = b > 0xffffffffULL ? 0xffffffffU : (unsigned int)b;
    return rc;
}

EXPORT CUresult cuDeviceGetAttribute(int *value, int attrib, CUdevice d)
{
    NEED_INIT();
    (void)attrib;
    (void)d;
    *value = 1;
    return CUDA_SUCCESS;
}

/* ---- contexts ---- */
static CUresult ctx_create(CUcontext *pctx, CUdevice d)
{
    NEED_INIT();
    if (d < 0 || d >= g_ndev)
        return CUDA_ERROR_INVALID_DEVICE;
    struct fake_ctx *c = calloc(1, sizeof(*c));
    c->magic = CTX_MAGIC;
    c->dev = d;
    t_current = c;
    *pctx = (CUcontext)c;
    return CUDA_SUCCESS;
}

EXPORT CUresult cuCtxCreate(CUcontext *pctx, unsigned int flags, CUdevice d)
{
    (void)flags;
    return ctx_create(pctx, d);
}

EXPORT CUresult cuCtxCreate_v2(CUcontext *pctx, unsigned int flags, CUdevice d)
{
    (void)flags;
    return ctx_create(pctx, d);
}

EXPORT CUresult cuCtxCreate_v4(CUcontext *pctx, void *params, unsigned int flags, CUdevice d)
{
    (void)params;
    (void)flags;
    return ctx_create(pctx, d);
}

EXPORT CUresult cuCtxDestroy_v2(CUcontext ctx)
{
    struct fake_ctx *c = (struct fake_ctx *)ctx;
    if (c == NULL || c->magic != CTX_MAGIC)
        return CUDA_ERROR_INVALID_CONTEXT;
    if (t_current == c)
        t_current = NULL;
    if (c < g_primary || c >= g_primary + MAX_DEV) {
        c->magic = 0;
        free(c);
    }
    return CUDA_SUCCESS;
}

EXPORT CUresult cuCtxDestroy(CUcontext ctx)
{
    return cuCtxDestroy_v2(ctx);
}

EXPORT CUresult cuDevicePrimaryCtxRetain(CUcontext *pctx, CUdevice d)
{
    NEED_INIT();
    if (d < 0 || d >= g_ndev)
        return CUDA_ERROR_INVALID_DEVICE;
    g_primary[d].magic = CTX_MAGIC;
    g_primary[d].dev = d;
    *pctx = (CUcontext)&g_primary[d];
    return CUDA_SUCCESS;
}

EXPORT CUresult cuDevicePrimaryCtxRelease_v2(CUdevice d)
{
    (void)d;
    return CUDA_SUCCESS;
}

EXPORT CUresult cuCtxSetCurrent(CUcontext ctx)
{
    struct fake_ctx *c = (struct fake_ctx *)ctx;
    if (c != NULL && c->magic != CTX_MAGIC)
        return CUDA_ERROR_INVALID_CONTEXT;
    t_current = c;
    return CUDA_SUCCESS;
}

EXPORT CUresult cuCtxGetCurrent(CUcontext *pctx)
{
    *pctx = (CUcontext)t_current;
    return CUDA_SUCCESS;
}

EXPORT CUresult cuCtxPushCurrent_v2(CUcontext ctx)
{
    return cuCtxSetCurrent(ctx);
}

EXPORT CUresult cuCtxPopCurrent_v2(CUcontext *pctx)
{
    if (pctx)
        *pctx = (CUcontext)t_current;
    t_current = NULL;
    return CUDA_SUCCESS;
}

EXPORT CUresult cuCtxGetDevice(CUdevice *d)
{
    if (t_current == NULL)
        return CUDA_ERROR_INVALID_CONTEXT;
    *d = t_current->dev;
    return CUDA_SUCCESS;
}

/* ---- device memory: [header][bytes] ---- */
#define BLOCK_MAGIC 0x424c4f434bULL
enum { KIND_DEVICE = 1, KIND_IPC = 2, KIND_V1 = 3 };
struct block {
    uint64_t magic;
    uint64_t size;
    uint64_t ipc_id; /* the id its IPC handle carries, once exported */
    int32_t kind;
    int32_t dev;
    char pad[32];
};
_Static_assert(sizeof(struct block) == 64, "block header");

static struct block *block_of(CUdeviceptr p)
{
    if (p == 0)
        return NULL;
    struct block *b = (struct block *)(uintptr_t)(p - sizeof(struct block));
    return b->magic == BLOCK_MAGIC ? b : NULL;
}

static CUresult block_alloc(CUdeviceptr *dptr, size_t size, int kind)
{
    NEED_INIT();
    if (t_current == NULL)
        return CUDA_ERROR_INVALID_CONTEXT;
    if (size == 0 || dptr == NULL)
        return CUDA_ERROR_INVALID_VALUE;
    int dev = t_current->dev;
    pthread_mutex_lock(&g_lock);
    if (kind != KIND_IPC && g_used[dev] + size > g_total) {
        pthread_mutex_unlock(&g_lock);
        return CUDA_ERROR_OUT_OF_MEMORY;
    }
    if (kind != KIND_IPC)
        g_used[dev] += size;
    pthread_mutex_unlock(&g_lock);
    struct block *b;
    if (kind == KIND_V1) {
        void *m = mmap(NULL, size + sizeof(*b), PROT_READ | PROT_WRITE,
                       MAP_PRIVATE | MAP_ANONYMOUS | MAP_32BIT, -1, 0);
        b = m == MAP_FAILED ? NULL : m;
    } else {
        b = malloc(size + sizeof(*b));
    }
    if (b == NULL) {
        pthread_mutex_lock(&g_lock);
        if (kind != KIND_IPC)
            g_used[dev] -= size;
        pthread_mutex_unlock(&g_lock);
        return CUDA_ERROR_OUT_OF_MEMORY;
    }
    b->magic = BLOCK_MAGIC;
    b->size = size;
    b->ipc_id = 0;
    b->kind = kind;
    b->dev = dev;
    *dptr = (CUdeviceptr)(uintptr_t)(b + 1);
    return CUDA_SUCCESS;
}

static CUresult block_free(CUdeviceptr p, int kind)
{
    struct block *b = block_of(p);
    if (b == NULL || (kind == KIND_IPC) != (b->kind == KIND_IPC))
        return CUDA_ERROR_INVALID_VALUE;
    pthread_mutex_lock(&g_lock);
    if (b->kind != KIND_IPC)
        g_used[b->dev] -= b->size;
    pthread_mutex_unlock(&g_lock);
    b->magic = 0;
    if (b->kind == KIND_V1)
        munmap(b, b->size + sizeof(*b));
    else
        free(b);
    return CUDA_SUCCESS;
}

EXPORT CUresult cuMemAlloc_v2(CUdeviceptr *dptr, size_t size)
{
    return block_alloc(dptr, size, KIND_DEVICE);
}

EXPORT CUresult cuMemAlloc(CUdeviceptr_v1 *dptr, unsigned int size)
{
    CUdeviceptr p;
    CUresult rc = block_alloc(&p, size, KIND_V1);
    if (rc == CUDA_SUCCESS)
        *dptr = (CUdeviceptr_v1)p;
    return rc;
}

EXPORT CUresult cuMemAllocManaged(CUdeviceptr *dptr, size_t size, unsigned int flags)
{
    (void)flags;
    return block_alloc(dptr, size, KIND_DEVICE);
}

EXPORT CUresult cuMemAllocPitch_v2(CUdeviceptr *dptr, size_t *pitch, size_t width, size_t height,
                                   unsigned int elem)
{
    if (elem != 4 && elem != 8 && elem != 16)
        return CUDA_ERROR_INVALID_VALUE;
    if (width == 0 || height == 0)
        return CUDA_ERROR_INVALID_VALUE;
    size_t p = (width + g_pitch_align - 1) / g_pitch_align * g_pitch_align;
    CUresult rc = block_alloc(dptr, p * height, KIND_DEVICE);
    if (rc == CUDA_SUCCESS)
        *pitch = p;
    return rc;
}

EXPORT CUresult cuMemAllocPitch(CUdeviceptr_v1 *dptr, unsigned int *pitch, unsigned int width,
                                unsigned int height, unsigned int elem)
{
    if (elem != 4 && elem != 8 && elem != 16)
        return CUDA_ERROR_INVALID_VALUE;
    size_t p = (width + g_pitch_align - 1) / g_pitch_align * g_pitch_align;
    CUdeviceptr d;
    CUresult rc = block_alloc(&d, p * height, KIND_V1);
    if (rc == CUDA_SUCCESS) {
        *dptr = (CUdeviceptr_v1)d;
        *pitch = (unsigned int)p;
    }
    return rc;
}

EXPORT CUresult cuMemFree_v2(CUdeviceptr p)
{
    struct block *b = block_of(p);
    if (b == NULL || b->kind == KIND_IPC)
        return CUDA_ERROR_INVALID_VALUE;
    return block_free(p, b->kind);
}

EXPORT CUresult cuMemFree(CUdeviceptr_v1 p)
{
    return cuMemFree_v2(p);
}

EXPORT CUresult cuMemGetInfo_v2(size_t *free_out, size_t *total_out)
{
    NEED_INIT();
    if (t_current == NULL)
        return CUDA_ERROR_INVALID_CONTEXT;
    pthread_mutex_lock(&g_lock);
    *total_out = g_total;
    *free_out = g_total - g_used[t_current->dev];
    pthread_mutex_unlock(&g_lock);
    return CUDA_SUCCESS;
}

EXPORT CUresult cuMemGetInfo(unsigned int *free_out, unsigned int *total_out)
{
    size_t f, t;
    CUresult rc = cuMemGetInfo_v2(&f, &t);
    if (rc == CUDA_SUCCESS) {
        *free_out = f > 0xffffffffULL ? 0xffffffffU : (unsigned int)f;
        *total_out = t > 0xffffffffULL ? 0xffffffffU : (unsigned int)t;
    }
    return rc;
}

EXPORT CUresult cuMemGetAddressRange_v2(CUdeviceptr *base, size_t *size, CUdeviceptr p)
{
    struct block *b = block_of(p);
    if (b == NULL)
        return CUDA_ERROR_NOT_FOUND;
    if (base)
        *base = p;
    if (size)
        *size = b->size;
    return CUDA_SUCCESS;
}

EXPORT CUresult cuMemcpyHtoD_v2(CUdeviceptr dst, const void *src, size_t n)
{
    memcpy((void *)(uintptr_t)dst, src, n);
    return CUDA_SUCCESS;
}

EXPORT CUresult cuMemcpyDtoH_v2(void *dst, CUdeviceptr src, size_t n)
{
    memcpy(dst, (void *)(uintptr_t)src, n);
    return CUDA_SUCCESS;
}

/* ---- arrays ---- */
struct fake_array {
    int magic;
    int levels;
};
#define ARRAY_MAGIC 0x617272
#define MIPMAP_MAGIC 0x6d6970

static CUresult array_new(void **out, int magic, size_t w, int levels)
{
    NEED_INIT();
    if (t_current == NULL)
        return CUDA_ERROR_INVALID_CONTEXT;
    if (w == 0)
        return CUDA_ERROR_INVALID_VALUE;
    struct fake_array *a = calloc(1, sizeof(*a));
    a->magic = magic;
    a->levels = levels;
    *out = a;
    return CUDA_SUCCESS;
}

static CUresult array_free(void *h, int magic)
{
    struct fake_array *a = h;
    if (a == NULL || a->magic != magic)
        return CUDA_ERROR_INVALID_HANDLE;
    a->magic = 0;
    free(a);
    return CUDA_SUCCESS;
}

EXPORT CUresult cuArrayCreate_v2(CUarray *h, const CUDA_ARRAY_DESCRIPTOR *d)
{
    return d ? array_new((void **)h, ARRAY_MAGIC, d->Width, 1) : CUDA_ERROR_INVALID_VALUE;
}

EXPORT CUresult cuArrayCreate(CUarray *h, const CUDA_ARRAY_DESCRIPTOR_v1 *d)
{
    return d ? array_new((void **)h, ARRAY_MAGIC, d->Width, 1) : CUDA_ERROR_INVALID_VALUE;
}

EXPORT CUresult cuArray3DCreate_v2(CUarray *h, const CUDA_ARRAY3D_DESCRIPTOR *d)
{
    return d ? array_new((void **)h, ARRAY_MAGIC, d->Width, 1) : CUDA_ERROR_INVALID_VALUE;
}

EXPORT CUresult cuArray3DCreate(CUarray *h, const CUDA_ARRAY3D_DESCRIPTOR_v1 *d)
{
    return d ? array_new((void **)h, ARRAY_MAGIC, d->Width, 1) : CUDA_ERROR_INVALID_VALUE;
}

EXPORT CUresult cuArrayDestroy(CUarray h)
{
    return array_free(h, ARRAY_MAGIC);
}

EXPORT CUresult cuMipmappedArrayCreate(CUmipmappedArray *h, const CUDA_ARRAY3D_DESCRIPTOR *d,
                                       unsigned int levels)
{
    return d ? array_new((void **)h, MIPMAP_MAGIC, d->Width, (int)levels) : CUDA_ERROR_INVALID_VALUE;
}

EXPORT CUresult cuMipmappedArrayDestroy(CUmipmappedArray h)
{
    return array_free(h, MIPMAP_MAGIC);
}

/* ---- virtual memory management: handles are ids from a counter, never reused ---- */
#define MAX_HANDLES 4096
static struct {
    unsigned long long id;
    size_t size;
    int dev;
    int maps;
    int released;
} g_handles[MAX_HANDLES];
static unsigned long long g_next_handle = 1;
static CUdeviceptr g_next_va = 0x7e0000000000ULL;

EXPORT CUresult cuMemGetAllocationGranularity(size_t *g, const CUmemAllocationProp *prop, int option)
{
    (void)prop;
    (void)option;
    *g = 2 << 20;
    return CUDA_SUCCESS;
}

EXPORT CUresult cuMemCreate(CUmemGenericAllocationHandle *handle, size_t size,
                            const CUmemAllocationProp *prop, unsigned long long flags)
{
    (void)flags;
    NEED_INIT();
    if (prop == NULL || size == 0 || size % (2 << 20) != 0)
        return CUDA_ERROR_INVALID_VALUE;
    int dev = prop->location.id;
    if (prop->location.type != CU_MEM_LOCATION_TYPE_DEVICE || dev < 0 || dev >= g_ndev)
        return CUDA_ERROR_INVALID_DEVICE;
    pthread_mutex_lock(&g_lock);
    if (g_used[dev] + size > g_total) {
        pthread_mutex_unlock(&g_lock);
        return CUDA_ERROR_OUT_OF_MEMORY;
    }
    unsigned long long id = g_next_handle++;
    int slot = (int)(id % MAX_HANDLES);
    g_handles[slot].id = id;
    g_handles[slot].size = size;
    g_handles[slot].dev = dev;
    g_handles[slot].maps = 0;
    g_handles[slot].released = 0;
    g_used[dev] += size;
    pthread_mutex_unlock(&g_lock);
    *handle = id;
    return CUDA_SUCCESS;
}

static int handle_slot(CUmemGenericAllocationHandle h)
{
    int slot = (int)(h % MAX_HANDLES);
    return g_handles[slot].id == h && h != 0 ? slot : -1;
}

static void handle_maybe_free(int slot) /* with g_lock held */
{
    if (g_handles[slot].released && g_handles[slot].maps == 0) {
        g_used[g_handles[slot].dev] -= g_handles[slot].size;
        g_handles[slot].id = 0;
    }
}

EXPORT CUresult cuMemRelease(CUmemGenericAllocationHandle h)
{
    pthread_mutex_lock(&g_lock);
    int slot = handle_slot(h);
    if (slot < 0 || g_handles[slot].released) {
        pthread_mutex_unlock(&g_lock);
        return CUDA_ERROR_INVALID_VALUE;
    }
    g_handles[slot].released = 1;
    handle_maybe_free(slot);
    pthread_mutex_unlock(&g_lock);
    return CUDA_SUCCESS;
}

EXPORT CUresult cuMemAddressReserve(CUdeviceptr *ptr, size_t size, size_t alignment, CUdeviceptr addr,
                                    unsigned long long flags)
{
    (void)alignment;
    (void)addr;
    (void)flags;
    pthread_mutex_lock(&g_lock);
    *ptr = g_next_va;
    g_next_va += (size + (2 << 20) - 1) / (2 << 20) * (2 << 20);
    pthread_mutex_unlock(&g_lock);
    return CUDA_SUCCESS;
}

EXPORT CUresult cuMemAddressFree(CUdeviceptr ptr, size_t size)
{
    (void)ptr;
    (void)size;
    return CUDA_SUCCESS;
}

/* mappings: address -> handle, a small table */
#define MAX_MAPS 4096
static struct {
    CUdeviceptr ptr;
    size_t size;
    unsigned long long handle;
} g_maps[MAX_MAPS];

EXPORT CUresult cuMemMap(CUdeviceptr ptr, size_t size, size_t offset, CUmemGenericAllocationHandle h,
                         unsigned long long flags)
{
    (void)offset;
    (void)flags;
    pthread_mutex_lock(&g_lock);
    int slot = handle_slot(h);
    CUresult rc = CUDA_ERROR_INVALID_VALUE;
    if (slot >= 0 && !g_handles[slot].released) {
        for (int i = 0; i < MAX_MAPS; i++) {
            if (g_maps[i].ptr == 0) {
                g_maps[i].ptr = ptr;
                g_maps[i].size = size;
                g_maps[i].handle = h;
                g_handles[slot].maps++;
                rc = CUDA_SUCCESS;
                break;
            }
        }
    }
    pthread_mutex_unlock(&g_lock);
    return rc;
}

EXPORT CUresult cuMemUnmap(CUdeviceptr ptr, size_t size)
{
    pthread_mutex_lock(&g_lock);
    CUresult rc = CUDA_ERROR_INVALID_VALUE;
    for (int i = 0; i < MAX_MAPS; i++) {
        if (g_maps[i].ptr != 0 && g_maps[i].ptr >= ptr && g_maps[i].ptr < ptr + size) {
            int slot = handle_slot(g_maps[i].handle);
            if (slot >= 0) {
                g_handles[slot].maps--;
                handle_maybe_free(slot);
            }
            g_maps[i].ptr = 0;
            rc = CUDA_SUCCESS;
        }
    }
    pthread_mutex_unlock(&g_lock);
    return rc;
}

EXPORT CUresult cuMemSetAccess(CUdeviceptr ptr, size_t size, const void *desc, size_t count)
{
    (void)ptr;
    (void)size;
    (void)desc;
    (void)count;
    return CUDA_SUCCESS;
}

/* ---- stream-ordered allocation and pools ---- */
struct fake_pool {
    int magic;
    int dev;
};
#define POOL_MAGIC 0x706f6f
static struct fake_pool g_default_pools[MAX_DEV];

EXPORT CUresult cuMemPoolCreate(CUmemoryPool *pool, const CUmemPoolProps *props)
{
    NEED_INIT();
    if (props == NULL || props->location.type != CU_MEM_LOCATION_TYPE_DEVICE ||
        props->location.id < 0 || props->location.id >= g_ndev)
        return CUDA_ERROR_INVALID_VALUE;
    struct fake_pool *p = calloc(1, sizeof(*p));
    p->magic = POOL_MAGIC;
    p->dev = props->location.id;
    *pool = (CUmemoryPool)p;
    return CUDA_SUCCESS;
}

EXPORT CUresult cuMemPoolDestroy(CUmemoryPool pool)
{
    struct fake_pool *p = (struct fake_pool *)pool;
    if (p == NULL || p->magic != POOL_MAGIC)
        return CUDA_ERROR_INVALID_VALUE;
    p->magic = 0;
    free(p);
    return CUDA_SUCCESS;
}

EXPORT CUresult cuMemPoolTrimTo(CUmemoryPool pool, size_t keep)
{
    (void)pool;
    (void)keep;
    return CUDA_SUCCESS;
}

EXPORT CUresult cuDeviceGetDefaultMemPool(CUmemoryPool *pool, CUdevice d)
{
    NEED_INIT();
    if (d < 0 || d >= g_ndev)
        return CUDA_ERROR_INVALID_DEVICE;
    g_default_pools[d].magic = POOL_MAGIC;
    g_default_pools[d].dev = d;
    *pool = (CUmemoryPool)&g_default_pools[d];
    return CUDA_SUCCESS;
}

/* a pool's allocation lands on the pool's device whatever the current context */
static CUresult pool_alloc(CUdeviceptr *dptr, size_t size, CUmemoryPool pool)
{
    struct fake_pool *p = (struct fake_pool *)pool;
    if (p == NULL || p->magic != POOL_MAGIC)
        return CUDA_ERROR_INVALID_VALUE;
    struct fake_ctx *saved = t_current, tmp = {CTX_MAGIC, p->dev};
    t_current = &tmp;
    CUresult rc = block_alloc(dptr, size, KIND_DEVICE);
    t_current = saved;
    return rc;
}

EXPORT CUresult cuMemAllocAsync(CUdeviceptr *dptr, size_t size, CUstream s)
{
    (void)s;
    return block_alloc(dptr, size, KIND_DEVICE);
}

EXPORT CUresult cuMemAllocAsync_ptsz(CUdeviceptr *dptr, size_t size, CUstream s)
{
    (void)s;
    return block_alloc(dptr, size, KIND_DEVICE);
}

EXPORT CUresult cuMemAllocFromPoolAsync(CUdeviceptr *dptr, size_t size, CUmemoryPool pool, CUstream s)
{
    (void)s;
    return pool_alloc(dptr, size, pool);
}

EXPORT CUresult cuMemAllocFromPoolAsync_ptsz(CUdeviceptr *dptr, size_t size, CUmemoryPool pool,
                                             CUstream s)
{
    (void)s;
    return pool_alloc(dptr, size, pool);
}

EXPORT CUresult cuMemFreeAsync(CUdeviceptr p, CUstream s)
{
    (void)s;
    return cuMemFree_v2(p);
}

EXPORT CUresult cuMemFreeAsync_ptsz(CUdeviceptr p, CUstream s)
{
    (void)s;
    return cuMemFree_v2(p);
}

/* ---- IPC: a handle names the exporter's block (pid, id, size); opening one maps a fresh block of
 * that size (host memory cannot be shared, only its accounting matters here) ---- */
struct fake_ipc {
    char magic[8];
    uint64_t size;
    uint64_t id;
    char pad[40];
};
_Static_assert(sizeof(struct fake_ipc) == CU_IPC_HANDLE_SIZE, "ipc handle");
static uint64_t g_next_ipc = 1;

EXPORT CUresult cuIpcGetMemHandle(CUipcMemHandle *handle, CUdeviceptr p)
{
    struct block *b = block_of(p);
    if (b == NULL || b->kind == KIND_IPC)
        return CUDA_ERROR_INVALID_VALUE;
    pthread_mutex_lock(&g_lock);
    if (b->ipc_id == 0)
        b->ipc_id = ((uint64_t)getpid() << 32) | g_next_ipc++; /* the same handle on re-export */
    pthread_mutex_unlock(&g_lock);
    struct fake_ipc h;
    memset(&h, 0, sizeof(h));
    memcpy(h.magic, "FAKEIPC", 8);
    h.size = b->size;
    h.id = b->ipc_id;
    memcpy(handle, &h, sizeof(h));
    return CUDA_SUCCESS;
}

EXPORT CUresult cuIpcOpenMemHandle_v2(CUdeviceptr *pdptr, CUipcMemHandle handle, unsigned int flags)
{
    (void)flags;
    struct fake_ipc h;
    memcpy(&h, &handle, sizeof(h));
    if (memcmp(h.magic, "FAKEIPC", 8) != 0 || h.size == 0)
        return CUDA_ERROR_INVALID_VALUE;
    return block_alloc(pdptr, h.size, KIND_IPC);
}

EXPORT CUresult cuIpcOpenMemHandle(CUdeviceptr *pdptr, CUipcMemHandle handle, unsigned int flags)
{
    return cuIpcOpenMemHandle_v2(pdptr, handle, flags);
}

EXPORT CUresult cuIpcCloseMemHandle(CUdeviceptr p)
{
    return block_free(p, KIND_IPC);
}

EXPORT CUresult cuGetErrorName(CUresult rc, const char **out)
{
    static const char *names[] = {"CUDA_SUCCESS", "CUDA_ERROR_INVALID_VALUE", "CUDA_ERROR_OUT_OF_MEMORY",
                                  "CUDA_ERROR_NOT_INITIALIZED"};
    *out = rc >= 0 && rc < 4 ? names[rc] : "CUDA_ERROR_UNKNOWN";
    return CUDA_SUCCESS;
}

EXPORT CUresult cuGetErrorString(CUresult rc, const char **out)
{
    return cuGetErrorName(rc, out);
}

/* ---- cuGetProcAddress: the driver's version rules, answered from this library's own symbols ---- */
static const struct {
    const char *base;
    int version;
    const char *name;
} g_versions[] = {
    {"cuMemAlloc", 2000, "cuMemAlloc"}, {"cuMemAlloc", 3020, "cuMemAlloc_v2"},
    {"cuMemAllocPitch", 2000, "cuMemAllocPitch"}, {"cuMemAllocPitch", 3020, "cuMemAllocPitch_v2"},
    {"cuMemFree", 2000, "cuMemFree"}, {"cuMemFree", 3020, "cuMemFree_v2"},
    {"cuMemGetInfo", 2000, "cuMemGetInfo"}, {"cuMemGetInfo", 3020, "cuMemGetInfo_v2"},
    {"cuDeviceTotalMem", 2000, "cuDeviceTotalMem"}, {"cuDeviceTotalMem", 3020, "cuDeviceTotalMem_v2"},
    {"cuArrayCreate", 2000, "cuArrayCreate"}, {"cuArrayCreate", 3020, "cuArrayCreate_v2"},
    {"cuArray3DCreate", 2000, "cuArray3DCreate"}, {"cuArray3DCreate", 3020, "cuArray3DCreate_v2"},
    {"cuMemGetAddressRange", 3020, "cuMemGetAddressRange_v2"},
    {"cuMemcpyHtoD", 3020, "cuMemcpyHtoD_v2"}, {"cuMemcpyDtoH", 3020, "cuMemcpyDtoH_v2"},
    {"cuCtxCreate", 2000, "cuCtxCreate"}, {"cuCtxCreate", 3020, "cuCtxCreate_v2"},
    {"cuCtxCreate", 12050, "cuCtxCreate_v4"},
    {"cuCtxDestroy", 4000, "cuCtxDestroy_v2"}, {"cuCtxPushCurrent", 4000, "cuCtxPushCurrent_v2"},
    {"cuCtxPopCurrent", 4000, "cuCtxPopCurrent_v2"},
    {"cuDevicePrimaryCtxRelease", 11000, "cuDevicePrimaryCtxRelease_v2"},
    {"cuDeviceGetUuid", 9020, "cuDeviceGetUuid"}, {"cuDeviceGetUuid", 11040, "cuDeviceGetUuid_v2"},
    {"cuIpcOpenMemHandle", 4010, "cuIpcOpenMemHandle"}, {"cuIpcOpenMemHandle", 11000, "cuIpcOpenMemHandle_v2"},
    {"cuMemAllocAsync", 11020, "cuMemAllocAsync"}, {"cuMemAllocFromPoolAsync", 11020, "cuMemAllocFromPoolAsync"},
    {"cuMemFreeAsync", 11020, "cuMemFreeAsync"}, {"cuMemPoolCreate", 11020, "cuMemPoolCreate"},
    {"cuLaunchKernelEx", 11060, "cuLaunchKernelEx"},
    {"cuStreamDestroy", 4000, "cuStreamDestroy_v2"}, {"cuEventDestroy", 4000, "cuEventDestroy_v2"},
    {"cuEventElapsedTime", 2000, "cuEventElapsedTime"}, {"cuEventElapsedTime", 12080, "cuEventElapsedTime_v2"},
    {"cuGraphAddKernelNode", 10000, "cuGraphAddKernelNode"}, {"cuGraphAddKernelNode", 12030, "cuGraphAddKernelNode_v2"},
    {"cuGetProcAddress", 11030, "cuGetProcAddress"}, {"cuGetProcAddress", 12000, "cuGetProcAddress_v2"},
};

typedef void *(*dlsym_fn)(void *, const char *);

/* libc's dlsym, looked up in libc's own scope so no preloaded dlsym (libvcuda's) answers */
static dlsym_fn libc_dlsym(void)
{
    static dlsym_fn fn;
    if (fn == NULL) {
        void *libc = dlopen("libc.so.6", RTLD_LAZY | RTLD_NOLOAD);
        if (libc)
            fn = (dlsym_fn)dlvsym(libc, "dlsym", "GLIBC_2.34");
        if (fn == NULL) {
            void *libdl = dlopen("libdl.so.2", RTLD_LAZY | RTLD_NOLOAD);
            if (libdl)
                fn = (dlsym_fn)dlvsym(libdl, "dlsym", "GLIBC_2.2.5");
        }
    }
    return fn;
}

static void *self_symbol(const char *name)
{
    static void *self;
    if (self == NULL) {
        Dl_info info;
        if (dladdr((void *)cuInit, &info) && info.dli_fname)
            self = dlopen(info.dli_fname, RTLD_LAZY | RTLD_NOLOAD);
    }
    dlsym_fn rd = libc_dlsym();
    return self && rd ? rd(self, name) : NULL;
}

/* FAKE_CUDA_GPA_ALIASES=1: cuGetProcAddress answers with internal functions that are not the exported
 * symbols (as a driver may), so an interposer cannot match them by address */
static CUresult alias_cuMemAlloc_v2(CUdeviceptr *p, size_t n) { return block_alloc(p, n, KIND_DEVICE); }
static CUresult alias_cuMemAlloc(CUdeviceptr_v1 *p, unsigned int n) { return cuMemAlloc(p, n); }
static CUresult alias_cuMemAllocAsync_ptsz(CUdeviceptr *p, size_t n, CUstream s) { return cuMemAllocAsync_ptsz(p, n, s); }
static const struct {
    const char *name;
    void *fn;
} g_aliases[] = {
    {"cuMemAlloc_v2", (void *)alias_cuMemAlloc_v2},
    {"cuMemAlloc", (void *)alias_cuMemAlloc},
    {"cuMemAllocAsync_ptsz", (void *)alias_cuMemAllocAsync_ptsz},
};

static void *aliased(const char *name, void *fn)
{
    const char *on = getenv("FAKE_CUDA_GPA_ALIASES");
    if (fn == NULL || on == NULL || atoi(on) != 1)
        return fn;
    for (size_t i = 0; i < sizeof(g_aliases) / sizeof(g_aliases[0]); i++)
        if (strcmp(g_aliases[i].name, name) == 0)
            return g_aliases[i].fn;
    return fn;
}

static CUresult proc_address(const char *symbol, void **pfn, int version, cuuint64_t flags,
                             CUdriverProcAddressQueryResult *status)
{
    const char *name = symbol;
    int best = -1, known = 0;
    for (size_t i = 0; i < sizeof(g_versions) / sizeof(g_versions[0]); i++) {
        if (strcmp(g_versions[i].base, symbol) != 0)
            continue;
        known = 1;
        if (g_versions[i].version <= version && g_versions[i].version > best) {
            best = g_versions[i].version;
            name = g_versions[i].name;
        }
    }
    if (known && best < 0) {
        *pfn = NULL;
        if (status)
            *status = CU_GET_PROC_ADDRESS_VERSION_NOT_SUFFICIENT;
        return CUDA_ERROR_NOT_FOUND;
    }
    void *fn = NULL;
    const char *env = getenv("CUDA_API_PER_THREAD_DEFAULT_STREAM");
    if ((flags & CU_GET_PROC_ADDRESS_PER_THREAD_DEFAULT_STREAM) ||
        (flags == CU_GET_PROC_ADDRESS_DEFAULT && env && atoi(env) == 1)) {
        char buf[256];
        snprintf(buf, sizeof(buf), "%s_ptsz", name);
        fn = aliased(buf, self_symbol(buf));
        if (fn == NULL) {
            snprintf(buf, sizeof(buf), "%s_ptds", name);
            fn = self_symbol(buf);
        }
    }
    if (fn == NULL)
        fn = aliased(name, self_symbol(name));
    *pfn = fn;
    if (status)
        *status = fn ? CU_GET_PROC_ADDRESS_SUCCESS : CU_GET_PROC_ADDRESS_SYMBOL_NOT_FOUND;
    return fn ? CUDA_SUCCESS : CUDA_ERROR_NOT_FOUND;
}

EXPORT CUresult cuGetProcAddress_v2(const char *symbol, void **pfn, int version, cuuint64_t flags,
                                    CUdriverProcAddressQueryResult *status)
{
    return proc_address(symbol, pfn, version, flags, status);
}

EXPORT CUresult cuGetProcAddress(const char *symbol, void **pfn, int version, cuuint64_t flags)
{
    return proc_address(symbol, pfn, version, flags, NULL);
}
