#include "util.h"

#include <ctype.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

int spirt_arg_is(const RedisModuleString *arg, const char *keyword) {
    size_t len;
    const char *s = RedisModule_StringPtrLen(arg, &len);
    return len == strlen(keyword) && strncasecmp(s, keyword, len) == 0;
}

int spirt_parse_int(const RedisModuleString *arg, long long lo, long long hi, long long *out) {
    long long v;
    if (RedisModule_StringToLongLong(arg, &v) != REDISMODULE_OK || v < lo || v > hi) return -1;
    *out = v;
    return 0;
}

int spirt_parse_finite(const RedisModuleString *arg, double *out) {
    double v;
    if (RedisModule_StringToDouble(arg, &v) != REDISMODULE_OK || !isfinite(v)) return -1;
    *out = v;
    return 0;
}

const char *spirt_keyname(const RedisModuleString *key, char *buf, size_t cap) {
    size_t len, i, n = 0;
    const char *s = RedisModule_StringPtrLen(key, &len);
    if (cap == 0) return buf;
    size_t limit = cap - 1 < SPIRT_KEYNAME_IN_ERROR ? cap - 1 : SPIRT_KEYNAME_IN_ERROR;
    for (i = 0; i < len && n < limit; i++) {
        unsigned char c = (unsigned char)s[i];
        buf[n++] = (isprint(c) && c != '\'') ? (char)c : '?';
    }
    if (i < len && n >= 3) memcpy(buf + n - 3, "...", 3);
    buf[n] = '\0';
    return buf;
}

static void sanitize_line(char *buf) {
    for (char *p = buf; *p; p++)
        if (*p == '\r' || *p == '\n') *p = ' ';
}

void spirt_format(char *buf, size_t cap, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, cap, fmt, ap);
    va_end(ap);
    sanitize_line(buf);
}

int spirt_reply_errorf(RedisModuleCtx *ctx, const char *fmt, ...) {
    char buf[SPIRT_ERR_LEN];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof(buf), fmt, ap);
    va_end(ap);
    sanitize_line(buf);
    RedisModule_ReplyWithError(ctx, buf);
    return REDISMODULE_OK;
}
