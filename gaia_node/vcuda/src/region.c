/* The per-container shared region (see region.h for the layout and its invariant). */
#define _GNU_SOURCE /* secure_getenv */
#include "region.h"
#include "shm_mutex.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

_Static_assert(sizeof(pthread_mutex_t) <= 64, "the region keeps 64 bytes for its mutex");
_Static_assert(sizeof(struct vcuda_region_device) == 32, "region layout: device");
_Static_assert(sizeof(struct vcuda_region_export) == 24, "region layout: export");
_Static_assert(sizeof(struct vcuda_region_proc) == 144, "region layout: proc");
_Static_assert(__builtin_offsetof(struct vcuda_region, devices) == 128, "region layout: devices");
_Static_assert(__builtin_offsetof(struct vcuda_region, exports) == 640, "region layout: exports");
_Static_assert(__builtin_offsetof(struct vcuda_region, procs) == 6784, "region layout: procs");

static void init_region(struct vcuda_region *r)
{
    memset(r, 0, sizeof(*r));
    r->version = VCUDA_REGION_VERSION;
    r->size = sizeof(*r);
    r->max_devices = VCUDA_MAX_DEVICES;
    r->max_procs = VCUDA_MAX_PROCS;
    vcuda_shm_mutex_init(&r->lock.mutex);
    /* the magic last: a reader that sees it sees an initialised mutex */
    __atomic_store_n(&r->magic, VCUDA_REGION_MAGIC, __ATOMIC_RELEASE);
}

