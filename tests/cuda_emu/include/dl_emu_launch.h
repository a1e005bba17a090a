/* Kernel launches in the cuda-emu build: what DL_EMU_LAUNCH expands to.
 *
 * `dl_emu::make_launch(kernel, "kernel", file, line, grid, block, shmem,
 * stream)(args...)` converts the arguments to the kernel's parameter types
 * (as a real launch does, by value, at the time of the launch), notes which
 * of them are pointers (each must point into a live device allocation) and
 * hands the launch to the emulator, which queues it on the stream like any
 * other work (src/exec.cpp runs it).
 */
#ifndef DL_EMU_LAUNCH_H
#define DL_EMU_LAUNCH_H

#include <cstddef>
#include <memory>
#include <tuple>
#include <type_traits>
#include <utility>

#include <cuda_runtime_api.h>

/* The built-in variables of the thread being run. __thread rather than
 * thread_local: a plain TLS load, no wrapper call, on every use. */
struct dl_emu_kctx {
    uint3 thread_idx, block_idx, block_dim, grid_dim;
};
extern __thread dl_emu_kctx dl_emu_k;

namespace dl_emu
{

/* One launch's kernel and arguments, run once per emulated thread. */
struct kernel_body {
    virtual ~kernel_body() = default;
    virtual void run() const = 0;
};

template <class... P> struct kernel_call final : kernel_body {
    void (*fn)(P...);
    std::tuple<std::decay_t<P>...> args;
    template <class... A>
    kernel_call(void (*f)(P...), A &&...a) : fn(f), args(std::forward<A>(a)...)
    {
    }
    void run() const override { std::apply(fn, args); }
};

struct launch_site {
    const char *kernel, *file;
    int line;
    dim3 grid, block;
    size_t shmem;
    cudaStream_t stream;
    uint64_t scalars; /* a hash of the non-pointer arguments */
};

/* A pointer argument: its position (0-based) and value. */
struct pointer_arg {
    int index;
    const void *value;
};

void submit(const launch_site &site, std::shared_ptr<const kernel_body> body,
            const pointer_arg *ptrs, int nptrs);

/* The barrier (what __syncthreads() becomes). */
void syncthreads(const char *file, int line);

template <class T>
void note_argument(const T &v, int index, pointer_arg *out, int &n, uint64_t &hash)
{
    if constexpr (std::is_pointer_v<T>) {
        out[n++] = pointer_arg{index, (const void *)v};
    } else {
        static_assert(std::is_scalar_v<T>, "kernel arguments are scalars or pointers here");
        const unsigned char *b = (const unsigned char *)&v;
        for (size_t i = 0; i < sizeof v; i++) hash = (hash ^ b[i]) * 0x100000001b3ull;
    }
}

template <class... P> struct launcher {
    void (*fn)(P...);
    launch_site site;
    template <class... A> void operator()(A &&...a) const
    {
        static_assert(sizeof...(A) == sizeof...(P),
                      "kernel launched with the wrong argument count");
        auto body = std::make_shared<kernel_call<P...>>(fn, std::forward<A>(a)...);
        pointer_arg ptrs[sizeof...(P) + 1];
        int n = 0;
        launch_site s = site;
        s.scalars = 0xcbf29ce484222325ull;
        std::apply(
            [&](const auto &...x) {
                int i = 0;
                (note_argument(x, i++, ptrs, n, s.scalars), ...);
            },
            body->args);
        submit(s, std::move(body), ptrs, n);
    }
};

template <class... P>
launcher<P...> make_launch(void (*fn)(P...), const char *name, const char *file, int line,
                           dim3 grid, dim3 block, size_t shmem = 0, cudaStream_t stream = 0)
{
    return launcher<P...>{fn, launch_site{name, file, line, grid, block, shmem, stream, 0}};
}

} // namespace dl_emu

#endif
