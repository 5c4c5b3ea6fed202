/* SPIRT.DIGEST key: SHA-256 (FIPS 180-4) of a tensor's bytes, as hex, so
 * peers can check they hold identical tensors. Big tensors are hashed off
 * the main thread. */
#include <stdio.h>
#include <string.h>

#include "commands.h"

typedef struct Sha256 {
    uint32_t h[8];
    uint64_t nbytes;
    unsigned char block[64];
    size_t fill;
} Sha256;

/* First 32 bits of the fractional parts of the cube roots of the first 64
 * primes (FIPS 180-4, 4.2.2). */
static const uint32_t K[64] = {
    0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5,
    0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174,
    0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da,
    0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967,
    0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85,
    0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070,
    0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
    0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2,
};

/* First 32 bits of the fractional parts of the square roots of the first
 * 8 primes (FIPS 180-4, 5.3.3). */
static const uint32_t H0[8] = {0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a,
                               0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19};

static inline uint32_t rotr(uint32_t x, int n) { return (x >> n) | (x << (32 - n)); }

static void sha256_compress(uint32_t h[8], const unsigned char *p) {
    uint32_t w[64];
    for (int t = 0; t < 16; t++)
        w[t] = (uint32_t)p[4 * t] << 24 | (uint32_t)p[4 * t + 1] << 16 |
               (uint32_t)p[4 * t + 2] << 8 | (uint32_t)p[4 * t + 3];
    for (int t = 16; t < 64; t++) {
        uint32_t s0 = rotr(w[t - 15], 7) ^ rotr(w[t - 15], 18) ^ (w[t - 15] >> 3);
        uint32_t s1 = rotr(w[t - 2], 17) ^ rotr(w[t - 2], 19) ^ (w[t - 2] >> 10);
        w[t] = w[t - 16] + s0 + w[t - 7] + s1;
    }
    uint32_t a = h[0], b = h[1], c = h[2], d = h[3], e = h[4], f = h[5], g = h[6], k = h[7];
    for (int t = 0; t < 64; t++) {
        uint32_t t1 = k + (rotr(e, 6) ^ rotr(e, 11) ^ rotr(e, 25)) + ((e & f) ^ (~e & g)) + K[t] + w[t];
        uint32_t t2 = (rotr(a, 2) ^ rotr(a, 13) ^ rotr(a, 22)) + ((a & b) ^ (a & c) ^ (b & c));
        k = g;
        g = f;
        f = e;
        e = d + t1;
        d = c;
        c = b;
        b = a;
        a = t1 + t2;
    }
    h[0] += a, h[1] += b, h[2] += c, h[3] += d, h[4] += e, h[5] += f, h[6] += g, h[7] += k;
}

static void sha256_init(Sha256 *s) {
    memcpy(s->h, H0, sizeof(H0));
    s->nbytes = 0;
    s->fill = 0;
}

static void sha256_update(Sha256 *s, const unsigned char *p, size_t len) {
    s->nbytes += len;
    if (s->fill) {
        size_t take = 64 - s->fill < len ? 64 - s->fill : len;
        memcpy(s->block + s->fill, p, take);
        s->fill += take, p += take, len -= take;
        if (s->fill < 64) return;
        sha256_compress(s->h, s->block);
        s->fill = 0;
    }
    for (; len >= 64; p += 64, len -= 64) sha256_compress(s->h, p);
    memcpy(s->block, p, len);
    s->fill = len;
}

static void sha256_final(Sha256 *s, unsigned char out[32]) {
    uint64_t bits = s->nbytes * 8;
    unsigned char pad[72] = {0x80};
    size_t padlen = (s->fill < 56 ? 56 : 120) - s->fill;
    for (int i = 0; i < 8; i++) pad[padlen + i] = (unsigned char)(bits >> (56 - 8 * i));
    sha256_update(s, pad, padlen + 8);
    for (int i = 0; i < 8; i++)
        for (int j = 0; j < 4; j++) out[4 * i + j] = (unsigned char)(s->h[i] >> (24 - 8 * j));
}

typedef struct DigestState {
    const unsigned char *data;
    size_t nbytes;
    char hex[65];
} DigestState;

static int run_digest(SpirtJob *job, const SpirtExec *ex) {
    (void)ex;
    DigestState *d = job->state;
    Sha256 s;
    unsigned char out[32];
    sha256_init(&s);
    sha256_update(&s, d->data, d->nbytes);
    sha256_final(&s, out);
    for (int i = 0; i < 32; i++) snprintf(d->hex + 2 * i, 3, "%02x", out[i]);
    return 0;
}

static void reply_digest(RedisModuleCtx *ctx, SpirtJob *job) {
    DigestState *d = job->state;
    RedisModule_ReplyWithStringBuffer(ctx, d->hex, 64);
}

int spirt_cmd_digest(RedisModuleCtx *ctx, RedisModuleString **argv, int argc) {
    if (argc != 2) return RedisModule_WrongArity(ctx);
    SpirtKeyKind kind;
    SpirtTensor *t;
    RedisModuleKey *key = spirt_key_open(ctx, argv[1], REDISMODULE_READ, &kind, &t);
    RedisModule_CloseKey(key);
    if (kind == SPIRT_KEY_EMPTY)
        return RedisModule_ReplyWithError(ctx, "ERR tensor key is empty or in a different shard");
    if (kind == SPIRT_KEY_OTHER)
        return RedisModule_ReplyWithError(ctx, REDISMODULE_ERRORMSG_WRONGTYPE);
    SpirtJob *job = spirt_job_new("SPIRT.DIGEST");
    DigestState *d = RedisModule_Calloc(1, sizeof(*d));
    job->state = d;
    job->free_state = RedisModule_Free;
    job->run = run_digest;
    job->reply = reply_digest;
    d->data = spirt_job_hold(job, t->buf);
    d->nbytes = t->buf->nbytes;
    job->work_bytes = d->nbytes;
    return spirt_job_dispatch(ctx, job);
}
