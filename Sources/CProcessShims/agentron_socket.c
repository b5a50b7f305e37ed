// For struct ucred; must come before any system header.
#define _GNU_SOURCE
#include "CProcessShims.h"

#include <errno.h>
#include <linux/inet_diag.h>
#include <linux/netlink.h>
#include <linux/sock_diag.h>
#include <netinet/in.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

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

int agentron_tcp_sockets(int family, int port, unsigned int states, agentron_tcp_socket *out, int capacity) {
    int fd = socket(AF_NETLINK, SOCK_DGRAM | SOCK_CLOEXEC, NETLINK_SOCK_DIAG);
    if (fd < 0) return -1;
    struct {
        struct nlmsghdr header;
        struct inet_diag_req_v2 request;
    } message;
    memset(&message, 0, sizeof message);
    message.header.nlmsg_len = sizeof message;
    message.header.nlmsg_type = SOCK_DIAG_BY_FAMILY;
    message.header.nlmsg_flags = NLM_F_REQUEST | NLM_F_DUMP;
    message.request.sdiag_family = (unsigned char)family;
    message.request.sdiag_protocol = IPPROTO_TCP;
    message.request.idiag_states = states;
    struct sockaddr_nl kernel;
    memset(&kernel, 0, sizeof kernel);
    kernel.nl_family = AF_NETLINK;
    if (sendto(fd, &message, sizeof message, 0, (struct sockaddr *)&kernel, sizeof kernel) < 0) {
        close(fd);
        return -1;
    }
    // Aligned for the netlink headers inside; the kernel fills it with whole messages.
    long buffer[8192];
    int count = 0;
    for (;;) {
        ssize_t received = recv(fd, buffer, sizeof buffer, 0);
        if (received < 0) {
            if (errno == EINTR) continue;
            close(fd);
            return -1;
        }
        if (received == 0) break;
        int left = (int)received;
        for (struct nlmsghdr *header = (struct nlmsghdr *)buffer; NLMSG_OK(header, left);
             header = NLMSG_NEXT(header, left)) {
            if (header->nlmsg_type == NLMSG_DONE) {
                close(fd);
                return count;
            }
            if (header->nlmsg_type == NLMSG_ERROR) {
                struct nlmsgerr *error = NLMSG_DATA(header);
                close(fd);
                errno = error->error ? -error->error : EIO;
                return -1;
            }
            struct inet_diag_msg *socket_message = NLMSG_DATA(header);
            if (ntohs(socket_message->id.idiag_sport) != port) continue;
            if (count < capacity) {
                agentron_tcp_socket *entry = &out[count];
                entry->state = socket_message->idiag_state;
                entry->uid = socket_message->idiag_uid;
                entry->inode = socket_message->idiag_inode;
                memcpy(entry->address, socket_message->id.idiag_src, 16);
            }
            count++;
        }
    }
    close(fd);
    return count;
}
