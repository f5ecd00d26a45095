/* store: see store.h. SQLite access for verdicts (grants live in popauth.c
 * on the same connection). Every statement is prepared and bound; the only
 * text spliced into SQL is this file's own: column conditions and the
 * schema version number from the compiled-in migrations. */
#include "errbuf.h"
#include "store.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <sqlite3.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "esc.h"
#include "log.h"
#include "sbuf.h"
#include "schema_sql.h"
#include "timeutil.h"
#include "xalloc.h"

struct store {
    sqlite3 *db;
    bool readonly;
    sqlite3_stmt *ins;     /* cached INSERT INTO verdicts (writer batches) */
    sqlite3_stmt *rcpts;   /* cached json_each over a recipients array */
    sqlite3_stmt *ins_lk;  /* cached INSERT INTO lookups */
    sqlite3_stmt *lks;     /* cached lookups of one verdict, as JSON */
};

/* Run every statement in sql (a migration may hold many), each prepared. */
static int exec_sql(sqlite3 *db, const char *sql, char *err, size_t errlen)
{
    const char *p = sql;
    while (p && *p) {
        sqlite3_stmt *st = NULL;
        const char *tail = NULL;
        if (sqlite3_prepare_v2(db, p, -1, &st, &tail) != SQLITE_OK)
            return errbuf_set(err, errlen, "%s", sqlite3_errmsg(db));
        if (st) {
            int rc;
            while ((rc = sqlite3_step(st)) == SQLITE_ROW)
                ;
            if (rc != SQLITE_DONE) {
                errbuf_set(err, errlen, "%s", sqlite3_errmsg(db));
                sqlite3_finalize(st);
                return -1;
            }
            sqlite3_finalize(st);
        }
        p = tail;
    }
    return 0;
}

static int user_version(sqlite3 *db, int *out, char *err, size_t errlen)
{
    sqlite3_stmt *st = NULL;
    if (sqlite3_prepare_v2(db, "PRAGMA user_version", -1, &st, NULL) != SQLITE_OK)
        return errbuf_set(err, errlen, "%s", sqlite3_errmsg(db));
    int rc = sqlite3_step(st);
    if (rc != SQLITE_ROW) {
        errbuf_set(err, errlen, "%s", sqlite3_errmsg(db));
        sqlite3_finalize(st);
        return -1;
    }
    *out = sqlite3_column_int(st, 0);
    sqlite3_finalize(st);
    return 0;
}

/* ---- migrations ---- */

int store_schema_latest(void)
{
    int v = 0;
    for (int i = 0; i < schema_migration_count; i++)
        if (schema_migrations[i].version > v)
            v = schema_migrations[i].version;
    return v;
}

/* The lowest migration above version (not relying on array order). */
static const struct schema_migration *next_migration(int version)
{
    const struct schema_migration *best = NULL;
    for (int i = 0; i < schema_migration_count; i++) {
        const struct schema_migration *m = &schema_migrations[i];
        if (m->version > version && (!best || m->version < best->version))
            best = m;
    }
    return best;
}

static int newer_than_build(int have, char *err, size_t errlen)
{
    return errbuf_set(err, errlen,
                "database schema version %d is newer than this build supports "
                "(%d); use a newer kanjiki", have, store_schema_latest());
}

/* Apply m in its own transaction; *cur becomes the version now on disk. */
static int apply_migration(sqlite3 *db, const struct schema_migration *m, int *cur,
                           char *err, size_t errlen)
{
    char msg[512];
    if (exec_sql(db, "BEGIN IMMEDIATE", msg, sizeof msg) < 0)
        return errbuf_set(err, errlen, "migration %s: %s", m->name, msg);
    /* another process may have migrated between our read and our lock */
    int now = 0;
    if (user_version(db, &now, msg, sizeof msg) < 0)
        goto rollback;
    if (now >= m->version) {
        exec_sql(db, "ROLLBACK", NULL, 0);
        *cur = now;
        return 0;
    }
    char setver[64];
    snprintf(setver, sizeof setver, "PRAGMA user_version = %d", m->version);
    if (exec_sql(db, m->sql, msg, sizeof msg) < 0 ||
        exec_sql(db, setver, msg, sizeof msg) < 0 ||
        exec_sql(db, "COMMIT", msg, sizeof msg) < 0)
        goto rollback;
    *cur = m->version;
    return 0;
rollback:
    exec_sql(db, "ROLLBACK", NULL, 0);
    return errbuf_set(err, errlen, "migration %s: %s", m->name, msg);
}

int store_migrate_to(sqlite3 *db, int target, char *err, size_t errlen)
{
    int cur = 0;
    if (user_version(db, &cur, err, errlen) < 0)
        return -1;
    if (cur > store_schema_latest())
        return newer_than_build(cur, err, errlen);
    const struct schema_migration *m;
    while ((m = next_migration(cur)) && m->version <= target)
        if (apply_migration(db, m, &cur, err, errlen) < 0)
            return -1;
    if (cur > store_schema_latest())
        return newer_than_build(cur, err, errlen);
    return 0;
}

int store_migrate(sqlite3 *db, char *err, size_t errlen)
{
    return store_migrate_to(db, store_schema_latest(), err, errlen);
}

/* ---- open and close ---- */

static bool is_memory(const char *path)
{
    return !strcmp(path, ":memory:");
}

/* Create the file ourselves so that its mode is 0640 (less by umask), not
 * whatever umask SQLite would inherit: verdicts hold addresses. */
static int precreate(const char *path, char *err, size_t errlen)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0640);
    if (fd >= 0) {
        close(fd);
        return 0;
    }
    if (errno == EEXIST)
        return 0;
    return errbuf_set(err, errlen, "cannot create database %s: %s", path, strerror(errno));
}

static int configure(sqlite3 *db, bool readonly, int busy_ms, char *err, size_t errlen)
{
    sqlite3_busy_timeout(db, busy_ms > 0 ? busy_ms : 0);
    if (exec_sql(db, "PRAGMA foreign_keys = ON", err, errlen) < 0)
        return -1;
    if (readonly)
        return 0;
    if (exec_sql(db, "PRAGMA journal_mode = WAL", err, errlen) < 0 ||
        exec_sql(db, "PRAGMA synchronous = NORMAL", err, errlen) < 0)
        return -1;
    return 0;
}

/* Read-only connections never migrate, but still refuse a newer schema. */
static int check_version(sqlite3 *db, char *err, size_t errlen)
{
    int cur = 0;
    if (user_version(db, &cur, err, errlen) < 0)
        return -1;
    return cur > store_schema_latest() ? newer_than_build(cur, err, errlen) : 0;
}

static int open_db(const char *path, unsigned flags, sqlite3 **out,
                   char *err, size_t errlen)
{
    bool ro = flags & STORE_READONLY;
    bool create = !ro && !(flags & STORE_NOCREATE);
    if (!is_memory(path)) {
        if (create && precreate(path, err, errlen) < 0)
            return -1;
        if (!create && access(path, F_OK) != 0)
            return errbuf_set(err, errlen, "database %s: %s", path, strerror(errno));
    }
    int oflags = ro ? SQLITE_OPEN_READONLY
                    : SQLITE_OPEN_READWRITE | (create ? SQLITE_OPEN_CREATE : 0);
    sqlite3 *db = NULL;
    int rc = sqlite3_open_v2(path, &db, oflags, NULL);
    if (rc != SQLITE_OK) {
        errbuf_set(err, errlen, "cannot open database %s: %s", path,
             db ? sqlite3_errmsg(db) : sqlite3_errstr(rc));
        sqlite3_close(db);
        return -1;
    }
    /* SQLite quietly falls back to read-only for a write-protected file;
     * a caller that asked to write must hear about it now */
    if (!ro && sqlite3_db_readonly(db, "main") == 1) {
        sqlite3_close(db);
        return errbuf_set(err, errlen, "database %s is read-only", path);
    }
    *out = db;
    return 0;
}

