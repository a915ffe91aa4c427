/* SPDX-License-Identifier: MIT */
/*
 * One error vocabulary for the whole project. Fallible functions return int (0 or one of
 * these negative codes), progress functions return ssize_t (bytes, or a code).
 */
#ifndef LW_COMMON_ERR_H
#define LW_COMMON_ERR_H

enum lw_err {
    LW_OK = 0,
    LW_EAGAIN = -1,      /* would block: try again when the fd is ready */
    LW_EINCOMPLETE = -2, /* a parser needs more bytes */
    LW_EPROTO = -3,      /* the peer broke the protocol */
    LW_ELIMIT = -4,      /* a configured cap was reached */
    LW_ETIMEDOUT = -5,   /* a timer ran out */
    LW_EIO = -6,         /* a socket or file call failed (see errno copied next to it) */
    LW_ECLOSED = -7,     /* the peer closed */
    LW_ENOTFOUND = -8,   /* no such name, route or member */
    LW_EINVAL = -9,      /* the caller passed something invalid (config, arguments) */
    LW_ECANCELED = -10,  /* the operation was abandoned */
    LW_EUNSUPPORTED = -11,
};

/* A static description of code. Never NULL. */
const char *lw_strerror(int code);

#endif
