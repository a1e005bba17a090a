/* The emulated CUDA runtime: reports, device memory, streams, events,
 * graphs and the device's description. Function names, signatures, enum
 * values and status codes are the toolkit's own (cuda_runtime_api.h); the
 * semantics follow that header's documentation, with the choices the
 * emulator makes where CUDA leaves room listed in docs/CUDA_EMU.md.
 */
#include "emu.h"

#include <algorithm>
#include <cerrno>
#include <csignal>
#include <cstdarg>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <map>
#include <sys/mman.h>
#include <unistd.h>

#include "dl_emu_launch.h"

#ifdef DL_EMU_ASAN
#include <sanitizer/asan_interface.h>
#endif

namespace dl_emu
{

std::recursive_mutex &lock()
{
    static std::recursive_mutex m;
    return m;
}

/* --- reports ------------------------------------------------------------ */

static thread_local site next_site;

site take_site()
{
    site s = next_site;
    next_site = site{};
    return s;
}

std::string where(const site &s)
{
    if (!s.file) return "(unknown call site)";
    const char *f = s.file;
#ifdef DL_EMU_SOURCE_DIR
    size_t n = strlen(DL_EMU_SOURCE_DIR);
    if (strncmp(f, DL_EMU_SOURCE_DIR, n) == 0 && f[n] == '/') f += n + 1;
#endif
    return std::string(f) + ":" + std::to_string(s.line);
}

running *now_running;

static void vreport(const char *kind, const site &s, const char *fmt, va_list ap)
{
    char msg[1024];
    vsnprintf(msg, sizeof msg, fmt, ap);
    fprintf(stderr, "cuda-emu: %s: %s: %s\n", kind, where(s).c_str(), msg);
    fflush(stderr);
}

void fail(const site &s, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vreport("error", s, fmt, ap);
    va_end(ap);
    abort();
}

void note(const site &s, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vreport("note", s, fmt, ap);
    va_end(ap);
}

static thread_local cudaError_t last_error = cudaSuccess;

cudaError_t set_error(cudaError_t err)
{
    if (err != cudaSuccess) last_error = err;
    return err;
}

/* --- memory ------------------------------------------------------------- */

/* Each allocation is 256-byte aligned, as cudaMalloc's are. Outside ASan it
 * sits at the end of its own mapping, right before a PROT_NONE guard page,
 * with a guard page in front too; the few bytes between its end and the
 * guard (alignment slack) and the 256 bytes before it hold a canary pattern
 * that is checked after each kernel, copy and library call that used the
 * allocation. A write past the end therefore faults at once or is found
 * right after the work that did it. Under ASan plain aligned malloc is used,
 * so ASan's own red zones report the access with a stack trace. Fresh
 * memory is filled with 0xff bytes (a NaN in every float lane), so reading
 * memory nobody wrote shows up as NaN. */
constexpr unsigned char canary = 0xff;
constexpr size_t align = 256, front_canary = 256;

static std::map<uintptr_t, allocation> live; /* by base address */
static std::deque<allocation> freed;         /* the last few, for reports */
static unsigned next_id = 1;
static size_t live_bytes = 0;

static size_t page_size() { return (size_t)sysconf(_SC_PAGESIZE); }

const allocation *find_allocation(const void *p, size_t bytes)
{
    uintptr_t a = (uintptr_t)p;
    auto it = live.upper_bound(a);
    if (it == live.begin()) return nullptr;
    --it;
    const allocation &al = it->second;
    uintptr_t end = (uintptr_t)al.base + al.size;
    if (a < (uintptr_t)al.base) return nullptr;
    if (bytes == 0) return a <= end ? &al : nullptr;
    if (a >= end || bytes > end - a) return nullptr;
    return &al;
}

const allocation *nearest_allocation(const void *p)
{
    uintptr_t a = (uintptr_t)p;
    const allocation *best = nullptr;
    uintptr_t best_d = UINTPTR_MAX;
    for (auto &kv : live) {
        uintptr_t lo = (uintptr_t)kv.second.base, hi = lo + kv.second.size;
        uintptr_t d = a < lo ? lo - a : a >= hi ? a - hi + 1 : 0;
        if (d < best_d) best_d = d, best = &kv.second;
    }
    return best;
}

std::string describe(const allocation *a)
{
    if (!a) return "no device allocation";
    char buf[256];
    snprintf(buf, sizeof buf, "allocation #%u (%zu bytes at %p, cudaMalloc at %s)", a->id, a->size,
             (void *)a->base, where(a->made).c_str());
    return buf;
}

std::string locate(const void *p)
{
    char buf[512];
    uintptr_t a = (uintptr_t)p;
    if (const allocation *in = find_allocation(p, 1)) {
        snprintf(buf, sizeof buf, "%p is inside %s", p, describe(in).c_str());
        return buf;
    }
    for (auto it = freed.rbegin(); it != freed.rend(); ++it)
        if (a >= (uintptr_t)it->base && a < (uintptr_t)it->base + it->size) {
            snprintf(buf, sizeof buf, "%p is inside freed %s", p, describe(&*it).c_str());
            return buf;
        }
    const allocation *n = nearest_allocation(p);
    if (!n) {
        snprintf(buf, sizeof buf, "%p is in no device allocation (none is live)", p);
        return buf;
    }
    uintptr_t lo = (uintptr_t)n->base, hi = lo + n->size;
    if (a >= hi)
        snprintf(buf, sizeof buf, "%p is %zu bytes past the end of %s", p, (size_t)(a - hi),
                 describe(n).c_str());
    else if (a < lo)
        snprintf(buf, sizeof buf, "%p is %zu bytes before the start of %s", p, (size_t)(lo - a),
                 describe(n).c_str());
    else
        snprintf(buf, sizeof buf, "%p is inside %s", p, describe(n).c_str());
    return buf;
}

void require_device_range(const site &s, const char *what, const void *p, size_t bytes)
{
    if (bytes == 0) return;
    if (find_allocation(p, bytes)) return;
    const allocation *a = find_allocation(p, 0);
    if (a)
        fail(s, "%s: %zu bytes at %p run %zu bytes past the end of %s", what, bytes, p,
             (size_t)((uintptr_t)p + bytes - ((uintptr_t)a->base + a->size)), describe(a).c_str());
    fail(s, "%s is not device memory: %s", what, locate(p).c_str());
}

void check_canaries(const allocation *a, const site &s, const std::string &by)
{
#ifndef DL_EMU_ASAN
    const unsigned char *front = (const unsigned char *)a->base - front_canary;
    const unsigned char *back = (const unsigned char *)a->base + a->size;
    size_t back_len = (size_t)(a->region + a->region_size - page_size() - (char *)back);
    for (size_t i = 0; i < front_canary; i++)
        if (front[i] != canary)
            fail(s, "%s wrote %zu bytes before the start of %s", by.c_str(), front_canary - i,
                 describe(a).c_str());
    for (size_t i = 0; i < back_len; i++)
        if (back[i] != canary) {
            size_t last = back_len;
            while (back[last - 1] == canary) last--;
            fail(s, "%s wrote past the end of %s (bytes %zu to %zu after its end)", by.c_str(),
                 describe(a).c_str(), i, last - 1);
        }
#else
    (void)a, (void)s, (void)by;
#endif
}

/* --- fault handler -------------------------------------------------------- */

#ifndef DL_EMU_ASAN
static void on_fault(int sig, siginfo_t *info, void *)
{
    char buf[1024];
    const void *addr = info->si_addr;
    std::string loc = locate(addr);
    if (now_running) {
        if (now_running->in_kernel)
            snprintf(buf, sizeof buf,
                     "cuda-emu: error: %s: block (%u,%u,%u) thread (%u,%u,%u): invalid memory "
                     "access: %s\n",
                     now_running->what.c_str(), now_running->block.x, now_running->block.y,
                     now_running->block.z, dl_emu_k.thread_idx.x, dl_emu_k.thread_idx.y,
                     dl_emu_k.thread_idx.z, loc.c_str());
        else
            snprintf(buf, sizeof buf, "cuda-emu: error: %s: invalid memory access: %s\n",
                     now_running->what.c_str(), loc.c_str());
    } else {
        snprintf(buf, sizeof buf, "cuda-emu: error: host code: invalid memory access: %s\n",
                 loc.c_str());
    }
    if (write(2, buf, strlen(buf)) < 0) {
    }
    signal(sig, SIG_DFL);
    abort();
}

static void install_fault_handler()
{
    static bool done = false;
    if (done) return;
    done = true;
    /* Kernels run on fiber stacks; a fault there (a fiber's own stack
     * overflowing into its guard page included) needs a stack of its own. */
    static char altstack[64 * 1024];
    stack_t ss{};
    ss.ss_sp = altstack;
    ss.ss_size = sizeof altstack;
    sigaltstack(&ss, nullptr);
    struct sigaction sa {
    };
    sa.sa_sigaction = on_fault;
    sa.sa_flags = SA_SIGINFO | SA_ONSTACK;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGSEGV, &sa, nullptr);
    sigaction(SIGBUS, &sa, nullptr);
}
#else
static void install_fault_handler() {}
#endif

