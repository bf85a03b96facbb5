/* log.c - zap JSON and capnslog text log lines (log.h).  Owns the output
 * stream; it does not decide what is logged. */
#include "log.h"

#include <stdio.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>

static enum log_format log_fmt = LOG_ZAP;
static enum log_level log_min = LOG_INFO;
static FILE *log_out;

int log_setup(enum log_format fmt, enum log_level min, const char *output)
{
    log_fmt = fmt;
    log_min = min;
    if (!output || !strcmp(output, "default") || !strcmp(output, "stderr"))
        log_out = stderr;
    else if (!strcmp(output, "stdout"))
        log_out = stdout;
    else {
        FILE *f = fopen(output, "a");
        if (!f)
            return -1;
        setvbuf(f, NULL, _IOLBF, 0);
        log_out = f;
    }
    return 0;
}

int log_parse_level(const char *s)
{
    static const char *const names[] = {"debug", "info", "warn", "error", "fatal"};
    for (int i = 0; i < 5; i++)
        if (!strcmp(s, names[i]))
            return i;
    if (!strcmp(s, "panic") || !strcmp(s, "dpanic"))
        return LOG_FATAL;
    return -1;
}

char *log_json_str(char *dst, unsigned long cap, const char *s)
{
    size_t o = 0;
    if (!cap)
        return dst;
    for (; *s && o + 7 < cap; s++) {
        unsigned char c = (unsigned char)*s;
        if (c == '"' || c == '\\') {
            dst[o++] = '\\';
            dst[o++] = (char)c;
        } else if (c < 0x20) {
            o += (size_t)snprintf(dst + o, cap - o, "\\u%04x", c);
        } else
            dst[o++] = (char)c;
    }
    dst[o] = 0;
    return dst;
}

void log_line(enum log_level lvl, const char *caller, const char *pkg, const char *msg,
              const char *text, const char *fields)
{
    if (lvl < log_min)
        return;
    FILE *out = log_out ? log_out : stderr;
    struct timeval tv;
    gettimeofday(&tv, NULL);
    struct tm tm;
    gmtime_r(&tv.tv_sec, &tm);
    if (log_fmt == LOG_ZAP) {
        static const char *const lv[] = {"debug", "info", "warn", "error", "fatal"};
        char m[512];
        fprintf(out,
                "{\"level\":\"%s\",\"ts\":\"%04d-%02d-%02dT%02d:%02d:%02d.%03dZ\","
                "\"caller\":\"%s\",\"msg\":\"%s\"%s%s}\n",
                lv[lvl], tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min,
                tm.tm_sec, (int)(tv.tv_usec / 1000), caller, log_json_str(m, sizeof m, msg),
                fields ? "," : "", fields ? fields : "");
    } else {
        static const char lc[] = {'D', 'I', 'W', 'E', 'C'};
        fprintf(out, "%04d-%02d-%02d %02d:%02d:%02d.%06d %c | %s: %s\n", tm.tm_year + 1900,
                tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, (int)tv.tv_usec,
                lc[lvl], pkg, text ? text : msg);
    }
    fflush(out);
}
