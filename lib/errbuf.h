/* errbuf: the error convention of lib/: functions return -1 and describe
 * the failure in a caller-supplied buffer (err, errlen), which may be NULL
 * or empty when the caller does not want the text. */
#ifndef KANJIKI_ERRBUF_H
#define KANJIKI_ERRBUF_H
#include <stddef.h>

/* Format into err (when there is room for anything) and return -1. */
int errbuf_set(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

#endif
