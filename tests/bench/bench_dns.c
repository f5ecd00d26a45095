/* bench_dns: throughput and deadline behaviour of lib/dns.c.
 *
 *   bench_dns                          against a DNS server in this process
 *   bench_dns SERVER ZONE [SILENT]     against SERVER ("IP", "IP:PORT",
 *                                      "[IPv6]:PORT"): names under ZONE must
 *                                      answer; SILENT is a name that never
 *                                      answers (skipped when not given)
 *
 * Environment: BENCH_THREADS (8), BENCH_NAMES (1000), BENCH_BATCH (200),
 * BENCH_SECONDS (1) for the cache run.
 *
 * Prints "metric value unit" lines:
 *   cache_lookups_per_s     answered from the cache, BENCH_THREADS threads
 *   cache_lookups_1t_per_s  the same on one thread
 *   server_lookups_per_s    distinct names, BENCH_BATCH in flight at a time
 *   server_latency_p50_ms / _p99_ms, server_timeouts
 *   parallel6_wall_ms       6 queries at once, one of them to a name that
 *                           never answers, all with a 1 s deadline: about
 *                           1000 (one deadline), not 6 x 1000
 *   parallel6_timeouts      how many of the 6 timed out (1 expected) */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "dns.h"

/* ---- an in-process server: A 127.0.0.2 (TTL 300) for every name, except
 * names starting with "silent." which get no answer ---- */

struct server {
    int fd, stop[2], port;
    pthread_t th;
    atomic_long answered;
};

static void *server_main(void *arg)
{
    struct server *s = arg;
    for (;;) {
        struct pollfd p[2] = { { s->fd, POLLIN, 0 }, { s->stop[0], POLLIN, 0 } };
        if (poll(p, 2, -1) < 0)
            continue;
        if (p[1].revents)
            return NULL;
        unsigned char q[512], out[600];
        struct sockaddr_in from;
        socklen_t fl = sizeof from;
        ssize_t n = recvfrom(s->fd, q, sizeof q, 0, (struct sockaddr *)&from, &fl);
        if (n < 17 || q[4] != 0 || q[5] != 1)
            continue;
        size_t off = 12;
        while (off < (size_t)n && q[off])
            off += 1 + q[off];
        if (off + 5 > (size_t)n)
            continue;
        off += 5;   /* root label, type, class */
        if (q[12] == 6 && !memcmp(q + 13, "silent", 6))
            continue;
        bool is_a = q[off - 4] == 0 && q[off - 3] == 1;
        memcpy(out, q, off);
        out[2] = (unsigned char)(0x80 | (q[2] & 0x79));
        out[3] = 0x80;
        out[6] = 0;
        out[7] = is_a ? 1 : 0;
        out[8] = out[9] = out[10] = out[11] = 0;
        size_t len = off;
        if (is_a) {
            static const unsigned char rr[] = { 0xc0, 0x0c, 0, 1, 0, 1, 0, 0, 1, 44,
                                                0, 4, 127, 0, 0, 2 };
            memcpy(out + len, rr, sizeof rr);
            len += sizeof rr;
        }
        sendto(s->fd, out, len, 0, (struct sockaddr *)&from, fl);
        atomic_fetch_add(&s->answered, 1);
    }
}

static int server_start(struct server *s)
{
    memset(s, 0, sizeof *s);
    s->fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    int big = 4 << 20;   /* best effort: bursts of queries */
    setsockopt(s->fd, SOL_SOCKET, SO_RCVBUF, &big, sizeof big);
    struct sockaddr_in a = { .sin_family = AF_INET };
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t al = sizeof a;
    if (s->fd < 0 || bind(s->fd, (struct sockaddr *)&a, sizeof a) < 0 ||
        getsockname(s->fd, (struct sockaddr *)&a, &al) < 0 || pipe(s->stop) < 0)
        return -1;
    s->port = ntohs(a.sin_port);
    return pthread_create(&s->th, NULL, server_main, s) == 0 ? 0 : -1;
}

