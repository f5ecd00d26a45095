#include "score.h"

#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "sbuf.h"

void score_reply_safe(const char *in, char *out, size_t outlen)
{
    size_t o = 0;
    if (!outlen)
        return;
    for (const unsigned char *p = (const unsigned char *)(in ? in : ""); *p && o + 1 < outlen;
         p++) {
        /* '%' would be read as a format by some MTAs' reply code paths */
        out[o++] = (*p >= 0x20 && *p < 0x7f && *p != '%') ? (char)*p : '?';
    }
    out[o] = 0;
}

void score_lookup_name(const struct verdict_lookup *l, const char *client_ip, char *out,
                       size_t outlen)
{
    if (l->kind && !strcmp(l->kind, "ip")) {
        snprintf(out, outlen, "%s", client_ip ? client_ip : "unknown");
        return;
    }
    /* a domain is named as listed, without the zone it was asked in */
    const char *q = l->query ? l->query : "";
    size_t ql = strlen(q), zl = l->zone ? strlen(l->zone) : 0;
    int keep = (int)ql;
    if (zl && ql > zl + 1 && q[ql - zl - 1] == '.' && !strcasecmp(q + ql - zl, l->zone))
        keep = (int)(ql - zl - 1);
    snprintf(out, outlen, "%.*s", keep, q);
}

/* The listed lookup that weighs most: what a refused client is told. */
static const struct verdict_lookup *heaviest_listing(const struct verdict_lookup *lk, size_t n)
{
    const struct verdict_lookup *best = NULL;
    for (size_t i = 0; i < n; i++) {
        if (!lk[i].outcome || strcmp(lk[i].outcome, "listed") || lk[i].weight <= 0)
            continue;
        if (!best || lk[i].weight > best->weight)
            best = &lk[i];
    }
    return best;
}

static void default_text(struct score_result *o, const struct verdict_lookup *lk, size_t n,
                         const char *client_ip)
{
    const struct verdict_lookup *top = heaviest_listing(lk, n);
    struct sbuf b = SBUF_INIT;
    if (o->action == VERDICT_TEMPFAIL)
        sbuf_adds(&b, "Try again later (kanjiki): ");
    if (top) {
        /* postscreen's wording, which administrators recognise */
        bool ip = !strcmp(top->kind ? top->kind : "", "ip");
        char name[300];
        score_lookup_name(top, client_ip, name, sizeof name);
        if (ip)
            sbuf_addf(&b, "Service unavailable; client [%s] blocked using %s", name, top->zone);
        else
            sbuf_addf(&b, "Service unavailable; %s %s blocked using %s",
                      top->subject ? top->subject : "name", name, top->zone);
        if (top->txt && *top->txt)
            sbuf_addf(&b, "; %s", top->txt);
    } else {
        sbuf_addf(&b, "Message refused (kanjiki): spam score %.1f", o->total);
    }
    /* every piece may come from DNS or the client: make it reply-safe */
    score_reply_safe(sbuf_str(&b), o->text, sizeof o->text);
    sbuf_free(&b);
}

void score_eval(const struct ruleset *rs, const struct rules_input *in,
                const struct verdict_lookup *lk, size_t nlk, bool at_rcpt,
                const char *client_ip, struct score_result *o)
{
    memset(o, 0, sizeof *o);
    o->rules = rules_score(rs, in, &o->rule_hits);
    o->total = o->rules;
    for (size_t i = 0; i < nlk; i++)
        o->total += lk[i].weight;
    o->action = VERDICT_ACCEPT;
    const struct rules_threshold *t = rules_threshold_for(rs, o->total, at_rcpt);
    if (t && at_rcpt && t->action != VERDICT_TEMPFAIL && t->action != VERDICT_REJECT)
        t = NULL;
    if (!t)
        return;
    o->threshold = t;
    o->action = t->action;
    if (t->action != VERDICT_TEMPFAIL && t->action != VERDICT_REJECT)
        return;
    bool temp = t->action == VERDICT_TEMPFAIL;
    o->code = t->reply_code ? t->reply_code : temp ? 451 : 550;
    snprintf(o->xcode, sizeof o->xcode, "%s",
             t->reply_xcode[0] ? t->reply_xcode : temp ? "4.7.1" : "5.7.1");
    if (t->reply_text && *t->reply_text)
        score_reply_safe(t->reply_text, o->text, sizeof o->text);
    else
        default_text(o, lk, nlk, client_ip);
}
