/* In-database optimizer steps with torch.optim's semantics; the optimizer
 * state lives in tensors beside the parameters.
 *
 * SPIRT.SGD param grad LR lr [MOMENTUM mu BUFFER key] [DAMPENING d]
 *           [NESTEROV] [WEIGHT_DECAY wd] [MAXIMIZE]
 * SPIRT.ADAM param grad LR lr EXP_AVG key EXP_AVG_SQ key STEP key
 *           [BETA1 b1] [BETA2 b2] [EPS eps] [WEIGHT_DECAY wd] [DECOUPLED] [MAXIMIZE]
 *
 * The new parameter and state are computed into fresh tensors and replace
 * the old ones together when the step completes (see job.h). A gradient
 * with a non-finite value is refused: it would poison the model. */
#include <limits.h>
#include <math.h>
#include <string.h>

#include "commands.h"
#include "kernels.h"

typedef enum { ARG_NUM, ARG_FLAG, ARG_KEY } ArgKind;

typedef struct OptSpec {
    const char *name;
    ArgKind kind;
    double fallback; /* ARG_NUM default */
} OptSpec;

#define MAX_OPTS 12

typedef struct OptValues {
    double num[MAX_OPTS];
    int flag[MAX_OPTS];
    RedisModuleString *key[MAX_OPTS];
    int pos[MAX_OPTS]; /* argv index of a key, for getkeys */
} OptValues;

/* Parses argv[from..argc) against specs; replies and returns -1 on error. */
static int parse_opts(RedisModuleCtx *ctx, const OptSpec *specs, int nspecs,
                      RedisModuleString **argv, int from, int argc, OptValues *v) {
    unsigned seen = 0;
    memset(v, 0, sizeof(*v));
    for (int s = 0; s < nspecs; s++) v->num[s] = specs[s].fallback;
    for (int i = from; i < argc;) {
        int s = 0;
        while (s < nspecs && !spirt_arg_is(argv[i], specs[s].name)) s++;
        size_t len;
        const char *word = RedisModule_StringPtrLen(argv[i], &len);
        if (s == nspecs)
            return spirt_reply_errorf(ctx, "ERR unknown option '%.*s'", (int)(len > 32 ? 32 : len), word), -1;
        if (seen & (1u << s)) return spirt_reply_errorf(ctx, "ERR option %s given twice", specs[s].name), -1;
        seen |= 1u << s;
        if (specs[s].kind == ARG_FLAG) {
            v->flag[s] = 1;
            i++;
            continue;
        }
        if (i + 1 >= argc) return spirt_reply_errorf(ctx, "ERR option %s needs a value", specs[s].name), -1;
        if (specs[s].kind == ARG_KEY) {
            v->key[s] = argv[i + 1];
            v->pos[s] = i + 1;
        } else if (spirt_parse_finite(argv[i + 1], &v->num[s]) != 0) {
            return spirt_reply_errorf(ctx, "ERR %s must be a finite number", specs[s].name), -1;
        }
        i += 2;
    }
    return 0;
}

static int report_keys(RedisModuleCtx *ctx, const OptSpec *specs, int nspecs,
                       RedisModuleString **argv, int argc) {
    for (int i = 1; i <= 2 && i < argc; i++) RedisModule_KeyAtPos(ctx, i);
    for (int i = 3; i + 1 < argc; i++)
        for (int s = 0; s < nspecs; s++)
            if (specs[s].kind == ARG_KEY && spirt_arg_is(argv[i], specs[s].name)) {
                RedisModule_KeyAtPos(ctx, ++i);
                break;
            }
    return REDISMODULE_OK;
}

static int same_key(const RedisModuleString *a, const RedisModuleString *b) {
    size_t la, lb;
    const char *pa = RedisModule_StringPtrLen(a, &la), *pb = RedisModule_StringPtrLen(b, &lb);
    return la == lb && memcmp(pa, pb, la) == 0;
}

/* Every key of a step (parameter, gradient, state) must be its own; replies
 * and returns -1 if not. */
static int check_distinct(RedisModuleCtx *ctx, RedisModuleString **keys, int n) {
    char name[SPIRT_KEYNAME_IN_ERROR + 1];
    for (int i = 0; i < n; i++)
        for (int j = i + 1; j < n; j++)
            if (same_key(keys[i], keys[j]))
                return spirt_reply_errorf(ctx, "ERR key '%s' is used for two roles; the parameter, "
                                          "the gradient and each state tensor need their own key",
                                          spirt_keyname(keys[i], name, sizeof(name))), -1;
    return 0;
}

