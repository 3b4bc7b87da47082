/* GPU memory accounting (see memory.h). */
#include "memory.h"

#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "region.h"

static struct vcuda_mem_driver g_drv;
static struct vcuda_region *g_region;
static long long g_limit;

/* CUDA ordinal -> region device index; -2 = not looked up yet. Ordinals are per process. */
#define MAX_ORDINALS 64
static int g_ordinal_rdev[MAX_ORDINALS];

/* ---- the process's allocation table: open addressing on (kind, id) ---- */
struct entry {
    uint64_t id;
    uint64_t aux;
    int64_t bytes;
    int32_t rdev;
    int32_t maps;      /* VCUDA_VMM: live mappings of the handle */
    uint8_t kind;
    uint8_t state;     /* 0 empty, 1 used, 2 deleted */
    uint8_t released;  /* VCUDA_VMM: cuMemRelease was called */
};

static pthread_mutex_t g_table_lock = PTHREAD_MUTEX_INITIALIZER;
static struct entry *g_table;
static size_t g_cap, g_used, g_deleted;

static uint64_t mix(uint64_t x)
{
    x ^= x >> 33;
    x *= 0xff51afd7ed558ccdULL;
    x ^= x >> 33;
    x *= 0xc4ceb9fe1a85ec53ULL;
    x ^= x >> 33;
    return x;
}

static struct entry *find(int kind, uint64_t id)
{
    if (g_cap == 0)
        return NULL;
    size_t mask = g_cap - 1;
    for (size_t i = mix(id ^ ((uint64_t)kind << 59)) & mask;; i = (i + 1) & mask) {
        struct entry *e = &g_table[i];
        if (e->state == 0)
            return NULL;
        if (e->state == 1 && e->kind == kind && e->id == id)
            return e;
    }
}

static void put(const struct entry *src);

static int grow(void)
{
    size_t cap = g_cap ? g_cap : 1024;
    if ((g_used + 1) * 2 > cap)
        cap *= 2;
    struct entry *old = g_table;
    size_t old_cap = g_cap;
    struct entry *t = calloc(cap, sizeof(*t));
    if (t == NULL)
        return -1;
    g_table = t;
    g_cap = cap;
    g_used = g_deleted = 0;
    for (size_t i = 0; i < old_cap; i++)
        if (old[i].state == 1)
            put(&old[i]);
    free(old);
    return 0;
}

static void put(const struct entry *src)
{
    if ((g_used + g_deleted + 1) * 2 > g_cap && grow() != 0)
        return; /* out of host memory: the bytes stay charged until the process exits */
    size_t mask = g_cap - 1;
    size_t i = mix(src->id ^ ((uint64_t)src->kind << 59)) & mask;
    while (g_table[i].state == 1)
        i = (i + 1) & mask;
    if (g_table[i].state == 2)
        g_deleted--;
    g_table[i] = *src;
    g_table[i].state = 1;
    g_used++;
}

static void erase(struct entry *e)
{
    e->state = 2;
    g_used--;
    g_deleted++;
}

static void child_after_fork(void)
{
    /* the parent's allocations are the parent's: the child starts with an empty table and takes
     * its own region slot on its first allocation */
    pthread_mutex_init(&g_table_lock, NULL);
    vcuda_region_forked();
    free(g_table);
    g_table = NULL;
    g_cap = g_used = g_deleted = 0;
}

void vcuda_mem_init(const struct vcuda_config *cfg, const struct vcuda_mem_driver *drv)
{
    g_drv = *drv;
    for (int i = 0; i < MAX_ORDINALS; i++)
        g_ordinal_rdev[i] = -2;
    if (!cfg->enabled)
        return;
    g_limit = cfg->memory_limit;
    vcuda_region_test_hold_init();
    if (cfg->region_path[0] == '\0' && g_limit > 0)
        fprintf(stderr, "gaia vcuda: %s: region: not set; the memory limit holds per process only\n",
                cfg->path);
    g_region = vcuda_region_open(cfg->region_path);
    if (g_region != NULL && g_limit > 0)
        g_region->limit = g_limit;
    pthread_atfork(NULL, NULL, child_after_fork);
}

