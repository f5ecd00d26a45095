/* kanjiki-milter: startup, privileges, signals.
 *
 * Signals: libmilter's own signal thread waits for HUP, TERM and INT and
 * treats HUP as "stop". To reload on HUP instead, every thread but the main
 * one blocks those signals, and the main thread alone leaves them unblocked
 * with a handler that writes to a pipe. A signal sent to the process goes
 * to the main thread whenever that thread can take it (Linux tries the
 * thread-group leader first), so libmilter's thread never sees one, even
 * in a burst of HUPs; the main loop reads the pipe and acts outside the
 * handler. */
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <pwd.h>
#include <signal.h>
#include <stddef.h>
#include <time.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <libmilter/mfapi.h>

#include "log.h"
#include "milter.h"
#include "xalloc.h"

#define STOP_WAIT_MS 30000   /* SIGTERM: how long in-flight transactions may finish */

static const char *usage_text =
    "usage: kanjiki-milter [-c FILE] [-f] [-n] [-p PIDFILE] [-h] [-V]\n"
    "  -c FILE     configuration file (default " CONF_DEFAULT_PATH
    " if it exists,\n"
    "              else built-in defaults)\n"
    "  -f          stay in the foreground and log to stderr\n"
    "  -n          check the configuration and rules, print the result, exit\n"
    "  -p PIDFILE  write the process id here (overrides pidfile =)\n"
    "  -h          this help\n"
    "  -V          print the version\n"
    "Signals: HUP reloads configuration and rules (a bad one is refused and\n"
    "the running policy kept); TERM and INT stop after in-flight connections.\n"
    "See kanjiki-milter(8) and kanjiki.conf(5).\n";

struct opts {
    const char *conf;
    const char *pidfile;
    bool foreground, check;
};

static int parse_opts(int argc, char **argv, struct opts *o)
{
    int ch;
    while ((ch = getopt(argc, argv, "c:fnp:hV")) != -1) {
        switch (ch) {
        case 'c': o->conf = optarg; break;
        case 'f': o->foreground = true; break;
        case 'n': o->check = true; break;
        case 'p': o->pidfile = optarg; break;
        case 'h': fputs(usage_text, stdout); exit(0);
        case 'V': puts("kanjiki-milter " KANJIKI_VERSION); exit(0);
        default: fputs(usage_text, stderr); return -1;
        }
    }
    if (optind != argc) {
        fprintf(stderr, "kanjiki-milter: unexpected argument '%s'\n", argv[optind]);
        fputs(usage_text, stderr);
        return -1;
    }
    return 0;
}

static int open_log(const struct conf *c, bool foreground)
{
    log_set_json(c->log_json);
    if (foreground || !strcmp(c->log, "stderr"))
        return log_open("kanjiki-milter", LOG_TO_STDERR, NULL);
    if (!strncmp(c->log, "file:", 5))
        return log_open("kanjiki-milter", LOG_TO_FILE, c->log + 5);
    return log_open("kanjiki-milter", LOG_TO_SYSLOG, NULL);
}

struct runas {
    bool drop;
    uid_t uid;
    gid_t gid;
    char name[64];
};

static int lookup_user(const struct conf *c, struct runas *ra)
{
    memset(ra, 0, sizeof *ra);
    if (geteuid() != 0) {
        if (c->user && *c->user) {
            struct passwd *me = getpwuid(geteuid());
            if (!me || strcmp(me->pw_name, c->user))
                log_msg(LOG_NOTICE, "not started as root: running as uid %ld, "
                        "not as user %s", (long)geteuid(), c->user);
        }
        return 0;
    }
    if (!c->user || !*c->user) {
        log_msg(LOG_ERR, "refusing to run as root: set user = in the configuration");
        return -1;
    }
    struct passwd *pw = getpwnam(c->user);
    if (!pw) {
        log_msg(LOG_ERR, "user %s does not exist: create it "
                "(useradd --system kanjiki) or set user = in the configuration", c->user);
        return -1;
    }
    if (pw->pw_uid == 0) {
        log_msg(LOG_ERR, "user %s is root: choose an unprivileged user", c->user);
        return -1;
    }
    ra->drop = true;
    ra->uid = pw->pw_uid;
    ra->gid = pw->pw_gid;
    snprintf(ra->name, sizeof ra->name, "%s", pw->pw_name);
    return 0;
}

