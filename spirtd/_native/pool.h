/* Worker threads for heavy commands.
 *
 * One driver thread takes jobs in submission order and runs them one at a
 * time; inside a job, spirt_exec parallel_for splits a range of elements
 * into grains that the driver and the helper threads claim until none is
 * left. Kernels see only SpirtExec, so the same kernel also runs inline on
 * Redis's main thread (spirt_serial_exec) for small inputs. */
#ifndef SPIRT_POOL_H
#define SPIRT_POOL_H

#include <stddef.h>
#include <stdint.h>

/* Processes elements [lo, hi); worker is in [0, nworkers). */
typedef void (*SpirtRangeFn)(void *arg, size_t lo, size_t hi, int worker);

typedef struct SpirtExec {
    int nworkers;
    void (*parallel_for)(size_t n, size_t grain, SpirtRangeFn fn, void *arg);
} SpirtExec;

extern const SpirtExec spirt_serial_exec;
extern SpirtExec spirt_pool_exec; /* nworkers is set by spirt_pool_start */

struct SpirtJob;
typedef void (*SpirtJobBody)(struct SpirtJob *job);

/* Starts nthreads threads (>= 1). Returns 0 or -1. */
int spirt_pool_start(int nthreads, SpirtJobBody body);
/* Queues a job; the driver calls body(job) later. Main thread only. */
void spirt_pool_submit(struct SpirtJob *job);

typedef struct SpirtPoolStats {
    int threads;
    uint64_t queued;
    uint64_t done;
} SpirtPoolStats;
SpirtPoolStats spirt_pool_stats(void);

#endif
