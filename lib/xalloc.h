/* xalloc: allocation that never returns NULL. Running out of memory in a
 * milter leaves no sane verdict to give, so it is fatal (DESIGN.md
 * Conventions); the MTA then applies its milter_default_action. */
#ifndef KANJIKI_XALLOC_H
#define KANJIKI_XALLOC_H
#include <stddef.h>

void *xmalloc(size_t n);
void *xcalloc(size_t nmemb, size_t size);
void *xrealloc(void *p, size_t n);
char *xstrdup(const char *s);           /* NULL in, NULL out */
char *xstrndup(const char *s, size_t n);

#endif
