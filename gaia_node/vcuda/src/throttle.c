/* Compute share of libvcuda: holds a container's GPU time to its share.
 *
 * How device time is measured. A launch returns before the kernel runs, so its duration cannot be
 * seen at the call. After every launch the throttle records an event on the launch's stream; when
 * the event is complete (cuEventQuery, never a blocking wait), its device timestamp, converted to
 * CLOCK_MONOTONIC through an anchor event recorded on a private idle stream, is the end of that
 * launch's work. A GPU runs one context at a time, so the work's start is the later of its launch
 * time and the end of whatever ran before it on the device, ANY container's work included. Every
 * container on a GPU therefore reports its completed intervals into one sorted ring in the GPU's
 * shared file, and each interval is charged end - max(launch, previous end). A report that arrives
 * late (another container polls later) is slotted in by its end time and refunds the one interval
 * it overlapped. The charges partition the device's busy time exactly as a serial device spends
 * it, so queueing behind another container is never charged as one's own GPU time. (NVML's
 * utilisation samples are 1/6 s coarse and per device, which is too coarse for 50 us kernels.)
 *
 * How the share is held. Each container has a token bucket per device in its own shared file
 * (region_path + ".sm"; every process of the container maps it, so they draw on one budget):
 * refilled at rate = share % of wall time, at most rate x 50 ms deep (the sliding window), and
 * debited by the charges above. Before a launch, while tokens minus the estimated time of the
 * container's launched-but-unfinished work are negative, the launching thread sleeps
 * (nanosleep, 20 us .. 5 ms at a time, re-polling completions in between).
 *
 * Elastic mode. Every container on a GPU keeps a slot in the GPU's file (gpu_region_dir/gpu<N>.sm):
 * its share, a heartbeat (its last launch, or wait to launch), and its claim: the whole share while it is throttled, just
 * became active, or when its work spent over 10 % of the last 100 ms queued behind other
 * containers' work; else its recent use plus a 10 % margin (capped at the share); nothing once idle
 * for 200 ms. An elastic container's rate is
 *   max(share, min(ceiling, 100 % - the other active containers' claims))
 * so it uses what others leave idle up to its ceiling and shrinks to its share as soon as another
 * container starts wanting its own. A hard container's rate is its share.
 *
 * Locks: the two shared files each carry a robust, process-shared mutex: a holder that is
 * SIGKILLed leaves EOWNERDEAD for the next locker, who marks it consistent and goes on (never a
 * timeout). Every field stays usable after any single store; the worst a holder killed mid-update
 * leaves is one ring interval lost or an in-flight total off until the next 100 ms re-sum. They
 * are never held together, and never across a driver call or a sleep.
 */
#define _GNU_SOURCE
#include "throttle.h"

#include "config.h"
#include "cuda_types.h"
#include "shm_mutex.h"

#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

typedef struct CUevent_st *vc_event;        /* CUevent */

/* tunables */
#define WINDOW_NS 50000000LL                /* bucket depth: share % of 50 ms */
#define ACTIVE_NS 200000000LL               /* launched within this: active on the GPU */
#define START_NS 300000000LL                /* newly active: claims its whole share this long */
#define BACKLOG_NS 100000000LL              /* throttled within this: wants its whole share */
#define USAGE_WIN_NS 100000000LL            /* use is measured over 100 ms windows */
#define MARGIN_PPM 100000LL                 /* headroom kept above a light container's use */
#define BLOCKED_PPM 100000LL                /* queued behind others this much: wants its share */
#define STUCK_NS 2000000000LL               /* waited this long for unfinished work only: go */
#define REFRESH_NS 2000000LL                /* elastic rate recomputed at most every 2 ms */
#define REANCHOR_NS 2000000000LL            /* fresh anchor event every 2 s (float ms precision) */
#define ANCHOR_SPIN_NS 50000LL              /* an anchor must be reached this soon to be trusted */
#define ANCHOR_RETRY_NS 1000000LL           /* ... else try again 1 ms later */
#define STALE_NS 10000000000LL              /* a GPU slot silent this long may be taken over */
#define REAP_NS 100000000LL                 /* dead-process sweep of the .sm file */
#define MIN_SLEEP_NS 20000LL
#define MAX_SLEEP_NS 5000000LL
#define MAX_PEND 1024
#define MAX_DONE 256                        /* completions accounted per poll */
#define MAX_CTX 16
#define POOL_MAX 256
#define PPM 1000000LL

/* ---------------------------------------------------------------- shared files */

union shm_lock {
    pthread_mutex_t m;
    char pad[64];
};

#define SM_MAGIC 0x31304d5341554356ULL      /* "VCUASM01" */
#define SM_PROCS 64

struct sm_dev {
    int64_t tokens_ns;                      /* may go negative: debt is paid by waiting */
    int64_t last_refill_ns;
    int64_t rate_ppm;                       /* refill rate now (share, or elastic's) */
    int64_t used_ns;                        /* device time charged, in all */
    int64_t launches;
    int64_t waited_ns;                      /* time launches slept in the throttle, in all */
    int64_t win_start_ns, win_used_ns;      /* the current usage window */
    int64_t usage_ppm;                      /* use over the last full window */
    int64_t last_launch_ns, active_since_ns, last_wait_ns;
    int64_t win_blocked_ns;                 /* time its work queued behind other containers' */
    int64_t blocked_ppm;                    /* ... over the last full window */
    int64_t inflight_ns;                    /* sum of the processes' inflight_ns below */
    int64_t reserved[1];
};

