/* follow: see follow.h. Each path has a current reader and, after a
 * rotation, the previous file's reader, drained until it has been quiet
 * for FOLLOW_DRAIN_MS. A reader is an open descriptor, the offset read so
 * far, the identity (device, inode) of what it has open, and the bytes of
 * a line not yet complete (at most FOLLOW_LINE_MAX). */
#include "follow.h"

#include <errno.h>
#include <fcntl.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "xalloc.h"

#define CHUNK 65536

struct reader {
    int fd;              /* -1: closed */
    dev_t dev;
    ino_t ino;
    off_t pos;           /* bytes consumed */
    char buf[FOLLOW_LINE_MAX + 1];
    size_t blen;
    bool skipping;       /* inside a line already cut or begun before us */
    int64_t last_data;   /* monotonic ms of the last bytes read */
};

enum fstate { ST_NONE = 0, ST_OK, ST_MISSING, ST_UNREADABLE, ST_NOTREG };

struct ffile {
    char *path;
    struct reader cur, old;
    enum fstate state;
    int err;             /* errno behind ST_UNREADABLE */
};

struct follow {
    struct ffile *files;
    size_t n;
    unsigned flags;
    follow_line_fn fn;
    follow_note_fn note;
    void *arg;
    atomic_int stop;
    bool cb_stop;
    char *chunk;
};

static int64_t mono_ms(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (int64_t)t.tv_sec * 1000 + t.tv_nsec / 1000000;
}

static void note(struct follow *f, struct ffile *ff, const char *what)
{
    if (f->note)
        f->note(ff->path, what, f->arg);
}

/* Report a change of state once (not at every poll). */
static void set_state(struct follow *f, struct ffile *ff, enum fstate st, int err)
{
    if (ff->state == st && (st != ST_UNREADABLE || ff->err == err))
        return;
    enum fstate was = ff->state;
    ff->state = st;
    ff->err = err;
    char msg[160];
    switch (st) {
    case ST_OK:
        if (was != ST_NONE)
            note(f, ff, "appeared");
        break;
    case ST_MISSING:
        note(f, ff, "missing");
        break;
    case ST_UNREADABLE:
        snprintf(msg, sizeof msg, "unreadable: %s", strerror(err));
        note(f, ff, msg);
        break;
    case ST_NOTREG:
        note(f, ff, "not a regular file");
        break;
    case ST_NONE:
        break;
    }
}

static void reader_init(struct reader *r)
{
    r->fd = -1;
    r->pos = 0;
    r->blen = 0;
    r->skipping = false;
}

static void reader_close(struct reader *r)
{
    if (r->fd >= 0)
        close(r->fd);
    reader_init(r);
}

/* Open ff->path into r: at its end (skipping a partial last line), or at
 * its start. Returns 0, or -1 with the state recorded. */
static int reader_open(struct follow *f, struct ffile *ff, struct reader *r, bool at_end)
{
    int fd = open(ff->path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
    if (fd < 0) {
        set_state(f, ff, errno == ENOENT || errno == ENOTDIR ? ST_MISSING : ST_UNREADABLE,
                  errno);
        return -1;
    }
    struct stat sb;
    if (fstat(fd, &sb) != 0) {
        int e = errno;
        close(fd);
        set_state(f, ff, ST_UNREADABLE, e);
        return -1;
    }
    if (!S_ISREG(sb.st_mode)) {
        close(fd);
        set_state(f, ff, ST_NOTREG, 0);
        return -1;
    }
    reader_init(r);
    r->fd = fd;
    r->dev = sb.st_dev;
    r->ino = sb.st_ino;
    r->last_data = mono_ms();
    if (at_end && sb.st_size > 0) {
        char last;
        r->pos = sb.st_size;
        if (pread(fd, &last, 1, sb.st_size - 1) == 1 && last != '\n')
            r->skipping = true;   /* we only have the end of that line */
    }
    set_state(f, ff, ST_OK, 0);
    return 0;
}

static int deliver(struct follow *f, struct ffile *ff, struct reader *r, bool cut)
{
    size_t len = r->blen;
    if (!cut && len && r->buf[len - 1] == '\r')
        len--;
    r->buf[len] = '\0';
    r->blen = 0;
    struct follow_line l = { ff->path, r->buf, len, cut };
    if (f->fn(&l, f->arg) != 0) {
        f->cb_stop = true;
        return -1;
    }
    return 0;
}

/* Split p[0..n) into lines. Returns lines delivered or -1 (stop). */
static int consume(struct follow *f, struct ffile *ff, struct reader *r,
                   const char *p, size_t n)
{
    const char *end = p + n;
    int lines = 0;
    while (p < end) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        const char *seg_end = nl ? nl : end;
        const char *next = nl ? nl + 1 : end;
        if (r->skipping) {
            if (nl)
                r->skipping = false;
            p = next;
            continue;
        }
        size_t seg = (size_t)(seg_end - p), room = FOLLOW_LINE_MAX - r->blen;
        if (seg > room) {
            memcpy(r->buf + r->blen, p, room);
            r->blen = FOLLOW_LINE_MAX;
            if (deliver(f, ff, r, true) < 0)
                return -1;
            lines++;
            r->skipping = !nl;
            p = next;
            continue;
        }
        memcpy(r->buf + r->blen, p, seg);
        r->blen += seg;
        if (nl) {
            if (deliver(f, ff, r, false) < 0)
                return -1;
            lines++;
        }
        p = next;
    }
    return lines;
}

