/* bench_snowshoe: the snowshoe detector's cost per message and memory per
 * tracked block, on synthetic traffic (no corpus needed): a flood of
 * one-off servers from distinct /24s (HELO = PTR name), snowshoe blocks
 * rotating addresses, HELO names and random domains, and a few legitimate
 * farms. Prints "metric value
 * unit" lines; a measurement, never a pass/fail.
 *
 *   bench_snowshoe [MESSAGES]      (default 400000) */
#include <malloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "snowshoe.h"

static double now_s(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

static size_t heap_used(void)
{
    struct mallinfo2 mi = mallinfo2();
    return mi.uordblks + mi.hblkhd;
}

/* xorshift: the same traffic on every run */
static unsigned long long rng = 88172645463325252ULL;
static unsigned rnd(void)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return (unsigned)(rng >> 11);
}

static void label(char *out, size_t n)
{
    static const char cs[] = "abcdefghijklmnopqrstuvwxyz0123456789";
    size_t len = 6 + rnd() % 8;
    for (size_t i = 0; i < len && i + 1 < n; i++)
        out[i] = cs[rnd() % 36];
    out[len < n ? len : n - 1] = '\0';
}

int main(int argc, char **argv)
{
    long total = argc > 1 ? atol(argv[1]) : 400000;
    if (total < 1000)
        total = 1000;
    size_t heap0 = heap_used();
    struct snowshoe_cfg cfg;
    snowshoe_cfg_defaults(&cfg);
    struct snowshoe *s = snowshoe_new(&cfg);
    int64_t t = 1700000000000LL;
    double busy = 0;
    long flagged = 0;
    for (long i = 0; i < total; i++) {
        char ip[48], helo[128], dom[96], lab[24], subj[64];
        unsigned kind = rnd() % 10;
        const char *ptr = NULL;
        if (kind < 7) {          /* one-off servers all over the address space */
            static const char *const words[] = { "garden", "office", "school", "tools",
                                                 "travel", "books", "music", "print" };
            snprintf(ip, sizeof ip, "%u.%u.%u.%u", 11 + rnd() % 200, rnd() % 256, rnd() % 256,
                     1 + rnd() % 254);
            snprintf(dom, sizeof dom, "%s%u.example", words[rnd() % 8], rnd() % 100000);
            snprintf(helo, sizeof helo, "mail.%s", dom);
            ptr = helo;
        } else if (kind < 9) {   /* 500 snowshoe blocks, rotating everything */
            unsigned b = rnd() % 500;
            snprintf(ip, sizeof ip, "198.%u.%u.%u", 18 + b / 256 % 2, b % 256, 2 + rnd() % 250);
            label(lab, sizeof lab);
            snprintf(dom, sizeof dom, "%s.pink", lab);
            snprintf(helo, sizeof helo, "ary%03u.localhost", rnd() % 1000);
        } else {                 /* 20 legitimate farms, HELO = PTR */
            unsigned f = rnd() % 20, h = rnd() % 8;
            snprintf(ip, sizeof ip, "192.0.%u.%u", f, 10 + h);
            snprintf(dom, sizeof dom, "farm%u.example.com", f);
            snprintf(helo, sizeof helo, "out%u.farm%u.example.com", h, f);
            ptr = helo;
        }
        snprintf(subj, sizeof subj, "Subject %u", rnd() % 5000);
        struct ip a;
        if (ip_parse(ip, &a) < 0)
            continue;
        struct snowshoe_msg m = { .time_ms = t, .client = &a, .helo = helo, .ptr = ptr,
                                  .ptr_confirmed = ptr != NULL, .env_domain = dom,
                                  .from_domain = dom, .subject = subj,
                                  .body_fp = ((uint64_t)rnd() << 32) | rnd() };
        struct snowshoe_result r;
        double t0 = now_s();
        snowshoe_eval(s, &m, &r);
        if (r.score >= SNOWSHOE_TAG) {
            snowshoe_spam(s, &m, &r);
            flagged++;
        }
        busy += now_s() - t0;
        t += 2000;   /* one message every 2 s of mail time */
    }
    struct snowshoe_stats st;
    snowshoe_get_stats(s, &st);
    size_t heap = heap_used() - heap0;
    printf("snowshoe_messages %ld messages\n", total);
    printf("snowshoe_cost %.2f us/message\n", busy * 1e6 / (double)total);
    printf("snowshoe_rate %.0f messages/s\n", (double)total / busy);
    printf("snowshoe_flagged %ld messages\n", flagged);
    printf("snowshoe_tracked %zu blocks, %zu domains, %zu fingerprints, %zu /16s\n",
           st.blocks, st.domains, st.prints, st.wides);
    printf("snowshoe_heap %.1f MiB\n", (double)heap / 1048576.0);
    printf("snowshoe_estimate %.1f MiB\n", (double)st.bytes / 1048576.0);
    /* blocks dominate: heap over the number of blocks, the rest included */
    printf("snowshoe_per_block %.2f KiB (heap / tracked blocks, domains and prints included)\n",
           (double)heap / 1024.0 / (double)(st.blocks ? st.blocks : 1));
    snowshoe_free(s);
    return 0;
}