static size_t host_memory()
{
    long pages = sysconf(_SC_PHYS_PAGES);
    return pages > 0 ? (size_t)pages * page_size() : (size_t)16 << 30;
}

static cudaError_t device_alloc(void **out, size_t size, const site &s)
{
    install_fault_handler();
    *out = nullptr;
    if (size == 0) return cudaSuccess;
    if (size > host_memory() || live_bytes + size > host_memory()) return cudaErrorMemoryAllocation;
    allocation a{};
    a.id = next_id++;
    a.size = size;
    a.made = s;
#ifdef DL_EMU_ASAN
    void *p = nullptr;
    if (posix_memalign(&p, align, size)) return cudaErrorMemoryAllocation;
    a.base = (char *)p;
    a.region = a.base;
    a.region_size = size;
#else
    size_t slot = (size + align - 1) / align * align;
    size_t pg = page_size();
    size_t body = (slot + front_canary + pg - 1) / pg * pg;
    size_t total = pg + body + pg;
    void *r = mmap(nullptr, total, PROT_READ | PROT_WRITE,
                   MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (r == MAP_FAILED) return cudaErrorMemoryAllocation;
    a.region = (char *)r;
    a.region_size = total;
    if (mprotect(a.region, pg, PROT_NONE) || mprotect(a.region + total - pg, pg, PROT_NONE)) {
        munmap(r, total);
        return cudaErrorMemoryAllocation;
    }
    a.base = a.region + total - pg - slot;
    memset(a.base - front_canary, canary, front_canary);
    memset(a.base + size, canary, slot - size);
#endif
    memset(a.base, canary, size);
    live_bytes += size;
    live[(uintptr_t)a.base] = a;
    *out = a.base;
    return cudaSuccess;
}

static void device_release(const allocation &a)
{
    live_bytes -= a.size;
    allocation gone = a;
#ifdef DL_EMU_ASAN
    free(a.base);
#else
    munmap(a.region, a.region_size);
#endif
    freed.push_back(gone);
    if (freed.size() > 4096) freed.pop_front();
    live.erase((uintptr_t)a.base);
}

/* --- streams ------------------------------------------------------------ */

static stream default_stream;
static std::vector<std::unique_ptr<stream>> streams;

stream *get_stream(cudaStream_t s)
{
    if (s == nullptr || s == cudaStreamLegacy || s == cudaStreamPerThread) return &default_stream;
    for (auto &p : streams)
        if ((cudaStream_t)p.get() == s) return p.get();
    return nullptr;
}

static thread_local std::vector<stream *> capturing_here; /* this thread's captures */

bool capture_forbids()
{
    bool forbid = false;
    for (stream *s : capturing_here)
        if (s->mode != cudaStreamCaptureModeRelaxed) {
            s->invalidated = true;
            forbid = true;
        }
    return forbid;
}

cudaError_t enqueue(cudaStream_t h, work w)
{
    stream *s = get_stream(h);
    if (!s) return cudaErrorInvalidResourceHandle;
    if (s->capturing) {
        if (s->invalidated) return cudaErrorStreamCaptureInvalidated;
        s->capture->nodes.push_back(std::make_shared<const work>(std::move(w)));
        return cudaSuccess;
    }
    s->queue.push_back(std::make_shared<const work>(std::move(w)));
    return cudaSuccess;
}

void drain(stream *s)
{
    while (!s->queue.empty()) {
        work_ptr w = s->queue.front();
        s->queue.pop_front();
        w->run();
    }
}

static void drain_all()
{
    drain(&default_stream);
    for (auto &p : streams) drain(p.get());
}

} // namespace dl_emu

