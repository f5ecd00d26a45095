/* spf: see spf.h.
 *
 * Each spf_check builds its own libspf2 SPF_server_t around its own DNS
 * layer (struct spf_call on the stack, reached through the layer's hook).
 * Nothing of libspf2's is shared between threads, so its thread safety is
 * never relied on, and a libspf2 internal error (see spf_error_cb) can
 * abandon that call's objects without harming any other check. The cost,
 * SPF_server_new_dns (which compiles the default explanation and local
 * policy) + set_rec_dom + set_explanation + SPF_server_free, measured
 * about 1.4 microseconds per check (a whole zone-backed check: about 13),
 * is nothing next to one DNS round trip.
 *
 * The layer, not libspf2, enforces RFC 7208 4.6.4 for the whole evaluation:
 * libspf2 counts DNS mechanisms per record (each include starts again at
 * 0) and has no void-lookup limit, so a hostile record tree could make us
 * send hundreds of queries. The layer counts terms (TXT after the first,
 * MX, PTR, A/AAAA that are not the address lookups of an MX or PTR answer)
 * and void answers; past a limit it refuses every further lookup and the
 * result becomes permerror. The same refusal (TRY_AGAIN to libspf2) is used
 * once the deadline has passed, which libspf2 turns into temperror at
 * once. */
#include "spf.h"

#include <stddef.h>
#include <sys/types.h>
#include <netinet/in.h>
#include <arpa/inet.h>
#include <arpa/nameser.h>
#include <netdb.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* libspf2's headers are not self-contained: they need the above first */
#include <spf2/spf.h>
#include <spf2/spf_dns.h>
#include <spf2/spf_dns_zone.h>

#include "dnsbl.h"
#include "errbuf.h"
#include "esc.h"
#include "log.h"
#include "sbuf.h"
#include "xalloc.h"

#define SPF_TERMS_MAX 10       /* RFC 7208 4.6.4: DNS-querying terms */
#define SPF_VOIDS_MAX 2        /* RFC 7208 4.6.4: void lookups */
#define SPF_TARGETS_MAX 10     /* libspf2 resolves at most 10 MX/PTR names */
#define SPF_RECORD_MAX 2048    /* longer "v=spf1" records are refused */
#define SPF_LOCAL_MAX 64       /* RFC 5321 4.5.3.1.1 */
#define SPF_ZONE_LIBERR (-999) /* test zone: make libspf2 hit SPF_error */

struct spf {
    struct dns *dns;          /* NULL with a test zone */
    SPF_dns_server_t *zone;   /* spf_new_zone: libspf2's static zone */
    char host[256];           /* receiving host, validated */
};

/* One spf_check's state, reached from the DNS layer through its hook. */
struct spf_call {
    const struct spf *s;
    int64_t deadline;
    int lookups;              /* queries answered (cache hits included) */
    int terms, voids;
    int txt_lookups;
    int top_records;          /* "v=spf1" records in the first TXT answer */
    bool deadline_hit, dns_failed;
    const char *stop;         /* why the layer ended the evaluation */
    char *targets[SPF_TARGETS_MAX];   /* names of the last MX/PTR answer */
    size_t ntargets;
};

/* ---- libspf2 message handlers ---- */

/* The spf_check running on this thread, for spf_error_cb to return to. */
static _Thread_local jmp_buf *spf_jmp;
static pthread_once_t spf_once = PTHREAD_ONCE_INIT;

static void log_lib(int prio, const char *what, const char *file, int line, const char *msg)
{
    struct sbuf b = SBUF_INIT;
    esc_text_s(&b, msg);       /* messages quote record text from DNS */
    log_msg(prio, "libspf2 %s (%s:%d): %s", what, file ? file : "?", line, sbuf_str(&b));
    sbuf_free(&b);
}

/* libspf2 calls abort() if its error handler returns (SPF_errorx), so this
 * handler never returns: inside spf_check it jumps back there, which then
 * reports temperror and abandons (leaks) that check's libspf2 objects,
 * whose state is unknown; anywhere else it aborts as libspf2 would. The
 * handler is reached only through libspf2's internal assertions, which
 * spf_check keeps its inputs away from (see spf_check). */
static _Noreturn void spf_error_cb(const char *file, int line, const char *msg)
{
    log_lib(LOG_ERR, "error", file, line, msg);
    if (spf_jmp)
        longjmp(*spf_jmp, 1);
    abort();
}

static void spf_warning_cb(const char *file, int line, const char *msg)
{
    log_lib(LOG_WARNING, "warning", file, line, msg);
}

static void spf_info_cb(const char *file, int line, const char *msg)
{
    log_lib(LOG_DEBUG, "info", file, line, msg);
}

