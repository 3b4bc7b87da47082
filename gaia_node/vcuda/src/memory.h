/* GPU memory accounting: check + allocate + account atomically across the container's processes
 * (reserve under the region lock BEFORE the driver allocates, roll back when it fails), and the
 * process's own table of what it allocated (pointer/handle -> bytes, device) so frees give back
 * exactly what was charged. */
#ifndef VCUDA_MEMORY_H
#define VCUDA_MEMORY_H

#include <stdint.h>

#include "config.h"
#include "cuda_types.h"

enum vcuda_kind {
    VCUDA_PTR = 1,   /* cuMemAlloc*, pitch, managed, stream-ordered: a device pointer */
    VCUDA_ARRAY,     /* cuArrayCreate / cuArray3DCreate: a CUarray */
    VCUDA_MIPMAP,    /* cuMipmappedArrayCreate */
    VCUDA_VMM,       /* cuMemCreate: a generic allocation handle */
    VCUDA_MAP,       /* cuMemMap: a mapped address -> its handle (bytes 0) */
    VCUDA_IPC,       /* cuIpcOpenMemHandle: an imported pointer */
    VCUDA_POOL,      /* cuMemPoolCreate: a pool -> its device (bytes 0) */
};

/* The driver calls accounting needs, resolved by hooks.c from the real driver. */
struct vcuda_mem_driver {
    CUresult (*ctx_get_device)(CUdevice *dev);
    CUresult (*device_get_uuid)(CUuuid *uuid, CUdevice dev);
};

struct vcuda_alloc {
    int64_t bytes;
    int32_t rdev;
    uint64_t aux;    /* VCUDA_MAP: the handle; VCUDA_PTR: the IPC export key, if exported */
};

void vcuda_mem_init(const struct vcuda_config *cfg, const struct vcuda_mem_driver *drv);
int vcuda_mem_active(void);                 /* a config and a region: accounting is on */
long long vcuda_mem_limit(void);            /* bytes per device, 0 = none */

/* The region's index of CUDA device `dev` (by UUID, so every process agrees whatever its
 * CUDA_VISIBLE_DEVICES); the current context's device for vcuda_mem_current_rdev. -1: none. */
int vcuda_mem_rdev(CUdevice dev);
int vcuda_mem_current_rdev(void);

/* Reserve bytes on a device for this process: CUDA_SUCCESS, or CUDA_ERROR_OUT_OF_MEMORY when the
 * container's use would pass the limit (after reclaiming dead processes' bytes). */
CUresult vcuda_mem_reserve(int rdev, long long bytes);
void vcuda_mem_unreserve(int rdev, long long bytes);

/* The table: record an allocation after the driver made it; take it out on free (returns 0 and
 * fills *out, or -1 when this process never recorded it, e.g. made before accounting began). */
void vcuda_mem_track(int kind, uint64_t id, int rdev, long long bytes, uint64_t aux);
int vcuda_mem_untrack(int kind, uint64_t id, struct vcuda_alloc *out);
int vcuda_mem_lookup(int kind, uint64_t id, struct vcuda_alloc *out);

/* Virtual memory management: physical memory is charged at cuMemCreate and given back when the
 * handle is released AND no mapping of it remains (the driver frees it only then). */
void vcuda_mem_vmm_map(CUdeviceptr ptr, size_t size, CUmemGenericAllocationHandle handle);
void vcuda_mem_vmm_unmap(CUdeviceptr ptr, size_t size);
void vcuda_mem_vmm_release(CUmemGenericAllocationHandle handle);

/* IPC: an exported handle is remembered in the region, so an import by another process of the
 * same container costs nothing (those bytes are charged to the exporter already), while an import
 * of memory from outside the container is charged to it. */
uint64_t vcuda_ipc_key(const CUipcMemHandle *handle);
void vcuda_mem_ipc_exported(CUdeviceptr ptr, uint64_t key);
int vcuda_mem_ipc_exported_here(uint64_t key);
void vcuda_mem_ipc_forget(uint64_t key);   /* the exported allocation was freed */

/* What the container uses on device rdev and the total to report (the limit, else real_total).
 * Both read without the lock: one aligned 64-bit load. */
/* Gives back what processes that are gone still hold (as the device did when they died): the
 * memory info hooks call it first, so their figures never count the dead. */
void vcuda_mem_reclaim_dead(void);

/* Without the lock: the region's index for a UUID some process already registered, else -1. */
int vcuda_mem_find_rdev(const unsigned char uuid[16]);

void vcuda_mem_info(int rdev, unsigned long long real_total, unsigned long long *used,
                    unsigned long long *total);

/* Sizes charged for arrays: the bytes the texels occupy. Width x max(Height,1) x max(Depth,1)
 * elements (Depth is the layer count of layered arrays and 6 x layers for cubemaps), each the
 * format's element size (per channel x NumChannels for the plain formats; fixed for packed,
 * block-compressed (per 4x4 block) and YUV formats). Tiling padding the driver adds is not
 * visible through the API and is not charged. Mipmapped: the sum over the levels, Width/Height
 * (and Depth unless layered or cubemap) halving per level, never below 1. Sparse and
 * deferred-mapping arrays own no memory (what gets mapped into them comes from cuMemCreate, charged
 * there): 0. */
long long vcuda_array_bytes(int format, unsigned channels, size_t w, size_t h, size_t d);
long long vcuda_array3d_bytes(const CUDA_ARRAY3D_DESCRIPTOR *desc);
long long vcuda_mipmap_bytes(const CUDA_ARRAY3D_DESCRIPTOR *desc, unsigned levels);

/* Pitch allocations: reserved at WidthInBytes rounded up to 512 (the widest pitch alignment of
 * current GPUs) x Height before the call, then corrected to the driver's *pPitch x Height. */
#define VCUDA_PITCH_ALIGN 512

/* Process exit: give back everything this process still holds. */
void vcuda_mem_exit(void);

#endif