using namespace dl_emu;

/* --- C entry points ------------------------------------------------------- */

extern "C" void dl_emu_site(const char *file, int line) { dl_emu::next_site = site{file, line}; }

__thread dl_emu_kctx dl_emu_k;

#define LOCK std::lock_guard<std::recursive_mutex> guard_(lock())

extern "C" {

cudaError_t cudaGetLastError(void)
{
    cudaError_t e = last_error;
    last_error = cudaSuccess;
    return e;
}

cudaError_t cudaPeekAtLastError(void) { return last_error; }

const char *cudaGetErrorName(cudaError_t e)
{
    switch (e) {
#define N(x)                                                                                       \
    case x: return #x;
        N(cudaSuccess)
        N(cudaErrorInvalidValue)
        N(cudaErrorMemoryAllocation)
        N(cudaErrorInitializationError)
        N(cudaErrorInvalidConfiguration)
        N(cudaErrorInvalidDevice)
        N(cudaErrorInvalidResourceHandle)
        N(cudaErrorInvalidMemcpyDirection)
        N(cudaErrorNotReady)
        N(cudaErrorIllegalState)
        N(cudaErrorIllegalAddress)
        N(cudaErrorNoDevice)
        N(cudaErrorInsufficientDriver)
        N(cudaErrorStreamCaptureUnsupported)
        N(cudaErrorStreamCaptureInvalidated)
        N(cudaErrorStreamCaptureUnmatched)
        N(cudaErrorStreamCaptureImplicit)
        N(cudaErrorCapturedEvent)
        N(cudaErrorStreamCaptureWrongThread)
        N(cudaErrorUnknown)
#undef N
    default: return "unrecognized error code";
    }
}

/* The runtime's own wording for the errors the emulator returns. */
const char *cudaGetErrorString(cudaError_t e)
{
    switch (e) {
    case cudaSuccess: return "no error";
    case cudaErrorInvalidValue: return "invalid argument";
    case cudaErrorMemoryAllocation: return "out of memory";
    case cudaErrorInitializationError: return "initialization error";
    case cudaErrorInvalidConfiguration: return "invalid configuration argument";
    case cudaErrorInvalidDevice: return "invalid device ordinal";
    case cudaErrorInvalidResourceHandle: return "invalid resource handle";
    case cudaErrorInvalidMemcpyDirection: return "invalid copy direction for memcpy";
    case cudaErrorNotReady: return "device not ready";
    case cudaErrorIllegalState: return "the operation cannot be performed in the present state";
    case cudaErrorIllegalAddress: return "an illegal memory access was encountered";
    case cudaErrorNoDevice: return "no CUDA-capable device is detected";
    case cudaErrorInsufficientDriver:
        return "CUDA driver version is insufficient for CUDA runtime version";
    case cudaErrorStreamCaptureUnsupported:
        return "operation not permitted when stream is capturing";
    case cudaErrorStreamCaptureInvalidated:
        return "operation failed due to a previous error during capture";
    case cudaErrorStreamCaptureUnmatched: return "capture was not initiated in this stream";
    case cudaErrorStreamCaptureImplicit:
        return "operation would make the legacy stream depend on a capturing blocking stream";
    case cudaErrorCapturedEvent:
        return "operation not permitted on an event last recorded in a capturing stream";
    case cudaErrorStreamCaptureWrongThread:
        return "attempt to terminate a thread-local capture sequence from another thread";
    default: return "unknown error";
    }
}

/* --- device -------------------------------------------------------------- */

/* One emulated GPU of its own per process, as ranks given one GPU each
 * through CUDA_VISIBLE_DEVICES have. DLAB_CUDA_EMU_DEVICES=N (1 to 16)
 * models instead a node of N GPUs that every process on it sees (without
 * CUDA_VISIBLE_DEVICES): enough to run the code that picks a rank's device
 * from its local rank, and to see ranks that share one. Every device is the
 * same model; memory is not divided between them. */
static const char *devices_env() { return getenv("DLAB_CUDA_EMU_DEVICES"); }

static int device_count()
{
    static int count = [] {
        const char *v = devices_env();
        char *end = nullptr;
        long n = v && *v ? strtol(v, &end, 10) : 1;
        if (v && *v && (*end || n < 1 || n > 16)) {
            fprintf(stderr, "cuda-emu: error: DLAB_CUDA_EMU_DEVICES=%s: expected 1 to 16\n", v);
            abort();
        }
        return (int)n;
    }();
    return count;
}

static int current_device = 0;

cudaError_t cudaGetDeviceCount(int *count)
{
    take_site();
    if (!count) return set_error(cudaErrorInvalidValue);
    *count = device_count();
    return cudaSuccess;
}

cudaError_t cudaGetDevice(int *device)
{
    take_site();
    if (!device) return set_error(cudaErrorInvalidValue);
    *device = current_device;
    return cudaSuccess;
}

cudaError_t cudaSetDevice(int device)
{
    LOCK;
    take_site();
    if (device < 0 || device >= device_count()) return set_error(cudaErrorInvalidDevice);
    current_device = device;
    return cudaSuccess;
}

/* The bus id names the device and, for a GPU of the process's own, the
 * process; the node's GPUs of DLAB_CUDA_EMU_DEVICES are the same for every
 * process, so ranks that open the same one are seen to share it. */
cudaError_t cudaDeviceGetPCIBusId(char *id, int len, int device)
{
    take_site();
    if (!id || len < 1) return set_error(cudaErrorInvalidValue);
    if (device < 0 || device >= device_count()) return set_error(cudaErrorInvalidDevice);
    unsigned domain = devices_env() && *devices_env() ? 0u : (unsigned)getpid();
    snprintf(id, (size_t)len, "%08x:%02x:00.0", domain, (unsigned)device);
    return cudaSuccess;
}

cudaError_t cudaGetDeviceProperties(cudaDeviceProp *prop, int device)
{
    take_site();
    if (!prop) return set_error(cudaErrorInvalidValue);
    if (device < 0 || device >= device_count()) return set_error(cudaErrorInvalidDevice);
    memset(prop, 0, sizeof *prop);
    /* The name is what the backend prints as its device: it must say that
     * this is the emulator. One SM: blocks run one after another. */
    snprintf(prop->name, sizeof prop->name, "cuda-emu: sm_90 emulated on the CPU");
    prop->major = 9;
    prop->minor = 0;
    prop->multiProcessorCount = 1;
    prop->totalGlobalMem = host_memory();
    prop->sharedMemPerBlock = max_dynamic_shared;
    prop->maxThreadsPerBlock = (int)max_threads_per_block;
    prop->maxThreadsDim[0] = (int)max_block_x;
    prop->maxThreadsDim[1] = (int)max_block_y;
    prop->maxThreadsDim[2] = (int)max_block_z;
    prop->maxGridSize[0] = (int)max_grid_x;
    prop->maxGridSize[1] = (int)max_grid_y;
    prop->maxGridSize[2] = (int)max_grid_z;
    prop->warpSize = 32;
    prop->regsPerBlock = 65536;
    return cudaSuccess;
}

cudaError_t cudaDeviceSynchronize(void)
{
    LOCK;
    take_site();
    if (capture_forbids()) return set_error(cudaErrorStreamCaptureUnsupported);
    drain_all();
    return cudaSuccess;
}

/* --- memory -------------------------------------------------------------- */

cudaError_t cudaMalloc(void **ptr, size_t size)
{
    LOCK;
    site s = take_site();
    if (!ptr) return set_error(cudaErrorInvalidValue);
    if (capture_forbids()) {
        note(s, "cudaMalloc during stream capture: refused (cudaErrorStreamCaptureUnsupported); "
                "the capture is invalidated");
        return set_error(cudaErrorStreamCaptureUnsupported);
    }
    return set_error(device_alloc(ptr, size, s));
}

/* cudaFree waits for the device first, as the real one does. */
cudaError_t cudaFree(void *ptr)
{
    LOCK;
    site s = take_site();
    if (capture_forbids()) {
        note(s, "cudaFree during stream capture: refused (cudaErrorStreamCaptureUnsupported); "
                "the capture is invalidated");
        return set_error(cudaErrorStreamCaptureUnsupported);
    }
    if (!ptr) return cudaSuccess;
    drain_all();
    auto it = live.find((uintptr_t)ptr);
    if (it == live.end())
        fail(s, "cudaFree(%p): not the start of a live allocation: %s", ptr, locate(ptr).c_str());
    device_release(it->second);
    return cudaSuccess;
}

cudaError_t cudaMemGetInfo(size_t *free_bytes, size_t *total_bytes)
{
    LOCK;
    take_site();
    size_t total = host_memory();
    if (free_bytes) *free_bytes = total > live_bytes ? total - live_bytes : 0;
    if (total_bytes) *total_bytes = total;
    return cudaSuccess;
}

} /* extern "C" */