typedef enum { NEED_TENSOR, MAY_BE_EMPTY } Presence;

/* Opens key `name` in role `role` (e.g. "parameter"); it must hold a tensor
 * with the layout of `like` (any float tensor when like is NULL). Replies
 * and returns -1 on error; *t is NULL for an allowed empty key. */
static int open_role(RedisModuleCtx *ctx, RedisModuleString *name, const char *role,
                     const SpirtTensor *like, Presence presence, SpirtTensor **t) {
    char kname[SPIRT_KEYNAME_IN_ERROR + 1], shape[128], want[128];
    SpirtKeyKind kind;
    RedisModuleKey *key = spirt_key_open(ctx, name, REDISMODULE_READ, &kind, t);
    RedisModule_CloseKey(key);
    spirt_keyname(name, kname, sizeof(kname));
    if (kind == SPIRT_KEY_OTHER)
        return spirt_reply_errorf(ctx, "WRONGTYPE %s '%s' holds a value that is not a tensor", role, kname), -1;
    if (kind == SPIRT_KEY_EMPTY) {
        if (presence == MAY_BE_EMPTY) return 0;
        return spirt_reply_errorf(ctx, "ERR %s tensor '%s' does not exist", role, kname), -1;
    }
    if (like == NULL && !spirt_dtype_is_float((*t)->dtype))
        return spirt_reply_errorf(ctx, "ERR %s '%s' has dtype %s; optimizer steps need FLOAT or DOUBLE",
                                  role, kname, spirt_dtype_name((*t)->dtype)), -1;
    if (like != NULL && !spirt_tensor_same_layout(like, *t)) {
        spirt_shape_text(*t, shape, sizeof(shape));
        spirt_shape_text(like, want, sizeof(want));
        return spirt_reply_errorf(ctx, "ERR %s '%s' is %s %s but the parameter is %s %s", role, kname,
                                  spirt_dtype_name((*t)->dtype), shape, spirt_dtype_name(like->dtype),
                                  want), -1;
    }
    return 0;
}

/* Adds a fresh output shaped like the parameter; returns its bytes, or NULL
 * if it would exceed MAX_TENSOR_BYTES. */
static void *add_state_output(SpirtJob *job, RedisModuleString *key, const SpirtTensor *param,
                              const SpirtTensor *old) {
    SpirtTensor *out = spirt_tensor_new_like(param, 0);
    if (out == NULL) return NULL;
    spirt_job_add_output(job, key, out, 1, old ? old->stamp : 0);
    job->work_bytes += out->buf->nbytes;
    return out->buf->data;
}

static int fail_too_big(RedisModuleCtx *ctx, SpirtJob *job) {
    spirt_job_free(job);
    return RedisModule_ReplyWithError(ctx, "ERR optimizer state would exceed MAX_TENSOR_BYTES");
}

static int fail_gradient(SpirtJob *job, RedisModuleString *grad, SpirtDType dtype, const void *g,
                         size_t nelem) {
    char name[SPIRT_KEYNAME_IN_ERROR + 1];
    return spirt_job_fail(job, "ERR gradient '%s' has a non-finite value at element %lld; nothing "
                          "was written", spirt_keyname(grad, name, sizeof(name)),
                          spirt_find_nonfinite(dtype, g, nelem));
}

/* ---- SGD ---- */

enum { SGD_LR, SGD_MOMENTUM, SGD_DAMPENING, SGD_NESTEROV, SGD_WD, SGD_MAXIMIZE, SGD_BUFFER, SGD_NOPTS };
static const OptSpec SGD_OPTS[SGD_NOPTS] = {
    [SGD_LR] = {"LR", ARG_NUM, NAN},           [SGD_MOMENTUM] = {"MOMENTUM", ARG_NUM, 0},
    [SGD_DAMPENING] = {"DAMPENING", ARG_NUM, 0}, [SGD_NESTEROV] = {"NESTEROV", ARG_FLAG, 0},
    [SGD_WD] = {"WEIGHT_DECAY", ARG_NUM, 0},   [SGD_MAXIMIZE] = {"MAXIMIZE", ARG_FLAG, 0},
    [SGD_BUFFER] = {"BUFFER", ARG_KEY, 0},
};