int vcuda_mem_active(void)
{
    return g_region != NULL;
}

long long vcuda_mem_limit(void)
{
    return g_region != NULL ? g_limit : 0;
}

int vcuda_mem_rdev(CUdevice dev)
{
    if (g_region == NULL || dev < 0)
        return -1;
    if (dev < MAX_ORDINALS) {
        int cached = __atomic_load_n(&g_ordinal_rdev[dev], __ATOMIC_ACQUIRE);
        if (cached != -2)
            return cached;
    }
    unsigned char uuid[16];
    CUuuid u;
    if (g_drv.device_get_uuid != NULL && g_drv.device_get_uuid(&u, dev) == CUDA_SUCCESS) {
        memcpy(uuid, u.bytes, 16);
    } else {
        /* no UUID from the driver: the ordinal stands in (processes with different
         * CUDA_VISIBLE_DEVICES would then disagree; real drivers always have UUIDs) */
        memset(uuid, 0, 16);
        memcpy(uuid, "ordinal", 7);
        uuid[15] = (unsigned char)dev;
    }
    vcuda_region_lock(g_region);
    int rdev = vcuda_region_device(g_region, uuid);
    vcuda_region_unlock(g_region);
    if (rdev < 0)
        fprintf(stderr, "gaia vcuda: more than %d devices; device %d is not accounted\n",
                VCUDA_MAX_DEVICES, dev);
    if (dev < MAX_ORDINALS)
        __atomic_store_n(&g_ordinal_rdev[dev], rdev, __ATOMIC_RELEASE);
    return rdev;
}

int vcuda_mem_current_rdev(void)
{
    CUdevice dev = 0;
    if (g_region == NULL)
        return -1;
    if (g_drv.ctx_get_device == NULL || g_drv.ctx_get_device(&dev) != CUDA_SUCCESS)
        dev = 0; /* no current context: the driver call that follows will fail anyway */
    return vcuda_mem_rdev(dev);
}

CUresult vcuda_mem_reserve(int rdev, long long bytes)
{
    if (g_region == NULL || rdev < 0 || bytes <= 0)
        return CUDA_SUCCESS;
    struct vcuda_region *r = g_region;
    vcuda_region_lock(r);
    vcuda_region_test_hold(0);
    int slot = vcuda_region_self(r);
    if (slot < 0) {
        vcuda_region_unlock(r);
        fprintf(stderr, "gaia vcuda: more than %d live processes in the container; refusing the "
                        "allocation\n", VCUDA_MAX_PROCS);
        return CUDA_ERROR_OUT_OF_MEMORY;
    }
    /* compared as bytes > room, never used + bytes > limit: a request near 2^63 (a size_t the
     * driver will refuse, or a saturated array size) would overflow the sum, pass the check and,
     * until it is rolled back, leave a negative total that lets every other process overcommit */
    if (bytes > LLONG_MAX - (r->devices[rdev].used > 0 ? r->devices[rdev].used : 0) ||
        (g_limit > 0 && bytes > g_limit - r->devices[rdev].used)) {
        /* memory still charged to processes that died without giving it back */
        vcuda_region_reclaim_dead(r);
        long long used = r->devices[rdev].used > 0 ? r->devices[rdev].used : 0;
        if (bytes > LLONG_MAX - used || (g_limit > 0 && bytes > g_limit - used)) {
            vcuda_region_unlock(r);
            return CUDA_ERROR_OUT_OF_MEMORY;
        }
    }
    r->procs[slot].used[rdev] += bytes;   /* the slot first: see region.h's invariant */
    vcuda_region_test_hold(1);
    __atomic_store_n(&r->devices[rdev].used, r->devices[rdev].used + bytes, __ATOMIC_RELEASE);
    vcuda_region_unlock(r);
    return CUDA_SUCCESS;
}