struct sm_proc {
    int32_t pid;
    int32_t pad;
    int64_t inflight_ns[VCUDA_MAX_DEVICES]; /* estimated time of this process's unfinished work */
};

struct sm_file {
    uint64_t magic;
    int32_t version, size;
    union shm_lock lock;
    int64_t last_reap_ns;
    int64_t reserved[7];
    struct sm_dev dev[VCUDA_MAX_DEVICES];
    struct sm_proc procs[SM_PROCS];
};

#define GPU_MAGIC 0x3130555047554356ULL     /* "VCUGPU01" */
#define GPU_SLOTS 32
#define RING_CAP 4096

struct gpu_slot {
    char key[64];                           /* the container (its region path, or hash) */
    int64_t share_ppm, ceiling_ppm;
    int32_t elastic, pid;
    int64_t heartbeat_ns;                   /* its last launch */
    int64_t claim_ppm;                      /* what it wants now (see the top) */
    int64_t usage_ppm;
    int64_t rate_ppm;
    int64_t refund_ns;                      /* credited back by others' late reports */
    int64_t reserved[2];
};

struct ring_ent {
    int64_t start_ns, end_ns;               /* start: as charged (after overlap correction) */
    int32_t slot, pad;
};

struct gpu_file {
    uint64_t magic;
    int32_t version, size;
    union shm_lock lock;
    int64_t floor_ns;                       /* latest end dropped off the ring's old end */
    int32_t n, pad;
    int64_t reserved[6];
    struct gpu_slot slots[GPU_SLOTS];
    struct ring_ent ring[RING_CAP];         /* sorted by end_ns */
};

/* gaia_node/vcuda/usage.py reads these two files (for `gaia node gpus` and the tests): the layout
 * is fixed here, and a change must bump the magics and the reader together. */
_Static_assert(sizeof(union shm_lock) == 64, "shm_lock");
_Static_assert(sizeof(struct sm_dev) == 128 && offsetof(struct sm_file, dev) == 144, "sm_file");
_Static_assert(sizeof(struct sm_proc) == 136 && offsetof(struct sm_file, procs) == 2192, "sm_proc");
_Static_assert(sizeof(struct gpu_slot) == 144 && offsetof(struct gpu_file, slots) == 144, "gpu_slot");
_Static_assert(sizeof(struct ring_ent) == 24 && offsetof(struct gpu_file, ring) == 4752, "ring");

/* ---------------------------------------------------------------- driver entry points */

/* hooks.c (V1) hands out the real driver's functions, never its own wrappers. */
extern void *vcuda_real_symbol(const char *name) __attribute__((weak));

static struct {
    CUresult (*ctx_get_current)(CUcontext *);
    CUresult (*ctx_get_device)(CUdevice *);
    CUresult (*event_create)(vc_event *, unsigned);
    CUresult (*event_record)(vc_event, CUstream);
    CUresult (*event_query)(vc_event);
    CUresult (*event_elapsed)(float *, vc_event, vc_event);
    CUresult (*event_destroy)(vc_event);
    CUresult (*stream_create)(CUstream *, unsigned);
    CUresult (*stream_is_capturing)(CUstream, int *);
} drv;

static void *real_symbol(const char *name)
{
    if (vcuda_real_symbol)
        return vcuda_real_symbol(name);
    void *h = dlopen("libcuda.so.1", RTLD_NOW | RTLD_NOLOAD);
    return h ? dlsym(h, name) : NULL;
}

static int resolve_driver(void)
{
    drv.ctx_get_current = real_symbol("cuCtxGetCurrent");
    drv.ctx_get_device = real_symbol("cuCtxGetDevice");
    drv.event_create = real_symbol("cuEventCreate");
    drv.event_record = real_symbol("cuEventRecord");
    drv.event_query = real_symbol("cuEventQuery");
    drv.event_elapsed = real_symbol("cuEventElapsedTime");
    drv.event_destroy = real_symbol("cuEventDestroy_v2");
    if (drv.event_destroy == NULL)
        drv.event_destroy = real_symbol("cuEventDestroy");
    drv.stream_create = real_symbol("cuStreamCreate");
    drv.stream_is_capturing = real_symbol("cuStreamIsCapturing");   /* optional */
    return drv.ctx_get_current && drv.ctx_get_device && drv.event_create && drv.event_record &&
           drv.event_query && drv.event_elapsed && drv.event_destroy && drv.stream_create;
}

/* ---------------------------------------------------------------- process state */

struct ctx_rec {
    CUcontext ctx;
    int dev;                                /* device ordinal of the context */
    CUstream priv;                          /* private stream for anchor events */
    vc_event anchor;                        /* an event whose device time is known: */
    int64_t anchor_ns;                      /* ... this CLOCK_MONOTONIC time */
    int verified;                           /* the device reached it within ANCHOR_SPIN_NS */
    int stale;                              /* an event record failed: context gone, re-create */
    int64_t next_try_ns;                    /* next anchor attempt */
    vc_event pool[POOL_MAX];
    int npool;
};

