/* store: the SQLite database (verdicts and POP-before-SMTP grants).
 *
 * store_open gives one connection (WAL mode, busy timeout, schema brought
 * up to date by the numbered migrations compiled in from sql/). It is for
 * one thread at a time. The milter never writes through it on the message
 * path: verdicts go to a store_writer, a single thread that owns its own
 * connection and writes batches from a bounded in-memory queue, so no milter
 * thread ever waits on disk. When the database is locked, read-only or
 * otherwise failing, the writer keeps the queue, logs once per incident,
 * retries, and writes everything when the database is back. */
#ifndef KANJIKI_STORE_H
#define KANJIKI_STORE_H
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "ip.h"
#include "snowshoe.h"
#include "verdict.h"

struct sqlite3;
struct store;

enum {
    STORE_READONLY = 1u << 0,  /* open read-only; never migrates */
    STORE_NOCREATE = 1u << 1,  /* fail if the file does not exist */
};

/* Open (creating when allowed) and migrate. busy_ms: how long a statement
 * may wait on a lock. Returns 0, or -1 with the reason in err. */
int store_open(const char *path, unsigned flags, int busy_ms,
               struct store **out, char *err, size_t errlen);
void store_close(struct store *s);
struct sqlite3 *store_db(struct store *s);
/* PRAGMA user_version after migration. */
int store_schema_version(struct store *s);
/* The newest schema version this build knows. */
int store_schema_latest(void);
/* Apply migrations above user_version to db (each in its own transaction).
 * Exposed for tests that create old databases. Returns 0 or -1. */
int store_migrate(struct sqlite3 *db, char *err, size_t errlen);
/* Same, but stop at version target (tests build old databases with it). A
 * database newer than this build is an error naming both versions. */
int store_migrate_to(struct sqlite3 *db, int target, char *err, size_t errlen);

/* Insert one verdict (and set v->id). Synchronous: for the writer thread,
 * the CLI and tests. Returns 0 or -1 (SQLite error in err). */
int store_insert_verdict(struct store *s, struct verdict *v,
                         char *err, size_t errlen);

/* Filters for store_query; zero/NULL fields do not filter. */
struct store_filter {
    int64_t since_ms, until_ms;   /* inclusive bounds; 0 = open */
    bool has_net;
    struct cidr net;              /* client IP within */
    const char *sender;           /* "u@d" exact, or "d" = any sender at d */
    const char *rcpt;             /* same for recipients (refused or accepted) */
    bool has_action;
    enum verdict_action action;
    int kind;                     /* -1 any, else enum verdict_kind */
    const char *reason_code;      /* reasons[].code equals */
    const char *zone;             /* a lookup in this zone (or "spf") */
    bool listed_only;             /* some lookup came back listed */
    int64_t limit;                /* 0 = no limit */
    int64_t id;                   /* this verdict only; 0 = any */
    const char *queue_id;         /* the MTA's queue id, exactly */
    const char *message_id;       /* Message-ID without <>, exactly */
};
void store_filter_init(struct store_filter *f);

typedef int (*store_row_fn)(const struct verdict *v, void *arg);
/* Newest first. fn returning non-zero stops. Loaded verdicts have
 * reasons_json and lookups_json set (reasons[] and lookups[] left empty).
 * Returns 0 or -1. */
int store_query(struct store *s, const struct store_filter *f,
                store_row_fn fn, void *arg, char *err, size_t errlen);

/* Health of each blocklist zone (and SPF) from the lookups table, for
 * `kanjiki stats`: what was asked since since_ms (0 = all time). */
struct store_zone_stat {
    char zone[256];
    char kind[16];
    uint64_t lookups, listed, clean, refused, degraded, skipped, cached;
    int64_t p50_ms, p95_ms, p99_ms, max_ms;   /* answered, not cached; -1 none */
    int64_t last_listed_ms;                   /* 0 never */
};
/* *out (caller frees) gets *n rows ordered by zone. Returns 0 or -1. */
int store_zone_stats(struct store *s, int64_t since_ms, struct store_zone_stat **out,
                     size_t *n, char *err, size_t errlen);