static void install_handlers(void)
{
    SPF_error_handler = spf_error_cb;
    SPF_warning_handler = spf_warning_cb;
    SPF_info_handler = spf_info_cb;
    SPF_debug_handler = NULL;
}

/* ---- the DNS layer ---- */

static SPF_dns_rr_t *rr_new(SPF_dns_server_t *srv, const char *domain, ns_type type,
                            int ttl, SPF_dns_stat_t herrno)
{
    SPF_dns_rr_t *rr = SPF_dns_rr_new_init(srv, domain, type, ttl, herrno);
    if (!rr) {
        /* a NULL lookup result is an SPF_error (abort) in libspf2 anyway */
        log_msg(LOG_CRIT, "spf: out of memory");
        abort();
    }
    return rr;
}

static void rr_add_bytes(SPF_dns_rr_t *rr, const void *p, size_t n)
{
    int i = rr->num_rr;
    if (SPF_dns_rr_buf_realloc(rr, i, n) != SPF_E_SUCCESS) {
        log_msg(LOG_CRIT, "spf: out of memory");
        abort();
    }
    memcpy(rr->rr[i], p, n);
    rr->num_rr = i + 1;
}

/* Names as libspf2 compares them: without the root dot. */
static void rr_add_name(SPF_dns_rr_t *rr, const char *s)
{
    size_t n = strlen(s);
    rr_add_bytes(rr, s, n + 1);
    if (n > 1 && s[n - 1] == '.')
        ((char *)rr->rr[rr->num_rr - 1])[n - 1] = '\0';
}

static bool same_name(const char *a, const char *b)
{
    size_t la = strlen(a), lb = strlen(b);
    if (la && a[la - 1] == '.')
        la--;
    if (lb && b[lb - 1] == '.')
        lb--;
    return la == lb && !strncasecmp(a, b, la);
}

static void targets_clear(struct spf_call *c)
{
    for (size_t i = 0; i < c->ntargets; i++)
        free(c->targets[i]);
    c->ntargets = 0;
}

/* A lookup counts against RFC 7208 4.6.4 unless it is the first TXT (the
 * record itself) or the address lookup of a name the last MX/PTR answer
 * gave (those have libspf2's own limit of 10 per mechanism). */
static bool is_term(struct spf_call *c, const char *domain, ns_type type)
{
    if (type == ns_t_txt)
        return c->txt_lookups > 0;
    if (type == ns_t_a || type == ns_t_aaaa) {
        for (size_t i = 0; i < c->ntargets; i++)
            if (same_name(c->targets[i], domain)) {
                free(c->targets[i]);
                c->targets[i] = c->targets[--c->ntargets];
                return false;
            }
    }
    return true;
}

static SPF_dns_rr_t *from_dns(struct spf_call *c, SPF_dns_server_t *srv, const char *domain,
                              ns_type type)
{
    enum dns_type t;
    switch (type) {
    case ns_t_a: t = DNS_T_A; break;
    case ns_t_aaaa: t = DNS_T_AAAA; break;
    case ns_t_mx: t = DNS_T_MX; break;
    case ns_t_ptr: t = DNS_T_PTR; break;
    case ns_t_txt: t = DNS_T_TXT; break;
    default: return rr_new(srv, domain, type, 0, NO_DATA);
    }
    struct dns_req *q = dns_query(c->s->dns, domain, t, c->deadline);
    if (!q)   /* cannot be a DNS name (macro output): it does not exist */
        return rr_new(srv, domain, type, 0, HOST_NOT_FOUND);
    const struct dns_result *r = dns_wait(q, c->deadline);
    SPF_dns_rr_t *rr;
    switch (r->status) {
    case DNS_OK:
        rr = rr_new(srv, domain, type, r->ttl, NETDB_SUCCESS);
        for (size_t i = 0; i < r->nrr; i++) {
            const struct dns_rr *x = &r->rr[i];
            if ((int)x->type != (int)t)
                continue;
            if (t == DNS_T_A && ip_is_v4(&x->addr))
                rr_add_bytes(rr, x->addr.b + 12, 4);
            else if (t == DNS_T_AAAA)
                rr_add_bytes(rr, x->addr.b, 16);
            else if (t == DNS_T_TXT && x->text)
                rr_add_bytes(rr, x->text, strlen(x->text) + 1);
            else if ((t == DNS_T_MX || t == DNS_T_PTR) && x->text)
                rr_add_name(rr, x->text);
        }
        if (rr->num_rr == 0)
            rr->herrno = NO_DATA;
        break;
    case DNS_NXDOMAIN:
        rr = rr_new(srv, domain, type, r->ttl, HOST_NOT_FOUND);
        break;
    case DNS_NODATA:
        rr = rr_new(srv, domain, type, r->ttl, NO_DATA);
        break;
    default:   /* timeout, servfail, error, or still pending at the deadline */
        if (dns_now_ms() >= c->deadline)
            c->deadline_hit = true;
        else
            c->dns_failed = true;
        rr = rr_new(srv, domain, type, 0, TRY_AGAIN);
        break;
    }
    dns_req_free(q);
    return rr;
}