struct pend {
    vc_event ev;
    CUstream stream;
    int64_t launch_ns, est_ns;
    int ctx, dev;
};

static struct {
    int on;                                 /* throttling active in this process */
    int failed;                             /* driver entry points missing: pass through */
    int resolved;
    struct vcuda_config cfg;
    int64_t share_ppm, ceiling_ppm;
    char key[64];
    struct sm_file *sm;
    struct gpu_file *gpu[VCUDA_MAX_DEVICES];
    int gslot[VCUDA_MAX_DEVICES];
    int gfail[VCUDA_MAX_DEVICES];           /* its GPU file could not be opened */
    int pslot;
    pid_t pid;                              /* getpid() is a system call: cached (and on fork) */
    pthread_mutex_t mu;                     /* process-local state below */
    struct ctx_rec ctx[MAX_CTX];
    int nctx;
    struct pend pend[MAX_PEND];
    int npend;
    int64_t est_ns[VCUDA_MAX_DEVICES];      /* average device time per launch (EWMA) */
    int have_est[VCUDA_MAX_DEVICES];
    int64_t next_refresh_ns[VCUDA_MAX_DEVICES];
} T = {.mu = PTHREAD_MUTEX_INITIALIZER, .pslot = -1};

/* what before_launch tells after_launch (same thread) */
static __thread int64_t t_launch_ns;
static __thread int t_ctx = -1;
static __thread int t_skip;

static int64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

static void shm_lock(union shm_lock *l)
{
    vcuda_shm_mutex_lock(&l->m, "compute share");   /* what a dead holder left is repaired by sweeps */
}

static void shm_unlock(union shm_lock *l) { pthread_mutex_unlock(&l->m); }

static void shm_lock_init(union shm_lock *l) { vcuda_shm_mutex_init(&l->m); }

/* Map a shared file of `size` bytes, initialising it under flock when its magic is absent.
 * path NULL: an anonymous shared mapping (this process and the children it forks). shared_mode: a
 * new file is made writable by every user (the GPU file: containers of other users share it). */
static void *map_shared(const char *path, size_t size, uint64_t magic, union shm_lock *(*lock_of)(void *),
                        int shared_mode)
{
    void *p;
    if (path == NULL) {
        p = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
        if (p == MAP_FAILED)
            return NULL;
        shm_lock_init(lock_of(p));
        struct { uint64_t magic; int32_t version, size; } *h = p;
        h->version = 1;
        h->size = (int32_t)size;
        __atomic_store_n(&h->magic, magic, __ATOMIC_RELEASE);
        return p;
    }
    int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0666);
    if (fd < 0) {
        fprintf(stderr, "gaia vcuda: compute share: %s: %s; launches are not throttled\n", path,
                strerror(errno));
        return NULL;
    }
    flock(fd, LOCK_EX);
    struct stat st;
    if (fstat(fd, &st) != 0 || (st.st_size < (off_t)size && ftruncate(fd, (off_t)size) != 0)) {
        fprintf(stderr, "gaia vcuda: compute share: %s: %s; launches are not throttled\n", path,
                strerror(errno));
        flock(fd, LOCK_UN);
        close(fd);
        return NULL;
    }
    if (st.st_size == 0 && shared_mode)
        fchmod(fd, 0666);
    p = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    if (p == MAP_FAILED) {
        fprintf(stderr, "gaia vcuda: compute share: %s: mmap: %s\n", path, strerror(errno));
        flock(fd, LOCK_UN);
        close(fd);
        return NULL;
    }
    struct { uint64_t magic; int32_t version, size; } *h = p;
    if (h->magic != magic) {
        memset(p, 0, size);
        shm_lock_init(lock_of(p));
        h->version = 1;
        h->size = (int32_t)size;
        __atomic_store_n(&h->magic, magic, __ATOMIC_RELEASE);
    } else if (h->size != (int32_t)size) {
        fprintf(stderr, "gaia vcuda: compute share: %s: layout of another libvcuda version "
                "(size %d, expected %zu); launches are not throttled\n", path, h->size, size);
        munmap(p, size);
        p = NULL;
    }
    flock(fd, LOCK_UN);
    close(fd);
    return p;
}

static union shm_lock *sm_lock_of(void *p) { return &((struct sm_file *)p)->lock; }
static union shm_lock *gpu_lock_of(void *p) { return &((struct gpu_file *)p)->lock; }

/* ---------------------------------------------------------------- init */

static void make_key(void)
{
    const char *r = T.cfg.region_path;
    size_t n = strlen(r);
    if (n == 0) {
        snprintf(T.key, sizeof(T.key), "pid%d", (int)getpid());
    } else if (n < sizeof(T.key)) {
        memcpy(T.key, r, n + 1);
    } else {                                /* FNV-1a of the path, then its tail */
        uint64_t h = 1469598103934665603ULL;
        for (size_t i = 0; i < n; i++)
            h = (h ^ (unsigned char)r[i]) * 1099511628211ULL;
        snprintf(T.key, sizeof(T.key), "%016llx:%s", (unsigned long long)h, r + n - 40);
    }
}

static pthread_mutex_t open_mu = PTHREAD_MUTEX_INITIALIZER;   /* gpu_of's; re-made in a fork child */

