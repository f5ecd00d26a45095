/* ascii: small locale-free character helpers for mail text (header field
 * names, dates, Received: clauses), shared by the modules that parse it.
 * Header-only: static inline, nothing to link. */
#ifndef KANJIKI_ASCII_H
#define KANJIKI_ASCII_H
#include <stdbool.h>
#include <stddef.h>
#include <string.h>

static inline char ascii_lc(char c)
{
    return c >= 'A' && c <= 'Z' ? (char)(c - 'A' + 'a') : c;
}

static inline bool ascii_is_wsp(char c)
{
    return c == ' ' || c == '\t';
}

static inline bool ascii_is_space(char c)
{
    return c == ' ' || c == '\t' || c == '\r' || c == '\n' || c == '\f' || c == '\v';
}

static inline bool ascii_is_digit(char c)
{
    return c >= '0' && c <= '9';
}

static inline bool ascii_is_alpha(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}

/* a[0..n) equals b[0..n), ignoring ASCII case */
static inline bool ascii_ieq_n(const char *a, const char *b, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (ascii_lc(a[i]) != ascii_lc(b[i]))
            return false;
    return true;
}

/* a[0..an) equals the NUL-terminated b, ignoring ASCII case */
static inline bool ascii_ieq(const char *a, size_t an, const char *b)
{
    size_t bn = strlen(b);
    return an == bn && ascii_ieq_n(a, b, an);
}

#endif
