/* log: one place for diagnostics: syslog (facility mail) by default, or
 * stderr when running in the foreground, or a file. Thread-safe. Callers
 * escape network text (esc_text) before it reaches a format argument. */
#ifndef KANJIKI_LOG_H
#define KANJIKI_LOG_H
#include <stdarg.h>
#include <stdbool.h>
#include <syslog.h>

enum log_target { LOG_TO_SYSLOG = 0, LOG_TO_STDERR, LOG_TO_FILE };

/* target LOG_TO_FILE opens path for appending (0640). Returns 0 or -1. */
int log_open(const char *ident, enum log_target target, const char *path);
void log_close(void);
/* Drop messages less important than this (LOG_DEBUG keeps all). */
void log_set_level(int priority);
void log_msg(int priority, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
void log_vmsg(int priority, const char *fmt, va_list ap)
    __attribute__((format(printf, 2, 0)));
/* log_format = json: every line is one JSON object, {"time": ISO 8601 UTC,
 * "level", "program", "pid", "message"} for diagnostics; log_fields adds
 * its members instead of "message" (a verdict's fields). On syslog the
 * object is the message. */
void log_set_json(bool on);
bool log_is_json(void);
/* members: JSON object members without braces, already escaped, with a
 * "time" of their own (the log adds none then). */
void log_fields(int priority, const char *members);

#endif
