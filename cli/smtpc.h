/* smtpc: an SMTP client connection for kanjiki audit: every read and write
 * has a deadline, lines are bounded, replies are parsed by lib/smtpreply.h
 * (garbage is reported, never trusted), and the connection can be wrapped
 * in TLS (STARTTLS or implicit, OpenSSL; the certificate is not verified:
 * an audit talks to the server whatever its certificate). One connection
 * per struct; not thread-safe. */
#ifndef KANJIKI_SMTPC_H
#define KANJIKI_SMTPC_H
#include <stdbool.h>
#include <stddef.h>

#include "smtpreply.h"

struct smtpc;

/* Connect to host (name or address: the first address it resolves to) and
 * port within timeout_ms; with implicit_tls, the TLS handshake too, naming
 * sni (a host name; NULL or an address: none). Returns 0, or -1 with the
 * reason. */
int smtpc_connect(const char *host, const char *port, const char *sni, int timeout_ms,
                  bool implicit_tls, struct smtpc **out, char *err, size_t errlen);
void smtpc_close(struct smtpc *c);
/* The peer's address as text ("192.0.2.1", "2001:db8::1"). */
const char *smtpc_peer(const struct smtpc *c);
bool smtpc_is_tls(const struct smtpc *c);
/* Send one command line (CRLF added). Returns 0 or -1 with the reason. */
int smtpc_send(struct smtpc *c, const char *line, char *err, size_t errlen);
/* Send raw bytes as they are (DATA content). */
int smtpc_send_raw(struct smtpc *c, const char *data, size_t len, char *err, size_t errlen);
/* Read one reply within the timeout. Returns 0, or -1 with the reason
 * (timeout, connection closed, garbage: r->why). */
int smtpc_reply(struct smtpc *c, struct smtp_reply *r, char *err, size_t errlen);
/* Has the server sent anything within ms (without reading it)? */
bool smtpc_pending(struct smtpc *c, int ms);
/* Upgrade to TLS after the server's 220 to STARTTLS. Returns 0 or -1. */
int smtpc_starttls(struct smtpc *c, char *err, size_t errlen);

#endif
