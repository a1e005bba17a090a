/* DL_EMU_ASAN is defined when the build runs under AddressSanitizer (gcc
 * says so with __SANITIZE_ADDRESS__, clang with __has_feature). Then the
 * emulator makes plain allocations and annotates its fiber switches for
 * ASan, and ASan's reports replace the emulator's own for memory errors. */
#ifndef DL_EMU_ASAN_H
#define DL_EMU_ASAN_H

#if defined(__SANITIZE_ADDRESS__)
#define DL_EMU_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define DL_EMU_ASAN 1
#endif
#endif

#endif
