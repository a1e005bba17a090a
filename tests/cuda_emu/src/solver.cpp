/* Emulated cuSOLVER dense: the handle calls, Sgesvd_bufferSize and Sgesvd.
 *
 * gesvd runs LAPACK's sgesvd (LAPACKE, column-major) on the caller's own
 * buffers, workspace included: the device workspace the caller allocated
 * with the size bufferSize reported is LAPACK's WORK array. cuSOLVER's
 * argument rules apply on top of LAPACK's: only m >= n is supported, jobu
 * and jobvt are 'A', 'S', 'O' or 'N' (not both 'O'), and the leading
 * dimensions must hold the matrices the jobs ask for; otherwise the call
 * returns CUSOLVER_STATUS_INVALID_VALUE. devInfo (device memory) receives
 * LAPACK's info when the work runs: 0, -i for a bad i-th argument (handle
 * not counted, the same numbering as LAPACK's), or the number of
 * superdiagonals that did not converge; rwork, when given, the unconverged
 * superdiagonal (LAPACK leaves it in WORK(2:min(m,n))).
 */
#include "emu.h"

#include <algorithm>
#include <cstring>
#include <lapacke.h>

#include <cusolverDn.h>

using namespace dl_emu;

namespace
{

struct solver_handle {
    cudaStream_t stream = nullptr;
};

bool valid_job(signed char j) { return j == 'A' || j == 'S' || j == 'O' || j == 'N'; }

/* LAPACK's optimal workspace for one job pair (a workspace query). */
int lapack_lwork(signed char jobu, signed char jobvt, int m, int n)
{
    float opt = 0;
    lapack_int info = LAPACKE_sgesvd_work(LAPACK_COL_MAJOR, (char)jobu, (char)jobvt, m, n, nullptr,
                                          std::max(1, m), nullptr, nullptr, std::max(1, m), nullptr,
                                          std::max(1, n), &opt, -1);
    return info == 0 ? (int)opt : 0;
}

/* The smallest WORK LAPACK accepts: max(1, 3 min + max, 5 min). */
int lapack_min_lwork(int m, int n)
{
    int mn = std::min(m, n), mx = std::max(m, n);
    return std::max(1, std::max(3 * mn + mx, 5 * mn));
}

} // namespace