int store_open(const char *path, unsigned flags, int busy_ms,
               struct store **out, char *err, size_t errlen)
{
    *out = NULL;
    if (!path || !*path)
        return errbuf_set(err, errlen, "no database path configured");
    sqlite3 *db = NULL;
    if (open_db(path, flags, &db, err, errlen) < 0)
        return -1;
    bool ro = flags & STORE_READONLY;
    char msg[512];
    if (configure(db, ro, busy_ms, msg, sizeof msg) < 0 ||
        (ro ? check_version(db, msg, sizeof msg) : store_migrate(db, msg, sizeof msg)) < 0) {
        sqlite3_close(db);
        return errbuf_set(err, errlen, "database %s: %s", path, msg);
    }
    struct store *s = xcalloc(1, sizeof *s);
    s->db = db;
    s->readonly = ro;
    *out = s;
    return 0;
}

void store_close(struct store *s)
{
    if (!s)
        return;
    sqlite3_finalize(s->ins);
    sqlite3_finalize(s->rcpts);
    sqlite3_finalize(s->ins_lk);
    sqlite3_finalize(s->lks);
    /* _v2: statements other modules forgot to finalize do not leak the db */
    sqlite3_close_v2(s->db);
    free(s);
}

struct sqlite3 *store_db(struct store *s)
{
    return s->db;
}

int store_schema_version(struct store *s)
{
    int v = -1;
    return user_version(s->db, &v, NULL, 0) < 0 ? -1 : v;
}

/* ---- insert ---- */

static const char insert_sql[] =
    "INSERT INTO verdicts (time_ms, kind, queue_id, client_ip, client_ip_bin,"
    " client_name, helo, sender, auth_user, rcpt, recipients, stage, action,"
    " monitor, reply, reasons, score, degraded, message_id)"
    " VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16,"
    " ?17, ?18, ?19)";

static const char insert_lookup_sql[] =
    "INSERT INTO lookups (verdict_id, time_ms, zone, kind, subject, query, outcome,"
    " answer, txt, ttl, latency_ms, cached, weight)"
    " VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13)";

static int bind_str(sqlite3_stmt *st, int i, const char *s)
{
    return s ? sqlite3_bind_text(st, i, s, -1, SQLITE_TRANSIENT)
             : sqlite3_bind_null(st, i);
}

static int bind_ip(sqlite3_stmt *st, int i, const char *text)
{
    struct ip a;
    if (!text || ip_parse(text, &a) < 0)
        return sqlite3_bind_null(st, i);
    return sqlite3_bind_blob(st, i, a.b, sizeof a.b, SQLITE_TRANSIENT);
}

/* A verdict loaded from the store carries its reasons as JSON only. */
static char *reasons_json(const struct verdict *v)
{
    if (!v->nreasons && v->reasons_json)
        return xstrdup(v->reasons_json);
    return verdict_reasons_to_json(v);
}

static int bind_verdict(sqlite3_stmt *st, const struct verdict *v)
{
    char *rcpts = verdict_rcpts_to_json(v);
    char *reasons = reasons_json(v);
    int rc = sqlite3_bind_int64(st, 1, v->time_ms);
    rc |= bind_str(st, 2, verdict_kind_name(v->kind));
    rc |= bind_str(st, 3, v->queue_id);
    rc |= bind_str(st, 4, v->client_ip);
    rc |= bind_ip(st, 5, v->client_ip);
    rc |= bind_str(st, 6, v->client_name);
    rc |= bind_str(st, 7, v->helo);
    rc |= bind_str(st, 8, v->sender);
    rc |= bind_str(st, 9, v->auth_user);
    rc |= bind_str(st, 10, v->rcpt);
    rc |= bind_str(st, 11, rcpts);
    rc |= bind_str(st, 12, verdict_stage_name(v->stage));
    rc |= bind_str(st, 13, verdict_action_name(v->action));
    rc |= sqlite3_bind_int(st, 14, v->monitor ? 1 : 0);
    rc |= bind_str(st, 15, v->reply);
    rc |= bind_str(st, 16, reasons);
    rc |= v->scored ? sqlite3_bind_double(st, 17, v->score) : sqlite3_bind_null(st, 17);
    rc |= sqlite3_bind_int(st, 18, v->degraded ? 1 : 0);
    rc |= bind_str(st, 19, v->message_id);
    free(rcpts);
    free(reasons);
    return rc == SQLITE_OK ? 0 : -1;
}

static int bind_lookup(sqlite3_stmt *st, const struct verdict *v,
                       const struct verdict_lookup *l)
{
    int rc = sqlite3_bind_int64(st, 1, v->id);
    rc |= sqlite3_bind_int64(st, 2, v->time_ms);
    rc |= bind_str(st, 3, l->zone ? l->zone : "");
    rc |= bind_str(st, 4, l->kind ? l->kind : "");
    rc |= bind_str(st, 5, l->subject);
    rc |= bind_str(st, 6, l->query);
    rc |= bind_str(st, 7, l->outcome ? l->outcome : "");
    rc |= bind_str(st, 8, l->answer);
    rc |= bind_str(st, 9, l->txt);
    rc |= l->ttl >= 0 ? sqlite3_bind_int(st, 10, l->ttl) : sqlite3_bind_null(st, 10);
    rc |= sqlite3_bind_int64(st, 11, l->latency_ms);
    rc |= sqlite3_bind_int(st, 12, l->cached ? 1 : 0);
    rc |= sqlite3_bind_double(st, 13, l->weight);
    return rc == SQLITE_OK ? 0 : -1;
}

/* The verdict's evidence rows; the caller's transaction (the writer's
 * batch) makes them appear together with their verdict. */
static int insert_lookups(struct store *s, const struct verdict *v, char *err, size_t errlen)
{
    if (!v->nlookups)
        return 0;
    if (!s->ins_lk &&
        sqlite3_prepare_v2(s->db, insert_lookup_sql, -1, &s->ins_lk, NULL) != SQLITE_OK)
        return errbuf_set(err, errlen, "insert lookup: %s", sqlite3_errmsg(s->db));
    for (size_t i = 0; i < v->nlookups; i++) {
        int rc = bind_lookup(s->ins_lk, v, &v->lookups[i]) < 0 ? SQLITE_ERROR
                                                                : sqlite3_step(s->ins_lk);
        if (rc != SQLITE_DONE)
            errbuf_set(err, errlen, "insert lookup: %s", sqlite3_errmsg(s->db));
        sqlite3_reset(s->ins_lk);
        sqlite3_clear_bindings(s->ins_lk);
        if (rc != SQLITE_DONE)
            return -1;
    }
    return 0;
}