static void at_fork_child(void)
{
    /* CUDA contexts do not survive fork: the child starts with no contexts and no work. */
    T.nctx = 0;
    T.npend = 0;
    T.pslot = -1;
    T.pid = getpid();
    memset(T.have_est, 0, sizeof(T.have_est));
    pthread_mutex_init(&T.mu, NULL);
    /* a thread of the parent may have been opening a GPU file: its lock would never be released */
    pthread_mutex_init(&open_mu, NULL);
}

static void at_exit_release(void)
{
    if (T.sm == NULL || T.pslot < 0)
        return;
    shm_lock(&T.sm->lock);
    if (T.sm->procs[T.pslot].pid == (int32_t)T.pid) {
        for (int d = 0; d < VCUDA_MAX_DEVICES; d++)
            T.sm->dev[d].inflight_ns -= T.sm->procs[T.pslot].inflight_ns[d];
        memset(&T.sm->procs[T.pslot], 0, sizeof(T.sm->procs[T.pslot]));
    }
    shm_unlock(&T.sm->lock);
}

void vcuda_throttle_init(const struct vcuda_config *cfg)
{
    if (cfg == NULL || !cfg->enabled)
        return;
    T.cfg = *cfg;
    int share = cfg->share < 1 ? 1 : cfg->share > 100 ? 100 : cfg->share;
    int ceiling = cfg->elastic ? cfg->ceiling : share;
    if (ceiling < share)
        ceiling = share;
    if (ceiling > 100)
        ceiling = 100;
    T.pid = getpid();
    T.share_ppm = share * 10000LL;
    T.ceiling_ppm = ceiling * 10000LL;
    if (share >= 100)                       /* a whole GPU: nothing to hold back */
        return;
    make_key();
    if (cfg->region_path[0]) {
        char path[4200];
        snprintf(path, sizeof(path), "%s.sm", cfg->region_path);
        T.sm = map_shared(path, sizeof(struct sm_file), SM_MAGIC, sm_lock_of, 0);
    } else {
        T.sm = map_shared(NULL, sizeof(struct sm_file), SM_MAGIC, sm_lock_of, 0);
    }
    if (T.sm == NULL)
        return;
    pthread_atfork(NULL, NULL, at_fork_child);
    atexit(at_exit_release);
    T.on = 1;
}

/* This container's slot in a GPU file: its own, else a free one or one silent for STALE_NS.
 * -1 when all GPU_SLOTS are taken. Call with the GPU lock. */
static int gpu_slot_locked(struct gpu_file *g, int64_t now)
{
    int slot = -1, stale = -1;
    for (int i = 0; i < GPU_SLOTS; i++) {
        if (strncmp(g->slots[i].key, T.key, sizeof(T.key)) == 0) {
            slot = i;
            break;
        }
        if (stale < 0 && (g->slots[i].key[0] == '\0' || now - g->slots[i].heartbeat_ns > STALE_NS))
            stale = i;
    }
    if (slot < 0 && stale >= 0) {
        slot = stale;
        memset(&g->slots[slot], 0, sizeof(g->slots[slot]));
        memcpy(g->slots[slot].key, T.key, sizeof(T.key));
        g->slots[slot].heartbeat_ns = now;  /* (not stale while its first launches run) */
    }
    if (slot >= 0) {
        struct gpu_slot *s = &g->slots[slot];
        s->share_ppm = T.share_ppm;
        s->ceiling_ppm = T.ceiling_ppm;
        s->elastic = T.cfg.elastic;
        s->pid = (int32_t)T.pid;
    }
    return slot;
}

/* The GPU file of device ordinal `dev`, opened on first use. */
static struct gpu_file *gpu_of(int dev)
{
    struct gpu_file *g = __atomic_load_n(&T.gpu[dev], __ATOMIC_ACQUIRE);
    if (g || T.gfail[dev])
        return g;
    pthread_mutex_lock(&open_mu);
    if (T.gpu[dev] || T.gfail[dev]) {       /* another thread opened it meanwhile */
        pthread_mutex_unlock(&open_mu);
        return T.gpu[dev];
    }
    int host = dev < T.cfg.device_count ? T.cfg.devices[dev] : dev;
    char path[4200] = "(private)";
    if (T.cfg.gpu_region_dir[0])
        snprintf(path, sizeof(path), "%s/gpu%d.sm", T.cfg.gpu_region_dir, host);
    else if (T.cfg.region_path[0])          /* no neighbours known: a ring of our own */
        snprintf(path, sizeof(path), "%s.gpu%d", T.cfg.region_path, dev);
    g = map_shared(T.cfg.gpu_region_dir[0] || T.cfg.region_path[0] ? path : NULL,
                   sizeof(struct gpu_file), GPU_MAGIC, gpu_lock_of, T.cfg.gpu_region_dir[0] != 0);
    if (g == NULL) {
        T.gfail[dev] = 1;
        pthread_mutex_unlock(&open_mu);
        return NULL;
    }
    shm_lock(&g->lock);
    int slot = gpu_slot_locked(g, now_ns());
    shm_unlock(&g->lock);
    if (slot < 0) {
        fprintf(stderr, "gaia vcuda: compute share: %s has no free slot (%d containers); "
                "this container's launches on GPU %d are not corrected for others' queueing\n",
                path, GPU_SLOTS, host);
    }
    T.gslot[dev] = slot;
    __atomic_store_n(&T.gpu[dev], g, __ATOMIC_RELEASE);
    pthread_mutex_unlock(&open_mu);
    return g;
}