struct vcuda_region *vcuda_region_open(const char *path)
{
    struct vcuda_region *r;
    if (path == NULL || *path == '\0') {
        r = mmap(NULL, sizeof(*r), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
        if (r == MAP_FAILED)
            return NULL;
        init_region(r);
        return r;
    }
    int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0666);
    if (fd < 0) {
        fprintf(stderr, "gaia vcuda: region %s: %s; GPU memory is not accounted\n", path,
                strerror(errno));
        return NULL;
    }
    /* one process initialises a new file; the others wait here and then see the magic */
    while (flock(fd, LOCK_EX) != 0 && errno == EINTR)
        ;
    struct stat st;
    r = NULL;
    if (fstat(fd, &st) != 0)
        goto out;
    if (st.st_size == 0)
        fchmod(fd, 0666); /* every user of the container's processes shares it */
    if ((size_t)st.st_size < sizeof(*r) && ftruncate(fd, sizeof(*r)) != 0)
        goto out;
    r = mmap(NULL, sizeof(*r), PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    if (r == MAP_FAILED) {
        r = NULL;
        goto out;
    }
    if (__atomic_load_n(&r->magic, __ATOMIC_ACQUIRE) != VCUDA_REGION_MAGIC ||
        r->version != VCUDA_REGION_VERSION || r->size != sizeof(*r))
        init_region(r);
out:
    if (r == NULL)
        fprintf(stderr, "gaia vcuda: region %s: %s; GPU memory is not accounted\n", path,
                strerror(errno));
    flock(fd, LOCK_UN);
    close(fd);
    return r;
}

/* /proc/PID/stat: the state (field 3) and the start time (field 22, clock ticks since boot).
 * 0 when unreadable (no such process, or /proc hidden). */
static int proc_stat(pid_t pid, char *state, uint64_t *start_time)
{
    char path[64], buf[1024];
    snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return 0;
    ssize_t n = read(fd, buf, sizeof(buf) - 1);
    close(fd);
    if (n <= 0)
        return 0;
    buf[n] = '\0';
    /* field 2 (comm) may hold spaces and parentheses: count from the last ')' */
    char *p = strrchr(buf, ')');
    if (p == NULL || p[1] != ' ')
        return 0;
    *state = p[2];
    p++;
    for (int field = 3; field < 22; field++) {
        p = strchr(p + 1, ' ');
        if (p == NULL)
            return 0;
    }
    *start_time = strtoull(p + 1, NULL, 10);
    return 1;
}

uint64_t vcuda_process_start_time(pid_t pid)
{
    char state;
    uint64_t start = 0;
    return proc_stat(pid, &state, &start) ? start : 0;
}

static int alive(int32_t pid, uint64_t start_time)
{
    if (pid <= 0)
        return 0;
    char state;
    uint64_t now = 0;
    if (proc_stat(pid, &state, &now)) {
        if (state == 'Z' || state == 'X')
            return 0; /* exited, not yet reaped: its memory is already gone */
        return start_time == 0 || now == start_time; /* else the pid was reused */
    }
    return !(kill(pid, 0) != 0 && errno == ESRCH); /* no /proc: existence is all we can know */
}

static void drop_exports(struct vcuda_region *r, int32_t pid)
{
    for (int i = 0; i < VCUDA_MAX_EXPORTS; i++)
        if (r->exports[i].key != 0 && r->exports[i].pid == pid)
            memset(&r->exports[i], 0, sizeof(r->exports[i]));
}

void vcuda_region_release_slot(struct vcuda_region *r, int slot)
{
    struct vcuda_region_proc *p = &r->procs[slot];
    for (int d = 0; d < VCUDA_MAX_DEVICES; d++) {
        r->devices[d].used -= p->used[d];
        if (r->devices[d].used < 0)
            r->devices[d].used = 0;
    }
    drop_exports(r, p->pid);
    memset(p, 0, sizeof(*p));
}

long long vcuda_region_reclaim_dead(struct vcuda_region *r)
{
    long long bytes = 0;
    for (int i = 0; i < VCUDA_MAX_PROCS; i++) {
        struct vcuda_region_proc *p = &r->procs[i];
        if (p->pid == 0 || alive(p->pid, p->start_time))
            continue;
        for (int d = 0; d < VCUDA_MAX_DEVICES; d++)
            bytes += p->used[d];
        vcuda_region_release_slot(r, i);
    }
    for (int i = 0; i < VCUDA_MAX_EXPORTS; i++)
        if (r->exports[i].key != 0 && !alive(r->exports[i].pid, r->exports[i].start_time))
            memset(&r->exports[i], 0, sizeof(r->exports[i]));
    r->reclaimed_bytes += (uint64_t)bytes;
    return bytes;
}

/* After an owner died mid-update: drop the dead, then make the totals the slots' sums again. */
static void repair(struct vcuda_region *r)
{
    r->owner_deaths++;
    vcuda_region_reclaim_dead(r);
    for (int d = 0; d < VCUDA_MAX_DEVICES; d++) {
        int64_t sum = 0;
        for (int i = 0; i < VCUDA_MAX_PROCS; i++)
            if (r->procs[i].pid != 0)
                sum += r->procs[i].used[d];
        r->devices[d].used = sum;
    }
}

void vcuda_region_lock(struct vcuda_region *r)
{
    if (vcuda_shm_mutex_lock(&r->lock.mutex, "region"))
        repair(r);
}

void vcuda_region_unlock(struct vcuda_region *r)
{
    pthread_mutex_unlock(&r->lock.mutex);
}

static pid_t self_pid;
static int self_slot = -1;
static pid_t g_pid; /* getpid() is a system call since glibc 2.25: cached, reset after fork */

pid_t vcuda_pid(void)
{
    pid_t p = __atomic_load_n(&g_pid, __ATOMIC_RELAXED);
    if (p == 0) {
        p = getpid();
        __atomic_store_n(&g_pid, p, __ATOMIC_RELAXED);
    }
    return p;
}

void vcuda_region_forked(void)
{
    g_pid = 0;
    self_pid = 0;
    self_slot = -1;
}

int vcuda_region_registered(void)
{
    return self_slot >= 0 && self_pid == vcuda_pid();
}

int vcuda_region_self(struct vcuda_region *r)
{
    pid_t me = vcuda_pid();
    if (self_pid == me && self_slot >= 0 && r->procs[self_slot].pid == me)
        return self_slot;
    uint64_t start = vcuda_process_start_time(me);
    /* A slot already under this pid belongs to this process's image before an exec (same pid,
     * same start time, its memory gone with its address space) or to a dead process whose pid
     * was reused: either way its bytes are no longer held. */
    for (int i = 0; i < VCUDA_MAX_PROCS; i++)
        if (r->procs[i].pid == me)
            vcuda_region_release_slot(r, i);
    for (int attempt = 0; attempt < 2; attempt++) {
        for (int i = 0; i < VCUDA_MAX_PROCS; i++) {
            struct vcuda_region_proc *p = &r->procs[i];
            if (p->pid == 0) {
                memset(p, 0, sizeof(*p));
                p->start_time = start;
                p->pid = me;
                self_pid = me;
                self_slot = i;
                return i;
            }
        }
        vcuda_region_reclaim_dead(r);
    }
    return -1;
}

int vcuda_region_find_device(const struct vcuda_region *r, const unsigned char uuid[16])
{
    for (int d = 0; d < VCUDA_MAX_DEVICES; d++)
        if (__atomic_load_n(&r->devices[d].in_use, __ATOMIC_ACQUIRE) &&
            memcmp(r->devices[d].uuid, uuid, 16) == 0)
            return d;
    return -1;
}

int vcuda_region_device(struct vcuda_region *r, const unsigned char uuid[16])
{
    int d = vcuda_region_find_device(r, uuid);
    if (d >= 0)
        return d;
    for (d = 0; d < VCUDA_MAX_DEVICES; d++) {
        if (!r->devices[d].in_use) {
            memcpy(r->devices[d].uuid, uuid, 16);
            r->devices[d].used = 0;
            __atomic_store_n(&r->devices[d].in_use, 1, __ATOMIC_RELEASE);
            return d;
        }
    }
    return -1;
}

static long long g_hold_ms = -1;
static int g_hold_mid;
static char g_hold_marker[4096];

void vcuda_region_test_hold_init(void)
{
    const char *ms = secure_getenv("GAIA_VCUDA_TEST_HOLD_LOCK_MS");
    const char *marker = secure_getenv("GAIA_VCUDA_TEST_HOLD_LOCK_FILE");
    const char *at = secure_getenv("GAIA_VCUDA_TEST_HOLD_LOCK_AT");
    g_hold_ms = ms != NULL && *ms != '\0' ? atoll(ms) : -1;
    g_hold_mid = at != NULL && strcmp(at, "mid") == 0;
    snprintf(g_hold_marker, sizeof(g_hold_marker), "%s", marker ? marker : "");
}

void vcuda_region_test_hold(int mid)
{
    if (g_hold_ms < 0 || mid != g_hold_mid)
        return;
    if (g_hold_marker[0] != '\0') {
        int fd = open(g_hold_marker, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
        if (fd >= 0)
            close(fd);
    }
    struct timespec ts = {g_hold_ms / 1000, (g_hold_ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
        ;
}
