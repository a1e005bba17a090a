#include "dlab/predict.h"

#include "dlab/mlp.h"
#include "dlab/train.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

void dl_predictions_free(dl_predictions *p)
{
    if (!p) return;
    free(p->predicted), free(p->prob), free(p->logits);
    memset(p, 0, sizeof *p);
}

/* The forward pass on the device: hid = relu(X W1 + b1), logits = hid W2 + b2. */
static dl_status forward(dl_backend *be, const dl_mlp_model *m, int rows, const float *x,
                         const float *params, float *hid, float *logits)
{
    const int d = m->features, h = m->hidden, c = m->classes;
    const size_t b1 = (size_t)d * h, w2 = b1 + (size_t)h, b2 = w2 + (size_t)h * c;
    DL_TRY(dl_matmul(be, false, false, rows, h, d, 1.0f, x, params, 0.0f, hid));
    DL_TRY(dl_bias_act(be, hid, params + b1, rows, h, 1, 0, true));
    DL_TRY(dl_matmul(be, false, false, rows, c, h, 1.0f, hid, params + w2, 0.0f, logits));
    return dl_bias_act(be, logits, params + b2, rows, c, 1, 0, false);
}

/* Softmax in double and the first largest logit, row by row; rows with a
 * non-finite logit get no class. */
static void finish_rows(dl_predictions *p)
{
    const int c = p->classes;
    for (int i = 0; i < p->rows; i++) {
        const float *z = p->logits + (size_t)i * c;
        float *pr = p->prob + (size_t)i * c;
        int arg = 0;
        bool finite = isfinite(z[0]);
        for (int j = 1; j < c; j++) {
            if (z[j] > z[arg]) arg = j;
            finite = finite && isfinite(z[j]);
        }
        p->predicted[i] = arg;
        if (!finite) {
            /* The argmax of non-finite logits names no class. */
            p->predicted[i] = -1;
            p->non_finite++;
            for (int j = 0; j < c; j++) pr[j] = NAN;
            continue;
        }
        double sum = 0.0;
        for (int j = 0; j < c; j++) sum += exp((double)z[j] - z[arg]);
        for (int j = 0; j < c; j++) pr[j] = (float)(exp((double)z[j] - z[arg]) / sum);
    }
}

dl_status dl_mlp_predict(dl_backend *be, const dl_mlp_model *m, const float *x, int rows,
                         dl_predictions *out)
{
    memset(out, 0, sizeof *out);
    if (m->features < 1 || m->hidden < 1 || m->classes < 1 || rows < 1)
        return DL_FAIL(DL_E_USAGE,
                       "predict: invalid shape (%d rows, features %d, hidden %d, classes %d)", rows,
                       m->features, m->hidden, m->classes);
    const size_t d = (size_t)m->features, R = (size_t)rows, C = (size_t)m->classes;
    const size_t P = dl_mlp_param_count(m->features, m->hidden, m->classes);
    const size_t n_x = R * d, n_h = R * (size_t)m->hidden, n_z = R * C;
    DL_TRY(dl_check_fits(be, sizeof(float) * (n_x + n_h + n_z + P), "this prediction"));
    float *xs = malloc(sizeof(float) * n_x);
    double *inv = malloc(sizeof(double) * d);
    out->rows = rows, out->classes = m->classes;
    out->predicted = malloc(sizeof(int32_t) * R);
    out->prob = malloc(sizeof(float) * n_z);
    out->logits = malloc(sizeof(float) * n_z);
    dl_status st = DL_OK;
    float *x_d = NULL, *p_d = NULL, *h_d = NULL, *z_d = NULL;
    if (!xs || !inv || !out->predicted || !out->prob || !out->logits) {
        st = DL_FAIL(DL_E_MEMORY, "out of host memory predicting %d rows", rows);
        goto done;
    }
    for (size_t j = 0; j < d; j++) inv[j] = 1.0 / m->input_scale[j];
    for (size_t i = 0; i < R; i++)
        for (size_t j = 0; j < d; j++)
            xs[i * d + j] = (float)((x[i * d + j] - m->input_mean[j]) * inv[j]);
    if ((st = dl_alloc(be, sizeof(float) * n_x, (void **)&x_d)) ||
        (st = dl_alloc(be, sizeof(float) * P, (void **)&p_d)) ||
        (st = dl_alloc(be, sizeof(float) * n_h, (void **)&h_d)) ||
        (st = dl_alloc(be, sizeof(float) * n_z, (void **)&z_d)) ||
        (st = dl_upload(be, x_d, xs, sizeof(float) * n_x)) ||
        (st = dl_upload(be, p_d, m->params, sizeof(float) * P)) ||
        (st = forward(be, m, rows, x_d, p_d, h_d, z_d)) ||
        (st = dl_download(be, out->logits, z_d, sizeof(float) * n_z)))
        goto done;
    finish_rows(out);
done:
    dl_free(be, x_d), dl_free(be, p_d), dl_free(be, h_d), dl_free(be, z_d);
    free(xs), free(inv);
    if (st != DL_OK) dl_predictions_free(out);
    return st;
}

int dl_confusion_add(const dl_predictions *p, const int32_t *labels, const int32_t *idx, int n,
                     int *counts)
{
    const int c = p->classes;
    int counted = 0;
    for (int k = 0; k < n; k++) {
        int i = idx ? idx[k] : k;
        int y = labels[i], q = p->predicted[i];
        if (y < 0 || y >= c || q < 0 || q >= c) continue;
        counts[(size_t)y * c + q]++;
        counted++;
    }
    return counted;
}