/* This process's slot in the .sm file (for its in-flight estimate). Call with the .sm lock. */
static int proc_slot_locked(int64_t now)
{
    pid_t me = T.pid;
    if (now - T.sm->last_reap_ns > REAP_NS) {   /* dead processes' estimates must not linger */
        T.sm->last_reap_ns = now;
        for (int i = 0; i < SM_PROCS; i++) {
            pid_t p = T.sm->procs[i].pid;
            if (p > 0 && p != me && kill(p, 0) != 0 && errno == ESRCH) {
                for (int d = 0; d < VCUDA_MAX_DEVICES; d++)
                    T.sm->dev[d].inflight_ns -= T.sm->procs[i].inflight_ns[d];
                memset(&T.sm->procs[i], 0, sizeof(T.sm->procs[i]));
            }
        }
        /* and the totals are re-summed: a holder killed between its two stores left them apart */
        for (int d = 0; d < VCUDA_MAX_DEVICES; d++) {
            int64_t sum = 0;
            for (int i = 0; i < SM_PROCS; i++)
                sum += T.sm->procs[i].inflight_ns[d];
            T.sm->dev[d].inflight_ns = sum;
        }
    }
    if (T.pslot >= 0 && T.sm->procs[T.pslot].pid == me)
        return T.pslot;
    for (int i = 0; i < SM_PROCS; i++) {
        if (T.sm->procs[i].pid == 0) {
            memset(&T.sm->procs[i], 0, sizeof(T.sm->procs[i]));
            T.sm->procs[i].pid = me;
            T.pslot = i;
            return i;
        }
    }
    return -1;                              /* more than 64 launching processes: no estimate */
}

/* ---------------------------------------------------------------- contexts, anchors, events */

/* Take an anchor: an event recorded on the context's idle private stream is reached as soon as
 * it is recorded, so its device time is the host time the record call returned. (On a GPU the
 * device reaches it a little later, as it starts a kernel a little after its launch call: the two
 * latencies cancel in end - launch, leaving the launch call's own duration charged: the error
 * errs on the side of holding a container back.) A GPU busy with another
 * context may reach it later, so the anchor is verified: it must be reached within ANCHOR_SPIN_NS
 * (we spin on cuEventQuery that long at most), else the old anchor stays and we try again later.
 * force: accept it unverified when there is no anchor at all. */
static void take_anchor(struct ctx_rec *r, int64_t now, int force)
{
    vc_event e;
    r->next_try_ns = now + ANCHOR_RETRY_NS;
    if (drv.event_create(&e, 0) != CUDA_SUCCESS)
        return;
    int64_t t0 = now_ns();
    if (drv.event_record(e, r->priv) != CUDA_SUCCESS) {
        drv.event_destroy(e);
        return;
    }
    int64_t t1 = now_ns();
    int verified = 0;
    for (int64_t t = t1; t - t0 <= ANCHOR_SPIN_NS; t = now_ns()) {
        CUresult rc = drv.event_query(e);
        if (rc == CUDA_SUCCESS) {
            verified = 1;
            break;
        }
        if (rc != 600 /* CUDA_ERROR_NOT_READY */)
            break;
    }
    if (!verified && !(force && r->anchor == NULL)) {
        drv.event_destroy(e);
        return;
    }
    if (r->anchor)
        drv.event_destroy(r->anchor);
    r->anchor = e;
    r->anchor_ns = t1;
    r->verified = verified;
}

static int init_ctx(struct ctx_rec *r, CUcontext c, int64_t now)
{
    CUdevice dev = 0;
    if (drv.ctx_get_device(&dev) != CUDA_SUCCESS || dev < 0 || dev >= VCUDA_MAX_DEVICES)
        return -1;
    memset(r, 0, sizeof(*r));               /* (a stale record's events died with its context) */
    r->ctx = c;
    r->dev = dev;
    if (drv.stream_create(&r->priv, 1 /* CU_STREAM_NON_BLOCKING */) == CUDA_SUCCESS)
        take_anchor(r, now, 1);
    if (r->anchor == NULL) {
        r->ctx = NULL;                      /* (the slot is free again) */
        return -1;
    }
    return 0;
}

/* The record of context c (created on first sight, re-created when its events stopped working:
 * the context was destroyed and another one got its handle). Call with T.mu. */
static int ctx_index(CUcontext c, int64_t now)
{
    for (int i = 0; i < T.nctx; i++) {
        if (T.ctx[i].ctx != c)
            continue;
        if (T.ctx[i].stale && init_ctx(&T.ctx[i], c, now) != 0)
            return -1;
        return i;
    }
    int i = T.nctx;
    for (int j = 0; j < T.nctx; j++)
        if (T.ctx[j].ctx == NULL)
            i = j;
    if (i >= MAX_CTX || init_ctx(&T.ctx[i], c, now) != 0)
        return -1;
    if (i == T.nctx)
        T.nctx++;
    return i;
}

/* A fresh anchor every REANCHOR_NS (cuEventElapsedTime's float loses precision far from it), and
 * soon after an unverified one. */
