#include "retrymem.h"

#include <pthread.h>
#include <stdlib.h>

#include "xalloc.h"

/* Slots a key may live in: its home slot and the next ones. */
#define PROBE 8

struct slot {
    uint64_t key;      /* 0: empty */
    int64_t first_ms;  /* the first attempt */
};

struct retrymem {
    pthread_mutex_t mu;
    struct slot *v;
    size_t mask;
    size_t count;
};

struct retrymem *retrymem_new(size_t slots)
{
    size_t n = PROBE;
    while (n < slots)
        n <<= 1;
    struct retrymem *m = xcalloc(1, sizeof *m);
    pthread_mutex_init(&m->mu, NULL);
    m->v = xcalloc(n, sizeof *m->v);
    m->mask = n - 1;
    return m;
}

void retrymem_free(struct retrymem *m)
{
    if (!m)
        return;
    pthread_mutex_destroy(&m->mu);
    free(m->v);
    free(m);
}

uint64_t retrymem_hash(uint64_t h, const void *p, size_t n)
{
    const unsigned char *b = p;
    for (size_t i = 0; i < n; i++) {
        h ^= b[i];
        h *= 0x100000001b3ULL;
    }
    return h;
}

enum retrymem_state retrymem_seen(struct retrymem *m, uint64_t key, int64_t now_ms,
                                  int64_t delay_ms, int64_t window_ms)
{
    if (!key)
        key = 1;
    pthread_mutex_lock(&m->mu);
    size_t home = (size_t)(key ^ (key >> 29)) & m->mask;
    struct slot *victim = NULL;
    enum retrymem_state st = RETRYMEM_FIRST;
    for (size_t i = 0; i < PROBE; i++) {
        struct slot *s = &m->v[(home + i) & m->mask];
        if (s->key == key) {
            int64_t age = now_ms - s->first_ms;
            if (age >= 0 && age < delay_ms) {
                st = RETRYMEM_EARLY;
                goto out;
            }
            if (age >= 0 && age <= window_ms) {
                st = RETRYMEM_RETRY;
                goto out;
            }
            victim = s;   /* expired (or from the future): start again */
            break;
        }
        /* an empty slot, else the oldest attempt goes */
        if (!victim || (victim->key && (!s->key || s->first_ms < victim->first_ms)))
            victim = s;
    }
    if (!victim->key)
        m->count++;
    victim->key = key;
    victim->first_ms = now_ms;
out:
    pthread_mutex_unlock(&m->mu);
    return st;
}

size_t retrymem_count(struct retrymem *m)
{
    pthread_mutex_lock(&m->mu);
    size_t n = m->count;
    pthread_mutex_unlock(&m->mu);
    return n;
}