int store_insert_verdict(struct store *s, struct verdict *v,
                         char *err, size_t errlen)
{
    if (!s->ins && sqlite3_prepare_v2(s->db, insert_sql, -1, &s->ins, NULL) != SQLITE_OK)
        return errbuf_set(err, errlen, "insert verdict: %s", sqlite3_errmsg(s->db));
    int rc = bind_verdict(s->ins, v) < 0 ? SQLITE_ERROR : sqlite3_step(s->ins);
    if (rc != SQLITE_DONE)
        errbuf_set(err, errlen, "insert verdict: %s", sqlite3_errmsg(s->db));
    else
        v->id = sqlite3_last_insert_rowid(s->db);
    sqlite3_reset(s->ins);
    sqlite3_clear_bindings(s->ins);
    if (rc != SQLITE_DONE)
        return -1;
    return insert_lookups(s, v, err, errlen);
}

/* ---- query ---- */

void store_filter_init(struct store_filter *f)
{
    memset(f, 0, sizeof *f);
    f->kind = -1;
}

/* One bound parameter of the SELECT being built. */
struct qparam {
    enum { QP_INT, QP_TEXT, QP_BLOB } type;
    int64_t i;
    char *text;          /* owned */
    uint8_t blob[16];
};

struct qbuild {
    struct sbuf sql;
    struct qparam p[16];
    int n;
};

static void q_cond(struct qbuild *q, const char *cond)
{
    sbuf_adds(&q->sql, " AND ");
    sbuf_adds(&q->sql, cond);
}

static void q_int(struct qbuild *q, int64_t v)
{
    q->p[q->n].type = QP_INT;
    q->p[q->n++].i = v;
}

static void q_text(struct qbuild *q, char *owned)
{
    q->p[q->n].type = QP_TEXT;
    q->p[q->n++].text = owned;
}

static void q_blob(struct qbuild *q, const struct ip *a)
{
    q->p[q->n].type = QP_BLOB;
    memcpy(q->p[q->n++].blob, a->b, 16);
}

/* "%@" + domain with LIKE's own wildcards escaped, so "_" in a filter
 * value is an underscore and not "any character". */
static char *like_domain(const char *domain)
{
    struct sbuf b = SBUF_INIT;
    sbuf_adds(&b, "%@");
    for (const char *p = domain; *p; p++) {
        if (*p == '%' || *p == '_' || *p == '\\')
            sbuf_addc(&b, '\\');
        sbuf_addc(&b, *p);
    }
    return sbuf_take(&b);
}

/* An address filter: "u@d" is exact, "d" or "@d" any address at d.
 * Surrounding angle brackets are ignored (people paste "<u@d>"). Returns
 * the term to bind and whether it is a LIKE pattern. */
static char *addr_term(const char *in, bool *like)
{
    size_t n = strlen(in);
    if (n >= 2 && in[0] == '<' && in[n - 1] == '>') {
        in++;
        n -= 2;
    }
    char *s = xstrndup(in, n);
    *like = false;
    if (s[0] == '@' || (s[0] && !strchr(s, '@'))) {
        char *pat = like_domain(s[0] == '@' ? s + 1 : s);
        free(s);
        *like = true;
        return pat;
    }
    return s;   /* an address, or "" = the null sender */
}

/* json_each on text that is not JSON is an error that would fail the whole
 * query; a damaged row should only fail to match. */
#define JSON_OR_EMPTY(col) "json_each(CASE WHEN json_valid(" col ") THEN " col " ELSE '[]' END)"

static void q_sender(struct qbuild *q, const char *sender)
{
    bool like;
    char *t = addr_term(sender, &like);
    q_cond(q, like ? "sender LIKE ? ESCAPE '\\'" : "sender = ? COLLATE NOCASE");
    q_text(q, t);
}

static void q_rcpt(struct qbuild *q, const char *rcpt)
{
    bool like;
    char *t = addr_term(rcpt, &like);
    if (like)
        q_cond(q, "(rcpt LIKE ? ESCAPE '\\' OR EXISTS (SELECT 1 FROM "
                  JSON_OR_EMPTY("verdicts.recipients") " WHERE value LIKE ? ESCAPE '\\'))");
    else
        q_cond(q, "(rcpt = ? COLLATE NOCASE OR EXISTS (SELECT 1 FROM "
                  JSON_OR_EMPTY("verdicts.recipients") " WHERE value = ? COLLATE NOCASE))");
    q_text(q, xstrdup(t));
    q_text(q, t);
}

/* msgid: the schema has message_id (5 and later; a database opened
 * read-only before the milter migrated it has not). Reasons that are not
 * valid JSON (a damaged row) read as none, so that every output stays JSON. */
static void build_query(struct qbuild *q, const struct store_filter *f, bool msgid)
{
    sbuf_addf(&q->sql,
              "SELECT id, time_ms, kind, queue_id, client_ip, client_name, helo,"
              " sender, auth_user, rcpt, recipients, stage, action, monitor, reply,"
              " CASE WHEN json_valid(reasons) THEN reasons ELSE '[]' END, score, degraded, %s"
              " FROM verdicts WHERE 1", msgid ? "message_id" : "NULL");
    if (!msgid && f->message_id)
        q_cond(q, "0");   /* no Message-ID was recorded then */
    if (f->id) {
        q_cond(q, "id = ?");
        q_int(q, f->id);
    }
    if (f->queue_id) {
        q_cond(q, "queue_id = ?");
        q_text(q, xstrdup(f->queue_id));
    }
    if (f->message_id) {
        q_cond(q, "message_id = ?");
        q_text(q, xstrdup(f->message_id));
    }
    if (f->since_ms) {
        q_cond(q, "time_ms >= ?");
        q_int(q, f->since_ms);
    }
    if (f->until_ms) {
        q_cond(q, "time_ms <= ?");
        q_int(q, f->until_ms);
    }
    if (f->has_net) {
        struct ip lo, hi;
        cidr_range(&f->net, &lo, &hi);
        q_cond(q, "client_ip_bin BETWEEN ? AND ?");
        q_blob(q, &lo);
        q_blob(q, &hi);
    }
    if (f->sender)
        q_sender(q, f->sender);
    if (f->rcpt && *f->rcpt)
        q_rcpt(q, f->rcpt);
    if (f->has_action) {
        q_cond(q, "action = ?");
        q_text(q, xstrdup(verdict_action_name(f->action)));
    }
    if (f->kind >= 0) {
        q_cond(q, "kind = ?");
        q_text(q, xstrdup(verdict_kind_name((enum verdict_kind)f->kind)));
    }
    if (f->reason_code) {
        q_cond(q, "EXISTS (SELECT 1 FROM " JSON_OR_EMPTY("verdicts.reasons")
                  " WHERE json_extract(value, '$.code') = ?)");
        q_text(q, xstrdup(f->reason_code));
    }
    if (f->zone) {
        q_cond(q, "EXISTS (SELECT 1 FROM lookups WHERE lookups.verdict_id = verdicts.id"
                  " AND lookups.zone = ? COLLATE NOCASE)");
        q_text(q, xstrdup(f->zone));
    }
    if (f->listed_only) {
        q_cond(q, "EXISTS (SELECT 1 FROM lookups WHERE lookups.verdict_id = verdicts.id"
                  " AND lookups.outcome = 'listed')");
    }
    sbuf_adds(&q->sql, " ORDER BY time_ms DESC, id DESC LIMIT ?");
    q_int(q, f->limit > 0 ? f->limit : -1);   /* -1: SQLite's "no limit" */
}

