#include "tensor.h"

#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "config.h"
#include "util.h"

RedisModuleType *SpirtTensorType = NULL;

/* RDB layout, encoding version 1:
 *   magic, dtype, ndim, dims..., nbytes, nchunks, chunk strings...
 * The magic guards against a foreign AI_TENSOR encoding (RedisAI's). */
#define SPIRT_RDB_ENCVER 1
#define SPIRT_RDB_MAGIC 0x5350525431ULL /* "SPRT1" */

static atomic_uint_fast64_t next_stamp = 1;

static const struct {
    const char *name;
    size_t size;
    int is_float;
} DTYPES[SPIRT_NDTYPES] = {
    [SPIRT_FLOAT] = {"FLOAT", 4, 1},  [SPIRT_DOUBLE] = {"DOUBLE", 8, 1},
    [SPIRT_INT8] = {"INT8", 1, 0},    [SPIRT_INT16] = {"INT16", 2, 0},
    [SPIRT_INT32] = {"INT32", 4, 0},  [SPIRT_INT64] = {"INT64", 8, 0},
    [SPIRT_UINT8] = {"UINT8", 1, 0},  [SPIRT_UINT16] = {"UINT16", 2, 0},
    [SPIRT_BOOL] = {"BOOL", 1, 0},
};

const char *spirt_dtype_name(SpirtDType dtype) { return DTYPES[dtype].name; }
size_t spirt_dtype_size(SpirtDType dtype) { return DTYPES[dtype].size; }
int spirt_dtype_is_float(SpirtDType dtype) { return DTYPES[dtype].is_float; }

int spirt_dtype_parse(const RedisModuleString *arg, SpirtDType *out) {
    for (int d = 0; d < SPIRT_NDTYPES; d++) {
        if (spirt_arg_is(arg, DTYPES[d].name)) {
            *out = (SpirtDType)d;
            return 0;
        }
    }
    return -1;
}

int spirt_shape_size(SpirtDType dtype, int ndim, const long long *dims, size_t *nelem,
                     size_t *nbytes) {
    size_t n = 1, bytes;
    for (int i = 0; i < ndim; i++) {
        if (dims[i] <= 0 || __builtin_mul_overflow(n, (size_t)dims[i], &n)) return -1;
    }
    if (__builtin_mul_overflow(n, spirt_dtype_size(dtype), &bytes)) return -1;
    if (bytes > spirt_config.max_tensor_bytes) return -1;
    *nelem = n;
    *nbytes = bytes;
    return 0;
}

SpirtBuffer *spirt_buffer_new(size_t nbytes, int zero) {
    if (nbytes > spirt_config.max_tensor_bytes) return NULL;
    SpirtBuffer *buf = RedisModule_Alloc(sizeof(*buf));
    atomic_init(&buf->refs, 1);
    buf->nbytes = nbytes;
    /* Never a zero-byte allocation: shapes are positive, but stay safe. */
    size_t alloc = nbytes ? nbytes : 1;
    buf->data = zero ? RedisModule_Calloc(1, alloc) : RedisModule_Alloc(alloc);
    return buf;
}

SpirtBuffer *spirt_buffer_ref(SpirtBuffer *buf) {
    atomic_fetch_add_explicit(&buf->refs, 1, memory_order_relaxed);
    return buf;
}

void spirt_buffer_unref(SpirtBuffer *buf) {
    if (buf == NULL) return;
    if (atomic_fetch_sub_explicit(&buf->refs, 1, memory_order_acq_rel) == 1) {
        RedisModule_Free(buf->data);
        RedisModule_Free(buf);
    }
}

SpirtTensor *spirt_tensor_new(SpirtDType dtype, int ndim, const long long *dims, size_t nelem,
                              SpirtBuffer *buf) {
    SpirtTensor *t = RedisModule_Alloc(sizeof(*t));
    memset(t, 0, sizeof(*t));
    t->dtype = dtype;
    t->ndim = ndim;
    memcpy(t->dims, dims, (size_t)ndim * sizeof(dims[0]));
    t->nelem = nelem;
    t->buf = buf;
    spirt_tensor_touch(t);
    return t;
}