static SPF_dns_rr_t *from_zone(struct spf_call *c, SPF_dns_server_t *srv, const char *domain,
                               ns_type type)
{
    SPF_dns_rr_t *rr = SPF_dns_lookup(c->s->zone, domain, type, 0);
    if (rr->herrno == SPF_ZONE_LIBERR) {
        /* a NULL answer is an internal error for libspf2 (SPF_error) */
        SPF_dns_rr_free(rr);
        return NULL;
    }
    rr->source = srv;
    if (rr->herrno == TRY_AGAIN)
        c->dns_failed = true;
    return rr;
}

static bool is_spf_record(const char *t)
{
    return !strncasecmp(t, "v=spf1", 6) && (t[6] == ' ' || t[6] == '\0');
}

/* Only "v=spf1" records reach libspf2, and only printable ASCII ones of a
 * sane length (RFC 7208 12: the record grammar is ASCII), which keeps
 * libspf2's record compiler and macro expander, the source of its past
 * CVEs, away from bytes no valid record holds. */
static SPF_dns_rr_t *filter_txt(struct spf_call *c, SPF_dns_server_t *srv, SPF_dns_rr_t *raw)
{
    bool first = c->txt_lookups++ == 0;
    if (raw->herrno != NETDB_SUCCESS) {
        if (first)
            c->top_records = 0;
        return raw;
    }
    SPF_dns_rr_t *rr = rr_new(srv, raw->domain, ns_t_txt, (int)raw->ttl, NETDB_SUCCESS);
    int found = 0;
    for (int i = 0; i < raw->num_rr; i++) {
        const char *t = raw->rr[i]->txt;
        if (!is_spf_record(t))
            continue;
        found++;
        size_t n = strlen(t);
        if (n > SPF_RECORD_MAX)
            c->stop = "SPF record longer than 2048 characters";
        for (size_t j = 0; j < n && !c->stop; j++)
            if (t[j] < 0x20 || t[j] > 0x7e)
                c->stop = "SPF record with characters outside printable ASCII";
        rr_add_bytes(rr, t, n + 1);
    }
    if (first)
        c->top_records = found;
    SPF_dns_rr_free(raw);
    if (c->stop) {
        rr->num_rr = 0;
        rr->herrno = TRY_AGAIN;
    }
    return rr;
}

static SPF_dns_rr_t *layer_lookup(SPF_dns_server_t *srv, const char *domain, ns_type type,
                                  int should_cache)
{
    struct spf_call *c = srv->hook;
    (void)should_cache;
    /* RFC 7208 3.1 retired type SPF (99). Debian's 1.2.10 never asks for
     * it, upstream's later code does before every TXT: answer "no data"
     * without a query */
    if (type == ns_t_spf)
        return rr_new(srv, domain, type, 0, NO_DATA);
    if (!c->stop && !c->deadline_hit && dns_now_ms() >= c->deadline)
        c->deadline_hit = true;
    if (c->stop || c->deadline_hit)
        return rr_new(srv, domain, type, 0, TRY_AGAIN);

    bool term = is_term(c, domain, type);
    if (term && ++c->terms > SPF_TERMS_MAX) {
        c->stop = "more than 10 DNS-querying terms (RFC 7208 4.6.4)";
        return rr_new(srv, domain, type, 0, TRY_AGAIN);
    }
    c->lookups++;
    SPF_dns_rr_t *rr = c->s->zone ? from_zone(c, srv, domain, type)
                                  : from_dns(c, srv, domain, type);
    if (!rr)
        return NULL;
    bool is_void = rr->herrno == HOST_NOT_FOUND || rr->herrno == NO_DATA ||
                   (rr->herrno == NETDB_SUCCESS && rr->num_rr == 0);
    if (type == ns_t_txt)
        rr = filter_txt(c, srv, rr);
    if ((type == ns_t_mx || type == ns_t_ptr) && rr->herrno == NETDB_SUCCESS) {
        targets_clear(c);
        for (int i = 0; i < rr->num_rr && c->ntargets < SPF_TARGETS_MAX; i++)
            c->targets[c->ntargets++] = xstrdup(type == ns_t_mx ? rr->rr[i]->mx : rr->rr[i]->ptr);
    }
    if (term && is_void && ++c->voids > SPF_VOIDS_MAX) {
        c->stop = "more than 2 void DNS lookups (RFC 7208 4.6.4)";
        SPF_dns_rr_free(rr);
        return rr_new(srv, domain, type, 0, TRY_AGAIN);
    }
    return rr;
}