/* --- copies ------------------------------------------------------------- */

static const char *kind_name(cudaMemcpyKind k)
{
    switch (k) {
    case cudaMemcpyHostToHost: return "cudaMemcpyHostToHost";
    case cudaMemcpyHostToDevice: return "cudaMemcpyHostToDevice";
    case cudaMemcpyDeviceToHost: return "cudaMemcpyDeviceToHost";
    case cudaMemcpyDeviceToDevice: return "cudaMemcpyDeviceToDevice";
    case cudaMemcpyDefault: return "cudaMemcpyDefault";
    }
    return "an unknown cudaMemcpyKind";
}

/* Checks a copy's direction against where its pointers are and the extent
 * of its device side(s); a mismatch is an error with the call's site. */
static void check_copy(const site &s, const char *call, void *dst, const void *src, size_t n,
                       cudaMemcpyKind &kind)
{
    bool dd = is_device(dst), sd = is_device(src);
    if (kind == cudaMemcpyDefault)
        kind = sd ? (dd ? cudaMemcpyDeviceToDevice : cudaMemcpyDeviceToHost)
                  : (dd ? cudaMemcpyHostToDevice : cudaMemcpyHostToHost);
    bool want_dd = kind == cudaMemcpyHostToDevice || kind == cudaMemcpyDeviceToDevice;
    bool want_sd = kind == cudaMemcpyDeviceToHost || kind == cudaMemcpyDeviceToDevice;
    std::string what = std::string(call) + " " + kind_name(kind);
    if (dd != want_dd)
        fail(s, "%s: the destination %s", what.c_str(),
             dd ? ("is device memory: " + locate(dst)).c_str()
                : ("is not device memory: " + locate(dst)).c_str());
    if (sd != want_sd)
        fail(s, "%s: the source %s", what.c_str(),
             sd ? ("is device memory: " + locate(src)).c_str()
                : ("is not device memory: " + locate(src)).c_str());
    if (dd) require_device_range(s, (what + " destination").c_str(), dst, n);
    if (sd) require_device_range(s, (what + " source").c_str(), src, n);
}