void vcuda_mem_unreserve(int rdev, long long bytes)
{
    if (g_region == NULL || rdev < 0 || bytes <= 0)
        return;
    struct vcuda_region *r = g_region;
    vcuda_region_lock(r);
    int slot = vcuda_region_self(r);
    if (slot >= 0) {
        long long mine = r->procs[slot].used[rdev];
        if (bytes > mine)
            bytes = mine; /* never give back more than this process holds */
        r->procs[slot].used[rdev] -= bytes;
        __atomic_store_n(&r->devices[rdev].used, r->devices[rdev].used - bytes, __ATOMIC_RELEASE);
    }
    vcuda_region_unlock(r);
}

void vcuda_mem_track(int kind, uint64_t id, int rdev, long long bytes, uint64_t aux)
{
    struct entry e = {.id = id, .aux = aux, .bytes = bytes, .rdev = rdev, .kind = (uint8_t)kind};
    pthread_mutex_lock(&g_table_lock);
    struct entry *old = find(kind, id);
    if (old != NULL)
        erase(old); /* the driver reused an id we missed the free of */
    put(&e);
    pthread_mutex_unlock(&g_table_lock);
}

static void fill(const struct entry *e, struct vcuda_alloc *out)
{
    out->bytes = e->bytes;
    out->rdev = e->rdev;
    out->aux = e->aux;
}

int vcuda_mem_untrack(int kind, uint64_t id, struct vcuda_alloc *out)
{
    pthread_mutex_lock(&g_table_lock);
    struct entry *e = find(kind, id);
    if (e != NULL) {
        fill(e, out);
        erase(e);
    }
    pthread_mutex_unlock(&g_table_lock);
    return e != NULL ? 0 : -1;
}

int vcuda_mem_lookup(int kind, uint64_t id, struct vcuda_alloc *out)
{
    pthread_mutex_lock(&g_table_lock);
    struct entry *e = find(kind, id);
    if (e != NULL)
        fill(e, out);
    pthread_mutex_unlock(&g_table_lock);
    return e != NULL ? 0 : -1;
}

void vcuda_mem_vmm_map(CUdeviceptr ptr, size_t size, CUmemGenericAllocationHandle handle)
{
    pthread_mutex_lock(&g_table_lock);
    struct entry *h = find(VCUDA_VMM, handle);
    if (h != NULL) {
        h->maps++;
        struct entry m = {.id = ptr, .aux = handle, .bytes = (int64_t)size, .kind = VCUDA_MAP};
        put(&m);
    }
    pthread_mutex_unlock(&g_table_lock);
}

/* with g_table_lock held: one mapping of a handle gone */
static void unmapped(uint64_t handle, long long give[VCUDA_MAX_DEVICES])
{
    struct entry *h = find(VCUDA_VMM, handle);
    if (h == NULL)
        return;
    h->maps--;
    if (h->maps <= 0 && h->released) {
        if (h->rdev >= 0)
            give[h->rdev] += h->bytes;
        erase(h);
    }
}

void vcuda_mem_vmm_unmap(CUdeviceptr ptr, size_t size)
{
    long long give[VCUDA_MAX_DEVICES] = {0};
    pthread_mutex_lock(&g_table_lock);
    struct entry *m = find(VCUDA_MAP, ptr);
    if (m != NULL && (size_t)m->bytes >= size) {
        uint64_t handle = m->aux;
        erase(m);
        unmapped(handle, give);
    } else {
        /* one unmap may span several mappings: take every mapping inside [ptr, ptr + size) */
        for (size_t i = 0; i < g_cap; i++) {
            struct entry *e = &g_table[i];
            if (e->state == 1 && e->kind == VCUDA_MAP && e->id >= ptr && e->id < ptr + size) {
                uint64_t handle = e->aux;
                erase(e);
                unmapped(handle, give);
            }
        }
    }
    pthread_mutex_unlock(&g_table_lock);
    for (int d = 0; d < VCUDA_MAX_DEVICES; d++)
        vcuda_mem_unreserve(d, give[d]);
}