typedef struct SgdState {
    SpirtSgdArgs args;
    RedisModuleString *grad_key;
} SgdState;

static void free_sgd(void *p) {
    SgdState *s = p;
    if (s->grad_key) RedisModule_FreeString(NULL, s->grad_key);
    RedisModule_Free(s);
}

static int run_sgd(SpirtJob *job, const SpirtExec *ex) {
    SgdState *s = job->state;
    spirt_kernel_sgd(ex, &s->args);
    if (atomic_load(&s->args.nonfinite))
        return fail_gradient(job, s->grad_key, s->args.dtype, s->args.grad, s->args.nelem);
    return 0;
}

static int check_sgd(RedisModuleCtx *ctx, const OptValues *o) {
    if (isnan(o->num[SGD_LR])) return spirt_reply_errorf(ctx, "ERR LR is required"), -1;
    if (o->num[SGD_LR] < 0 || o->num[SGD_MOMENTUM] < 0 || o->num[SGD_WD] < 0 ||
        o->num[SGD_DAMPENING] < 0)
        return spirt_reply_errorf(ctx, "ERR LR, MOMENTUM, DAMPENING and WEIGHT_DECAY must be >= 0"), -1;
    int momentum = o->num[SGD_MOMENTUM] > 0;
    if (momentum != (o->key[SGD_BUFFER] != NULL))
        return spirt_reply_errorf(ctx, momentum ? "ERR MOMENTUM needs a BUFFER key for its state"
                                                : "ERR BUFFER is only used with MOMENTUM > 0"), -1;
    if (o->flag[SGD_NESTEROV] && (!momentum || o->num[SGD_DAMPENING] != 0))
        return spirt_reply_errorf(ctx, "ERR NESTEROV needs MOMENTUM > 0 and DAMPENING 0"), -1;
    return 0;
}

int spirt_cmd_sgd(RedisModuleCtx *ctx, RedisModuleString **argv, int argc) {
    if (RedisModule_IsKeysPositionRequest(ctx)) return report_keys(ctx, SGD_OPTS, SGD_NOPTS, argv, argc);
    if (argc < 5) return RedisModule_WrongArity(ctx);
    OptValues o;
    SpirtTensor *param, *grad, *buf = NULL;
    if (parse_opts(ctx, SGD_OPTS, SGD_NOPTS, argv, 3, argc, &o) != 0 || check_sgd(ctx, &o) != 0)
        return REDISMODULE_OK;
    RedisModuleString *roles[3] = {argv[1], argv[2], o.key[SGD_BUFFER]};
    if (check_distinct(ctx, roles, o.key[SGD_BUFFER] ? 3 : 2) != 0 ||
        open_role(ctx, argv[1], "parameter", NULL, NEED_TENSOR, &param) != 0 ||
        open_role(ctx, argv[2], "gradient", param, NEED_TENSOR, &grad) != 0 ||
        (o.key[SGD_BUFFER] &&
         open_role(ctx, o.key[SGD_BUFFER], "momentum buffer", param, MAY_BE_EMPTY, &buf) != 0))
        return REDISMODULE_OK;

    SpirtJob *job = spirt_job_new("SPIRT.SGD");
    SgdState *s = RedisModule_Calloc(1, sizeof(*s));
    job->state = s;
    job->free_state = free_sgd;
    job->run = run_sgd;
    s->grad_key = RedisModule_CreateStringFromString(NULL, argv[2]);
    SpirtSgdArgs *a = &s->args;
    a->dtype = param->dtype;
    a->nelem = param->nelem;
    a->param = spirt_job_hold(job, param->buf);
    a->grad = spirt_job_hold(job, grad->buf);
    a->buf = buf ? spirt_job_hold(job, buf->buf) : NULL;
    a->lr = o.num[SGD_LR];
    a->momentum = o.num[SGD_MOMENTUM];
    a->dampening = o.num[SGD_DAMPENING];
    a->weight_decay = o.num[SGD_WD];
    a->nesterov = o.flag[SGD_NESTEROV];
    a->maximize = o.flag[SGD_MAXIMIZE];
    job->work_bytes = 2 * param->buf->nbytes;
    a->new_param = add_state_output(job, argv[1], param, param);
    if (o.key[SGD_BUFFER]) a->new_buf = add_state_output(job, o.key[SGD_BUFFER], param, buf);
    if (a->new_param == NULL || (o.key[SGD_BUFFER] && a->new_buf == NULL))
        return fail_too_big(ctx, job);
    return spirt_job_dispatch(ctx, job);
}

