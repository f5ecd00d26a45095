#include "smtpc.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <poll.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "xalloc.h"

#define LINE_MAX_BYTES 4096

struct smtpc {
    int fd;
    int timeout_ms;
    char host[256];
    char peer[64];
    SSL_CTX *ctx;
    SSL *ssl;
    char buf[LINE_MAX_BYTES * 2];
    size_t len;                 /* bytes in buf */
};

static int64_t now_ms(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (int64_t)t.tv_sec * 1000 + t.tv_nsec / 1000000;
}

static int fail(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static int fail(char *err, size_t errlen, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
    return -1;
}

/* Wait for fd to be ready for events until deadline: 1 ready, 0 timeout. */
static int wait_fd(int fd, short events, int64_t deadline)
{
    for (;;) {
        int64_t left = deadline - now_ms();
        if (left <= 0)
            return 0;
        struct pollfd p = { fd, events, 0 };
        int n = poll(&p, 1, left > 60000 ? 60000 : (int)left);
        if (n > 0)
            return 1;
        if (n < 0 && errno != EINTR)
            return 1;   /* let the read/write report the error */
    }
}

static const char *tls_error(void)
{
    static char buf[160];
    unsigned long e = ERR_get_error();
    if (!e)
        return "TLS handshake failed";
    ERR_error_string_n(e, buf, sizeof buf);
    return buf;
}

/* Run the TLS handshake on the connected socket. */
static int tls_start(struct smtpc *c, char *err, size_t errlen)
{
    c->ctx = SSL_CTX_new(TLS_client_method());
    if (!c->ctx)
        return fail(err, errlen, "TLS: %s", tls_error());
    SSL_CTX_set_verify(c->ctx, SSL_VERIFY_NONE, NULL);
    /* a server that closes without close_notify has closed, no more */
    SSL_CTX_set_options(c->ctx, SSL_OP_IGNORE_UNEXPECTED_EOF);
    c->ssl = SSL_new(c->ctx);
    if (!c->ssl || SSL_set_fd(c->ssl, c->fd) != 1)
        return fail(err, errlen, "TLS: %s", tls_error());
    struct in6_addr tmp;
    if (inet_pton(AF_INET, c->host, &tmp) != 1 && inet_pton(AF_INET6, c->host, &tmp) != 1)
        SSL_set_tlsext_host_name(c->ssl, c->host);   /* SNI for names only */
    int64_t deadline = now_ms() + c->timeout_ms;
    for (;;) {
        ERR_clear_error();
        int rc = SSL_connect(c->ssl);
        if (rc == 1)
            return 0;
        int e = SSL_get_error(c->ssl, rc);
        if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) {
            if (!wait_fd(c->fd, e == SSL_ERROR_WANT_READ ? POLLIN : POLLOUT, deadline))
                return fail(err, errlen, "TLS handshake: %s", "no answer in time");
            continue;
        }
        return fail(err, errlen, "TLS handshake: %s", tls_error());
    }
}

