/* SPIRT.STATISTIC stat INPUTS n key [key ...]
 *
 * Replies a whole-vector statistic of n FLOAT (or n DOUBLE) tensors of one
 * shape as its doubles (little-endian, row-major): for
 * PAIRWISE_SQUARED_DISTANCES n * n of them, symmetric, zero diagonal. A
 * statistic is one row of STATS; adding one is adding a row (and its name
 * to spirtd.aggregation.Statistic). */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "commands.h"
#include "inputs.h"
#include "statistic.h"

#if !defined(__BYTE_ORDER__) || __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "statistics travel as little-endian doubles, copied as they lie in memory"
#endif

typedef struct StatDef {
    const char *name;
    size_t (*size)(size_t n);                  /* doubles of the result */
    size_t (*scratch)(size_t nelem, size_t n); /* doubles of scratch (SpirtAggArgs.dist) */
    void (*compute)(const SpirtExec *ex, SpirtAggArgs *a, double *out);
} StatDef;

static size_t pairs(size_t n) { return n * n; }

static size_t sqdist_scratch(size_t nelem, size_t n) {
    return spirt_sqdist_slices(nelem, n) * n * n;
}

static const StatDef STATS[SPIRT_NSTATS] = {
    [SPIRT_STAT_SQDIST] = {"PAIRWISE_SQUARED_DISTANCES", pairs, sqdist_scratch, spirt_kernel_sqdist},
};

int spirt_stat_find(const RedisModuleString *arg) {
    for (int i = 0; i < SPIRT_NSTATS; i++)
        if (spirt_arg_is(arg, STATS[i].name)) return i;
    return -1;
}

const char *spirt_stat_name(int stat) { return STATS[stat].name; }

void spirt_stat_known(char *buf, size_t cap) {
    size_t len = 0;
    buf[0] = '\0';
    for (int i = 0; i < SPIRT_NSTATS && len < cap; i++)
        len += (size_t)snprintf(buf + len, cap - len, "%s%s", i ? ", " : "", STATS[i].name);
}

static int reply_too_many(RedisModuleCtx *ctx, int stat, size_t n) {
    return spirt_reply_errorf(ctx, "ERR %s compares every pair of inputs and takes at most %d; got %zu",
                              STATS[stat].name, SPIRT_STAT_MAX_INPUTS, n);
}

double *spirt_stat_parse(RedisModuleCtx *ctx, int stat, const RedisModuleString *blob, size_t n) {
    size_t len;
    const char *bytes = RedisModule_StringPtrLen(blob, &len);
    if (n > SPIRT_STAT_MAX_INPUTS) return reply_too_many(ctx, stat, n), NULL;
    const size_t count = STATS[stat].size(n);
    if (len != count * sizeof(double))
        return spirt_reply_errorf(ctx, "ERR GIVEN %s for %zu inputs is %zu doubles (%zu bytes); got "
                                  "%zu bytes", STATS[stat].name, n, count, count * sizeof(double), len), NULL;
    double *v = RedisModule_Alloc(len);
    memcpy(v, bytes, len);
    for (size_t i = 0; i < count; i++) {
        if (isfinite(v[i])) continue;
        RedisModule_Free(v);
        return spirt_reply_errorf(ctx, "ERR GIVEN %s must be finite; number %zu is not",
                                  STATS[stat].name, i), NULL;
    }
    return v;
}

/* ---- the command ---- */

typedef struct StatState {
    const StatDef *def;
    SpirtAggArgs args;
    RedisModuleString **keys; /* input key names, for error messages */
    size_t nkeys;
    double *out;
    size_t nout;
} StatState;

static void free_state(void *p) {
    StatState *s = p;
    if (s == NULL) return;
    RedisModule_Free(s->args.inputs);
    RedisModule_Free(s->args.dist);
    spirt_keys_free(s->keys, s->nkeys);
    RedisModule_Free(s->out);
    RedisModule_Free(s);
}

static int run_statistic(SpirtJob *job, const SpirtExec *ex) {
    StatState *s = job->state;
    s->def->compute(ex, &s->args, s->out);
    /* With one input there is no pair to meet a non-finite value. */
    if (!atomic_load(&s->args.nonfinite) && s->args.n > 1) return 0;
    if (spirt_inputs_fail_nonfinite(job, &s->args, s->keys, "") != 0) return -1;
    if (!atomic_load(&s->args.nonfinite)) return 0;
    return spirt_job_fail(job, "ERR %s overflowed: it is not finite although every input is",
                          s->def->name);
}

static void reply_statistic(RedisModuleCtx *ctx, SpirtJob *job) {
    StatState *s = job->state;
    RedisModule_ReplyWithStringBuffer(ctx, (const char *)s->out, s->nout * sizeof(double));
}

/* Parses everything that does not need the keyspace. */
static StatState *parse_command(RedisModuleCtx *ctx, RedisModuleString **argv, int argc) {
    char known[128];
    size_t n, len;
    int stat = spirt_stat_find(argv[1]);
    if (stat < 0) {
        const char *name = RedisModule_StringPtrLen(argv[1], &len);
        spirt_stat_known(known, sizeof(known));
        spirt_reply_errorf(ctx, "ERR unknown statistic '%.*s'; known statistics: %s",
                           (int)(len > 32 ? 32 : len), name, known);
        return NULL;
    }
    if (spirt_inputs_count(ctx, argv, argc, 2, "the statistic name", &n) != 0) return NULL;
    if ((int)n != argc - 4) {
        spirt_reply_errorf(ctx, "ERR INPUTS says %zu keys but %d follow; nothing else may", n, argc - 4);
        return NULL;
    }
    if (n > SPIRT_STAT_MAX_INPUTS) {
        reply_too_many(ctx, stat, n);
        return NULL;
    }
    StatState *s = RedisModule_Calloc(1, sizeof(*s));
    s->def = &STATS[stat];
    s->nkeys = n;
    return s;
}

int spirt_cmd_statistic(RedisModuleCtx *ctx, RedisModuleString **argv, int argc) {
    if (argc < 5) return RedisModule_WrongArity(ctx);
    StatState *s = parse_command(ctx, argv, argc);
    if (s == NULL) return REDISMODULE_OK;
    SpirtJob *job = spirt_job_new("SPIRT.STATISTIC");
    job->state = s;
    job->free_state = free_state;
    job->run = run_statistic;
    job->reply = reply_statistic;
    s->args.inputs = RedisModule_Calloc(s->nkeys, sizeof(void *));
    s->keys = spirt_keys_copy(argv + 4, s->nkeys);
    if (spirt_inputs_hold(ctx, job, argv + 4, s->nkeys, "a statistic needs", &s->args) == NULL) {
        spirt_job_free(job);
        return REDISMODULE_OK;
    }
    s->nout = s->def->size(s->nkeys);
    s->out = RedisModule_Alloc(s->nout * sizeof(double));
    s->args.dist = RedisModule_Alloc(s->def->scratch(s->args.nelem, s->nkeys) * sizeof(double));
    return spirt_job_dispatch(ctx, job);
}