static int bind_params(sqlite3_stmt *st, const struct qbuild *q)
{
    int rc = SQLITE_OK;
    for (int i = 0; i < q->n && rc == SQLITE_OK; i++) {
        const struct qparam *p = &q->p[i];
        if (p->type == QP_INT)
            rc = sqlite3_bind_int64(st, i + 1, p->i);
        else if (p->type == QP_TEXT)
            rc = sqlite3_bind_text(st, i + 1, p->text, -1, SQLITE_STATIC);
        else
            rc = sqlite3_bind_blob(st, i + 1, p->blob, 16, SQLITE_STATIC);
    }
    return rc;
}

static char *col_dup(sqlite3_stmt *st, int i)
{
    if (sqlite3_column_type(st, i) == SQLITE_NULL)
        return NULL;
    return xstrdup((const char *)sqlite3_column_text(st, i));
}

/* Recipients JSON array back into v->rcpts. */
static void load_rcpts(struct store *s, struct verdict *v, const char *json)
{
    if (!s->rcpts && sqlite3_prepare_v2(s->db, "SELECT value FROM " JSON_OR_EMPTY("?1"),
                                        -1, &s->rcpts, NULL) != SQLITE_OK)
        return;
    sqlite3_bind_text(s->rcpts, 1, json ? json : "[]", -1, SQLITE_STATIC);
    while (sqlite3_step(s->rcpts) == SQLITE_ROW) {
        const char *r = (const char *)sqlite3_column_text(s->rcpts, 0);
        verdict_add_rcpt(v, r ? r : "");
    }
    sqlite3_reset(s->rcpts);
    sqlite3_clear_bindings(s->rcpts);
}

/* The verdict's lookups rows as one JSON array (v->lookups_json), written
 * by verdict_lookups_to_json so that DNS text (TXT records may hold
 * anything) is escaped the same way as every other field. */
static void load_lookups(struct store *s, struct verdict *v)
{
    static const char sql[] =
        "SELECT zone, kind, subject, query, outcome, answer, txt, ttl, latency_ms, cached,"
        " weight FROM lookups WHERE verdict_id = ?1 ORDER BY rowid";
    struct verdict *tmp = verdict_new(VERDICT_KIND_MESSAGE);
    if (s->lks || sqlite3_prepare_v2(s->db, sql, -1, &s->lks, NULL) == SQLITE_OK) {
        sqlite3_bind_int64(s->lks, 1, v->id);
        while (sqlite3_step(s->lks) == SQLITE_ROW) {
            char *t[7];
            for (int i = 0; i < 7; i++)
                t[i] = col_dup(s->lks, i);
            struct verdict_lookup l = {
                .zone = t[0], .kind = t[1], .subject = t[2], .query = t[3], .outcome = t[4],
                .answer = t[5], .txt = t[6],
                .ttl = sqlite3_column_type(s->lks, 7) == SQLITE_NULL
                           ? -1 : sqlite3_column_int(s->lks, 7),
                .latency_ms = sqlite3_column_int64(s->lks, 8),
                .cached = sqlite3_column_int(s->lks, 9) != 0,
                .weight = sqlite3_column_double(s->lks, 10),
            };
            verdict_add_lookup(tmp, &l);
            for (int i = 0; i < 7; i++)
                free(t[i]);
        }
        sqlite3_reset(s->lks);
    }
    v->lookups_json = verdict_lookups_to_json(tmp);
    verdict_free(tmp);
}

static int kind_parse(const char *s, enum verdict_kind *out)
{
    if (s && !strcmp(s, "message"))
        *out = VERDICT_KIND_MESSAGE;
    else if (s && !strcmp(s, "rcpt"))
        *out = VERDICT_KIND_RCPT;
    else
        return -1;
    return 0;
}

static struct verdict *load_row(struct store *s, sqlite3_stmt *st, char *err, size_t errlen)
{
    const char *kind = (const char *)sqlite3_column_text(st, 2);
    const char *stage = (const char *)sqlite3_column_text(st, 11);
    const char *action = (const char *)sqlite3_column_text(st, 12);
    struct verdict *v = verdict_new(VERDICT_KIND_MESSAGE);
    v->id = sqlite3_column_int64(st, 0);
    if (kind_parse(kind, &v->kind) < 0 || verdict_stage_parse(stage, &v->stage) < 0 ||
        verdict_action_parse(action, &v->action) < 0) {
        errbuf_set(err, errlen, "verdict %lld: unknown kind, stage or action (%s, %s, %s)",
             (long long)v->id, kind ? kind : "NULL", stage ? stage : "NULL",
             action ? action : "NULL");
        verdict_free(v);
        return NULL;
    }
    v->time_ms = sqlite3_column_int64(st, 1);
    v->queue_id = col_dup(st, 3);
    v->client_ip = col_dup(st, 4);
    v->client_name = col_dup(st, 5);
    v->helo = col_dup(st, 6);
    v->sender = col_dup(st, 7);
    v->auth_user = col_dup(st, 8);
    v->rcpt = col_dup(st, 9);
    v->monitor = sqlite3_column_int(st, 13) != 0;
    v->reply = col_dup(st, 14);
    v->reasons_json = col_dup(st, 15);
    if (!v->reasons_json)
        v->reasons_json = xstrdup("[]");
    v->scored = sqlite3_column_type(st, 16) != SQLITE_NULL;
    v->score = v->scored ? sqlite3_column_double(st, 16) : 0;
    v->degraded = sqlite3_column_int(st, 17) != 0;
    v->message_id = col_dup(st, 18);
    char *recipients = col_dup(st, 10);
    load_rcpts(s, v, recipients);
    free(recipients);
    load_lookups(s, v);
    return v;
}

static int run_query(struct store *s, sqlite3_stmt *st, store_row_fn fn, void *arg,
                     char *err, size_t errlen)
{
    int rc;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        struct verdict *v = load_row(s, st, err, errlen);
        if (!v)
            return -1;
        int stop = fn(v, arg);
        verdict_free(v);
        if (stop)
            return 0;
    }
    if (rc != SQLITE_DONE)
        return errbuf_set(err, errlen, "query: %s", sqlite3_errmsg(s->db));
    return 0;
}

int store_query(struct store *s, const struct store_filter *f,
                store_row_fn fn, void *arg, char *err, size_t errlen)
{
    struct qbuild q;
    memset(&q, 0, sizeof q);
    build_query(&q, f, store_schema_version(s) >= 5);
    sqlite3_stmt *st = NULL;
    int rc = -1;
    if (sqlite3_prepare_v2(s->db, sbuf_str(&q.sql), -1, &st, NULL) != SQLITE_OK)
        errbuf_set(err, errlen, "query: %s", sqlite3_errmsg(s->db));
    else if (bind_params(st, &q) != SQLITE_OK)
        errbuf_set(err, errlen, "query: %s", sqlite3_errmsg(s->db));
    else
        rc = run_query(s, st, fn, arg, err, errlen);
    sqlite3_finalize(st);
    for (int i = 0; i < q.n; i++)
        free(q.p[i].text);
    sbuf_free(&q.sql);
    return rc;
}

/* ---- statistics ---- */

static int64_t pct(const int64_t *v, size_t n, int p)
{
    if (!n)
        return -1;
    size_t k = (n * (size_t)p + 99) / 100;   /* nearest rank */
    return v[k ? k - 1 : 0];
}

