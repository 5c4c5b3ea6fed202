/* The inputs of a command over n tensors of one layout (SPIRT.AGGREGATE,
 * SPIRT.STATISTIC): checked in order on the main thread, held by the job,
 * and named in the errors the job finds later on its thread. */
#ifndef SPIRT_INPUTS_H
#define SPIRT_INPUTS_H

#include <stddef.h>

#include "job.h"
#include "kernels.h"

/* Own copies of n key names (the job outlives argv); free with spirt_keys_free. */
RedisModuleString **spirt_keys_copy(RedisModuleString *const *names, size_t n);
void spirt_keys_free(RedisModuleString **keys, size_t n);

/* Checks the n keys in order (each exists, holds a FLOAT or DOUBLE tensor
 * of the first one's layout), holds their buffers in job and sets
 * a->inputs (n pointers, allocated by the caller), a->n, a->dtype,
 * a->nelem and job->work_bytes. what ("aggregation needs") words the dtype
 * error. Returns the first tensor, or NULL after replying the first problem. */
const SpirtTensor *spirt_inputs_hold(RedisModuleCtx *ctx, SpirtJob *job, RedisModuleString **names,
                                     size_t n, const char *what, SpirtAggArgs *a);

/* Fails the job naming the first input holding a non-finite value (and its
 * first such element; after ends the message) and returns -1; 0 when every
 * input is finite. */
int spirt_inputs_fail_nonfinite(SpirtJob *job, const SpirtAggArgs *a, RedisModuleString **keys,
                                const char *after);

/* Parses "INPUTS n" at argv[at], argv[at + 1] (after: what precedes it, for
 * the error) and checks that n keys follow: 0 and *n, or -1 after replying. */
int spirt_inputs_count(RedisModuleCtx *ctx, RedisModuleString **argv, int argc, int at,
                       const char *after, size_t *n);

#endif