extern "C" {

cusolverStatus_t cusolverDnCreate(cusolverDnHandle_t *handle)
{
    take_site();
    if (!handle) return CUSOLVER_STATUS_INVALID_VALUE;
    *handle = (cusolverDnHandle_t) new solver_handle;
    return CUSOLVER_STATUS_SUCCESS;
}

cusolverStatus_t cusolverDnDestroy(cusolverDnHandle_t handle)
{
    take_site();
    if (!handle) return CUSOLVER_STATUS_NOT_INITIALIZED;
    delete (solver_handle *)handle;
    return CUSOLVER_STATUS_SUCCESS;
}

cusolverStatus_t cusolverDnSetStream(cusolverDnHandle_t handle, cudaStream_t stream)
{
    take_site();
    if (!handle) return CUSOLVER_STATUS_NOT_INITIALIZED;
    if (!get_stream(stream)) return CUSOLVER_STATUS_INVALID_VALUE;
    ((solver_handle *)handle)->stream = stream;
    return CUSOLVER_STATUS_SUCCESS;
}

/* The size has no job arguments, so it covers the hungriest job pair. */
cusolverStatus_t cusolverDnSgesvd_bufferSize(cusolverDnHandle_t handle, int m, int n, int *lwork)
{
    take_site();
    if (!handle) return CUSOLVER_STATUS_NOT_INITIALIZED;
    if (m < 0 || n < 0 || m < n || !lwork) return CUSOLVER_STATUS_INVALID_VALUE;
    int best = lapack_min_lwork(m, n);
    for (signed char ju : {'N', 'S', 'A', 'O'})
        for (signed char jv : {'N', 'S', 'A', 'O'})
            if (!(ju == 'O' && jv == 'O')) best = std::max(best, lapack_lwork(ju, jv, m, n));
    *lwork = best;
    return CUSOLVER_STATUS_SUCCESS;
}

cusolverStatus_t cusolverDnSgesvd(cusolverDnHandle_t handle, signed char jobu, signed char jobvt,
                                  int m, int n, float *A, int lda, float *S, float *U, int ldu,
                                  float *VT, int ldvt, float *work, int lwork, float *rwork,
                                  int *devInfo)
{
    std::lock_guard<std::recursive_mutex> guard(lock());
    site s = take_site();
    solver_handle *h = (solver_handle *)handle;
    if (!h) return CUSOLVER_STATUS_NOT_INITIALIZED;
    if (!valid_job(jobu) || !valid_job(jobvt) || (jobu == 'O' && jobvt == 'O'))
        return CUSOLVER_STATUS_INVALID_VALUE;
    if (m < 0 || n < 0 || m < n || lda < std::max(1, m)) return CUSOLVER_STATUS_INVALID_VALUE;
    int mn = std::min(m, n);
    bool want_u = jobu == 'A' || jobu == 'S', want_vt = jobvt == 'A' || jobvt == 'S';
    if (ldu < 1 || (want_u && ldu < m) || ldvt < 1 || (jobvt == 'A' && ldvt < n) ||
        (jobvt == 'S' && ldvt < mn))
        return CUSOLVER_STATUS_INVALID_VALUE;
    if (lwork < lapack_min_lwork(m, n) || !devInfo) return CUSOLVER_STATUS_INVALID_VALUE;
    if (m == 0 || n == 0) return CUSOLVER_STATUS_SUCCESS;

    auto fbytes = [](size_t k) { return k * sizeof(float); };
    require_device_range(s, "A of cusolverDnSgesvd (lda x n)", A,
                         fbytes((size_t)(n - 1) * lda + (size_t)m));
    require_device_range(s, "S of cusolverDnSgesvd (min(m,n))", S, fbytes((size_t)mn));
    if (want_u) {
        int ucols = jobu == 'A' ? m : mn;
        require_device_range(s, "U of cusolverDnSgesvd (ldu x cols)", U,
                             fbytes((size_t)(ucols - 1) * ldu + (size_t)m));
    }
    if (want_vt) {
        int vrows = jobvt == 'A' ? n : mn;
        require_device_range(s, "VT of cusolverDnSgesvd (ldvt x n)", VT,
                             fbytes((size_t)(n - 1) * ldvt + (size_t)vrows));
    }
    require_device_range(s, "work of cusolverDnSgesvd (lwork)", work, fbytes((size_t)lwork));
    if (rwork && mn > 1)
        require_device_range(s, "rwork of cusolverDnSgesvd (min(m,n)-1)", rwork,
                             fbytes((size_t)mn - 1));
    require_device_range(s, "devInfo of cusolverDnSgesvd", devInfo, sizeof(int));

    std::string by = "cusolverDnSgesvd at " + where(s);
    dl_emu::work w{s, by, [=] {
                       lapack_int info =
                           LAPACKE_sgesvd_work(LAPACK_COL_MAJOR, (char)jobu, (char)jobvt, m, n, A,
                                               lda, S, U, ldu, VT, ldvt, work, lwork);
                       if (rwork && info > 0 && mn > 1)
                           memcpy(rwork, work + 1, sizeof(float) * (mn - 1));
                       *devInfo = (int)info;
                       for (const void *p : {(const void *)A, (const void *)S, (const void *)U,
                                             (const void *)VT, (const void *)work})
                           if (const allocation *a = p ? find_allocation(p, 0) : nullptr)
                               check_canaries(a, s, by);
                   }};
    cudaError_t e = enqueue(h->stream, std::move(w));
    if (e != cudaSuccess) {
        set_error(e);
        return CUSOLVER_STATUS_EXECUTION_FAILED;
    }
    return CUSOLVER_STATUS_SUCCESS;
}

} /* extern "C" */
