#define _GNU_SOURCE
#include "CProcessShims.h"

#include <errno.h>
#include <sys/fsuid.h>

int agentron_switch_fsuid(uid_t uid, uid_t *previous) {
    uid_t old = (uid_t)setfsuid(uid);
    if (previous) *previous = old;
    // An invalid id (-1) changes nothing and returns the current one: the way to tell
    // whether the switch took.
    if ((uid_t)setfsuid((uid_t)-1) != uid) {
        errno = EPERM;
        return -1;
    }
    return 0;
}

int agentron_switch_fsgid(gid_t gid, gid_t *previous) {
    gid_t old = (gid_t)setfsgid(gid);
    if (previous) *previous = old;
    if ((gid_t)setfsgid((gid_t)-1) != gid) {
        errno = EPERM;
        return -1;
    }
    return 0;
}
