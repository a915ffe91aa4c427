/* SPDX-License-Identifier: MIT */
/* Descriptions for the project's error codes. */
#include "common/err.h"

const char *lw_strerror(int code)
{
    switch (code) {
    case LW_OK:
        return "success";
    case LW_EAGAIN:
        return "would block";
    case LW_EINCOMPLETE:
        return "incomplete input";
    case LW_EPROTO:
        return "protocol error";
    case LW_ELIMIT:
        return "limit reached";
    case LW_ETIMEDOUT:
        return "timed out";
    case LW_EIO:
        return "I/O error";
    case LW_ECLOSED:
        return "connection closed";
    case LW_ENOTFOUND:
        return "not found";
    case LW_EINVAL:
        return "invalid argument";
    case LW_ECANCELED:
        return "canceled";
    case LW_EUNSUPPORTED:
        return "unsupported";
    }
    return "unknown error";
}
