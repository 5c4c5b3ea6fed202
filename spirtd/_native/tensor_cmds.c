/* AI.TENSORSET and AI.TENSORGET as RedisAI defines them (same syntax, reply
 * layout and error texts), and SPIRT.TENSORWRITE / SPIRT.TENSORREAD for
 * moving a tensor in pieces at byte offsets. */
#include <limits.h>
#include <string.h>

#include "commands.h"

_Static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__,
               "tensor blobs are little-endian and stored as the CPU holds them");

static const char ERR_DTYPE[] = "ERR invalid data type";
static const char ERR_SHAPE[] = "ERR invalid or negative value found in tensor shape";
static const char ERR_NO_SHAPE[] = "ERR tensor shape is missing: give at least one dimension";
static const char ERR_TOO_MANY_DIMS[] = "ERR a tensor has at most 32 dimensions";
static const char ERR_TOO_BIG[] = "ERR tensor would exceed MAX_TENSOR_BYTES";
static const char ERR_BLOB_LEN[] = "ERR data length does not match tensor shape and type";
static const char ERR_BLOB_ARGS[] =
    "ERR a single binary string should come after the BLOB argument in 'AI.TENSORSET' command";
static const char ERR_BOTH[] = "ERR both BLOB and VALUES specified";
static const char ERR_NVALUES[] = "ERR wrong number of values was given in 'AI.TENSORSET' command";
static const char ERR_VALUE[] = "ERR invalid value";
static const char ERR_EMPTY[] = "ERR tensor key is empty or in a different shard";
static const char ERR_FORMAT[] = "ERR unsupported data format";

static int is_format_word(const RedisModuleString *arg) {
    return spirt_arg_is(arg, "BLOB") || spirt_arg_is(arg, "VALUES");
}

static int any_arg_is(RedisModuleString **argv, int from, int to, const char *word) {
    for (int i = from; i < to; i++)
        if (spirt_arg_is(argv[i], word)) return 1;
    return 0;
}

static int store_value(SpirtDType dtype, void *data, size_t i, const RedisModuleString *arg) {
    static const long long LIMITS[SPIRT_NDTYPES][2] = {
        [SPIRT_INT8] = {INT8_MIN, INT8_MAX},    [SPIRT_INT16] = {INT16_MIN, INT16_MAX},
        [SPIRT_INT32] = {INT32_MIN, INT32_MAX}, [SPIRT_INT64] = {LLONG_MIN, LLONG_MAX},
        [SPIRT_UINT8] = {0, UINT8_MAX},         [SPIRT_UINT16] = {0, UINT16_MAX},
        [SPIRT_BOOL] = {0, 1},
    };
    if (spirt_dtype_is_float(dtype)) {
        double d;
        if (RedisModule_StringToDouble(arg, &d) != REDISMODULE_OK) return -1;
        if (dtype == SPIRT_FLOAT) ((float *)data)[i] = (float)d;
        else ((double *)data)[i] = d;
        return 0;
    }
    long long v;
    if (spirt_parse_int(arg, LIMITS[dtype][0], LIMITS[dtype][1], &v) != 0) return -1;
    switch (dtype) {
    case SPIRT_INT8: ((int8_t *)data)[i] = (int8_t)v; break;
    case SPIRT_INT16: ((int16_t *)data)[i] = (int16_t)v; break;
    case SPIRT_INT32: ((int32_t *)data)[i] = (int32_t)v; break;
    case SPIRT_INT64: ((int64_t *)data)[i] = (int64_t)v; break;
    case SPIRT_UINT8: ((uint8_t *)data)[i] = (uint8_t)v; break;
    case SPIRT_UINT16: ((uint16_t *)data)[i] = (uint16_t)v; break;
    default: ((uint8_t *)data)[i] = (uint8_t)v; break; /* BOOL */
    }
    return 0;
}