static void zone_finish(struct store_zone_stat *z, int64_t *lat, size_t nlat)
{
    z->p50_ms = pct(lat, nlat, 50);
    z->p95_ms = pct(lat, nlat, 95);
    z->p99_ms = pct(lat, nlat, 99);
    z->max_ms = nlat ? lat[nlat - 1] : -1;
}

int store_zone_stats(struct store *s, int64_t since_ms, struct store_zone_stat **out,
                     size_t *n, char *err, size_t errlen)
{
    /* one pass in (zone, latency) order: percentiles need sorted values */
    static const char sql[] =
        "SELECT zone, kind, outcome, cached, latency_ms, time_ms FROM lookups"
        " WHERE time_ms >= ?1 ORDER BY zone, latency_ms";
    sqlite3_stmt *st = NULL;
    *out = NULL;
    *n = 0;
    if (sqlite3_prepare_v2(s->db, sql, -1, &st, NULL) != SQLITE_OK)
        return errbuf_set(err, errlen, "stats: %s", sqlite3_errmsg(s->db));
    sqlite3_bind_int64(st, 1, since_ms);
    struct store_zone_stat *v = NULL, *z = NULL;
    size_t nz = 0, nlat = 0, caplat = 0;
    int64_t *lat = NULL;
    int rc;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        const char *zone = (const char *)sqlite3_column_text(st, 0);
        const char *kind = (const char *)sqlite3_column_text(st, 1);
        const char *outcome = (const char *)sqlite3_column_text(st, 2);
        zone = zone ? zone : "";
        if (!z || strcmp(z->zone, zone)) {
            if (z)
                zone_finish(z, lat, nlat);
            v = xrealloc(v, (nz + 1) * sizeof *v);
            z = &v[nz++];
            memset(z, 0, sizeof *z);
            snprintf(z->zone, sizeof z->zone, "%s", zone);
            snprintf(z->kind, sizeof z->kind, "%s", kind ? kind : "");
            nlat = 0;
        }
        z->lookups++;
        bool cached = sqlite3_column_int(st, 3) != 0;
        z->cached += cached;
        outcome = outcome ? outcome : "";
        if (!strcmp(outcome, "listed")) {
            z->listed++;
            int64_t t = sqlite3_column_int64(st, 5);
            if (t > z->last_listed_ms)
                z->last_listed_ms = t;
        } else if (!strcmp(outcome, "refused")) {
            z->refused++;
        } else if (!strcmp(outcome, "degraded") || !strcmp(outcome, "temperror")) {
            z->degraded++;
        } else if (!strcmp(outcome, "skipped")) {
            z->skipped++;
        } else {
            z->clean++;   /* SPF: every other result is an answer */
        }
        bool answered = strcmp(outcome, "degraded") && strcmp(outcome, "skipped");
        if (!cached && answered) {
            if (nlat == caplat) {
                caplat = caplat ? caplat * 2 : 256;
                lat = xrealloc(lat, caplat * sizeof *lat);
            }
            lat[nlat++] = sqlite3_column_int64(st, 4);
        }
    }
    if (z)
        zone_finish(z, lat, nlat);
    free(lat);
    sqlite3_finalize(st);
    if (rc != SQLITE_DONE) {
        free(v);
        return errbuf_set(err, errlen, "stats: %s", sqlite3_errmsg(s->db));
    }
    *out = v;
    *n = nz;
    return 0;
}

int store_action_counts(struct store *s, int64_t since_ms, uint64_t *counts,
                        uint64_t *degraded, char *err, size_t errlen)
{
    static const char sql[] =
        "SELECT action, count(*), sum(degraded) FROM verdicts WHERE time_ms >= ?1"
        " GROUP BY action";
    sqlite3_stmt *st = NULL;
    memset(counts, 0, VERDICT_ACTION_COUNT * sizeof *counts);
    *degraded = 0;
    if (sqlite3_prepare_v2(s->db, sql, -1, &st, NULL) != SQLITE_OK)
        return errbuf_set(err, errlen, "stats: %s", sqlite3_errmsg(s->db));
    sqlite3_bind_int64(st, 1, since_ms);
    int rc;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        enum verdict_action a;
        if (verdict_action_parse((const char *)sqlite3_column_text(st, 0), &a) == 0)
            counts[a] += (uint64_t)sqlite3_column_int64(st, 1);
        *degraded += (uint64_t)sqlite3_column_int64(st, 2);
    }
    sqlite3_finalize(st);
    if (rc != SQLITE_DONE)
        return errbuf_set(err, errlen, "stats: %s", sqlite3_errmsg(s->db));
    return 0;
}

/* Verdicts per time bucket and action. */
int store_timeline(struct store *s, int64_t since_ms, int64_t bucket_ms,
                   struct store_bucket **out, size_t *n, char *err, size_t errlen)
{
    static const char sql[] =
        "SELECT (time_ms / ?2 - (time_ms < 0 AND time_ms % ?2 <> 0)) * ?2 AS b, action,"
        " count(*) FROM verdicts WHERE time_ms >= ?1 GROUP BY b, action ORDER BY b";
    *out = NULL;
    *n = 0;
    sqlite3_stmt *st = NULL;
    if (bucket_ms <= 0 || sqlite3_prepare_v2(s->db, sql, -1, &st, NULL) != SQLITE_OK)
        return errbuf_set(err, errlen, "stats: %s", sqlite3_errmsg(s->db));
    sqlite3_bind_int64(st, 1, since_ms);
    sqlite3_bind_int64(st, 2, bucket_ms);
    int rc;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        int64_t b = sqlite3_column_int64(st, 0);
        if (!*n || (*out)[*n - 1].start_ms != b) {
            *out = xrealloc(*out, (*n + 1) * sizeof **out);
            memset(&(*out)[*n], 0, sizeof **out);
            (*out)[(*n)++].start_ms = b;
        }
        enum verdict_action a;
        if (verdict_action_parse((const char *)sqlite3_column_text(st, 1), &a) == 0)
            (*out)[*n - 1].counts[a] += (uint64_t)sqlite3_column_int64(st, 2);
    }
    sqlite3_finalize(st);
    if (rc != SQLITE_DONE) {
        free(*out);
        *out = NULL;
        *n = 0;
        return errbuf_set(err, errlen, "stats: %s", sqlite3_errmsg(s->db));
    }
    return 0;
}

/* What was refused, tagged or quarantined counts for the tops; a relay
 * attempt is a recipient refused by the relay guard or a routing check. */
#define NOT_ACCEPT "action <> 'accept'"
/* reasons that say why a recipient or a message was accepted, and SPF
 * results that weigh nothing against it: not why it was refused or tagged */
#define ACCEPTANCE_CODES                                                             \
    "('local_domain', 'relay_domain', 'own_ip_literal', 'postmaster', 'smtp_auth', " \
    "'trusted_network', 'popauth_grant', 'allow_rule', 'spf_pass', 'spf_none', "     \
    "'spf_neutral', 'score_exempt')"
#define REFUSED "action IN ('reject', 'tempfail')"

