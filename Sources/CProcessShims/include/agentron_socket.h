#ifndef AGENTRON_SOCKET_H
#define AGENTRON_SOCKET_H

// Who is at the other end of a Unix socket: the daemon asks it of every control connection,
// the HTTP client of the daemon it is about to talk to. struct ucred needs _GNU_SOURCE, which
// Swift's Glibc module does not define, so it is read here.

/// The peer of a connected Unix socket as the kernel recorded it at connect/listen time
/// (SO_PEERCRED): it cannot be forged by the peer. Same layout as Linux's struct ucred.
typedef struct {
    int pid;
    unsigned int uid;
    unsigned int gid;
} agentron_peer_credentials;

/// getsockopt(SO_PEERCRED); 0 on success, else -1 with errno set.
int agentron_socket_peer_credentials(int fd, agentron_peer_credentials *out);
/// SOL_SOCKET and SO_PEERCRED as ints, for getsockopt through SwiftNIO's socket options.
int agentron_sol_socket(void);
int agentron_so_peercred(void);

#endif
