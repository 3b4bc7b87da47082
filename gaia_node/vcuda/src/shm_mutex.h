/* The process-shared, robust mutex both shared files use (the container's region and the
 * compute-share files): one implementation of the recovery rules. */
#ifndef VCUDA_SHM_MUTEX_H
#define VCUDA_SHM_MUTEX_H

#include <pthread.h>

int vcuda_shm_mutex_init(pthread_mutex_t *m);

/* Locks `m`. Returns 1 when its previous owner died holding it: the mutex is consistent again
 * and the caller must repair what that owner may have left half-written; else 0. `what` names
 * the file in the one message an unusable mutex earns. */
int vcuda_shm_mutex_lock(pthread_mutex_t *m, const char *what);

#endif
