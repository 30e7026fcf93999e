/*
 * nhub_err.h: the one error vocabulary of the project.
 *
 * Every function that can fail returns int: 0 on success or one of the
 * negative NHUB_E* codes below. nhub_strerror() turns a code into a short
 * English phrase; detail (which file, which field) goes to the log or to an
 * error buffer owned by the caller, never into the code itself.
 */
#ifndef NHUB_ERR_H
#define NHUB_ERR_H

#ifdef __cplusplus
extern "C" {
#endif

enum nhub_err {
    NHUB_OK = 0,
    NHUB_EINVAL = -1,     /* an argument or field is out of range */
    NHUB_ENOMEM = -2,     /* an allocation failed */
    NHUB_EIO = -3,        /* an operating-system call failed; errno says more */
    NHUB_ECONFIG = -4,    /* a configuration file is wrong */
    NHUB_EMALFORMED = -5, /* bytes from the wire or disk do not decode */
    NHUB_ETOOBIG = -6,    /* a frame or field exceeds its limit */
    NHUB_EVERSION = -7,   /* a protocol or format version is not supported */
    NHUB_ESTORE = -8,     /* the LMDB store failed */
    NHUB_EFULL = -9,      /* the store or disk is full */
    NHUB_ETIMEOUT = -10,  /* the wait ended before the event */
    NHUB_ENOTFOUND = -11, /* no such key, region or message */
    NHUB_EAGAIN = -12,    /* nothing to do now; try again later */
    NHUB_ECLOSED = -13,   /* the object was closed or is shutting down */
    NHUB_EREFUSED = -14,  /* the peer refused the request (see its NACK) */
    NHUB_EZMQ = -15,      /* a ZeroMQ call failed */
    NHUB_ECRYPTO = -16,   /* an OpenSSL call failed */
    NHUB_EEXIST = -17,    /* it is there already */
};

/* A short, static, English description of `err` (never NULL). */
const char *nhub_strerror(int err);

#ifdef __cplusplus
}
#endif
#endif