/* The explanation (exp=) is never used (headers are built here), so no
 * query is sent for it: an attacker's exp= name costs nothing. */
static SPF_errcode_t layer_get_exp(SPF_server_t *server, const char *domain, char **buf,
                                   size_t *buflen)
{
    (void)server;
    (void)domain;
    static const char text[] = "explanation not fetched";
    if (*buflen < sizeof text) {
        char *p = realloc(*buf, sizeof text);
        if (!p)
            return SPF_E_NO_MEMORY;
        *buf = p;
        *buflen = sizeof text;
    }
    memcpy(*buf, text, sizeof text);
    return SPF_E_SUCCESS;
}

/* ---- names ---- */

/* A domain as RFC 7208 4.3 accepts it, lower-case, IDN labels as A-labels,
 * without the root dot: at least two labels of 1..63 letters, digits, '-'
 * or '_', at most 253 characters. Returns 0 or -1. */
static int norm_domain(const char *in, size_t len, char *out, size_t outlen)
{
    if (len && in[len - 1] == '.')
        len--;
    if (len == 0 || len > 1000 || outlen < 2)
        return -1;
    size_t o = 0;
    int labels = 0;
    for (size_t i = 0; i <= len;) {
        size_t j = i;
        bool ascii = true;
        while (j < len && in[j] != '.') {
            if ((unsigned char)in[j] >= 0x80)
                ascii = false;
            j++;
        }
        if (j == i || j - i > 255)
            return -1;
        char lab[256];
        if (ascii) {
            if (j - i > 63)
                return -1;
            for (size_t k = i; k < j; k++) {
                char ch = in[k];
                if (ch >= 'A' && ch <= 'Z')
                    ch = (char)(ch - 'A' + 'a');
                else if (!((ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9') || ch == '-' ||
                           ch == '_'))
                    return -1;
                lab[k - i] = ch;
            }
            lab[j - i] = '\0';
        } else if (dnsbl_idna_label(in + i, j - i, lab, sizeof lab) < 0 || strlen(lab) > 63) {
            return -1;
        }
        size_t n = strlen(lab);
        if (o + (o ? 1 : 0) + n >= outlen || o + (o ? 1 : 0) + n > 253)
            return -1;
        if (o)
            out[o++] = '.';
        memcpy(out + o, lab, n);
        o += n;
        labels++;
        i = j + 1;
    }
    out[o] = '\0';
    return labels >= 2 ? 0 : -1;
}

/* ---- header text ---- */

enum put_mode { PUT_PLAIN, PUT_COMMENT, PUT_QUOTED };

/* s as printable ASCII (esc_header); for a comment or quoted-string also
 * with '\\' and '(' ')' or '"' as quoted-pairs, so that unquoting gives
 * the esc_header text back. Cut to at most max characters without
 * splitting a pair (so the quoted-string or comment stays closed). */
static void put_esc(struct sbuf *out, const char *s, size_t max, enum put_mode mode)
{
    struct sbuf e = SBUF_INIT, q = SBUF_INIT;
    esc_header(&e, s ? s : "", s ? strlen(s) : 0);
    for (const char *p = sbuf_str(&e); *p; p++) {
        if ((mode != PUT_PLAIN && *p == '\\') ||
            (mode == PUT_COMMENT && (*p == '(' || *p == ')')) ||
            (mode == PUT_QUOTED && *p == '"'))
            sbuf_addc(&q, '\\');
        sbuf_addc(&q, *p);
    }
    const char *v = sbuf_str(&q);
    size_t n = 0;
    if (q.len <= max) {
        n = q.len;
    } else {
        while (max >= 3 && n < q.len) {
            size_t unit = v[n] == '\\' && n + 1 < q.len ? 2 : 1;
            if (n + unit > max - 3)
                break;
            n += unit;
        }
    }
    sbuf_add(out, v, n);
    if (n < q.len && max >= 3)
        sbuf_adds(out, "...");
    sbuf_free(&e);
    sbuf_free(&q);
}

/* RFC 5322 dot-atom: atext runs separated by single dots. */
static bool is_dot_atom(const char *s)
{
    if (!*s || *s == '.')
        return false;
    for (const char *p = s; *p; p++) {
        unsigned char ch = (unsigned char)*p;
        if (ch == '.') {
            if (p[1] == '.' || p[1] == '\0')
                return false;
        } else if (!((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
                     (ch >= '0' && ch <= '9') || strchr("!#$%&'*+-/=?^_`{|}~", ch))) {
            return false;
        }
    }
    return true;
}

/* key=value for Received-SPF: dot-atom as is, anything else quoted. */
static void put_kv(struct sbuf *b, const char *key, const char *v, size_t max, bool force_quote)
{
    sbuf_addf(b, " %s=", key);
    if (!force_quote && strlen(v) <= max && is_dot_atom(v)) {
        sbuf_adds(b, v);
        return;
    }
    sbuf_addc(b, '"');
    put_esc(b, v, max, PUT_QUOTED);
    sbuf_addc(b, '"');
}

static void copy_str(char *dst, size_t len, const char *src)
{
    snprintf(dst, len, "%s", src ? src : "");
}

static const char *result_name(enum rules_spf r)
{
    static const char *names[RULES_SPF_COUNT] = {
        "none", "neutral", "pass", "fail", "softfail", "temperror", "permerror",
    };
    return (unsigned)r < RULES_SPF_COUNT ? names[r] : "none";
}

enum rules_spf spf_map_result(int spf2_result)
{
    switch ((SPF_result_t)spf2_result) {
    case SPF_RESULT_PASS: return RULES_SPF_PASS;
    case SPF_RESULT_FAIL: return RULES_SPF_FAIL;
    case SPF_RESULT_SOFTFAIL: return RULES_SPF_SOFTFAIL;
    case SPF_RESULT_NEUTRAL: return RULES_SPF_NEUTRAL;
    case SPF_RESULT_NONE: return RULES_SPF_NONE;
    case SPF_RESULT_TEMPERROR: return RULES_SPF_TEMPERROR;
    case SPF_RESULT_PERMERROR: return RULES_SPF_PERMERROR;
    /* INVALID: libspf2 stopped without a verdict. spf_check resolves the
     * known cases (no record, record that does not compile, DNS failure)
     * before mapping; anything left is an error in the domain's SPF data,
     * never "none", so an odd record cannot turn a fail into no SPF. */
    case SPF_RESULT_INVALID:
    default: return RULES_SPF_PERMERROR;
    }
}

/* ---- construction ---- */

static struct spf *spf_alloc(const char *receiving_host, char *err, size_t errlen)
{
    pthread_once(&spf_once, install_handlers);
    if (!receiving_host || !*receiving_host || strlen(receiving_host) > 253 ||
        strspn(receiving_host, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
                               "0123456789.-_") != strlen(receiving_host)) {
        errbuf_set(err, errlen, "spf: receiving host must be a host name");
        return NULL;
    }
    struct spf *s = xcalloc(1, sizeof *s);
    copy_str(s->host, sizeof s->host, receiving_host);
    return s;
}

struct spf *spf_new(struct dns *d, const char *receiving_host, char *err, size_t errlen)
{
    if (!d) {
        errbuf_set(err, errlen, "spf: no resolver");
        return NULL;
    }
    struct spf *s = spf_alloc(receiving_host, err, errlen);
    if (s)
        s->dns = d;
    return s;
}

struct spf *spf_new_zone(const char *receiving_host, const char *const *records, size_t n,
                         char *err, size_t errlen)
{
    struct spf *s = spf_alloc(receiving_host, err, errlen);
    if (!s)
        return NULL;
    s->zone = SPF_dns_zone_new(NULL, "kanjiki-test-zone", 0);
    if (!s->zone) {
        free(s);
        errbuf_set(err, errlen, "spf: cannot create zone");
        return NULL;
    }
    static const struct { const char *name; ns_type type; } types[] = {
        { "A", ns_t_a }, { "AAAA", ns_t_aaaa }, { "MX", ns_t_mx },
        { "PTR", ns_t_ptr }, { "TXT", ns_t_txt },
    };
    for (size_t i = 0; i < n; i++) {
        char name[256], type[8];
        int used = 0;
        if (sscanf(records[i], "%255s %7s %n", name, type, &used) != 2 || used == 0) {
            spf_free(s);
            errbuf_set(err, errlen, "spf: bad zone line '%.60s'", records[i]);
            return NULL;
        }
        const char *data = records[i] + used;
        ns_type t = ns_t_invalid;
        for (size_t k = 0; k < sizeof types / sizeof types[0]; k++)
            if (!strcmp(type, types[k].name))
                t = types[k].type;
        SPF_dns_stat_t herrno = NETDB_SUCCESS;
        if (!strcmp(data, "!NXDOMAIN"))
            herrno = HOST_NOT_FOUND;
        else if (!strcmp(data, "!NODATA"))
            herrno = NO_DATA;
        else if (!strcmp(data, "!TRY_AGAIN"))
            herrno = TRY_AGAIN;
        else if (!strcmp(data, "!LIBSPF2_ERROR"))
            herrno = SPF_ZONE_LIBERR;
        if (t == ns_t_invalid ||
            SPF_dns_zone_add_str(s->zone, name, t, herrno,
                                 herrno == NETDB_SUCCESS ? data : NULL) != SPF_E_SUCCESS) {
            spf_free(s);
            errbuf_set(err, errlen, "spf: bad zone line '%.60s'", records[i]);
            return NULL;
        }
    }
    return s;
}

void spf_free(struct spf *s)
{
    if (!s)
        return;
    if (s->zone)
        SPF_dns_free(s->zone);
    free(s);
}

/* ---- evaluation ---- */

/* One libspf2 evaluation: its objects (here, not in eval_inner's frame,
 * so that they are still known after spf_error_cb's jump) and what it
 * produced. */
struct spf_eval {
    SPF_server_t *server;
    SPF_request_t *req;
    SPF_response_t *resp;
    SPF_result_t result;
    SPF_errcode_t err;
    char problem[160];        /* libspf2's most specific error message */
    bool crashed;             /* spf_error_cb jumped out */
};

static void eval_free(struct spf_eval *ev)
{
    if (ev->resp)
        SPF_response_free(ev->resp);
    if (ev->req)
        SPF_request_free(ev->req);
    if (ev->server)
        SPF_server_free(ev->server);
    ev->resp = NULL;
    ev->req = NULL;
    ev->server = NULL;
}

static void eval_inner(struct spf_call *c, SPF_dns_server_t *layer, const struct ip *client,
                       const char *env_from, const char *helo, struct spf_eval *ev)
{
    ev->server = SPF_server_new_dns(layer, 0);
    if (!ev->server || SPF_server_set_rec_dom(ev->server, c->s->host) != SPF_E_SUCCESS ||
        !(ev->req = SPF_request_new(ev->server))) {
        ev->result = SPF_RESULT_TEMPERROR;
        copy_str(ev->problem, sizeof ev->problem, "out of memory");
        return;
    }
    /* a constant explanation: the default one expands the sender's
     * address through libspf2's URL encoder for every non-pass result */
    SPF_response_t *tmp = NULL;
    SPF_server_set_explanation(ev->server, "SPF", &tmp);
    if (tmp)
        SPF_response_free(tmp);

    if (ip_is_v4(client)) {
        struct in_addr a;
        memcpy(&a, client->b + 12, 4);
        SPF_request_set_ipv4(ev->req, a);
    } else {
        struct in6_addr a;
        memcpy(&a, client->b, 16);
        SPF_request_set_ipv6(ev->req, a);
    }
    /* env_from before helo: set_helo_dom would otherwise invent one */
    SPF_request_set_env_from(ev->req, env_from);
    SPF_request_set_helo_dom(ev->req, helo);

    SPF_errcode_t err = SPF_request_query_mailfrom(ev->req, &ev->resp);
    ev->err = err;
    if (!ev->resp) {
        ev->result = SPF_RESULT_TEMPERROR;
        copy_str(ev->problem, sizeof ev->problem, "out of memory");
        return;
    }
    ev->result = SPF_response_result(ev->resp);
    if (ev->err == SPF_E_SUCCESS)
        ev->err = SPF_response_errcode(ev->resp);
    /* the first error other than the generic "not SPF" wrapper, else the
     * first error */
    for (int pass = 0; pass < 2 && !ev->problem[0]; pass++)
        for (int i = 0; i < SPF_response_messages(ev->resp); i++) {
            SPF_error_t *e = SPF_response_message(ev->resp, i);
            if (SPF_error_errorp(e) && SPF_error_message(e) &&
                (pass == 1 || SPF_error_code(e) != SPF_E_NOT_SPF)) {
                copy_str(ev->problem, sizeof ev->problem, SPF_error_message(e));
                break;
            }
        }
}

/* libspf2 runs under a setjmp so that spf_error_cb can return here. Only
 * memory reached through pointers is used after the jump (no clobbered
 * locals). After a jump the server, request and top response are freed:
 * libspf2's assertions check arguments before using them, so these are
 * not half-updated; whatever libspf2 allocated deeper (an include's
 * response or compiled record) is unknown here and leaks. */
static void eval(struct spf_call *c, const struct ip *client, const char *env_from,
                 const char *helo, struct spf_eval *ev)
{
    SPF_dns_server_t layer;
    memset(&layer, 0, sizeof layer);
    layer.destroy = NULL;     /* on our stack: SPF_server_free must not free it */
    layer.lookup = layer_lookup;
    layer.get_exp = layer_get_exp;
    layer.name = "kanjiki";
    layer.hook = c;

    jmp_buf jb;
    jmp_buf *saved = spf_jmp;
    if (setjmp(jb) == 0) {
        spf_jmp = &jb;
        eval_inner(c, &layer, client, env_from, helo, ev);
    } else {
        ev->crashed = true;
        ev->result = SPF_RESULT_TEMPERROR;
        copy_str(ev->problem, sizeof ev->problem, "libspf2 internal error");
    }
    spf_jmp = saved;
    eval_free(ev);
}

static bool is_loopback(const struct ip *a)
{
    static const uint8_t v6[16] = { [15] = 1 };
    return (ip_is_v4(a) && a->b[12] == 127) || !memcmp(a->b, v6, 16);
}

static bool is_unspecified(const struct ip *a)
{
    static const uint8_t zero[16] = { 0 };
    static const uint8_t v4zero[16] = { [10] = 0xff, [11] = 0xff };
    return !memcmp(a->b, zero, 16) || !memcmp(a->b, v4zero, 16);
}

/* The local part only feeds the %{l} and %{s} macros. One that SPF's
 * macros cannot carry safely (control bytes, non-ASCII, over-long) is
 * replaced by "postmaster", RFC 7208 4.3's own substitute, rather than
 * giving "none": a strange local part must not turn a fail into none. */
static bool local_ok(const char *s, size_t n)
{
    if (n == 0 || n > SPF_LOCAL_MAX)
        return false;
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)s[i] < 0x20 || (unsigned char)s[i] > 0x7e)
            return false;
    return true;
}