SpirtTensor *spirt_tensor_new_like(const SpirtTensor *like, int zero) {
    SpirtBuffer *buf = spirt_buffer_new(like->buf->nbytes, zero);
    if (buf == NULL) return NULL;
    return spirt_tensor_new(like->dtype, like->ndim, like->dims, like->nelem, buf);
}

void spirt_tensor_free(SpirtTensor *t) {
    if (t == NULL) return;
    spirt_buffer_unref(t->buf);
    RedisModule_Free(t);
}

int spirt_tensor_same_layout(const SpirtTensor *a, const SpirtTensor *b) {
    if (a->dtype != b->dtype || a->ndim != b->ndim) return 0;
    return memcmp(a->dims, b->dims, (size_t)a->ndim * sizeof(a->dims[0])) == 0;
}

void spirt_tensor_touch(SpirtTensor *t) {
    t->stamp = atomic_fetch_add_explicit(&next_stamp, 1, memory_order_relaxed);
}

int spirt_tensor_make_writable(SpirtTensor *t) {
    if (atomic_load_explicit(&t->buf->refs, memory_order_acquire) == 1) return 0;
    SpirtBuffer *copy = spirt_buffer_new(t->buf->nbytes, 0);
    if (copy == NULL) return -1;
    memcpy(copy->data, t->buf->data, t->buf->nbytes);
    spirt_buffer_unref(t->buf);
    t->buf = copy;
    return 0;
}

void spirt_shape_text(const SpirtTensor *t, char *buf, size_t cap) {
    size_t n = 0;
    n += (size_t)snprintf(buf, cap, "[");
    for (int i = 0; i < t->ndim && n < cap; i++)
        n += (size_t)snprintf(buf + n, cap - n, "%s%lld", i ? ", " : "", t->dims[i]);
    if (n < cap) snprintf(buf + n, cap - n, "]");
}

RedisModuleKey *spirt_key_open(RedisModuleCtx *ctx, RedisModuleString *name, int mode,
                               SpirtKeyKind *kind, SpirtTensor **tensor) {
    RedisModuleKey *key = RedisModule_OpenKey(ctx, name, mode);
    *tensor = NULL;
    int type = RedisModule_KeyType(key);
    if (type == REDISMODULE_KEYTYPE_EMPTY) {
        *kind = SPIRT_KEY_EMPTY;
    } else if (type == REDISMODULE_KEYTYPE_MODULE &&
               RedisModule_ModuleTypeGetType(key) == SpirtTensorType) {
        *kind = SPIRT_KEY_TENSOR;
        *tensor = RedisModule_ModuleTypeGetValue(key);
    } else {
        *kind = SPIRT_KEY_OTHER;
    }
    return key;
}

/* ---- re-emitting a tensor as commands (AOF rewrite and replication) ---- */

typedef void (*EmitFunc)(void *sink, const char *cmd, RedisModuleString **argv, size_t argc);

static void emit_tensor(RedisModuleString *key, const SpirtTensor *t, EmitFunc emit, void *sink) {
    RedisModuleString *argv[SPIRT_MAX_DIMS + 4];
    size_t argc = 0, nbytes = t->buf->nbytes;
    const char *type = spirt_dtype_name(t->dtype);
    int whole = nbytes <= SPIRT_EMIT_CHUNK_BYTES;

    argv[argc++] = RedisModule_CreateStringFromString(NULL, key);
    argv[argc++] = RedisModule_CreateString(NULL, type, strlen(type));
    for (int i = 0; i < t->ndim; i++) {
        char num[32];
        int len = snprintf(num, sizeof(num), "%lld", t->dims[i]);
        argv[argc++] = RedisModule_CreateString(NULL, num, (size_t)len);
    }
    if (whole) {
        argv[argc++] = RedisModule_CreateString(NULL, "BLOB", 4);
        argv[argc++] = RedisModule_CreateString(NULL, (const char *)t->buf->data, nbytes);
    }
    emit(sink, "AI.TENSORSET", argv, argc);
    for (size_t i = 0; i < argc; i++) RedisModule_FreeString(NULL, argv[i]);
    if (whole) return;

    /* Too big for one argument: create zeros, then fill it piece by piece. */
    for (size_t off = 0; off < nbytes; off += SPIRT_EMIT_CHUNK_BYTES) {
        size_t len = nbytes - off < SPIRT_EMIT_CHUNK_BYTES ? nbytes - off : SPIRT_EMIT_CHUNK_BYTES;
        char num[32];
        int nlen = snprintf(num, sizeof(num), "%zu", off);
        RedisModuleString *piece[3] = {
            RedisModule_CreateStringFromString(NULL, key),
            RedisModule_CreateString(NULL, num, (size_t)nlen),
            RedisModule_CreateString(NULL, (const char *)t->buf->data + off, len),
        };
        emit(sink, "SPIRT.TENSORWRITE", piece, 3);
        for (int i = 0; i < 3; i++) RedisModule_FreeString(NULL, piece[i]);
    }
}