/* Fills a new buffer from the BLOB or VALUES part of AI.TENSORSET. */
static SpirtBuffer *buffer_from_args(SpirtDType dtype, size_t nelem, size_t nbytes,
                                     RedisModuleString **argv, int pos, int argc,
                                     const char **err) {
    if (pos == argc) return spirt_buffer_new(nbytes, 1); /* no data: zeros */
    int rest = argc - pos - 1;
    if (spirt_arg_is(argv[pos], "BLOB")) {
        size_t len;
        if (rest != 1) {
            *err = any_arg_is(argv, pos + 1, argc, "VALUES") ? ERR_BOTH : ERR_BLOB_ARGS;
            return NULL;
        }
        const char *blob = RedisModule_StringPtrLen(argv[pos + 1], &len);
        if (len != nbytes) {
            *err = ERR_BLOB_LEN;
            return NULL;
        }
        SpirtBuffer *buf = spirt_buffer_new(nbytes, 0);
        memcpy(buf->data, blob, nbytes);
        return buf;
    }
    if (any_arg_is(argv, pos + 1, argc, "BLOB")) {
        *err = ERR_BOTH;
        return NULL;
    }
    if ((size_t)rest != nelem) {
        *err = ERR_NVALUES;
        return NULL;
    }
    SpirtBuffer *buf = spirt_buffer_new(nbytes, 0);
    for (size_t i = 0; i < nelem; i++) {
        if (store_value(dtype, buf->data, i, argv[pos + 1 + (int)i]) != 0) {
            spirt_buffer_unref(buf);
            *err = ERR_VALUE;
            return NULL;
        }
    }
    return buf;
}

static SpirtTensor *tensor_from_args(RedisModuleString **argv, int argc, const char **err) {
    SpirtDType dtype;
    long long dims[SPIRT_MAX_DIMS];
    int ndim = 0, pos = 3;
    size_t nelem, nbytes;
    if (spirt_dtype_parse(argv[2], &dtype) != 0) {
        *err = ERR_DTYPE;
        return NULL;
    }
    for (; pos < argc && !is_format_word(argv[pos]); pos++) {
        long long d;
        if (ndim == SPIRT_MAX_DIMS) {
            *err = ERR_TOO_MANY_DIMS;
            return NULL;
        }
        if (RedisModule_StringToLongLong(argv[pos], &d) != REDISMODULE_OK || d <= 0) {
            *err = ERR_SHAPE;
            return NULL;
        }
        dims[ndim++] = d;
    }
    if (ndim == 0) {
        *err = ERR_NO_SHAPE;
        return NULL;
    }
    if (spirt_shape_size(dtype, ndim, dims, &nelem, &nbytes) != 0) {
        *err = ERR_TOO_BIG;
        return NULL;
    }
    SpirtBuffer *buf = buffer_from_args(dtype, nelem, nbytes, argv, pos, argc, err);
    if (buf == NULL) {
        if (*err == NULL) *err = ERR_TOO_BIG;
        return NULL;
    }
    return spirt_tensor_new(dtype, ndim, dims, nelem, buf);
}

int spirt_cmd_tensorset(RedisModuleCtx *ctx, RedisModuleString **argv, int argc) {
    if (argc < 4) return RedisModule_WrongArity(ctx);
    /* Checked with a read-only open: closing a key opened for writing counts
     * as a modification (WATCH, client tracking) even when nothing changed. */
    SpirtKeyKind kind;
    SpirtTensor *old;
    RedisModule_CloseKey(spirt_key_open(ctx, argv[1], REDISMODULE_READ, &kind, &old));
    if (kind == SPIRT_KEY_OTHER) return RedisModule_ReplyWithError(ctx, REDISMODULE_ERRORMSG_WRONGTYPE);
    const char *err = NULL;
    SpirtTensor *t = tensor_from_args(argv, argc, &err);
    if (t == NULL) return RedisModule_ReplyWithError(ctx, err);
    RedisModuleKey *key = RedisModule_OpenKey(ctx, argv[1], REDISMODULE_READ | REDISMODULE_WRITE);
    RedisModule_ModuleTypeSetValue(key, SpirtTensorType, t);
    RedisModule_CloseKey(key);
    RedisModule_ReplicateVerbatim(ctx);
    return RedisModule_ReplyWithSimpleString(ctx, "OK");
}

