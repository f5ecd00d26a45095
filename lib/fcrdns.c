#include "fcrdns.h"

#include <ctype.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dnsbl.h"
#include "xalloc.h"

struct fcrdns {
    struct dns *dns;
    struct ip client;
    int64_t timeout_ms;         /* each step's own: the forward lookups start later */
    struct dns_req *ptr;
    bool ptr_done, ptr_tempfail;
    char names[FCRDNS_MAX_NAMES][256];
    struct dns_req *fwd[FCRDNS_MAX_NAMES];
    size_t nnames;
};

/* A host name: labels of letters, digits and hyphens (underscores too,
 * which some reverse zones use), 1-63 octets, not starting or ending with
 * a hyphen, at most 253 octets, at least two labels. */
static bool host_name_ok(const char *s)
{
    size_t n = strlen(s), label = 0, labels = 1;
    if (n == 0 || n > 253)
        return false;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c == '.') {
            if (label == 0 || s[i - 1] == '-')
                return false;
            label = 0;
            labels++;
        } else if (isalnum(c) || c == '_' || (c == '-' && label > 0)) {
            if (++label > 63)
                return false;
        } else {
            return false;
        }
    }
    return label > 0 && s[n - 1] != '-' && labels >= 2;
}

struct fcrdns *fcrdns_start(struct dns *d, const struct ip *client, int timeout_ms)
{
    char q[128];
    if (!d || dnsbl_qname_ip(client, ip_is_v4(client) ? "in-addr.arpa" : "ip6.arpa", q,
                             sizeof q) < 0)
        return NULL;
    struct fcrdns *f = xcalloc(1, sizeof *f);
    f->dns = d;
    f->client = *client;
    f->timeout_ms = timeout_ms;
    f->ptr = dns_query(d, q, DNS_T_PTR, dns_now_ms() + timeout_ms);
    if (!f->ptr)
        f->ptr_done = f->ptr_tempfail = true;
    return f;
}

/* The PTR answer is in: keep the valid names, ask for their addresses. */
static void take_ptr(struct fcrdns *f, const struct dns_result *r)
{
    f->ptr_done = true;
    if (r->status != DNS_OK && r->status != DNS_NXDOMAIN && r->status != DNS_NODATA) {
        f->ptr_tempfail = true;   /* timeout, server failure, bad answer: unknown */
        return;
    }
    int64_t deadline = dns_now_ms() + f->timeout_ms;
    for (size_t i = 0; r->status == DNS_OK && i < r->nrr && f->nnames < FCRDNS_MAX_NAMES; i++) {
        const struct dns_rr *rr = &r->rr[i];
        if (rr->type != DNS_T_PTR || !rr->text)
            continue;
        char *n = f->names[f->nnames];
        snprintf(n, sizeof f->names[0], "%s", rr->text);
        size_t len = strlen(n);
        if (len && n[len - 1] == '.')
            n[--len] = '\0';
        for (char *p = n; *p; p++)
            *p = (char)tolower((unsigned char)*p);
        if (!host_name_ok(n))
            continue;
        f->fwd[f->nnames] = dns_query(f->dns, n, ip_is_v4(&f->client) ? DNS_T_A : DNS_T_AAAA,
                                      deadline);
        f->nnames++;
    }
}

void fcrdns_poll(struct fcrdns *f)
{
    if (!f || f->ptr_done)
        return;
    const struct dns_result *r = dns_poll(f->ptr);
    if (r)
        take_ptr(f, r);
}

void fcrdns_finish(struct fcrdns *f, int64_t deadline_ms, struct fcrdns_result *out)
{
    memset(out, 0, sizeof *out);
    if (!f)
        return;
    if (!f->ptr_done) {
        const struct dns_result *r = f->ptr ? dns_wait(f->ptr, deadline_ms) : NULL;
        if (r)
            take_ptr(f, r);
        else
            f->ptr_done = f->ptr_tempfail = true;
    }
    if (f->ptr_tempfail) {
        out->status = FCRDNS_TEMPFAIL;
        return;
    }
    if (!f->nnames)
        return;   /* FCRDNS_NONE */
    bool unknown = false;
    for (size_t i = 0; i < f->nnames; i++) {
        const struct dns_result *r = f->fwd[i] ? dns_wait(f->fwd[i], deadline_ms) : NULL;
        if (!r || (r->status != DNS_OK && r->status != DNS_NXDOMAIN &&
                   r->status != DNS_NODATA)) {
            unknown = true;   /* might have confirmed */
            continue;
        }
        for (size_t k = 0; r->status == DNS_OK && k < r->nrr; k++)
            if ((r->rr[k].type == DNS_T_A || r->rr[k].type == DNS_T_AAAA) &&
                ip_cmp(&r->rr[k].addr, &f->client) == 0) {
                out->status = FCRDNS_CONFIRMED;
                snprintf(out->name, sizeof out->name, "%s", f->names[i]);
                return;
            }
    }
    /* a name that did not answer might have confirmed */
    out->status = unknown ? FCRDNS_TEMPFAIL : FCRDNS_UNCONFIRMED;
    snprintf(out->name, sizeof out->name, "%s", f->names[0]);
}

void fcrdns_free(struct fcrdns *f)
{
    if (!f)
        return;
    dns_req_free(f->ptr);
    for (size_t i = 0; i < f->nnames; i++)
        dns_req_free(f->fwd[i]);
    free(f);
}

const char *fcrdns_status_name(enum fcrdns_status s)
{
    static const char *names[] = { "none", "confirmed", "unconfirmed", "tempfail" };
    return (unsigned)s < 4 ? names[s] : "?";
}