static void server_stop(struct server *s)
{
    if (write(s->stop[1], "x", 1) != 1)
        return;
    pthread_join(s->th, NULL);
    close(s->fd);
    close(s->stop[0]);
    close(s->stop[1]);
}

/* ---- the runs ---- */

static long env_long(const char *name, long dflt)
{
    const char *v = getenv(name);
    long n = v ? strtol(v, NULL, 10) : 0;
    return n > 0 ? n : dflt;
}

struct hot {
    struct dns *d;
    const char *zone;
    int64_t until;
    long done, missed;
};

#define HOT_NAMES 64

static void *hot_loop(void *arg)
{
    struct hot *h = arg;
    char name[300];
    for (long i = 0; dns_now_ms() < h->until; i++) {
        for (int k = 0; k < 256; k++, i++) {
            snprintf(name, sizeof name, "hot%ld.%s", i % HOT_NAMES, h->zone);
            int64_t dl = dns_now_ms() + 1000;
            struct dns_req *r = dns_query(h->d, name, DNS_T_A, dl);
            const struct dns_result *res = dns_wait(r, dl);
            if (!res || !res->cached)
                h->missed++;
            dns_req_free(r);
            h->done++;
        }
    }
    return NULL;
}

static double cache_run(struct dns *d, const char *zone, int nthreads, long secs)
{
    pthread_t th[64];
    struct hot h[64];
    if (nthreads > 64)
        nthreads = 64;
    int64_t t0 = dns_now_ms();
    for (int i = 0; i < nthreads; i++) {
        h[i] = (struct hot){ d, zone, t0 + secs * 1000, 0, 0 };
        pthread_create(&th[i], NULL, hot_loop, &h[i]);
    }
    long total = 0, missed = 0;
    for (int i = 0; i < nthreads; i++) {
        pthread_join(th[i], NULL);
        total += h[i].done;
        missed += h[i].missed;
    }
    double took = (double)(dns_now_ms() - t0) / 1000.0;
    if (missed)
        fprintf(stderr, "bench_dns: %ld of %ld hot lookups were not cache hits\n", missed, total);
    return (double)total / took;
}

static int cmp_i64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return x < y ? -1 : x > y;
}

