/* Small helpers shared by every command: argument parsing and error replies. */
#ifndef SPIRT_UTIL_H
#define SPIRT_UTIL_H

#include <stddef.h>

#include "rm_abi.h"

/* Longest error reply we build; key names in messages are cut to fit. */
#define SPIRT_ERR_LEN 512
/* How much of a key name goes into an error message. */
#define SPIRT_KEYNAME_IN_ERROR 96

/* 1 if the argument equals the keyword, ignoring ASCII case. */
int spirt_arg_is(const RedisModuleString *arg, const char *keyword);

/* Parses an integer in [lo, hi]. Returns 0 on success, -1 otherwise. */
int spirt_parse_int(const RedisModuleString *arg, long long lo, long long hi, long long *out);

/* Parses a finite double. Returns 0 on success, -1 otherwise. */
int spirt_parse_finite(const RedisModuleString *arg, double *out);

/* Writes a printable, length-limited copy of a key name into buf. */
const char *spirt_keyname(const RedisModuleString *key, char *buf, size_t cap);

/* printf into buf; always NUL-terminates and replaces CR/LF (not allowed
 * in a RESP error line). */
void spirt_format(char *buf, size_t cap, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Replies with a formatted error; the text must start with an error code
 * such as "ERR " or "WRONGTYPE ". Always returns REDISMODULE_OK. */
int spirt_reply_errorf(RedisModuleCtx *ctx, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

#endif
