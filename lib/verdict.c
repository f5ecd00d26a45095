/* verdict: see verdict.h. Plain ownership: every string in a verdict is its
 * own heap copy, so verdict_free and verdict_clone walk the same fields. */
#include "verdict.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "esc.h"
#include "timeutil.h"
#include "sbuf.h"
#include "xalloc.h"

static const char *const action_names[VERDICT_ACTION_COUNT] = {
    "accept", "tag", "quarantine", "tempfail", "reject",
};

static const char *const stage_names[] = {
    "connect", "helo", "mail", "rcpt", "data", "eom",
};
#define STAGE_COUNT (sizeof stage_names / sizeof stage_names[0])

/* Keys a reason object always owns; an attribute of the same name would
 * give the JSON object a duplicate key, so it is left out. */
static const char *const reason_keys[] = { "check", "code", "text", "rcpt", "rule" };

struct verdict *verdict_new(enum verdict_kind kind)
{
    struct verdict *v = xcalloc(1, sizeof *v);
    v->kind = kind;
    v->stage = VSTAGE_CONNECT;
    v->action = VERDICT_ACCEPT;
    return v;
}

static void reason_free(struct verdict_reason *r)
{
    free(r->check);
    free(r->code);
    free(r->text);
    free(r->rcpt);
    free(r->rule);
    for (size_t i = 0; i < r->nattrs; i++) {
        free(r->attrs[i].key);
        free(r->attrs[i].value);
    }
    free(r->attrs);
}

static void vl_free(struct verdict_lookup *l)
{
    free(l->zone);
    free(l->kind);
    free(l->subject);
    free(l->query);
    free(l->outcome);
    free(l->answer);
    free(l->txt);
}

static void vl_copy(struct verdict_lookup *d, const struct verdict_lookup *s)
{
    *d = *s;   /* scalars; strings replaced below */
    d->zone = xstrdup(s->zone);
    d->kind = xstrdup(s->kind);
    d->subject = xstrdup(s->subject);
    d->query = xstrdup(s->query);
    d->outcome = xstrdup(s->outcome);
    d->answer = xstrdup(s->answer);
    d->txt = xstrdup(s->txt);
}

void verdict_free(struct verdict *v)
{
    if (!v)
        return;
    free(v->queue_id);
    free(v->message_id);
    free(v->client_ip);
    free(v->client_name);
    free(v->helo);
    free(v->sender);
    free(v->auth_user);
    free(v->rcpt);
    for (size_t i = 0; i < v->nrcpts; i++)
        free(v->rcpts[i]);
    free(v->rcpts);
    free(v->reply);
    for (size_t i = 0; i < v->nreasons; i++)
        reason_free(&v->reasons[i]);
    free(v->reasons);
    free(v->reasons_json);
    for (size_t i = 0; i < v->nlookups; i++)
        vl_free(&v->lookups[i]);
    free(v->lookups);
    free(v->lookups_json);
    free(v);
}

static void reason_copy(struct verdict_reason *d, const struct verdict_reason *s)
{
    d->check = xstrdup(s->check);
    d->code = xstrdup(s->code);
    d->text = xstrdup(s->text);
    d->rcpt = xstrdup(s->rcpt);
    d->rule = xstrdup(s->rule);
    d->nattrs = s->nattrs;
    d->attrs = s->nattrs ? xcalloc(s->nattrs, sizeof *d->attrs) : NULL;
    for (size_t i = 0; i < s->nattrs; i++) {
        d->attrs[i].key = xstrdup(s->attrs[i].key);
        d->attrs[i].value = xstrdup(s->attrs[i].value);
    }
}

