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

/// One TCP socket as the kernel's socket table has it (NETLINK_SOCK_DIAG).
typedef struct {
    /// The local address in network order: 4 bytes for IPv4, 16 for IPv6.
    unsigned char address[16];
    /// TCP_ESTABLISHED (1) ... TCP_LISTEN (10) ..., as in /proc/net/tcp's `st`.
    unsigned char state;
    unsigned int uid;
    unsigned int inode;
} agentron_tcp_socket;

/// The TCP sockets of `family` (AF_INET or AF_INET6) on local `port` whose state is in
/// `states` (a mask of 1 << state), from the kernel's socket table over netlink: it walks
/// only the tables those states live in, where reading /proc/net/tcp walks every
/// connection bucket again for each page it returns. Fills up to `capacity` entries and
/// returns how many there are (more than `capacity`: ask again with room for them); -1
/// with errno on failure.
int agentron_tcp_sockets(int family, int port, unsigned int states, agentron_tcp_socket *out, int capacity);

#endif
