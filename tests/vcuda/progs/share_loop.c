/* Launches kernels in a loop for a fixed wall time, as a GPU job that always has work would, and
 * prints one JSON line: {"launches": N, "wall_s": S, "api": ..., "errors": E}.
 *
 *   share_loop KERNEL SECONDS [--api kernel|ptsz|ex|coop|graph|procaddr|dlsym] [--sync N] [--streams K]
 *              [--threads T] [--delay-ms D]
 *
 * KERNEL is a fake-driver function name (k_50us, k_2ms, ...). --sync N synchronises the stream
 * every N launches (0: only at the end, fully asynchronous). --graph launches a graph of 4 such
 * kernels. --api procaddr calls the cuLaunchKernel that cuGetProcAddress_v2 (CUDA 12's lookup) hands
 * out, --api dlsym the one dlsym(dlopen("libcuda.so.1")) hands out. --streams K spreads launches over K streams round robin. --threads T runs T launching
 * threads. --delay-ms D sleeps D ms before the first launch (a container that starts later).
 *
 * It declares the few driver entry points it calls itself (no cuda.h), and is linked against the
 * fake libcuda; libvcuda comes in through LD_PRELOAD.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

typedef int CUresult;
typedef int CUdevice;
typedef struct CUctx_st *CUcontext;
typedef struct CUmod_st *CUmodule;
typedef struct CUfunc_st *CUfunction;
typedef struct CUstream_st *CUstream;
typedef struct CUgraph_st *CUgraph;
typedef struct CUgraph_st *CUgraphExec;
typedef struct CUgraphNode_st *CUgraphNode;
typedef struct {
    unsigned int gridDimX, gridDimY, gridDimZ;
    unsigned int blockDimX, blockDimY, blockDimZ;
    unsigned int sharedMemBytes;
    CUstream hStream;
    void *attrs;
    unsigned int numAttrs;
} CUlaunchConfig;
typedef struct {
    CUfunction func;
    unsigned int gridDimX, gridDimY, gridDimZ;
    unsigned int blockDimX, blockDimY, blockDimZ;
    unsigned int sharedMemBytes;
    void **kernelParams;
    void **extra;
} CUDA_KERNEL_NODE_PARAMS;

CUresult cuInit(unsigned);
CUresult cuDeviceGet(CUdevice *, int);
CUresult cuCtxCreate_v2(CUcontext *, unsigned, CUdevice);
CUresult cuCtxSetCurrent(CUcontext);
CUresult cuModuleLoadData(CUmodule *, const void *);
CUresult cuModuleGetFunction(CUfunction *, CUmodule, const char *);
CUresult cuStreamCreate(CUstream *, unsigned);
CUresult cuStreamSynchronize(CUstream);
CUresult cuStreamSynchronize_ptsz(CUstream);
CUresult cuCtxSynchronize(void);
CUresult cuLaunchKernel(CUfunction, unsigned, unsigned, unsigned, unsigned, unsigned, unsigned,
                        unsigned, CUstream, void **, void **);
CUresult cuLaunchKernel_ptsz(CUfunction, unsigned, unsigned, unsigned, unsigned, unsigned,
                             unsigned, unsigned, CUstream, void **, void **);
CUresult cuLaunchKernelEx(const CUlaunchConfig *, CUfunction, void **, void **);
CUresult cuLaunchCooperativeKernel(CUfunction, unsigned, unsigned, unsigned, unsigned, unsigned,
                                   unsigned, unsigned, CUstream, void **);
CUresult cuGraphCreate(CUgraph *, unsigned);
CUresult cuGraphAddKernelNode_v2(CUgraphNode *, CUgraph, const CUgraphNode *, size_t,
                                 const CUDA_KERNEL_NODE_PARAMS *);
CUresult cuGraphInstantiateWithFlags(CUgraphExec *, CUgraph, unsigned long long);
CUresult cuGraphLaunch(CUgraphExec, CUstream);
CUresult cuGetProcAddress_v2(const char *, void **, int, unsigned long long, int *);
typedef CUresult (*launch_fn)(CUfunction, unsigned, unsigned, unsigned, unsigned, unsigned, unsigned,
                              unsigned, CUstream, void **, void **);
static launch_fn looked_up;

static const char *kernel, *api = "kernel";
static double seconds;
static int sync_every, nstreams = 1, nthreads = 1;
static CUcontext ctx;
static CUfunction fn;
static CUgraphExec gexec;
static long total_launches, total_errors;
static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

static void die(const char *what, CUresult rc)
{
    fprintf(stderr, "share_loop: %s failed: %d\n", what, rc);
    exit(2);
}

static CUresult launch_one(CUstream s)
{
    if (strcmp(api, "kernel") == 0)
        return cuLaunchKernel(fn, 1, 1, 1, 32, 1, 1, 0, s, NULL, NULL);
    if (strcmp(api, "ptsz") == 0)
        return cuLaunchKernel_ptsz(fn, 1, 1, 1, 32, 1, 1, 0, s, NULL, NULL);
    if (looked_up)
        return looked_up(fn, 1, 1, 1, 32, 1, 1, 0, s, NULL, NULL);
    if (strcmp(api, "ex") == 0) {
        CUlaunchConfig c = {1, 1, 1, 32, 1, 1, 0, s, NULL, 0};
        return cuLaunchKernelEx(&c, fn, NULL, NULL);
    }
    if (strcmp(api, "coop") == 0)
        return cuLaunchCooperativeKernel(fn, 1, 1, 1, 32, 1, 1, 0, s, NULL);
    return cuGraphLaunch(gexec, s);
}

static void sync_stream(CUstream s)
{
    if (strcmp(api, "ptsz") == 0)
        cuStreamSynchronize_ptsz(s);
    else
        cuStreamSynchronize(s);
}

static void *worker(void *arg)
{
    (void)arg;
    cuCtxSetCurrent(ctx);
    CUstream streams[16];
    for (int i = 0; i < nstreams; i++) {
        if (nstreams == 1 && strcmp(api, "ptsz") == 0)
            streams[i] = NULL;              /* the per-thread default stream */
        else {
            CUresult rc = cuStreamCreate(&streams[i], 0);
            if (rc)
                die("cuStreamCreate", rc);
        }
    }
    long n = 0, errors = 0;
    double end = now_s() + seconds;
    while (now_s() < end) {
        CUstream s = streams[n % nstreams];
        if (launch_one(s) != 0)
            errors++;
        n++;
        if (sync_every > 0 && n % sync_every == 0)
            sync_stream(s);
    }
    for (int i = 0; i < nstreams; i++)
        sync_stream(streams[i]);
    pthread_mutex_lock(&mu);
    total_launches += n;
    total_errors += errors;
    pthread_mutex_unlock(&mu);
    return NULL;
}

