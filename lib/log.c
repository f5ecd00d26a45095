#include "log.h"

#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "esc.h"
#include "sbuf.h"
#include "timeutil.h"

static pthread_mutex_t log_lock = PTHREAD_MUTEX_INITIALIZER;
static enum log_target log_target = LOG_TO_STDERR;
static FILE *log_file;
static int log_level = LOG_INFO;
static char log_ident[32] = "kanjiki";

static const char *prio_name(int p)
{
    static const char *names[] = { "emerg", "alert", "crit", "error",
                                   "warning", "notice", "info", "debug" };
    return (p >= 0 && p < 8) ? names[p] : "info";
}

int log_open(const char *ident, enum log_target target, const char *path)
{
    pthread_mutex_lock(&log_lock);
    snprintf(log_ident, sizeof log_ident, "%s", ident ? ident : "kanjiki");
    if (log_file) {
        fclose(log_file);
        log_file = NULL;
    }
    int rc = 0;
    log_target = target;
    if (target == LOG_TO_SYSLOG) {
        openlog(log_ident, LOG_PID | LOG_NDELAY, LOG_MAIL);
    } else if (target == LOG_TO_FILE) {
        int fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0640);
        log_file = fd >= 0 ? fdopen(fd, "a") : NULL;
        if (!log_file) {
            if (fd >= 0)
                close(fd);
            log_target = LOG_TO_STDERR;
            rc = -1;
        } else {
            setvbuf(log_file, NULL, _IOLBF, 0);
        }
    }
    pthread_mutex_unlock(&log_lock);
    return rc;
}

void log_close(void)
{
    pthread_mutex_lock(&log_lock);
    if (log_file)
        fclose(log_file);
    log_file = NULL;
    if (log_target == LOG_TO_SYSLOG)
        closelog();
    log_target = LOG_TO_STDERR;
    pthread_mutex_unlock(&log_lock);
}

void log_set_level(int priority)
{
    log_level = priority;
}

static bool log_json;

void log_set_json(bool on)
{
    __atomic_store_n(&log_json, on, __ATOMIC_RELAXED);
}

bool log_is_json(void)
{
    return __atomic_load_n(&log_json, __ATOMIC_RELAXED);
}

/* One JSON line: the common members, then members (or "message"). */
static void emit_json(int priority, const char *members, const char *message)
{
    struct sbuf b = SBUF_INIT;
    /* members bring their own "time" (a verdict's): one per object */
    if (!members) {
        char when[40];
        tu_format_iso_ms(tu_now_ms(), when, sizeof when);
        sbuf_addf(&b, "{\"time\":\"%s\",", when);
    } else {
        sbuf_addc(&b, '{');
    }
    sbuf_addf(&b, "\"level\":\"%s\",\"program\":", prio_name(priority));
    pthread_mutex_lock(&log_lock);
    esc_json_s(&b, log_ident);
    sbuf_addf(&b, ",\"pid\":%ld,", (long)getpid());
    if (members) {
        sbuf_adds(&b, members);
    } else {
        sbuf_adds(&b, "\"message\":");
        esc_json_s(&b, message);
    }
    sbuf_addc(&b, '}');
    if (log_target == LOG_TO_SYSLOG) {
        syslog(priority, "%s", sbuf_str(&b));
    } else {
        FILE *f = log_target == LOG_TO_FILE && log_file ? log_file : stderr;
        fprintf(f, "%s\n", sbuf_str(&b));
        fflush(f);
    }
    pthread_mutex_unlock(&log_lock);
    sbuf_free(&b);
}

void log_fields(int priority, const char *members)
{
    if (priority > log_level)
        return;
    emit_json(priority, members, NULL);
}

void log_vmsg(int priority, const char *fmt, va_list ap)
{
    if (priority > log_level)
        return;
    if (log_is_json()) {
        struct sbuf m = SBUF_INIT;
        sbuf_vaddf(&m, fmt, ap);
        emit_json(priority, NULL, sbuf_str(&m));
        sbuf_free(&m);
        return;
    }
    pthread_mutex_lock(&log_lock);
    if (log_target == LOG_TO_SYSLOG) {
        vsyslog(priority, fmt, ap);
    } else {
        FILE *f = log_target == LOG_TO_FILE && log_file ? log_file : stderr;
        char ts[32];
        time_t now = time(NULL);
        struct tm tm;
        localtime_r(&now, &tm);
        strftime(ts, sizeof ts, "%Y-%m-%d %H:%M:%S", &tm);
        fprintf(f, "%s %s[%ld]: %s: ", ts, log_ident, (long)getpid(),
                prio_name(priority));
        vfprintf(f, fmt, ap);
        fputc('\n', f);
        fflush(f);
    }
    pthread_mutex_unlock(&log_lock);
}

void log_msg(int priority, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    log_vmsg(priority, fmt, ap);
    va_end(ap);
}