/* HELO for libspf2's %{h}: the name when it is plain printable text. */
static const char *helo_for_macros(const char *helo)
{
    if (!helo || !*helo || strlen(helo) > 253)
        return "unknown";
    for (const char *p = helo; *p; p++)
        if ((unsigned char)*p <= 0x20 || (unsigned char)*p > 0x7e)
            return "unknown";
    return helo;
}

/* why: the reason for none/temperror/permerror, raw (escaped here). */
static void build_headers(const struct spf *s, const struct ip *client, const char *helo,
                          const char *sender, const char *why, struct spf_result *out)
{
    char ip[IP_STRLEN];
    ip_format(client, ip, sizeof ip);
    bool is_helo = !strcmp(out->identity, "helo");
    const char *d = out->domain[0] ? out->domain : "unknown domain";
    struct sbuf m = SBUF_INIT;
    switch (out->result) {
    case RULES_SPF_PASS:
        sbuf_addf(&m, "domain of %s designates %s as permitted sender", d, ip);
        break;
    case RULES_SPF_FAIL:
        sbuf_addf(&m, "domain of %s does not designate %s as permitted sender", d, ip);
        break;
    case RULES_SPF_SOFTFAIL:
        sbuf_addf(&m, "domain of transitioning %s does not designate %s as permitted sender",
                  d, ip);
        break;
    case RULES_SPF_NEUTRAL:
        sbuf_addf(&m, "%s is neither permitted nor denied by domain of %s", ip, d);
        break;
    default:
        sbuf_adds(&m, why ? why : "");
        break;
    }
    struct sbuf b = SBUF_INIT;
    put_esc(&b, sbuf_str(&m), sizeof out->mechanism - 1, PUT_PLAIN);
    copy_str(out->mechanism, sizeof out->mechanism, sbuf_str(&b));

    /* Received-SPF (RFC 7208 9.1); sizes bounded so that the whole field
     * stays under RFC 5322's 998-character line with no folding */
    sbuf_reset(&b);
    sbuf_addf(&b, "%s (%s: ", result_name(out->result), s->host);
    put_esc(&b, sbuf_str(&m), 200, PUT_COMMENT);
    sbuf_addc(&b, ')');
    put_kv(&b, "client-ip", ip, IP_STRLEN, false);
    sbuf_addc(&b, ';');
    if (!is_helo) {
        put_kv(&b, "envelope-from", sender, 220, true);
        sbuf_addc(&b, ';');
    }
    if (helo) {
        put_kv(&b, "helo", helo, 140, false);
        sbuf_addc(&b, ';');
    }
    put_kv(&b, "receiver", s->host, 253, false);
    sbuf_addf(&b, "; identity=%s", out->identity);
    copy_str(out->received_spf, sizeof out->received_spf, sbuf_str(&b));

    /* Authentication-Results method (RFC 8601 2.7.2) */
    sbuf_reset(&b);
    sbuf_addf(&b, "spf=%s", result_name(out->result));
    const char *prop = is_helo ? "smtp.helo" : "smtp.mailfrom";
    const char *raw = is_helo ? helo : sender;
    if (out->domain[0]) {
        sbuf_addf(&b, " %s=%s", prop, out->domain);
    } else if (raw && *raw) {
        sbuf_addf(&b, " %s=\"", prop);
        put_esc(&b, raw, 200, PUT_QUOTED);
        sbuf_addc(&b, '"');
    }
    copy_str(out->auth_results, sizeof out->auth_results, sbuf_str(&b));
    sbuf_free(&b);
    sbuf_free(&m);
}

