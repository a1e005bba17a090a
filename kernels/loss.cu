/* Softmax cross-entropy, fused: one pass over the logits gives each row's
 * loss, its gradient (softmax - onehot) / rows and whether its argmax is the
 * label. The row math is dl_softmax_xent_row from host/backends/elem_math.h, the
 * same function the CPU backend loops over. Loss and accuracy are reduced
 * deterministically: per-block double partials, then each model's partials
 * added in index order. */
#include "kernels.h"
#include "elem_math.h"

/* Rows per thread before a second block joins a model: an MLP batch of a few
 * hundred rows is one block; very large batches spread out. */
#define DL_XENT_ROWS_PER_THREAD 4
#define DL_XENT_MAX_BLOCKS      256

/* Stage 1: block x of model y handles a grid-stride slice of the rows and
 * writes (loss sum, correct count) to partials[y][x][0..1]. */
static __global__ void softmax_xent_partials_kernel(const float *logits, const int32_t *labels,
                                                    int rows, int classes, int models,
                                                    size_t label_stride, float *dlogits,
                                                    double *partials)
{
    __shared__ double shared[DL_BLOCK];
    const float scale = 1.0f / (float)rows;
    const size_t per_model = (size_t)rows * (size_t)classes;
    for (int b = blockIdx.y; b < models; b += gridDim.y) {
        double loss_acc = 0.0, correct_acc = 0.0;
        for (size_t r = (size_t)blockIdx.x * blockDim.x + threadIdx.x; r < (size_t)rows;
             r += (size_t)gridDim.x * blockDim.x) {
            size_t off = (size_t)b * per_model + r * (size_t)classes;
            int label = labels[(size_t)b * label_stride + r];
            float *grad = dlogits ? dlogits + off : NULL;
            int correct;
            /* A label outside [0, classes) gives NaN here (see elem_math.h). */
            loss_acc += dl_softmax_xent_row(logits + off, classes, label, grad, scale, &correct);
            correct_acc += correct;
        }
        double block_loss = dl_block_sum(loss_acc, shared);
        double block_correct = dl_block_sum(correct_acc, shared);
        if (threadIdx.x == 0) {
            double *slot = partials + ((size_t)b * gridDim.x + blockIdx.x) * 2;
            slot[0] = block_loss;
            slot[1] = block_correct;
        }
    }
}

/* Stage 2: one thread per model; means over rows, computed in double. */
static __global__ void softmax_xent_finish_kernel(const double *partials, int parts, int models,
                                                  int rows, float *loss, float *acc)
{
    for (int b = blockIdx.x * blockDim.x + threadIdx.x; b < models; b += gridDim.x * blockDim.x) {
        const double *pb = partials + (size_t)b * parts * 2;
        double loss_sum = 0.0, correct_sum = 0.0;
        for (int k = 0; k < parts; k++) {
            loss_sum += pb[2 * k];
            correct_sum += pb[2 * k + 1];
        }
        if (loss) loss[b] = (float)(loss_sum / rows);
        if (acc) acc[b] = (float)(correct_sum / rows);
    }
}

extern "C" cudaError_t dl_launch_softmax_xent(const float *logits, const int32_t *labels, int rows,
                                              int classes, int batch, size_t label_stride,
                                              float *dlogits, float *loss, float *acc,
                                              double *scratch, size_t scratch_len,
                                              cudaStream_t stream)
{
    if (rows < 0 || classes < 1 || batch < 0) return cudaErrorInvalidValue;
    if (batch == 0) return cudaSuccess;
    if ((rows > 0 && (!logits || !labels)) || !scratch || scratch_len < 2)
        return cudaErrorInvalidValue;

    size_t per_block = (size_t)DL_BLOCK * DL_XENT_ROWS_PER_THREAD;
    size_t blocks = ((size_t)rows + per_block - 1) / per_block;
    if (blocks < 1) blocks = 1;
    if (blocks > DL_XENT_MAX_BLOCKS) blocks = DL_XENT_MAX_BLOCKS;
    dl_reduce_plan plan =
        dl_reduce_plan_make(dl_reduce_fit(blocks, 2, scratch_len), 2, scratch_len);
    size_t per_model = (size_t)rows * (size_t)classes;

    return dl_reduce_run(plan, batch, [&](size_t b0, int models) {
        softmax_xent_partials_kernel<<<dl_reduce_grid(plan, models), DL_BLOCK, 0, stream>>>(
            logits + b0 * per_model, labels + b0 * label_stride, rows, classes, models,
            label_stride, dlogits ? dlogits + b0 * per_model : NULL, scratch);
        cudaError_t err = cudaGetLastError();
        if (err != cudaSuccess || (!loss && !acc)) return err;
        softmax_xent_finish_kernel<<<dl_grid_for((size_t)models), DL_BLOCK, 0, stream>>>(
            scratch, (int)plan.slices, models, rows, loss ? loss + b0 : NULL,
            acc ? acc + b0 : NULL);
        return cudaGetLastError();
    });
}
