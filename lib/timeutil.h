/* timeutil: durations and timestamps as administrators write them. */
#ifndef KANJIKI_TIMEUTIL_H
#define KANJIKI_TIMEUTIL_H
#include <stddef.h>
#include <stdint.h>
#include <time.h>

/* "30" (seconds), "90s", "15m", "1h", "7d", "2w", "1h30m", "500ms" is NOT
 * accepted here (see tu_parse_duration_ms). Returns 0 and seconds, or -1. */
int tu_parse_duration(const char *s, int64_t *secs);
/* Like tu_parse_duration but in milliseconds and also accepting "ms":
 * "500ms", "2s", "1.5s" -> 1500. Plain numbers are seconds. */
int tu_parse_duration_ms(const char *s, int64_t *ms);
/* A point in time: a duration meaning "that long ago" ("1h", "7d"), or a
 * timestamp "YYYY-MM-DD", "YYYY-MM-DD HH:MM[:SS]", "YYYY-MM-DDTHH:MM[:SS]"
 * with an optional "Z" or "+HH:MM"/"-HH:MM" offset (local time without),
 * or "@EPOCH". now is the reference for durations. Returns 0 and epoch
 * seconds, or -1. */
int tu_parse_when(const char *s, time_t now, time_t *out);
/* Wall clock in milliseconds since the epoch. */
int64_t tu_now_ms(void);
/* "2026-11-22T14:05:09.123Z" (UTC, milliseconds); buf >= 32. */
void tu_format_iso_ms(int64_t ms, char *buf, size_t len);
/* "2026-11-22 15:05:09" in local time; buf >= 32. */
void tu_format_local(int64_t ms, char *buf, size_t len);

/* Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's
 * days_from_civil); pure, unlike timegm, which consults the TZ state. */
int64_t tu_days_from_civil(int64_t y, int m, int d);

#endif
