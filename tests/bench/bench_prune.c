/* bench_prune: `kanjiki prune` on a large database while kanjiki-milter's
 * writer keeps writing. A database of N old verdicts (each with a lookup),
 * a store_writer fed one verdict at a time (each followed by a flush, so the
 * time a verdict waits for the disk is measured), first alone, then while
 * another connection deletes the old ones 500 at a time as `kanjiki prune`
 * does. Prints "metric value unit" lines, then checks that no verdict was
 * lost (exit 1 if one was). A measurement: the figures never fail it.
 *
 *   bench_prune [N]     (default 200000) */
#include <pthread.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "store.h"
#include "timeutil.h"

static struct verdict *mk(int64_t t, int i)
{
    struct verdict *v = verdict_new(VERDICT_KIND_RCPT);
    char ip[32];
    snprintf(ip, sizeof ip, "192.0.2.%d", i % 250 + 1);
    v->time_ms = t;
    verdict_set(&v->client_ip, ip);
    verdict_set(&v->helo, "bench.example");
    verdict_set(&v->sender, "a@example.org");
    verdict_set(&v->rcpt, "v@example.net");
    v->stage = VSTAGE_RCPT;
    v->action = VERDICT_REJECT;
    verdict_add_reason(v, "relay", "relay_denied", "bench");
    struct verdict_lookup l = { 0 };
    l.zone = "bl.example";
    l.kind = "ip";
    l.outcome = "clean";
    verdict_add_lookup(v, &l);
    return v;
}

static int cmp_i64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return x < y ? -1 : x > y;
}

struct feed {
    struct store_writer *w;
    volatile int stop;
    int64_t lat[200000];
    size_t n;
};

/* One verdict, then wait until it is on disk: how long a verdict waits. */
static void *feeder(void *arg)
{
    struct feed *f = arg;
    while (!f->stop && f->n < sizeof f->lat / sizeof f->lat[0]) {
        int64_t t0 = tu_now_ms();
        store_writer_submit(f->w, mk(t0, (int)f->n));
        store_writer_flush(f->w, 30000);
        f->lat[f->n++] = tu_now_ms() - t0;
        usleep(2000);
    }
    return NULL;
}

static void report(const char *what, struct feed *f)
{
    qsort(f->lat, f->n, sizeof f->lat[0], cmp_i64);
    printf("%s_verdicts %zu\n", what, f->n);
    if (!f->n)
        return;
    printf("%s_wait_p50 %lld ms\n", what, (long long)f->lat[f->n / 2]);
    printf("%s_wait_p99 %lld ms\n", what, (long long)f->lat[f->n * 99 / 100]);
    printf("%s_wait_max %lld ms\n", what, (long long)f->lat[f->n - 1]);
}

int main(int argc, char **argv)
{
    long n = argc > 1 ? atol(argv[1]) : 200000;
    char path[] = "/tmp/kanjiki-bench-prune-XXXXXX";
    int fd = mkstemp(path);
    if (fd < 0)
        return 2;
    close(fd);
    unlink(path);
    struct store *s;
    char err[512];
    if (store_open(path, 0, 5000, &s, err, sizeof err) < 0) {
        fprintf(stderr, "bench_prune: %s\n", err);
        return 2;
    }
    int64_t old = tu_now_ms() - 200LL * 86400000;
    int64_t t0 = tu_now_ms();
    for (long i = 0; i < n; i++) {
        if (i % 10000 == 0)
            sqlite3_exec(store_db(s), i ? "COMMIT; BEGIN" : "BEGIN", NULL, NULL, NULL);
        struct verdict *v = mk(old + i, (int)i);
        store_insert_verdict(s, v, err, sizeof err);
        verdict_free(v);
    }
    sqlite3_exec(store_db(s), "COMMIT", NULL, NULL, NULL);
    printf("prune_fill %ld verdicts in %lld ms\n", n, (long long)(tu_now_ms() - t0));

    struct store_writer *w = store_writer_start(path, 100000, 100);
    static struct feed base, during;
    base.w = during.w = w;
    pthread_t th;
    /* alone, for 2 seconds */
    pthread_create(&th, NULL, feeder, &base);
    sleep(2);
    base.stop = 1;
    pthread_join(th, NULL);
    /* while the old verdicts are deleted as kanjiki prune does */
    pthread_create(&th, NULL, feeder, &during);
    int64_t p0 = tu_now_ms(), worst = 0;
    long deleted = 0;
    for (;;) {
        int d = 0;
        int64_t b0 = tu_now_ms();
        if (store_prune_batch(s, tu_now_ms() - 90LL * 86400000, 500, &d, err, sizeof err) < 0) {
            fprintf(stderr, "bench_prune: %s\n", err);
            break;
        }
        if (tu_now_ms() - b0 > worst)
            worst = tu_now_ms() - b0;
        deleted += d;
        if (d < 500)
            break;
        usleep(10000);
    }
    int64_t took = tu_now_ms() - p0;
    during.stop = 1;
    pthread_join(th, NULL);
    store_writer_stop(w, 30000);
    printf("prune_deleted %ld verdicts in %lld ms (%.0f/s), longest batch %lld ms\n", deleted,
           (long long)took, took ? deleted * 1000.0 / (double)took : 0.0, (long long)worst);
    report("alone", &base);
    report("during_prune", &during);

    /* nothing lost: every fed verdict is there, every old one is gone */
    sqlite3_stmt *st;
    long have = -1, left = -1;
    sqlite3_prepare_v2(store_db(s), "SELECT count(*) FROM verdicts WHERE time_ms >= ?1", -1, &st,
                       NULL);
    sqlite3_bind_int64(st, 1, old + n);
    if (sqlite3_step(st) == SQLITE_ROW)
        have = (long)sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
    sqlite3_prepare_v2(store_db(s), "SELECT count(*) FROM verdicts WHERE time_ms < ?1", -1, &st,
                       NULL);
    sqlite3_bind_int64(st, 1, old + n);
    if (sqlite3_step(st) == SQLITE_ROW)
        left = (long)sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
    store_close(s);
    char wal[64], shm[64];
    snprintf(wal, sizeof wal, "%s-wal", path);
    snprintf(shm, sizeof shm, "%s-shm", path);
    unlink(path);
    unlink(wal);
    unlink(shm);
    long fed = (long)(base.n + during.n);
    printf("prune_check fed %ld, stored %ld, old left %ld: %s\n", fed, have, left,
           have == fed && left == 0 ? "nothing lost" : "MISMATCH");
    return have == fed && left == 0 ? 0 : 1;
}
