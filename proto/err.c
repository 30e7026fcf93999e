/*
 * err.c: names for the project's error codes (nhub_err.h).
 */
#include "nhub_err.h"

const char *nhub_strerror(int err)
{
    switch (err) {
    case NHUB_OK: return "success";
    case NHUB_EINVAL: return "invalid argument";
    case NHUB_ENOMEM: return "out of memory";
    case NHUB_EIO: return "input/output error";
    case NHUB_ECONFIG: return "configuration error";
    case NHUB_EMALFORMED: return "malformed data";
    case NHUB_ETOOBIG: return "too large";
    case NHUB_EVERSION: return "unsupported version";
    case NHUB_ESTORE: return "store error";
    case NHUB_EFULL: return "store full";
    case NHUB_ETIMEOUT: return "timed out";
    case NHUB_ENOTFOUND: return "not found";
    case NHUB_EAGAIN: return "try again";
    case NHUB_ECLOSED: return "closed";
    case NHUB_EREFUSED: return "refused by peer";
    case NHUB_EZMQ: return "messaging error";
    case NHUB_ECRYPTO: return "cryptography error";
    case NHUB_EEXIST: return "already exists";
    default: return "unknown error";
    }
}