int spf_check(struct spf *s, const struct ip *client, const char *helo, const char *sender,
              int64_t deadline_ms, struct spf_result *out)
{
    int64_t t0 = dns_now_ms();
    memset(out, 0, sizeof *out);
    out->result = RULES_SPF_NONE;
    if (!s || !client || is_unspecified(client))
        return -1;
    if (!sender)
        sender = "";
    bool null_sender = sender[0] == '\0';
    copy_str(out->identity, sizeof out->identity, null_sender ? "helo" : "mailfrom");

    /* The identity (RFC 7208 2.3, 2.4, 4.3), checked here so that libspf2
     * only ever sees well-formed names: it would otherwise invent
     * "postmaster@" addresses for strings without '@' and assert on
     * others. */
    char dom[256] = "", env_from[SPF_LOCAL_MAX + 1 + 256] = "";
    const char *reason = NULL;
    if (null_sender) {
        if (!helo || norm_domain(helo, strlen(helo), dom, sizeof dom) < 0)
            reason = "no usable HELO name, not evaluated";
        else
            snprintf(env_from, sizeof env_from, "postmaster@%s", dom);
    } else {
        const char *at = strrchr(sender, '@');
        if (!at)
            reason = "sender without a domain, not evaluated";
        else if (norm_domain(at + 1, strlen(at + 1), dom, sizeof dom) < 0)
            reason = "malformed sender domain, not evaluated";
        else if (local_ok(sender, (size_t)(at - sender)))
            snprintf(env_from, sizeof env_from, "%.*s@%s", (int)(at - sender), sender, dom);
        else
            snprintf(env_from, sizeof env_from, "postmaster@%s", dom);
    }
    if (reason)
        dom[0] = '\0';
    copy_str(out->domain, sizeof out->domain, dom);

    /* libspf2 gives loopback a free pass; a local client is no SPF
     * identity at all */
    if (!reason && is_loopback(client))
        reason = "loopback client, not evaluated";

    char why[512] = "";
    if (reason) {
        copy_str(why, sizeof why, reason);
    } else {
        struct spf_call c = { .s = s, .deadline = deadline_ms, .top_records = -1 };
        struct spf_eval ev = { .result = SPF_RESULT_INVALID };
        eval(&c, client, env_from, helo_for_macros(helo), &ev);
        targets_clear(&c);
        out->dns_lookups = c.lookups;

        enum rules_spf r;
        const char *problem = ev.problem[0] ? ev.problem : NULL;
        if (c.stop) {
            r = RULES_SPF_PERMERROR;
            problem = c.stop;
        } else if (c.deadline_hit) {
            r = RULES_SPF_TEMPERROR;
            problem = "DNS deadline passed";
        } else if (ev.crashed) {
            r = RULES_SPF_TEMPERROR;
        } else if (ev.result == SPF_RESULT_INVALID) {
            /* libspf2 leaves INVALID where it gave up on the record */
            if (ev.err == SPF_E_DNS_ERROR || ev.err == SPF_E_NO_MEMORY)
                r = RULES_SPF_TEMPERROR;
            else if (ev.err == SPF_E_NOT_SPF && c.top_records <= 0)
                r = RULES_SPF_NONE;
            else
                r = spf_map_result(ev.result);   /* did not compile: permerror */
        } else {
            r = spf_map_result(ev.result);
        }
        out->result = r;
        if (r == RULES_SPF_TEMPERROR && !problem)
            problem = c.dns_failed || ev.err == SPF_E_DNS_ERROR ? "temporary DNS failure"
                                                                : "temporary error";
        if (r == RULES_SPF_PERMERROR && !problem)
            problem = SPF_strerror(ev.err);
        if (r == RULES_SPF_TEMPERROR || r == RULES_SPF_PERMERROR)
            snprintf(why, sizeof why, "error in processing during lookup of %s: %s", dom,
                     problem);
        else if (r == RULES_SPF_NONE)
            snprintf(why, sizeof why, "domain of %s does not designate permitted sender hosts",
                     dom);
        out->degraded = r == RULES_SPF_TEMPERROR;
    }
    build_headers(s, client, helo, null_sender ? "" : sender, why, out);
    out->latency_ms = dns_now_ms() - t0;
    return 0;
}
