#include "dlab/rng.h"

#include <math.h>

void dl_rng_seed(dl_rng *r, uint64_t seed) { r->state = seed ^ 0x6a09e667f3bcc909ULL; }

uint64_t dl_rng_next(dl_rng *r)
{
    uint64_t z = (r->state += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

double dl_rng_uniform(dl_rng *r) { return (double)(dl_rng_next(r) >> 11) * 0x1.0p-53; }

double dl_rng_normal(dl_rng *r)
{
    double u1 = 1.0 - dl_rng_uniform(r), u2 = dl_rng_uniform(r); /* u1 in (0, 1] */
    return sqrt(-2.0 * log(u1)) * cos(6.283185307179586 * u2);
}

uint64_t dl_rng_below(dl_rng *r, uint64_t n)
{
    uint64_t limit = UINT64_MAX - UINT64_MAX % n; /* reject the biased tail */
    uint64_t x;
    do x = dl_rng_next(r);
    while (x >= limit);
    return x % n;
}

void dl_rng_permutation(dl_rng *r, int32_t *perm, size_t n)
{
    for (size_t i = 0; i < n; i++) perm[i] = (int32_t)i;
    for (size_t i = n; i > 1; i--) {
        size_t j = (size_t)dl_rng_below(r, i);
        int32_t t = perm[i - 1];
        perm[i - 1] = perm[j];
        perm[j] = t;
    }
}
