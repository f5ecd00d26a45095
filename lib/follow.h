/* follow: read growing log files the way `tail -F` does, and hand over
 * every complete line. Poll-based (no inotify): each follow_poll reads what
 * was appended to each file since the last one.
 *
 * - Start: at the end of each file that exists when follow_new is called
 *   (or at its start with FOLLOW_FROM_START); a file that appears later, or
 *   the new file after a rotation, is read from its start.
 * - Rotation (the path now names another file): the old file is read to
 *   its end first; it stays open and is drained for a while
 *   (FOLLOW_DRAIN_MS without new data) because a logger may still write to
 *   it until it is told to reopen. No line is lost.
 * - Truncation (the file got shorter than what was read): read it again
 *   from its start.
 * - A missing or unreadable file is retried at every poll.
 * - Only complete lines ("\n"-terminated) are delivered, without the "\n"
 *   (and without a "\r" before it). A line longer than FOLLOW_LINE_MAX is
 *   delivered cut to that length with cut set, and the rest of it is
 *   skipped: memory per file is bounded. A partial last line is never
 *   delivered: when a file is truncated or rotated away, it is dropped.
 *
 * Ownership: follow_new copies the paths. The line passed to the callback
 * (and the path) live only for the call. A follow object is for one thread,
 * except follow_stop, which any thread or a signal handler may call. */
#ifndef KANJIKI_FOLLOW_H
#define KANJIKI_FOLLOW_H
#include <stdbool.h>
#include <stddef.h>

#define FOLLOW_LINE_MAX 8192
#define FOLLOW_DRAIN_MS 10000
#define FOLLOW_POLL_MS 250

enum {
    FOLLOW_FROM_START = 1u << 0,   /* read existing content too */
};

struct follow_line {
    const char *path;   /* as given to follow_new */
    const char *text;   /* NUL-terminated; may contain NUL bytes before len */
    size_t len;
    bool cut;           /* longer than FOLLOW_LINE_MAX; text is its start */
};

/* Return non-zero to stop (follow_poll then returns -1). */
typedef int (*follow_line_fn)(const struct follow_line *l, void *arg);
/* Optional: what happened to a file, as a short phrase of our own
 * ("missing", "appeared", "rotated", "truncated", "unreadable: <errno
 * text>", "not a regular file"). Reported once per change of state. */
typedef void (*follow_note_fn)(const char *path, const char *what, void *arg);

struct follow;

/* Opens what exists now (to fix the starting point). Never fails. */
struct follow *follow_new(const char *const *paths, size_t npaths, unsigned flags,
                          follow_line_fn fn, follow_note_fn note, void *arg);
/* Read everything new in every file once. Returns the number of lines
 * delivered, or -1 when the callback asked to stop or follow_stop was
 * called. */
int follow_poll(struct follow *f);
/* Sleep up to ms (in short slices); returns false at once when stopped. */
bool follow_sleep(struct follow *f, int ms);
/* follow_poll every interval_ms (FOLLOW_POLL_MS when <= 0) until stopped. */
void follow_run(struct follow *f, int interval_ms);
/* Async-signal-safe and thread-safe: make follow_run/follow_sleep return. */
void follow_stop(struct follow *f);
bool follow_stopped(struct follow *f);
void follow_free(struct follow *f);

#endif