static std::string call_text(const char *call, const site &s)
{
    return std::string(call) + " at " + where(s);
}

static void after_work(const void *p, const site &s, const std::string &by)
{
    if (const allocation *a = find_allocation(p, 0)) check_canaries(a, s, by);
}

static cudaError_t memcpy_async(void *dst, const void *src, size_t n, cudaMemcpyKind kind,
                                cudaStream_t st, const site &s, const char *call)
{
    if (n == 0) return cudaSuccess;
    if (!dst || !src) return set_error(cudaErrorInvalidValue);
    if (kind < cudaMemcpyHostToHost || kind > cudaMemcpyDefault)
        return set_error(cudaErrorInvalidMemcpyDirection);
    check_copy(s, call, dst, src, n, kind);
    stream *sp = get_stream(st);
    if (!sp) return set_error(cudaErrorInvalidResourceHandle);
    if (sp->capturing && kind != cudaMemcpyDeviceToDevice) {
        /* Pageable host memory cannot be captured (the emulator's rule; see
         * docs/CUDA_EMU.md). */
        note(s,
             "%s with host memory during stream capture: refused "
             "(cudaErrorStreamCaptureUnsupported); the capture is invalidated",
             call);
        sp->invalidated = true;
        return set_error(cudaErrorStreamCaptureUnsupported);
    }
    std::string what = call_text(call, s);
    work w{s, what, {}};
    if (kind == cudaMemcpyHostToDevice) {
        /* From pageable memory the source is staged before the call
         * returns, so the caller may reuse its buffer at once. */
        auto staged = std::make_shared<std::vector<char>>((const char *)src, (const char *)src + n);
        w.run = [=] {
            require_device_range(s, (what + " destination (when it ran)").c_str(), dst, n);
            memcpy(dst, staged->data(), n);
            after_work(dst, s, what);
        };
    } else if (kind == cudaMemcpyHostToHost) {
        w.run = [=] { memmove(dst, src, n); };
    } else {
        w.run = [=] {
            require_device_range(s, (what + " source (when it ran)").c_str(), src, n);
            if (kind == cudaMemcpyDeviceToDevice)
                require_device_range(s, (what + " destination (when it ran)").c_str(), dst, n);
            memmove(dst, src, n);
            if (kind == cudaMemcpyDeviceToDevice) after_work(dst, s, what);
        };
    }
    return set_error(enqueue(st, std::move(w)));
}