static int drop_privileges(const struct runas *ra)
{
    if (!ra->drop)
        return 0;
    if (initgroups(ra->name, ra->gid) < 0 || setgid(ra->gid) < 0 || setuid(ra->uid) < 0) {
        log_msg(LOG_ERR, "cannot switch to user %s: %s", ra->name, strerror(errno));
        return -1;
    }
    if (setuid(0) == 0) {
        log_msg(LOG_ERR, "could regain root after dropping privileges: stopping");
        return -1;
    }
    return 0;
}

/* A socket file that still accepts connections belongs to a running
 * milter: never remove that one. */
static bool socket_in_use(const char *path)
{
    struct sockaddr_un sa = { .sun_family = AF_UNIX };
    if (strlen(path) >= sizeof sa.sun_path)
        return false;
    strcpy(sa.sun_path, path);
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return false;
    bool used = connect(fd, (struct sockaddr *)&sa, sizeof sa) == 0;
    close(fd);
    return used;
}

static int open_socket(const struct conf *c, const struct runas *ra)
{
    const char *path = !strncmp(c->socket, "unix:", 5) ? c->socket + 5 : NULL;
    if (path) {
        if (strlen(path) >= sizeof(((struct sockaddr_un *)0)->sun_path)) {
            log_msg(LOG_ERR, "socket path too long: %s", path);
            return -1;
        }
        char *dir = xstrdup(path);
        char *slash = strrchr(dir, '/');
        if (slash && slash != dir) {
            *slash = '\0';
            if (mkdir(dir, 0750) == 0 && ra->drop && chown(dir, ra->uid, ra->gid) < 0)
                log_msg(LOG_WARNING, "cannot chown %s: %s", dir, strerror(errno));
        }
        free(dir);
        if (socket_in_use(path)) {
            log_msg(LOG_ERR, "another milter is listening on %s", path);
            return -1;
        }
    }
    if (smfi_setconn(c->socket) != MI_SUCCESS) {
        log_msg(LOG_ERR, "bad socket %s", c->socket);
        return -1;
    }
    mode_t old = umask(007);      /* socket 0660: the MTA joins our group */
    int rc = smfi_opensocket(true);
    umask(old);
    if (rc != MI_SUCCESS) {
        log_msg(LOG_ERR, "cannot open socket %s: %s", c->socket, strerror(errno));
        return -1;
    }
    if (path && ra->drop && chown(path, ra->uid, ra->gid) < 0) {
        log_msg(LOG_ERR, "cannot chown socket %s: %s", path, strerror(errno));
        return -1;
    }
    if (path && chmod(path, 0660) < 0) {
        log_msg(LOG_ERR, "cannot chmod socket %s: %s", path, strerror(errno));
        return -1;
    }
    return 0;
}

/* Create or upgrade the database while still root; a file created now is
 * handed to the run-as user. An existing file keeps its owner: if the user
 * cannot write it, mail still flows and the writer says so once. */
static int prepare_database(const struct conf *c, const struct runas *ra)
{
    bool existed = access(c->database, F_OK) == 0;
    struct store *s;
    char err[512];
    if (store_open(c->database, 0, 2000, &s, err, sizeof err) < 0) {
        if (existed) {
            log_msg(LOG_WARNING, "database %s not usable now (%s); verdicts will be "
                    "queued until it is", c->database, err);
            return 0;
        }
        log_msg(LOG_ERR, "cannot create database: %s", err);
        return -1;
    }
    store_close(s);
    if (!existed && ra->drop) {
        static const char *suffix[] = { "", "-wal", "-shm" };
        for (size_t i = 0; i < 3; i++) {
            char p[4096];
            snprintf(p, sizeof p, "%s%s", c->database, suffix[i]);
            if (chown(p, ra->uid, ra->gid) < 0 && errno != ENOENT)
                log_msg(LOG_WARNING, "cannot chown %s: %s", p, strerror(errno));
        }
    }
    return 0;
}

