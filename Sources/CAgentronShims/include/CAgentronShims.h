// What Swift cannot import directly: variadic C functions (curl_easy_setopt/getinfo),
// raw syscalls (pidfd_open, pidfd_send_signal), the per-thread filesystem identity
// (setfsuid/setfsgid, not in the Glibc module), and a fork/exec that puts the child in its
// own session before exec. One header, typed wrappers; see STYLE.md (swift-subprocess).
#ifndef AGENTRON_SHIMS_H
#define AGENTRON_SHIMS_H

#include "agentron_curl.h"
#include "agentron_fs.h"
#include "agentron_process.h"

#endif
