/* Host-side random numbers for data preparation (shuffles, synthetic labels).
 * Initial weights come from the backend's Philox generator instead, so that
 * both backends start from the same numbers. */
#ifndef DLAB_RNG_H
#define DLAB_RNG_H

#include <stdint.h>
#include <stddef.h>

typedef struct {
    uint64_t state;
} dl_rng;

void dl_rng_seed(dl_rng *r, uint64_t seed);
uint64_t dl_rng_next(dl_rng *r);                             /* splitmix64 */
double dl_rng_uniform(dl_rng *r);                            /* [0, 1) with 53 random bits */
double dl_rng_normal(dl_rng *r);                             /* Box-Muller, one value per call */
uint64_t dl_rng_below(dl_rng *r, uint64_t n);                /* uniform in [0, n), unbiased */
void dl_rng_permutation(dl_rng *r, int32_t *perm, size_t n); /* Fisher-Yates */

/* Where a model's initial values come from. Every seed draws from ONE
 * Philox stream (key DL_INIT_KEY): seed s starts at position
 * s * round4(per_model). Consecutive seeds are thus consecutive stretches of
 * the stream, so N models trained together (--seeds N) draw their values
 * in order without re-seeding the generator (re-seeding cuRAND's host
 * generator costs about 10 ms), and model b of a batch gets exactly the
 * numbers of a single run with seed S + b. Positions wrap modulo 2^64. */
#define DL_INIT_KEY 0x646c6162ULL /* "dlab" */

static inline uint64_t dl_init_offset(uint64_t seed, uint64_t per_model)
{
    return seed * ((per_model + 3) & ~(uint64_t)3);
}

#endif