static int write_pidfile(const char *path, const struct runas *ra)
{
    if (!path)
        return 0;
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) {
        log_msg(LOG_ERR, "cannot write pidfile %s: %s", path, strerror(errno));
        return -1;
    }
    dprintf(fd, "%ld\n", (long)getpid());
    /* owned by the run-as user so that it can remove it at exit */
    if (ra->drop && fchown(fd, ra->uid, ra->gid) < 0)
        log_msg(LOG_WARNING, "cannot chown pidfile %s: %s", path, strerror(errno));
    close(fd);
    return 0;
}

static int daemonize(void)
{
    pid_t pid = fork();
    if (pid < 0)
        return -1;
    if (pid > 0)
        _exit(0);
    if (setsid() < 0)
        return -1;
    pid = fork();
    if (pid < 0)
        return -1;
    if (pid > 0)
        _exit(0);
    int fd = open("/dev/null", O_RDWR);
    if (fd >= 0) {
        dup2(fd, 0);
        dup2(fd, 1);
        dup2(fd, 2);
        if (fd > 2)
            close(fd);
    }
    return 0;
}

static volatile int milter_failed;
static int sig_pipe[2] = { -1, -1 };

static void on_signal(int sig)
{
    int saved = errno;
    unsigned char c = (unsigned char)sig;
    if (write(sig_pipe[1], &c, 1) < 0) {
        /* pipe full: enough signals are already waiting to be handled */
    }
    errno = saved;
}

/* libmilter's own signal thread sigwait()s for HUP, TERM and INT and stops
 * the milter on any of them. Our main thread alone leaves them unblocked,
 * but a process-directed signal goes to any thread that can take it: when
 * the main thread already has one pending and is not on a CPU, the kernel
 * hands the next one to libmilter's sigwait, and a burst of HUPs (a reload
 * arriving during a reload) stopped the milter. This definition takes the
 * place of libc's sigwait for libmilter (in dynamic linking the
 * executable's symbol comes first): it never waits for those three, which
 * stay with the main thread; smfi_stop() still stops libmilter. */
int sigwait(const sigset_t *set, int *sig)
{
    sigset_t rest = *set;
    sigdelset(&rest, SIGHUP);
    sigdelset(&rest, SIGTERM);
    sigdelset(&rest, SIGINT);
    for (;;) {
        if (sigisemptyset(&rest)) {
            pause();   /* every signal is blocked here: sleeps for good */
            continue;
        }
        int got = sigwaitinfo(&rest, NULL);
        if (got > 0) {
            *sig = got;
            return 0;
        }
        if (errno != EINTR)
            return errno;
    }
}

static int install_signals(void)
{
    if (pipe2(sig_pipe, O_CLOEXEC) < 0 ||
        fcntl(sig_pipe[1], F_SETFL, O_NONBLOCK) < 0)
        return -1;
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sa.sa_flags = SA_RESTART;
    sigemptyset(&sa.sa_mask);
    sigaddset(&sa.sa_mask, SIGHUP);
    sigaddset(&sa.sa_mask, SIGTERM);
    sigaddset(&sa.sa_mask, SIGINT);
    if (sigaction(SIGHUP, &sa, NULL) < 0 || sigaction(SIGTERM, &sa, NULL) < 0 ||
        sigaction(SIGINT, &sa, NULL) < 0)
        return -1;
    return 0;
}

static int next_signal(void)
{
    for (;;) {
        unsigned char c;
        ssize_t n = read(sig_pipe[0], &c, 1);
        if (n == 1)
            return c;
        if (n < 0 && errno == EINTR)
            continue;
        return SIGTERM;   /* the pipe broke: stop rather than spin */
    }
}

static void *milter_thread(void *arg)
{
    (void)arg;
    int rc = smfi_main();
    if (rc != MI_SUCCESS) {
        milter_failed = 1;
        log_msg(LOG_ERR, "libmilter stopped with an error");
    }
    /* Tell the main thread, which waits on the signal pipe, that we are done. */
    kill(getpid(), SIGTERM);
    return NULL;
}

