/* esc: make untrusted text (anything that came from the network or the
 * database) safe for one destination. Each function appends to a sbuf;
 * input may hold any bytes, including NUL (length-counted). */
#ifndef KANJIKI_ESC_H
#define KANJIKI_ESC_H
#include <stddef.h>

#include "sbuf.h"

/* For terminals and log lines: printable ASCII and valid UTF-8 (other than
 * C1 controls and U+2028/2029) kept; backslash doubled; \n \r \t as such;
 * every other control byte, DEL and invalid UTF-8 as \xNN. */
void esc_text(struct sbuf *b, const char *s, size_t len);
/* A JSON string including the quotes; invalid UTF-8 bytes become \u00NN of
 * the byte value (so output is always valid UTF-8 JSON), controls \u00NN. */
void esc_json(struct sbuf *b, const char *s, size_t len);
/* One CSV field (RFC 4180): quoted when needed, '"' doubled; contents
 * passed through esc_text first so no control byte reaches a terminal;
 * a leading = + - @ gets a ' prefix against spreadsheet formula injection. */
void esc_csv(struct sbuf *b, const char *s, size_t len);
/* For a header value added to a message: esc_text, then anything outside
 * printable ASCII as \xNN too, so the header is 7-bit and unfoldable. */
void esc_header(struct sbuf *b, const char *s, size_t len);

/* NUL-terminated conveniences: s may be NULL (treated as ""). */
void esc_text_s(struct sbuf *b, const char *s);
void esc_json_s(struct sbuf *b, const char *s);

#endif