static void maybe_reanchor(struct ctx_rec *r, int64_t now)
{
    if (r->ctx == NULL || now < r->next_try_ns)
        return;
    if (!r->verified || now - r->anchor_ns > REANCHOR_NS)
        take_anchor(r, now, 0);
}

/* ---------------------------------------------------------------- the device-time ring */

/* Insert a completed interval [start, end] of container slot `slot` and return its charge; adds to
 * *blocked the time it waited behind another container's work. Call with the GPU lock. */
static int64_t ring_insert(struct gpu_file *g, int slot, int64_t start, int64_t end, int64_t *blocked)
{
    if (g->n >= RING_CAP) {                 /* drop the older half; remember where it ended */
        int drop = RING_CAP / 2;
        if (g->ring[drop - 1].end_ns > g->floor_ns)
            g->floor_ns = g->ring[drop - 1].end_ns;
        memmove(&g->ring[0], &g->ring[drop], (size_t)(g->n - drop) * sizeof(g->ring[0]));
        g->n -= drop;
    }
    int p = g->n;
    while (p > 0 && g->ring[p - 1].end_ns > end)
        p--;
    int64_t prev = p > 0 ? g->ring[p - 1].end_ns : g->floor_ns;
    int64_t s = start > prev ? start : prev;
    if (p > 0 && g->ring[p - 1].slot != slot && prev > start)
        *blocked += (prev < end ? prev : end) - start;
    if (s > end)
        s = end;
    memmove(&g->ring[p + 1], &g->ring[p], (size_t)(g->n - p) * sizeof(g->ring[0]));
    g->ring[p].start_ns = s;
    g->ring[p].end_ns = end;
    g->ring[p].slot = slot;
    g->n++;
    if (p + 1 < g->n) {                     /* the next interval cannot have run before we ended */
        struct ring_ent *next = &g->ring[p + 1];
        if (next->start_ns < end) {
            int64_t refund = end - next->start_ns;
            next->start_ns = end;
            if (next->slot >= 0 && next->slot < GPU_SLOTS)
                g->slots[next->slot].refund_ns += refund;
        }
    }
    return end - s;
}

/* ---------------------------------------------------------------- accounting */

struct done {
    int64_t launch_ns, end_ns, est_ns;
    int dev;
};

static void sm_charge_locked(struct sm_dev *d, int64_t charge, int64_t blocked, int64_t now)
{
    d->tokens_ns -= charge;
    d->used_ns += charge;
    d->win_used_ns += charge;
    d->win_blocked_ns += blocked;
    if (now - d->win_start_ns >= USAGE_WIN_NS) {
        int64_t len = now - d->win_start_ns;
        d->usage_ppm = d->win_start_ns ? d->win_used_ns * PPM / len : 0;
        d->blocked_ppm = d->win_start_ns ? d->win_blocked_ns * PPM / len : 0;
        d->win_start_ns = now;
        d->win_used_ns = 0;
        d->win_blocked_ns = 0;
    }
}

static void refill_locked(struct sm_dev *d, int64_t now)
{
    if (d->last_refill_ns == 0 || d->rate_ppm == 0) {
        d->last_refill_ns = now;
        if (d->rate_ppm == 0)
            d->rate_ppm = T.share_ppm;
        return;
    }
    int64_t dt = now - d->last_refill_ns;
    if (dt <= 0)
        return;
    d->tokens_ns += dt * d->rate_ppm / PPM;
    int64_t cap = d->rate_ppm * (WINDOW_NS / 1000) / (PPM / 1000);
    if (d->tokens_ns > cap)
        d->tokens_ns = cap;
    d->last_refill_ns = now;
}

/* Elastic: the rate this container may use on the GPU now. Call with the GPU lock. */
static int64_t elastic_rate_locked(struct gpu_file *g, int me, int64_t now)
{
    if (!T.cfg.elastic)
        return T.share_ppm;
    int64_t others = 0;
    for (int i = 0; i < GPU_SLOTS; i++) {
        struct gpu_slot *s = &g->slots[i];
        if (i == me || s->key[0] == '\0' || now - s->heartbeat_ns > ACTIVE_NS)
            continue;
        others += s->claim_ppm;
    }
    int64_t idle = PPM - others;
    int64_t r = idle < T.ceiling_ppm ? idle : T.ceiling_ppm;
    return r > T.share_ppm ? r : T.share_ppm;
}

/* Poll this process's finished launches, report them to the GPU rings, bring the container's
 * buckets up to date, and decide whether a launch on device `dev` may go now (1) or must wait (0,
 * with *avail the container's tokens minus its unfinished work, and *rate its refill rate). When it
 * goes, the launch is recorded as the container's latest. Call without any lock. */
