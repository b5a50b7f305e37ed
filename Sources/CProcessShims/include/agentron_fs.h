#ifndef AGENTRON_FS_H
#define AGENTRON_FS_H

#include <sys/types.h>

// setfsuid(2) / setfsgid(2) live in <sys/fsuid.h>, which Swift's Glibc module does not
// show. They change only the calling thread's filesystem identity, which is what lets a
// root daemon create, read and rename files in a user's directory as that user without
// touching the identity of its other threads.

/// Sets the calling thread's filesystem uid. Returns the previous one, or -1 with errno
/// EPERM when the kernel kept the old one (setfsuid itself never reports failure, so the
/// shim reads the value back).
int agentron_switch_fsuid(uid_t uid, uid_t *previous);

/// The same for the filesystem gid.
int agentron_switch_fsgid(gid_t gid, gid_t *previous);

#endif
