/* Per-launch cost: times COUNT back-to-back cuLaunchKernel calls of a 0 ns fake kernel (best of
 * ROUNDS rounds, after a warm-up) and prints {"ns_per_launch": X, "launches": N}. Run with and
 * without LD_PRELOAD=libvcuda.so to get the hooks' overhead on the fake driver.
 *
 *   launch_bench [COUNT] [ROUNDS]
 */
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

typedef int CUresult;
typedef int CUdevice;
typedef struct CUctx_st *CUcontext;
typedef struct CUmod_st *CUmodule;
typedef struct CUfunc_st *CUfunction;
typedef struct CUstream_st *CUstream;

CUresult cuInit(unsigned);
CUresult cuDeviceGet(CUdevice *, int);
CUresult cuCtxCreate_v2(CUcontext *, unsigned, CUdevice);
CUresult cuModuleLoadData(CUmodule *, const void *);
CUresult cuModuleGetFunction(CUfunction *, CUmodule, const char *);
CUresult cuStreamCreate(CUstream *, unsigned);
CUresult cuStreamSynchronize(CUstream);
CUresult cuLaunchKernel(CUfunction, unsigned, unsigned, unsigned, unsigned, unsigned, unsigned,
                        unsigned, CUstream, void **, void **);

static double now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e9 + ts.tv_nsec;
}

int main(int argc, char **argv)
{
    long count = argc > 1 ? atol(argv[1]) : 200000;
    int rounds = argc > 2 ? atoi(argv[2]) : 5;
    CUdevice dev;
    CUcontext ctx;
    CUmodule mod;
    CUfunction fn;
    CUstream s;
    if (cuInit(0) || cuDeviceGet(&dev, 0) || cuCtxCreate_v2(&ctx, 0, dev) ||
        cuModuleLoadData(&mod, "fake") || cuModuleGetFunction(&fn, mod, "k_0ns") ||
        cuStreamCreate(&s, 0)) {
        fprintf(stderr, "launch_bench: driver setup failed\n");
        return 2;
    }
    for (long i = 0; i < count / 10; i++)   /* warm-up: lazy resolution, first-use paths */
        cuLaunchKernel(fn, 1, 1, 1, 32, 1, 1, 0, s, NULL, NULL);
    cuStreamSynchronize(s);
    double best = 1e300;
    for (int r = 0; r < rounds; r++) {
        double t0 = now_ns();
        for (long i = 0; i < count; i++)
            if (cuLaunchKernel(fn, 1, 1, 1, 32, 1, 1, 0, s, NULL, NULL) != 0) {
                fprintf(stderr, "launch_bench: launch failed\n");
                return 1;
            }
        double per = (now_ns() - t0) / count;
        if (per < best)
            best = per;
        cuStreamSynchronize(s);
    }
    printf("{\"ns_per_launch\": %.1f, \"launches\": %ld}\n", best, count);
    return 0;
}
