/* Status codes and error messages.
 *
 * Library functions return a dl_status. On failure they record one message
 * (and, for DL_E_RUNTIME, the source location of the failing call, which
 * the program prints after the message; an I/O failure's message names its
 * file and needs none) in a
 * thread-local buffer that the caller reads with dl_errmsg()/dl_errwhere().
 * Nothing below main() prints or exits.
 */
#ifndef DLAB_STATUS_H
#define DLAB_STATUS_H

#ifdef __cplusplus
extern "C" {
#endif

typedef enum {
    DL_OK = 0,
    DL_E_USAGE,       /* bad command-line usage or configuration (exit 2) */
    DL_E_INPUT,       /* bad input data (exit 2) */
    DL_E_RUNTIME,     /* a library or device call failed (exit 1) */
    DL_E_NODEVICE,    /* no usable GPU, or built without CUDA (exit 1) */
    DL_E_MEMORY,      /* an allocation failed or would not fit (exit 1) */
    DL_E_DIVERGED,    /* the loss became NaN or Inf (exit 1) */
    DL_E_INTERRUPTED, /* stopped by SIGINT (exit 130) */
    DL_E_IO,          /* a file or directory could not be read or written (exit 1) */
} dl_status;

/* Records a message (printf-style) for `code` and returns `code`. */
dl_status dl_fail_at(dl_status code, const char *file, int line, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 4, 5)))
#endif
    ;
#define DL_FAIL(code, ...) dl_fail_at((code), __FILE__, __LINE__, __VA_ARGS__)
/* The same without a source location (file NULL): for a runtime failure of
 * the user's data or model, which its message names, not of a call. */
#define DL_FAIL_PLAIN(code, ...) dl_fail_at((code), NULL, 0, __VA_ARGS__)

/* Propagates a failure from a call that returns dl_status. */
#define DL_TRY(expr)                                                                               \
    do {                                                                                           \
        dl_status dl_try_s_ = (expr);                                                              \
        if (dl_try_s_ != DL_OK) return dl_try_s_;                                                  \
    } while (0)

const char *dl_errmsg(void);   /* the last message, "" if none */
const char *dl_errwhere(void); /* "file.c:123" of the last failure */
void dl_clear_error(void);
const char *dl_status_name(dl_status s);
int dl_exit_code(dl_status s); /* 0, 1, 2 or 130 as documented in the README */

#ifdef __cplusplus
}
#endif
#endif
