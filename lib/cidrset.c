/* cidrset: see cidrset.h. A binary trie over the 128 address bits, nodes in
 * one array (indices, not pointers, so growing it is a single realloc); a
 * node that ends a prefix remembers which entry of the insertion-ordered
 * list it is. Lookups walk at most 128 nodes and keep the deepest hit. */
#include "cidrset.h"

#include <stdint.h>
#include <stdlib.h>

#include "xalloc.h"

#define NONE UINT32_MAX

struct node {
    uint32_t child[2];
    uint32_t prefix;           /* index into list, or NONE */
};

struct cidrset {
    struct node *nodes;        /* nodes[0] is the root (the /0 prefix) */
    size_t nnodes, capnodes;
    struct cidr *list;         /* insertion order, no duplicates */
    size_t n, cap;
};

static uint32_t new_node(struct cidrset *s)
{
    if (s->nnodes == s->capnodes) {
        s->capnodes = s->capnodes ? s->capnodes * 2 : 64;
        s->nodes = xrealloc(s->nodes, s->capnodes * sizeof *s->nodes);
    }
    struct node *nd = &s->nodes[s->nnodes];
    nd->child[0] = nd->child[1] = nd->prefix = NONE;
    return (uint32_t)s->nnodes++;
}

static unsigned bit_at(const struct ip *a, unsigned i)
{
    return (a->b[i / 8] >> (7 - i % 8)) & 1;
}

struct cidrset *cidrset_new(void)
{
    struct cidrset *s = xcalloc(1, sizeof *s);
    new_node(s);
    return s;
}

void cidrset_free(struct cidrset *s)
{
    if (!s)
        return;
    free(s->nodes);
    free(s->list);
    free(s);
}

void cidrset_add(struct cidrset *s, const struct cidr *c)
{
    struct cidr k = *c;
    if (k.bits > 128)
        k.bits = 128;
    ip_mask(&k.net, k.bits);   /* callers may hand us an unmasked net */
    uint32_t at = 0;
    for (unsigned i = 0; i < k.bits; i++) {
        unsigned bit = bit_at(&k.net, i);
        if (s->nodes[at].child[bit] == NONE) {
            uint32_t nn = new_node(s);     /* may move s->nodes */
            s->nodes[at].child[bit] = nn;
        }
        at = s->nodes[at].child[bit];
    }
    if (s->nodes[at].prefix != NONE)
        return;                /* already present */
    if (s->n == s->cap) {
        s->cap = s->cap ? s->cap * 2 : 16;
        s->list = xrealloc(s->list, s->cap * sizeof *s->list);
    }
    s->list[s->n] = k;
    s->nodes[at].prefix = (uint32_t)s->n++;
}

int cidrset_add_str(struct cidrset *s, const char *text, char *err, size_t errlen)
{
    struct cidr c;
    if (cidr_parse(text, &c, err, errlen) < 0)
        return -1;
    cidrset_add(s, &c);
    return 0;
}

bool cidrset_match(const struct cidrset *s, const struct ip *a, struct cidr *hit)
{
    if (!s)
        return false;
    uint32_t at = 0, best = NONE;
    for (unsigned i = 0;; i++) {
        if (s->nodes[at].prefix != NONE)
            best = s->nodes[at].prefix;
        if (i == 128)
            break;
        at = s->nodes[at].child[bit_at(a, i)];
        if (at == NONE)
            break;
    }
    if (best == NONE)
        return false;
    if (hit)
        *hit = s->list[best];
    return true;
}

bool cidrset_contains(const struct cidrset *s, const struct ip *a)
{
    return cidrset_match(s, a, NULL);
}

size_t cidrset_count(const struct cidrset *s)
{
    return s ? s->n : 0;
}

const struct cidr *cidrset_get(const struct cidrset *s, size_t i)
{
    return s && i < s->n ? &s->list[i] : NULL;
}