void vcuda_mem_vmm_release(CUmemGenericAllocationHandle handle)
{
    int rdev = -1;
    long long bytes = 0;
    pthread_mutex_lock(&g_table_lock);
    struct entry *h = find(VCUDA_VMM, handle);
    if (h != NULL) {
        h->released = 1;
        if (h->maps <= 0) {
            rdev = h->rdev;
            bytes = h->bytes;
            erase(h);
        }
    }
    pthread_mutex_unlock(&g_table_lock);
    if (bytes > 0)
        vcuda_mem_unreserve(rdev, bytes);
}

uint64_t vcuda_ipc_key(const CUipcMemHandle *handle)
{
    uint64_t h = 0xcbf29ce484222325ULL; /* FNV-1a over the 64 bytes */
    for (int i = 0; i < CU_IPC_HANDLE_SIZE; i++) {
        h ^= (unsigned char)handle->reserved[i];
        h *= 0x100000001b3ULL;
    }
    return h ? h : 1;
}

void vcuda_mem_ipc_exported(CUdeviceptr ptr, uint64_t key)
{
    if (g_region == NULL)
        return;
    pthread_mutex_lock(&g_table_lock);
    struct entry *e = find(VCUDA_PTR, ptr);
    if (e != NULL)
        e->aux = key;
    pthread_mutex_unlock(&g_table_lock);
    struct vcuda_region *r = g_region;
    vcuda_region_lock(r);
    int slot = vcuda_region_self(r);
    int free_i = -1, have = 0;
    for (int i = 0; i < VCUDA_MAX_EXPORTS; i++) {
        if (r->exports[i].key == key && r->exports[i].pid == vcuda_pid())
            have = 1;
        else if (r->exports[i].key == 0 && free_i < 0)
            free_i = i;
    }
    if (!have && free_i < 0) {
        vcuda_region_reclaim_dead(r);
        for (int i = 0; i < VCUDA_MAX_EXPORTS && free_i < 0; i++)
            if (r->exports[i].key == 0)
                free_i = i;
    }
    if (!have && free_i >= 0 && slot >= 0) {
        r->exports[free_i].pid = vcuda_pid();
        r->exports[free_i].start_time = r->procs[slot].start_time;
        r->exports[free_i].key = key;
    }
    /* no room: an import of it elsewhere in the container is charged twice (safe side) */
    vcuda_region_unlock(r);
}

static void ipc_unexport(uint64_t key)
{
    struct vcuda_region *r = g_region;
    vcuda_region_lock(r);
    for (int i = 0; i < VCUDA_MAX_EXPORTS; i++)
        if (r->exports[i].key == key && r->exports[i].pid == vcuda_pid())
            memset(&r->exports[i], 0, sizeof(r->exports[i]));
    vcuda_region_unlock(r);
}

int vcuda_mem_ipc_exported_here(uint64_t key)
{
    if (g_region == NULL)
        return 0;
    struct vcuda_region *r = g_region;
    int found = 0;
    vcuda_region_lock(r);
    for (int i = 0; i < VCUDA_MAX_EXPORTS && !found; i++)
        found = r->exports[i].key == key;
    vcuda_region_unlock(r);
    return found;
}

void vcuda_mem_reclaim_dead(void)
{
    if (g_region == NULL)
        return;
    vcuda_region_lock(g_region);
    vcuda_region_reclaim_dead(g_region);
    vcuda_region_unlock(g_region);
}

int vcuda_mem_find_rdev(const unsigned char uuid[16])
{
    return g_region != NULL ? vcuda_region_find_device(g_region, uuid) : -1;
}

void vcuda_mem_info(int rdev, unsigned long long real_total, unsigned long long *used,
                    unsigned long long *total)
{
    long long u = 0;
    if (g_region != NULL && rdev >= 0)
        u = __atomic_load_n(&g_region->devices[rdev].used, __ATOMIC_ACQUIRE);
    *used = u > 0 ? (unsigned long long)u : 0;
    *total = g_limit > 0 && g_region != NULL ? (unsigned long long)g_limit : real_total;
}