extern "C" {

cudaError_t cudaMemcpyAsync(void *dst, const void *src, size_t count, cudaMemcpyKind kind,
                            cudaStream_t stream)
{
    LOCK;
    site s = take_site();
    return memcpy_async(dst, src, count, kind, stream, s, "cudaMemcpyAsync");
}

/* Synchronous: the copy runs on the default stream and waits for it, which
 * is a synchronisation and so refused during capture. */
cudaError_t cudaMemcpy(void *dst, const void *src, size_t count, cudaMemcpyKind kind)
{
    LOCK;
    site s = take_site();
    if (capture_forbids()) return set_error(cudaErrorStreamCaptureUnsupported);
    cudaError_t e = memcpy_async(dst, src, count, kind, nullptr, s, "cudaMemcpy");
    if (e != cudaSuccess) return e;
    drain_all();
    return cudaSuccess;
}

cudaError_t cudaMemsetAsync(void *ptr, int value, size_t count, cudaStream_t stream)
{
    LOCK;
    site s = take_site();
    if (count == 0) return cudaSuccess;
    require_device_range(s, "cudaMemsetAsync destination", ptr, count);
    std::string what = call_text("cudaMemsetAsync", s);
    work w{s, what, [=] {
               require_device_range(s, (what + " destination (when it ran)").c_str(), ptr, count);
               memset(ptr, value, count);
           }};
    return set_error(enqueue(stream, std::move(w)));
}

/* --- streams ------------------------------------------------------------- */

cudaError_t cudaStreamCreateWithFlags(cudaStream_t *out, unsigned int flags)
{
    LOCK;
    take_site();
    if (!out || (flags & ~cudaStreamNonBlocking)) return set_error(cudaErrorInvalidValue);
    streams.push_back(std::make_unique<stream>());
    streams.back()->flags = flags;
    *out = (cudaStream_t)streams.back().get();
    return cudaSuccess;
}

cudaError_t cudaStreamCreate(cudaStream_t *out)
{
    return cudaStreamCreateWithFlags(out, cudaStreamDefault);
}

/* Work still queued runs first: destroying a stream does not cancel it. */
cudaError_t cudaStreamDestroy(cudaStream_t h)
{
    LOCK;
    site s = take_site();
    stream *sp = get_stream(h);
    if (!sp || sp == &default_stream) return set_error(cudaErrorInvalidResourceHandle);
    if (sp->capturing) fail(s, "cudaStreamDestroy of a stream that is capturing");
    drain(sp);
    streams.erase(std::find_if(streams.begin(), streams.end(),
                               [&](const std::unique_ptr<stream> &p) { return p.get() == sp; }));
    return cudaSuccess;
}

cudaError_t cudaStreamSynchronize(cudaStream_t h)
{
    LOCK;
    site s = take_site();
    stream *sp = get_stream(h);
    if (!sp) return set_error(cudaErrorInvalidResourceHandle);
    if (sp->capturing || capture_forbids()) {
        sp->invalidated |= sp->capturing;
        note(s, "cudaStreamSynchronize during stream capture: refused "
                "(cudaErrorStreamCaptureUnsupported); the capture is invalidated");
        return set_error(cudaErrorStreamCaptureUnsupported);
    }
    /* The default stream waits for blocking streams (legacy semantics). */
    if (sp == &default_stream)
        for (auto &p : streams)
            if (!(p->flags & cudaStreamNonBlocking)) drain(p.get());
    drain(sp);
    return cudaSuccess;
}

cudaError_t cudaStreamQuery(cudaStream_t h)
{
    LOCK;
    take_site();
    stream *sp = get_stream(h);
    if (!sp) return set_error(cudaErrorInvalidResourceHandle);
    if (sp->capturing) {
        sp->invalidated = true;
        return set_error(cudaErrorStreamCaptureUnsupported);
    }
    /* The device makes progress while the host polls: here the queued work
     * runs in the query (the host is the device), so a polling loop ends as
     * it would on a GPU, and ranks polling in turn meet in their
     * collectives as when they synchronise. */
    drain(sp);
    return cudaSuccess;
}

/* --- graphs -------------------------------------------------------------- */

cudaError_t cudaStreamBeginCapture(cudaStream_t h, cudaStreamCaptureMode mode)
{
    LOCK;
    take_site();
    stream *sp = get_stream(h);
    if (!sp) return set_error(cudaErrorInvalidResourceHandle);
    if (sp == &default_stream) return set_error(cudaErrorStreamCaptureUnsupported);
    if (sp->capturing) return set_error(cudaErrorIllegalState);
    if (mode != cudaStreamCaptureModeGlobal && mode != cudaStreamCaptureModeThreadLocal &&
        mode != cudaStreamCaptureModeRelaxed)
        return set_error(cudaErrorInvalidValue);
    sp->capturing = true;
    sp->invalidated = false;
    sp->mode = mode;
    sp->capture = new graph;
    capturing_here.push_back(sp);
    return cudaSuccess;
}

cudaError_t cudaStreamEndCapture(cudaStream_t h, cudaGraph_t *out)
{
    LOCK;
    take_site();
    stream *sp = get_stream(h);
    if (!sp || !out) return set_error(cudaErrorInvalidValue);
    if (!sp->capturing) return set_error(cudaErrorIllegalState);
    auto it = std::find(capturing_here.begin(), capturing_here.end(), sp);
    if (it == capturing_here.end() && sp->mode != cudaStreamCaptureModeRelaxed)
        return set_error(cudaErrorStreamCaptureWrongThread);
    if (it != capturing_here.end()) capturing_here.erase(it);
    sp->capturing = false;
    graph *g = sp->capture;
    sp->capture = nullptr;
    if (sp->invalidated) {
        sp->invalidated = false;
        delete g;
        *out = nullptr;
        return set_error(cudaErrorStreamCaptureInvalidated);
    }
    *out = (cudaGraph_t)g;
    return cudaSuccess;
}

cudaError_t cudaStreamIsCapturing(cudaStream_t h, cudaStreamCaptureStatus *status)
{
    LOCK;
    take_site();
    stream *sp = get_stream(h);
    if (!sp || !status) return set_error(cudaErrorInvalidValue);
    *status = !sp->capturing    ? cudaStreamCaptureStatusNone
              : sp->invalidated ? cudaStreamCaptureStatusInvalidated
                                : cudaStreamCaptureStatusActive;
    return cudaSuccess;
}

cudaError_t cudaGraphInstantiate(cudaGraphExec_t *out, cudaGraph_t g, unsigned long long flags)
{
    LOCK;
    take_site();
    if (!out || !g || flags) return set_error(cudaErrorInvalidValue);
    *out = (cudaGraphExec_t) new graph(*(graph *)g);
    return cudaSuccess;
}

/* Replaying a graph queues its recorded work again, in recorded order. */
cudaError_t cudaGraphLaunch(cudaGraphExec_t exec, cudaStream_t h)
{
    LOCK;
    take_site();
    stream *sp = get_stream(h);
    if (!exec) return set_error(cudaErrorInvalidValue);
    if (!sp) return set_error(cudaErrorInvalidResourceHandle);
    if (sp->capturing && sp->invalidated) return set_error(cudaErrorStreamCaptureInvalidated);
    for (const work_ptr &w : ((graph *)exec)->nodes) {
        if (sp->capturing)
            sp->capture->nodes.push_back(w);
        else
            sp->queue.push_back(w);
    }
    return cudaSuccess;
}

cudaError_t cudaGraphExecDestroy(cudaGraphExec_t exec)
{
    LOCK;
    take_site();
    delete (graph *)exec;
    return cudaSuccess;
}

cudaError_t cudaGraphDestroy(cudaGraph_t g)
{
    LOCK;
    take_site();
    delete (graph *)g;
    return cudaSuccess;
}

} /* extern "C" */

