#ifndef STARLING_CLIBUV_SHIM_H
#define STARLING_CLIBUV_SHIM_H
#include <uv.h>
#include <sys/socket.h>

/* accept4 (Linux): accepts with O_NONBLOCK and FD_CLOEXEC set atomically. glibc declares it only
 * under _GNU_SOURCE, which the Swift Glibc module is not built with. */
int accept4(int sockfd, struct sockaddr *addr, socklen_t *addrlen, int flags);
#endif
