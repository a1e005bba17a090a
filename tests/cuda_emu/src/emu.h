/* The emulator's internals, shared by its sources: reports, the device
 * memory registry, streams and the work queued on them.
 *
 * Model. Device memory is host memory the registry knows about. Work (kernel
 * launches, copies, memsets, library calls, event records) is queued on its
 * stream and runs only at a synchronising call, in stream order; a stream in
 * capture mode appends the work to a graph instead, and a graph launch queues
 * the graph's work again. Everything runs on the host thread that made the
 * synchronising call.
 */
#ifndef DL_EMU_INTERNAL_H
#define DL_EMU_INTERNAL_H

#include <cstddef>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include <cuda_runtime_api.h>

#include "dl_emu_asan.h"

namespace dl_emu
{

/* --- reports ------------------------------------------------------------ */

struct site {
    const char *file = nullptr;
    int line = 0;
};

/* The file:line the host code's next call came from (see dl_emu_host.h);
 * taking it clears it, so a call without a site never borrows an old one. */
site take_site();
/* "host/backends/backend_cuda.c:123", relative to the source tree. */
std::string where(const site &s);

/* One line on stderr, "cuda-emu: error: ...", then abort(): an emulation
 * finding is a bug in the code under test, and the test must fail there. */
[[noreturn]] void fail(const site &s, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* One line on stderr, "cuda-emu: note: ...", and carry on (for errors the
 * real runtime returns as a status that the host code must handle). */
void note(const site &s, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* What is running now, for reports from deep inside (the fault handler). */
struct running {
    std::string what; /* "fill_kernel<<<(1,1,1),(256,1,1)>>> launched at kernels/x.cu:12" */
    bool in_kernel = false;
    uint3 block{}; /* the thread is dl_emu_k.thread_idx */
};
extern running *now_running;

/* --- memory ------------------------------------------------------------- */

struct allocation {
    unsigned id;
    char *base;
    size_t size;
    site made;
    /* The mapping around it (guard pages and canaries; see runtime.cpp). */
    char *region;
    size_t region_size;
};

/* The live allocation holding [p, p + bytes), or nullptr. bytes == 0 asks
 * for the allocation that p points into (or one past its end). */
const allocation *find_allocation(const void *p, size_t bytes = 1);
/* The live allocation nearest to p, for reports; nullptr when none exist. */
const allocation *nearest_allocation(const void *p);
/* Is p inside any live allocation? */
inline bool is_device(const void *p) { return find_allocation(p, 0) != nullptr; }
std::string describe(const allocation *a);
/* Where p is, in words: inside, past or before an allocation, or in a freed
 * one. */
std::string locate(const void *p);
/* Fails (with the call's site) unless [p, p + bytes) lies in one live
 * allocation; `what` names the operand ("A of cublasSgemm_v2"). */
void require_device_range(const site &s, const char *what, const void *p, size_t bytes);
/* Checks the canaries beside an allocation: bytes written just past its end
 * (or just before its start) by the work described in `by`. */
void check_canaries(const allocation *a, const site &s, const std::string &by);
/* Memory allocations are refused while this thread captures. */

/* --- work --------------------------------------------------------------- */

struct work {
    site where;
    std::string what;
    std::function<void()> run;
};
using work_ptr = std::shared_ptr<const work>;

struct graph {
    std::vector<work_ptr> nodes;
};

struct stream {
    unsigned flags = 0;
    std::deque<work_ptr> queue;
    /* Capture state. */
    bool capturing = false, invalidated = false;
    cudaStreamCaptureMode mode = cudaStreamCaptureModeGlobal;
    graph *capture = nullptr;
};

/* The stream a handle names; cudaStreamLegacy, cudaStreamPerThread and 0
 * are the default stream. Returns nullptr for a destroyed or unknown one. */
stream *get_stream(cudaStream_t s);
/* Queues (or captures) work. Errors: cudaErrorStreamCaptureInvalidated when
 * the stream's capture has been invalidated, cudaErrorInvalidResourceHandle
 * for an unknown stream. */
cudaError_t enqueue(cudaStream_t s, work w);
/* Runs the stream's queued work. */
void drain(stream *s);
/* True (after invalidating the capture) when this thread may not make a
 * "potentially unsafe" call because it is capturing (CUDA's rule for the
 * Global and ThreadLocal capture modes). */
bool capture_forbids();

/* Records err as the runtime's last error and returns it. */
cudaError_t set_error(cudaError_t err);

/* Serialises the emulator's state against host threads. */
std::recursive_mutex &lock();

/* --- kernels (exec.cpp) ------------------------------------------------- */

/* The sm_90 limits a launch configuration is checked against. */
constexpr unsigned max_threads_per_block = 1024;
constexpr unsigned max_block_x = 1024, max_block_y = 1024, max_block_z = 64;
constexpr unsigned max_grid_x = 2147483647u, max_grid_y = 65535, max_grid_z = 65535;
constexpr size_t max_dynamic_shared = 48 * 1024;

} // namespace dl_emu

#endif