/* Opens a key that must hold a tensor; replies with the error otherwise. */
static RedisModuleKey *open_existing(RedisModuleCtx *ctx, RedisModuleString *name, int mode,
                                     SpirtTensor **t) {
    SpirtKeyKind kind;
    RedisModuleKey *key = spirt_key_open(ctx, name, mode, &kind, t);
    if (kind == SPIRT_KEY_TENSOR) return key;
    RedisModule_CloseKey(key);
    RedisModule_ReplyWithError(ctx, kind == SPIRT_KEY_EMPTY ? ERR_EMPTY
                                                            : REDISMODULE_ERRORMSG_WRONGTYPE);
    return NULL;
}

static void reply_cstring(RedisModuleCtx *ctx, const char *s) {
    RedisModule_ReplyWithStringBuffer(ctx, s, strlen(s));
}

static void reply_values(RedisModuleCtx *ctx, const SpirtTensor *t) {
    const void *d = t->buf->data;
    RedisModule_ReplyWithArray(ctx, (long)t->nelem);
    for (size_t i = 0; i < t->nelem; i++) {
        switch (t->dtype) {
        case SPIRT_FLOAT: RedisModule_ReplyWithDouble(ctx, ((const float *)d)[i]); break;
        case SPIRT_DOUBLE: RedisModule_ReplyWithDouble(ctx, ((const double *)d)[i]); break;
        case SPIRT_INT8: RedisModule_ReplyWithLongLong(ctx, ((const int8_t *)d)[i]); break;
        case SPIRT_INT16: RedisModule_ReplyWithLongLong(ctx, ((const int16_t *)d)[i]); break;
        case SPIRT_INT32: RedisModule_ReplyWithLongLong(ctx, ((const int32_t *)d)[i]); break;
        case SPIRT_INT64: RedisModule_ReplyWithLongLong(ctx, ((const int64_t *)d)[i]); break;
        case SPIRT_UINT16: RedisModule_ReplyWithLongLong(ctx, ((const uint16_t *)d)[i]); break;
        default: RedisModule_ReplyWithLongLong(ctx, ((const uint8_t *)d)[i]); break;
        }
    }
}

enum { FMT_NONE, FMT_BLOB, FMT_VALUES };

int spirt_cmd_tensorget(RedisModuleCtx *ctx, RedisModuleString **argv, int argc) {
    if (argc < 2 || argc > 4) return RedisModule_WrongArity(ctx);
    SpirtTensor *t;
    RedisModuleKey *key = open_existing(ctx, argv[1], REDISMODULE_READ, &t);
    if (key == NULL) return REDISMODULE_OK;
    int meta = 0, fmt = FMT_NONE;
    const char *err = NULL;
    for (int i = 2; i < argc && err == NULL; i++) {
        int want = spirt_arg_is(argv[i], "BLOB") ? FMT_BLOB
                   : spirt_arg_is(argv[i], "VALUES") ? FMT_VALUES : FMT_NONE;
        if (spirt_arg_is(argv[i], "META")) meta = 1;
        else if (want == FMT_NONE) err = ERR_FORMAT;
        else if (fmt != FMT_NONE && fmt != want) err = ERR_BOTH;
        else fmt = want;
    }
    if (err != NULL) {
        RedisModule_CloseKey(key);
        return RedisModule_ReplyWithError(ctx, err);
    }
    if (!meta && fmt == FMT_NONE) meta = 1, fmt = FMT_BLOB;
    if (meta) {
        RedisModule_ReplyWithArray(ctx, fmt == FMT_NONE ? 4 : 6);
        reply_cstring(ctx, "dtype");
        reply_cstring(ctx, spirt_dtype_name(t->dtype));
        reply_cstring(ctx, "shape");
        RedisModule_ReplyWithArray(ctx, t->ndim);
        for (int i = 0; i < t->ndim; i++) RedisModule_ReplyWithLongLong(ctx, t->dims[i]);
        if (fmt != FMT_NONE) reply_cstring(ctx, fmt == FMT_BLOB ? "blob" : "values");
    }
    if (fmt == FMT_BLOB)
        RedisModule_ReplyWithStringBuffer(ctx, (const char *)t->buf->data, t->buf->nbytes);
    else if (fmt == FMT_VALUES)
        reply_values(ctx, t);
    RedisModule_CloseKey(key);
    return REDISMODULE_OK;
}

