/* log: one place for diagnostics: syslog (facility mail) by default, or
 * stderr when running in the foreground, or a file. Thread-safe. Callers
 * escape network text (esc_text) before it reaches a format argument. */
#ifndef KANJIKI_LOG_H
#define KANJIKI_LOG_H
#include <stdarg.h>
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

#endif
