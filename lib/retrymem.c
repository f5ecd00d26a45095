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

/* The slot holding key, or NULL; with victim, where a new key would go (an
 * empty slot, else the oldest). Called with the lock held. */
static struct slot *find(struct retrymem *m, uint64_t key, struct slot **victim)
{
    size_t home = (size_t)(key ^ (key >> 29)) & m->mask;
    struct slot *v = NULL;
    for (size_t i = 0; i < PROBE; i++) {
        struct slot *s = &m->v[(home + i) & m->mask];
        if (s->key == key)
            return s;
        if (!v || (v->key && (!s->key || s->first_ms < v->first_ms)))
            v = s;
    }
    if (victim)
        *victim = v;
    return NULL;
}

enum retrymem_state retrymem_check(struct retrymem *m, uint64_t key, int64_t now_ms,
                                   int64_t delay_ms, int64_t window_ms)
{
    if (!key)
        key = 1;
    pthread_mutex_lock(&m->mu);
    enum retrymem_state st = RETRYMEM_NONE;
    const struct slot *s = find(m, key, NULL);
    if (s) {
        int64_t age = now_ms - s->first_ms;
        if (age >= 0 && age < delay_ms)
            st = RETRYMEM_EARLY;
        else if (age >= 0 && age <= window_ms)
            st = RETRYMEM_RETRY;
    }
    pthread_mutex_unlock(&m->mu);
    return st;
}

void retrymem_note(struct retrymem *m, uint64_t key, int64_t now_ms)
{
    if (!key)
        key = 1;
    pthread_mutex_lock(&m->mu);
    struct slot *victim = NULL, *s = find(m, key, &victim);
    if (!s) {
        s = victim;
        if (!s->key)
            m->count++;
        s->key = key;
    }
    s->first_ms = now_ms;
    pthread_mutex_unlock(&m->mu);
}

void retrymem_forget(struct retrymem *m, uint64_t key)
{
    if (!key)
        key = 1;
    pthread_mutex_lock(&m->mu);
    struct slot *s = find(m, key, NULL);
    if (s) {
        /* free again; find() looks at every slot a key may use, so an
         * empty one in between hides nothing */
        s->key = 0;
        m->count--;
    }
    pthread_mutex_unlock(&m->mu);
}

size_t retrymem_count(struct retrymem *m)
{
    pthread_mutex_lock(&m->mu);
    size_t n = m->count;
    pthread_mutex_unlock(&m->mu);
    return n;
}