static int poll_and_decide(int64_t now, int dev, int64_t t0, int64_t *avail_out, int64_t *rate_out)
{
    struct done done[MAX_DONE];
    int ndone = 0;
    int64_t inflight[VCUDA_MAX_DEVICES];
    unsigned done_mask = 0, pend_mask = 0;

    pthread_mutex_lock(&T.mu);
    for (int i = 0; i < T.nctx; i++)
        maybe_reanchor(&T.ctx[i], now);
    /* Events of one stream complete in order: stop querying a stream at its first unfinished one. */
    CUstream stalled[8];
    int nstalled = 0, keep = 0;
    for (int i = 0; i < T.npend; i++) {
        struct pend *p = &T.pend[i];
        int skip = ndone >= MAX_DONE;
        for (int b = 0; b < nstalled && !skip; b++)
            skip = stalled[b] == p->stream;
        CUresult rc = skip ? 600 : drv.event_query(p->ev);
        if (rc == CUDA_SUCCESS) {
            struct ctx_rec *r = &T.ctx[p->ctx];
            float ms = 0;
            int64_t end;
            if (drv.event_elapsed(&ms, r->anchor, p->ev) == CUDA_SUCCESS)
                end = r->anchor_ns + (int64_t)((double)ms * 1e6);
            else
                end = now;                  /* (an upper bound: the time we saw it complete) */
            if (end > now)
                end = now;
            done[ndone++] = (struct done){p->launch_ns, end, p->est_ns, p->dev};
            done_mask |= 1u << p->dev;
            if (r->npool < POOL_MAX)
                r->pool[r->npool++] = p->ev;
            else
                drv.event_destroy(p->ev);
            continue;
        }
        if (rc != 600 /* CUDA_ERROR_NOT_READY */)
            continue;                       /* a broken event (its context destroyed): drop it */
        if (!skip && nstalled < 8)
            stalled[nstalled++] = p->stream;
        if (!(pend_mask & (1u << p->dev))) {
            pend_mask |= 1u << p->dev;
            inflight[p->dev] = 0;
        }
        inflight[p->dev] += p->est_ns;
        T.pend[keep++] = *p;
    }
    T.npend = keep;
    int local_ok = keep < MAX_PEND && !(!T.have_est[dev] && keep > 0);
    pthread_mutex_unlock(&T.mu);

    /* Report to each device's ring: charges are end - max(launch, previous end on the device). */
    int64_t charge[VCUDA_MAX_DEVICES], refund[VCUDA_MAX_DEVICES], blocked[VCUDA_MAX_DEVICES];
    int64_t rate[VCUDA_MAX_DEVICES];
    unsigned touched = 0;
    for (int d = 0; d < VCUDA_MAX_DEVICES; d++) {
        int mine = (done_mask >> d) & 1;
        if (!mine && !(T.gpu[d] && now >= T.next_refresh_ns[d]))
            continue;
        touched |= 1u << d;
        charge[d] = refund[d] = blocked[d] = 0;
        rate[d] = -1;
        struct gpu_file *g = gpu_of(d);
        if (g == NULL) {                    /* no ring: charge what the events say */
            for (int i = 0; i < ndone; i++)
                if (done[i].dev == d && done[i].end_ns > done[i].launch_ns)
                    charge[d] += done[i].end_ns - done[i].launch_ns;
            continue;
        }
        /* the claim this container makes on the GPU (see the top of the file) */
        struct sm_dev *sd = &T.sm->dev[d];
        int64_t since = __atomic_load_n(&sd->active_since_ns, __ATOMIC_RELAXED);
        int64_t waited = __atomic_load_n(&sd->last_wait_ns, __ATOMIC_RELAXED);
        int64_t usage = __atomic_load_n(&sd->usage_ppm, __ATOMIC_RELAXED);
        int64_t queued = __atomic_load_n(&sd->blocked_ppm, __ATOMIC_RELAXED);
        int64_t claim = usage + MARGIN_PPM;
        if (now - waited < BACKLOG_NS || now - since < START_NS || queued > BLOCKED_PPM)
            claim = T.share_ppm;
        if (claim > T.share_ppm)
            claim = T.share_ppm;
        shm_lock(&g->lock);
        int slot = T.gslot[d];
        if (slot < 0 || strncmp(g->slots[slot].key, T.key, sizeof(T.key)) != 0)
            slot = T.gslot[d] = gpu_slot_locked(g, now);    /* (taken over while we were idle) */
        for (int i = 0; mine && i < ndone; i++) {
            if (done[i].dev != d)
                continue;
            int64_t c = ring_insert(g, slot, done[i].launch_ns, done[i].end_ns, &blocked[d]);
            charge[d] += c;
            if (T.have_est[d])              /* (racy across threads: only an estimate) */
                T.est_ns[d] += (c - T.est_ns[d]) / 8;
            else
                T.est_ns[d] = c, T.have_est[d] = 1;
        }
        if (slot >= 0) {
            struct gpu_slot *s = &g->slots[slot];
            refund[d] = s->refund_ns;
            s->refund_ns = 0;
            s->heartbeat_ns = now;          /* (we are called from a launch: it wants time now) */
            s->claim_ppm = claim;
            s->usage_ppm = usage;
            s->pid = (int32_t)T.pid;
            rate[d] = elastic_rate_locked(g, slot, now);
            s->rate_ppm = rate[d];
        } else {
            rate[d] = T.share_ppm;
        }
        shm_unlock(&g->lock);
        T.next_refresh_ns[d] = now + REFRESH_NS;
    }

    shm_lock(&T.sm->lock);
    int ps = proc_slot_locked(now);
    if (ps >= 0) {                          /* this process's share of the unfinished work */
        struct sm_proc *pr = &T.sm->procs[ps];
        for (int d = 0; d < VCUDA_MAX_DEVICES; d++) {
            int64_t v = (pend_mask >> d) & 1 ? inflight[d] : 0;
            if (v != pr->inflight_ns[d]) {
                T.sm->dev[d].inflight_ns += v - pr->inflight_ns[d];
                pr->inflight_ns[d] = v;
            }
        }
    }
    for (int d = 0; d < VCUDA_MAX_DEVICES; d++) {
        if (!((touched >> d) & 1))
            continue;
        struct sm_dev *sd = &T.sm->dev[d];
        refill_locked(sd, now);
        if (rate[d] >= 0)
            sd->rate_ppm = rate[d];
        sm_charge_locked(sd, charge[d] - refund[d], blocked[d], now);
    }
    struct sm_dev *sd = &T.sm->dev[dev];
    refill_locked(sd, now);
    int64_t avail = sd->tokens_ns - (sd->inflight_ns > 0 ? sd->inflight_ns : 0);
    int go = avail >= 0 && local_ok;
    /* Work that never finishes (a kernel waiting for one not launched yet) must not stall the
     * program: a launch kept waiting only by unfinished work goes after STUCK_NS. */
    if (!go && sd->tokens_ns >= 0 && now - t0 > STUCK_NS)
        go = 1;
    if (go) {
        if (now - sd->last_launch_ns > ACTIVE_NS)
            sd->active_since_ns = now;
        sd->last_launch_ns = now;
        sd->launches++;
        if (now > t0)
            sd->waited_ns += now - t0;
    } else {
        sd->last_wait_ns = now;
    }
    *avail_out = avail;
    *rate_out = sd->rate_ppm > 0 ? sd->rate_ppm : T.share_ppm;
    shm_unlock(&T.sm->lock);
    return go;
}