/* ---- Adam ---- */

enum {
    ADAM_LR, ADAM_EXP_AVG, ADAM_EXP_AVG_SQ, ADAM_STEP, ADAM_BETA1, ADAM_BETA2, ADAM_EPS,
    ADAM_WD, ADAM_DECOUPLED, ADAM_MAXIMIZE, ADAM_NOPTS
};
static const OptSpec ADAM_OPTS[ADAM_NOPTS] = {
    [ADAM_LR] = {"LR", ARG_NUM, NAN},
    [ADAM_EXP_AVG] = {"EXP_AVG", ARG_KEY, 0},
    [ADAM_EXP_AVG_SQ] = {"EXP_AVG_SQ", ARG_KEY, 0},
    [ADAM_STEP] = {"STEP", ARG_KEY, 0},
    [ADAM_BETA1] = {"BETA1", ARG_NUM, 0.9},
    [ADAM_BETA2] = {"BETA2", ARG_NUM, 0.999},
    [ADAM_EPS] = {"EPS", ARG_NUM, 1e-8},
    [ADAM_WD] = {"WEIGHT_DECAY", ARG_NUM, 0},
    [ADAM_DECOUPLED] = {"DECOUPLED", ARG_FLAG, 0},
    [ADAM_MAXIMIZE] = {"MAXIMIZE", ARG_FLAG, 0},
};

typedef struct AdamState {
    SpirtAdamArgs args;
    RedisModuleString *grad_key;
} AdamState;

static void free_adam(void *p) {
    AdamState *s = p;
    if (s->grad_key) RedisModule_FreeString(NULL, s->grad_key);
    RedisModule_Free(s);
}

static int run_adam(SpirtJob *job, const SpirtExec *ex) {
    AdamState *s = job->state;
    spirt_kernel_adam(ex, &s->args);
    if (atomic_load(&s->args.nonfinite))
        return fail_gradient(job, s->grad_key, s->args.dtype, s->args.grad, s->args.nelem);
    return 0;
}

static void reply_step(RedisModuleCtx *ctx, SpirtJob *job) {
    AdamState *s = job->state;
    RedisModule_ReplyWithLongLong(ctx, s->args.step);
}

static int check_adam(RedisModuleCtx *ctx, const OptValues *o) {
    if (isnan(o->num[ADAM_LR])) return spirt_reply_errorf(ctx, "ERR LR is required"), -1;
    if (!o->key[ADAM_EXP_AVG] || !o->key[ADAM_EXP_AVG_SQ] || !o->key[ADAM_STEP])
        return spirt_reply_errorf(ctx, "ERR EXP_AVG, EXP_AVG_SQ and STEP keys are required"), -1;
    if (o->num[ADAM_LR] < 0 || o->num[ADAM_EPS] < 0 || o->num[ADAM_WD] < 0)
        return spirt_reply_errorf(ctx, "ERR LR, EPS and WEIGHT_DECAY must be >= 0"), -1;
    if (o->num[ADAM_BETA1] < 0 || o->num[ADAM_BETA1] >= 1 || o->num[ADAM_BETA2] < 0 ||
        o->num[ADAM_BETA2] >= 1)
        return spirt_reply_errorf(ctx, "ERR BETA1 and BETA2 must be in [0, 1)"), -1;
    return 0;
}

/* Reads the step counter: an INT64 tensor of shape [1], or nothing (0). */
static int read_step(RedisModuleCtx *ctx, RedisModuleString *name, SpirtTensor **t, long long *step) {
    char kname[SPIRT_KEYNAME_IN_ERROR + 1];
    SpirtKeyKind kind;
    RedisModuleKey *key = spirt_key_open(ctx, name, REDISMODULE_READ, &kind, t);
    RedisModule_CloseKey(key);
    *step = 0;
    if (kind == SPIRT_KEY_EMPTY) return 0;
    if (kind == SPIRT_KEY_TENSOR && (*t)->dtype == SPIRT_INT64 && (*t)->ndim == 1 &&
        (*t)->dims[0] == 1) {
        memcpy(step, (*t)->buf->data, sizeof(*step));
        if (*step >= 0 && *step < LLONG_MAX) return 0;
    }
    return spirt_reply_errorf(ctx, "ERR STEP '%s' must be an INT64 tensor of shape [1] holding a "
                              "step count", spirt_keyname(name, kname, sizeof(kname))), -1;
}