int store_top(struct store *s, enum store_top what, int64_t since_ms, size_t limit,
              struct store_count **out, size_t *n, char *err, size_t errlen)
{
    static const char *const sql[] = {
        [STORE_TOP_REASONS] =
            "SELECT json_extract(r.value, '$.code') AS k, count(DISTINCT verdicts.id) AS c "
            "FROM verdicts, " JSON_OR_EMPTY("verdicts.reasons") " r WHERE time_ms >= ?1 AND "
            NOT_ACCEPT " AND k IS NOT NULL AND k NOT IN " ACCEPTANCE_CODES
            " AND (k <> 'snowshoe_score' OR json_extract(r.value, '$.action') IN "
            "('tag', 'quarantine', 'tempfail', 'reject')) GROUP BY k ORDER BY c DESC, k "
            "LIMIT ?2",
        [STORE_TOP_CLIENTS] =
            "SELECT client_ip AS k, count(*) AS c FROM verdicts WHERE time_ms >= ?1 AND "
            REFUSED " AND k IS NOT NULL GROUP BY k ORDER BY c DESC, k LIMIT ?2",
        [STORE_RELAY_REFUSED] =
            "SELECT 'relay', count(*) FROM verdicts WHERE time_ms >= ?1 AND kind = 'rcpt' AND "
            REFUSED " AND EXISTS (SELECT 1 FROM " JSON_OR_EMPTY("verdicts.reasons") " r WHERE "
            "json_extract(r.value, '$.check') IN ('relay', 'route')) AND ?2 > 0",
    };
    *out = NULL;
    *n = 0;
    sqlite3_stmt *st = NULL;
    if ((unsigned)what >= sizeof sql / sizeof sql[0] ||
        sqlite3_prepare_v2(s->db, sql[what], -1, &st, NULL) != SQLITE_OK)
        return errbuf_set(err, errlen, "stats: %s", sqlite3_errmsg(s->db));
    sqlite3_bind_int64(st, 1, since_ms);
    sqlite3_bind_int64(st, 2, limit ? (int64_t)limit : -1);
    int rc;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        *out = xrealloc(*out, (*n + 1) * sizeof **out);
        struct store_count *c = &(*out)[(*n)++];
        const char *k = (const char *)sqlite3_column_text(st, 0);
        snprintf(c->key, sizeof c->key, "%s", k ? k : "");
        c->n = (uint64_t)sqlite3_column_int64(st, 1);
    }
    sqlite3_finalize(st);
    if (rc != SQLITE_DONE) {
        free(*out);
        *out = NULL;
        *n = 0;
        return errbuf_set(err, errlen, "stats: %s", sqlite3_errmsg(s->db));
    }
    return 0;
}

/* ---- snowshoe state ---- */

int store_snowshoe_save(struct store *s, const struct snowshoe_rows *rows,
                        int64_t prune_before_ms, char *err, size_t errlen)
{
    sqlite3_stmt *ins = NULL, *del = NULL;
    if (exec_sql(s->db, "BEGIN IMMEDIATE", err, errlen) < 0)
        return -1;
    int rc = sqlite3_prepare_v2(s->db,
                                "INSERT OR REPLACE INTO snowshoe (kind, key, name, data, last_ms)"
                                " VALUES (?1, ?2, ?3, ?4, ?5)", -1, &ins, NULL);
    for (size_t i = 0; rc == SQLITE_OK && i < rows->n; i++) {
        const struct snowshoe_row *r = &rows->v[i];
        sqlite3_bind_int(ins, 1, r->kind);
        sqlite3_bind_int64(ins, 2, (sqlite3_int64)r->key);
        sqlite3_bind_text(ins, 3, r->name ? r->name : "", -1, SQLITE_STATIC);
        sqlite3_bind_blob(ins, 4, r->data, (int)r->len, SQLITE_STATIC);
        sqlite3_bind_int64(ins, 5, r->last_ms);
        rc = sqlite3_step(ins) == SQLITE_DONE ? SQLITE_OK : SQLITE_ERROR;
        sqlite3_reset(ins);
    }
    if (rc == SQLITE_OK)
        rc = sqlite3_prepare_v2(s->db, "DELETE FROM snowshoe WHERE last_ms < ?1", -1, &del,
                                NULL);
    if (rc == SQLITE_OK) {
        sqlite3_bind_int64(del, 1, prune_before_ms);
        rc = sqlite3_step(del) == SQLITE_DONE ? SQLITE_OK : SQLITE_ERROR;
    }
    if (rc != SQLITE_OK)
        errbuf_set(err, errlen, "snowshoe state: %s", sqlite3_errmsg(s->db));
    sqlite3_finalize(ins);
    sqlite3_finalize(del);
    if (rc != SQLITE_OK) {
        exec_sql(s->db, "ROLLBACK", NULL, 0);
        return -1;
    }
    return exec_sql(s->db, "COMMIT", err, errlen);
}

int store_snowshoe_load(struct store *s, int kind, int64_t since_ms, store_snow_fn fn,
                        void *arg, char *err, size_t errlen)
{
    sqlite3_stmt *st = NULL;
    if (sqlite3_prepare_v2(s->db,
                           "SELECT kind, key, name, data, last_ms FROM snowshoe"
                           " WHERE (?1 < 0 OR kind = ?1) AND last_ms >= ?2", -1, &st,
                           NULL) != SQLITE_OK)
        return errbuf_set(err, errlen, "snowshoe state: %s", sqlite3_errmsg(s->db));
    sqlite3_bind_int(st, 1, kind);
    sqlite3_bind_int64(st, 2, since_ms);
    int rc;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        const char *name = (const char *)sqlite3_column_text(st, 2);
        if (fn(sqlite3_column_int(st, 0), (uint64_t)sqlite3_column_int64(st, 1),
               name && *name ? name : NULL, sqlite3_column_blob(st, 3),
               (size_t)sqlite3_column_bytes(st, 3), sqlite3_column_int64(st, 4), arg))
            break;
    }
    if (rc != SQLITE_ROW && rc != SQLITE_DONE)
        errbuf_set(err, errlen, "snowshoe state: %s", sqlite3_errmsg(s->db));
    sqlite3_finalize(st);
    return rc == SQLITE_ROW || rc == SQLITE_DONE ? 0 : -1;
}

/* ---- the writer thread ---- */

#define WRITER_BATCH   500   /* verdicts per transaction */
#define WRITER_BUSY_MS 200   /* short: a locked database is retried, not waited on */

int store_prune_batch(struct store *s, int64_t before_ms, int batch, int *deleted, char *err,
                      size_t errlen)
{
    *deleted = 0;
    char msg[512];
    if (exec_sql(s->db, "BEGIN IMMEDIATE", msg, sizeof msg) < 0)
        return errbuf_set(err, errlen, "%s", msg);
    /* the oldest first; lookups go with their verdict (foreign keys are on,
     * and the CASCADE would do it, but the explicit delete keeps it cheap
     * on the index whatever the pragma) */
    static const char *const sql[] = {
        "DELETE FROM lookups WHERE verdict_id IN (SELECT id FROM verdicts WHERE time_ms < ?1 "
        "ORDER BY time_ms LIMIT ?2)",
        "DELETE FROM verdicts WHERE id IN (SELECT id FROM verdicts WHERE time_ms < ?1 "
        "ORDER BY time_ms LIMIT ?2)",
    };
    for (size_t i = 0; i < 2; i++) {
        sqlite3_stmt *st = NULL;
        int rc = sqlite3_prepare_v2(s->db, sql[i], -1, &st, NULL);
        if (rc == SQLITE_OK) {
            sqlite3_bind_int64(st, 1, before_ms);
            sqlite3_bind_int(st, 2, batch);
            rc = sqlite3_step(st);
        }
        sqlite3_finalize(st);
        if (rc != SQLITE_DONE) {
            errbuf_set(err, errlen, "prune: %s", sqlite3_errmsg(s->db));
            exec_sql(s->db, "ROLLBACK", NULL, 0);
            return -1;
        }
        if (i == 1)
            *deleted = sqlite3_changes(s->db);
    }
    if (exec_sql(s->db, "COMMIT", msg, sizeof msg) < 0) {
        exec_sql(s->db, "ROLLBACK", NULL, 0);
        return errbuf_set(err, errlen, "%s", msg);
    }
    return 0;
}

