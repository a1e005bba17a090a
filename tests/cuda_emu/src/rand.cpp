/* Emulated cuRAND device generator, on top of the real one.
 *
 * cuRAND's host generator (curandCreateGeneratorHost) is the library's own
 * code and runs without a GPU; it produces the same numbers as a device
 * generator of the same type, seed, offset and ordering (which is what the
 * CPU backend already relies on). A device generator here is a host
 * generator plus a stream: every seed, offset and generate call is queued
 * on that stream, in call order, and the host generator does it when the
 * stream runs, writing straight into the (emulated) device memory. The
 * arguments are checked when the call is made, with cuRAND's status codes:
 * normals come in pairs, so curandGenerateNormal needs an even count (and,
 * being written as float2, an 8-byte aligned destination).
 */
#include "emu.h"

#include <curand.h>

#include "dl_emu_host.h"
/* Here the names mean the real library's functions (on the host generator). */
#undef curandCreateGenerator
#undef curandDestroyGenerator
#undef curandSetStream
#undef curandSetPseudoRandomGeneratorSeed
#undef curandSetGeneratorOffset
#undef curandGenerateUniform
#undef curandGenerateNormal

using namespace dl_emu;

namespace
{

struct device_generator {
    unsigned magic = 0x52414e44; /* "RAND": tells ours from anything else */
    curandGenerator_t host = nullptr;
    cudaStream_t stream = nullptr;
};

device_generator *ours(curandGenerator_t g)
{
    auto *d = (device_generator *)g;
    return d && d->magic == 0x52414e44 ? d : nullptr;
}

/* A status the real generator returns only when the work runs cannot be
 * handed back to the caller any more; it would be a bug in the emulator. */
void must(curandStatus_t st, const site &s, const char *what)
{
    if (st != CURAND_STATUS_SUCCESS) fail(s, "%s failed when it ran (status %d)", what, (int)st);
}

curandStatus_t queue(device_generator *g, const site &s, const char *call, std::function<void()> fn)
{
    cudaError_t e =
        enqueue(g->stream, work{s, std::string(call) + " at " + where(s), std::move(fn)});
    if (e != cudaSuccess) {
        set_error(e);
        return CURAND_STATUS_LAUNCH_FAILURE;
    }
    return CURAND_STATUS_SUCCESS;
}

} // namespace

extern "C" {

curandStatus_t dl_emu_curandCreateGenerator(curandGenerator_t *out, curandRngType_t type)
{
    std::lock_guard<std::recursive_mutex> guard(lock());
    take_site();
    if (!out) return CURAND_STATUS_NOT_INITIALIZED;
    auto *g = new device_generator;
    curandStatus_t st = curandCreateGeneratorHost(&g->host, type);
    if (st != CURAND_STATUS_SUCCESS) {
        delete g;
        return st;
    }
    *out = (curandGenerator_t)g;
    return CURAND_STATUS_SUCCESS;
}

/* Work still queued for the generator runs first. */
curandStatus_t dl_emu_curandDestroyGenerator(curandGenerator_t gen)
{
    std::lock_guard<std::recursive_mutex> guard(lock());
    take_site();
    device_generator *g = ours(gen);
    if (!g) return CURAND_STATUS_NOT_INITIALIZED;
    if (stream *s = get_stream(g->stream)) drain(s);
    curandStatus_t st = curandDestroyGenerator(g->host);
    g->magic = 0;
    delete g;
    return st;
}

curandStatus_t dl_emu_curandSetStream(curandGenerator_t gen, cudaStream_t stream)
{
    std::lock_guard<std::recursive_mutex> guard(lock());
    take_site();
    device_generator *g = ours(gen);
    if (!g) return CURAND_STATUS_NOT_INITIALIZED;
    g->stream = stream;
    return CURAND_STATUS_SUCCESS;
}

curandStatus_t dl_emu_curandSetPseudoRandomGeneratorSeed(curandGenerator_t gen,
                                                         unsigned long long seed)
{
    std::lock_guard<std::recursive_mutex> guard(lock());
    site s = take_site();
    device_generator *g = ours(gen);
    if (!g) return CURAND_STATUS_NOT_INITIALIZED;
    curandGenerator_t h = g->host;
    return queue(g, s, "curandSetPseudoRandomGeneratorSeed", [=] {
        must(curandSetPseudoRandomGeneratorSeed(h, seed), s, "curandSetPseudoRandomGeneratorSeed");
    });
}

curandStatus_t dl_emu_curandSetGeneratorOffset(curandGenerator_t gen, unsigned long long offset)
{
    std::lock_guard<std::recursive_mutex> guard(lock());
    site s = take_site();
    device_generator *g = ours(gen);
    if (!g) return CURAND_STATUS_NOT_INITIALIZED;
    curandGenerator_t h = g->host;
    return queue(g, s, "curandSetGeneratorOffset",
                 [=] { must(curandSetGeneratorOffset(h, offset), s, "curandSetGeneratorOffset"); });
}

curandStatus_t dl_emu_curandGenerateUniform(curandGenerator_t gen, float *out, size_t n)
{
    std::lock_guard<std::recursive_mutex> guard(lock());
    site s = take_site();
    device_generator *g = ours(gen);
    if (!g) return CURAND_STATUS_NOT_INITIALIZED;
    if (n == 0) return CURAND_STATUS_SUCCESS;
    require_device_range(s, "output of curandGenerateUniform", out, n * sizeof(float));
    curandGenerator_t h = g->host;
    return queue(g, s, "curandGenerateUniform", [=] {
        must(curandGenerateUniform(h, out, n), s, "curandGenerateUniform");
        check_canaries(find_allocation(out, 0), s, "curandGenerateUniform at " + where(s));
    });
}

curandStatus_t dl_emu_curandGenerateNormal(curandGenerator_t gen, float *out, size_t n, float mean,
                                           float stddev)
{
    std::lock_guard<std::recursive_mutex> guard(lock());
    site s = take_site();
    device_generator *g = ours(gen);
    if (!g) return CURAND_STATUS_NOT_INITIALIZED;
    if (n % 2) return CURAND_STATUS_LENGTH_NOT_MULTIPLE;
    if (n == 0) return CURAND_STATUS_SUCCESS;
    require_device_range(s, "output of curandGenerateNormal", out, n * sizeof(float));
    if ((uintptr_t)out % (2 * sizeof(float)))
        fail(s,
             "curandGenerateNormal: the output %p is not 8-byte aligned (normals are written "
             "as float2 pairs: a misaligned address on a GPU)",
             (void *)out);
    curandGenerator_t h = g->host;
    return queue(g, s, "curandGenerateNormal", [=] {
        must(curandGenerateNormal(h, out, n, mean, stddev), s, "curandGenerateNormal");
        check_canaries(find_allocation(out, 0), s, "curandGenerateNormal at " + where(s));
    });
}

} /* extern "C" */
