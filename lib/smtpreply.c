#include "smtpreply.h"

#include <ctype.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

void smtpr_init(struct smtp_reply *r)
{
    memset(r, 0, sizeof *r);
}

int smtpr_class(int code)
{
    return code >= 200 && code <= 599 ? code / 100 : 0;
}

static enum smtpr_status garbage(struct smtp_reply *r, const char *why)
{
    snprintf(r->why, sizeof r->why, "%s", why);
    return SMTPR_GARBAGE;
}

/* "5.7.1 " at the start of text: class matching the code's (RFC 3463). */
static void take_xcode(struct smtp_reply *r, const char *t, size_t n)
{
    size_t i = 0, dots = 0, digits = 0;
    if (n < 5 || t[0] != '0' + r->code / 100 || t[1] != '.')
        return;
    for (i = 0; i < n && i < 15; i++) {
        if (t[i] == '.') {
            if (!digits)
                return;
            dots++;
            digits = 0;
        } else if (isdigit((unsigned char)t[i])) {
            if (++digits > 3)
                return;
        } else {
            break;
        }
    }
    if (dots != 2 || !digits || (i < n && t[i] != ' '))
        return;
    memcpy(r->xcode, t, i);
    r->xcode[i] = '\0';
}

static void append(struct smtp_reply *r, const char *t, size_t n)
{
    size_t len = strlen(r->text), room = sizeof r->text - 1 - len;
    if (r->nlines > 1) {
        if (!room) {
            r->truncated = true;
            return;
        }
        r->text[len++] = '\n';
        room--;
    }
    if (n > room) {
        n = room;
        r->truncated = true;
    }
    memcpy(r->text + len, t, n);
    r->text[len + n] = '\0';
}

enum smtpr_status smtpr_line(struct smtp_reply *r, const char *line, size_t len)
{
    if (len < 3 || !isdigit((unsigned char)line[0]) || !isdigit((unsigned char)line[1]) ||
        !isdigit((unsigned char)line[2]))
        return garbage(r, "a line that does not start with a reply code");
    if (len > 3 && line[3] != ' ' && line[3] != '-')
        return garbage(r, "a reply code not followed by a space or '-'");
    int code = (line[0] - '0') * 100 + (line[1] - '0') * 10 + (line[2] - '0');
    if (code < 200 || code > 599)
        return garbage(r, "a reply code outside 200-599");
    if (r->nlines && code != r->code)
        return garbage(r, "a multi-line reply whose lines carry different codes");
    if (r->nlines >= SMTPR_MAX_LINES)
        return garbage(r, "a reply of more lines than any server needs");
    r->code = code;
    r->nlines++;
    const char *t = len > 4 ? line + 4 : "";
    size_t tn = len > 4 ? len - 4 : 0;
    if (r->nlines == 1)
        take_xcode(r, t, tn);
    append(r, t, tn);
    return len > 3 && line[3] == '-' ? SMTPR_MORE : SMTPR_DONE;
}

bool smtpr_has_ext(const struct smtp_reply *r, const char *keyword, char *params, size_t n)
{
    size_t kl = strlen(keyword);
    const char *p = strchr(r->text, '\n');   /* the first line is the greeting */
    while (p) {
        p++;
        const char *end = strchr(p, '\n');
        size_t ll = end ? (size_t)(end - p) : strlen(p);
        if (ll >= kl && !strncasecmp(p, keyword, kl) && (ll == kl || p[kl] == ' ' || p[kl] == '=')) {
            if (params && n) {
                size_t pl = ll > kl ? ll - kl - 1 : 0;
                if (pl >= n)
                    pl = n - 1;
                memcpy(params, p + (ll > kl ? kl + 1 : kl), pl);
                params[pl] = '\0';
            }
            return true;
        }
        p = end;
    }
    return false;
}
