/* retrymem: remembers messages that were refused for now (tempfail) so
 * that their retry can be told from a first attempt, as greylisting does.
 * Real MTAs keep a queue and come back after minutes; much bulk spamware
 * never retries. A retry counts from `delay` after the first attempt until
 * `window` after it.
 *
 * Bounded: a fixed table of slots; when the few slots a key may use are
 * taken, the oldest entry goes. Forgetting one only costs its sender one
 * more tempfail. Thread-safe: one mutex inside. Ownership:
 * retrymem_new/retrymem_free. */
#ifndef KANJIKI_RETRYMEM_H
#define KANJIKI_RETRYMEM_H
#include <stddef.h>
#include <stdint.h>

enum retrymem_state {
    RETRYMEM_NONE = 0,    /* not remembered (or remembered too long ago) */
    RETRYMEM_EARLY,       /* remembered less than delay ago: still a first attempt */
    RETRYMEM_RETRY,       /* remembered between delay and window ago */
};

struct retrymem;
/* slots: how many attempts it can hold (rounded up to a power of two). */
struct retrymem *retrymem_new(size_t slots);
void retrymem_free(struct retrymem *m);
/* key: a hash of what identifies the message (0 is mapped to 1). What the
 * memory says about it; nothing is changed. */
enum retrymem_state retrymem_check(struct retrymem *m, uint64_t key, int64_t now_ms,
                                   int64_t delay_ms, int64_t window_ms);
/* Remember a first attempt now (an expired entry starts again). */
void retrymem_note(struct retrymem *m, uint64_t key, int64_t now_ms);
/* Forget key (its retry has come): the slot is free again. */
void retrymem_forget(struct retrymem *m, uint64_t key);
size_t retrymem_count(struct retrymem *m);   /* entries held */

/* FNV-1a over bytes, to build keys: h = retrymem_hash(h, s, n) chained
 * from RETRYMEM_HASH_INIT. */
#define RETRYMEM_HASH_INIT 0xcbf29ce484222325ULL
uint64_t retrymem_hash(uint64_t h, const void *p, size_t n);

#endif