/* ---------------------------------------------------------------- the hooks */

static int ready(void)
{
    if (!T.on || T.failed)
        return 0;
    if (!T.resolved) {
        pthread_mutex_lock(&T.mu);
        if (!T.resolved) {
            if (!resolve_driver()) {
                fprintf(stderr, "gaia vcuda: compute share: the driver lacks the event entry points "
                        "the throttle needs; launches are not throttled\n");
                T.failed = 1;
            }
            __atomic_store_n(&T.resolved, 1, __ATOMIC_RELEASE);
        }
        pthread_mutex_unlock(&T.mu);
    }
    return !T.failed;
}

static void sleep_ns(int64_t ns)
{
    struct timespec ts = {ns / 1000000000LL, ns % 1000000000LL};
    nanosleep(&ts, NULL);
}

void vcuda_throttle_before_launch(void *stream)
{
    t_skip = 1;
    if (!ready())
        return;
    if (drv.stream_is_capturing) {          /* captured, not run: the graph launch is throttled */
        int status = 0;
        if (drv.stream_is_capturing((CUstream)stream, &status) == CUDA_SUCCESS && status != 0)
            return;
    }
    CUcontext c = NULL;
    if (drv.ctx_get_current(&c) != CUDA_SUCCESS || c == NULL)
        return;                             /* the launch will fail on its own */
    int64_t t0 = now_ns(), now = t0;
    pthread_mutex_lock(&T.mu);
    int ci = ctx_index(c, t0);
    int dev = ci >= 0 ? T.ctx[ci].dev : -1;
    pthread_mutex_unlock(&T.mu);
    if (ci < 0)
        return;

    for (;;) {
        int64_t avail, rate;
        if (poll_and_decide(now, dev, t0, &avail, &rate))
            break;
        /* the debt at our rate; or, waiting for a completion, back off from 20 us */
        int64_t ns = avail < 0 ? -avail * PPM / rate : (now - t0) / 4;
        if (ns < MIN_SLEEP_NS)
            ns = MIN_SLEEP_NS;
        if (ns > MAX_SLEEP_NS)
            ns = MAX_SLEEP_NS;
        sleep_ns(ns);
        now = now_ns();
    }
    t_launch_ns = now_ns();                 /* the kernel cannot start before this */
    t_ctx = ci;
    t_skip = 0;
}

void vcuda_throttle_after_launch(void *stream, int result)
{
    if (t_skip || result != CUDA_SUCCESS)
        return;
    t_skip = 1;
    pthread_mutex_lock(&T.mu);
    struct ctx_rec *r = &T.ctx[t_ctx];
    vc_event ev = NULL;
    if (r->npool > 0)
        ev = r->pool[--r->npool];
    else if (drv.event_create(&ev, 0) != CUDA_SUCCESS)
        ev = NULL;
    CUresult rc = ev != NULL ? drv.event_record(ev, (CUstream)stream) : CUDA_ERROR_INVALID_VALUE;
    if (rc == CUDA_SUCCESS && T.npend < MAX_PEND) {
        int dev = r->dev;
        T.pend[T.npend++] = (struct pend){ev, (CUstream)stream, t_launch_ns,
                                          T.have_est[dev] ? T.est_ns[dev] : 0, t_ctx, dev};
    } else if (rc != CUDA_SUCCESS && ev != NULL) {
        /* the launch worked, our event did not: its context is not the one we knew (destroyed,
         * and its handle reused): drop the record's events and anchor, re-create on next launch */
        drv.event_destroy(ev);
        r->stale = 1;
    } else if (ev != NULL) {
        if (r->npool < POOL_MAX)
            r->pool[r->npool++] = ev;
        else
            drv.event_destroy(ev);
    }
    pthread_mutex_unlock(&T.mu);
}
