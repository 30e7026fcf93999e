/*
 * path.h: filesystem helpers shared by the hub and the adapters.
 */
#ifndef NHUB_PATH_H
#define NHUB_PATH_H

/*
 * Create directory `dir` and its missing parents with mode 0700 (an
 * existing directory is fine). Returns 0 or an errno value
 * (ENAMETOOLONG beyond 4095 bytes, ENOTDIR if `dir` exists as a file).
 */
int path_mkdir_p(const char *dir);

#endif
