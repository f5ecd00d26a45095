/* smtpreply: SMTP replies (RFC 5321 4.2) read line by line from a server
 * that may send anything: multi-line replies, enhanced status codes (RFC
 * 3463), garbage, endless continuation lines. Pure; kanjiki audit reads
 * what servers answer through it.
 *
 * A reply is one or more lines "NNN-text" ending with "NNN text" (or a
 * bare "NNN"); every line must carry the same code, from 200 to 599 (1xx
 * is no SMTP reply). The text is kept as received (bytes, lines joined by
 * '\n'): escape it before it reaches a terminal or a report. */
#ifndef KANJIKI_SMTPREPLY_H
#define KANJIKI_SMTPREPLY_H
#include <stdbool.h>
#include <stddef.h>

#define SMTPR_MAX_LINES 100
#define SMTPR_MAX_TEXT 4096

struct smtp_reply {
    int code;                   /* 200..599; 0 while none */
    char xcode[16];             /* "5.7.1" when the first line has one, else "" */
    char text[SMTPR_MAX_TEXT];  /* the lines' texts joined by '\n' (cut when longer) */
    size_t nlines;
    bool truncated;             /* text was cut */
    char why[96];               /* SMTPR_GARBAGE: what was wrong */
};

enum smtpr_status {
    SMTPR_MORE = 0,             /* a continuation line: read on */
    SMTPR_DONE = 1,             /* the last line: the reply is complete */
    SMTPR_GARBAGE = -1,         /* not an SMTP reply (why says what) */
};

void smtpr_init(struct smtp_reply *r);
/* One line without its CRLF (len bytes, may hold NULs). */
enum smtpr_status smtpr_line(struct smtp_reply *r, const char *line, size_t len);
/* The class of a code: 2, 3, 4 or 5 (0 for none). */
int smtpr_class(int code);
/* EHLO: is KEYWORD (case-insensitive) among the extension lines (all but
 * the first)? Its parameters (the rest of the line) go into params. */
bool smtpr_has_ext(const struct smtp_reply *r, const char *keyword, char *params, size_t n);

#endif