/* Verdicts per action since since_ms: counts[VERDICT_ACTION_COUNT], and how
 * many were degraded. Returns 0 or -1. */
int store_action_counts(struct store *s, int64_t since_ms, uint64_t *counts,
                        uint64_t *degraded, char *err, size_t errlen);

/* Verdicts per bucket of bucket_ms (aligned on the epoch) since since_ms,
 * oldest first; buckets without verdicts are absent. */
struct store_bucket {
    int64_t start_ms;
    uint64_t counts[VERDICT_ACTION_COUNT];
};
int store_timeline(struct store *s, int64_t since_ms, int64_t bucket_ms,
                   struct store_bucket **out, size_t *n, char *err, size_t errlen);
/* Tops since since_ms, most first (limit 0: all): reason codes of verdicts
 * that were not accepts, clients refused (reject, tempfail), and the count
 * of relay attempts refused (one row, key "relay": recipients refused by
 * the relay guard or a routing check). */
enum store_top { STORE_TOP_REASONS = 0, STORE_TOP_CLIENTS, STORE_RELAY_REFUSED };
struct store_count {
    char key[128];
    uint64_t n;
};
int store_top(struct store *s, enum store_top what, int64_t since_ms, size_t limit,
              struct store_count **out, size_t *n, char *err, size_t errlen);

/* The snowshoe detector's state: save rows (insert or replace) and delete
 * rows older than prune_before_ms, in one transaction. */
int store_snowshoe_save(struct store *s, const struct snowshoe_rows *rows,
                        int64_t prune_before_ms, char *err, size_t errlen);
typedef int (*store_snow_fn)(int kind, uint64_t key, const char *name, const void *data,
                             size_t len, int64_t last_ms, void *arg);
/* Rows of kind (-1: all) with last_ms >= since_ms; fn non-zero stops. */
int store_snowshoe_load(struct store *s, int kind, int64_t since_ms, store_snow_fn fn,
                        void *arg, char *err, size_t errlen);

/* Delete up to batch of the oldest verdicts older than before_ms (and their
 * lookups) in one short transaction; *deleted gets how many (fewer than
 * batch: nothing older is left). Other writers wait at most for one batch.
 * Returns 0 or -1. */
int store_prune_batch(struct store *s, int64_t before_ms, int batch, int *deleted, char *err,
                      size_t errlen);
/* How many verdicts are older than before_ms. */
int store_count_before(struct store *s, int64_t before_ms, uint64_t *n, char *err,
                       size_t errlen);

/* --- the writer thread --- */
struct store_writer;

/* submitted counts every store_writer_submit call, so submitted = written +
 * dropped + queued; failures counts failed write attempts (retries too). */
struct store_writer_stats {
    uint64_t submitted, written, dropped, failures;
    uint64_t batches;   /* transactions committed (each up to ~500 verdicts) */
    size_t queued;
    bool healthy;       /* last attempt succeeded */
};

/* Start the writer for path with room for capacity queued verdicts. The
 * database need not be reachable yet: the writer retries every retry_ms. */
struct store_writer *store_writer_start(const char *path, size_t capacity,
                                        int retry_ms);
/* Keep verdicts for retention_ms (0: for ever): the writer deletes older
 * ones a batch at a time between writes, 10 s after this call and every 10
 * minutes after that. */
void store_writer_set_retention(struct store_writer *w, int64_t retention_ms);
/* Hand v to the writer (ownership passes). Never blocks on disk. When the
 * queue is full the verdict is dropped and counted (and logged once per
 * incident); returns false then. */
bool store_writer_submit(struct store_writer *w, struct verdict *v);
/* Wait until everything queued so far is written or timeout_ms passes;
 * returns true when drained. */
bool store_writer_flush(struct store_writer *w, int timeout_ms);
void store_writer_stats(struct store_writer *w, struct store_writer_stats *out);
/* Flush (bounded by timeout_ms), stop and join. Verdicts still queued after
 * the timeout are logged as lost with their count. */
void store_writer_stop(struct store_writer *w, int timeout_ms);

#endif