int main(int argc, char **argv)
{
    int nthreads = (int)env_long("BENCH_THREADS", 8);
    long nnames = env_long("BENCH_NAMES", 1000);
    long batch = env_long("BENCH_BATCH", 200);
    long secs = env_long("BENCH_SECONDS", 1);
    if (argc == 2 || argc > 4) {
        fprintf(stderr, "usage: bench_dns [SERVER ZONE [SILENT-NAME]]\n");
        return 2;
    }
    struct server srv;
    char addr[300];
    const char *zone = "bench.test";
    char silent[300] = "silent.bench.test";
    bool local = argc == 1;
    if (local) {
        if (server_start(&srv) < 0) {
            perror("bench_dns: server");
            return 1;
        }
        snprintf(addr, sizeof addr, "127.0.0.1:%d", srv.port);
    } else {
        snprintf(addr, sizeof addr, "%s", argv[1]);
        zone = argv[2];
        snprintf(silent, sizeof silent, "%s", argc == 4 ? argv[3] : "");
    }
    const char *servers[] = { addr };
    struct dns_config cfg = { servers, 1, 2000, 1, 100000, 3600 };
    char err[256];
    struct dns *d = dns_new(&cfg, err, sizeof err);
    if (!d) {
        fprintf(stderr, "bench_dns: %s\n", err);
        return 1;
    }

    /* 1. cache hits */
    char name[300];
    for (int i = 0; i < HOT_NAMES; i++) {
        snprintf(name, sizeof name, "hot%d.%s", i, zone);
        int64_t dl = dns_now_ms() + 3000;
        struct dns_req *r = dns_query(d, name, DNS_T_A, dl);
        const struct dns_result *res = dns_wait(r, dl);
        if (!res || res->status != DNS_OK)
            fprintf(stderr, "bench_dns: warm-up %s: %s\n", name,
                    res ? dns_status_name(res->status) : "bad name");
        dns_req_free(r);
    }
    printf("cache_lookups_per_s %.0f lookups/s\n", cache_run(d, zone, nthreads, secs));
    printf("cache_lookups_1t_per_s %.0f lookups/s\n", cache_run(d, zone, 1, secs));
    printf("cache_threads %d threads\n", nthreads);

    /* 2. distinct names from the server, batch at a time in flight */
    struct dns_req **rs = calloc((size_t)batch, sizeof *rs);
    int64_t *lat = calloc((size_t)nnames, sizeof *lat);
    long timeouts = 0, other = 0, nlat = 0;
    unsigned run = (unsigned)getpid() ^ (unsigned)dns_now_ms();
    int64_t t0 = dns_now_ms();
    for (long done = 0; done < nnames;) {
        long n = nnames - done < batch ? nnames - done : batch;
        int64_t dl = dns_now_ms() + 5000;
        for (long i = 0; i < n; i++) {
            snprintf(name, sizeof name, "d%x-%ld.%s", run, done + i, zone);
            rs[i] = dns_query(d, name, DNS_T_A, dl);
        }
        for (long i = 0; i < n; i++) {
            const struct dns_result *res = dns_wait(rs[i], dl);
            if (!res || res->status == DNS_TIMEOUT)
                timeouts++;
            else if (res->status != DNS_OK && res->status != DNS_NXDOMAIN)
                other++;
            else
                lat[nlat++] = res->latency_ms;
            dns_req_free(rs[i]);
        }
        done += n;
    }
    double took = (double)(dns_now_ms() - t0) / 1000.0;
    qsort(lat, (size_t)nlat, sizeof *lat, cmp_i64);
    printf("server_lookups_per_s %.0f lookups/s\n", (double)nnames / took);
    printf("server_names %ld names\n", nnames);
    printf("server_batch %ld in_flight\n", batch);
    printf("server_latency_p50_ms %lld ms\n", nlat ? (long long)lat[nlat / 2] : -1LL);
    printf("server_latency_p99_ms %lld ms\n", nlat ? (long long)lat[nlat * 99 / 100] : -1LL);
    printf("server_timeouts %ld lookups\n", timeouts);
    printf("server_other_failures %ld lookups\n", other);
    free(rs);
    free(lat);

    /* 3. six at once, one never answered: the wait is one deadline long */
    if (silent[0]) {
        struct dns_req *six[6];
        int64_t s0 = dns_now_ms(), dl = s0 + 1000;
        for (int i = 0; i < 5; i++) {
            snprintf(name, sizeof name, "p%x-%d.%s", run, i, zone);
            six[i] = dns_query(d, name, DNS_T_A, dl);
        }
        six[5] = dns_query(d, silent, DNS_T_A, dl);
        int tmo = 0;
        for (int i = 0; i < 6; i++) {
            const struct dns_result *res = dns_wait(six[i], dl);
            tmo += !res || res->status == DNS_TIMEOUT;
        }
        printf("parallel6_wall_ms %lld ms\n", (long long)(dns_now_ms() - s0));
        printf("parallel6_timeouts %d lookups\n", tmo);
        for (int i = 0; i < 6; i++)
            dns_req_free(six[i]);
    }

    struct dns_stats st;
    dns_get_stats(d, &st);
    printf("stats_queries %llu queries\n", (unsigned long long)st.queries);
    printf("stats_cache_hits %llu queries\n", (unsigned long long)st.cache_hits);
    printf("stats_sent %llu packets\n", (unsigned long long)st.sent);
    dns_free(d);
    if (local)
        server_stop(&srv);
    return 0;
}
