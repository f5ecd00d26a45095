/* esc: see esc.h. */
#include "esc.h"

#include <stdbool.h>
#include <stdint.h>
#include <string.h>

/* Length of the valid UTF-8 sequence at s (1..4) and its code point, or 0
 * if the bytes there are not one. Strict (RFC 3629): no overlong forms, no
 * surrogates, nothing above U+10FFFF, since lenient decoders are how
 * "invalid" bytes sneak past escapers. */
static size_t utf8_seq(const unsigned char *s, size_t len, uint32_t *cp)
{
    unsigned char c = s[0];
    size_t n;
    uint32_t v, min;
    if (c < 0x80) {
        *cp = c;
        return 1;
    } else if (c >= 0xc2 && c <= 0xdf) {
        n = 2, v = c & 0x1f, min = 0x80;
    } else if (c >= 0xe0 && c <= 0xef) {
        n = 3, v = c & 0x0f, min = 0x800;
    } else if (c >= 0xf0 && c <= 0xf4) {
        n = 4, v = c & 0x07, min = 0x10000;
    } else {
        return 0;
    }
    if (len < n)
        return 0;
    for (size_t i = 1; i < n; i++) {
        if ((s[i] & 0xc0) != 0x80)
            return 0;
        v = v << 6 | (s[i] & 0x3f);
    }
    if (v < min || v > 0x10ffff || (v >= 0xd800 && v <= 0xdfff))
        return 0;
    *cp = v;
    return n;
}

/* Code points that move the cursor or end a line on some terminal or in
 * some log viewer even though they are valid UTF-8. */
static bool is_unsafe_cp(uint32_t cp)
{
    /* C1 controls, line separators, and bidi overrides that could make a log
     * line read differently from what it holds */
    return (cp >= 0x80 && cp <= 0x9f) || cp == 0x2028 || cp == 0x2029 ||
           (cp >= 0x202a && cp <= 0x202e) || (cp >= 0x2066 && cp <= 0x2069) ||
           cp == 0x200e || cp == 0x200f || cp == 0x061c;
}

static void add_hex(struct sbuf *b, const unsigned char *s, size_t n)
{
    for (size_t i = 0; i < n; i++)
        sbuf_addf(b, "\\x%02x", s[i]);
}

/* esc_text, and with ascii_only also every non-ASCII byte as \xNN. */
static void text(struct sbuf *b, const char *str, size_t len, bool ascii_only)
{
    const unsigned char *s = (const unsigned char *)str;
    size_t i = 0;
    while (i < len) {
        unsigned char c = s[i];
        size_t run = i;
        /* copy plain printable ASCII in one go */
        while (run < len && s[run] >= 0x20 && s[run] < 0x7f && s[run] != '\\')
            run++;
        if (run > i) {
            sbuf_add(b, str + i, run - i);
            i = run;
            continue;
        }
        switch (c) {
        case '\\': sbuf_add(b, "\\\\", 2); i++; continue;
        case '\n': sbuf_add(b, "\\n", 2); i++; continue;
        case '\r': sbuf_add(b, "\\r", 2); i++; continue;
        case '\t': sbuf_add(b, "\\t", 2); i++; continue;
        default: break;
        }
        uint32_t cp;
        size_t n = c >= 0x80 ? utf8_seq(s + i, len - i, &cp) : 0;
        if (n == 0)
            n = 1;             /* control, DEL or an invalid byte */
        else if (!ascii_only && !is_unsafe_cp(cp)) {
            sbuf_add(b, str + i, n);
            i += n;
            continue;
        }
        add_hex(b, s + i, n);
        i += n;
    }
}

void esc_text(struct sbuf *b, const char *s, size_t len)
{
    text(b, s, len, false);
    sbuf_add(b, "", 0);        /* b->s is a string even for empty input */
}

void esc_header(struct sbuf *b, const char *s, size_t len)
{
    text(b, s, len, true);
    sbuf_add(b, "", 0);
}

void esc_json(struct sbuf *b, const char *str, size_t len)
{
    const unsigned char *s = (const unsigned char *)str;
    sbuf_addc(b, '"');
    for (size_t i = 0; i < len;) {
        unsigned char c = s[i];
        uint32_t cp;
        size_t n;
        if (c == '"' || c == '\\') {
            sbuf_addc(b, '\\');
            sbuf_addc(b, (char)c);
            i++;
        } else if (c >= 0x20 && c < 0x7f) {
            sbuf_addc(b, (char)c);
            i++;
        } else if (c >= 0x80 && (n = utf8_seq(s + i, len - i, &cp)) > 0) {
            /* U+2028/2029 end a line in JavaScript; C1 controls in terms */
            if (is_unsafe_cp(cp))
                sbuf_addf(b, "\\u%04x", (unsigned)cp);
            else
                sbuf_add(b, str + i, n);
            i += n;
        } else {
            /* controls, DEL, and each byte of invalid UTF-8 */
            sbuf_addf(b, "\\u%04x", (unsigned)c);
            i++;
        }
    }
    sbuf_addc(b, '"');
}

void esc_csv(struct sbuf *b, const char *s, size_t len)
{
    struct sbuf t = SBUF_INIT;
    esc_text(&t, s, len);
    const char *v = sbuf_str(&t);
    /* a spreadsheet would run =cmd|... as a formula; ' makes it text */
    bool formula = strchr("=+-@", v[0]) && v[0] != '\0';
    bool quote = strpbrk(v, ",\";") != NULL ||
                 (t.len && (v[0] == ' ' || v[t.len - 1] == ' '));
    if (quote)
        sbuf_addc(b, '"');
    if (formula)
        sbuf_addc(b, '\'');
    for (const char *p = v; *p; p++) {
        if (*p == '"')
            sbuf_addc(b, '"');
        sbuf_addc(b, *p);
    }
    if (quote)
        sbuf_addc(b, '"');
    sbuf_add(b, "", 0);
    sbuf_free(&t);
}

void esc_text_s(struct sbuf *b, const char *s)
{
    esc_text(b, s ? s : "", s ? strlen(s) : 0);
}

void esc_json_s(struct sbuf *b, const char *s)
{
    esc_json(b, s ? s : "", s ? strlen(s) : 0);
}