int store_count_before(struct store *s, int64_t before_ms, uint64_t *n, char *err, size_t errlen)
{
    sqlite3_stmt *st = NULL;
    int rc = sqlite3_prepare_v2(s->db, "SELECT count(*) FROM verdicts WHERE time_ms < ?1", -1,
                                &st, NULL);
    if (rc == SQLITE_OK) {
        sqlite3_bind_int64(st, 1, before_ms);
        rc = sqlite3_step(st);
    }
    if (rc == SQLITE_ROW)
        *n = (uint64_t)sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
    if (rc != SQLITE_ROW)
        return errbuf_set(err, errlen, "count: %s", sqlite3_errmsg(s->db));
    return 0;
}

struct store_writer {
    char *path;
    int retry_ms;
    pthread_t thread;
    pthread_mutex_t mu;
    pthread_cond_t wake;      /* to the writer: work, a flush, or stop */
    pthread_cond_t written;   /* to flushers: a batch committed */
    /* ring of queued verdicts; count includes the batch being written,
     * which stays in place until committed so a failure loses nothing */
    struct verdict **ring;
    size_t cap, head, count;
    bool stopping;
    bool kick;                /* a flusher wants a retry now, not after backoff */
    bool drop_logged;         /* the current drop incident was logged */
    uint64_t drop_run;        /* verdicts dropped in the current incident */
    uint64_t retired;         /* verdicts taken off the queue by a commit */
    struct store_writer_stats st;
    /* the writer thread's own state, no lock needed */
    struct store *s;
    bool failing;             /* in an incident (logged) */
    bool recovering;          /* writing the backlog of an incident */
    uint64_t backlog, caught_up;
    /* retention (under mu): verdicts older than this go, a batch at a time
     * between writes, so that queued verdicts never wait for more than one */
    int64_t retention_ms;
    int64_t next_prune_ms;    /* CLOCK_REALTIME ms: when to look again */
    uint64_t pruned;
};

#define PRUNE_BATCH 500
#define PRUNE_EVERY_MS (10 * 60 * 1000)   /* look for old verdicts this often */

static struct timespec deadline_after(int ms)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    if (ms < 0)
        ms = 0;
    t.tv_sec += ms / 1000;
    t.tv_nsec += (long)(ms % 1000) * 1000000L;
    if (t.tv_nsec >= 1000000000L) {
        t.tv_sec++;
        t.tv_nsec -= 1000000000L;
    }
    return t;
}

/* An error that only this row causes: retrying would fail the same way
 * forever and hold every verdict queued behind it. */
static bool row_error(sqlite3 *db)
{
    int rc = sqlite3_extended_errcode(db) & 0xff;
    return rc == SQLITE_CONSTRAINT || rc == SQLITE_TOOBIG || rc == SQLITE_MISMATCH;
}

static void log_rejected(const struct verdict *v, const char *why)
{
    struct sbuf b = SBUF_INIT;
    esc_text_s(&b, v->queue_id ? v->queue_id : "-");
    log_msg(LOG_ERR, "verdict store: dropping a verdict it cannot store (queue %s): %s",
            sbuf_str(&b), why);
    sbuf_free(&b);
}

/* One transaction for the batch. Returns 0 with *rejected = verdicts the
 * database refused as rows (dropped, logged), or -1: nothing written. */
static int write_batch(struct store_writer *w, struct verdict **batch, size_t n,
                       size_t *rejected, char *err, size_t errlen)
{
    *rejected = 0;
    if (!w->s && store_open(w->path, 0, WRITER_BUSY_MS, &w->s, err, errlen) < 0)
        return -1;
    char msg[512];
    if (exec_sql(w->s->db, "BEGIN IMMEDIATE", msg, sizeof msg) < 0) {
        errbuf_set(err, errlen, "%s", msg);
        goto failed;
    }
    for (size_t i = 0; i < n; i++) {
        if (store_insert_verdict(w->s, batch[i], err, errlen) == 0)
            continue;
        if (!row_error(w->s->db))
            goto rollback;
        log_rejected(batch[i], err);
        (*rejected)++;
    }
    if (exec_sql(w->s->db, "COMMIT", msg, sizeof msg) == 0)
        return 0;
    errbuf_set(err, errlen, "%s", msg);
rollback:
    exec_sql(w->s->db, "ROLLBACK", NULL, 0);
failed:
    for (size_t i = 0; i < n; i++)
        batch[i]->id = 0;
    /* reopen next time: a file that was read-only, replaced or missing is
     * then seen as it is now */
    store_close(w->s);
    w->s = NULL;
    return -1;
}

static void log_recovered(struct store_writer *w)
{
    log_msg(LOG_NOTICE, "verdict store back: wrote %llu queued verdicts",
            (unsigned long long)w->caught_up);
    w->recovering = false;
}

/* After a commit of n with queued (before removal) in the queue. */
static void note_success(struct store_writer *w, size_t n, size_t queued)
{
    if (w->failing) {
        w->failing = false;
        w->recovering = true;
        w->backlog = queued;
        w->caught_up = 0;
    }
    if (w->recovering) {
        w->caught_up += n;
        if (w->caught_up >= w->backlog)
            log_recovered(w);
    }
}

static void note_failure(struct store_writer *w, const char *why, size_t queued)
{
    if (w->failing)
        return;   /* one line per incident, not per retry */
    if (w->recovering)
        log_recovered(w);
    w->failing = true;
    log_msg(LOG_ERR, "verdict store unavailable: %s; keeping %zu verdicts queued, "
            "retrying every %d ms", why, queued, w->retry_ms);
}

/* Wait retry_ms unless stopping or a flush asks for a retry now. */
static void backoff(struct store_writer *w)
{
    struct timespec until = deadline_after(w->retry_ms);
    while (!w->stopping && !w->kick)
        if (pthread_cond_timedwait(&w->wake, &w->mu, &until) == ETIMEDOUT)
            break;
}

/* One round: write up to WRITER_BATCH from the head. Called and returns
 * with mu held; verdicts are freed outside it. */
static void writer_round(struct store_writer *w, struct verdict **batch)
{
    size_t n = w->count < WRITER_BATCH ? w->count : WRITER_BATCH;
    for (size_t i = 0; i < n; i++)
        batch[i] = w->ring[(w->head + i) % w->cap];
    w->kick = false;
    pthread_mutex_unlock(&w->mu);
    char err[512];
    size_t rejected = 0;
    bool ok = write_batch(w, batch, n, &rejected, err, sizeof err) == 0;
    pthread_mutex_lock(&w->mu);
    size_t queued = w->count;
    if (!ok) {
        w->st.failures++;
        w->st.healthy = false;
        pthread_mutex_unlock(&w->mu);
        note_failure(w, err, queued);
        pthread_mutex_lock(&w->mu);
        backoff(w);
        return;
    }
    w->head = (w->head + n) % w->cap;
    w->count -= n;
    w->retired += n;
    w->st.written += n - rejected;
    w->st.dropped += rejected;
    w->st.batches++;
    w->st.healthy = true;
    pthread_cond_broadcast(&w->written);
    pthread_mutex_unlock(&w->mu);
    for (size_t i = 0; i < n; i++)
        verdict_free(batch[i]);
    note_success(w, n, queued);
    pthread_mutex_lock(&w->mu);
}

