#include "inputs.h"

#include <stdint.h>

RedisModuleString **spirt_keys_copy(RedisModuleString *const *names, size_t n) {
    RedisModuleString **keys = RedisModule_Calloc(n, sizeof(*keys));
    for (size_t k = 0; k < n; k++) keys[k] = RedisModule_CreateStringFromString(NULL, names[k]);
    return keys;
}

void spirt_keys_free(RedisModuleString **keys, size_t n) {
    if (keys == NULL) return;
    for (size_t k = 0; k < n; k++)
        if (keys[k]) RedisModule_FreeString(NULL, keys[k]);
    RedisModule_Free(keys);
}

static int reply_layout_differs(RedisModuleCtx *ctx, const char *kname, const SpirtTensor *t,
                                RedisModuleString *first_name, const SpirtTensor *first) {
    char fname[SPIRT_KEYNAME_IN_ERROR + 1], shape[128], fshape[128];
    spirt_shape_text(t, shape, sizeof(shape));
    spirt_shape_text(first, fshape, sizeof(fshape));
    spirt_keyname(first_name, fname, sizeof(fname));
    return spirt_reply_errorf(ctx, "ERR input '%s' is %s %s but '%s' is %s %s", kname,
                              spirt_dtype_name(t->dtype), shape, fname,
                              spirt_dtype_name(first->dtype), fshape);
}

/* One input's checks; replies and returns NULL on a problem. */
static SpirtTensor *check_input(RedisModuleCtx *ctx, RedisModuleString **names, size_t k,
                                const SpirtTensor *first, const char *what) {
    char kname[SPIRT_KEYNAME_IN_ERROR + 1];
    SpirtKeyKind kind;
    SpirtTensor *t;
    RedisModule_CloseKey(spirt_key_open(ctx, names[k], REDISMODULE_READ, &kind, &t));
    spirt_keyname(names[k], kname, sizeof(kname));
    if (kind == SPIRT_KEY_EMPTY)
        return spirt_reply_errorf(ctx, "ERR input tensor '%s' does not exist", kname), NULL;
    if (kind == SPIRT_KEY_OTHER)
        return spirt_reply_errorf(ctx, "WRONGTYPE input '%s' holds a value that is not a tensor", kname), NULL;
    if (!spirt_dtype_is_float(t->dtype))
        return spirt_reply_errorf(ctx, "ERR input '%s' has dtype %s; %s FLOAT or DOUBLE", kname,
                                  spirt_dtype_name(t->dtype), what), NULL;
    if (first && !spirt_tensor_same_layout(first, t))
        return reply_layout_differs(ctx, kname, t, names[0], first), NULL;
    return t;
}

const SpirtTensor *spirt_inputs_hold(RedisModuleCtx *ctx, SpirtJob *job, RedisModuleString **names,
                                     size_t n, const char *what, SpirtAggArgs *a) {
    const SpirtTensor *first = NULL;
    for (size_t k = 0; k < n; k++) {
        SpirtTensor *t = check_input(ctx, names, k, first, what);
        if (t == NULL) return NULL;
        if (first == NULL) first = t;
        a->inputs[k] = spirt_job_hold(job, t->buf);
        job->work_bytes += t->buf->nbytes;
    }
    a->n = n;
    a->dtype = first->dtype;
    a->nelem = first->nelem;
    return first;
}

int spirt_inputs_fail_nonfinite(SpirtJob *job, const SpirtAggArgs *a, RedisModuleString **keys,
                                const char *after) {
    char name[SPIRT_KEYNAME_IN_ERROR + 1];
    for (size_t k = 0; k < a->n; k++) {
        long long at = spirt_find_nonfinite(a->dtype, a->inputs[k], a->nelem);
        if (at >= 0)
            return spirt_job_fail(job, "ERR input '%s' has a non-finite value at element %lld%s",
                                  spirt_keyname(keys[k], name, sizeof(name)), at, after);
    }
    return 0;
}

int spirt_inputs_count(RedisModuleCtx *ctx, RedisModuleString **argv, int argc, int at,
                       const char *after, size_t *n) {
    long long v;
    if (!spirt_arg_is(argv[at], "INPUTS"))
        return spirt_reply_errorf(ctx, "ERR expected INPUTS after %s", after), -1;
    if (spirt_parse_int(argv[at + 1], 1, INT32_MAX, &v) != 0)
        return spirt_reply_errorf(ctx, "ERR INPUTS count must be a positive integer"), -1;
    if (v > argc - at - 2)
        return spirt_reply_errorf(ctx, "ERR INPUTS says %lld keys but only %d follow", v, argc - at - 2), -1;
    *n = (size_t)v;
    return 0;
}
