/* kanjiki replay: run stored messages (.eml files, mbox files, directories
 * of them) through the snowshoe detector the milter uses, with each
 * message's own client address, HELO, PTR name and time recovered from its
 * headers (lib/mailmsg.h) and its own time as the clock. Prints one verdict
 * per message and a summary: what a policy would have done to old mail. */
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "cli.h"
#include "esc.h"
#include "mailmsg.h"
#include "sbuf.h"
#include "rules.h"
#include "snowshoe.h"
#include "table.h"
#include "timeutil.h"
#include "uri.h"
#include "xalloc.h"

#define PSL_PATH "/usr/share/publicsuffix/public_suffix_list.dat"
#define MAX_FILE (64u * 1024 * 1024)   /* a bigger file is skipped, said so */

static const char *help_text =
    "usage: kanjiki [-c FILE] replay [options] FILE|DIR...\n"
    "Run stored messages (.eml files, mbox files, directories of them) through\n"
    "the snowshoe detector, each with the client address, HELO, PTR name and\n"
    "time taken from its own headers (Received-SPF client-ip=, Authentication-\n"
    "Results sender IP, else the first Received: hop from a public address not\n"
    "in trusted_networks), in time order, and print each verdict and a summary.\n"
    "Actions follow the snowshoe thresholds and windows of the rules directory\n"
    "(built-in: tag 4.5, tempfail 8, reject 10, refusing only with a cluster).\n"
    "  --align           place every FILE|DIR argument after the first on the\n"
    "                    first one's time span (linearly), so mail of different\n"
    "                    years shares one timeline\n"
    "  --platforms FILE  shared platforms list (default RULES/platforms.list)\n"
    "  --tlds FILE       risky TLD list (default RULES/risky-tlds.list)\n"
    "  --format F        table (default on a terminal), json or csv\n"
    "  --summary         print only the summary\n";

struct item {
    char *path;          /* file, or "file#N" for the N-th message of an mbox */
    int group;           /* which command-line argument it came from */
    struct mailmsg m;
    char *text;          /* owned: the message text (m.body points into it) */
    size_t len;
    uint64_t body_fp;
};

struct replay {
    struct item *v;
    size_t n, cap;
    int group;
    const struct conf *conf;
    size_t skipped;
};

/* One line on stderr about path: escaped, since a file name (a maildir's,
 * an archive's) may hold anything. */
static void complain(const char *path, const char *what, const char *tail)
{
    struct sbuf b = SBUF_INIT;
    esc_text_s(&b, path);
    fprintf(stderr, "kanjiki replay: %s: %s%s\n", sbuf_str(&b), what, tail);
    sbuf_free(&b);
}

static void add_item(struct replay *r, const char *path, const char *text, size_t len)
{
    if (r->n == r->cap) {
        r->cap = r->cap ? r->cap * 2 : 256;
        r->v = xrealloc(r->v, r->cap * sizeof *r->v);
    }
    struct item *it = &r->v[r->n];
    memset(it, 0, sizeof *it);
    it->text = xmalloc(len + 1);
    memcpy(it->text, text, len);
    it->text[len] = 0;
    it->len = len;
    char err[160];
    if (mailmsg_parse(it->text, len, r->conf->trusted_networks, &it->m, err, sizeof err) < 0) {
        complain(path, err, " (skipped)");
        free(it->text);
        r->skipped++;
        return;
    }
    it->path = xstrdup(path);
    it->group = r->group;
    it->body_fp = mailmsg_body_fingerprint(it->m.body, it->m.body_len, it->m.content_type,
                                           it->m.cte);
    r->n++;
}

struct mbox_ctx {
    struct replay *r;
    const char *path;
    size_t i;
};

static int on_mbox_msg(const char *msg, size_t len, void *arg)
{
    struct mbox_ctx *c = arg;
    char name[4200];
    snprintf(name, sizeof name, "%.4000s#%zu", c->path, ++c->i);
    add_item(c->r, name, msg, len);
    return 0;
}