/* Settings that only take effect at startup. */
static void warn_restart_only(const struct conf *old, const struct conf *neu)
{
    static const struct { const char *key; size_t off; } keys[] = {
        { "socket", offsetof(struct conf, socket) },
        { "database", offsetof(struct conf, database) },
        { "user", offsetof(struct conf, user) },
        { "pidfile", offsetof(struct conf, pidfile) },
        { "log", offsetof(struct conf, log) },
    };
    for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++) {
        const char *a = *(char *const *)((const char *)old + keys[i].off);
        const char *b = *(char *const *)((const char *)neu + keys[i].off);
        if ((a == NULL) != (b == NULL) || (a && strcmp(a, b)))
            log_msg(LOG_WARNING, "reload: %s changed; it takes effect at the next restart",
                    keys[i].key);
    }
    if (old->queue_size != neu->queue_size || old->popauth_poll_ms != neu->popauth_poll_ms)
        log_msg(LOG_WARNING, "reload: queue_size/popauth_poll take effect at the next restart");
    bool dns_same = old->dns_servers.n == neu->dns_servers.n &&
                    old->dns_timeout_ms == neu->dns_timeout_ms;
    for (size_t i = 0; dns_same && i < old->dns_servers.n; i++)
        dns_same = !strcmp(old->dns_servers.v[i], neu->dns_servers.v[i]);
    if (!dns_same)
        log_msg(LOG_WARNING, "reload: dns_servers/dns_timeout take effect at the next restart");
    if ((old->snowshoe == CONF_SNOW_OFF) != (neu->snowshoe == CONF_SNOW_OFF))
        log_msg(LOG_WARNING, "reload: snowshoe = %s takes effect at the next restart "
                "(observe and enforce switch at once)", conf_snowshoe_name(neu->snowshoe));
}

static void reload(const char *conf_path, bool foreground)
{
    /* reopen a log file so that rotation by rename works */
    if (!foreground && !strncmp(kj.policy->conf->log, "file:", 5))
        open_log(kj.policy->conf, false);
    struct policy *p;
    char err[1024];
    if (policy_load(conf_path, &p, err, sizeof err) < 0) {
        log_msg(LOG_ERR, "reload refused, keeping the running policy: %s", err);
        return;
    }
    pthread_mutex_lock(&kj.lock);
    struct policy *old = kj.policy;
    kj.policy = p;
    pthread_mutex_unlock(&kj.lock);
    warn_restart_only(old->conf, p->conf);
    log_set_json(p->conf->log_json);   /* the format switches at once; the target at restart */
    store_writer_set_retention(kj.writer, p->conf->retention_ms);
    log_msg(LOG_NOTICE, "reloaded %s: %zu rules, %zu zones, %zu thresholds from %zu files, mode %s",
            conf_path ? conf_path : "built-in defaults", p->rules->n, p->rules->nzones,
            p->rules->nthresholds, p->rules->nfiles,
            p->conf->mode == CONF_MODE_MONITOR ? "monitor" : "enforce");
    policy_unref(old);   /* connections still using it hold their own refs */
    if (kj.grants)
        popauth_cache_refresh(kj.grants);
    if (kj.dns)
        kj_probe_now();   /* new or changed zones are tested at once */
    kj_snowshoe_configure(p->rules);
}

/* Let transactions in flight (MAIL seen, end of message not yet) finish.
 * Idle connections are not waited for: the MTA applies its
 * milter_default_action to whatever it sends them next. */
static void wait_transactions(void)
{
    for (int waited = 0; waited < STOP_WAIT_MS; waited += 50) {
        if (__atomic_load_n(&kj.busy, __ATOMIC_RELAXED) <= 0)
            return;
        usleep(50 * 1000);
    }
    log_msg(LOG_WARNING, "stopping with %d transactions unfinished",
            __atomic_load_n(&kj.busy, __ATOMIC_RELAXED));
}

