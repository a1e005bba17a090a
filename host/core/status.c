/* Thread-local error message storage behind dl_status. */
#include "dlab/status.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

static _Thread_local char dl_err_msg[1024];
static _Thread_local char dl_err_where[256];

dl_status dl_fail_at(dl_status code, const char *file, int line, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(dl_err_msg, sizeof dl_err_msg, fmt, ap);
    va_end(ap);
    if (!file) {
        dl_err_where[0] = '\0';
        return code;
    }
    const char *base = strrchr(file, '/');
    snprintf(dl_err_where, sizeof dl_err_where, "%s:%d", base ? base + 1 : file, line);
    return code;
}

const char *dl_errmsg(void) { return dl_err_msg; }
const char *dl_errwhere(void) { return dl_err_where; }

void dl_clear_error(void)
{
    dl_err_msg[0] = '\0';
    dl_err_where[0] = '\0';
}

const char *dl_status_name(dl_status s)
{
    switch (s) {
    case DL_OK: return "ok";
    case DL_E_USAGE: return "usage";
    case DL_E_INPUT: return "input";
    case DL_E_RUNTIME: return "runtime";
    case DL_E_NODEVICE: return "no-device";
    case DL_E_MEMORY: return "memory";
    case DL_E_DIVERGED: return "diverged";
    case DL_E_INTERRUPTED: return "interrupted";
    case DL_E_IO: return "io";
    }
    return "unknown";
}

int dl_exit_code(dl_status s)
{
    switch (s) {
    case DL_OK: return 0;
    case DL_E_USAGE:
    case DL_E_INPUT: return 2;
    case DL_E_INTERRUPTED: return 130;
    default: return 1;
    }
}
