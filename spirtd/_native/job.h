/* A heavy command as a job: the command handler (main thread) checks its
 * arguments, takes references to its input buffers and creates its output
 * tensors; run() fills the outputs, on the worker threads or inline; then,
 * back on the main thread, the outputs replace their keys all together or
 * not at all, and the reply goes out.
 *
 * Inputs are read as they were when the command was called; outputs appear
 * when the command completes. A job never writes a key that it finds changed
 * since the call (check_stamp), so no update made meanwhile is lost. */
#ifndef SPIRT_JOB_H
#define SPIRT_JOB_H

#include <stddef.h>
#include <stdint.h>

#include "pool.h"
#include "rm_abi.h"
#include "tensor.h"
#include "util.h"

#define SPIRT_MAX_OUTPUTS 8

typedef struct SpirtOutput {
    RedisModuleString *key; /* owned copy */
    SpirtTensor *tensor;    /* owned until installed */
    /* If set, install only if the key still holds what it held at the call:
     * the tensor with this stamp, or nothing when stamp is 0. */
    int check_stamp;
    uint64_t stamp;
} SpirtOutput;

typedef struct SpirtJob SpirtJob;
struct SpirtJob {
    const char *command;
    /* Fills the outputs. On failure calls spirt_job_fail and returns -1. */
    int (*run)(SpirtJob *job, const SpirtExec *ex);
    /* Main thread, after the outputs are installed. NULL replies +OK. */
    void (*reply)(RedisModuleCtx *ctx, SpirtJob *job);
    void (*free_state)(void *state);
    void *state;
    /* Bytes the job reads and writes, to choose inline or background. */
    size_t work_bytes;

    SpirtBuffer **held;
    int nheld, held_cap;
    SpirtOutput outputs[SPIRT_MAX_OUTPUTS];
    int noutputs;
    char err[SPIRT_ERR_LEN];
    RedisModuleBlockedClient *bc;
    SpirtJob *next; /* pool queue link */
};

SpirtJob *spirt_job_new(const char *command);
void spirt_job_free(SpirtJob *job);

/* Keeps a buffer alive until the job is freed; returns its bytes. */
const void *spirt_job_hold(SpirtJob *job, SpirtBuffer *buf);

/* Adds an output; the job owns tensor from now on. */
void spirt_job_add_output(SpirtJob *job, RedisModuleString *key, SpirtTensor *tensor,
                          int check_stamp, uint64_t stamp);

/* Records an error reply ("ERR ..."); returns -1 for run() to return. */
int spirt_job_fail(SpirtJob *job, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Runs the job inline or on the pool and replies when it is done. Takes
 * ownership of job. Always returns REDISMODULE_OK. */
int spirt_job_dispatch(RedisModuleCtx *ctx, SpirtJob *job);

/* Pool driver entry point. */
void spirt_job_body(SpirtJob *job);

#endif