int smtpc_connect(const char *host, const char *port, const char *sni, int timeout_ms,
                  bool implicit_tls, struct smtpc **out, char *err, size_t errlen)
{
    struct addrinfo hints = { .ai_socktype = SOCK_STREAM, .ai_family = AF_UNSPEC };
    struct addrinfo *res = NULL;
    int g = getaddrinfo(host, port, &hints, &res);
    if (g != 0)
        return fail(err, errlen, "cannot resolve the host: %s", gai_strerror(g));
    struct smtpc *c = xcalloc(1, sizeof *c);
    c->fd = -1;
    c->timeout_ms = timeout_ms;
    snprintf(c->host, sizeof c->host, "%s", sni ? sni : host);
    char why[200] = "no address";
    /* the first address only: an audit probes exactly the host it was given */
    struct addrinfo *ai = res;
    int64_t deadline = now_ms() + timeout_ms;
    c->fd = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (c->fd >= 0) {
        int rc = connect(c->fd, ai->ai_addr, ai->ai_addrlen);
        if (rc < 0 && errno == EINPROGRESS) {
            if (!wait_fd(c->fd, POLLOUT, deadline)) {
                snprintf(why, sizeof why, "connection timed out after %d ms", timeout_ms);
                rc = -1;
                errno = ETIMEDOUT;
            } else {
                int soerr = 0;
                socklen_t sl = sizeof soerr;
                getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &soerr, &sl);
                rc = soerr ? -1 : 0;
                if (soerr)
                    snprintf(why, sizeof why, "%s", strerror(soerr));
            }
        } else if (rc < 0) {
            snprintf(why, sizeof why, "%s", strerror(errno));
        }
        if (rc == 0) {
            void *a = ai->ai_family == AF_INET
                          ? (void *)&((struct sockaddr_in *)ai->ai_addr)->sin_addr
                          : (void *)&((struct sockaddr_in6 *)ai->ai_addr)->sin6_addr;
            inet_ntop(ai->ai_family, a, c->peer, sizeof c->peer);
        }
        if (rc != 0) {
            close(c->fd);
            c->fd = -1;
        }
    } else {
        snprintf(why, sizeof why, "%s", strerror(errno));
    }
    freeaddrinfo(res);
    if (c->fd < 0) {
        free(c);
        return fail(err, errlen, "cannot connect: %s", why);
    }
    if (implicit_tls && tls_start(c, err, errlen) < 0) {
        smtpc_close(c);
        return -1;
    }
    *out = c;
    return 0;
}

void smtpc_close(struct smtpc *c)
{
    if (!c)
        return;
    if (c->ssl) {
        SSL_shutdown(c->ssl);
        SSL_free(c->ssl);
    }
    if (c->ctx)
        SSL_CTX_free(c->ctx);
    if (c->fd >= 0)
        close(c->fd);
    free(c);
}

const char *smtpc_peer(const struct smtpc *c)
{
    return c->peer;
}

bool smtpc_is_tls(const struct smtpc *c)
{
    return c->ssl != NULL;
}

int smtpc_send_raw(struct smtpc *c, const char *data, size_t len, char *err, size_t errlen)
{
    int64_t deadline = now_ms() + c->timeout_ms;
    size_t off = 0;
    while (off < len) {
        ssize_t n;
        short want = POLLOUT;
        if (c->ssl) {
            ERR_clear_error();
            int rc = SSL_write(c->ssl, data + off, (int)(len - off > 65536 ? 65536 : len - off));
            if (rc > 0) {
                n = rc;
            } else {
                int e = SSL_get_error(c->ssl, rc);
                if (e != SSL_ERROR_WANT_READ && e != SSL_ERROR_WANT_WRITE)
                    return fail(err, errlen, "write failed: %s", tls_error());
                want = e == SSL_ERROR_WANT_READ ? POLLIN : POLLOUT;
                n = -1;
                errno = EAGAIN;
            }
        } else {
            n = send(c->fd, data + off, len - off, MSG_NOSIGNAL);
        }
        if (n > 0) {
            off += (size_t)n;
            continue;
        }
        if (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)
            return fail(err, errlen, "write failed: %s", strerror(errno));
        if (!wait_fd(c->fd, want, deadline))
            return fail(err, errlen, "write timed out (%s)", "the server stopped reading");
    }
    return 0;
}

int smtpc_send(struct smtpc *c, const char *line, char *err, size_t errlen)
{
    char buf[2100];
    int n = snprintf(buf, sizeof buf, "%s\r\n", line);
    if (n < 0 || (size_t)n >= sizeof buf)
        return fail(err, errlen, "command too long (%s)", "over 2 KiB");
    return smtpc_send_raw(c, buf, (size_t)n, err, errlen);
}