struct verdict *verdict_clone(const struct verdict *v)
{
    if (!v)
        return NULL;
    struct verdict *c = xmalloc(sizeof *c);
    *c = *v;   /* scalars; every pointer is replaced below */
    c->queue_id = xstrdup(v->queue_id);
    c->message_id = xstrdup(v->message_id);
    c->client_ip = xstrdup(v->client_ip);
    c->client_name = xstrdup(v->client_name);
    c->helo = xstrdup(v->helo);
    c->sender = xstrdup(v->sender);
    c->auth_user = xstrdup(v->auth_user);
    c->rcpt = xstrdup(v->rcpt);
    c->rcpts = v->nrcpts ? xcalloc(v->nrcpts, sizeof *c->rcpts) : NULL;
    for (size_t i = 0; i < v->nrcpts; i++)
        c->rcpts[i] = xstrdup(v->rcpts[i]);
    c->reply = xstrdup(v->reply);
    c->reasons = v->nreasons ? xcalloc(v->nreasons, sizeof *c->reasons) : NULL;
    for (size_t i = 0; i < v->nreasons; i++)
        reason_copy(&c->reasons[i], &v->reasons[i]);
    c->reasons_json = xstrdup(v->reasons_json);
    c->lookups = v->nlookups ? xcalloc(v->nlookups, sizeof *c->lookups) : NULL;
    for (size_t i = 0; i < v->nlookups; i++)
        vl_copy(&c->lookups[i], &v->lookups[i]);
    c->lookups_json = xstrdup(v->lookups_json);
    return c;
}

void verdict_set(char **field, const char *value)
{
    char *copy = xstrdup(value);   /* before free: value may alias *field */
    free(*field);
    *field = copy;
}

void verdict_add_rcpt(struct verdict *v, const char *rcpt)
{
    v->rcpts = xrealloc(v->rcpts, (v->nrcpts + 1) * sizeof *v->rcpts);
    v->rcpts[v->nrcpts++] = xstrdup(rcpt ? rcpt : "");
}

struct verdict_reason *verdict_add_reason(struct verdict *v, const char *check,
                                          const char *code, const char *text)
{
    v->reasons = xrealloc(v->reasons, (v->nreasons + 1) * sizeof *v->reasons);
    struct verdict_reason *r = &v->reasons[v->nreasons++];
    memset(r, 0, sizeof *r);
    r->check = xstrdup(check ? check : "");
    r->code = xstrdup(code ? code : "");
    r->text = xstrdup(text ? text : "");
    return r;
}

/* Setting a key again replaces its value: JSON objects want unique keys. */
void verdict_reason_attr(struct verdict_reason *r, const char *key,
                         const char *value)
{
    if (!key)
        return;
    for (size_t i = 0; i < r->nattrs; i++) {
        if (!strcmp(r->attrs[i].key, key)) {
            verdict_set(&r->attrs[i].value, value ? value : "");
            return;
        }
    }
    r->attrs = xrealloc(r->attrs, (r->nattrs + 1) * sizeof *r->attrs);
    r->attrs[r->nattrs].key = xstrdup(key);
    r->attrs[r->nattrs].value = xstrdup(value ? value : "");
    r->nattrs++;
}

static bool is_reason_key(const char *key)
{
    for (size_t i = 0; i < sizeof reason_keys / sizeof reason_keys[0]; i++)
        if (!strcmp(key, reason_keys[i]))
            return true;
    return false;
}

static void json_member(struct sbuf *b, const char *key, const char *value)
{
    sbuf_addc(b, ',');
    esc_json_s(b, key);
    sbuf_addc(b, ':');
    esc_json_s(b, value);
}

/* ,"key":"value", or null for NULL */
static void json_member_null(struct sbuf *b, const char *key, const char *value)
{
    if (value)
        json_member(b, key, value);
    else
        sbuf_addf(b, ",\"%s\":null", key);
}

static void reason_to_json(struct sbuf *b, const struct verdict_reason *r)
{
    sbuf_adds(b, "{\"check\":");
    esc_json_s(b, r->check);
    json_member(b, "code", r->code);
    json_member(b, "text", r->text);
    if (r->rcpt)
        json_member(b, "rcpt", r->rcpt);
    if (r->rule)
        json_member(b, "rule", r->rule);
    for (size_t i = 0; i < r->nattrs; i++)
        if (!is_reason_key(r->attrs[i].key))
            json_member(b, r->attrs[i].key, r->attrs[i].value);
    sbuf_addc(b, '}');
}

