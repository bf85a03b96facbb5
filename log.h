/* log.h - etcd-style server logs on stderr: zap JSON lines (--logger=zap, as
 * etcd 3.4 prints them) or capnslog text lines (--logger=capnslog, 3.4's
 * default).  Tools wait for some of these lines by their text, so messages
 * are etcd's, word for word. */
#ifndef ETCD_LOG_H
#define ETCD_LOG_H

#include <stdbool.h>

enum log_level { LOG_DEBUG, LOG_INFO, LOG_WARN, LOG_ERROR, LOG_FATAL };
enum log_format { LOG_ZAP, LOG_CAPNSLOG };

/* outputs: "stderr", "stdout", "default" (stderr) or a file path; 0 or -1. */
int log_setup(enum log_format fmt, enum log_level min, const char *output);

/* Parses "debug"/"info"/"warn"/"error"/"panic"/"fatal"; -1 if unknown. */
int log_parse_level(const char *s);

/* One log line.
 *  caller: zap's "caller" (e.g. "embed/etcd.go:305"), pkg: capnslog's package
 *  (e.g. "embed"), msg: zap's message, text: capnslog's line (NULL -> msg).
 *  fields: zap fields as a JSON fragment without braces, e.g.
 *  "\"name\":\"default\"", or NULL. */
void log_line(enum log_level lvl, const char *caller, const char *pkg, const char *msg,
              const char *text, const char *fields);

/* JSON-escapes s into dst (size cap, NUL-terminated, truncated if needed);
 * returns dst. */
char *log_json_str(char *dst, unsigned long cap, const char *s);

#endif
