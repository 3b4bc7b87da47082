/* Fake CUDA driver, execution side (test code): modules, functions, kernel launches, graphs,
 * streams, events and synchronisation on ONE device timeline shared by every process.
 *
 * The device model: a GPU time-slices between contexts, so work from different processes never
 * runs in parallel. Here every launch reserves the interval [max(now, timeline_end), +duration)
 * on a timeline kept in a file (env FAKE_CUDA_TIMELINE, mmap'd, guarded by a robust
 * process-shared mutex), so concurrent processes serialise and a container's share can only be
 * held down by throttling its launches. Launches return at once (asynchronous, as on a GPU);
 * synchronisation waits (sleeping) until the stream's last reserved interval has ended, and events
 * carry the device time at which the stream reached them. Streams: the legacy default stream waits
 * for the process's blocking streams (as the driver's does), the per-thread default stream
 * (CU_STREAM_PER_THREAD, or NULL in a _ptsz entry point) is the calling thread's own.
 *
 * A kernel's duration comes from its function name: "k_<N>ns", "k_<N>us", "k_<N>ms" (e.g.
 * cuModuleGetFunction(&f, mod, "k_500us")), or "k_param", whose first kernel parameter points to a
 * long long duration in ns. Device time is accounted per tag (env FAKE_CUDA_TAG, default
 * "pid<pid>") in total and in 10 ms buckets since the timeline's origin, so a test can read how much
 * device time each container got over any window (tests/vcuda/timeline.py reads the layout below).
 *
 * Without FAKE_CUDA_TIMELINE the timeline is private to the process.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define EXPORT __attribute__((visibility("default")))

typedef int CUresult;
enum {
    CUDA_SUCCESS = 0,
    CUDA_ERROR_INVALID_VALUE = 1,
    CUDA_ERROR_OUT_OF_MEMORY = 2,
    CUDA_ERROR_INVALID_HANDLE = 400,
    CUDA_ERROR_NOT_FOUND = 500,
    CUDA_ERROR_NOT_READY = 600,
};
typedef struct fake_module *CUmodule;
typedef struct fake_function *CUfunction;
typedef struct fake_stream *CUstream;
typedef struct fake_event *CUevent;
typedef struct fake_graph *CUgraph;
typedef struct fake_graph *CUgraphExec;
typedef struct fake_node *CUgraphNode;
typedef struct CUlaunchAttribute_st CUlaunchAttribute;
typedef struct {
    unsigned int gridDimX, gridDimY, gridDimZ;
    unsigned int blockDimX, blockDimY, blockDimZ;
    unsigned int sharedMemBytes;
    CUstream hStream;
    CUlaunchAttribute *attrs;
    unsigned int numAttrs;
} CUlaunchConfig;
typedef struct {                 /* CUDA_KERNEL_NODE_PARAMS (v1); v2 only appends fields */
    CUfunction func;
    unsigned int gridDimX, gridDimY, gridDimZ;
    unsigned int blockDimX, blockDimY, blockDimZ;
    unsigned int sharedMemBytes;
    void **kernelParams;
    void **extra;
} CUDA_KERNEL_NODE_PARAMS;

/* ---- the shared timeline file (layout read by tests/vcuda/timeline.py: keep them in step) ---- */
#define TL_MAGIC 0x31304c54454b4146ULL      /* "FAKETL01" little-endian */
#define TL_TAGS 16
#define TL_BUCKETS 3000                     /* 10 ms each: 30 s from the origin */
#define TL_BUCKET_NS 10000000LL

struct tl_tag {                             /* 64 bytes */
    char name[32];
    int64_t busy_ns;                        /* device time reserved by this tag */
    int64_t launches;                       /* kernels */
    int64_t first_start_ns;                 /* CLOCK_MONOTONIC */
    int64_t last_end_ns;
};