char *verdict_reasons_to_json(const struct verdict *v)
{
    struct sbuf b = SBUF_INIT;
    sbuf_addc(&b, '[');
    for (size_t i = 0; i < v->nreasons; i++) {
        if (i)
            sbuf_addc(&b, ',');
        reason_to_json(&b, &v->reasons[i]);
    }
    sbuf_addc(&b, ']');
    return sbuf_take(&b);
}

void verdict_add_evidence(struct verdict *to, const struct verdict *from)
{
    for (size_t i = 0; i < from->nlookups; i++)
        verdict_add_lookup(to, &from->lookups[i]);
    if (from->nreasons) {
        to->reasons = xrealloc(to->reasons,
                               (to->nreasons + from->nreasons) * sizeof *to->reasons);
        for (size_t i = 0; i < from->nreasons; i++)
            reason_copy(&to->reasons[to->nreasons++], &from->reasons[i]);
    }
    to->scored = from->scored;
    to->score = from->score;
    to->degraded = from->degraded;
}

void verdict_add_lookup(struct verdict *v, const struct verdict_lookup *l)
{
    v->lookups = xrealloc(v->lookups, (v->nlookups + 1) * sizeof *v->lookups);
    vl_copy(&v->lookups[v->nlookups++], l);
}

static void json_opt(struct sbuf *b, const char *key, const char *value)
{
    if (value)
        json_member(b, key, value);
}

char *verdict_lookups_to_json(const struct verdict *v)
{
    struct sbuf b = SBUF_INIT;
    sbuf_addc(&b, '[');
    for (size_t i = 0; i < v->nlookups; i++) {
        const struct verdict_lookup *l = &v->lookups[i];
        sbuf_adds(&b, i ? ",{\"zone\":" : "{\"zone\":");
        esc_json_s(&b, l->zone ? l->zone : "");
        json_opt(&b, "kind", l->kind);
        json_opt(&b, "subject", l->subject);
        json_opt(&b, "query", l->query);
        json_opt(&b, "outcome", l->outcome);
        json_opt(&b, "answer", l->answer);
        json_opt(&b, "txt", l->txt);
        sbuf_addf(&b, ",\"ttl\":%d,\"latency_ms\":%lld,\"cached\":%s,\"weight\":%g}",
                  l->ttl, (long long)l->latency_ms, l->cached ? "true" : "false", l->weight);
    }
    sbuf_addc(&b, ']');
    return sbuf_take(&b);
}

char *verdict_rcpts_to_json(const struct verdict *v)
{
    struct sbuf b = SBUF_INIT;
    sbuf_addc(&b, '[');
    for (size_t i = 0; i < v->nrcpts; i++) {
        if (i)
            sbuf_addc(&b, ',');
        esc_json_s(&b, v->rcpts[i]);
    }
    sbuf_addc(&b, ']');
    return sbuf_take(&b);
}

/* brief: at most BRIEF_RCPTS recipients and no lookups (counted instead),
 * so that a log line stays under a syslog daemon's message size. */
