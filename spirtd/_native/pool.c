#include "pool.h"

#include <pthread.h>
#include <stdatomic.h>

#include "job.h"
#include "rm_abi.h"

static void serial_for(size_t n, size_t grain, SpirtRangeFn fn, void *arg) {
    (void)grain;
    if (n > 0) fn(arg, 0, n, 0);
}

const SpirtExec spirt_serial_exec = {1, serial_for};

static struct {
    pthread_mutex_t mu;
    pthread_cond_t job_ready;
    struct SpirtJob *head, *tail;
    SpirtJobBody body;
    int nthreads;

    /* The current parallel region, published by the driver under mu. */
    pthread_cond_t region_ready;
    pthread_cond_t region_done;
    uint64_t region_gen;
    int helpers_busy;
    SpirtRangeFn fn;
    void *arg;
    size_t n, grain;
    atomic_size_t next;

    atomic_uint_fast64_t queued, done;
} P = {
    .mu = PTHREAD_MUTEX_INITIALIZER,
    .job_ready = PTHREAD_COND_INITIALIZER,
    .region_ready = PTHREAD_COND_INITIALIZER,
    .region_done = PTHREAD_COND_INITIALIZER,
};

static void claim_grains(SpirtRangeFn fn, void *arg, size_t n, size_t grain, int worker) {
    for (;;) {
        size_t lo = atomic_fetch_add_explicit(&P.next, grain, memory_order_relaxed);
        if (lo >= n) return;
        size_t hi = n - lo < grain ? n : lo + grain;
        fn(arg, lo, hi, worker);
    }
}

static void pool_for(size_t n, size_t grain, SpirtRangeFn fn, void *arg) {
    if (n == 0) return;
    if (grain == 0) grain = 1;
    if (P.nthreads == 1 || n <= grain) {
        fn(arg, 0, n, 0);
        return;
    }
    pthread_mutex_lock(&P.mu);
    P.fn = fn;
    P.arg = arg;
    P.n = n;
    P.grain = grain;
    atomic_store_explicit(&P.next, 0, memory_order_relaxed);
    P.helpers_busy = P.nthreads - 1;
    P.region_gen++;
    pthread_cond_broadcast(&P.region_ready);
    pthread_mutex_unlock(&P.mu);

    claim_grains(fn, arg, n, grain, 0);

    pthread_mutex_lock(&P.mu);
    while (P.helpers_busy > 0) pthread_cond_wait(&P.region_done, &P.mu);
    pthread_mutex_unlock(&P.mu);
}

SpirtExec spirt_pool_exec = {1, pool_for};

static void *helper_main(void *arg) {
    int worker = (int)(intptr_t)arg;
    uint64_t seen = 0;
    pthread_mutex_lock(&P.mu);
    for (;;) {
        while (P.region_gen == seen) pthread_cond_wait(&P.region_ready, &P.mu);
        seen = P.region_gen;
        SpirtRangeFn fn = P.fn;
        void *fnarg = P.arg;
        size_t n = P.n, grain = P.grain;
        pthread_mutex_unlock(&P.mu);

        claim_grains(fn, fnarg, n, grain, worker);

        pthread_mutex_lock(&P.mu);
        if (--P.helpers_busy == 0) pthread_cond_signal(&P.region_done);
    }
    return NULL;
}

static void *driver_main(void *unused) {
    (void)unused;
    for (;;) {
        pthread_mutex_lock(&P.mu);
        while (P.head == NULL) pthread_cond_wait(&P.job_ready, &P.mu);
        struct SpirtJob *job = P.head;
        P.head = job->next;
        if (P.head == NULL) P.tail = NULL;
        pthread_mutex_unlock(&P.mu);

        P.body(job);
        atomic_fetch_add_explicit(&P.done, 1, memory_order_relaxed);
    }
    return NULL;
}

static int spawn(void *(*main)(void *), void *arg) {
    pthread_t tid;
    pthread_attr_t attr;
    pthread_attr_init(&attr);
    pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
    int rc = pthread_create(&tid, &attr, main, arg);
    pthread_attr_destroy(&attr);
    return rc == 0 ? 0 : -1;
}

int spirt_pool_start(int nthreads, SpirtJobBody body) {
    P.nthreads = nthreads < 1 ? 1 : nthreads;
    P.body = body;
    spirt_pool_exec.nworkers = P.nthreads;
    if (spawn(driver_main, NULL) != 0) return -1;
    for (int w = 1; w < P.nthreads; w++)
        if (spawn(helper_main, (void *)(intptr_t)w) != 0) return -1;
    return 0;
}

void spirt_pool_submit(struct SpirtJob *job) {
    job->next = NULL;
    pthread_mutex_lock(&P.mu);
    if (P.tail) P.tail->next = job;
    else P.head = job;
    P.tail = job;
    pthread_cond_signal(&P.job_ready);
    pthread_mutex_unlock(&P.mu);
    atomic_fetch_add_explicit(&P.queued, 1, memory_order_relaxed);
}

SpirtPoolStats spirt_pool_stats(void) {
    SpirtPoolStats s = {P.nthreads, atomic_load(&P.queued), atomic_load(&P.done)};
    return s;
}
