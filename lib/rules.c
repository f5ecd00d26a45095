#include "rules.h"

#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <math.h>
#include <stddef.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "addr.h"
#include "esc.h"
#include "timeutil.h"
#include "sbuf.h"
#include "xalloc.h"

#define RULES_MAX_FILE (4 * 1024 * 1024)
#define RULES_MAX_TOKEN 1024

/* --- tokens --- */

enum tok_kind { TOK_END = 0, TOK_WORD, TOK_STRING, TOK_COMMA };

struct tok {
    enum tok_kind kind;
    char text[RULES_MAX_TOKEN];
    int line, col;
};

struct lexer {
    const char *fname;
    const char *p, *end;
    int line, col;          /* of *p */
    char *err;
    size_t errlen;
};

static int lex_error(struct lexer *lx, int line, int col, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static int lex_error(struct lexer *lx, int line, int col, const char *fmt, ...)
{
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    if (lx->errlen)
        snprintf(lx->err, lx->errlen, "%s:%d:%d: %s", lx->fname, line, col, msg);
    return -1;
}

static void advance(struct lexer *lx)
{
    if (*lx->p == '\n') {
        lx->line++;
        lx->col = 1;
    } else if (((unsigned char)*lx->p & 0xC0) != 0x80) {
        lx->col++;           /* columns count characters, not UTF-8 bytes */
    }
    lx->p++;
}

/* Next token on the current logical line. A newline ends the statement
 * (TOK_END) unless escaped with a backslash. Returns 0 or -1. */
static int next_tok(struct lexer *lx, struct tok *t)
{
    for (;;) {
        while (lx->p < lx->end && (*lx->p == ' ' || *lx->p == '\t' || *lx->p == '\r'))
            advance(lx);
        if (lx->p < lx->end && *lx->p == '#')
            while (lx->p < lx->end && *lx->p != '\n')
                advance(lx);
        if (lx->p + 1 < lx->end && lx->p[0] == '\\' &&
            (lx->p[1] == '\n' || (lx->p[1] == '\r' && lx->p + 2 < lx->end && lx->p[2] == '\n'))) {
            while (*lx->p != '\n')
                advance(lx);
            advance(lx);
            continue;
        }
        break;
    }
    t->line = lx->line;
    t->col = lx->col;
    t->text[0] = '\0';
    if (lx->p >= lx->end || *lx->p == '\n') {
        t->kind = TOK_END;
        return 0;
    }
    unsigned char c = (unsigned char)*lx->p;
    if (c == ',') {
        t->kind = TOK_COMMA;
        advance(lx);
        return 0;
    }
    size_t n = 0;
    if (c == '"') {
        t->kind = TOK_STRING;
        advance(lx);
        for (;;) {
            if (lx->p >= lx->end || *lx->p == '\n')
                return lex_error(lx, t->line, t->col, "unterminated string");
            char ch = *lx->p;
            if (ch == '"') {
                advance(lx);
                break;
            }
            if (ch == '\\' && lx->p + 1 < lx->end && lx->p[1] != '\n') {
                advance(lx);
                ch = *lx->p;
            }
            if (ch == '\0' || ((unsigned char)ch < 0x20 && ch != '\t'))
                return lex_error(lx, lx->line, lx->col, "control character in string");
            if (n + 1 >= sizeof t->text)
                return lex_error(lx, t->line, t->col, "string longer than %d bytes",
                                 RULES_MAX_TOKEN - 1);
            t->text[n++] = ch;
            advance(lx);
        }
    } else {
        t->kind = TOK_WORD;
        while (lx->p < lx->end) {
            unsigned char ch = (unsigned char)*lx->p;
            if (ch == ' ' || ch == '\t' || ch == '\r' || ch == '\n' || ch == ',' ||
                ch == '#' || ch == '"')
                break;
            if (ch == '\\' && lx->p + 1 < lx->end &&
                (lx->p[1] == '\n' || lx->p[1] == '\r'))
                break;   /* a continuation ends the word */
            if (ch < 0x20 || ch == 0x7f)
                return lex_error(lx, lx->line, lx->col, "control character 0x%02x", ch);
            if (n + 1 >= sizeof t->text)
                return lex_error(lx, t->line, t->col, "word longer than %d bytes",
                                 RULES_MAX_TOKEN - 1);
            t->text[n++] = (char)ch;
            advance(lx);
        }
    }
    t->text[n] = '\0';
    return 0;
}

/* Skip the rest of a line after an error-free statement end. */
static void to_next_line(struct lexer *lx)
{
    if (lx->p < lx->end && *lx->p == '\n')
        advance(lx);
}

/* --- patterns --- */

static void lower(char *s)
{
    for (; *s; s++)
        *s = (char)tolower((unsigned char)*s);
}

/* Domain text of a pattern: validated with the address parser so names obey
 * the same rules as in mail. */
static int check_domain(const char *d)
{
    char tmp[ADDR_MAX_DOMAIN + 8], err[64];
    struct addr a;
    if (!*d || strlen(d) > ADDR_MAX_DOMAIN)
        return -1;
    snprintf(tmp, sizeof tmp, "x@%s", d);
    return addr_parse(tmp, strlen(tmp), &a, err, sizeof err) == 0 &&
                   a.kind == ADDR_D_NAME && !a.tricks
               ? 0 : -1;
}

static void pat_clear(struct rule_pat *p)
{
    free(p->local);
    free(p->domain);
    p->local = p->domain = NULL;
}

static int parse_pat(const char *v, enum rule_subject subj, struct rule_pat *p,
                     const char **why)
{
    memset(p, 0, sizeof *p);
    char *s = xstrdup(v);
    lower(s);
    if (subj == RULE_SENDER && !strcmp(s, "<>")) {
        p->kind = RULE_PAT_NULL;
        free(s);
        return 0;
    }
    char *at = subj == RULE_HELO ? NULL : strrchr(s, '@');
    const char *dom = s;
    *why = NULL;
    if (at) {
        *at = '\0';
        dom = at + 1;
        if (*s && !*dom)
            p->kind = RULE_PAT_LOCAL;
        else if (*s)
            p->kind = RULE_PAT_ADDRESS;
        else if (!*dom)
            *why = "expected user@domain, user@, @domain or domain";
        else
            p->kind = RULE_PAT_DOMAIN;
        if (*s && strpbrk(s, "\"\\ "))
            *why = "quoted local parts are not supported in patterns";
        if (*s)
            p->local = xstrdup(s);
    } else if (s[0] == '.') {
        p->kind = RULE_PAT_SUBDOMAIN;
        dom = s + 1;
        if (!*dom)
            *why = "expected a domain after '.'";
    } else {
        p->kind = RULE_PAT_DOMAIN;
    }
    if (!*why && *dom) {
        char d[ADDR_MAX_DOMAIN + 2];
        snprintf(d, sizeof d, "%s", dom);
        size_t dl = strlen(d);
        if (dl && d[dl - 1] == '.')
            d[dl - 1] = '\0';
        if (!*d || (check_domain(d) < 0 && subj != RULE_HELO))
            *why = "not a valid domain name";
        else
            p->domain = xstrdup(d);
    }
    free(s);
    if (*why) {
        pat_clear(p);
        return -1;
    }
    return 0;
}

static void rule_clear(struct rule *r)
{
    cidrset_free(r->nets);
    for (size_t i = 0; i < r->npats; i++)
        pat_clear(&r->pats[i]);
    free(r->pats);
    free(r->reply_text);
    free(r->where);
}

struct ruleset *rules_new(void)
{
    return xcalloc(1, sizeof(struct ruleset));
}

void rules_free(struct ruleset *rs)
{
    if (!rs)
        return;
    for (size_t i = 0; i < rs->n; i++)
        rule_clear(&rs->v[i]);
    free(rs->v);
    for (size_t i = 0; i < rs->nzones; i++)
        dnsbl_zone_clear(&rs->zones[i].z);
    free(rs->zones);
    for (size_t i = 0; i < rs->nthresholds; i++) {
        free(rs->thresholds[i].reply_text);
        free(rs->thresholds[i].where);
    }
    free(rs->thresholds);
    for (size_t i = 0; i < rs->snow.nthresholds; i++) {
        free(rs->snow.thresholds[i].reply_text);
        free(rs->snow.thresholds[i].where);
    }
    free(rs->snow.thresholds);
    free(rs);
}

/* "550 5.7.1 text", "450 4.7.1 text", "550 text" or just "text". */
static int parse_reply(struct rule *r, const char *s, const char **why)
{
    int code = 550;
    char xcode[16] = "5.7.1";
    const char *p = s;
    if (isdigit((unsigned char)p[0]) && isdigit((unsigned char)p[1]) &&
        isdigit((unsigned char)p[2]) && (p[3] == ' ' || !p[3])) {
        code = (p[0] - '0') * 100 + (p[1] - '0') * 10 + (p[2] - '0');
        if (code < 400 || code > 599) {
            *why = "reply code must be 4xx or 5xx";
            return -1;
        }
        p += 3;
        while (*p == ' ')
            p++;
        int a, b, c, n = 0;
        if (sscanf(p, "%1d.%3d.%3d%n", &a, &b, &c, &n) == 3 && (p[n] == ' ' || !p[n])) {
            if (a != code / 100) {
                *why = "enhanced status code class must match the reply code";
                return -1;
            }
            snprintf(xcode, sizeof xcode, "%d.%d.%d", a, b, c);
            p += n;
            while (*p == ' ')
                p++;
        } else {
            snprintf(xcode, sizeof xcode, "%d.7.1", code / 100);
        }
    }
    if (!*p) {
        *why = "reply needs a text";
        return -1;
    }
    for (const char *q = p; *q; q++)
        if ((unsigned char)*q < 0x20 || (unsigned char)*q >= 0x7f || *q == '%') {
            /* libmilter's smfi_setreply forbids '%'-less percent signs and
             * SMTP replies are 7-bit: keep reply texts plain ASCII. */
            *why = "reply text must be printable ASCII without '%'";
            return -1;
        }
    r->reply_code = code;
    snprintf(r->reply_xcode, sizeof r->reply_xcode, "%s", xcode);
    r->reply_text = xstrdup(p);
    return 0;
}


/* A weight or a score: a finite decimal number within +-1000. */
static int parse_number(struct lexer *lx, const struct tok *t, double *out)
{
    char *end;
    double v = t->kind == TOK_WORD ? strtod(t->text, &end) : 0;
    if (t->kind != TOK_WORD || end == t->text || *end || !isfinite(v) ||
        v < -1000 || v > 1000)
        return lex_error(lx, t->line, t->col, "expected a number from -1000 to 1000");
    *out = v;
    return 0;
}

static int parse_listrule(struct lexer *lx, struct ruleset *rs, const struct tok *verb)
{
    struct rule r;
    memset(&r, 0, sizeof r);
    r.verb = !strcmp(verb->text, "allow") ? RULE_ALLOW
             : !strcmp(verb->text, "deny") ? RULE_DENY : RULE_SCORE;
    struct tok t;
    if (next_tok(lx, &t) < 0)
        return -1;
    if (r.verb == RULE_SCORE) {
        if (parse_number(lx, &t, &r.weight) < 0 || next_tok(lx, &t) < 0)
            return -1;
    }
    static const char *subjects[] = { "client", "sender", "rcpt", "helo" };
    const char *verb_text = r.verb == RULE_SCORE ? "score N" : verb->text;
    size_t k = 0;
    while (t.kind == TOK_WORD && k < 4 && strcmp(t.text, subjects[k]))
        k++;
    if (t.kind != TOK_WORD || k == 4)
        return lex_error(lx, t.line, t.col,
                         "expected client, sender, rcpt or helo after '%s'", verb_text);
    r.subject = (enum rule_subject)k;
    if (r.subject == RULE_CLIENT)
        r.nets = cidrset_new();
    size_t nvalues = 0;
    int rc = 0;
    for (;;) {
        if ((rc = next_tok(lx, &t)) < 0)
            break;
        if (t.kind == TOK_END)
            break;
        if (t.kind == TOK_COMMA)
            continue;
        if (t.kind == TOK_WORD && !strcmp(t.text, "reply")) {
            struct tok s;
            const char *why = NULL;
            if ((rc = next_tok(lx, &s)) < 0)
                break;
            if (r.verb != RULE_DENY) {
                rc = lex_error(lx, t.line, t.col, "only deny rules and thresholds take a reply");
                break;
            }
            if (s.kind != TOK_STRING) {
                rc = lex_error(lx, s.line, s.col, "reply needs a quoted text");
                break;
            }
            if (r.reply_text) {
                rc = lex_error(lx, t.line, t.col, "only one reply per rule");
                break;
            }
            if (parse_reply(&r, s.text, &why) < 0) {
                rc = lex_error(lx, s.line, s.col, "%s", why);
                break;
            }
            continue;
        }
        if (r.reply_text) {
            rc = lex_error(lx, t.line, t.col, "values must come before reply");
            break;
        }
        if (r.subject == RULE_CLIENT) {
            char why[160];
            if (cidrset_add_str(r.nets, t.text, why, sizeof why) < 0) {
                rc = lex_error(lx, t.line, t.col, "%s", why);
                break;
            }
        } else {
            struct rule_pat p;
            const char *why = NULL;
            if (parse_pat(t.text, r.subject, &p, &why) < 0) {
                rc = lex_error(lx, t.line, t.col, "%s: '%s'", why, t.text);
                break;
            }
            r.pats = xrealloc(r.pats, (r.npats + 1) * sizeof *r.pats);
            r.pats[r.npats++] = p;
        }
        nvalues++;
    }
    if (!rc && !nvalues)
        rc = lex_error(lx, t.line, t.col, "'%s %s' needs at least one value",
                       verb->text, subjects[k]);
    if (rc) {
        rule_clear(&r);
        return -1;
    }
    if (r.verb == RULE_DENY && !r.reply_text) {
        r.reply_code = 550;
        snprintf(r.reply_xcode, sizeof r.reply_xcode, "5.7.1");
        r.reply_text = xstrdup("Access denied (kanjiki)");
    }
    struct sbuf w = SBUF_INIT;
    sbuf_addf(&w, "%s:%d", lx->fname, verb->line);
    r.where = sbuf_take(&w);
    rs->v = xrealloc(rs->v, (rs->n + 1) * sizeof *rs->v);
    rs->v[rs->n++] = r;
    return 0;
}


/* Comma-separated answer codes after "codes" or "errors". */
static int parse_codes(struct lexer *lx, struct dnsbl_codes *c, struct tok *t)
{
    size_t n = 0;
    for (;;) {
        if (next_tok(lx, t) < 0)
            return -1;
        if (t->kind == TOK_COMMA)
            continue;
        if (t->kind != TOK_WORD || (n && !strchr("0123456789m", t->text[0])))
            break;
        char why[160];
        if (dnsbl_codes_add(c, t->text, why, sizeof why) < 0)
            return lex_error(lx, t->line, t->col, "%s", why);
        n++;
    }
    if (!n)
        return lex_error(lx, t->line, t->col, "expected answer codes (127.0.0.2, "
                         "127.0.0.2-127.0.0.11 or mask:0x0e)");
    return 1;   /* t holds the next token already */
}

static int parse_check(struct lexer *lx, unsigned *check, struct tok *t)
{
    *check = 0;
    for (;;) {
        if (next_tok(lx, t) < 0)
            return -1;
        if (t->kind == TOK_COMMA)
            continue;
        unsigned bit = t->kind != TOK_WORD ? 0
                       : !strcmp(t->text, "helo") ? RULES_CHECK_HELO
                       : !strcmp(t->text, "sender") ? RULES_CHECK_SENDER
                       : !strcmp(t->text, "from") ? RULES_CHECK_FROM : 0;
        if (!bit)
            break;
        *check |= bit;
    }
    if (!*check)
        return lex_error(lx, t->line, t->col, "expected helo, sender and/or from after check");
    return 1;
}

static int parse_zone(struct lexer *lx, struct ruleset *rs, const struct tok *verb)
{
    struct tok t;
    if (next_tok(lx, &t) < 0)
        return -1;
    if (t.kind != TOK_WORD || check_domain(t.text) < 0)
        return lex_error(lx, t.line, t.col, "expected a zone name such as zen.spamhaus.org");
    struct rules_zone rz;
    memset(&rz, 0, sizeof rz);
    dnsbl_zone_defaults(&rz.z, DNSBL_IP);
    char name[ADDR_MAX_DOMAIN + 1];
    snprintf(name, sizeof name, "%.*s", (int)(sizeof name - 1), t.text);
    lower(name);
    if (name[strlen(name) - 1] == '.')
        name[strlen(name) - 1] = '\0';
    for (size_t i = 0; i < rs->nzones; i++)
        if (!strcmp(rs->zones[i].z.name, name))
            return lex_error(lx, t.line, t.col, "zone %s already defined at %s", name,
                             rs->zones[i].z.where);
    struct dnsbl_codes codes = { 0 }, errors = { 0 };
    bool have_codes = false, have_errors = false, have_kind = false;
    enum dnsbl_kind kind = DNSBL_IP;
    int rc = next_tok(lx, &t);
    while (rc >= 0 && t.kind != TOK_END) {
        int pushed = 0;   /* 1: t already holds the next token */
        if (t.kind != TOK_WORD) {
            rc = lex_error(lx, t.line, t.col, "unexpected text in zone definition");
        } else if (!strcmp(t.text, "ip") || !strcmp(t.text, "domain") ||
                   !strcmp(t.text, "uri")) {
            if (have_kind)
                rc = lex_error(lx, t.line, t.col, "zone type given twice");
            have_kind = true;
            kind = t.text[0] == 'i' ? DNSBL_IP : t.text[0] == 'd' ? DNSBL_DOMAIN : DNSBL_URI;
        } else if (!strcmp(t.text, "weight")) {
            if ((rc = next_tok(lx, &t)) >= 0)
                rc = parse_number(lx, &t, &rz.z.weight);
        } else if (!strcmp(t.text, "codes")) {
            rc = parse_codes(lx, &codes, &t);
            pushed = rc > 0;
            have_codes = have_codes || pushed;
        } else if (!strcmp(t.text, "errors")) {
            rc = parse_codes(lx, &errors, &t);
            pushed = rc > 0;
            have_errors = have_errors || pushed;
        } else if (!strcmp(t.text, "txt")) {
            rz.z.txt = true;
        } else if (!strcmp(t.text, "timeout")) {
            int64_t ms;
            if ((rc = next_tok(lx, &t)) >= 0 &&
                (t.kind != TOK_WORD || tu_parse_duration_ms(t.text, &ms) < 0 || ms < 10 ||
                 ms > 60000))
                rc = lex_error(lx, t.line, t.col, "expected a timeout from 10ms to 60s");
            else if (rc >= 0)
                rz.z.timeout_ms = (int)ms;
        } else if (!strcmp(t.text, "check")) {
            rc = parse_check(lx, &rz.check, &t);
            pushed = rc > 0;
        } else {
            rc = lex_error(lx, t.line, t.col, "unknown zone option '%s' (ip domain uri "
                           "weight codes errors txt timeout check)", t.text);
        }
        if (rc >= 0 && !pushed)
            rc = next_tok(lx, &t);
    }
    if (rc < 0)
        return -1;
    /* the kind decides the default error codes; explicit lists replace them */
    double weight = rz.z.weight;
    bool txt = rz.z.txt;
    int timeout = rz.z.timeout_ms;
    dnsbl_zone_defaults(&rz.z, kind);
    rz.z.weight = weight;
    rz.z.txt = txt;
    rz.z.timeout_ms = timeout;
    if (have_codes)
        rz.z.codes = codes;
    if (have_errors)
        rz.z.errors = errors;
    if (kind == DNSBL_DOMAIN && !rz.check)
        rz.check = RULES_CHECK_HELO | RULES_CHECK_SENDER | RULES_CHECK_FROM;
    if (kind != DNSBL_DOMAIN && rz.check)
        return lex_error(lx, verb->line, verb->col, "check applies to domain zones only");
    rz.z.name = xstrdup(name);
    struct sbuf w = SBUF_INIT;
    sbuf_addf(&w, "%s:%d", lx->fname, verb->line);
    rz.z.where = sbuf_take(&w);
    rs->zones = xrealloc(rs->zones, (rs->nzones + 1) * sizeof *rs->zones);
    rs->zones[rs->nzones++] = rz;
    return 0;
}

static int parse_spf(struct lexer *lx, struct ruleset *rs, const struct tok *verb)
{
    (void)verb;
    struct tok t, w;
    enum rules_spf r;
    if (next_tok(lx, &t) < 0)
        return -1;
    if (t.kind != TOK_WORD || rules_spf_parse(t.text, &r) < 0)
        return lex_error(lx, t.line, t.col, "expected an SPF result (pass fail softfail "
                         "neutral none temperror permerror)");
    double v;
    if (next_tok(lx, &w) < 0 || parse_number(lx, &w, &v) < 0)
        return -1;
    if (next_tok(lx, &t) < 0)
        return -1;
    if (t.kind != TOK_END)
        return lex_error(lx, t.line, t.col, "unexpected text after the SPF weight");
    rs->spf_weight[r] = v;
    rs->spf_used = true;
    return 0;
}

/* One threshold after its verb ("threshold" or "snowshoe threshold") into
 * the list *v (highest first). early: whether the `early` flag is known. */
static int parse_threshold_into(struct lexer *lx, struct rules_threshold **v, size_t *nv,
                                const struct tok *verb, bool early_ok)
{
    struct rules_threshold th;
    memset(&th, 0, sizeof th);
    struct tok t;
    if (next_tok(lx, &t) < 0 || parse_number(lx, &t, &th.score) < 0)
        return -1;
    if (next_tok(lx, &t) < 0)
        return -1;
    static const struct { const char *name; enum verdict_action a; } acts[] = {
        { "tag", VERDICT_TAG }, { "quarantine", VERDICT_QUARANTINE },
        { "tempfail", VERDICT_TEMPFAIL }, { "reject", VERDICT_REJECT },
    };
    size_t k = 0;
    while (k < 4 && (t.kind != TOK_WORD || strcmp(t.text, acts[k].name)))
        k++;
    if (k == 4)
        return lex_error(lx, t.line, t.col, "expected tag, quarantine, tempfail or reject");
    th.action = acts[k].a;
    for (size_t i = 0; i < *nv; i++)
        if ((*v)[i].score == th.score)
            return lex_error(lx, verb->line, verb->col, "threshold %g already defined at %s",
                             th.score, (*v)[i].where);
    struct rule tmp;
    memset(&tmp, 0, sizeof tmp);
    int rc = 0;
    while (rc >= 0 && (rc = next_tok(lx, &t)) >= 0 && t.kind != TOK_END) {
        const char *why = NULL;
        if (early_ok && t.kind == TOK_WORD && !strcmp(t.text, "early")) {
            th.early = true;
        } else if (t.kind == TOK_WORD && !strcmp(t.text, "reply")) {
            struct tok r;
            if ((rc = next_tok(lx, &r)) < 0)
                break;
            if (th.action != VERDICT_TEMPFAIL && th.action != VERDICT_REJECT)
                rc = lex_error(lx, t.line, t.col, "only tempfail and reject send a reply");
            else if (r.kind != TOK_STRING)
                rc = lex_error(lx, r.line, r.col, "reply needs a quoted text");
            else if (tmp.reply_text)
                rc = lex_error(lx, t.line, t.col, "only one reply per threshold");
            else if (parse_reply(&tmp, r.text, &why) < 0)
                rc = lex_error(lx, r.line, r.col, "%s", why);
            else if ((tmp.reply_code >= 500) != (th.action == VERDICT_REJECT))
                rc = lex_error(lx, r.line, r.col, "%s needs a %s reply code",
                               acts[k].name, th.action == VERDICT_REJECT ? "5xx" : "4xx");
        } else {
            rc = lex_error(lx, t.line, t.col, early_ok ? "unexpected text (reply \"TEXT\" or early)"
                                                       : "unexpected text (reply \"TEXT\")");
        }
    }
    if (rc < 0) {
        free(tmp.reply_text);
        return -1;
    }
    if (tmp.reply_text) {
        th.reply_code = tmp.reply_code;
        snprintf(th.reply_xcode, sizeof th.reply_xcode, "%s", tmp.reply_xcode);
        th.reply_text = tmp.reply_text;
    } else if (th.action == VERDICT_TEMPFAIL || th.action == VERDICT_REJECT) {
        bool rej = th.action == VERDICT_REJECT;
        th.reply_code = rej ? 550 : 451;
        snprintf(th.reply_xcode, sizeof th.reply_xcode, "%s", rej ? "5.7.1" : "4.7.1");
        /* no text: the reply names the listing that decided (lib/score.c) */
    }
    struct sbuf w = SBUF_INIT;
    sbuf_addf(&w, "%s:%d", lx->fname, verb->line);
    th.where = sbuf_take(&w);
    /* keep highest first so the first one reached is the answer */
    *v = xrealloc(*v, (*nv + 1) * sizeof **v);
    size_t at = 0;
    while (at < *nv && (*v)[at].score > th.score)
        at++;
    memmove(&(*v)[at + 1], &(*v)[at], (*nv - at) * sizeof **v);
    (*v)[at] = th;
    (*nv)++;
    return 0;
}

static int parse_threshold(struct lexer *lx, struct ruleset *rs, const struct tok *verb)
{
    return parse_threshold_into(lx, &rs->thresholds, &rs->nthresholds, verb, true);
}

/* The snowshoe statement's settings: name, field, bounds. */
static const struct {
    const char *name;
    size_t off;
    int64_t min_ms, max_ms;
} snow_durations[] = {
    { "window", offsetof(struct rules_snowshoe, window_ms), 60000, 90 * 86400000LL },
    { "short-window", offsetof(struct rules_snowshoe, short_window_ms), 60000, 90 * 86400000LL },
    { "long-window", offsetof(struct rules_snowshoe, long_window_ms), 60000, 90 * 86400000LL },
    { "new-domain", offsetof(struct rules_snowshoe, new_domain_ms), 60000, 365 * 86400000LL },
    { "aged-domain", offsetof(struct rules_snowshoe, aged_domain_ms), 60000, 365 * 86400000LL },
    { "memory-halflife", offsetof(struct rules_snowshoe, halflife_ms), 60000, 365 * 86400000LL },
    { "retry-delay", offsetof(struct rules_snowshoe, retry_delay_ms), 0, 86400000LL },
    { "retry-window", offsetof(struct rules_snowshoe, retry_window_ms), 60000, 30 * 86400000LL },
};
#define N_SNOW_DURATIONS (sizeof snow_durations / sizeof snow_durations[0])

static int64_t *snow_field(struct rules_snowshoe *sn, size_t k)
{
    return (int64_t *)((char *)sn + snow_durations[k].off);
}

static int parse_snowshoe(struct lexer *lx, struct ruleset *rs, const struct tok *verb)
{
    struct tok t;
    if (next_tok(lx, &t) < 0)
        return -1;
    if (t.kind == TOK_WORD && !strcmp(t.text, "threshold"))
        return parse_threshold_into(lx, &rs->snow.thresholds, &rs->snow.nthresholds, verb,
                                    false);
    size_t k = 0;
    while (k < N_SNOW_DURATIONS && (t.kind != TOK_WORD || strcmp(t.text, snow_durations[k].name)))
        k++;
    if (k == N_SNOW_DURATIONS)
        return lex_error(lx, t.line, t.col, "expected threshold, window, short-window, "
                         "long-window, new-domain, aged-domain, memory-halflife, "
                         "retry-delay or retry-window after 'snowshoe'");
    struct tok d;
    int64_t ms;
    if (next_tok(lx, &d) < 0)
        return -1;
    if (d.kind != TOK_WORD || tu_parse_duration_ms(d.text, &ms) < 0 ||
        ms < snow_durations[k].min_ms || ms > snow_durations[k].max_ms)
        return lex_error(lx, d.line, d.col, "expected a duration from %llds to %lldd "
                         "(e.g. 30m, 24h, 7d)",
                         (long long)snow_durations[k].min_ms / 1000,
                         (long long)snow_durations[k].max_ms / 86400000LL);
    if (next_tok(lx, &d) < 0)
        return -1;
    if (d.kind != TOK_END)
        return lex_error(lx, d.line, d.col, "unexpected text after the duration");
    *snow_field(&rs->snow, k) = ms ? ms : 1;   /* 0 means "default": 0s is 1 ms */
    return 0;
}

/* The verb table: later statement kinds (zones, weights, thresholds) are
 * added here with their own parse function. */
static const struct {
    const char *verb;
    int (*parse)(struct lexer *, struct ruleset *, const struct tok *);
} verbs[] = {
    { "allow", parse_listrule },
    { "deny", parse_listrule },
    { "score", parse_listrule },
    { "zone", parse_zone },
    { "spf", parse_spf },
    { "threshold", parse_threshold },
    { "snowshoe", parse_snowshoe },
};

/* What the milter asks of a ruleset for every message, worked out once. */
static void summarise(struct ruleset *rs)
{
    rs->scoring = rs->nzones || rs->spf_used || rs->nthresholds;
    for (size_t i = 0; i < rs->n; i++)
        rs->scoring |= rs->v[i].verb == RULE_SCORE;
    rs->early_refusal = false;
    for (size_t i = 0; i < rs->nthresholds; i++)
        rs->early_refusal |= rs->thresholds[i].early &&
                             (rs->thresholds[i].action == VERDICT_TEMPFAIL ||
                              rs->thresholds[i].action == VERDICT_REJECT);
    rs->uri_zones = false;
    for (size_t i = 0; i < rs->nzones; i++)
        rs->uri_zones |= rs->zones[i].z.kind == DNSBL_URI;
}

int rules_parse(struct ruleset *rs, const char *fname, const char *text,
                size_t len, char *err, size_t errlen)
{
    struct lexer lx = { fname, text, text + len, 1, 1, err, errlen };
    const char *nul = memchr(text, '\0', len);
    if (nul) {
        /* report where the NUL is, counting lines up to it */
        int line = 1, col = 1;
        for (const char *q = text; q < nul; q++) {
            if (*q == '\n') {
                line++;
                col = 1;
            } else if (((unsigned char)*q & 0xC0) != 0x80) {
                col++;
            }
        }
        return lex_error(&lx, line, col, "NUL byte in rules file");
    }
    while (lx.p < lx.end) {
        struct tok t;
        if (next_tok(&lx, &t) < 0)
            return -1;
        if (t.kind == TOK_END) {
            to_next_line(&lx);
            continue;
        }
        if (t.kind != TOK_WORD)
            return lex_error(&lx, t.line, t.col, "expected a statement (allow, deny, score, zone, spf, threshold or snowshoe)");
        size_t k = 0;
        while (k < sizeof verbs / sizeof verbs[0] && strcmp(verbs[k].verb, t.text))
            k++;
        if (k == sizeof verbs / sizeof verbs[0]) {
            struct sbuf b = SBUF_INIT;
            esc_text_s(&b, t.text);
            lex_error(&lx, t.line, t.col, "unknown statement '%s' (expected allow, deny, score, zone, spf, threshold or snowshoe)",
                      sbuf_str(&b));
            sbuf_free(&b);
            return -1;
        }
        if (verbs[k].parse(&lx, rs, &t) < 0)
            return -1;
        to_next_line(&lx);
    }
    rs->nfiles++;
    summarise(rs);
    return 0;
}

static int cmp_names(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static int read_file(const char *path, char **text, size_t *len, char *err, size_t errlen)
{
    FILE *f = fopen(path, "rb");
    if (!f) {
        snprintf(err, errlen, "%s: cannot open: %s", path, strerror(errno));
        return -1;
    }
    struct sbuf b = SBUF_INIT;
    char buf[8192];
    size_t n;
    while ((n = fread(buf, 1, sizeof buf, f)) > 0) {
        sbuf_add(&b, buf, n);
        if (b.len > RULES_MAX_FILE) {
            snprintf(err, errlen, "%s: larger than %d bytes", path, RULES_MAX_FILE);
            fclose(f);
            sbuf_free(&b);
            return -1;
        }
    }
    int bad = ferror(f);
    fclose(f);
    if (bad) {
        snprintf(err, errlen, "%s: read error", path);
        sbuf_free(&b);
        return -1;
    }
    *len = b.len;
    *text = sbuf_take(&b);
    return 0;
}

int rules_load_dir(const char *dir, struct ruleset **out, char *err, size_t errlen)
{
    DIR *d = opendir(dir);
    if (!d) {
        snprintf(err, errlen, "%s: cannot open rules directory: %s", dir, strerror(errno));
        return -1;
    }
    char **names = NULL;
    size_t n = 0;
    struct dirent *e;
    while ((e = readdir(d))) {
        size_t l = strlen(e->d_name);
        if (l > 6 && e->d_name[0] != '.' && !strcmp(e->d_name + l - 6, ".rules")) {
            names = xrealloc(names, (n + 1) * sizeof *names);
            names[n++] = xstrdup(e->d_name);
        }
    }
    closedir(d);
    if (n)
        qsort(names, n, sizeof *names, cmp_names);
    struct ruleset *rs = rules_new();
    int rc = 0;
    for (size_t i = 0; i < n; i++) {
        struct sbuf path = SBUF_INIT;
        sbuf_addf(&path, "%s/%s", dir, names[i]);
        char *text = NULL;
        size_t len = 0;
        if (!rc)
            rc = read_file(sbuf_str(&path), &text, &len, err, errlen);
        if (!rc)
            rc = rules_parse(rs, sbuf_str(&path), text, len, err, errlen);
        free(text);
        sbuf_free(&path);
        free(names[i]);
    }
    free(names);
    if (!rc && rules_check(rs, err, errlen) < 0) {
        /* name the directory: the statements may be in different files */
        char why[400];
        snprintf(why, sizeof why, "%s", err);
        snprintf(err, errlen, "%s: %s", dir, why);
        rc = -1;
    }
    if (rc) {
        rules_free(rs);
        return -1;
    }
    *out = rs;
    return 0;
}

int rules_check(const struct ruleset *rs, char *err, size_t errlen)
{
    struct snowshoe_cfg c;
    snowshoe_cfg_defaults(&c);
    rules_snowshoe_cfg(rs, &c);
    int64_t delay = rs->snow.retry_delay_ms ? rs->snow.retry_delay_ms : RULES_SNOW_RETRY_DELAY_MS;
    int64_t window = rs->snow.retry_window_ms ? rs->snow.retry_window_ms
                                              : RULES_SNOW_RETRY_WINDOW_MS;
    if (delay >= window) {
        snprintf(err, errlen, "snowshoe retry-delay (%llds) must be shorter than retry-window "
                 "(%llds): no retry would ever count", (long long)delay / 1000,
                 (long long)window / 1000);
        return -1;
    }
    if (c.short_window_ms > c.window_ms || c.window_ms > c.long_window_ms) {
        snprintf(err, errlen, "snowshoe windows must grow: short-window (%llds) <= window "
                 "(%llds) <= long-window (%llds)", (long long)c.short_window_ms / 1000,
                 (long long)c.window_ms / 1000, (long long)c.long_window_ms / 1000);
        return -1;
    }
    return 0;
}

/* --- matching --- */

static bool subdomain_of(const char *name, const char *parent)
{
    size_t n = strlen(name), p = strlen(parent);
    if (n && name[n - 1] == '.')
        n--;
    return n > p + 1 && name[n - p - 1] == '.' && !strncasecmp(name + n - p, parent, p);
}

static bool pat_match(const struct rule_pat *p, bool is_null, const char *local,
                      const char *domain)
{
    if (p->kind == RULE_PAT_NULL)
        return is_null;
    if (is_null)
        return false;
    switch (p->kind) {
    case RULE_PAT_ADDRESS:
        return local && domain && !strcasecmp(p->local, local) &&
               addr_domain_eq(p->domain, domain);
    case RULE_PAT_LOCAL:
        return local && !strcasecmp(p->local, local);
    case RULE_PAT_DOMAIN:
        return domain && addr_domain_eq(p->domain, domain);
    case RULE_PAT_SUBDOMAIN:
        return domain && subdomain_of(domain, p->domain);
    default:
        return false;
    }
}

static bool rule_matches(const struct rule *r, const struct rules_input *in)
{
    for (size_t i = 0; r->subject != RULE_CLIENT && i < r->npats; i++) {
        const struct rule_pat *p = &r->pats[i];
        switch (r->subject) {
        case RULE_SENDER:
            if (pat_match(p, in->sender_null, in->sender_local, in->sender_domain))
                return true;
            break;
        case RULE_RCPT:
            if (pat_match(p, false, in->rcpt_local, in->rcpt_domain))
                return true;
            break;
        case RULE_HELO:
            if (in->helo && (p->kind == RULE_PAT_SUBDOMAIN
                                 ? subdomain_of(in->helo, p->domain)
                                 : addr_domain_eq(in->helo, p->domain)))
                return true;
            break;
        default:
            break;
        }
    }
    return r->subject == RULE_CLIENT && in->client && cidrset_contains(r->nets, in->client);
}

const struct rule *rules_match(const struct ruleset *rs, const struct rules_input *in)
{
    for (size_t i = 0; rs && i < rs->n; i++)
        if (rs->v[i].verb != RULE_SCORE && rule_matches(&rs->v[i], in))
            return &rs->v[i];
    return NULL;
}

double rules_score(const struct ruleset *rs, const struct rules_input *in, size_t *nhit)
{
    double total = 0;
    size_t hits = 0;
    for (size_t i = 0; rs && i < rs->n; i++)
        if (rs->v[i].verb == RULE_SCORE && rule_matches(&rs->v[i], in)) {
            total += rs->v[i].weight;
            hits++;
        }
    if (nhit)
        *nhit = hits;
    return total;
}

const struct rules_threshold *rules_threshold_for(const struct ruleset *rs, double total,
                                                  bool at_rcpt)
{
    for (size_t i = 0; rs && i < rs->nthresholds; i++) {
        const struct rules_threshold *t = &rs->thresholds[i];
        if (total >= t->score && (!at_rcpt || t->early))
            return t;
    }
    return NULL;
}

/* The built-in snowshoe thresholds; their replies name the block (the
 * milter writes them, so reply_text stays NULL). */
static const struct rules_threshold snow_defaults[] = {
    { SNOWSHOE_REJECT, VERDICT_REJECT, 550, "5.7.1", NULL, false, (char *)"built-in" },
    { SNOWSHOE_TEMPFAIL, VERDICT_TEMPFAIL, 451, "4.7.1", NULL, false, (char *)"built-in" },
    { SNOWSHOE_TAG, VERDICT_TAG, 0, "", NULL, false, (char *)"built-in" },
};

const struct rules_threshold *rules_snowshoe_threshold_for(const struct ruleset *rs,
                                                           double score, bool cluster)
{
    const struct rules_threshold *v = snow_defaults;
    size_t n = sizeof snow_defaults / sizeof snow_defaults[0];
    if (rs && rs->snow.nthresholds) {
        v = rs->snow.thresholds;
        n = rs->snow.nthresholds;
    }
    for (size_t i = 0; i < n; i++) {
        bool refuses = v[i].action == VERDICT_TEMPFAIL || v[i].action == VERDICT_REJECT;
        if (score >= v[i].score && (cluster || !refuses))
            return &v[i];
    }
    return NULL;
}

void rules_snowshoe_cfg(const struct ruleset *rs, struct snowshoe_cfg *cfg)
{
    if (!rs)
        return;
    const struct rules_snowshoe *sn = &rs->snow;
    int64_t *dst[] = { &cfg->window_ms, &cfg->short_window_ms, &cfg->long_window_ms,
                       &cfg->new_domain_ms, &cfg->aged_domain_ms, &cfg->memory_halflife_ms };
    const int64_t src[] = { sn->window_ms, sn->short_window_ms, sn->long_window_ms,
                            sn->new_domain_ms, sn->aged_domain_ms, sn->halflife_ms };
    for (size_t i = 0; i < sizeof src / sizeof src[0]; i++)
        if (src[i])
            *dst[i] = src[i];
}

static const char *spf_names[RULES_SPF_COUNT] = {
    "none", "neutral", "pass", "fail", "softfail", "temperror", "permerror",
};

const char *rules_spf_name(enum rules_spf r)
{
    return (unsigned)r < RULES_SPF_COUNT ? spf_names[r] : "?";
}

int rules_spf_parse(const char *s, enum rules_spf *out)
{
    for (int i = 0; i < RULES_SPF_COUNT; i++)
        if (!strcmp(s, spf_names[i])) {
            *out = (enum rules_spf)i;
            return 0;
        }
    return -1;
}

const char *rules_subject_name(enum rule_subject s)
{
    static const char *names[] = { "client", "sender", "rcpt", "helo" };
    return (unsigned)s < 4 ? names[s] : "?";
}

void rules_print(const struct ruleset *rs, FILE *f)
{
    for (size_t i = 0; rs && i < rs->n; i++) {
        const struct rule *r = &rs->v[i];
        if (r->verb == RULE_SCORE)
            fprintf(f, "score %g %s", r->weight, rules_subject_name(r->subject));
        else
            fprintf(f, "%s %s", r->verb == RULE_ALLOW ? "allow" : "deny",
                    rules_subject_name(r->subject));
        for (size_t k = 0; r->nets && k < cidrset_count(r->nets); k++) {
            char buf[IP_STRLEN + 8];
            cidr_format(cidrset_get(r->nets, k), buf, sizeof buf);
            fprintf(f, "%s %s", k ? "," : "", buf);
        }
        for (size_t k = 0; k < r->npats; k++) {
            const struct rule_pat *p = &r->pats[k];
            fputs(k ? ", " : " ", f);
            switch (p->kind) {
            case RULE_PAT_NULL: fputs("<>", f); break;
            case RULE_PAT_ADDRESS: fprintf(f, "%s@%s", p->local, p->domain); break;
            case RULE_PAT_LOCAL: fprintf(f, "%s@", p->local); break;
            case RULE_PAT_DOMAIN: fputs(p->domain, f); break;
            case RULE_PAT_SUBDOMAIN: fprintf(f, ".%s", p->domain); break;
            }
        }
        if (r->verb == RULE_DENY)
            fprintf(f, " reply \"%d %s %s\"", r->reply_code, r->reply_xcode, r->reply_text);
        fprintf(f, "   # %s\n", r->where);
    }
    for (size_t i = 0; rs && i < rs->nzones; i++) {
        const struct rules_zone *z = &rs->zones[i];
        static const char *kinds[] = { "ip", "domain", "uri" };
        fprintf(f, "zone %s %s weight %g%s", z->z.name, kinds[z->z.kind], z->z.weight,
                z->z.txt ? " txt" : "");
        char codes[600];
        dnsbl_codes_format(&z->z.codes, codes, sizeof codes);
        if (*codes)
            fprintf(f, " codes %s", codes);
        dnsbl_codes_format(&z->z.errors, codes, sizeof codes);
        if (*codes)
            fprintf(f, " errors %s", codes);
        if (z->z.timeout_ms)
            fprintf(f, " timeout %dms", z->z.timeout_ms);
        if (z->check) {
            static const char *names[] = { "helo", "sender", "from" };
            const char *sep = " check ";
            for (unsigned b = 0; b < 3; b++)
                if (z->check & (1u << b)) {
                    fprintf(f, "%s%s", sep, names[b]);
                    sep = ",";
                }
        }
        fprintf(f, "   # %s\n", z->z.where);
    }
    for (int i = 0; rs && i < RULES_SPF_COUNT; i++)
        if (rs->spf_weight[i] != 0)
            fprintf(f, "spf %s %g\n", spf_names[i], rs->spf_weight[i]);
    for (size_t i = 0; rs && i < rs->nthresholds; i++) {
        const struct rules_threshold *t = &rs->thresholds[i];
        fprintf(f, "threshold %g %s", t->score, verdict_action_name(t->action));
        if (t->reply_text)
            fprintf(f, " reply \"%d %s %s\"", t->reply_code, t->reply_xcode, t->reply_text);
        fprintf(f, "%s   # %s\n", t->early ? " early" : "", t->where);
    }
    for (size_t i = 0; rs && i < rs->snow.nthresholds; i++) {
        const struct rules_threshold *t = &rs->snow.thresholds[i];
        fprintf(f, "snowshoe threshold %g %s", t->score, verdict_action_name(t->action));
        if (t->reply_text)
            fprintf(f, " reply \"%d %s %s\"", t->reply_code, t->reply_xcode, t->reply_text);
        fprintf(f, "   # %s\n", t->where);
    }
    for (size_t k = 0; rs && k < N_SNOW_DURATIONS; k++) {
        int64_t ms = *snow_field((struct rules_snowshoe *)&rs->snow, k);
        if (ms)
            fprintf(f, "snowshoe %s %llds\n", snow_durations[k].name, (long long)ms / 1000);
    }
}