int spirt_cmd_adam(RedisModuleCtx *ctx, RedisModuleString **argv, int argc) {
    if (RedisModule_IsKeysPositionRequest(ctx)) return report_keys(ctx, ADAM_OPTS, ADAM_NOPTS, argv, argc);
    if (argc < 5) return RedisModule_WrongArity(ctx);
    OptValues o;
    SpirtTensor *param, *grad, *m = NULL, *v = NULL, *step_t = NULL;
    long long step;
    if (parse_opts(ctx, ADAM_OPTS, ADAM_NOPTS, argv, 3, argc, &o) != 0 || check_adam(ctx, &o) != 0)
        return REDISMODULE_OK;
    RedisModuleString *roles[5] = {argv[1], argv[2], o.key[ADAM_EXP_AVG], o.key[ADAM_EXP_AVG_SQ],
                                   o.key[ADAM_STEP]};
    if (check_distinct(ctx, roles, 5) != 0 ||
        open_role(ctx, argv[1], "parameter", NULL, NEED_TENSOR, &param) != 0 ||
        open_role(ctx, argv[2], "gradient", param, NEED_TENSOR, &grad) != 0 ||
        open_role(ctx, o.key[ADAM_EXP_AVG], "EXP_AVG", param, MAY_BE_EMPTY, &m) != 0 ||
        open_role(ctx, o.key[ADAM_EXP_AVG_SQ], "EXP_AVG_SQ", param, MAY_BE_EMPTY, &v) != 0 ||
        read_step(ctx, o.key[ADAM_STEP], &step_t, &step) != 0)
        return REDISMODULE_OK;

    SpirtJob *job = spirt_job_new("SPIRT.ADAM");
    AdamState *s = RedisModule_Calloc(1, sizeof(*s));
    job->state = s;
    job->free_state = free_adam;
    job->run = run_adam;
    job->reply = reply_step;
    s->grad_key = RedisModule_CreateStringFromString(NULL, argv[2]);
    SpirtAdamArgs *a = &s->args;
    a->dtype = param->dtype;
    a->nelem = param->nelem;
    a->param = spirt_job_hold(job, param->buf);
    a->grad = spirt_job_hold(job, grad->buf);
    a->exp_avg = m ? spirt_job_hold(job, m->buf) : NULL;
    a->exp_avg_sq = v ? spirt_job_hold(job, v->buf) : NULL;
    a->lr = o.num[ADAM_LR];
    a->beta1 = o.num[ADAM_BETA1];
    a->beta2 = o.num[ADAM_BETA2];
    a->eps = o.num[ADAM_EPS];
    a->weight_decay = o.num[ADAM_WD];
    a->decoupled = o.flag[ADAM_DECOUPLED];
    a->maximize = o.flag[ADAM_MAXIMIZE];
    a->step = step + 1;
    job->work_bytes = 4 * param->buf->nbytes;
    a->new_param = add_state_output(job, argv[1], param, param);
    a->new_exp_avg = add_state_output(job, o.key[ADAM_EXP_AVG], param, m);
    a->new_exp_avg_sq = add_state_output(job, o.key[ADAM_EXP_AVG_SQ], param, v);
    const long long one = 1;
    SpirtBuffer *sbuf = spirt_buffer_new(sizeof(long long), 0);
    if (!a->new_param || !a->new_exp_avg || !a->new_exp_avg_sq || !sbuf) {
        spirt_buffer_unref(sbuf);
        return fail_too_big(ctx, job);
    }
    memcpy(sbuf->data, &a->step, sizeof(a->step));
    spirt_job_add_output(job, o.key[ADAM_STEP],
                         spirt_tensor_new(SPIRT_INT64, 1, &one, 1, sbuf), 1,
                         step_t ? step_t->stamp : 0);
    return spirt_job_dispatch(ctx, job);
}