/* --- events ------------------------------------------------------------- */

namespace
{
struct event {
    unsigned flags = 0;
    uint64_t recorded = 0, reached = 0; /* record calls made, records run */
    double seconds = 0;
    stream *where = nullptr;
    bool in_capture = false;
};
std::vector<std::unique_ptr<event>> events;
event *get_event(cudaEvent_t e)
{
    for (auto &p : events)
        if ((cudaEvent_t)p.get() == e) return p.get();
    return nullptr;
}
double now_seconds()
{
    timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}
} // namespace

extern "C" {

cudaError_t cudaEventCreateWithFlags(cudaEvent_t *out, unsigned int flags)
{
    LOCK;
    take_site();
    if (!out) return set_error(cudaErrorInvalidValue);
    events.push_back(std::make_unique<event>());
    events.back()->flags = flags;
    *out = (cudaEvent_t)events.back().get();
    return cudaSuccess;
}

cudaError_t cudaEventCreate(cudaEvent_t *out) { return cudaEventCreateWithFlags(out, 0); }

cudaError_t cudaEventDestroy(cudaEvent_t e)
{
    LOCK;
    take_site();
    event *ev = get_event(e);
    if (!ev) return set_error(cudaErrorInvalidResourceHandle);
    /* A record still queued must not touch a freed event. */
    if (ev->where && ev->reached < ev->recorded) drain(ev->where);
    events.erase(std::find_if(events.begin(), events.end(),
                              [&](const std::unique_ptr<event> &p) { return p.get() == ev; }));
    return cudaSuccess;
}

cudaError_t cudaEventRecord(cudaEvent_t e, cudaStream_t h)
{
    LOCK;
    site s = take_site();
    event *ev = get_event(e);
    stream *sp = get_stream(h);
    if (!ev || !sp) return set_error(cudaErrorInvalidResourceHandle);
    uint64_t n = ++ev->recorded;
    ev->where = sp;
    ev->in_capture = sp->capturing;
    work w{s, call_text("cudaEventRecord", s), [ev, n] {
               ev->seconds = now_seconds();
               ev->reached = n;
           }};
    return set_error(enqueue(h, std::move(w)));
}

cudaError_t cudaEventSynchronize(cudaEvent_t e)
{
    LOCK;
    take_site();
    event *ev = get_event(e);
    if (!ev) return set_error(cudaErrorInvalidResourceHandle);
    if (ev->in_capture) return set_error(cudaErrorCapturedEvent);
    if (capture_forbids()) return set_error(cudaErrorStreamCaptureUnsupported);
    while (ev->reached < ev->recorded && !ev->where->queue.empty()) {
        work_ptr w = ev->where->queue.front();
        ev->where->queue.pop_front();
        w->run();
    }
    return cudaSuccess;
}

cudaError_t cudaEventQuery(cudaEvent_t e)
{
    LOCK;
    take_site();
    event *ev = get_event(e);
    if (!ev) return set_error(cudaErrorInvalidResourceHandle);
    if (ev->in_capture) return set_error(cudaErrorCapturedEvent);
    return ev->reached < ev->recorded ? cudaErrorNotReady : cudaSuccess;
}

/* The emulator's clock is the host's: the time the queued work took to run
 * on the CPU, which says nothing about a GPU's speed. */
cudaError_t cudaEventElapsedTime(float *ms, cudaEvent_t start, cudaEvent_t end)
{
    LOCK;
    take_site();
    event *a = get_event(start), *b = get_event(end);
    if (!ms) return set_error(cudaErrorInvalidValue);
    if (!a || !b) return set_error(cudaErrorInvalidResourceHandle);
    if ((a->flags | b->flags) & cudaEventDisableTiming)
        return set_error(cudaErrorInvalidResourceHandle);
    if (!a->recorded || !b->recorded) return set_error(cudaErrorInvalidResourceHandle);
    if (a->reached < a->recorded || b->reached < b->recorded) return set_error(cudaErrorNotReady);
    *ms = (float)((b->seconds - a->seconds) * 1e3);
    return cudaSuccess;
}

} /* extern "C" */