/* Parses "offset" (and "length" when len_arg is set) against a tensor's size. */
static int parse_range(RedisModuleCtx *ctx, const SpirtTensor *t, RedisModuleString *off_arg,
                       RedisModuleString *len_arg, size_t given_len, size_t *off, size_t *len) {
    long long o, l = (long long)given_len;
    if (spirt_parse_int(off_arg, 0, LLONG_MAX, &o) != 0)
        return spirt_reply_errorf(ctx, "ERR offset must be a non-negative integer"), -1;
    if (len_arg && spirt_parse_int(len_arg, 0, LLONG_MAX, &l) != 0)
        return spirt_reply_errorf(ctx, "ERR length must be a non-negative integer"), -1;
    size_t nbytes = t->buf->nbytes;
    if ((size_t)o > nbytes || (size_t)l > nbytes - (size_t)o)
        return spirt_reply_errorf(ctx, "ERR %lld bytes at offset %lld do not fit in a tensor of "
                                  "%zu bytes", l, o, nbytes), -1;
    *off = (size_t)o;
    *len = (size_t)l;
    return 0;
}

/* SPIRT.TENSORWRITE key offset bytes */
int spirt_cmd_tensorwrite(RedisModuleCtx *ctx, RedisModuleString **argv, int argc) {
    if (argc != 4) return RedisModule_WrongArity(ctx);
    SpirtTensor *t;
    RedisModuleKey *key = open_existing(ctx, argv[1], REDISMODULE_READ, &t);
    if (key == NULL) return REDISMODULE_OK;
    RedisModule_CloseKey(key); /* checked read-only: see spirt_cmd_tensorset */
    size_t blob_len, off, len;
    const char *blob = RedisModule_StringPtrLen(argv[3], &blob_len);
    if (parse_range(ctx, t, argv[2], NULL, blob_len, &off, &len) != 0) return REDISMODULE_OK;
    if (spirt_tensor_make_writable(t) != 0) return RedisModule_ReplyWithError(ctx, ERR_TOO_BIG);
    key = RedisModule_OpenKey(ctx, argv[1], REDISMODULE_READ | REDISMODULE_WRITE);
    memcpy(t->buf->data + off, blob, len);
    spirt_tensor_touch(t);
    RedisModule_CloseKey(key);
    RedisModule_ReplicateVerbatim(ctx);
    return RedisModule_ReplyWithSimpleString(ctx, "OK");
}

/* SPIRT.TENSORREAD key offset length */
int spirt_cmd_tensorread(RedisModuleCtx *ctx, RedisModuleString **argv, int argc) {
    if (argc != 4) return RedisModule_WrongArity(ctx);
    SpirtTensor *t;
    RedisModuleKey *key = open_existing(ctx, argv[1], REDISMODULE_READ, &t);
    if (key == NULL) return REDISMODULE_OK;
    size_t off, len;
    if (parse_range(ctx, t, argv[2], argv[3], 0, &off, &len) == 0)
        RedisModule_ReplyWithStringBuffer(ctx, (const char *)t->buf->data + off, len);
    RedisModule_CloseKey(key);
    return REDISMODULE_OK;
}