struct timeline {
    uint64_t magic;                         /* 0 */
    int64_t origin_ns;                      /* 8: CLOCK_MONOTONIC when created */
    int64_t end_ns;                         /* 16: end of the last reserved interval */
    int64_t bucket_ns;                      /* 24 */
    int32_t nbuckets, ntags;                /* 32, 36 */
    int64_t busy_ns;                        /* 40: all tags */
    int64_t launches;                       /* 48 */
    int64_t reserved;                       /* 56 */
    union {
        pthread_mutex_t m;
        char pad[64];
    } lock;                                 /* 64 */
    struct tl_tag tags[TL_TAGS];            /* 128 */
    int64_t buckets[TL_TAGS][TL_BUCKETS];   /* 128 + 64 * TL_TAGS */
};

struct fake_module { int magic; };
struct fake_function {
    int magic;
    int from_param;                         /* duration from kernelParams[0] */
    int64_t duration_ns;
    char name[64];
};
struct fake_stream {
    int magic;
    int nonblocking;                        /* CU_STREAM_NON_BLOCKING: no implicit legacy sync */
    int64_t last_end_ns;                    /* end of the last interval launched on it */
};
struct fake_event {
    int magic;
    int recorded;
    int64_t time_ns;                        /* device time the stream reached the event */
};
#define GRAPH_MAX_NODES 256
struct fake_node { int index; };
struct fake_graph {
    int magic;
    int n;
    int64_t duration_ns[GRAPH_MAX_NODES];
    struct fake_node nodes[GRAPH_MAX_NODES];
};

#define MAGIC_MODULE 0x6d6f64
#define MAGIC_FUNCTION 0x66756e
#define MAGIC_STREAM 0x737472
#define MAGIC_EVENT 0x657674
#define MAGIC_GRAPH 0x677261
#define MAGIC_EXEC 0x657865

static struct timeline *tl;
static int tag_index = -1;
static pthread_once_t tl_once = PTHREAD_ONCE_INIT;
/* The legacy default stream (NULL, CU_STREAM_LEGACY) waits for all earlier work of the process's
 * blocking streams, and they for it; the per-thread default stream (CU_STREAM_PER_THREAD, or NULL
 * in a _ptsz entry point) is a blocking stream of the calling thread's own. */
static struct fake_stream legacy_stream = {MAGIC_STREAM, 0, 0};
static __thread struct fake_stream thread_stream = {MAGIC_STREAM, 0, 0};
static int64_t process_last_end_ns;         /* for cuCtxSynchronize */
static int64_t blocking_last_end_ns;        /* for the legacy stream */
static pthread_mutex_t local_lock = PTHREAD_MUTEX_INITIALIZER;

static int64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

static void sleep_until(int64_t t)
{
    struct timespec ts = {t / 1000000000LL, t % 1000000000LL};
    while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL) == EINTR)
        ;
}

static void tl_lock(void)
{
    int rc = pthread_mutex_lock(&tl->lock.m);
    if (rc == EOWNERDEAD)                   /* a process died holding it: the data is consistent */
        pthread_mutex_consistent(&tl->lock.m);   /* (every update is a few stores) */
}

static void tl_unlock(void) { pthread_mutex_unlock(&tl->lock.m); }

static void tl_init_fields(struct timeline *t)
{
    pthread_mutexattr_t a;
    pthread_mutexattr_init(&a);
    pthread_mutexattr_setpshared(&a, PTHREAD_PROCESS_SHARED);
    pthread_mutexattr_setrobust(&a, PTHREAD_MUTEX_ROBUST);
    pthread_mutex_init(&t->lock.m, &a);
    pthread_mutexattr_destroy(&a);
    t->origin_ns = now_ns();
    t->end_ns = 0;
    t->bucket_ns = TL_BUCKET_NS;
    t->nbuckets = TL_BUCKETS;
    t->ntags = TL_TAGS;
    __atomic_store_n(&t->magic, TL_MAGIC, __ATOMIC_RELEASE);
}