int main(int argc, char **argv)
{
    if (argc < 3) {
        fprintf(stderr, "usage: share_loop KERNEL SECONDS [--api A] [--sync N] [--streams K] "
                        "[--threads T] [--delay-ms D]\n");
        return 2;
    }
    kernel = argv[1];
    seconds = atof(argv[2]);
    int delay_ms = 0;
    for (int i = 3; i + 1 < argc; i += 2) {
        if (strcmp(argv[i], "--api") == 0)
            api = argv[i + 1];
        else if (strcmp(argv[i], "--sync") == 0)
            sync_every = atoi(argv[i + 1]);
        else if (strcmp(argv[i], "--streams") == 0)
            nstreams = atoi(argv[i + 1]);
        else if (strcmp(argv[i], "--threads") == 0)
            nthreads = atoi(argv[i + 1]);
        else if (strcmp(argv[i], "--delay-ms") == 0)
            delay_ms = atoi(argv[i + 1]);
        else {
            fprintf(stderr, "share_loop: unknown option %s\n", argv[i]);
            return 2;
        }
    }
    const char *apis[] = {"kernel", "ptsz", "ex", "coop", "graph", "procaddr", "dlsym"};
    int known = 0;
    for (size_t i = 0; i < sizeof(apis) / sizeof(apis[0]); i++)
        known |= strcmp(api, apis[i]) == 0;
    if (!known) {
        fprintf(stderr, "share_loop: unknown --api %s\n", api);
        return 2;
    }
    if (nstreams < 1 || nstreams > 16 || nthreads < 1 || nthreads > 16) {
        fprintf(stderr, "share_loop: --streams and --threads take 1..16\n");
        return 2;
    }
    if (delay_ms > 0)
        usleep((useconds_t)delay_ms * 1000);
    CUresult rc;
    CUdevice dev;
    CUmodule mod;
    if ((rc = cuInit(0)))
        die("cuInit", rc);
    if ((rc = cuDeviceGet(&dev, 0)))
        die("cuDeviceGet", rc);
    if ((rc = cuCtxCreate_v2(&ctx, 0, dev)))
        die("cuCtxCreate", rc);
    if ((rc = cuModuleLoadData(&mod, "fake")))
        die("cuModuleLoadData", rc);
    if ((rc = cuModuleGetFunction(&fn, mod, kernel)))
        die("cuModuleGetFunction", rc);
    if (strcmp(api, "procaddr") == 0) {
        int status = -1;
        if ((rc = cuGetProcAddress_v2("cuLaunchKernel", (void **)&looked_up, 12000, 0, &status)) || status)
            die("cuGetProcAddress_v2(cuLaunchKernel)", rc ? rc : status);
    } else if (strcmp(api, "dlsym") == 0) {
        void *h = dlopen("libcuda.so.1", RTLD_NOW);
        looked_up = h ? (launch_fn)dlsym(h, "cuLaunchKernel") : NULL;
        if (looked_up == NULL)
            die("dlsym(cuLaunchKernel)", -1);
    }
    if (strcmp(api, "graph") == 0) {
        CUgraph g;
        CUgraphNode node;
        if ((rc = cuGraphCreate(&g, 0)))
            die("cuGraphCreate", rc);
        CUDA_KERNEL_NODE_PARAMS p = {fn, 1, 1, 1, 32, 1, 1, 0, NULL, NULL};
        for (int i = 0; i < 4; i++)
            if ((rc = cuGraphAddKernelNode_v2(&node, g, NULL, 0, &p)))
                die("cuGraphAddKernelNode", rc);
        if ((rc = cuGraphInstantiateWithFlags(&gexec, g, 0)))
            die("cuGraphInstantiate", rc);
    }
    double t0 = now_s();
    pthread_t th[16];
    for (int i = 0; i < nthreads; i++)
        pthread_create(&th[i], NULL, worker, NULL);
    for (int i = 0; i < nthreads; i++)
        pthread_join(th[i], NULL);
    double wall = now_s() - t0;
    printf("{\"launches\": %ld, \"errors\": %ld, \"wall_s\": %.6f, \"api\": \"%s\", \"kernel\": \"%s\"}\n",
           total_launches, total_errors, wall, api, kernel);
    return total_errors ? 1 : 0;
}
