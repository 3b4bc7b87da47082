#include "shm_mutex.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int vcuda_shm_mutex_init(pthread_mutex_t *m)
{
    pthread_mutexattr_t attr;
    pthread_mutexattr_init(&attr);
    pthread_mutexattr_setpshared(&attr, PTHREAD_PROCESS_SHARED);
    /* ROBUST: the kernel hands the mutex to the next locker with EOWNERDEAD when its owner dies
     * (the futex robust list), so a SIGKILLed process never stalls the others. */
    pthread_mutexattr_setrobust(&attr, PTHREAD_MUTEX_ROBUST);
    int rc = pthread_mutex_init(m, &attr);
    pthread_mutexattr_destroy(&attr);
    return rc;
}

int vcuda_shm_mutex_lock(pthread_mutex_t *m, const char *what)
{
    for (;;) {
        int rc = pthread_mutex_lock(m);
        if (rc == 0)
            return 0;
        if (rc == EOWNERDEAD) {
            pthread_mutex_consistent(m);
            return 1;
        }
        if (rc == ENOTRECOVERABLE) {
            /* only reachable if a holder unlocked after EOWNERDEAD without making it consistent,
             * which this library never does (an older or foreign writer could): start over with
             * a fresh mutex, the only operation POSIX leaves on such a mutex. */
            fprintf(stderr, "gaia vcuda: %s lock not recoverable; reinitialising it\n", what);
            pthread_mutex_destroy(m);
            vcuda_shm_mutex_init(m);
            continue;
        }
        fprintf(stderr, "gaia vcuda: %s lock: %s\n", what, strerror(rc));
        abort();
    }
}