#define BRIEF_RCPTS 20
static char *json_members(const struct verdict *v, bool brief)
{
    struct sbuf b = SBUF_INIT;
    char when[40];
    tu_format_iso_ms(v->time_ms, when, sizeof when);
    sbuf_addf(&b, "\"time\":\"%s\",\"kind\":\"%s\"", when, verdict_kind_name(v->kind));
    json_member_null(&b, "queue_id", v->queue_id);
    json_member_null(&b, "message_id", v->message_id);
    json_member_null(&b, "client_ip", v->client_ip);
    json_member_null(&b, "client_name", v->client_name);
    json_member_null(&b, "helo", v->helo);
    json_member_null(&b, "sender", v->sender);
    json_member_null(&b, "auth_user", v->auth_user);
    if (v->kind == VERDICT_KIND_RCPT) {
        json_member_null(&b, "rcpt", v->rcpt);
    } else if (brief && v->nrcpts > BRIEF_RCPTS) {
        sbuf_adds(&b, ",\"recipients\":[");
        for (size_t i = 0; i < BRIEF_RCPTS; i++) {
            if (i)
                sbuf_addc(&b, ',');
            esc_json_s(&b, v->rcpts[i]);
        }
        sbuf_addf(&b, "],\"recipients_total\":%zu", v->nrcpts);
    } else {
        char *r = verdict_rcpts_to_json(v);
        sbuf_addf(&b, ",\"recipients\":%s", r);
        free(r);
    }
    sbuf_addf(&b, ",\"stage\":\"%s\",\"action\":\"%s\",\"monitor\":%s",
              verdict_stage_name(v->stage), verdict_action_name(v->action),
              v->monitor ? "true" : "false");
    json_member_null(&b, "reply", v->reply);
    if (v->scored)
        sbuf_addf(&b, ",\"score\":%g", v->score);
    else
        sbuf_adds(&b, ",\"score\":null");
    sbuf_addf(&b, ",\"degraded\":%s", v->degraded ? "true" : "false");
    if (brief && !v->reasons_json) {
        /* every reason about the message; of those about one recipient
         * each, the first BRIEF_RCPTS */
        size_t per_rcpt = 0, shown = 0;
        sbuf_adds(&b, ",\"reasons\":[");
        for (size_t i = 0; i < v->nreasons; i++) {
            if (v->reasons[i].rcpt && per_rcpt++ >= BRIEF_RCPTS)
                continue;
            if (shown++)
                sbuf_addc(&b, ',');
            reason_to_json(&b, &v->reasons[i]);
        }
        sbuf_addc(&b, ']');
        if (shown < v->nreasons)
            sbuf_addf(&b, ",\"reasons_total\":%zu", v->nreasons);
    } else {
        char *reasons = v->reasons_json ? NULL : verdict_reasons_to_json(v);
        sbuf_addf(&b, ",\"reasons\":%s", reasons ? reasons : v->reasons_json);
        free(reasons);
    }
    if (brief) {
        sbuf_addf(&b, ",\"lookups_count\":%zu", v->nlookups);
    } else {
        char *lookups = v->lookups_json ? NULL : verdict_lookups_to_json(v);
        sbuf_addf(&b, ",\"lookups\":%s", lookups ? lookups : v->lookups_json);
        free(lookups);
    }
    return sbuf_take(&b);
}

char *verdict_json_members(const struct verdict *v)
{
    return json_members(v, false);
}

char *verdict_json_members_brief(const struct verdict *v)
{
    return json_members(v, true);
}

/* Index of s in names (ASCII case-insensitive), or -1. */
static int name_index(const char *const *names, size_t n, const char *s)
{
    if (!s)
        return -1;
    for (size_t i = 0; i < n; i++)
        if (!strcasecmp(s, names[i]))
            return (int)i;
    return -1;
}

const char *verdict_action_name(enum verdict_action a)
{
    return (unsigned)a < VERDICT_ACTION_COUNT ? action_names[a] : "unknown";
}

int verdict_action_parse(const char *s, enum verdict_action *out)
{
    int i = name_index(action_names, VERDICT_ACTION_COUNT, s);
    if (i < 0)
        return -1;
    *out = (enum verdict_action)i;
    return 0;
}

const char *verdict_stage_name(enum verdict_stage s)
{
    return (unsigned)s < STAGE_COUNT ? stage_names[s] : "unknown";
}

int verdict_stage_parse(const char *s, enum verdict_stage *out)
{
    int i = name_index(stage_names, STAGE_COUNT, s);
    if (i < 0)
        return -1;
    *out = (enum verdict_stage)i;
    return 0;
}

const char *verdict_kind_name(enum verdict_kind k)
{
    switch (k) {
    case VERDICT_KIND_MESSAGE: return "message";
    case VERDICT_KIND_RCPT: return "rcpt";
    }
    return "unknown";
}
