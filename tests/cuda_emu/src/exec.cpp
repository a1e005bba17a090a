/* Kernel launches: checking them when they are queued, and running them.
 *
 * Threads are fibers. A block's threads run on one OS thread, one block at
 * a time: the first thread (in the schedule's order) starts on a fiber of
 * its own. If it finishes without reaching a barrier, no thread of the block
 * may reach one (a barrier must be reached by all threads or none), so the
 * others run one after another as plain calls, with no switching at all; a
 * thread that then calls __syncthreads() is reported. Otherwise every thread
 * gets a fiber and the block advances barrier by barrier: each thread runs
 * until its next __syncthreads() (or its end), and at each step all threads
 * must wait at the same barrier or all must have finished.
 *
 * Schedules. The threads of a block run in forward order, reverse order or a
 * seeded random order (re-drawn between barriers), and the blocks of the
 * grid likewise. The first launches of each kernel at each call site, with
 * each configuration and each set of scalar arguments (the shapes), run
 * (DLAB_CUDA_EMU_CHECKED_LAUNCHES, default 2) under all three from the same
 * starting memory (a
 * snapshot of every allocation the launch's pointer arguments point into)
 * and must leave identical bytes; later launches rotate through the three
 * schedules, one each. A result that depends on the schedule means threads
 * communicate without a barrier between them: a race.
 *
 * Fibers switch with a few lines of x86-64 assembly (callee-saved registers,
 * stack pointer), or with ucontext under
 * AddressSanitizer, with ASan's fiber annotations, so that ASan follows the
 * stack switches.
 */
#include "emu.h"

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <tuple>
#include <sys/mman.h>
#include <unistd.h>

#include "dl_emu_launch.h"

#if !defined(__x86_64__)
#error "the cuda-emu fibers switch with x86-64 assembly"
#endif
#ifdef DL_EMU_ASAN
#include <sanitizer/asan_interface.h>
#include <sanitizer/common_interface_defs.h>
#endif

/* dl_emu_ctx_switch(&save_sp, load_sp): pushes the callee-saved registers,
 * stores the stack pointer in *save_sp, switches to load_sp and pops the
 * same set from there. The MXCSR and x87 control words (also callee-saved)
 * are left alone: neither the kernels nor the emulator change them, and
 * saving and loading them doubled the cost of a switch. */
extern "C" void dl_emu_ctx_switch(void **save_sp, void *load_sp);
asm(R"(
    .text
    .p2align 4
    .globl dl_emu_ctx_switch
    .hidden dl_emu_ctx_switch
    .type dl_emu_ctx_switch,@function
dl_emu_ctx_switch:
    pushq %rbp
    pushq %rbx
    pushq %r12
    pushq %r13
    pushq %r14
    pushq %r15
    movq %rsp, (%rdi)
    movq %rsi, %rsp
    popq %r15
    popq %r14
    popq %r13
    popq %r12
    popq %rbx
    popq %rbp
    ret
    .size dl_emu_ctx_switch,.-dl_emu_ctx_switch
)");

