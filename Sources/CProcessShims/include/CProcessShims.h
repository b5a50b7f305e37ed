// What Swift cannot import directly for processes and files: raw syscalls (pidfd_open,
// pidfd_send_signal, waitid(P_PIDFD)), prctl, a fork/exec that puts the child in its own
// session before exec, the per-thread filesystem identity (setfsuid/setfsgid, not in the
// Glibc module) and a socket's peer credentials. Typed wrappers; no library beyond libc, so
// whatever links the process layer links nothing else (libcurl's shims are CCurlShims).
#ifndef AGENTRON_PROCESS_SHIMS_H
#define AGENTRON_PROCESS_SHIMS_H

#include "agentron_fs.h"
#include "agentron_process.h"
#include "agentron_socket.h"

#endif