/* Element geometry of a format: a bw x bh block of `num/den` bytes, times NumChannels when
 * per_channel (the plain formats), else fixed. */
struct geometry {
    unsigned bw, bh, num, den, per_channel;
};

static struct geometry format_geometry(int format)
{
    switch (format) {
    case CU_AD_FORMAT_UNSIGNED_INT8: case CU_AD_FORMAT_SIGNED_INT8:
        return (struct geometry){1, 1, 1, 1, 1};
    case CU_AD_FORMAT_UNSIGNED_INT16: case CU_AD_FORMAT_SIGNED_INT16: case CU_AD_FORMAT_HALF:
        return (struct geometry){1, 1, 2, 1, 1};
    case CU_AD_FORMAT_UNSIGNED_INT32: case CU_AD_FORMAT_SIGNED_INT32: case CU_AD_FORMAT_FLOAT:
        return (struct geometry){1, 1, 4, 1, 1};
    case CU_AD_FORMAT_UNORM_INT8X1: case CU_AD_FORMAT_SNORM_INT8X1:
        return (struct geometry){1, 1, 1, 1, 0};
    case CU_AD_FORMAT_UNORM_INT8X2: case CU_AD_FORMAT_SNORM_INT8X2:
    case CU_AD_FORMAT_UNORM_INT16X1: case CU_AD_FORMAT_SNORM_INT16X1:
    case CU_AD_FORMAT_YUY2: case CU_AD_FORMAT_NV16:
        return (struct geometry){1, 1, 2, 1, 0};
    case CU_AD_FORMAT_UNORM_INT8X4: case CU_AD_FORMAT_SNORM_INT8X4:
    case CU_AD_FORMAT_UNORM_INT16X2: case CU_AD_FORMAT_SNORM_INT16X2:
    case CU_AD_FORMAT_UNORM_INT_101010_2: case CU_AD_FORMAT_AYUV: case CU_AD_FORMAT_Y410:
    case CU_AD_FORMAT_Y210: case CU_AD_FORMAT_Y216: case CU_AD_FORMAT_P210: case CU_AD_FORMAT_P216:
        return (struct geometry){1, 1, 4, 1, 0};
    case CU_AD_FORMAT_UNORM_INT16X4: case CU_AD_FORMAT_SNORM_INT16X4: case CU_AD_FORMAT_Y416:
        return (struct geometry){1, 1, 8, 1, 0};
    case CU_AD_FORMAT_NV12:                  /* 8-bit luma + 4:2:0 chroma: 1.5 bytes a pixel */
        return (struct geometry){1, 1, 3, 2, 0};
    case CU_AD_FORMAT_P010: case CU_AD_FORMAT_P016:   /* 16-bit 4:2:0: 3 bytes a pixel */
        return (struct geometry){1, 1, 3, 1, 0};
    case CU_AD_FORMAT_Y444_PLANAR8: case CU_AD_FORMAT_YUV444_8bit_SemiPlanar:
        return (struct geometry){1, 1, 3, 1, 0};
    case CU_AD_FORMAT_Y444_PLANAR10: case CU_AD_FORMAT_YUV444_16bit_SemiPlanar:
        return (struct geometry){1, 1, 6, 1, 0};
    case CU_AD_FORMAT_BC1_UNORM: case CU_AD_FORMAT_BC1_UNORM_SRGB:
    case CU_AD_FORMAT_BC4_UNORM: case CU_AD_FORMAT_BC4_SNORM:
        return (struct geometry){4, 4, 8, 1, 0};
    case CU_AD_FORMAT_BC2_UNORM: case CU_AD_FORMAT_BC2_UNORM_SRGB:
    case CU_AD_FORMAT_BC3_UNORM: case CU_AD_FORMAT_BC3_UNORM_SRGB:
    case CU_AD_FORMAT_BC5_UNORM: case CU_AD_FORMAT_BC5_SNORM:
    case CU_AD_FORMAT_BC6H_UF16: case CU_AD_FORMAT_BC6H_SF16:
    case CU_AD_FORMAT_BC7_UNORM: case CU_AD_FORMAT_BC7_UNORM_SRGB:
        return (struct geometry){4, 4, 16, 1, 0};
    default:                                 /* a format newer than this table: the widest */
        return (struct geometry){1, 1, 16, 1, 0};
    }
}

