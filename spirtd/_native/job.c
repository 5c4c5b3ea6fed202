#include "job.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "config.h"

#define SPIRT_HELD_INITIAL 8

SpirtJob *spirt_job_new(const char *command) {
    SpirtJob *job = RedisModule_Calloc(1, sizeof(*job));
    job->command = command;
    return job;
}

void spirt_job_free(SpirtJob *job) {
    if (job == NULL) return;
    for (int i = 0; i < job->nheld; i++) spirt_buffer_unref(job->held[i]);
    RedisModule_Free(job->held);
    for (int i = 0; i < job->noutputs; i++) {
        RedisModule_FreeString(NULL, job->outputs[i].key);
        spirt_tensor_free(job->outputs[i].tensor);
    }
    if (job->free_state) job->free_state(job->state);
    RedisModule_Free(job);
}

const void *spirt_job_hold(SpirtJob *job, SpirtBuffer *buf) {
    if (job->nheld == job->held_cap) {
        int cap = job->held_cap ? job->held_cap * 2 : SPIRT_HELD_INITIAL;
        SpirtBuffer **grown = RedisModule_Alloc((size_t)cap * sizeof(*grown));
        if (job->nheld) memcpy(grown, job->held, (size_t)job->nheld * sizeof(*grown));
        RedisModule_Free(job->held);
        job->held = grown;
        job->held_cap = cap;
    }
    job->held[job->nheld++] = spirt_buffer_ref(buf);
    return buf->data;
}

void spirt_job_add_output(SpirtJob *job, RedisModuleString *key, SpirtTensor *tensor,
                          int check_stamp, uint64_t stamp) {
    SpirtOutput *out = &job->outputs[job->noutputs++];
    out->key = RedisModule_CreateStringFromString(NULL, key);
    out->tensor = tensor;
    out->check_stamp = check_stamp;
    out->stamp = stamp;
}

int spirt_job_fail(SpirtJob *job, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(job->err, sizeof(job->err), fmt, ap);
    va_end(ap);
    for (char *p = job->err; *p; p++)
        if (*p == '\r' || *p == '\n') *p = ' ';
    if (job->err[0] == '\0') snprintf(job->err, sizeof(job->err), "ERR %s failed", job->command);
    return -1;
}

static int output_conflicts(const SpirtOutput *out, SpirtKeyKind kind, const SpirtTensor *now) {
    if (!out->check_stamp) return 0;
    if (out->stamp == 0) return kind != SPIRT_KEY_EMPTY;
    return kind != SPIRT_KEY_TENSOR || now->stamp != out->stamp;
}

/* Checks, read-only, that every output key may be written; replies with
 * the error otherwise. (Closing a key opened for writing counts as a
 * modification for WATCH even if nothing was written.) */
static int check_outputs(RedisModuleCtx *ctx, SpirtJob *job) {
    char name[SPIRT_KEYNAME_IN_ERROR + 1];
    for (int i = 0; i < job->noutputs; i++) {
        SpirtOutput *out = &job->outputs[i];
        SpirtKeyKind kind;
        SpirtTensor *now;
        RedisModule_CloseKey(spirt_key_open(ctx, out->key, REDISMODULE_READ, &kind, &now));
        spirt_keyname(out->key, name, sizeof(name));
        if (kind == SPIRT_KEY_OTHER)
            return spirt_reply_errorf(ctx, "WRONGTYPE key '%s' no longer holds a tensor; %s wrote "
                                      "nothing", name, job->command), -1;
        if (output_conflicts(out, kind, now))
            return spirt_reply_errorf(ctx, "ERR tensor '%s' was modified while %s ran; nothing was "
                                      "written", name, job->command), -1;
    }
    return 0;
}

static int install_outputs(RedisModuleCtx *ctx, SpirtJob *job) {
    if (job->noutputs == 0) return 0;
    if (check_outputs(ctx, job) != 0) return -1;
    int propagate = spirt_propagation_needed(ctx);
    for (int i = 0; i < job->noutputs; i++) {
        SpirtOutput *out = &job->outputs[i];
        SpirtTensor *t = out->tensor;
        RedisModuleKey *key = RedisModule_OpenKey(ctx, out->key, REDISMODULE_READ | REDISMODULE_WRITE);
        RedisModule_ModuleTypeSetValue(key, SpirtTensorType, t);
        out->tensor = NULL; /* the keyspace owns it now */
        if (propagate) spirt_tensor_replicate(ctx, out->key, t);
        RedisModule_CloseKey(key);
    }
    /* Redis counts changes (for its save rules) only through replication.
     * With no AOF and no replication stream nothing reads what is
     * replicated, so a PING counts the change without copying the tensors. */
    if (!propagate) RedisModule_Replicate(ctx, "PING", "");
    return 0;
}

static void finish(RedisModuleCtx *ctx, SpirtJob *job) {
    if (job->err[0]) {
        RedisModule_ReplyWithError(ctx, job->err);
        return;
    }
    if (install_outputs(ctx, job) != 0) return;
    if (job->reply) job->reply(ctx, job);
    else RedisModule_ReplyWithSimpleString(ctx, "OK");
}

static int on_unblocked(RedisModuleCtx *ctx, RedisModuleString **argv, int argc) {
    (void)argv;
    (void)argc;
    finish(ctx, RedisModule_GetBlockedClientPrivateData(ctx));
    return REDISMODULE_OK;
}

static void on_free(RedisModuleCtx *ctx, void *privdata) {
    (void)ctx;
    spirt_job_free(privdata);
}

void spirt_job_body(SpirtJob *job) {
    job->run(job, &spirt_pool_exec);
    RedisModule_UnblockClient(job->bc, job);
}

int spirt_job_dispatch(RedisModuleCtx *ctx, SpirtJob *job) {
    const int no_blocking = REDISMODULE_CTX_FLAGS_LUA | REDISMODULE_CTX_FLAGS_MULTI |
                            REDISMODULE_CTX_FLAGS_DENY_BLOCKING | REDISMODULE_CTX_FLAGS_LOADING;
    int inline_run = (RedisModule_GetContextFlags(ctx) & no_blocking) ||
                     job->work_bytes < spirt_config.inline_bytes;
    if (!inline_run) {
        job->bc = RedisModule_BlockClient(ctx, on_unblocked, NULL, on_free, 0);
        if (job->bc != NULL) {
            spirt_pool_submit(job);
            return REDISMODULE_OK;
        }
    }
    job->run(job, &spirt_serial_exec);
    finish(ctx, job);
    spirt_job_free(job);
    return REDISMODULE_OK;
}