namespace dl_emu
{

/* --- fibers --------------------------------------------------------------- */

namespace
{

enum class fstate { idle, running, waiting, done };

struct fiber {
    char *stack = nullptr; /* usable stack, above a guard page */
    size_t stack_size = 0;
    /* Bytes left unused at the top of the stack. Without it every fiber's
     * live frames sit at the same offset within a page, map to the same few
     * cache sets and evict one another at each switch. */
    size_t stagger = 0;
    void *sp = nullptr;
    void *fake = nullptr; /* ASan's fake stack while switched away */
    uint3 tid{};
    fstate state = fstate::idle;
    const char *bar_file = nullptr;
    int bar_line = 0;
};

#ifdef DL_EMU_ASAN
constexpr size_t fiber_stack = 512 * 1024;
#else
constexpr size_t fiber_stack = 256 * 1024;
#endif

fiber pool[max_threads_per_block];
fiber *current;
const kernel_body *body;
bool in_block, direct;
uint3 direct_first; /* the thread that finished without a barrier */

void *main_sp;
#ifdef DL_EMU_ASAN
void *main_fake;
const void *main_bottom; /* the OS thread's stack, for ASan */
size_t main_size;
#endif

/* Counters, printed at exit when DLAB_CUDA_EMU_STATS is set. */
struct counters {
    uint64_t launches = 0, checked = 0, blocks = 0, direct_threads = 0, fiber_steps = 0;
    ~counters()
    {
        if (getenv("DLAB_CUDA_EMU_STATS"))
            fprintf(stderr,
                    "cuda-emu: stats: %llu launches (%llu under all schedules), %llu blocks, %llu "
                    "threads run straight through, %llu fiber resumptions\n",
                    (unsigned long long)launches, (unsigned long long)checked,
                    (unsigned long long)blocks, (unsigned long long)direct_threads,
                    (unsigned long long)fiber_steps);
    }
} stats;

/* The fibers to resume in this step of the block, in order, and where the
 * step has got to. A fiber that reaches a barrier (or its end) switches
 * straight to the next one; the last switches back to the scheduler. Going
 * fiber to fiber halves the switches, and since every fiber suspends at the
 * same call sites, the return-address predictor stays right. */
fiber *step[max_threads_per_block];
unsigned step_len, step_pos;

void ensure_stack(fiber &f)
{
    if (f.stack) return;
    size_t pg = (size_t)sysconf(_SC_PAGESIZE);
    void *r = mmap(nullptr, fiber_stack + pg, PROT_READ | PROT_WRITE,
                   MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (r == MAP_FAILED) fail(site{}, "cannot map a fiber stack");
    mprotect(r, pg, PROT_NONE); /* a fiber's stack overflow faults */
    f.stack = (char *)r + pg;
    f.stack_size = fiber_stack;
    f.stagger = (size_t)(&f - pool) % 256 * 320;
}

/* Switches from `from` (nullptr: the scheduler) to `to` (likewise). */
inline void switch_to(fiber *from, fiber *to, bool from_finished)
{
    current = to;
    if (to) {
        to->state = fstate::running;
        dl_emu_k.thread_idx = to->tid;
    }
#ifdef DL_EMU_ASAN
    __sanitizer_start_switch_fiber(from_finished ? nullptr
                                   : from        ? &from->fake
                                                 : &main_fake,
                                   to ? to->stack : main_bottom, to ? to->stack_size : main_size);
#else
    (void)from_finished;
#endif
    dl_emu_ctx_switch(from ? &from->sp : &main_sp, to ? to->sp : main_sp);
#ifdef DL_EMU_ASAN
    __sanitizer_finish_switch_fiber(from ? from->fake : main_fake, nullptr, nullptr);
#endif
}

/* Called by a fiber that has reached a barrier or its end. */
inline void pass_on(fiber &f, bool finished)
{
    fiber *next = ++step_pos < step_len ? step[step_pos] : nullptr;
    switch_to(&f, next, finished);
}

[[noreturn]] void fiber_entry()
{
#ifdef DL_EMU_ASAN
    /* The first fiber ever entered is entered from the scheduler's stack,
     * whose bounds ASan reports here; switches back to it need them. */
    const void *bottom;
    size_t size;
    __sanitizer_finish_switch_fiber(nullptr, &bottom, &size);
    if (!main_bottom) main_bottom = bottom, main_size = size;
#endif
    fiber &f = *current;
    body->run();
    f.state = fstate::done;
    pass_on(f, true);
    abort(); /* a finished fiber is never resumed */
}

void start_fiber(fiber &f, uint3 tid)
{
    ensure_stack(f);
    f.tid = tid;
    f.state = fstate::idle;
    f.bar_file = nullptr;
    f.fake = nullptr;
    /* The first switch "returns" into fiber_entry with the stack aligned as
     * after a call: the return-address slot is 16-byte aligned, and a null
     * return address above it ends backtraces. */
    uintptr_t r = ((uintptr_t)(f.stack + f.stack_size - f.stagger) - 16) & ~(uintptr_t)15;
#ifdef DL_EMU_ASAN
    /* The previous thread's frames never returned (a fiber ends by switching
     * away), so ASan's shadow may still mark this part of the stack as red
     * zones. Frames further down get fresh shadow on entry. */
    __asan_unpoison_memory_region((void *)(r - 48), 64);
#endif
    ((void **)r)[0] = (void *)&fiber_entry;
    ((void **)r)[1] = nullptr;
    char *sp = (char *)r - 48; /* six zeroed callee-saved registers */
    memset(sp, 0, 48);
    f.sp = sp;
}

/* Runs the fibers in step[0, len) in order, each until its next barrier or
 * its end, and returns when the last has suspended. */
void run_step(unsigned len)
{
    stats.fiber_steps += len;
    step_len = len;
    step_pos = 0;
    switch_to(nullptr, step[0], false);
}

/* --- schedules ---------------------------------------------------------- */

enum sched { forward = 0, reverse = 1, random_order = 2 };
const char *sched_name[] = {"forward", "reverse", "random"};

struct rng {
    uint64_t s;
    uint64_t next()
    {
        uint64_t z = (s += 0x9E3779B97F4A7C15ull);
        z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
        z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
        return z ^ (z >> 31);
    }
    uint64_t below(uint64_t n) { return n ? next() % n : 0; }
};

uint64_t gcd(uint64_t a, uint64_t b)
{
    while (b) std::tie(a, b) = std::make_tuple(b, a % b);
    return a;
}

/* A bijection of [0, n): the identity, its reverse, or a seeded affine map
 * i -> (a*i + c) mod n with a coprime to n (no table for huge grids). */
struct order {
    sched kind;
    uint64_t n, a = 1, c = 0;
    order(sched k, uint64_t n_, rng &r) : kind(k), n(n_)
    {
        if (k == random_order && n > 1) {
            do a = 1 + r.below(n - 1);
            while (gcd(a, n) != 1);
            c = r.below(n);
        }
    }
    uint64_t operator[](uint64_t i) const
    {
        if (kind == forward) return i;
        if (kind == reverse) return n - 1 - i;
        return (uint64_t)(((unsigned __int128)a * i + c) % n);
    }
};

uint3 unflatten(uint64_t i, uint3 dim)
{
    return uint3{(unsigned)(i % dim.x), (unsigned)(i / dim.x % dim.y),
                 (unsigned)(i / ((uint64_t)dim.x * dim.y))};
}

std::string fmt3(uint3 v)
{
    return "(" + std::to_string(v.x) + "," + std::to_string(v.y) + "," + std::to_string(v.z) + ")";
}

/* All threads wait at one barrier, or all have finished; true when done. */
bool check_step(unsigned n, const site &launch)
{
    int first_wait = -1, first_done = -1;
    for (unsigned i = 0; i < n; i++) {
        fiber &f = pool[i];
        if (f.state == fstate::done) {
            if (first_done < 0) first_done = (int)i;
            continue;
        }
        if (first_wait < 0) {
            first_wait = (int)i;
            continue;
        }
        fiber &w = pool[first_wait];
        if (f.bar_line != w.bar_line ||
            (f.bar_file != w.bar_file && strcmp(f.bar_file, w.bar_file) != 0))
            fail(launch,
                 "%s: block %s: thread %s waits at the barrier at %s while thread %s waits at "
                 "%s: the threads of a block wait at different barriers",
                 now_running->what.c_str(), fmt3(dl_emu_k.block_idx).c_str(), fmt3(f.tid).c_str(),
                 where(site{f.bar_file, f.bar_line}).c_str(), fmt3(w.tid).c_str(),
                 where(site{w.bar_file, w.bar_line}).c_str());
    }
    if (first_wait >= 0 && first_done >= 0) {
        fiber &w = pool[first_wait];
        fail(launch,
             "%s: block %s: thread %s finished while thread %s waits at the barrier at %s: the "
             "threads of a block wait at different barriers",
             now_running->what.c_str(), fmt3(dl_emu_k.block_idx).c_str(),
             fmt3(pool[first_done].tid).c_str(), fmt3(w.tid).c_str(),
             where(site{w.bar_file, w.bar_line}).c_str());
    }
    return first_wait < 0;
}

void run_block(unsigned n, uint3 bdim, sched kind, rng &r, const site &launch)
{
    order thr(kind, n, r);
    /* The first thread on a fiber: does this block use barriers at all? */
    start_fiber(pool[0], unflatten(thr[0], bdim));
    step[0] = &pool[0];
    run_step(1);
    if (pool[0].state == fstate::done) {
        direct = true;
        direct_first = pool[0].tid;
        stats.direct_threads += n - 1;
        for (unsigned i = 1; i < n; i++) {
            dl_emu_k.thread_idx = unflatten(thr[i], bdim);
            body->run();
        }
        direct = false;
        return;
    }
    for (unsigned i = 1; i < n; i++) {
        start_fiber(pool[i], unflatten(thr[i], bdim));
        step[i - 1] = &pool[i];
    }
    run_step(n - 1);
    unsigned perm[max_threads_per_block];
    for (unsigned i = 0; i < n; i++) perm[i] = i;
    while (!check_step(n, launch)) {
        if (kind == random_order)
            for (unsigned i = n - 1; i > 0; i--) std::swap(perm[i], perm[r.below(i + 1)]);
        unsigned len = 0;
        for (unsigned i = 0; i < n; i++)
            if (pool[perm[i]].state == fstate::waiting) step[len++] = &pool[perm[i]];
        run_step(len);
    }
}

void run_grid(dim3 grid, dim3 block, sched kind, rng &r, const site &launch)
{
    uint3 gdim{grid.x, grid.y, grid.z}, bdim{block.x, block.y, block.z};
    dl_emu_k.grid_dim = gdim;
    dl_emu_k.block_dim = bdim;
    unsigned n = block.x * block.y * block.z;
    uint64_t blocks = (uint64_t)grid.x * grid.y * grid.z;
    order blk(kind, blocks, r);
    in_block = true;
    for (uint64_t i = 0; i < blocks; i++) {
        uint3 b = unflatten(blk[i], gdim);
        dl_emu_k.block_idx = b;
        now_running->block = b;
        stats.blocks++;
        run_block(n, bdim, kind, r, launch);
    }
    in_block = false;
}

/* --- launches ----------------------------------------------------------- */

/* A launch's kind: where, how big, and with which scalar arguments (the
 * shapes). Each kind's first launches run under every schedule. */
struct launch_key {
    const char *file;
    int line;
    unsigned g[3], b[3];
    uint64_t scalars;
    bool operator<(const launch_key &o) const
    {
        return std::tie(file, line, g[0], g[1], g[2], b[0], b[1], b[2], scalars) <
               std::tie(o.file, o.line, o.g[0], o.g[1], o.g[2], o.b[0], o.b[1], o.b[2], o.scalars);
    }
};
std::map<launch_key, uint64_t> launches_seen;
uint64_t launch_serial;

unsigned checked_launches()
{
    static long v = [] {
        const char *e = getenv("DLAB_CUDA_EMU_CHECKED_LAUNCHES");
        return e && *e ? strtol(e, nullptr, 10) : 2L;
    }();
    return (unsigned)(v < 0 ? 0 : v);
}

uint64_t base_seed()
{
    static uint64_t v = [] {
        const char *e = getenv("DLAB_CUDA_EMU_SEED");
        return e && *e ? strtoull(e, nullptr, 0) : 0x5eedULL;
    }();
    return v;
}

std::string config_text(const launch_site &l)
{
    char buf[256];
    snprintf(buf, sizeof buf, "%s<<<(%u,%u,%u),(%u,%u,%u)>>>", l.kernel, l.grid.x, l.grid.y,
             l.grid.z, l.block.x, l.block.y, l.block.z);
    return buf;
}

void execute(const launch_site &l, const kernel_body &b, const std::vector<pointer_arg> &ptrs)
{
    site s{l.file, l.line};
    std::string text = config_text(l) + " launched at " + where(s);
    /* The allocations the kernel may touch. */
    std::vector<const allocation *> allocs;
    for (const pointer_arg &p : ptrs) {
        const allocation *a = find_allocation(p.value, 0);
        if (!a)
            fail(s,
                 "%s: argument %d (%p) is no longer device memory when the kernel runs (freed "
                 "before it ran?)",
                 text.c_str(), p.index + 1, p.value);
        bool seen = false;
        for (const allocation *x : allocs) seen |= x == a;
        if (!seen) allocs.push_back(a);
    }
    launch_key key{l.file,
                   l.line,
                   {l.grid.x, l.grid.y, l.grid.z},
                   {l.block.x, l.block.y, l.block.z},
                   l.scalars};
    uint64_t nth = ++launches_seen[key];
    stats.launches++;
    rng r{base_seed() ^ (++launch_serial * 0x2545F4914F6CDD1Dull)};
    uint64_t seed = r.s;

    running here;
    here.in_kernel = true;
    running *outer = now_running;
    now_running = &here;
    body = &b;
    auto run = [&](sched k) {
        here.what = text + " (" + sched_name[k] + " schedule, seed " + std::to_string(seed) + ")";
        rng rr{seed};
        run_grid(l.grid, l.block, k, rr, s);
        here.in_kernel = false;
        for (const allocation *a : allocs) check_canaries(a, s, here.what);
        here.in_kernel = true;
    };
    if (nth <= checked_launches()) {
        stats.checked++;
        std::vector<std::vector<char>> start, first;
        for (const allocation *a : allocs) start.emplace_back(a->base, a->base + a->size);
        run(forward);
        for (const allocation *a : allocs) first.emplace_back(a->base, a->base + a->size);
        for (sched k : {reverse, random_order}) {
            for (size_t i = 0; i < allocs.size(); i++)
                memcpy(allocs[i]->base, start[i].data(), allocs[i]->size);
            run(k);
            for (size_t i = 0; i < allocs.size(); i++) {
                const char *now = allocs[i]->base, *ref = first[i].data();
                if (memcmp(now, ref, allocs[i]->size) == 0) continue;
                size_t off = 0;
                while (now[off] == ref[off]) off++;
                size_t word = off / 4 * 4;
                float fa, fb;
                memcpy(&fa, ref + word, 4);
                memcpy(&fb, now + word, 4);
                fail(s,
                     "%s: the result depends on the order the threads run in: byte %zu of %s "
                     "differs between the forward and the %s schedule (as float: %g vs %g); "
                     "threads communicate without a __syncthreads() between them, or race",
                     (config_text(l) + " launched at " + where(s)).c_str(), off,
                     describe(allocs[i]).c_str(), sched_name[k], (double)fa, (double)fb);
            }
        }
    } else {
        run((sched)(nth % 3));
    }
    body = nullptr;
    now_running = outer;
}

} // namespace

void syncthreads(const char *file, int line)
{
    site s{file, line};
    if (!in_block) fail(s, "__syncthreads() outside a kernel");
    if (direct)
        fail(s,
             "%s: block %s: thread %s reached the barrier here, but thread %s finished without "
             "reaching any barrier: the threads of a block wait at different barriers",
             now_running->what.c_str(), fmt3(dl_emu_k.block_idx).c_str(),
             fmt3(dl_emu_k.thread_idx).c_str(), fmt3(direct_first).c_str());
    fiber &f = *current;
    f.bar_file = file;
    f.bar_line = line;
    f.state = fstate::waiting;
    pass_on(f, false);
}

void submit(const launch_site &l, std::shared_ptr<const kernel_body> b, const pointer_arg *ptrs,
            int nptrs)
{
    std::lock_guard<std::recursive_mutex> guard(lock());
    site s{l.file, l.line};
    std::string text = config_text(l);
    uint64_t threads = (uint64_t)l.block.x * l.block.y * l.block.z;
    const char *bad = nullptr;
    if (!l.grid.x || !l.grid.y || !l.grid.z || !l.block.x || !l.block.y || !l.block.z)
        bad = "a zero grid or block dimension";
    else if (threads > max_threads_per_block)
        bad = "more than 1024 threads per block";
    else if (l.block.x > max_block_x || l.block.y > max_block_y || l.block.z > max_block_z)
        bad = "a block dimension over sm_90's limits (1024, 1024, 64)";
    else if (l.grid.x > max_grid_x || l.grid.y > max_grid_y || l.grid.z > max_grid_z)
        bad = "a grid dimension over sm_90's limits (2^31-1, 65535, 65535)";
    else if (l.shmem > max_dynamic_shared)
        bad = "more than 48 KiB of dynamic shared memory";
    if (bad) {
        note(s,
             "%s: invalid configuration: %s; the launch fails with "
             "cudaErrorInvalidConfiguration",
             text.c_str(), bad);
        set_error(cudaErrorInvalidConfiguration);
        return;
    }
    for (int i = 0; i < nptrs; i++)
        if (ptrs[i].value && !is_device(ptrs[i].value))
            fail(s, "%s: argument %d is not device memory (a host pointer?): %s", text.c_str(),
                 ptrs[i].index + 1, locate(ptrs[i].value).c_str());
    std::vector<pointer_arg> args;
    for (int i = 0; i < nptrs; i++)
        if (ptrs[i].value) args.push_back(ptrs[i]);
    launch_site copy = l;
    work w{s, text + " at " + where(s), [copy, b, args] { execute(copy, *b, args); }};
    set_error(enqueue(l.stream, std::move(w)));
}

} // namespace dl_emu
