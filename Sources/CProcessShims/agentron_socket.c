// For struct ucred; must come before any system header.
#define _GNU_SOURCE
#include "CProcessShims.h"

#include <errno.h>
#include <sys/socket.h>

int agentron_socket_peer_credentials(int fd, agentron_peer_credentials *out) {
    struct ucred credentials;
    socklen_t length = sizeof credentials;
    if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &credentials, &length) != 0) return -1;
    if (length != sizeof credentials) {
        errno = EINVAL;
        return -1;
    }
    out->pid = credentials.pid;
    out->uid = credentials.uid;
    out->gid = credentials.gid;
    return 0;
}

int agentron_sol_socket(void) { return SOL_SOCKET; }
int agentron_so_peercred(void) { return SO_PEERCRED; }