int main(int argc, char **argv)
{
    struct opts o = { 0 };
    if (parse_opts(argc, argv, &o) < 0)
        return 2;
    char *conf_path = NULL;
    const char *given = o.conf ? o.conf : conf_default_path();
    if (given) {
        /* Absolute, so a reload finds the same file, but symlinks kept: a
         * relative path inside resolves as `kanjiki -c` resolves it. */
        char cwd[4096];
        if (given[0] == '/' || !getcwd(cwd, sizeof cwd)) {
            conf_path = xstrdup(given);
        } else {
            conf_path = xmalloc(strlen(cwd) + strlen(given) + 2);
            sprintf(conf_path, "%s/%s", cwd, given);
        }
    }
    struct policy *p;
    char err[1024];
    if (policy_load(conf_path, &p, err, sizeof err) < 0) {
        fprintf(stderr, "kanjiki-milter: %s\n", err);
        return 1;
    }
    if (o.check) {
        printf("kanjiki-milter: configuration OK (%s; %zu rules from %zu files)\n",
               conf_path ? conf_path : "built-in defaults", p->rules->n, p->rules->nfiles);
        policy_unref(p);
        free(conf_path);
        return 0;
    }
    const struct conf *c = p->conf;
    const char *pidfile = o.pidfile ? o.pidfile : c->pidfile;
    if (open_log(c, o.foreground) < 0) {
        fprintf(stderr, "kanjiki-milter: cannot open log %s\n", c->log);
        return 1;
    }
    struct runas ra;
    if (lookup_user(c, &ra) < 0 || kj_register() < 0 || open_socket(c, &ra) < 0)
        return 1;
    if (!o.foreground && daemonize() < 0) {
        log_msg(LOG_ERR, "cannot become a daemon: %s", strerror(errno));
        return 1;
    }
    if (write_pidfile(pidfile, &ra) < 0 || prepare_database(c, &ra) < 0 ||
        drop_privileges(&ra) < 0)
        return 1;

    /* Block the signals in every thread; only the main thread waits for them. */
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGHUP);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGINT);
    pthread_sigmask(SIG_BLOCK, &set, NULL);
    signal(SIGPIPE, SIG_IGN);
    if (install_signals() < 0) {
        log_msg(LOG_ERR, "cannot install signal handlers: %s", strerror(errno));
        return 1;
    }

    kj.policy = p;
    kj.writer = store_writer_start(c->database, c->queue_size, 1000);
    store_writer_set_retention(kj.writer, c->retention_ms);
    kj.grants = popauth_cache_start(c->database, c->popauth_poll_ms);
    if (kj_checks_start(c) < 0)
        log_msg(LOG_ERR, "blocklists and SPF are off: no resolver");
    if (c->snowshoe != CONF_SNOW_OFF)
        kj_snowshoe_start(p);   /* after the public suffix list (checks) */
    pthread_t tid;
    if (pthread_create(&tid, NULL, milter_thread, NULL) != 0) {
        log_msg(LOG_ERR, "cannot start the milter thread");
        return 1;
    }
    char *sock_path = !strncmp(c->socket, "unix:", 5) ? xstrdup(c->socket + 5) : NULL;
    log_msg(LOG_NOTICE, "started on %s as uid %ld, mode %s, %zu rules, %zu zones, "
            "%zu thresholds, database %s",
            c->socket, (long)getuid(), c->mode == CONF_MODE_MONITOR ? "monitor" : "enforce",
            p->rules->n, p->rules->nzones, p->rules->nthresholds, c->database);

    /* Every thread exists now and has the signals blocked: only this one
     * takes them from here on. */
    pthread_sigmask(SIG_UNBLOCK, &set, NULL);
    for (;;) {
        int sig = next_signal();
        if (sig == SIGHUP) {
            reload(conf_path, o.foreground);
            continue;
        }
        log_msg(LOG_NOTICE, "stopping on signal %d", sig);
        break;
    }
    /* Stop taking new work first: with the socket gone the MTA applies its
     * milter_default_action to new sessions, and sessions already open get
     * a 4xx for any new transaction. Transactions in flight finish, and
     * only then is libmilter stopped: once stopped it serves no session. */
    __atomic_store_n(&kj.stopping, 1, __ATOMIC_RELAXED);
    if (sock_path)
        unlink(sock_path);
    wait_transactions();
    smfi_stop();
    struct timespec until;
    clock_gettime(CLOCK_REALTIME, &until);
    until.tv_nsec += 200 * 1000 * 1000;
    if (until.tv_nsec >= 1000000000L) {
        until.tv_sec++;
        until.tv_nsec -= 1000000000L;
    }
    pthread_timedjoin_np(tid, NULL, &until);
    store_writer_stop(kj.writer, 10000);
    popauth_cache_stop(kj.grants);
    kj_snowshoe_stop();
    kj_checks_stop();
    free(sock_path);
    if (pidfile)
        unlink(pidfile);
    log_msg(LOG_NOTICE, "stopped");
    policy_unref(kj.policy);
    free(conf_path);
    return milter_failed ? 1 : 0;
}