static int read_file(struct replay *r, const char *path)
{
    FILE *f = fopen(path, "rb");
    if (!f) {
        complain(path, strerror(errno), "");
        return -1;
    }
    struct sbuf b = SBUF_INIT;
    char buf[65536];
    size_t n;
    while ((n = fread(buf, 1, sizeof buf, f)) > 0 && b.len <= MAX_FILE)
        sbuf_add(&b, buf, n);
    bool err = ferror(f);
    fclose(f);
    if (err || b.len > MAX_FILE) {
        complain(path, err ? "read error" : "larger than 64 MiB", " (skipped)");
        sbuf_free(&b);
        r->skipped++;
        return 0;
    }
    if (b.len >= 5 && !memcmp(b.s, "From ", 5)) {
        struct mbox_ctx c = { r, path, 0 };
        mailmsg_split_mbox(b.s, b.len, on_mbox_msg, &c);
    } else {
        add_item(r, path, b.len ? b.s : "", b.len);
    }
    sbuf_free(&b);
    return 0;
}

static int by_name(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static int read_arg(struct replay *r, const char *path, int depth)
{
    struct stat st;
    if (stat(path, &st) < 0) {
        complain(path, strerror(errno), "");
        return -1;
    }
    if (!S_ISDIR(st.st_mode))
        return read_file(r, path);
    if (depth > 8)
        return 0;
    DIR *d = opendir(path);
    if (!d) {
        complain(path, strerror(errno), "");
        return -1;
    }
    char **names = NULL;
    size_t n = 0;
    struct dirent *e;
    while ((e = readdir(d))) {
        if (e->d_name[0] == '.')
            continue;
        names = xrealloc(names, (n + 1) * sizeof *names);
        size_t len = strlen(path) + strlen(e->d_name) + 2;
        names[n] = xmalloc(len);
        snprintf(names[n++], len, "%s/%s", path, e->d_name);
    }
    closedir(d);
    qsort(names, n, sizeof *names, by_name);
    int rc = 0;
    for (size_t i = 0; i < n; i++) {
        if (read_arg(r, names[i], depth + 1) < 0)
            rc = -1;
        free(names[i]);
    }
    free(names);
    return rc;
}

/* Map every group after the first onto the first group's time span. */
static void align(struct replay *r)
{
    int64_t lo[2] = { INT64_MAX, INT64_MAX }, hi[2] = { INT64_MIN, INT64_MIN };
    for (int g = 0; g < r->group; g++) {
        int64_t glo = INT64_MAX, ghi = INT64_MIN;
        for (size_t i = 0; i < r->n; i++)
            if (r->v[i].group == g && r->v[i].m.time_ms) {
                glo = r->v[i].m.time_ms < glo ? r->v[i].m.time_ms : glo;
                ghi = r->v[i].m.time_ms > ghi ? r->v[i].m.time_ms : ghi;
            }
        if (g == 0) {
            lo[0] = glo;
            hi[0] = ghi;
            continue;
        }
        lo[1] = glo;
        hi[1] = ghi;
        if (lo[0] == INT64_MAX || lo[1] == INT64_MAX)
            continue;
        double scale = hi[1] > lo[1] ? (double)(hi[0] - lo[0]) / (double)(hi[1] - lo[1]) : 0;
        for (size_t i = 0; i < r->n; i++)
            if (r->v[i].group == g && r->v[i].m.time_ms)
                r->v[i].m.time_ms =
                    lo[0] + (int64_t)((double)(r->v[i].m.time_ms - lo[1]) * scale);
    }
}

static int by_time(const void *a, const void *b)
{
    const struct item *x = a, *y = b;
    if (x->m.time_ms != y->m.time_ms)
        return x->m.time_ms < y->m.time_ms ? -1 : 1;
    return strcmp(x->path, y->path);
}

static const char *domain_of(const char *addr)
{
    const char *at = addr ? strrchr(addr, '@') : NULL;
    return at && at[1] ? at + 1 : NULL;
}

static const struct table_col cols[] = {
    { "time", TABLE_COL_TEXT, 0 },   { "file", TABLE_COL_TEXT, 40 },
    { "client", TABLE_COL_TEXT, 0 }, { "block", TABLE_COL_TEXT, 0 },
    { "sender", TABLE_COL_TEXT, 36 }, { "domain", TABLE_COL_TEXT, 24 },
    { "score", TABLE_COL_JSON, 0 },
    { "action", TABLE_COL_TEXT, 0 }, { "signals", TABLE_COL_JSON, 80 },
};
#define NCOLS (sizeof cols / sizeof cols[0])

static char *signals_text(const struct snowshoe_result *res, bool json)
{
    struct sbuf b = SBUF_INIT;
    if (json)
        sbuf_addc(&b, '[');
    for (size_t i = 0; i < res->n; i++) {
        if (json) {
            sbuf_addf(&b, "%s{\"signal\":\"%s\",\"weight\":%g,\"detail\":", i ? "," : "",
                      res->c[i].signal, res->c[i].weight);
            esc_json_s(&b, res->c[i].detail);
            sbuf_addc(&b, '}');
        } else {
            sbuf_addf(&b, "%s%s%+g", i ? " " : "", res->c[i].signal, res->c[i].weight);
        }
    }
    if (json)
        sbuf_addc(&b, ']');
    return sbuf_take(&b);
}

int cmd_replay(struct cli_ctx *ctx, int argc, char **argv)
{
    enum cli_format fmt = ctx->tty ? CLI_FMT_TABLE : CLI_FMT_JSON;
    bool want_align = false, summary_only = false;
    const char *platforms = NULL, *tlds = NULL;
    int first = argc;
    for (int i = 1; i < argc; i++) {
        const char *o = argv[i];
        if (!strcmp(o, "-h") || !strcmp(o, "--help")) {
            fputs(help_text, stdout);
            return 0;
        } else if (!strcmp(o, "--align")) {
            want_align = true;
        } else if (!strcmp(o, "--summary")) {
            summary_only = true;
        } else if ((!strcmp(o, "--platforms") || !strcmp(o, "--tlds") ||
                    !strcmp(o, "--format")) && i + 1 < argc) {
            const char *v = argv[++i];
            if (o[2] == 'p')
                platforms = v;
            else if (o[2] == 't')
                tlds = v;
            else if (cli_parse_format(v, &fmt) < 0) {
                fprintf(stderr, "kanjiki replay: bad format '%s'\n", v);
                return 2;
            }
        } else if (o[0] == '-' && o[1]) {
            fprintf(stderr, "kanjiki replay: unknown option %s\n%s", o, help_text);
            return 2;
        } else {
            first = i;
            break;
        }
    }
    if (first >= argc) {
        fprintf(stderr, "kanjiki replay: no FILE or DIR given\n%s", help_text);
        return 2;
    }

    /* the same lists the milter uses: from the rules directory */
    char ppath[4200], tpath[4200], err[512];
    const char *rdir = ctx->conf->rules_dir;
    if (!platforms && rdir) {
        snprintf(ppath, sizeof ppath, "%s/platforms.list", rdir);
        platforms = ppath;
    }
    if (!tlds && rdir) {
        snprintf(tpath, sizeof tpath, "%s/risky-tlds.list", rdir);
        tlds = tpath;
    }
    struct snowshoe_platforms plat = { 0 };
    if (platforms && snowshoe_platforms_load(platforms, &plat, err, sizeof err) < 0) {
        fprintf(stderr, "kanjiki replay: %s%s\n", err,
                platforms == ppath ? " (shared platforms are then not recognised)" : "");
        if (platforms != ppath)
            return 1;
    }
    struct snowsig_tlds *tl = tlds ? snowsig_tlds_load(tlds, err, sizeof err) : NULL;
    if (tlds && !tl) {
        fprintf(stderr, "kanjiki replay: %s\n", err);
        if (tlds != tpath) {
            snowshoe_platforms_clear(&plat);
            return 1;
        }
    }
    /* the rules' snowshoe thresholds and windows, as in the milter */
    struct ruleset *rules = NULL;
    if (rdir && rules_load_dir(rdir, &rules, err, sizeof err) < 0) {
        fprintf(stderr, "kanjiki replay: %s\n", err);
        snowshoe_platforms_clear(&plat);
        snowsig_tlds_free(tl);
        return 1;
    }
    err[0] = 0;
    struct psl *psl = psl_load(PSL_PATH, err, sizeof err);
    if (err[0])
        fprintf(stderr, "kanjiki replay: public suffix list: %s\n", err);

    struct replay r = { .conf = ctx->conf };
    int rc = 0;
    for (int i = first; i < argc; i++, r.group++)
        if (read_arg(&r, argv[i], 0) < 0)
            rc = 1;
    if (want_align)
        align(&r);
    qsort(r.v, r.n, sizeof *r.v, by_time);

    struct snowshoe_cfg cfg;
    snowshoe_cfg_defaults(&cfg);
    rules_snowshoe_cfg(rules, &cfg);
    cfg.psl = psl;
    cfg.tlds = tl;
    cfg.platform_nets = plat.nets;
    cfg.platform_ptrs = (const char *const *)plat.ptrs;
    struct snowshoe *ss = snowshoe_new(&cfg);
    struct table *t = table_new(cols, NCOLS);
    size_t counts[VERDICT_ACTION_COUNT] = { 0 }, no_ip = 0, cluster = 0, platform = 0;
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    for (size_t i = 0; i < r.n; i++) {
        struct item *it = &r.v[i];
        struct ip client;
        bool have_ip = it->m.client_ip && ip_parse(it->m.client_ip, &client) == 0;
        no_ip += !have_ip;
        struct snowshoe_msg sm = {
            .time_ms = it->m.time_ms,
            .client = have_ip ? &client : NULL,
            .helo = it->m.helo,
            .ptr = it->m.ptr,
            .ptr_confirmed = it->m.ptr != NULL,   /* as the receiver recorded it */
            .env_domain = domain_of(it->m.env_sender),
            .from_domain = it->m.from_domain,
            .msgid_domain = it->m.msgid_domain,
            .subject = it->m.subject,
            .display = it->m.from_display,
            .body_fp = it->body_fp,
        };
        struct snowshoe_result res;
        snowshoe_eval(ss, &sm, &res);
        const struct rules_threshold *th =
            rules_snowshoe_threshold_for(rules, res.score, res.cluster);
        enum verdict_action a = th ? th->action : VERDICT_ACCEPT;
        if (a >= VERDICT_TAG && a != VERDICT_TEMPFAIL)
            snowshoe_spam(ss, &sm, &res);
        counts[a]++;
        cluster += res.cluster;
        platform += res.platform;
        if (summary_only)
            continue;
        char when[40], score[32];
        if (fmt == CLI_FMT_TABLE)
            tu_format_local(it->m.time_ms, when, sizeof when);
        else
            tu_format_iso_ms(it->m.time_ms, when, sizeof when);
        snprintf(score, sizeof score, "%.2f", res.score);
        char *sig = signals_text(&res, fmt == CLI_FMT_JSON);
        const char *cells[NCOLS] = { it->m.time_ms ? when : NULL, it->path, it->m.client_ip,
                                     res.block[0] ? res.block : NULL,
                                     it->m.env_sender ? it->m.env_sender : it->m.from_addr,
                                     res.domain[0] ? res.domain : NULL, score, verdict_action_name(a), sig };
        table_add(t, cells);
        free(sig);
    }
    clock_gettime(CLOCK_MONOTONIC, &t1);
    if (!summary_only)
        table_print(t, fmt, stdout);
    table_free(t);
    struct snowshoe_stats st;
    snowshoe_get_stats(ss, &st);
    double us = ((double)(t1.tv_sec - t0.tv_sec) * 1e9 + (double)(t1.tv_nsec - t0.tv_nsec)) /
                1e3 / (double)(r.n ? r.n : 1);
    FILE *out = summary_only || fmt == CLI_FMT_TABLE ? stdout : stderr;
    fprintf(out, "replayed %zu messages (%zu skipped, %zu without a client address): "
            "accept %zu, tag %zu, quarantine %zu, tempfail %zu, reject %zu; cluster signals "
            "on %zu, shared platforms %zu; detector %.1f us/message, %zu blocks and %zu "
            "domains tracked in about %zu KiB\n",
            r.n, r.skipped, no_ip, counts[VERDICT_ACCEPT], counts[VERDICT_TAG],
            counts[VERDICT_QUARANTINE], counts[VERDICT_TEMPFAIL], counts[VERDICT_REJECT],
            cluster, platform, us, st.blocks,
            st.domains, st.bytes / 1024);
    snowshoe_free(ss);
    rules_free(rules);
    for (size_t i = 0; i < r.n; i++) {
        mailmsg_clear(&r.v[i].m);
        free(r.v[i].text);
        free(r.v[i].path);
    }
    free(r.v);
    psl_free(psl);
    snowsig_tlds_free(tl);
    snowshoe_platforms_clear(&plat);
    return rc;
}