static unsigned long long ceil_div(unsigned long long a, unsigned long long b)
{
    return a / b + (a % b != 0); /* (a + b - 1) / b wraps for a near 2^64 */
}

long long vcuda_array_bytes(int format, unsigned channels, size_t w, size_t h, size_t d)
{
    struct geometry g = format_geometry(format);
    unsigned long long blocks, bytes;
    unsigned long long per = (unsigned long long)g.num * (g.per_channel ? (channels ? channels : 1) : 1);
    /* saturating: dimensions whose product wraps 64 bits must not be charged a few bytes (or 0,
     * which charges nothing); LLONG_MAX is refused by vcuda_mem_reserve */
    if (__builtin_mul_overflow(ceil_div(w ? w : 1, g.bw), ceil_div(h ? h : 1, g.bh), &blocks) ||
        __builtin_mul_overflow(blocks, (unsigned long long)(d ? d : 1), &blocks) ||
        __builtin_mul_overflow(blocks, per, &bytes) || bytes / g.den > (unsigned long long)LLONG_MAX)
        return LLONG_MAX;
    return (long long)ceil_div(bytes, g.den);
}

#define VCUDA_UNBACKED (CUDA_ARRAY3D_SPARSE | CUDA_ARRAY3D_DEFERRED_MAPPING)

long long vcuda_array3d_bytes(const CUDA_ARRAY3D_DESCRIPTOR *desc)
{
    if (desc->Flags & VCUDA_UNBACKED)
        return 0;
    return vcuda_array_bytes(desc->Format, desc->NumChannels, desc->Width, desc->Height, desc->Depth);
}

long long vcuda_mipmap_bytes(const CUDA_ARRAY3D_DESCRIPTOR *desc, unsigned levels)
{
    if (desc->Flags & VCUDA_UNBACKED)
        return 0;
    size_t w = desc->Width ? desc->Width : 1, h = desc->Height ? desc->Height : 1;
    size_t d = desc->Depth ? desc->Depth : 1;
    int keep_depth = (desc->Flags & (CUDA_ARRAY3D_LAYERED | CUDA_ARRAY3D_CUBEMAP)) != 0;
    long long total = 0;
    if (levels == 0)
        levels = 1;
    for (unsigned i = 0; i < levels; i++) {
        long long level = vcuda_array_bytes(desc->Format, desc->NumChannels, w, h, d);
        if (w == 1 && h == 1 && (keep_depth || d == 1)) {
            long long rest; /* the rest are all this size */
            if (__builtin_mul_overflow(level, (long long)(levels - i), &rest) ||
                __builtin_add_overflow(total, rest, &total))
                return LLONG_MAX;
            break;
        }
        if (__builtin_add_overflow(total, level, &total))
            return LLONG_MAX;
        w = w > 1 ? w / 2 : 1;
        h = h > 1 ? h / 2 : 1;
        if (!keep_depth)
            d = d > 1 ? d / 2 : 1;
    }
    return total;
}

void vcuda_mem_exit(void)
{
    if (g_region == NULL || !vcuda_region_registered())
        return;
    struct vcuda_region *r = g_region;
    pid_t me = vcuda_pid();
    vcuda_region_lock(r);
    for (int i = 0; i < VCUDA_MAX_PROCS; i++)
        if (r->procs[i].pid == me)
            vcuda_region_release_slot(r, i);
    vcuda_region_unlock(r);
}

void vcuda_mem_ipc_forget(uint64_t key)
{
    if (g_region != NULL && key != 0)
        ipc_unexport(key);
}
