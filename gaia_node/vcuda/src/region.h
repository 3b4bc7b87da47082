/* The per-container shared region: one file (vcuda.conf's region=) mapped MAP_SHARED by every
 * process of the container. It holds the container's memory use per device, each process's part
 * of it, and the IPC handles its processes exported, under one process-shared ROBUST mutex: a
 * process SIGKILLed while holding it hands the next locker EOWNERDEAD, which repairs the region
 * (drops dead processes' bytes, recomputes the totals) instead of waiting on a timeout.
 *
 * The layout is fixed (offsets below) so that gaia_node/vcuda/region.py can read it from Python.
 * Invariant under the lock: devices[d].used == sum over procs of procs[p].used[d]. Writers update
 * a process's own slot first and the total second, so a death between the two is repaired by
 * recomputing the totals from the slots. */
#ifndef VCUDA_REGION_H
#define VCUDA_REGION_H

#include <pthread.h>
#include <stdint.h>
#include <sys/types.h>

#include "config.h"

#define VCUDA_REGION_MAGIC 0x3155435641494147ULL /* "GAIAVCU1" little-endian */
#define VCUDA_REGION_VERSION 1
#define VCUDA_MAX_PROCS 1024
#define VCUDA_MAX_EXPORTS 256

struct vcuda_region_device {          /* 32 bytes */
    unsigned char uuid[16];           /* cuDeviceGetUuid: the same GPU whatever its ordinal */
    uint32_t in_use;
    uint32_t pad;
    int64_t used;                     /* bytes the container holds on it */
};

struct vcuda_region_export {          /* 24 bytes: an IPC handle a process here exported */
    uint64_t key;                     /* hash of the 64-byte CUipcMemHandle, 0 = free */
    int32_t pid;
    int32_t pad;
    uint64_t start_time;
};

struct vcuda_region_proc {            /* 144 bytes */
    int32_t pid;                      /* 0 = free */
    int32_t pad;
    uint64_t start_time;              /* /proc/PID/stat starttime: a reused pid is another process */
    int64_t used[VCUDA_MAX_DEVICES];
};

struct vcuda_region {
    uint64_t magic;                   /* 0 */
    uint32_t version;                 /* 8 */
    uint32_t size;                    /* 12: sizeof(struct vcuda_region) */
    int64_t limit;                    /* 16: memory_limit of the last process to open it */
    uint32_t max_devices;             /* 24 */
    uint32_t max_procs;               /* 28 */
    uint64_t owner_deaths;            /* 32: EOWNERDEAD repairs so far */
    uint64_t reclaimed_bytes;         /* 40: bytes taken back from dead processes */
    uint64_t pad0[2];                 /* 48 */
    union {                           /* 64 */
        pthread_mutex_t mutex;
        char bytes[64];
    } lock;
    struct vcuda_region_device devices[VCUDA_MAX_DEVICES];      /* 128 */
    struct vcuda_region_export exports[VCUDA_MAX_EXPORTS];      /* 640 */
    struct vcuda_region_proc procs[VCUDA_MAX_PROCS];            /* 6784 */
};

/* Maps the region at path, creating and initialising it (under flock) when it is new or its
 * magic/version/size do not match. NULL path or "": a private anonymous region (one process).
 * Returns the region or NULL with a message on stderr. */
struct vcuda_region *vcuda_region_open(const char *path);

/* Locks the region; on EOWNERDEAD marks the mutex consistent and repairs the region. */
void vcuda_region_lock(struct vcuda_region *r);
void vcuda_region_unlock(struct vcuda_region *r);

/* Under the lock: this process's slot index (registered on first use; an older slot with this
 * pid, e.g. from before an exec, is reclaimed first). -1 when the table is full of live ones. */
int vcuda_region_self(struct vcuda_region *r);

/* This process has a slot (it allocated through the region at some point). */
int vcuda_region_registered(void);

/* Under the lock: gives back the bytes and exports of every process that is gone (no such pid,
 * a zombie, or the pid reused by a process with another start time); returns the bytes. */
long long vcuda_region_reclaim_dead(struct vcuda_region *r);

/* Under the lock: the region's index for a device UUID, added when new; -1 when full. */
int vcuda_region_device(struct vcuda_region *r, const unsigned char uuid[16]);

/* Without the lock: the index of a device UUID already present, else -1. */
int vcuda_region_find_device(const struct vcuda_region *r, const unsigned char uuid[16]);

/* Under the lock: gives back everything slot `slot` holds (process exit). */
void vcuda_region_release_slot(struct vcuda_region *r, int slot);

/* The kernel's start time of a process (clock ticks since boot), 0 when unreadable. */
uint64_t vcuda_process_start_time(pid_t pid);

/* This process's pid (cached); vcuda_region_forked() in a fork child forgets the parent's. */
pid_t vcuda_pid(void);
void vcuda_region_forked(void);

/* Test hook: GAIA_VCUDA_TEST_HOLD_LOCK_MS=N makes each allocation sleep N ms while holding the
 * lock, after creating the file GAIA_VCUDA_TEST_HOLD_LOCK_FILE (so a test knows when): before it
 * changes anything (mid = 0), or with GAIA_VCUDA_TEST_HOLD_LOCK_AT=mid between the process's slot
 * and the device total (mid = 1), the half-done update a death must be repaired from. */
void vcuda_region_test_hold(int mid);
void vcuda_region_test_hold_init(void);   /* reads the three variables once */

#endif