static void emit_to_aof(void *sink, const char *cmd, RedisModuleString **argv, size_t argc) {
    RedisModule_EmitAOF((RedisModuleIO *)sink, cmd, "v", argv, argc);
}

static void emit_to_replication(void *sink, const char *cmd, RedisModuleString **argv,
                                size_t argc) {
    RedisModule_Replicate((RedisModuleCtx *)sink, cmd, "v", argv, argc);
}

void spirt_tensor_replicate(RedisModuleCtx *ctx, RedisModuleString *key, const SpirtTensor *t) {
    emit_tensor(key, t, emit_to_replication, ctx);
}

int spirt_propagation_needed(RedisModuleCtx *ctx) {
    if (RedisModule_GetContextFlags(ctx) & REDISMODULE_CTX_FLAGS_AOF) return 1;
    RedisModuleServerInfoData *info = RedisModule_GetServerInfo(ctx, "replication");
    if (info == NULL) return 1;
    int err_backlog = 0, err_replicas = 0;
    long long backlog = RedisModule_ServerInfoGetFieldSigned(info, "repl_backlog_active",
                                                             &err_backlog);
    long long replicas = RedisModule_ServerInfoGetFieldSigned(info, "connected_slaves",
                                                              &err_replicas);
    RedisModule_FreeServerInfo(ctx, info);
    /* When in doubt, propagate: it costs a copy, never correctness. */
    if (err_backlog || err_replicas) return 1;
    return backlog > 0 || replicas > 0;
}

/* ---- data type callbacks ---- */

static void rdb_save(RedisModuleIO *io, void *value) {
    const SpirtTensor *t = value;
    size_t nbytes = t->buf->nbytes;
    uint64_t nchunks = (nbytes + SPIRT_EMIT_CHUNK_BYTES - 1) / SPIRT_EMIT_CHUNK_BYTES;
    RedisModule_SaveUnsigned(io, SPIRT_RDB_MAGIC);
    RedisModule_SaveUnsigned(io, (uint64_t)t->dtype);
    RedisModule_SaveUnsigned(io, (uint64_t)t->ndim);
    for (int i = 0; i < t->ndim; i++) RedisModule_SaveUnsigned(io, (uint64_t)t->dims[i]);
    RedisModule_SaveUnsigned(io, (uint64_t)nbytes);
    RedisModule_SaveUnsigned(io, nchunks);
    for (size_t off = 0; off < nbytes; off += SPIRT_EMIT_CHUNK_BYTES) {
        size_t len = nbytes - off < SPIRT_EMIT_CHUNK_BYTES ? nbytes - off : SPIRT_EMIT_CHUNK_BYTES;
        RedisModule_SaveStringBuffer(io, (const char *)t->buf->data + off, len);
    }
}