/* Read r to its current end. Returns lines delivered or -1 (stop). */
static int reader_read(struct follow *f, struct ffile *ff, struct reader *r)
{
    if (r->fd < 0)
        return 0;
    struct stat sb;
    if (fstat(r->fd, &sb) == 0 && sb.st_size < r->pos) {
        note(f, ff, "truncated");
        r->pos = 0;
        r->blen = 0;
        r->skipping = false;
    }
    int lines = 0;
    for (;;) {
        if (follow_stopped(f))
            return -1;
        ssize_t got = pread(r->fd, f->chunk, CHUNK, r->pos);
        if (got < 0 && errno == EINTR)
            continue;
        if (got <= 0)
            break;
        r->pos += got;
        r->last_data = mono_ms();
        int n = consume(f, ff, r, f->chunk, (size_t)got);
        if (n < 0)
            return -1;
        lines += n;
    }
    return lines;
}

static int poll_file(struct follow *f, struct ffile *ff)
{
    int lines = 0, n;
    /* the previous file first: its lines are older */
    if (ff->old.fd >= 0) {
        if ((n = reader_read(f, ff, &ff->old)) < 0)
            return -1;
        lines += n;
        if (mono_ms() - ff->old.last_data >= FOLLOW_DRAIN_MS)
            reader_close(&ff->old);
    }
    if (ff->cur.fd < 0 && reader_open(f, ff, &ff->cur, false) < 0)
        return lines;
    if ((n = reader_read(f, ff, &ff->cur)) < 0)
        return -1;
    lines += n;

    struct stat sb;
    if (stat(ff->path, &sb) != 0) {
        /* renamed away, the new one not there yet: keep reading this one */
        set_state(f, ff, errno == ENOENT ? ST_MISSING : ST_UNREADABLE, errno);
        return lines;
    }
    if (sb.st_dev == ff->cur.dev && sb.st_ino == ff->cur.ino) {
        set_state(f, ff, ST_OK, 0);
        return lines;
    }
    /* rotated: what we have is read to its end; keep draining it while
     * its writer may still be writing, and read the new file from its start */
    note(f, ff, "rotated");
    reader_close(&ff->old);
    ff->old = ff->cur;
    reader_init(&ff->cur);
    ff->state = ST_NONE;   /* "rotated" said it: no "appeared" after it */
    if (reader_open(f, ff, &ff->cur, false) < 0)
        return lines;
    if ((n = reader_read(f, ff, &ff->cur)) < 0)
        return -1;
    return lines + n;
}

struct follow *follow_new(const char *const *paths, size_t npaths, unsigned flags,
                          follow_line_fn fn, follow_note_fn note_fn, void *arg)
{
    struct follow *f = xcalloc(1, sizeof *f);
    f->files = xcalloc(npaths ? npaths : 1, sizeof *f->files);
    f->n = npaths;
    f->flags = flags;
    f->fn = fn;
    f->note = note_fn;
    f->arg = arg;
    f->chunk = xmalloc(CHUNK);
    atomic_init(&f->stop, 0);
    for (size_t i = 0; i < npaths; i++) {
        struct ffile *ff = &f->files[i];
        ff->path = xstrdup(paths[i]);
        reader_init(&ff->cur);
        reader_init(&ff->old);
        reader_open(f, ff, &ff->cur, !(flags & FOLLOW_FROM_START));
    }
    return f;
}

int follow_poll(struct follow *f)
{
    int lines = 0;
    for (size_t i = 0; i < f->n; i++) {
        int n = poll_file(f, &f->files[i]);
        if (n < 0)
            return -1;
        lines += n;
    }
    return follow_stopped(f) ? -1 : lines;
}

bool follow_sleep(struct follow *f, int ms)
{
    int64_t until = mono_ms() + (ms > 0 ? ms : 0);
    for (;;) {
        if (follow_stopped(f))
            return false;
        int64_t left = until - mono_ms();
        if (left <= 0)
            return true;
        if (left > 50)
            left = 50;
        struct timespec t = { 0, (long)left * 1000000L };
        nanosleep(&t, NULL);
    }
}

void follow_run(struct follow *f, int interval_ms)
{
    if (interval_ms <= 0)
        interval_ms = FOLLOW_POLL_MS;
    while (follow_poll(f) >= 0 && follow_sleep(f, interval_ms))
        ;
}

void follow_stop(struct follow *f)
{
    if (f)
        atomic_store(&f->stop, 1);
}

bool follow_stopped(struct follow *f)
{
    return f->cb_stop || atomic_load(&f->stop) != 0;
}

void follow_free(struct follow *f)
{
    if (!f)
        return;
    for (size_t i = 0; i < f->n; i++) {
        reader_close(&f->files[i].cur);
        reader_close(&f->files[i].old);
        free(f->files[i].path);
    }
    free(f->files);
    free(f->chunk);
    free(f);
}
