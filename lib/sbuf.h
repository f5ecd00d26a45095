/* sbuf: a growable NUL-terminated string buffer. The buffer owns s; take it
 * with sbuf_take() or release it with sbuf_free(). */
#ifndef KANJIKI_SBUF_H
#define KANJIKI_SBUF_H
#include <stdarg.h>
#include <stddef.h>

struct sbuf {
    char *s;     /* always NUL-terminated once anything was added */
    size_t len;
    size_t cap;
};

#define SBUF_INIT { NULL, 0, 0 }

void sbuf_add(struct sbuf *b, const char *s, size_t n);
void sbuf_adds(struct sbuf *b, const char *s);
void sbuf_addc(struct sbuf *b, char c);
void sbuf_addf(struct sbuf *b, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
void sbuf_vaddf(struct sbuf *b, const char *fmt, va_list ap)
    __attribute__((format(printf, 2, 0)));
const char *sbuf_str(const struct sbuf *b);   /* "" when empty, never NULL */
void sbuf_reset(struct sbuf *b);                /* keep memory, empty text */
char *sbuf_take(struct sbuf *b);                /* caller frees; b is reset */
void sbuf_free(struct sbuf *b);

#endif
