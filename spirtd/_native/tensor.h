/* Tensors: RedisAI-compatible data types, a reference-counted byte buffer
 * and the AI_TENSOR Redis data type (RDB, AOF, COPY, memory accounting).
 *
 * Concurrency: a tensor's metadata belongs to the Redis main thread. Its
 * buffer may also be read by a background job that took a reference, so a
 * buffer shared by more than one holder is never written in place: writers
 * copy it first (spirt_tensor_make_writable). Counts are atomic because
 * Redis may free values from its lazy-free thread. */
#ifndef SPIRT_TENSOR_H
#define SPIRT_TENSOR_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include "rm_abi.h"

typedef enum {
    SPIRT_FLOAT = 0,
    SPIRT_DOUBLE,
    SPIRT_INT8,
    SPIRT_INT16,
    SPIRT_INT32,
    SPIRT_INT64,
    SPIRT_UINT8,
    SPIRT_UINT16,
    SPIRT_BOOL,
    SPIRT_NDTYPES
} SpirtDType;

#define SPIRT_MAX_DIMS 32
/* Largest piece of a tensor written as one argument when a tensor is
 * re-emitted as commands (AOF rewrite, replication); well under Redis's
 * default proto-max-bulk-len of 512 MB. */
#define SPIRT_EMIT_CHUNK_BYTES ((size_t)64 << 20)

typedef struct SpirtBuffer {
    atomic_long refs;
    size_t nbytes;
    unsigned char *data;
} SpirtBuffer;

typedef struct SpirtTensor {
    SpirtDType dtype;
    int ndim;
    long long dims[SPIRT_MAX_DIMS];
    size_t nelem;
    /* Changes whenever the value changes; lets a background job detect
     * that a tensor it is about to replace was modified meanwhile. */
    uint64_t stamp;
    SpirtBuffer *buf;
} SpirtTensor;

extern RedisModuleType *SpirtTensorType;

const char *spirt_dtype_name(SpirtDType dtype);
int spirt_dtype_parse(const RedisModuleString *arg, SpirtDType *out);
size_t spirt_dtype_size(SpirtDType dtype);
int spirt_dtype_is_float(SpirtDType dtype);

/* Element count and byte size of a shape; -1 on overflow or if the tensor
 * would exceed the configured MAX_TENSOR_BYTES. */
int spirt_shape_size(SpirtDType dtype, int ndim, const long long *dims, size_t *nelem,
                     size_t *nbytes);

/* New buffer of nbytes (zeroed if zero != 0), one reference. NULL if nbytes
 * exceeds MAX_TENSOR_BYTES. */
SpirtBuffer *spirt_buffer_new(size_t nbytes, int zero);
SpirtBuffer *spirt_buffer_ref(SpirtBuffer *buf);
void spirt_buffer_unref(SpirtBuffer *buf);

/* New tensor owning one reference to buf (which must have the right size). */
SpirtTensor *spirt_tensor_new(SpirtDType dtype, int ndim, const long long *dims, size_t nelem,
                              SpirtBuffer *buf);
/* New tensor with the same dtype and shape as like, and a fresh buffer. */
SpirtTensor *spirt_tensor_new_like(const SpirtTensor *like, int zero);
void spirt_tensor_free(SpirtTensor *t);
int spirt_tensor_same_layout(const SpirtTensor *a, const SpirtTensor *b);
/* Marks the tensor as changed. */
void spirt_tensor_touch(SpirtTensor *t);
/* Ensures no one else holds the buffer, copying it if needed. -1 if the copy
 * could not be allocated. */
int spirt_tensor_make_writable(SpirtTensor *t);
/* "[2, 3]" style shape text for error messages. */
void spirt_shape_text(const SpirtTensor *t, char *buf, size_t cap);

typedef enum { SPIRT_KEY_EMPTY, SPIRT_KEY_TENSOR, SPIRT_KEY_OTHER } SpirtKeyKind;
/* Opens a key and says what it holds; *tensor is set for SPIRT_KEY_TENSOR. */
RedisModuleKey *spirt_key_open(RedisModuleCtx *ctx, RedisModuleString *name, int mode,
                               SpirtKeyKind *kind, SpirtTensor **tensor);

/* Sends a tensor to the AOF and replicas as AI.TENSORSET (plus
 * SPIRT.TENSORWRITE pieces for big tensors). */
void spirt_tensor_replicate(RedisModuleCtx *ctx, RedisModuleString *key, const SpirtTensor *t);
/* 1 if writes must be propagated now: AOF on, or a replication stream exists. */
int spirt_propagation_needed(RedisModuleCtx *ctx);

int spirt_tensor_type_register(RedisModuleCtx *ctx);

#endif
