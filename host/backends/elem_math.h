/* Per-element math shared by the CPU loops and the CUDA kernels.
 *
 * Every function here is compiled twice: by the host C compiler for the CPU
 * backend and by nvcc for the kernels (or, with DLAB_CUDA_EMU, by a host C++
 * compiler whose CUDA emulation headers define __host__ and __device__). The
 * CPU tests therefore exercise the same arithmetic that runs on the GPU. Keep these small, branch-light and
 * free of library calls other than expf/logf/sqrtf/powf.
 */
#ifndef DLAB_MATH_H
#define DLAB_MATH_H

#include <math.h>

#if defined(__CUDACC__) || defined(DLAB_CUDA_EMU)
#define DL_HD static inline __host__ __device__
#else
#define DL_HD static inline
#endif

DL_HD float dl_relu(float x) { return x > 0.0f ? x : 0.0f; }

/* Gradient through ReLU given the forward output h = relu(x): h > 0 iff x > 0. */
DL_HD float dl_relu_grad(float h, float g) { return h > 0.0f ? g : 0.0f; }

/* Optimiser steps on one parameter. `t` is the 1-based step number. */
DL_HD float dl_sgd_step(float p, float g, float lr) { return p - lr * g; }

DL_HD float dl_momentum_step(float p, float g, float *vel, float lr, float mu)
{
    float v = mu * *vel + g;
    *vel = v;
    return p - lr * v;
}

DL_HD float dl_adam_step(float p, float g, float *m, float *v, float lr, float b1, float b2,
                         float eps, int t)
{
    float mt = b1 * *m + (1.0f - b1) * g;
    float vt = b2 * *v + (1.0f - b2) * g * g;
    *m = mt;
    *v = vt;
    float mhat = mt / (1.0f - powf(b1, (float)t));
    float vhat = vt / (1.0f - powf(b2, (float)t));
    return p - lr * mhat / (sqrtf(vhat) + eps);
}

/* dl_adam_step with its bias corrections c1 = 1 - beta1^t and c2 = 1 -
 * beta2^t computed once per step by the caller (dl_adam_corrections), for a
 * loop over many parameters: the same operations in the same order, so the
 * same bits as dl_adam_step, without two powf per parameter. */
DL_HD void dl_adam_corrections(float b1, float b2, int t, float *c1, float *c2)
{
    *c1 = 1.0f - powf(b1, (float)t);
    *c2 = 1.0f - powf(b2, (float)t);
}

DL_HD float dl_adam_step_corrected(float p, float g, float *m, float *v, float lr, float b1,
                                   float b2, float eps, float c1, float c2)
{
    float mt = b1 * *m + (1.0f - b1) * g;
    float vt = b2 * *v + (1.0f - b2) * g * g;
    *m = mt;
    *v = vt;
    float mhat = mt / c1;
    float vhat = vt / c2;
    return p - lr * mhat / (sqrtf(vhat) + eps);
}

/* Softmax cross-entropy of one row of `c` logits against class `label`.
 * Returns the loss -log softmax(z)[label]. If `grad` is not NULL it receives
 * (softmax(z) - onehot(label)) * scale. `*correct` is set to 1 when the
 * first maximal logit is the label (ties go to the lowest index), else 0.
 * Max-subtraction keeps expf finite for any finite logits.
 * A label outside [0, c) gives a NaN loss, a NaN gradient row and
 * *correct = 0: a corrupt label shows up as divergence, and z is never read
 * at the bad index. */
DL_HD float dl_softmax_xent_row(const float *z, int c, int label, float *grad, float scale,
                                int *correct)
{
    if (label < 0 || label >= c) {
        if (grad)
            for (int j = 0; j < c; j++) grad[j] = NAN;
        *correct = 0;
        return NAN;
    }
    float zmax = z[0];
    int arg = 0;
    for (int j = 1; j < c; j++)
        if (z[j] > zmax) {
            zmax = z[j];
            arg = j;
        }
    /* With a gradient to write, its row holds the exponentials between the
     * two passes, so each costs one expf. */
    float sum = 0.0f;
    if (grad) {
        for (int j = 0; j < c; j++) sum += (grad[j] = expf(z[j] - zmax));
        float inv = 1.0f / sum;
        for (int j = 0; j < c; j++) grad[j] = (grad[j] * inv - (j == label ? 1.0f : 0.0f)) * scale;
    } else {
        for (int j = 0; j < c; j++) sum += expf(z[j] - zmax);
    }
    *correct = (arg == label);
    return logf(sum) - (z[label] - zmax);
}

#endif