static void tl_open(void)
{
    const char *path = getenv("FAKE_CUDA_TIMELINE");
    if (path != NULL && *path) {
        int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0666);
        if (fd < 0) {
            fprintf(stderr, "fake cuda: FAKE_CUDA_TIMELINE %s: %s\n", path, strerror(errno));
            abort();
        }
        flock(fd, LOCK_EX);                 /* only the first opener initialises */
        struct stat st;
        fstat(fd, &st);
        if (st.st_size < (off_t)sizeof(struct timeline) && ftruncate(fd, sizeof(struct timeline)) != 0) {
            fprintf(stderr, "fake cuda: FAKE_CUDA_TIMELINE %s: %s\n", path, strerror(errno));
            abort();
        }
        tl = mmap(NULL, sizeof(struct timeline), PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
        if (tl == MAP_FAILED) {
            fprintf(stderr, "fake cuda: FAKE_CUDA_TIMELINE %s: mmap: %s\n", path, strerror(errno));
            abort();
        }
        if (tl->magic != TL_MAGIC)
            tl_init_fields(tl);
        flock(fd, LOCK_UN);
        close(fd);
    } else {
        tl = mmap(NULL, sizeof(struct timeline), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
        if (tl == MAP_FAILED)
            abort();
        tl_init_fields(tl);
    }
    char tag[32];
    const char *env = getenv("FAKE_CUDA_TAG");
    if (env != NULL && *env)
        snprintf(tag, sizeof(tag), "%s", env);
    else
        snprintf(tag, sizeof(tag), "pid%d", (int)getpid());
    tl_lock();
    for (int i = 0; i < TL_TAGS; i++) {
        if (tl->tags[i].name[0] == '\0') {
            memcpy(tl->tags[i].name, tag, sizeof(tag));
            tl->tags[i].name[31] = '\0';
            tag_index = i;
            break;
        }
        if (strncmp(tl->tags[i].name, tag, 32) == 0) {
            tag_index = i;
            break;
        }
    }
    tl_unlock();
    if (tag_index < 0)
        fprintf(stderr, "fake cuda: more than %d tags on %s; %s is not accounted\n", TL_TAGS,
                path ? path : "(private)", tag);
}

static void ensure_tl(void) { pthread_once(&tl_once, tl_open); }

static void account(int64_t start, int64_t end)
{
    if (tag_index < 0)
        return;
    struct tl_tag *t = &tl->tags[tag_index];
    int64_t d = end - start;
    t->busy_ns += d;
    t->launches++;
    if (t->first_start_ns == 0)
        t->first_start_ns = start;
    t->last_end_ns = end;
    tl->busy_ns += d;
    tl->launches++;
    /* spread the interval over the 10 ms buckets it covers */
    int64_t s = start - tl->origin_ns, e = end - tl->origin_ns;
    if (s < 0)
        s = 0;
    while (s < e) {
        int64_t b = s / TL_BUCKET_NS;
        if (b >= TL_BUCKETS)
            break;
        int64_t bend = (b + 1) * TL_BUCKET_NS;
        int64_t piece = (e < bend ? e : bend) - s;
        tl->buckets[tag_index][b] += piece;
        s += piece;
    }
}

#define PER_THREAD ((CUstream)0x2)

static struct fake_stream *stream_of(CUstream s)
{
    if ((uintptr_t)s <= 1)                  /* NULL and CU_STREAM_LEGACY */
        return &legacy_stream;
    if (s == PER_THREAD)
        return &thread_stream;
    if (s->magic != MAGIC_STREAM)
        return NULL;
    return s;
}

/* A _ptsz entry point's NULL stream is the per-thread one. */
static CUstream ptsz(CUstream s) { return s ? s : PER_THREAD; }

/* When the stream reaches what is recorded on it now (call with local_lock). */
static int64_t stream_ready_locked(struct fake_stream *st)
{
    int64_t t = st->last_end_ns;
    if (st == &legacy_stream && blocking_last_end_ns > t)
        t = blocking_last_end_ns;
    return t;
}

/* Reserve `n` kernels back to back on the device (each after whatever is reserved before it). */
static CUresult reserve(CUstream hs, const int64_t *durations, int n)
{
    ensure_tl();
    struct fake_stream *st = stream_of(hs);
    if (st == NULL)
        return CUDA_ERROR_INVALID_HANDLE;
    pthread_mutex_lock(&local_lock);
    tl_lock();
    int64_t end = 0;
    for (int i = 0; i < n; i++) {
        int64_t start = now_ns();
        if (tl->end_ns > start)
            start = tl->end_ns;
        if (st->last_end_ns > start)        /* (never: the timeline end is later) */
            start = st->last_end_ns;
        end = start + durations[i];
        tl->end_ns = end;
        account(start, end);
        st->last_end_ns = end;
    }
    tl_unlock();
    if (end > process_last_end_ns)
        process_last_end_ns = end;
    if (!st->nonblocking && end > blocking_last_end_ns)
        blocking_last_end_ns = end;
    pthread_mutex_unlock(&local_lock);
    return CUDA_SUCCESS;
}

static CUresult duration_of(CUfunction f, void **params, int64_t *out)
{
    if (f == NULL || f->magic != MAGIC_FUNCTION)
        return CUDA_ERROR_INVALID_HANDLE;
    if (f->from_param) {
        if (params == NULL || params[0] == NULL)
            return CUDA_ERROR_INVALID_VALUE;
        *out = *(const long long *)params[0];
        if (*out < 0)
            return CUDA_ERROR_INVALID_VALUE;
    } else {
        *out = f->duration_ns;
    }
    return CUDA_SUCCESS;
}

/* ---- modules and functions ---- */

static CUresult new_module(CUmodule *m)
{
    if (m == NULL)
        return CUDA_ERROR_INVALID_VALUE;
    struct fake_module *mod = calloc(1, sizeof(*mod));
    mod->magic = MAGIC_MODULE;
    *m = mod;
    return CUDA_SUCCESS;
}

EXPORT CUresult cuModuleLoad(CUmodule *m, const char *fname) { (void)fname; return new_module(m); }
EXPORT CUresult cuModuleLoadData(CUmodule *m, const void *image) { (void)image; return new_module(m); }
EXPORT CUresult cuModuleLoadDataEx(CUmodule *m, const void *image, unsigned n, void *opts, void **vals)
{
    (void)image, (void)n, (void)opts, (void)vals;
    return new_module(m);
}
EXPORT CUresult cuModuleUnload(CUmodule m)
{
    if (m == NULL || m->magic != MAGIC_MODULE)
        return CUDA_ERROR_INVALID_HANDLE;
    m->magic = 0;
    free(m);
    return CUDA_SUCCESS;
}

EXPORT CUresult cuModuleGetFunction(CUfunction *f, CUmodule m, const char *name)
{
    if (f == NULL || name == NULL)
        return CUDA_ERROR_INVALID_VALUE;
    if (m == NULL || m->magic != MAGIC_MODULE)
        return CUDA_ERROR_INVALID_HANDLE;
    struct fake_function fn = {MAGIC_FUNCTION, 0, 0, ""};
    snprintf(fn.name, sizeof(fn.name), "%s", name);
    if (strcmp(name, "k_param") == 0) {
        fn.from_param = 1;
    } else {
        char *end = NULL;
        if (strncmp(name, "k_", 2) != 0)
            return CUDA_ERROR_NOT_FOUND;
        long long n = strtoll(name + 2, &end, 10);
        if (end == name + 2 || n < 0)
            return CUDA_ERROR_NOT_FOUND;
        if (strcmp(end, "ns") == 0)
            fn.duration_ns = n;
        else if (strcmp(end, "us") == 0)
            fn.duration_ns = n * 1000LL;
        else if (strcmp(end, "ms") == 0)
            fn.duration_ns = n * 1000000LL;
        else
            return CUDA_ERROR_NOT_FOUND;
    }
    struct fake_function *p = malloc(sizeof(*p));
    *p = fn;
    *f = p;
    return CUDA_SUCCESS;
}

/* ---- launches ---- */

static CUresult launch(CUfunction f, CUstream s, void **params)
{
    int64_t d;
    CUresult rc = duration_of(f, params, &d);
    if (rc != CUDA_SUCCESS)
        return rc;
    return reserve(s, &d, 1);
}

EXPORT CUresult cuLaunchKernel(CUfunction f, unsigned gx, unsigned gy, unsigned gz, unsigned bx,
                               unsigned by, unsigned bz, unsigned shmem, CUstream s, void **params,
                               void **extra)
{
    (void)gx, (void)gy, (void)gz, (void)bx, (void)by, (void)bz, (void)shmem, (void)extra;
    return launch(f, s, params);
}

EXPORT CUresult cuLaunchKernel_ptsz(CUfunction f, unsigned gx, unsigned gy, unsigned gz, unsigned bx,
                                    unsigned by, unsigned bz, unsigned shmem, CUstream s,
                                    void **params, void **extra)
{
    return cuLaunchKernel(f, gx, gy, gz, bx, by, bz, shmem, ptsz(s), params, extra);
}

EXPORT CUresult cuLaunchKernelEx(const CUlaunchConfig *cfg, CUfunction f, void **params, void **extra)
{
    (void)extra;
    if (cfg == NULL)
        return CUDA_ERROR_INVALID_VALUE;
    return launch(f, cfg->hStream, params);
}

EXPORT CUresult cuLaunchKernelEx_ptsz(const CUlaunchConfig *cfg, CUfunction f, void **params, void **extra)
{
    if (cfg == NULL)
        return CUDA_ERROR_INVALID_VALUE;
    CUlaunchConfig c = *cfg;
    c.hStream = ptsz(c.hStream);
    return cuLaunchKernelEx(&c, f, params, extra);
}

EXPORT CUresult cuLaunchCooperativeKernel(CUfunction f, unsigned gx, unsigned gy, unsigned gz,
                                          unsigned bx, unsigned by, unsigned bz, unsigned shmem,
                                          CUstream s, void **params)
{
    (void)gx, (void)gy, (void)gz, (void)bx, (void)by, (void)bz, (void)shmem;
    return launch(f, s, params);
}

EXPORT CUresult cuLaunchCooperativeKernel_ptsz(CUfunction f, unsigned gx, unsigned gy, unsigned gz,
                                               unsigned bx, unsigned by, unsigned bz,
                                               unsigned shmem, CUstream s, void **params)
{
    return cuLaunchCooperativeKernel(f, gx, gy, gz, bx, by, bz, shmem, ptsz(s), params);
}

/* ---- graphs: a fixed sequence of kernels ---- */

EXPORT CUresult cuGraphCreate(CUgraph *g, unsigned flags)
{
    (void)flags;
    if (g == NULL)
        return CUDA_ERROR_INVALID_VALUE;
    struct fake_graph *p = calloc(1, sizeof(*p));
    p->magic = MAGIC_GRAPH;
    *g = p;
    return CUDA_SUCCESS;
}

EXPORT CUresult cuGraphAddKernelNode(CUgraphNode *node, CUgraph g, const CUgraphNode *deps,
                                     size_t ndeps, const CUDA_KERNEL_NODE_PARAMS *p)
{
    (void)deps, (void)ndeps;                /* nodes run in the order added */
    if (g == NULL || g->magic != MAGIC_GRAPH)
        return CUDA_ERROR_INVALID_HANDLE;
    if (p == NULL || node == NULL)
        return CUDA_ERROR_INVALID_VALUE;
    if (g->n >= GRAPH_MAX_NODES)
        return CUDA_ERROR_OUT_OF_MEMORY;
    int64_t d;
    CUresult rc = duration_of(p->func, p->kernelParams, &d);
    if (rc != CUDA_SUCCESS)
        return rc;
    g->duration_ns[g->n] = d;
    g->nodes[g->n].index = g->n;
    *node = &g->nodes[g->n];
    g->n++;
    return CUDA_SUCCESS;
}

EXPORT CUresult cuGraphAddKernelNode_v2(CUgraphNode *node, CUgraph g, const CUgraphNode *deps,
                                        size_t ndeps, const CUDA_KERNEL_NODE_PARAMS *p)
{
    return cuGraphAddKernelNode(node, g, deps, ndeps, p);
}

EXPORT CUresult cuGraphInstantiateWithFlags(CUgraphExec *e, CUgraph g, unsigned long long flags)
{
    (void)flags;
    if (e == NULL)
        return CUDA_ERROR_INVALID_VALUE;
    if (g == NULL || g->magic != MAGIC_GRAPH)
        return CUDA_ERROR_INVALID_HANDLE;
    struct fake_graph *x = malloc(sizeof(*x));
    *x = *g;
    x->magic = MAGIC_EXEC;
    *e = x;
    return CUDA_SUCCESS;
}

/* CUDA 12's cuGraphInstantiate (cuGraphInstantiateWithFlags's signature) */
EXPORT CUresult cuGraphInstantiate(CUgraphExec *e, CUgraph g, unsigned long long flags)
{
    return cuGraphInstantiateWithFlags(e, g, flags);
}

EXPORT CUresult cuGraphLaunch(CUgraphExec e, CUstream s)
{
    if (e == NULL || e->magic != MAGIC_EXEC)
        return CUDA_ERROR_INVALID_HANDLE;
    return reserve(s, e->duration_ns, e->n);
}

EXPORT CUresult cuGraphLaunch_ptsz(CUgraphExec e, CUstream s) { return cuGraphLaunch(e, ptsz(s)); }

EXPORT CUresult cuGraphExecDestroy(CUgraphExec e)
{
    if (e == NULL || e->magic != MAGIC_EXEC)
        return CUDA_ERROR_INVALID_HANDLE;
    e->magic = 0;
    free(e);
    return CUDA_SUCCESS;
}

EXPORT CUresult cuGraphDestroy(CUgraph g)
{
    if (g == NULL || g->magic != MAGIC_GRAPH)
        return CUDA_ERROR_INVALID_HANDLE;
    g->magic = 0;
    free(g);
    return CUDA_SUCCESS;
}

/* ---- streams and synchronisation ---- */

EXPORT CUresult cuStreamCreate(CUstream *s, unsigned flags)
{
    if (s == NULL)
        return CUDA_ERROR_INVALID_VALUE;
    struct fake_stream *p = calloc(1, sizeof(*p));
    p->magic = MAGIC_STREAM;
    p->nonblocking = flags & 1;             /* CU_STREAM_NON_BLOCKING */
    *s = p;
    return CUDA_SUCCESS;
}

EXPORT CUresult cuStreamCreateWithPriority(CUstream *s, unsigned flags, int priority)
{
    (void)priority;
    return cuStreamCreate(s, flags);
}

EXPORT CUresult cuStreamDestroy(CUstream s)
{
    if ((uintptr_t)s <= 2 || s->magic != MAGIC_STREAM)
        return CUDA_ERROR_INVALID_HANDLE;
    s->magic = 0;                           /* (its work still runs to completion) */
    free(s);
    return CUDA_SUCCESS;
}

EXPORT CUresult cuStreamDestroy_v2(CUstream s) { return cuStreamDestroy(s); }

static int64_t stream_end(struct fake_stream *st)
{
    pthread_mutex_lock(&local_lock);
    int64_t t = stream_ready_locked(st);
    pthread_mutex_unlock(&local_lock);
    return t;
}

EXPORT CUresult cuStreamSynchronize(CUstream s)
{
    struct fake_stream *st = stream_of(s);
    if (st == NULL)
        return CUDA_ERROR_INVALID_HANDLE;
    sleep_until(stream_end(st));
    return CUDA_SUCCESS;
}

EXPORT CUresult cuStreamSynchronize_ptsz(CUstream s) { return cuStreamSynchronize(ptsz(s)); }

EXPORT CUresult cuStreamQuery(CUstream s)
{
    struct fake_stream *st = stream_of(s);
    if (st == NULL)
        return CUDA_ERROR_INVALID_HANDLE;
    return now_ns() >= stream_end(st) ? CUDA_SUCCESS : CUDA_ERROR_NOT_READY;
}

EXPORT CUresult cuStreamQuery_ptsz(CUstream s) { return cuStreamQuery(ptsz(s)); }

/* Nothing is ever captured here: the status is CU_STREAM_CAPTURE_STATUS_NONE. */
EXPORT CUresult cuStreamIsCapturing(CUstream s, int *status)
{
    if (status == NULL)
        return CUDA_ERROR_INVALID_VALUE;
    if (stream_of(s) == NULL)
        return CUDA_ERROR_INVALID_HANDLE;
    *status = 0;
    return CUDA_SUCCESS;
}

EXPORT CUresult cuStreamIsCapturing_ptsz(CUstream s, int *status) { return cuStreamIsCapturing(ptsz(s), status); }

EXPORT CUresult cuCtxSynchronize(void)
{
    pthread_mutex_lock(&local_lock);
    int64_t t = process_last_end_ns;
    pthread_mutex_unlock(&local_lock);
    sleep_until(t);
    return CUDA_SUCCESS;
}

/* ---- events ---- */

EXPORT CUresult cuEventCreate(CUevent *e, unsigned flags)
{
    (void)flags;
    if (e == NULL)
        return CUDA_ERROR_INVALID_VALUE;
    struct fake_event *p = calloc(1, sizeof(*p));
    p->magic = MAGIC_EVENT;
    *e = p;
    return CUDA_SUCCESS;
}

EXPORT CUresult cuEventDestroy(CUevent e)
{
    if (e == NULL || e->magic != MAGIC_EVENT)
        return CUDA_ERROR_INVALID_HANDLE;
    e->magic = 0;
    free(e);
    return CUDA_SUCCESS;
}

EXPORT CUresult cuEventDestroy_v2(CUevent e) { return cuEventDestroy(e); }

/* The stream reaches the event when its earlier work is done, or at once when it is idle. */
EXPORT CUresult cuEventRecord(CUevent e, CUstream s)
{
    if (e == NULL || e->magic != MAGIC_EVENT)
        return CUDA_ERROR_INVALID_HANDLE;
    struct fake_stream *st = stream_of(s);
    if (st == NULL)
        return CUDA_ERROR_INVALID_HANDLE;
    int64_t t = now_ns(), end = stream_end(st);
    e->time_ns = end > t ? end : t;
    e->recorded = 1;
    return CUDA_SUCCESS;
}

EXPORT CUresult cuEventRecord_ptsz(CUevent e, CUstream s) { return cuEventRecord(e, ptsz(s)); }
EXPORT CUresult cuEventRecordWithFlags(CUevent e, CUstream s, unsigned flags)
{
    (void)flags;
    return cuEventRecord(e, s);
}
EXPORT CUresult cuEventRecordWithFlags_ptsz(CUevent e, CUstream s, unsigned flags)
{
    return cuEventRecordWithFlags(e, ptsz(s), flags);
}

EXPORT CUresult cuEventQuery(CUevent e)
{
    if (e == NULL || e->magic != MAGIC_EVENT)
        return CUDA_ERROR_INVALID_HANDLE;
    if (!e->recorded)                       /* as the driver: a never-recorded event is complete */
        return CUDA_SUCCESS;
    return now_ns() >= e->time_ns ? CUDA_SUCCESS : CUDA_ERROR_NOT_READY;
}

EXPORT CUresult cuEventSynchronize(CUevent e)
{
    if (e == NULL || e->magic != MAGIC_EVENT)
        return CUDA_ERROR_INVALID_HANDLE;
    if (e->recorded)
        sleep_until(e->time_ns);
    return CUDA_SUCCESS;
}

EXPORT CUresult cuEventElapsedTime(float *ms, CUevent start, CUevent end)
{
    if (ms == NULL)
        return CUDA_ERROR_INVALID_VALUE;
    if (start == NULL || end == NULL || start->magic != MAGIC_EVENT || end->magic != MAGIC_EVENT)
        return CUDA_ERROR_INVALID_HANDLE;
    if (!start->recorded || !end->recorded)
        return CUDA_ERROR_INVALID_HANDLE;
    int64_t t = now_ns();
    if (t < start->time_ns || t < end->time_ns)
        return CUDA_ERROR_NOT_READY;
    *ms = (float)((double)(end->time_ns - start->time_ns) / 1e6);
    return CUDA_SUCCESS;
}

EXPORT CUresult cuEventElapsedTime_v2(float *ms, CUevent start, CUevent end)
{
    return cuEventElapsedTime(ms, start, end);
}