/* Reads the header; returns a tensor with an unfilled buffer, or NULL. */
static SpirtTensor *rdb_load_header(RedisModuleIO *io, uint64_t *nchunks) {
    long long dims[SPIRT_MAX_DIMS];
    size_t nelem, nbytes;
    if (RedisModule_LoadUnsigned(io) != SPIRT_RDB_MAGIC || RedisModule_IsIOError(io)) {
        RedisModule_LogIOError(io, "warning", "spirt: AI_TENSOR value is not in spirt's format");
        return NULL;
    }
    uint64_t dtype = RedisModule_LoadUnsigned(io);
    uint64_t ndim = RedisModule_LoadUnsigned(io);
    if (RedisModule_IsIOError(io) || dtype >= SPIRT_NDTYPES || ndim < 1 || ndim > SPIRT_MAX_DIMS)
        return NULL;
    for (uint64_t i = 0; i < ndim; i++) {
        uint64_t d = RedisModule_LoadUnsigned(io);
        if (d == 0 || d > (uint64_t)INT64_MAX) return NULL;
        dims[i] = (long long)d;
    }
    uint64_t saved_nbytes = RedisModule_LoadUnsigned(io);
    *nchunks = RedisModule_LoadUnsigned(io);
    if (RedisModule_IsIOError(io)) return NULL;
    if (spirt_shape_size((SpirtDType)dtype, (int)ndim, dims, &nelem, &nbytes) != 0 ||
        nbytes != saved_nbytes) {
        RedisModule_LogIOError(io, "warning",
                               "spirt: tensor in RDB is inconsistent or exceeds MAX_TENSOR_BYTES");
        return NULL;
    }
    SpirtBuffer *buf = spirt_buffer_new(nbytes, 0);
    if (buf == NULL) return NULL;
    return spirt_tensor_new((SpirtDType)dtype, (int)ndim, dims, nelem, buf);
}

static void *rdb_load(RedisModuleIO *io, int encver) {
    uint64_t nchunks;
    if (encver != SPIRT_RDB_ENCVER) {
        RedisModule_LogIOError(io, "warning", "spirt: unknown AI_TENSOR encoding %d", encver);
        return NULL;
    }
    SpirtTensor *t = rdb_load_header(io, &nchunks);
    if (t == NULL) return NULL;
    size_t off = 0, nbytes = t->buf->nbytes;
    for (uint64_t c = 0; c < nchunks; c++) {
        size_t len;
        char *piece = RedisModule_LoadStringBuffer(io, &len);
        if (piece == NULL || RedisModule_IsIOError(io) || len > nbytes - off) {
            if (piece) RedisModule_Free(piece);
            spirt_tensor_free(t);
            return NULL;
        }
        memcpy(t->buf->data + off, piece, len);
        off += len;
        RedisModule_Free(piece);
    }
    if (off != nbytes) {
        spirt_tensor_free(t);
        return NULL;
    }
    return t;
}

static void aof_rewrite(RedisModuleIO *io, RedisModuleString *key, void *value) {
    emit_tensor(key, value, emit_to_aof, io);
}

static size_t mem_usage(const void *value) {
    const SpirtTensor *t = value;
    return sizeof(*t) + sizeof(*t->buf) + t->buf->nbytes;
}

static void debug_digest(RedisModuleDigest *md, void *value) {
    SpirtTensor *t = value;
    const char *type = spirt_dtype_name(t->dtype);
    RedisModule_DigestAddStringBuffer(md, type, strlen(type));
    RedisModule_DigestAddStringBuffer(md, (const char *)t->dims,
                                      (size_t)t->ndim * sizeof(t->dims[0]));
    RedisModule_DigestAddStringBuffer(md, (const char *)t->buf->data, t->buf->nbytes);
    RedisModule_DigestEndSequence(md);
}

static void type_free(void *value) { spirt_tensor_free(value); }

/* Big tensors are worth freeing on Redis's lazy-free thread (UNLINK). */
static size_t free_effort(RedisModuleString *key, const void *value) {
    const SpirtTensor *t = value;
    return 1 + t->buf->nbytes / ((size_t)1 << 20);
}

/* COPY shares the buffer; the first write to either copy separates them. */
static void *type_copy(RedisModuleString *from, RedisModuleString *to, const void *value) {
    const SpirtTensor *src = value;
    return spirt_tensor_new(src->dtype, src->ndim, src->dims, src->nelem,
                            spirt_buffer_ref(src->buf));
}

int spirt_tensor_type_register(RedisModuleCtx *ctx) {
    RedisModuleTypeMethods methods = {
        .version = SPIRT_TYPE_METHOD_VERSION,
        .rdb_load = rdb_load,
        .rdb_save = rdb_save,
        .aof_rewrite = aof_rewrite,
        .mem_usage = mem_usage,
        .digest = debug_digest,
        .free = type_free,
        .free_effort = free_effort,
        .copy = type_copy,
    };
    SpirtTensorType = RedisModule_CreateDataType(ctx, "AI_TENSOR", SPIRT_RDB_ENCVER, &methods);
    return SpirtTensorType == NULL ? REDISMODULE_ERR : REDISMODULE_OK;
}
