/* milter: state shared between the daemon's startup code (main.c) and the
 * libmilter callbacks (callbacks.c). Only this folder includes mfapi.h;
 * every decision is made by lib/. */
#ifndef KANJIKI_MILTER_H
#define KANJIKI_MILTER_H
#include <pthread.h>
#include <stdbool.h>

#include "policy.h"
#include "popauth.h"
#include "store.h"

struct kj_daemon {
    pthread_mutex_t lock;           /* guards policy */
    struct policy *policy;          /* current; connections hold their own ref */
    struct store_writer *writer;
    struct popauth_cache *grants;
    int active;                     /* connections between connect and close */
    int busy;                       /* of those, inside a MAIL transaction */
    int stopping;                   /* SIGTERM seen: take no new work */
};

extern struct kj_daemon kj;

/* A new reference to the current policy (never NULL once started). */
struct policy *kj_policy_get(void);
/* Register the callbacks with libmilter. Returns 0 or -1. */
int kj_register(void);

#endif
