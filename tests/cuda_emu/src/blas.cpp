/* Emulated cuBLAS: the handle calls and Sgemm, SgemmStridedBatched and
 * Sgeam, column-major as cuBLAS is. The argument rules and status codes are
 * cuBLAS's (its API reference, per function); a call that passes them is
 * queued on the handle's stream and runs there, gemm through OpenBLAS's
 * cblas_sgemm(CblasColMajor, ...), the same operation with the same leading
 * dimensions. Before queuing, each operand's extent (from m, n, k, ld and
 * the batch stride) is checked against the device allocation it lives in,
 * so a wrong leading dimension or shape that reads or writes outside the
 * operand is reported at the call's file:line.
 */
#include "emu.h"

#include <cblas.h>
#include <cstring>

#include <cublas_v2.h>

using namespace dl_emu;

namespace
{

struct blas_handle {
    cudaStream_t stream = nullptr;
    cublasPointerMode_t pointer_mode = CUBLAS_POINTER_MODE_HOST;
    cublasMath_t math = CUBLAS_DEFAULT_MATH;
    void *workspace = nullptr;
    size_t workspace_size = 0;
};

bool valid_op(cublasOperation_t op)
{
    return op == CUBLAS_OP_N || op == CUBLAS_OP_T || op == CUBLAS_OP_C;
}

int max1(int a) { return a > 1 ? a : 1; }

/* Bytes spanned by a column-major rows x cols matrix with leading dimension
 * ld (the last element's end), batch copies `stride` elements apart. */
size_t span(int rows, int cols, int ld, long long stride, int batch)
{
    if (rows <= 0 || cols <= 0 || batch <= 0) return 0;
    size_t last = (size_t)(cols - 1) * (size_t)ld + (size_t)rows;
    return (last + (size_t)(batch - 1) * (size_t)(stride < 0 ? -stride : stride)) * sizeof(float);
}

void operand(const site &s, const char *call, const char *name, const void *p, int rows, int cols,
             int ld, long long stride, int batch)
{
    std::string what =
        std::string("operand ") + name + " of " + call + " (" + std::to_string(rows) + "x" +
        std::to_string(cols) + ", ld " + std::to_string(ld) +
        (batch > 1 ? ", stride " + std::to_string(stride) + ", batch " + std::to_string(batch)
                   : std::string()) +
        ")";
    if (!p) fail(s, "%s is NULL", what.c_str());
    require_device_range(s, what.c_str(), p, span(rows, cols, ld, stride, batch));
}

CBLAS_TRANSPOSE cblas_op(cublasOperation_t op)
{
    return op == CUBLAS_OP_N ? CblasNoTrans : CblasTrans;
}

/* Scalars: read at the call in host pointer mode, when the work runs in
 * device pointer mode. */
struct scalar {
    float value = 0;
    const float *device = nullptr;
    float get() const { return device ? *device : value; }
};

scalar take_scalar(const blas_handle *h, const float *p)
{
    scalar v;
    if (h->pointer_mode == CUBLAS_POINTER_MODE_DEVICE)
        v.device = p;
    else
        v.value = *p;
    return v;
}

void after(const void *p, const site &s, const std::string &by)
{
    if (const allocation *a = find_allocation(p, 0)) check_canaries(a, s, by);
}

cublasStatus_t queue(blas_handle *h, const site &s, const char *call, std::function<void()> fn)
{
    cudaError_t e =
        enqueue(h->stream, work{s, std::string(call) + " at " + where(s), std::move(fn)});
    if (e != cudaSuccess) {
        set_error(e);
        return CUBLAS_STATUS_EXECUTION_FAILED;
    }
    return CUBLAS_STATUS_SUCCESS;
}

/* C = alpha op(A) op(B) + beta C for one matrix, column-major. cuBLAS does
 * not read C when beta is 0 (so NaNs in it do not propagate), and with k or
 * alpha 0 only scales C. */
void sgemm_one(cublasOperation_t ta, cublasOperation_t tb, int m, int n, int k, float alpha,
               const float *a, int lda, const float *b, int ldb, float beta, float *c, int ldc)
{
    if (beta == 0.0f)
        for (int j = 0; j < n; j++) memset(c + (size_t)j * ldc, 0, sizeof(float) * (size_t)m);
    if (k == 0 || alpha == 0.0f) {
        if (beta != 0.0f && beta != 1.0f)
            for (int j = 0; j < n; j++)
                for (int i = 0; i < m; i++) c[(size_t)j * ldc + i] *= beta;
        return;
    }
    cblas_sgemm(CblasColMajor, cblas_op(ta), cblas_op(tb), m, n, k, alpha, a, lda, b, ldb,
                beta == 0.0f ? 0.0f : beta, c, ldc);
}

/* The argument rules of cublas<t>gemm (shared by the strided batched form). */
cublasStatus_t gemm_args(blas_handle *h, cublasOperation_t ta, cublasOperation_t tb, int m, int n,
                         int k, const float *alpha, int lda, int ldb, const float *beta, int ldc)
{
    if (!h) return CUBLAS_STATUS_NOT_INITIALIZED;
    if (m < 0 || n < 0 || k < 0 || !valid_op(ta) || !valid_op(tb))
        return CUBLAS_STATUS_INVALID_VALUE;
    if (lda < max1(ta == CUBLAS_OP_N ? m : k) || ldb < max1(tb == CUBLAS_OP_N ? k : n) ||
        ldc < max1(m))
        return CUBLAS_STATUS_INVALID_VALUE;
    if (!alpha || !beta) return CUBLAS_STATUS_INVALID_VALUE;
    return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t gemm(blas_handle *h, const site &s, const char *call, cublasOperation_t ta,
                    cublasOperation_t tb, int m, int n, int k, const float *alpha, const float *a,
                    int lda, long long sa, const float *b, int ldb, long long sb, const float *beta,
                    float *c, int ldc, long long sc, int batch)
{
    cublasStatus_t st = gemm_args(h, ta, tb, m, n, k, alpha, lda, ldb, beta, ldc);
    if (st != CUBLAS_STATUS_SUCCESS) return st;
    if (batch < 0) return CUBLAS_STATUS_INVALID_VALUE;
    if (m == 0 || n == 0 || batch == 0) return CUBLAS_STATUS_SUCCESS;
    scalar al = take_scalar(h, alpha), be = take_scalar(h, beta);
    bool reads_ab = k > 0 && (al.device || al.value != 0.0f);
    if (reads_ab) {
        operand(s, call, "A", a, ta == CUBLAS_OP_N ? m : k, ta == CUBLAS_OP_N ? k : m, lda, sa,
                batch);
        operand(s, call, "B", b, tb == CUBLAS_OP_N ? k : n, tb == CUBLAS_OP_N ? n : k, ldb, sb,
                batch);
    }
    operand(s, call, "C", c, m, n, ldc, sc, batch);
    std::string by = std::string(call) + " at " + where(s);
    return queue(h, s, call, [=] {
        float alv = al.get(), bev = be.get();
        for (int i = 0; i < batch; i++)
            sgemm_one(ta, tb, m, n, k, alv, a + (ptrdiff_t)i * sa, lda, b + (ptrdiff_t)i * sb, ldb,
                      bev, c + (ptrdiff_t)i * sc, ldc);
        after(c, s, by);
    });
}

/* Do [p, p + bytes) and [q, q + bytes2) overlap? */
bool overlap(const void *p, size_t bytes, const void *q, size_t bytes2)
{
    uintptr_t a = (uintptr_t)p, b = (uintptr_t)q;
    return bytes && bytes2 && a < b + bytes2 && b < a + bytes;
}

} // namespace

extern "C" {

cublasStatus_t cublasCreate_v2(cublasHandle_t *handle)
{
    take_site();
    if (!handle) return CUBLAS_STATUS_INVALID_VALUE;
    *handle = (cublasHandle_t) new blas_handle;
    return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t cublasDestroy_v2(cublasHandle_t handle)
{
    take_site();
    if (!handle) return CUBLAS_STATUS_NOT_INITIALIZED;
    /* Queued work holds the handle's values, not the handle. */
    delete (blas_handle *)handle;
    return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t cublasSetStream_v2(cublasHandle_t handle, cudaStream_t stream)
{
    take_site();
    if (!handle) return CUBLAS_STATUS_NOT_INITIALIZED;
    if (!get_stream(stream)) return CUBLAS_STATUS_INVALID_VALUE;
    blas_handle *h = (blas_handle *)handle;
    h->stream = stream;
    /* Setting a stream resets the workspace to cuBLAS's own pool. */
    h->workspace = nullptr;
    h->workspace_size = 0;
    return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t cublasSetPointerMode_v2(cublasHandle_t handle, cublasPointerMode_t mode)
{
    take_site();
    if (!handle) return CUBLAS_STATUS_NOT_INITIALIZED;
    if (mode != CUBLAS_POINTER_MODE_HOST && mode != CUBLAS_POINTER_MODE_DEVICE)
        return CUBLAS_STATUS_INVALID_VALUE;
    ((blas_handle *)handle)->pointer_mode = mode;
    return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t cublasSetMathMode(cublasHandle_t handle, cublasMath_t mode)
{
    take_site();
    if (!handle) return CUBLAS_STATUS_NOT_INITIALIZED;
    ((blas_handle *)handle)->math = mode;
    return CUBLAS_STATUS_SUCCESS;
}

/* The workspace must be device memory of the given size, 256-byte aligned. */
cublasStatus_t cublasSetWorkspace_v2(cublasHandle_t handle, void *workspace, size_t size)
{
    site s = take_site();
    if (!handle) return CUBLAS_STATUS_NOT_INITIALIZED;
    if (size && (!workspace || (uintptr_t)workspace % 256)) return CUBLAS_STATUS_INVALID_VALUE;
    if (size) require_device_range(s, "cuBLAS workspace", workspace, size);
    blas_handle *h = (blas_handle *)handle;
    h->workspace = workspace;
    h->workspace_size = size;
    return CUBLAS_STATUS_SUCCESS;
}

const char *cublasGetStatusName(cublasStatus_t s)
{
    switch (s) {
#define N(x)                                                                                       \
    case x: return #x;
        N(CUBLAS_STATUS_SUCCESS)
        N(CUBLAS_STATUS_NOT_INITIALIZED)
        N(CUBLAS_STATUS_ALLOC_FAILED)
        N(CUBLAS_STATUS_INVALID_VALUE)
        N(CUBLAS_STATUS_ARCH_MISMATCH)
        N(CUBLAS_STATUS_MAPPING_ERROR)
        N(CUBLAS_STATUS_EXECUTION_FAILED)
        N(CUBLAS_STATUS_INTERNAL_ERROR)
        N(CUBLAS_STATUS_NOT_SUPPORTED)
        N(CUBLAS_STATUS_LICENSE_ERROR)
#undef N
    }
    return "<unknown>";
}

const char *cublasGetStatusString(cublasStatus_t s)
{
    switch (s) {
    case CUBLAS_STATUS_SUCCESS: return "success";
    case CUBLAS_STATUS_NOT_INITIALIZED: return "the library was not initialized";
    case CUBLAS_STATUS_ALLOC_FAILED: return "the resource allocation failed";
    case CUBLAS_STATUS_INVALID_VALUE: return "an invalid numeric value was used as an argument";
    case CUBLAS_STATUS_ARCH_MISMATCH: return "an absent device architectural feature is required";
    case CUBLAS_STATUS_MAPPING_ERROR: return "an access to GPU memory space failed";
    case CUBLAS_STATUS_EXECUTION_FAILED: return "the GPU program failed to execute";
    case CUBLAS_STATUS_INTERNAL_ERROR: return "an internal operation failed";
    case CUBLAS_STATUS_NOT_SUPPORTED: return "the functionality requested is not supported";
    case CUBLAS_STATUS_LICENSE_ERROR: return "error detected trying to check the license";
    }
    return "unknown error";
}

cublasStatus_t cublasSgemm_v2(cublasHandle_t handle, cublasOperation_t transa,
                              cublasOperation_t transb, int m, int n, int k, const float *alpha,
                              const float *A, int lda, const float *B, int ldb, const float *beta,
                              float *C, int ldc)
{
    std::lock_guard<std::recursive_mutex> guard(lock());
    site s = take_site();
    return gemm((blas_handle *)handle, s, "cublasSgemm_v2", transa, transb, m, n, k, alpha, A, lda,
                0, B, ldb, 0, beta, C, ldc, 0, 1);
}

cublasStatus_t cublasSgemmStridedBatched(cublasHandle_t handle, cublasOperation_t transa,
                                         cublasOperation_t transb, int m, int n, int k,
                                         const float *alpha, const float *A, int lda,
                                         long long int strideA, const float *B, int ldb,
                                         long long int strideB, const float *beta, float *C,
                                         int ldc, long long int strideC, int batchCount)
{
    std::lock_guard<std::recursive_mutex> guard(lock());
    site s = take_site();
    return gemm((blas_handle *)handle, s, "cublasSgemmStridedBatched", transa, transb, m, n, k,
                alpha, A, lda, strideA, B, ldb, strideB, beta, C, ldc, strideC, batchCount);
}

/* C = alpha op(A) + beta op(B), C m x n. As documented for cublas<t>geam: A
 * is not read when alpha is 0 and B is not read when beta is 0 (either may
 * then be NULL, as the SVD's transposes pass B); C may be A (ldc == lda,
 * transa N) or B (ldc == ldb, transb N), any other overlap is refused. */
cublasStatus_t cublasSgeam(cublasHandle_t handle, cublasOperation_t transa,
                           cublasOperation_t transb, int m, int n, const float *alpha,
                           const float *A, int lda, const float *beta, const float *B, int ldb,
                           float *C, int ldc)
{
    std::lock_guard<std::recursive_mutex> guard(lock());
    site s = take_site();
    blas_handle *h = (blas_handle *)handle;
    if (!h) return CUBLAS_STATUS_NOT_INITIALIZED;
    if (m < 0 || n < 0 || !valid_op(transa) || !valid_op(transb) || !alpha || !beta)
        return CUBLAS_STATUS_INVALID_VALUE;
    if (lda < max1(transa == CUBLAS_OP_N ? m : n) || ldb < max1(transb == CUBLAS_OP_N ? m : n) ||
        ldc < max1(m))
        return CUBLAS_STATUS_INVALID_VALUE;
    if ((C == A && (ldc != lda || transa != CUBLAS_OP_N)) ||
        (C == B && (ldc != ldb || transb != CUBLAS_OP_N)))
        return CUBLAS_STATUS_INVALID_VALUE;
    if (m == 0 || n == 0) return CUBLAS_STATUS_SUCCESS;
    scalar al = take_scalar(h, alpha), be = take_scalar(h, beta);
    bool read_a = al.device || al.value != 0.0f, read_b = be.device || be.value != 0.0f;
    int ra = transa == CUBLAS_OP_N ? m : n, ca = transa == CUBLAS_OP_N ? n : m;
    int rb = transb == CUBLAS_OP_N ? m : n, cb = transb == CUBLAS_OP_N ? n : m;
    if (read_a) operand(s, "cublasSgeam", "A", A, ra, ca, lda, 0, 1);
    if (read_b) operand(s, "cublasSgeam", "B", B, rb, cb, ldb, 0, 1);
    operand(s, "cublasSgeam", "C", C, m, n, ldc, 0, 1);
    size_t cbytes = span(m, n, ldc, 0, 1);
    if (read_a && C != A && overlap(C, cbytes, A, span(ra, ca, lda, 0, 1)))
        fail(s,
             "cublasSgeam: C overlaps A without being A (out-of-place operands must not overlap)");
    if (read_b && C != B && overlap(C, cbytes, B, span(rb, cb, ldb, 0, 1)))
        fail(s,
             "cublasSgeam: C overlaps B without being B (out-of-place operands must not overlap)");
    std::string by = std::string("cublasSgeam at ") + where(s);
    return queue(h, s, "cublasSgeam", [=] {
        float alv = al.get(), bev = be.get();
        for (int j = 0; j < n; j++)
            for (int i = 0; i < m; i++) {
                float v = 0.0f;
                if (alv != 0.0f)
                    v = alv *
                        (transa == CUBLAS_OP_N ? A[(size_t)j * lda + i] : A[(size_t)i * lda + j]);
                if (bev != 0.0f)
                    v += bev *
                         (transb == CUBLAS_OP_N ? B[(size_t)j * ldb + i] : B[(size_t)i * ldb + j]);
                C[(size_t)j * ldc + i] = v;
            }
        after(C, s, by);
    });
}

} /* extern "C" */