/* One prune batch, with mu held on entry and exit. Returns true when
 * there may be more to delete now. */
static bool prune_round(struct store_writer *w)
{
    int64_t before = tu_now_ms() - w->retention_ms;
    pthread_mutex_unlock(&w->mu);
    char err[512];
    int deleted = 0;
    bool more = false;
    if (w->s || store_open(w->path, 0, WRITER_BUSY_MS, &w->s, err, sizeof err) == 0) {
        if (store_prune_batch(w->s, before, PRUNE_BATCH, &deleted, err, sizeof err) < 0)
            log_msg(LOG_WARNING, "retention: %s; trying again later", err);
        else
            more = deleted == PRUNE_BATCH;
    }
    pthread_mutex_lock(&w->mu);
    w->pruned += (uint64_t)deleted;
    if (!more) {
        uint64_t total = w->pruned;
        int64_t days = w->retention_ms / 86400000;
        w->pruned = 0;
        w->next_prune_ms = tu_now_ms() + PRUNE_EVERY_MS;
        if (total) {
            /* never log under the lock submitters wait for */
            pthread_mutex_unlock(&w->mu);
            log_msg(LOG_INFO, "retention: %llu verdicts older than %lld days deleted",
                    (unsigned long long)total, (long long)days);
            pthread_mutex_lock(&w->mu);
        }
    }
    return more;
}

static void *writer_main(void *arg)
{
    struct store_writer *w = arg;
    struct verdict **batch = xcalloc(WRITER_BATCH, sizeof *batch);
    pthread_mutex_lock(&w->mu);
    for (;;) {
        while (!w->count && !w->stopping) {
            if (w->retention_ms > 0 && tu_now_ms() >= w->next_prune_ms) {
                prune_round(w);   /* verdicts queued meanwhile go first */
                continue;
            }
            if (w->retention_ms <= 0) {
                pthread_cond_wait(&w->wake, &w->mu);
            } else {
                struct timespec until = deadline_after(
                    (int)(w->next_prune_ms - tu_now_ms() > 60000 ? 60000
                                                                 : w->next_prune_ms - tu_now_ms()));
                pthread_cond_timedwait(&w->wake, &w->mu, &until);
            }
        }
        if (w->stopping)
            break;
        writer_round(w, batch);
    }
    pthread_mutex_unlock(&w->mu);
    if (w->recovering)
        log_recovered(w);
    store_close(w->s);
    w->s = NULL;
    free(batch);
    return NULL;
}

static void writer_free(struct store_writer *w)
{
    pthread_cond_destroy(&w->wake);
    pthread_cond_destroy(&w->written);
    pthread_mutex_destroy(&w->mu);
    free(w->ring);
    free(w->path);
    free(w);
}

struct store_writer *store_writer_start(const char *path, size_t capacity,
                                        int retry_ms)
{
    struct store_writer *w = xcalloc(1, sizeof *w);
    w->path = xstrdup(path ? path : "");
    w->cap = capacity ? capacity : 1;
    w->retry_ms = retry_ms > 0 ? retry_ms : 1000;
    w->ring = xcalloc(w->cap, sizeof *w->ring);
    w->st.healthy = true;
    pthread_mutex_init(&w->mu, NULL);
    /* monotonic: a clock step must not stretch or cut a timeout */
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&w->wake, &ca);
    pthread_cond_init(&w->written, &ca);
    pthread_condattr_destroy(&ca);
    int rc = pthread_create(&w->thread, NULL, writer_main, w);
    if (rc != 0) {
        log_msg(LOG_ERR, "cannot start the verdict writer thread: %s", strerror(rc));
        writer_free(w);
        return NULL;
    }
    return w;
}

void store_writer_set_retention(struct store_writer *w, int64_t retention_ms)
{
    if (!w)
        return;
    pthread_mutex_lock(&w->mu);
    w->retention_ms = retention_ms;
    w->next_prune_ms = tu_now_ms() + 10000;   /* soon after a start or reload */
    pthread_cond_signal(&w->wake);
    pthread_mutex_unlock(&w->mu);
}

bool store_writer_submit(struct store_writer *w, struct verdict *v)
{
    if (!v)
        return false;
    if (!w) {
        verdict_free(v);
        return false;
    }
    bool queued = false, first_drop = false;
    uint64_t resumed = 0;
    size_t cap = w->cap;
    pthread_mutex_lock(&w->mu);
    w->st.submitted++;
    if (w->count < w->cap && !w->stopping) {
        w->ring[(w->head + w->count) % w->cap] = v;
        w->count++;
        queued = true;
        if (w->drop_logged) {
            resumed = w->drop_run;
            w->drop_logged = false;
            w->drop_run = 0;
        }
        pthread_cond_signal(&w->wake);
    } else {
        w->st.dropped++;
        w->drop_run++;
        first_drop = !w->drop_logged;
        w->drop_logged = true;
    }
    pthread_mutex_unlock(&w->mu);
    if (!queued)
        verdict_free(v);
    if (first_drop)
        log_msg(LOG_ERR, "verdict queue full (%zu): dropping verdicts until the "
                "store catches up", cap);
    if (resumed)
        log_msg(LOG_NOTICE, "verdict queue has room again; %llu verdicts were dropped",
                (unsigned long long)resumed);
    return queued;
}

bool store_writer_flush(struct store_writer *w, int timeout_ms)
{
    if (!w)
        return true;
    struct timespec until = deadline_after(timeout_ms);
    pthread_mutex_lock(&w->mu);
    /* what is queued now; later submissions do not hold the flush up */
    uint64_t goal = w->retired + w->count;
    if (w->count) {
        w->kick = true;
        pthread_cond_signal(&w->wake);
    }
    while (w->retired < goal)
        if (pthread_cond_timedwait(&w->written, &w->mu, &until) == ETIMEDOUT)
            break;
    bool done = w->retired >= goal;
    pthread_mutex_unlock(&w->mu);
    return done;
}

void store_writer_stats(struct store_writer *w, struct store_writer_stats *out)
{
    if (!w) {
        memset(out, 0, sizeof *out);
        return;
    }
    pthread_mutex_lock(&w->mu);
    *out = w->st;
    out->queued = w->count;
    pthread_mutex_unlock(&w->mu);
}

void store_writer_stop(struct store_writer *w, int timeout_ms)
{
    if (!w)
        return;
    store_writer_flush(w, timeout_ms);
    pthread_mutex_lock(&w->mu);
    w->stopping = true;
    pthread_cond_signal(&w->wake);
    pthread_mutex_unlock(&w->mu);
    pthread_join(w->thread, NULL);
    if (w->count)
        log_msg(LOG_ERR, "verdict store: %zu queued verdicts lost at shutdown "
                "(the database stayed unavailable)", w->count);
    for (size_t i = 0; i < w->count; i++)
        verdict_free(w->ring[(w->head + i) % w->cap]);
    writer_free(w);
}
