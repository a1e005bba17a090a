/* Host-side random numbers for data preparation (shuffles, synthetic labels).
 * Initial weights come from the backend's Philox generator instead, so that
 * both backends start from the same numbers. */
#ifndef DLAB_RNG_H
#define DLAB_RNG_H

#include <stdint.h>
#include <stddef.h>

typedef struct { uint64_t state; } dl_rng;

void dl_rng_seed(dl_rng *r, uint64_t seed);
uint64_t dl_rng_next(dl_rng *r);            /* splitmix64 */
double dl_rng_uniform(dl_rng *r);           /* [0, 1) with 53 random bits */
double dl_rng_normal(dl_rng *r);            /* Box-Muller, one value per call */
uint64_t dl_rng_below(dl_rng *r, uint64_t n); /* uniform in [0, n), unbiased */
void dl_rng_permutation(dl_rng *r, int32_t *perm, size_t n); /* Fisher-Yates */

#endif