/* Read more bytes into buf before deadline: >0 read, 0 closed, -1 error or
 * timeout (err set). */
static ssize_t fill(struct smtpc *c, int64_t deadline, char *err, size_t errlen)
{
    for (;;) {
        size_t room = sizeof c->buf - c->len;
        ssize_t n;
        short want = POLLIN;
        if (c->ssl) {
            ERR_clear_error();
            int rc = SSL_read(c->ssl, c->buf + c->len, (int)room);
            if (rc > 0)
                return rc;
            int e = SSL_get_error(c->ssl, rc);
            if (e == SSL_ERROR_ZERO_RETURN)
                return 0;
            if (e != SSL_ERROR_WANT_READ && e != SSL_ERROR_WANT_WRITE) {
                if (e == SSL_ERROR_SYSCALL && !ERR_peek_error())
                    return 0;   /* closed without close_notify */
                fail(err, errlen, "read failed: %s", tls_error());
                return -1;
            }
            want = e == SSL_ERROR_WANT_READ ? POLLIN : POLLOUT;
        } else {
            n = recv(c->fd, c->buf + c->len, room, 0);
            if (n >= 0)
                return n;
            if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) {
                fail(err, errlen, "read failed: %s", strerror(errno));
                return -1;
            }
        }
        if (!wait_fd(c->fd, want, deadline)) {
            snprintf(err, errlen, "no reply within %d ms", c->timeout_ms);
            return -1;
        }
    }
}

int smtpc_reply(struct smtpc *c, struct smtp_reply *r, char *err, size_t errlen)
{
    smtpr_init(r);
    int64_t deadline = now_ms() + c->timeout_ms;
    for (;;) {
        char *nl = memchr(c->buf, '\n', c->len);
        if (!nl) {
            if (c->len >= LINE_MAX_BYTES)
                return fail(err, errlen, "garbage: %s", "a reply line longer than 4096 bytes");
            ssize_t n = fill(c, deadline, err, errlen);
            if (n < 0)
                return -1;
            if (n == 0)
                return fail(err, errlen, "%s", r->nlines ? "connection closed in the middle of "
                                                           "a reply" : "connection closed");
            c->len += (size_t)n;
            continue;
        }
        size_t ll = (size_t)(nl - c->buf);
        if (ll > LINE_MAX_BYTES)   /* however the bytes arrived */
            return fail(err, errlen, "garbage: %s", "a reply line longer than 4096 bytes");
        size_t tl = ll && c->buf[ll - 1] == '\r' ? ll - 1 : ll;
        enum smtpr_status st = smtpr_line(r, c->buf, tl);
        memmove(c->buf, nl + 1, c->len - ll - 1);
        c->len -= ll + 1;
        if (st == SMTPR_GARBAGE)
            return fail(err, errlen, "garbage: %s", r->why);
        if (st == SMTPR_DONE)
            return 0;
    }
}

bool smtpc_pending(struct smtpc *c, int ms)
{
    if (c->len || (c->ssl && SSL_pending(c->ssl)))
        return true;
    struct pollfd p = { c->fd, POLLIN, 0 };
    if (poll(&p, 1, ms) <= 0)
        return false;
    if (!c->ssl) {
        char ch;   /* data, or only the end of the connection? */
        return recv(c->fd, &ch, 1, MSG_PEEK | MSG_DONTWAIT) > 0;
    }
    /* TLS records may carry no data (a TLS 1.3 session ticket): read them */
    char err[200];
    ssize_t n = fill(c, now_ms() + 1, err, sizeof err);
    if (n > 0)
        c->len += (size_t)n;
    return n > 0;
}

int smtpc_starttls(struct smtpc *c, char *err, size_t errlen)
{
    if (c->len)   /* bytes after the 220: a response-injection attack, or garbage */
        return fail(err, errlen, "TLS: %s", "the server sent data after its 220 to STARTTLS");
    return tls_start(c, err, errlen);
}
